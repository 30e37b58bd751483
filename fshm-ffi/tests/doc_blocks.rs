//! The C and C++ code blocks of the README and of the guide (`docs/*.md`), compiled
//! against `c/shmfile.h` and `libshmfile.so` and run, so that they cannot go stale (the
//! Rust blocks run as doctests of the `fshm` crate, `fshm/src/lib.rs`).
//!
//! - A ```` ```c ```` block is compiled with gcc as C99, a ```` ```cpp ```` block with
//!   g++ as C++17, every warning an error.
//! - A block right after the line `<!-- c-fragment -->` is a fragment: its `#include`
//!   lines go first, the rest becomes the body of `main`, which returns 0 (unused
//!   variables are then allowed: a fragment shows a call, not what follows it). Any
//!   other block is a whole program.
//! - Stream names: every string literal starting with `/` gets a prefix unique to the
//!   test run and the block (`"/metrics"` becomes `"/fshm-doc-c-<pid>-<n>-metrics"`),
//!   so that parallel runs never share a stream; after the program, nothing with that
//!   prefix may be left in `/dev/shm` (what is left is removed, and the test fails).
//! - The program must exit 0 within 60 s.
//!
//! `FSHM_TEST_CC`, `FSHM_TEST_CXX` and `FSHM_TEST_RUNNER` work as for `c_api.rs`.
//! Build outputs go to `target/c-tests/`, removed when the test passes.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("fshm-ffi sits in the workspace root")
        .to_path_buf()
}

/// `target/debug` (or `target/release`): this test runs as `<that>/deps/doc_blocks-<hash>`.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("the test binary lives in <target>/deps")
        .to_path_buf()
}

/// The shared library `cargo test` built for this package (see `c_api.rs`).
fn library() -> PathBuf {
    let target = target_dir();
    [
        target.join("deps/libshmfile.so"),
        target.join("libshmfile.so"),
    ]
    .into_iter()
    .find(|p| p.exists())
    .unwrap_or_else(|| panic!("libshmfile.so is not built under {}", target.display()))
}

fn tool(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_string())
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Lang {
    C,
    Cpp,
}

/// One code block: where it is, its language, whether it is a fragment, its text.
#[derive(Debug)]
struct Block {
    place: String,
    lang: Lang,
    fragment: bool,
    code: String,
}

const FRAGMENT_MARK: &str = "<!-- c-fragment -->";

/// The C and C++ blocks of one markdown file.
fn blocks_of(rel: &str, text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim_start();
        let lang = match line.trim_end() {
            "```c" => Some(Lang::C),
            "```cpp" => Some(Lang::Cpp),
            _ => None,
        };
        let Some(lang) = lang else {
            if line.starts_with("```") {
                // Skip any other block whole (it may hold lines that look like fences).
                i += 1;
                while i < lines.len() && !lines[i].trim_start().starts_with("```") {
                    i += 1;
                }
            }
            i += 1;
            continue;
        };
        let start = i + 1;
        let fragment = lines[..i]
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .is_some_and(|l| l.trim() == FRAGMENT_MARK);
        let mut end = start;
        while end < lines.len() && lines[end].trim() != "```" {
            end += 1;
        }
        assert!(end < lines.len(), "{rel}:{}: unclosed code block", i + 1);
        out.push(Block {
            place: format!("{rel}:{}", i + 1),
            lang,
            fragment,
            code: lines[start..end].join("\n"),
        });
        i = end + 1;
    }
    out
}

/// README.md and every docs/*.md, in a fixed order.
fn all_blocks() -> Vec<Block> {
    let root = repo_root();
    let mut files = vec!["README.md".to_string()];
    let mut docs: Vec<String> = std::fs::read_dir(root.join("docs"))
        .expect("read docs/")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
        .iter()
        .flat_map(|rel| {
            let text = std::fs::read_to_string(root.join(rel))
                .unwrap_or_else(|e| panic!("read {rel}: {e}"));
            blocks_of(rel, &text)
        })
        .collect()
}

/// The program to compile for `block`, its stream names prefixed with `prefix`.
fn program(block: &Block, prefix: &str) -> String {
    let code = block.code.replace("\"/", &format!("\"/{prefix}"));
    if !block.fragment {
        return code;
    }
    let (includes, body): (Vec<&str>, Vec<&str>) = code
        .lines()
        .partition(|l| l.trim_start().starts_with("#include"));
    let std_includes = match block.lang {
        Lang::C => "#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n",
        Lang::Cpp => "#include <cstdio>\n#include <iostream>\n#include <string>\n",
    };
    let main = match block.lang {
        Lang::C => "int main(void)",
        Lang::Cpp => "int main()",
    };
    format!(
        "{std_includes}{}\n\n{main}\n{{\n{}\n    return 0;\n}}\n",
        includes.join("\n"),
        body.join("\n")
    )
}

/// The `/dev/shm` entries whose names start with `prefix`.
fn leftovers(prefix: &str) -> Vec<String> {
    std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// Compiles and runs one block; `Err` says what went wrong.
fn check(block: &Block, n: usize, dir: &Path, lib: &Path) -> Result<(), String> {
    let prefix = format!("fshm-doc-c-{}-{n}-", std::process::id());
    let (ext, mut cc) = match block.lang {
        Lang::C => {
            let mut c = Command::new(tool("FSHM_TEST_CC", "gcc"));
            c.args(["-std=c99", "-D_GNU_SOURCE"]);
            ("c", c)
        }
        Lang::Cpp => {
            let mut c = Command::new(tool("FSHM_TEST_CXX", "g++"));
            c.args(["-std=c++17", "-pthread"]);
            ("cpp", c)
        }
    };
    let src = dir.join(format!("block{n}.{ext}"));
    let exe = dir.join(format!("block{n}"));
    std::fs::write(&src, program(block, &prefix)).map_err(|e| format!("write: {e}"))?;
    cc.args(["-Wall", "-Wextra", "-Werror", "-g"]);
    if block.fragment {
        cc.args(["-Wno-unused-variable", "-Wno-unused-but-set-variable"]);
    }
    cc.arg("-I")
        .arg(repo_root().join("c"))
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .arg(lib)
        .arg(format!("-Wl,-rpath,{}", dir.display()));
    let out = cc.output().map_err(|e| format!("run the compiler: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "does not compile ({cc:?}):\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let mut run = Command::new("timeout");
    run.args(["--kill-after=5", "60"]);
    if let Ok(runner) = std::env::var("FSHM_TEST_RUNNER") {
        run.args(runner.split_whitespace());
    }
    let out = run
        .arg(&exe)
        .env_remove("FSHM_PORTABLE_FILE")
        .output()
        .map_err(|e| format!("run: {e}"))?;
    let left = leftovers(&prefix);
    for name in &left {
        let _ = fshm::force_destroy(&format!("/{name}"));
        let _ = std::fs::remove_file(Path::new("/dev/shm").join(name));
    }
    if !out.status.success() {
        return Err(format!(
            "exits with {} (program {}):\nstdout: {}\nstderr: {}",
            out.status,
            src.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    if !left.is_empty() {
        return Err(format!("leaves {left:?} in /dev/shm"));
    }
    Ok(())
}

#[test]
fn c_and_cpp_blocks_of_the_readme_and_the_guide_compile_and_run() {
    let blocks = all_blocks();
    let count = |lang| blocks.iter().filter(|b| b.lang == lang).count();
    // The README's C section and the guide's event-loop and C++ programs at least: a
    // parser that finds nothing must not pass.
    assert!(
        count(Lang::C) >= 2 && count(Lang::Cpp) >= 1,
        "too few blocks found: {blocks:#?}"
    );
    let lib = library();
    let dir = target_dir()
        .parent()
        .map_or_else(target_dir, Path::to_path_buf)
        .join("c-tests")
        .join(format!("doc-blocks-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the build directory");
    // The programs record the soname, libshmfile.so.1, found next to them by the rpath.
    std::os::unix::fs::symlink(&lib, dir.join("libshmfile.so.1")).expect("symlink");
    let failures: Vec<String> = blocks
        .iter()
        .enumerate()
        .filter_map(|(n, b)| {
            check(b, n, &dir, &lib)
                .err()
                .map(|e| format!("{} ({:?}): {e}", b.place, b.lang))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} blocks failed (build directory kept: {}):\n\n{}",
        failures.len(),
        blocks.len(),
        dir.display(),
        failures.join("\n\n")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn fragments_are_wrapped_and_names_made_unique() {
    let text = "x\n<!-- c-fragment -->\n```c\n#include <shmfile.h>\n\nFILE *f = fshm_open(\"/m\", 0600, FSHM_OWNER);\n```\n\n```cpp\nint main() {}\n```\n```sh\necho \"```c\"\n```\n";
    let blocks = blocks_of("t.md", text);
    assert_eq!(blocks.len(), 2, "{blocks:#?}");
    assert!(blocks[0].fragment && blocks[0].lang == Lang::C);
    assert!(!blocks[1].fragment && blocks[1].lang == Lang::Cpp);
    let p = program(&blocks[0], "pre-");
    assert!(
        p.contains("#include <shmfile.h>\n\nint main(void)\n{"),
        "{p}"
    );
    assert!(p.contains("fshm_open(\"/pre-m\""), "{p}");
    assert!(p.trim_end().ends_with("return 0;\n}"), "{p}");
}
