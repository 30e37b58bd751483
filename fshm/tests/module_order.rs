//! ARCHITECTURE.md lists `fshm`'s modules in dependency order ("Code map"): a module
//! names only modules listed above it. This test reads that table and the sources, and
//! fails on every `crate::<module>` path (or re-export of one, `crate::Stream`) in a
//! module that names a module listed after it, on a module file missing from the table
//! and on a table row naming no file: so the document and the code cannot drift apart.
//!
//! Comments are left out (doc links may point anywhere). `super::` paths are not
//! followed: they stay in one row (a folder's files name their `mod.rs`, a file's test
//! module names its file). Method calls on a type whose `impl` blocks sit in several
//! files (`Core`) carry no path and are not checked here; the rule for them is written
//! in ARCHITECTURE.md.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The module names of the table under "### `fshm`" in ARCHITECTURE.md, in order: a row
/// `| \`x.rs\` | ...` is module `x`, a row `| \`dir/\` | ...` the module `dir` with its
/// files.
fn table_order() -> Vec<String> {
    let path = root().join("../ARCHITECTURE.md");
    let doc = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut in_section = false;
    let mut order = Vec::new();
    for line in doc.lines() {
        if line.starts_with("### ") {
            in_section = line.trim() == "### `fshm` (the whole protocol, once)";
            continue;
        }
        if !in_section {
            continue;
        }
        let Some(rest) = line.strip_prefix("| `") else {
            continue;
        };
        let cell = rest.split('`').next().unwrap();
        let module = cell
            .strip_suffix(".rs")
            .or_else(|| cell.strip_suffix('/'))
            .unwrap_or_else(|| {
                panic!("ARCHITECTURE.md: module row {cell:?} is no .rs file or folder")
            });
        order.push(module.to_owned());
    }
    assert!(
        !order.is_empty(),
        "ARCHITECTURE.md: no module table under \"### `fshm` (the whole protocol, once)\""
    );
    order
}

/// Every module's source (a folder's files joined), without `lib.rs`.
fn sources() -> BTreeMap<String, Vec<(PathBuf, String)>> {
    let src = root().join("src");
    let mut out: BTreeMap<String, Vec<(PathBuf, String)>> = BTreeMap::new();
    let mut add = |module: String, path: &Path| {
        let text = fs::read_to_string(path).unwrap();
        out.entry(module).or_default().push((path.to_owned(), text));
    };
    for entry in fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if path.is_dir() {
            for file in fs::read_dir(&path).unwrap() {
                let file = file.unwrap().path();
                if file.extension().is_some_and(|e| e == "rs") {
                    add(name.clone(), &file);
                }
            }
        } else if let Some(module) = name.strip_suffix(".rs") {
            if module != "lib" {
                add(module.to_owned(), &path);
            }
        }
    }
    out
}

/// Code without `//` comments (doc comments included) and string literals.
fn code_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut in_str = false;
        let mut prev = '\0';
        let mut chars = line.chars().peekable();
        while let Some(ch) = chars.next() {
            if in_str {
                if ch == '"' && prev != '\\' {
                    in_str = false;
                }
                prev = if prev == '\\' && ch == '\\' { '\0' } else { ch };
                continue;
            }
            if ch == '/' && chars.peek() == Some(&'/') {
                break;
            }
            if ch == '"' && prev != '\'' {
                in_str = true;
                prev = '\0';
                continue;
            }
            out.push(ch);
            prev = ch;
        }
        out.push('\n');
    }
    out
}

/// The first path segments after `crate::` in `code`, with their line numbers; a
/// group `crate::{a::X, b}` gives each member's.
fn crate_paths(code: &str) -> Vec<(usize, String)> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = Vec::new();
    for (n, line) in code.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            let before = &rest[..at];
            rest = &rest[at + "crate::".len()..];
            // `$crate::` (macros) and `foo_crate::` are other paths.
            if before.ends_with(|c: char| c == '$' || c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            if let Some(group) = rest.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                for member in group[..end].split(',') {
                    let m = ident(member);
                    if !m.is_empty() {
                        out.push((n + 1, m));
                    }
                }
            } else {
                out.push((n + 1, ident(rest)));
            }
        }
    }
    out
}

/// What lib.rs re-exports at the crate root: name -> module (`pub use a::b::{X, Y};`).
fn reexports() -> BTreeMap<String, String> {
    let lib = code_only(&fs::read_to_string(root().join("src/lib.rs")).unwrap());
    let mut out = BTreeMap::new();
    let mut rest = lib.as_str();
    while let Some(at) = rest.find("pub use ") {
        rest = &rest[at + "pub use ".len()..];
        let end = rest.find(';').unwrap();
        let item: String = rest[..end].split_whitespace().collect();
        let module = item.split("::").next().unwrap().to_owned();
        let names = match item.find('{') {
            Some(open) => item[open + 1..item.len() - 1].to_owned(),
            None => item.rsplit("::").next().unwrap().to_owned(),
        };
        for name in names.split(',').filter(|s| !s.is_empty()) {
            let name = name.rsplit(" as ").next().unwrap();
            out.insert(name.to_owned(), module.clone());
        }
        rest = &rest[end..];
    }
    out
}

#[test]
fn every_module_names_only_modules_listed_above_it_in_architecture_md() {
    let order = table_order();
    let sources = sources();
    let reexports = reexports();
    let rank: BTreeMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(i, m)| (m.as_str(), i))
        .collect();
    let mut problems = Vec::new();

    let listed: BTreeSet<&str> = order.iter().map(String::as_str).collect();
    if listed.len() != order.len() {
        problems.push(format!("ARCHITECTURE.md lists a module twice: {order:?}"));
    }
    for module in sources.keys() {
        if !listed.contains(module.as_str()) {
            problems.push(format!(
                "fshm/src/{module}: not in ARCHITECTURE.md's module table"
            ));
        }
    }
    for module in &order {
        if !sources.contains_key(module) {
            problems.push(format!(
                "ARCHITECTURE.md lists `{module}`, which is no file or folder in fshm/src"
            ));
        }
    }

    for (module, files) in &sources {
        let Some(&mine) = rank.get(module.as_str()) else {
            continue;
        };
        for (path, text) in files {
            for (line, name) in crate_paths(&code_only(text)) {
                let target = if sources.contains_key(&name) {
                    name.clone()
                } else if let Some(m) = reexports.get(&name) {
                    m.clone()
                } else {
                    // An item of lib.rs itself (the crate root sits above every module).
                    continue;
                };
                let Some(&theirs) = rank.get(target.as_str()) else {
                    continue;
                };
                if theirs > mine {
                    problems.push(format!(
                        "{}:{line}: `{module}` names `crate::{name}` (module `{target}`), \
                         which ARCHITECTURE.md lists after it",
                        path.strip_prefix(root()).unwrap_or(path).display()
                    ));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "the module order of ARCHITECTURE.md (\"Code map\") does not hold:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_checker_sees_paths_and_skips_comments_and_strings() {
    let code = code_only(
        "use crate::a::X; // crate::b\nlet s = \"crate::c\"; f(crate::d::g(), $crate::e);\n\
         use crate::{f::Y, g};\n/// [`Z`](crate::h::Z)\n",
    );
    let names: Vec<String> = crate_paths(&code).into_iter().map(|(_, n)| n).collect();
    assert_eq!(names, ["a", "d", "f", "g"]);
}
