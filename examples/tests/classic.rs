//! The classic owner/guest pair, C and Rust interchangeably: builds `owner.c` and
//! `guest.c` with gcc against `c/shmfile.h` and the workspace's `libshmfile.so`, finds
//! the Rust `owner` and `guest` example binaries, and runs every pairing — C owner with
//! Rust guests, Rust owner with C guests, C with C, Rust with Rust. Each time three
//! guests bump the owner's access counter in turn, and the owner's final record must say
//! `access-count=0000000003`; nothing may be left in /dev/shm.
//!
//! The library and the example binaries are (re)built through `$CARGO` (a no-op when
//! they are fresh). The test needs `gcc`.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const RECORD_LEN: usize = "access-count=0000000000 hello from the owner\n".len();
const TIMEOUT: Duration = Duration::from_secs(60);

/// `target/<profile>`, the directory that holds this test's `deps/`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("test binary has a parent");
    assert_eq!(deps.file_name().and_then(|n| n.to_str()), Some("deps"));
    deps.parent().expect("deps has a parent").to_path_buf()
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("examples/ is inside the workspace")
        .to_path_buf()
}

/// Runs `cargo build <args>` for this test's profile, into this test's target directory.
fn cargo_build(profile: &Path, args: &[&str]) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root())
        .arg("build")
        .arg("--quiet")
        .args(args)
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
    assert!(status.success(), "cargo build {args:?} failed: {status}");
}

/// Compiles `examples/<name>.c` into `out`, linked against `libshmfile.so` in `profile`,
/// with `out` (which holds a `libshmfile.so.1` link to it) as the run-time path.
fn compile_c(profile: &Path, out: &Path, name: &str) -> PathBuf {
    let root = workspace_root();
    let exe = out.join(format!("{name}-c"));
    let output = Command::new("gcc")
        .args([
            "-std=c99",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-D_GNU_SOURCE",
            "-I",
        ])
        .arg(root.join("c"))
        .arg(root.join("examples").join(format!("{name}.c")))
        .arg("-o")
        .arg(&exe)
        .arg("-L")
        .arg(profile)
        .arg("-lshmfile")
        .arg(format!("-Wl,-rpath,{}", out.display()))
        .output()
        .expect("run gcc (is it installed?)");
    assert!(
        output.status.success(),
        "gcc {name}.c failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    exe
}

/// The programs under test, built once per test binary run.
struct Programs {
    c_owner: PathBuf,
    c_guest: PathBuf,
    rust_owner: PathBuf,
    rust_guest: PathBuf,
    out: PathBuf,
}

impl Drop for Programs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.out);
    }
}

fn build_programs() -> Programs {
    let profile = profile_dir();
    cargo_build(&profile, &["-p", "fshm-ffi"]);
    cargo_build(&profile, &["-p", "fshm-examples", "--examples"]);
    let so = profile.join("libshmfile.so");
    assert!(so.is_file(), "{} missing after the build", so.display());

    let out =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("classic-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).expect("create the build dir");
    std::os::unix::fs::symlink(&so, out.join("libshmfile.so.1")).expect("symlink the .so");

    let examples = profile.join("examples");
    let programs = Programs {
        c_owner: compile_c(&profile, &out, "owner"),
        c_guest: compile_c(&profile, &out, "guest"),
        rust_owner: examples.join("owner"),
        rust_guest: examples.join("guest"),
        out,
    };
    for p in [&programs.rust_owner, &programs.rust_guest] {
        assert!(p.is_file(), "{} missing after the build", p.display());
    }
    programs
}

/// A unique stream name; its object is removed from /dev/shm when dropped, whatever
/// happened (the test checks, before that, that the owner removed it).
struct Name(String);

impl Name {
    fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        Name(format!("/fshm-classic-{}-{n}-{tag}", std::process::id()))
    }
    fn shm_path(&self) -> PathBuf {
        Path::new("/dev/shm").join(self.0.trim_start_matches('/'))
    }
}

impl Drop for Name {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.shm_path());
    }
}

/// An owner process; killed if the test fails before it ends.
struct Owner {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Owner {
    fn start(exe: &Path, name: &Name) -> Self {
        let mut child = Command::new(exe)
            .arg(&name.0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", exe.display()));
        let stdout: ChildStdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Owner { child, lines }
    }

    fn next_line(&self, what: &str) -> String {
        self.lines
            .recv_timeout(TIMEOUT)
            .unwrap_or_else(|e| panic!("owner: no {what} line: {e}"))
    }

    /// Closes the owner's stdin, waits for it to end, and returns its last line.
    fn finish(mut self) -> String {
        drop(self.child.stdin.take());
        let line = self.next_line("final");
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                break s;
            }
            assert!(start.elapsed() < TIMEOUT, "owner did not exit");
            thread::sleep(Duration::from_millis(10));
        };
        assert!(status.success(), "owner failed: {status}");
        let rest: Vec<String> = self.lines.try_iter().collect();
        assert!(rest.is_empty(), "owner printed more: {rest:?}");
        line
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn run_guest(exe: &Path, name: &Name) -> String {
    let mut child = Command::new(exe)
        .arg(&name.0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", exe.display()));
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("guest {} hung", exe.display());
        }
        thread::sleep(Duration::from_millis(5));
    };
    let mut out = String::new();
    let mut err = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("read stdout");
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("read stderr");
    assert!(
        status.success(),
        "guest {} failed ({status}): {out}{err}",
        exe.display()
    );
    out
}

fn pairing(owner: &Path, guest: &Path, tag: &str) {
    let name = Name::new(tag);
    let o = Owner::start(owner, &name);
    let ready = o.next_line("ready");
    assert_eq!(
        ready,
        format!(
            "owner: {} holds {RECORD_LEN} bytes; run guests, then press Enter (or close stdin)",
            name.0
        ),
        "{tag}"
    );
    assert!(
        name.shm_path().exists(),
        "{tag}: no {}",
        name.shm_path().display()
    );
    for i in 0..3 {
        let out = run_guest(guest, &name);
        assert_eq!(
            out,
            format!("guest: access count {i} -> {}\n", i + 1),
            "{tag}"
        );
    }
    let last = o.finish();
    assert_eq!(
        last, "owner: final record: access-count=0000000003 hello from the owner",
        "{tag}"
    );
    assert!(
        !name.shm_path().exists(),
        "{tag}: the owner left {} behind",
        name.shm_path().display()
    );
}

#[test]
fn classic_pairs_interoperate() {
    let p = build_programs();
    pairing(&p.c_owner, &p.rust_guest, "c-owner-rust-guests");
    pairing(&p.rust_owner, &p.c_guest, "rust-owner-c-guests");
    pairing(&p.c_owner, &p.c_guest, "c-c");
    pairing(&p.rust_owner, &p.rust_guest, "rust-rust");

    let prefix = format!("fshm-classic-{}-", std::process::id());
    let left: Vec<String> = std::fs::read_dir("/dev/shm")
        .expect("read /dev/shm")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "left in /dev/shm: {left:?}");
}
