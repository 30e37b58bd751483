//! The zero-copy messages example runs to completion: its consumer, another process,
//! receives every message in order with every byte checked, through a lossless ring and
//! through an immutable stream, and nothing is left in /dev/shm.
//!
//! The example binary is (re)built through `$CARGO` (a no-op when it is fresh).

use std::path::{Path, PathBuf};
use std::process::Command;

/// `target/<profile>`, the directory that holds this test's `deps/`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("test binary has a parent");
    assert_eq!(deps.file_name().and_then(|n| n.to_str()), Some("deps"));
    deps.parent().expect("deps has a parent").to_path_buf()
}

fn build_example() -> PathBuf {
    let profile = profile_dir();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace"),
    )
    .args([
        "build",
        "--quiet",
        "-p",
        "fshm-examples",
        "--example",
        "messages",
    ])
    .arg("--target-dir")
    .arg(profile.parent().expect("target dir"));
    match profile.file_name().and_then(|n| n.to_str()) {
        Some("debug") => {}
        Some("release") => {
            cmd.arg("--release");
        }
        Some(other) => {
            cmd.arg("--profile").arg(other);
        }
        None => panic!("odd profile dir {}", profile.display()),
    }
    let status = cmd.status().expect("run cargo build");
    assert!(
        status.success(),
        "cargo build of the example failed: {status}"
    );
    profile.join("examples").join("messages")
}

#[test]
fn producer_and_consumer_exchange_every_message_in_place() {
    let exe = build_example();
    for args in [
        &["--count", "3000"][..],
        &["--immutable", "--count", "3000"],
    ] {
        let child = Command::new(&exe)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run the example");
        let name = format!("fshm-messages-{}", child.id());
        let out = child.wait_with_output().expect("wait for the example");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "messages {args:?} failed: {}\n{stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.starts_with("3000 messages, "),
            "unexpected report: {stdout}"
        );
        let lock_prefix = format!("{name}%lock");
        let leftover = std::fs::read_dir("/dev/shm")
            .unwrap()
            .flatten()
            .filter(|e| {
                let f = e.file_name();
                let f = f.to_string_lossy();
                *f == *name || f.starts_with(&lock_prefix)
            })
            .count();
        assert_eq!(leftover, 0, "the example left its stream in /dev/shm");
    }
}
