//! `fshm --version`, `fshm completions SHELL` and the generated man page, run as the
//! real binary.

use std::process::{Command, Output};

fn fshm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fshm"))
        .args(args)
        .output()
        .expect("run fshm")
}

fn stdout(o: &Output) -> String {
    assert!(o.status.success(), "{o:?}");
    assert!(o.stderr.is_empty(), "{o:?}");
    String::from_utf8(o.stdout.clone()).expect("UTF-8")
}

#[test]
fn version_names_the_package_version() {
    for flag in ["--version", "-V"] {
        let out = stdout(&fshm(&[flag]));
        assert_eq!(out, format!("fshm {}\n", env!("CARGO_PKG_VERSION")));
    }
}

#[test]
fn completions_cover_every_subcommand() {
    for (shell, marker) in [
        ("bash", "complete -F _fshm"),
        ("zsh", "#compdef fshm"),
        ("fish", "complete -c fshm"),
    ] {
        let out = stdout(&fshm(&["completions", shell]));
        assert!(out.contains(marker), "{shell}: no {marker:?} in\n{out}");
        for sub in [
            "ls",
            "stat",
            "cat",
            "tail",
            "write",
            "rm",
            "gc",
            "top",
            "tunnel",
            "completions",
        ] {
            assert!(out.contains(sub), "{shell}: no {sub} in\n{out}");
        }
    }
}

#[test]
fn completions_refuse_an_unknown_shell() {
    let out = fshm(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
}

#[test]
fn man_page_documents_every_subcommand() {
    let out = stdout(&fshm(&["man"]));
    assert!(out.contains(".TH fshm 1"), "{out}");
    for sub in [
        "ls",
        "stat",
        "cat",
        "tail",
        "write",
        "rm",
        "gc",
        "top",
        "tunnel",
        "completions",
    ] {
        assert!(
            out.contains(&format!("fshm\\-{sub}")) || out.contains(&format!("\\fB{sub}\\fR")),
            "no {sub} in\n{out}"
        );
    }
    // Generated from the same definition as --help: the same version.
    assert!(out.contains(env!("CARGO_PKG_VERSION")), "{out}");
}
