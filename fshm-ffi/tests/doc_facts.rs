//! One source for the facts the C documents repeat: the code's constants. c/shmfile.h,
//! the man pages (c/man/*.3), README.md and the guide (docs/*.md) state limits, defaults, flag values and
//! errno lists again for their readers; each is checked here against the constant it
//! copies, so that a change of one makes this test name every copy to update:
//!
//! - the name limit, `fshm::OBJECT_NAME_MAX` (255, `NAME_MAX`): stated where names are
//!   described, and no other number just below it said of names (the copies once said
//!   250, and "251 to 255 refused");
//! - the default maximum size, `fshm::DEFAULT_MAX_SIZE` (1 GiB): only ever as the
//!   default (the maximum is `fshm_options.max_size`), and the largest maximum,
//!   `MAX_SIZE_LIMIT` in fshm/src/header.rs (16 TiB);
//! - the lossless ring's reader slots, `READER_SLOTS` in fshm/src/header.rs (32), and a
//!   the absence of any guest wait for a stream being set up (streams are published
//!   whole);
//! - the flags' and constants' values: each `#define FSHM_*` of shmfile.h equals
//!   fshm-ffi's constant of that name, and each man page's synopsis copies shmfile.h;
//! - the errno lists: shmfile.h's ERRORS list names exactly the errnos of all man
//!   pages' ERRORS sections.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("fshm-ffi sits in the workspace root")
        .to_path_buf()
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

fn man_pages() -> Vec<(String, String)> {
    let mut pages: Vec<(String, String)> = std::fs::read_dir(root().join("c/man"))
        .expect("read c/man")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".3"))
        .map(|n| {
            let rel = format!("c/man/{n}");
            let text = read(&rel);
            (rel, text)
        })
        .collect();
    pages.sort();
    pages
}

/// A man page as the text a reader sees: comments dropped, macro names and quotes
/// removed, roff escapes resolved, whitespace collapsed.
fn man_text(roff: &str) -> String {
    let mut out = String::new();
    for line in roff.lines() {
        if line.starts_with(".\\\"") {
            continue;
        }
        let body = match line.strip_prefix('.') {
            Some(rest) => rest.split_once(' ').map_or("", |(_, args)| args),
            None => line,
        };
        out.push_str(&body.replace('"', ""));
        out.push(' ');
    }
    let out = out
        .replace("\\ ", " ")
        .replace("\\-", "-")
        .replace("\\(aq", "'")
        .replace("\\(dq", "\"")
        .replace("\\&", "")
        .replace("\\e", "\\");
    collapse(&out)
}

/// c/shmfile.h's text with comment leaders removed and whitespace collapsed.
fn header_text(header: &str) -> String {
    let lines: Vec<&str> = header
        .lines()
        .map(|l| {
            let t = l.trim_start();
            t.strip_prefix("* ")
                .or_else(|| t.strip_prefix("/* "))
                .unwrap_or(t)
        })
        .collect();
    collapse(&lines.join(" ").replace('`', ""))
}

fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The documents, as (path, text a reader sees).
fn documents() -> Vec<(String, String)> {
    let mut docs = vec![
        ("c/shmfile.h".to_string(), header_text(&read("c/shmfile.h"))),
        (
            "README.md".to_string(),
            collapse(&read("README.md").replace('`', "")),
        ),
    ];
    let mut guide: Vec<String> = std::fs::read_dir(root().join("docs"))
        .expect("read docs")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    guide.sort();
    docs.extend(guide.into_iter().map(|p| {
        let text = collapse(&read(&p).replace('`', ""));
        (p, text)
    }));
    docs.extend(man_pages().into_iter().map(|(p, t)| (p, man_text(&t))));
    docs
}

/// The sentences of a text (split after '.' or ';' followed by a space).
fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let b = text.as_bytes();
    for i in 0..b.len().saturating_sub(1) {
        if matches!(b[i], b'.' | b';') && b[i + 1] == b' ' {
            out.push(&text[start..=i]);
            start = i + 2;
        }
    }
    out.push(&text[start..]);
    out
}

/// The whole numbers written in `s`.
fn numbers(s: &str) -> Vec<u64> {
    s.split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .filter_map(|w| w.parse().ok())
        .collect()
}

/// A `pub const NAME: T = VALUE;` of fshm's source (for the constants fshm keeps
/// private), with `1 << n` understood.
fn source_const(rel: &str, name: &str) -> u64 {
    let src = read(rel);
    let line = src
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("pub const {name}:")))
        .unwrap_or_else(|| panic!("{rel}: no `pub const {name}`"));
    let value = line
        .split('=')
        .nth(1)
        .expect("a value")
        .trim()
        .trim_end_matches(';');
    match value.split_once("<<") {
        Some((a, b)) => a.trim().parse::<u64>().unwrap() << b.trim().parse::<u32>().unwrap(),
        None => value.parse().unwrap(),
    }
}

fn binary_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes;
    let mut unit = 0;
    while unit < UNITS.len() - 1 && v >= 1024 && v % 1024 == 0 {
        v /= 1024;
        unit += 1;
    }
    format!("{v} {}", UNITS[unit])
}

#[test]
fn name_limit_is_stated_as_the_code_has_it() {
    let max = fshm::OBJECT_NAME_MAX as u64;
    let mut bad = Vec::new();
    for (path, text) in documents() {
        for s in sentences(&text) {
            let lower = s.to_lowercase();
            if !lower.contains("name") {
                continue;
            }
            // "250 bytes", "251 to 255": a number just below the limit said of lengths.
            let near = (max - 10..max)
                .find(|n| s.contains(&format!("{n} bytes")) || s.contains(&format!("{n} to ")));
            if let Some(n) = near {
                bad.push(format!(
                    "{path}: says {n} of names, the limit is {max}: \"{s}\""
                ));
            }
            if s.contains("NAME_MAX less") || s.contains("NAME_MAX minus") {
                bad.push(format!(
                    "{path}: the limit is NAME_MAX itself ({max}): \"{s}\""
                ));
            }
        }
    }
    let must = [
        ("c/shmfile.h", format!("at most {max} bytes (NAME_MAX)")),
        ("c/shmfile.h", format!("longer than {max} bytes")),
        (
            "c/man/fshm_open.3",
            format!("must not be longer than {max} bytes"),
        ),
        (
            "c/man/fshm_open.3",
            format!("longer than {max} bytes (see DESCRIPTION)"),
        ),
        (
            "c/man/fshm_force_destroy.3",
            format!("longer than {max} bytes"),
        ),
        ("docs/names.md", format!("longer than {max} bytes")),
    ];
    check_must(&must, &mut bad);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn sizes_are_stated_as_the_code_has_them() {
    let default = binary_size(fshm::DEFAULT_MAX_SIZE);
    let limit = binary_size(source_const("fshm/src/header.rs", "MAX_SIZE_LIMIT"));
    let limit_unit = limit.split(' ').nth(1).unwrap().to_string();
    let mut bad = Vec::new();
    for (path, text) in documents() {
        for s in sentences(&text) {
            // The default maximum is a default: the maximum itself is configurable.
            if s.contains(&default) && !s.to_lowercase().contains("default") {
                bad.push(format!(
                    "{path}: {default} is the default maximum size, say so: \"{s}\""
                ));
            }
            if s.contains(&format!(" {limit_unit}")) && !s.contains(&limit) {
                bad.push(format!("{path}: the largest maximum is {limit}: \"{s}\""));
            }
        }
    }
    let must = [
        (
            "c/shmfile.h",
            format!("default, {default}; at most {limit}"),
        ),
        (
            "c/man/fshm_open_ex.3",
            format!("the default, {default}; at most {limit}"),
        ),
    ];
    check_must(&must, &mut bad);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn slots_and_timeouts_are_stated_as_the_code_has_them() {
    let slots = source_const("fshm/src/header.rs", "READER_SLOTS");
    let mut bad = Vec::new();
    for (path, text) in documents() {
        for s in sentences(&text) {
            let lower = s.to_lowercase();
            let counts_readers = numbers(s).into_iter().any(|n| {
                n != slots
                    && (s.contains(&format!("{n} reader slots"))
                        || s.contains(&format!("{n} readers")))
            });
            if counts_readers {
                bad.push(format!(
                    "{path}: a lossless ring has {slots} reader slots: \"{s}\""
                ));
            }
            // Streams are published whole: no guest waits for an owner to set one up.
            if lower.contains("ready within") || lower.contains("waits up to 2 s") {
                bad.push(format!(
                    "{path}: a guest never waits for an owner setting a stream up: \"{s}\""
                ));
            }
        }
    }
    let must = [
        ("c/shmfile.h", format!("all {slots} reader slots")),
        ("c/man/fshm_open_ex.3", format!("all {slots} reader slots")),
    ];
    check_must(&must, &mut bad);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// `#define NAME VALUE` lines of a C text (the value a plain integer).
fn defines(text: &str) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line
            .trim()
            .trim_start_matches(".BR")
            .trim()
            .trim_matches('"');
        let Some(rest) = line.strip_prefix("#define ") else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let (Some(name), Some(value)) = (words.next(), words.next()) else {
            continue;
        };
        let value = value.trim_end_matches('"');
        let parsed = match value.strip_prefix("0x") {
            Some(hex) => i64::from_str_radix(hex, 16).ok(),
            None => value.parse().ok(),
        };
        if let (true, Some(v)) = (name.starts_with("FSHM_"), parsed) {
            out.insert(name.to_string(), v);
        }
    }
    out
}

#[test]
fn flags_agree_with_the_code_and_the_header() {
    let header = defines(&read("c/shmfile.h"));
    let code: [(&str, i64); 10] = [
        ("FSHM_OWNER", fshm_ffi_const(shmfile::FSHM_OWNER)),
        ("FSHM_GUEST", fshm_ffi_const(shmfile::FSHM_GUEST)),
        ("FSHM_PERSIST", fshm_ffi_const(shmfile::FSHM_PERSIST)),
        ("FSHM_APPEND", fshm_ffi_const(shmfile::FSHM_APPEND)),
        ("FSHM_RECLAIM", fshm_ffi_const(shmfile::FSHM_RECLAIM)),
        ("FSHM_BLOCK", fshm_ffi_const(shmfile::FSHM_BLOCK)),
        ("FSHM_RDONLY", fshm_ffi_const(shmfile::FSHM_RDONLY)),
        ("FSHM_IMMUTABLE", fshm_ffi_const(shmfile::FSHM_IMMUTABLE)),
        ("FSHM_RING_LOSSY", fshm_ffi_const(shmfile::FSHM_RING_LOSSY)),
        (
            "FSHM_RING_LOSSLESS",
            fshm_ffi_const(shmfile::FSHM_RING_LOSSLESS),
        ),
    ];
    let mut bad = Vec::new();
    for (name, value) in code {
        match header.get(name) {
            Some(v) if *v == value => {}
            other => bad.push(format!(
                "c/shmfile.h: {name} is {other:?}, the code has {value}"
            )),
        }
    }
    for (path, roff) in man_pages() {
        for (name, value) in defines(&roff) {
            match header.get(&name) {
                Some(v) if *v == value => {}
                other => bad.push(format!("{path}: {name} {value}, shmfile.h has {other:?}")),
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

fn fshm_ffi_const(v: std::os::raw::c_int) -> i64 {
    i64::from(v)
}

#[test]
fn errno_lists_agree() {
    // shmfile.h: the ERRORS list, lines " *   EXXX  text" up to the next blank line.
    let header = read("c/shmfile.h");
    let start = header
        .find(" * ERRORS.")
        .expect("shmfile.h has an ERRORS list");
    let mut listed = BTreeSet::new();
    for line in header[start..].lines().skip(1) {
        let t = line.trim_start_matches(" *").trim_end();
        if t.is_empty() {
            break;
        }
        if let Some(word) = t
            .strip_prefix("   ")
            .and_then(|w| w.split_whitespace().next())
        {
            if word.len() > 2
                && word.starts_with('E')
                && word.chars().all(|c| c.is_ascii_uppercase())
            {
                listed.insert(word.to_string());
            }
        }
    }
    // The man pages: `.B EXXX` right after `.TP` in ERRORS sections.
    let mut pages: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (path, roff) in man_pages() {
        let mut in_errors = false;
        let mut prev = "";
        for line in roff.lines() {
            if line.starts_with(".SH") {
                in_errors = line.trim() == ".SH ERRORS";
            } else if in_errors && prev == ".TP" {
                if let Some(e) = line.strip_prefix(".B E") {
                    pages
                        .entry(format!("E{}", e.trim()))
                        .or_default()
                        .push(path.clone());
                }
            }
            prev = line.trim();
        }
    }
    let documented: BTreeSet<String> = pages.keys().cloned().collect();
    assert!(!listed.is_empty() && !documented.is_empty());
    let only_pages: Vec<String> = documented
        .difference(&listed)
        .map(|e| format!("{e} (in {})", pages[e].join(", ")))
        .collect();
    let only_header: Vec<&String> = listed.difference(&documented).collect();
    assert!(
        only_pages.is_empty() && only_header.is_empty(),
        "shmfile.h's ERRORS list and the man pages' ERRORS sections differ: only in man \
         pages: {only_pages:?}; only in shmfile.h: {only_header:?}"
    );
}

fn check_must(must: &[(&str, String)], bad: &mut Vec<String>) {
    let docs: BTreeMap<String, String> = documents().into_iter().collect();
    for (path, phrase) in must {
        if !docs[*path].contains(phrase.as_str()) {
            bad.push(format!("{path} does not say \"{phrase}\""));
        }
    }
}
