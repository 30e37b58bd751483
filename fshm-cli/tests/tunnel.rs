//! `fshm tunnel ARGS...` runs the fshm-tunnel program — next to the fshm executable
//! first, then on PATH — with the arguments as they are, and exits with its status; a
//! missing program is a clear error with status 2. Fake fshm-tunnel scripts stand in
//! for the real one (which the tunnel's own workspace builds).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A directory of this test's own, removed at the end (also on failure).
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("fshm-cli-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        // A new directory of this process's own (mode 0700, `create_dir` fails if the
        // name exists): the programs the tests put there are run, and the tests may run
        // as root in the shared temporary directory.
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&d)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", d.display()));
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fake fshm-tunnel in `dir` that prints `tag` and its arguments, one a line, and
/// exits with `status`.
fn fake_tunnel(dir: &Path, tag: &str, status: i32) {
    let p = dir.join("fshm-tunnel");
    std::fs::write(
        &p,
        format!("#!/bin/sh\necho {tag}\nfor a in \"$@\"; do echo \"$a\"; done\nexit {status}\n"),
    )
    .unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn run(fshm: &Path, path_dirs: &[&Path], args: &[&str]) -> Output {
    let path = std::env::join_paths(path_dirs).unwrap();
    Command::new(fshm)
        .arg("tunnel")
        .args(args)
        .env("PATH", path)
        .output()
        .expect("run fshm")
}

// One test, so that no other test of this process forks while a script is being
// written (a child holding it open for writing would make its exec fail, ETXTBSY).
#[test]
fn tunnel_runs_fshm_tunnel_next_to_fshm_then_on_path_and_says_when_it_is_missing() {
    let t = TempDir::new("tunnel");
    let bin = t.0.join("bin");
    let path_a = t.0.join("path-a");
    let empty = t.0.join("empty");
    for d in [&bin, &path_a, &empty] {
        std::fs::create_dir_all(d).unwrap();
    }
    let fshm = bin.join("fshm");
    std::fs::copy(env!("CARGO_BIN_EXE_fshm"), &fshm).unwrap();
    fake_tunnel(&path_a, "on-path", 5);

    // Not next to fshm: the one on PATH runs, with every argument as it is (options of
    // its own and --help included), and fshm exits with its status.
    let args = [
        "import",
        "/sensors/",
        "--as",
        "/remote/a b/",
        "--connect",
        "tcp/127.0.0.1:7447",
        "--help",
        "-x",
    ];
    let out = run(&fshm, &[&empty, &path_a], &args);
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    let lines: Vec<String> = String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let mut want = vec!["on-path".to_owned()];
    want.extend(args.iter().map(|a| a.to_string()));
    assert_eq!(lines, want, "{out:?}");

    // Next to fshm: that one, before PATH's.
    fake_tunnel(&bin, "next-to", 0);
    let out = run(&fshm, &[&path_a], &["export", "/s/"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, b"next-to\nexport\n/s/\n", "{out:?}");

    // Missing everywhere: status 2, and the error says what was looked for where.
    std::fs::remove_file(bin.join("fshm-tunnel")).unwrap();
    for args in [&["export", "/s/"][..], &[][..], &["--help"][..]] {
        let out = run(&fshm, &[&empty], args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{out:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains("fshm-tunnel"), "{err}");
        assert!(
            err.contains(&bin.join("fshm-tunnel").display().to_string()),
            "{err}"
        );
        assert!(err.contains("PATH"), "{err}");
    }

    // A file that is not executable is not taken for the program.
    std::fs::write(bin.join("fshm-tunnel"), "#!/bin/sh\nexit 0\n").unwrap();
    let out = run(&fshm, &[&empty], &["export", "/s/"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
