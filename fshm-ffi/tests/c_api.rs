//! The C API as C programs see it: builds each C test program in `c/tests` twice — against
//! `libshmfile.so` and against `libshmfile.a` — runs it and asserts that it exits 0. The
//! interop tests pair a Rust owner with a C guest and a C owner with a Rust guest.
//!
//! Each program runs a third time, linked against the shared library, with
//! `FSHM_PORTABLE_FILE=1`: its `FILE*`s then use only what fopencookie(3) documents (no
//! in-place refills, no direct writes), the mode every platform but glibc on
//! x86_64/aarch64 gets. The other runs have the variable removed.
//!
//! With `FSHM_VALGRIND=1`, every program linked against the shared library runs under
//! valgrind, which fails the test on any memory error or leak (memory still reachable
//! at exit, such as the reactor threads' and per-thread state, is no leak).
//!
//! A program that skips part of itself prints a line starting with `skipped:`; the test
//! repeats it on stderr.
//!
//! The event-loop programs (`test_loop_*.c`) follow streams from real loops: libuv
//! (`-luv`) and GLib (`pkg-config glib-2.0`), installed by ci/setup.sh, plain epoll and
//! `fshm_poll`. The libuv and GLib ones are built for the host only (skipped, with a
//! line on stderr, when `FSHM_TEST_CC` names a cross or musl compiler). None of them
//! runs under valgrind: libuv's and GLib's own allocations and threads are not ours to
//! check.
//!
//! Build outputs go to a fresh directory under `target/c-tests/`, removed when the test
//! passes and kept (its path printed) when it fails.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Native libraries that `libshmfile.a` needs, as printed by
/// `rustc --print native-static-libs` for x86_64-unknown-linux-gnu (and
/// aarch64-unknown-linux-gnu). `FSHM_TEST_STATIC_LIBS` replaces them for other targets
/// (ci/musl.sh).
const STATIC_LIBS: &[&str] = &[
    "-lgcc_s",
    "-lutil",
    "-lrt",
    "-lpthread",
    "-lm",
    "-ldl",
    "-lc",
];

/// The C (or C++) compiler: `$var` if set, else `default`. Cross runs (ci/cross.sh)
/// set `FSHM_TEST_CC` / `FSHM_TEST_CXX` to the target's compilers and
/// `FSHM_TEST_RUNNER` to the emulator that runs the programs (e.g. `qemu-aarch64 -L
/// /usr/aarch64-linux-gnu`).
fn tool(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_string())
}

/// Longest run of one program, valgrind included.
const TIMEOUT_SECS: &str = "600";

#[derive(Clone, Copy, Debug)]
enum Link {
    Shared,
    Static,
}

/// `target/debug` (or `target/release`): this test runs as `<that>/deps/c_api-<hash>`.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("the test binary lives in <target>/deps")
        .to_path_buf()
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("fshm-ffi sits in the workspace root")
        .to_path_buf()
}

/// The library to link against. `cargo test` builds the package's cdylib and staticlib
/// along with the rlib the tests use, into `<target>/deps` (only `cargo build` copies them
/// up to `<target>`): take that fresh copy, else the one in `<target>`.
fn library(link: Link) -> PathBuf {
    let file = match link {
        Link::Shared => "libshmfile.so",
        Link::Static => "libshmfile.a",
    };
    let target = target_dir();
    [target.join("deps").join(file), target.join(file)]
        .into_iter()
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "{file} is in neither {0}/deps nor {0}: run `cargo build -p fshm-ffi`",
                target.display()
            )
        })
}

/// A compiled C program in its own build directory.
struct Program {
    dir: PathBuf,
    exe: PathBuf,
    link: Link,
    /// Runs under valgrind with `FSHM_VALGRIND=1` (not the event-loop programs).
    valgrind: bool,
}

/// The foreign event-loop library a C test program links, if any.
fn loop_library(source: &str) -> Option<&'static str> {
    match source {
        "test_loop_uv.c" => Some("libuv"),
        "test_loop_glib.c" => Some("glib-2.0"),
        _ => None,
    }
}

/// The compiler and linker flags of `library` (`loop_library`).
fn loop_library_flags(library: &str) -> Vec<String> {
    if library == "libuv" {
        assert!(
            Path::new("/usr/include/uv.h").exists(),
            "libuv's headers are missing: install libuv1-dev (ci/setup.sh)"
        );
        return vec!["-luv".to_string()];
    }
    let out = Command::new("pkg-config")
        .args(["--cflags", "--libs", library])
        .output()
        .expect("run pkg-config");
    assert!(
        out.status.success(),
        "pkg-config {library} failed: install libglib2.0-dev (ci/setup.sh)\n{}",
        show(&out)
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

impl Program {
    /// Compiles `c/tests/<source>` against the library (`.c` with gcc as C99, `.cpp` with
    /// g++ as C++17), with every warning an error.
    fn build(source: &str, link: Link) -> Program {
        Program::build_as(source, link, "")
    }

    /// As [`Program::build`], in a build directory told apart by `tag` (tests that
    /// build the same program with the same linkage run at the same time).
    fn build_as(source: &str, link: Link, tag: &str) -> Program {
        let target = target_dir();
        let lib = library(link);
        let stem = source.split('.').next().unwrap_or(source);
        let dir = target
            .parent()
            .unwrap_or(&target)
            .join("c-tests")
            .join(format!("{}-{stem}-{link:?}{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the build directory");
        let root = repo_root();
        let src = root.join("c/tests").join(source);
        let exe = dir.join(stem);
        let mut cc = if source.ends_with(".cpp") {
            let mut c = Command::new(tool("FSHM_TEST_CXX", "g++"));
            c.args(["-std=c++17", "-Wall", "-Wextra", "-Werror"]);
            c
        } else {
            let mut c = Command::new(tool("FSHM_TEST_CC", "gcc"));
            c.args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-D_GNU_SOURCE"]);
            c
        };
        cc.arg("-g")
            .arg("-I")
            .arg(root.join("c"))
            .arg("-I")
            .arg(root.join("c/tests"))
            .arg(&src)
            .arg("-o")
            .arg(&exe)
            .arg(&lib);
        match link {
            Link::Shared => {
                // The program records the soname, libshmfile.so.1; it resolves through
                // a symlink next to the program, found by the rpath.
                let so1 = dir.join("libshmfile.so.1");
                std::os::unix::fs::symlink(&lib, &so1).expect("symlink libshmfile.so.1");
                cc.arg(format!("-Wl,-rpath,{}", dir.display()));
            }
            Link::Static => {
                match std::env::var("FSHM_TEST_STATIC_LIBS") {
                    Ok(libs) => cc.args(libs.split_whitespace()),
                    Err(_) => cc.args(STATIC_LIBS),
                };
            }
        }
        if let Some(library) = loop_library(source) {
            cc.args(loop_library_flags(library));
        }
        let out = cc.output().expect("run the C compiler");
        assert!(
            out.status.success(),
            "compiling {source} ({link:?}) failed: {cc:?}\n{}",
            show(&out)
        );
        let valgrind = !source.starts_with("test_loop_");
        Program {
            dir,
            exe,
            link,
            valgrind,
        }
    }

    /// The command that runs the program: under valgrind for the shared build when
    /// `FSHM_VALGRIND=1`; under `timeout`, so that a hang fails the test (the programs
    /// also arm an alarm, which valgrind may not deliver while it is stuck).
    fn command(&self) -> Command {
        let valgrind = std::env::var("FSHM_VALGRIND").is_ok_and(|v| v == "1");
        let mut c = Command::new("timeout");
        c.args(["--kill-after=10", TIMEOUT_SECS]);
        if valgrind && self.valgrind && matches!(self.link, Link::Shared) {
            c.arg("valgrind").args([
                "-q",
                "--error-exitcode=99",
                "--leak-check=full",
                // Leaks (memory nothing points to any more) fail the test; memory
                // still reachable at exit does not, nor the thread blocks of threads
                // still running then ("possibly lost"): the process's reactor threads
                // and per-thread state live until exit by design.
                "--show-leak-kinds=definite,indirect",
                "--errors-for-leak-kinds=definite,indirect",
                "--trace-children=no",
                "--child-silent-after-fork=yes",
            ]);
        }
        if let Ok(runner) = std::env::var("FSHM_TEST_RUNNER") {
            c.args(runner.split_whitespace());
        }
        c.arg(&self.exe);
        c
    }

    /// Runs the program (in the portable `FILE` mode if `portable`) and asserts that it
    /// exits 0.
    fn run_ok(&self, args: &[&str], portable: bool) {
        let mut cmd = self.command();
        if portable {
            cmd.env("FSHM_PORTABLE_FILE", "1");
        } else {
            cmd.env_remove("FSHM_PORTABLE_FILE");
        }
        let out = cmd.args(args).output().expect("run the C program");
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if line.starts_with("skipped:") {
                // Straight to stderr: the harness would keep an `eprintln!` of a
                // passing test to itself.
                let _ = writeln!(std::io::stderr(), "{}: {line}", self.exe.display());
            }
        }
        self.check(&out);
    }

    fn check(&self, out: &Output) {
        assert!(
            out.status.success(),
            "{} ({:?}) failed with {}; build kept in {}\n{}",
            self.exe.display(),
            self.link,
            out.status,
            self.dir.display(),
            show(out)
        );
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn show(out: &Output) -> String {
    format!(
        "--- stdout ---\n{}--- stderr ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Builds `source` with `link` and runs it (in the portable `FILE` mode if `portable`).
fn run_c_test(source: &str, link: Link, portable: bool) {
    if let (Some(library), Ok(cc)) = (loop_library(source), std::env::var("FSHM_TEST_CC")) {
        let _ = writeln!(
            std::io::stderr(),
            "skipped {source}: {library} is installed for the host compiler only, not {cc}"
        );
        return;
    }
    let tag = if portable { "-portable" } else { "" };
    Program::build_as(source, link, tag).run_ok(&[], portable);
}

/// One test per C program and linkage.
macro_rules! c_tests {
    ($($module:ident => $source:literal,)*) => {
        /// Every `c/tests/test_*` program is listed here.
        const LISTED: &[&str] = &[$($source),*];
        $(
            mod $module {
                #[test]
                fn shared() {
                    super::run_c_test($source, super::Link::Shared, false);
                }
                #[test]
                fn static_lib() {
                    super::run_c_test($source, super::Link::Static, false);
                }
                #[test]
                fn portable_file() {
                    super::run_c_test($source, super::Link::Shared, true);
                }
            }
        )*
    };
}

c_tests! {
    errors_change_nothing => "test_errors.c",
    fileno_is_the_real_fd => "test_fd.c",
    owner_and_guests_in_other_processes => "test_fork.c",
    block_follows_until_owner_ends => "test_block.c",
    appenders_in_three_processes => "test_append.c",
    reclaim_takes_only_dead_owners_streams => "test_reclaim.c",
    modes_as_an_unprivileged_guest => "test_modes.c",
    header_is_cxx_clean => "test_cxx.cpp",
    cxx_wrapper_over_real_streams => "test_hpp.cpp",
    open_ex_options_and_ring_overruns => "test_options.c",
    reads_in_place_agree_with_a_plain_file => "test_inplace.c",
    hierarchical_names => "test_names.c",
    callback_errors_report_what_was_committed => "test_callback_errors.c",
    zero_copy_reads_and_writes => "test_zerocopy.c",
    epoll_follows_streams_to_their_owners_death => "test_loop_epoll.c",
    libuv_follows_streams_to_their_owners_death => "test_loop_uv.c",
    glib_follows_streams_to_their_owners_death => "test_loop_glib.c",
    fshm_poll_follows_streams_to_their_owners_death => "test_loop_poll.c",
    what_is_not_a_stream_is_refused_at_once => "test_not_a_stream.c",
}

/// A stream name unique to this test process and `tag`.
fn stream_name(tag: &str, link: Link) -> String {
    format!("/fshm-ct-rs-{tag}-{link:?}-{}", std::process::id())
}

/// A Rust owner writes; the C guest reads, checks, and appends a reply; the owner reads
/// the reply, and its drop removes the name.
fn rust_owner_c_guest(link: Link) {
    let peer = Program::build("peer_guest.c", link);
    let name = stream_name("rust-owner", link);
    let mut owner = fshm::Stream::create(&name).expect("create");
    owner.write_all(b"hello from rust\n").expect("write");
    peer.run_ok(&[&name], false);
    let mut reply = String::new();
    owner.read_to_string(&mut reply).expect("read the reply");
    assert_eq!(reply, "reply from c\n");
    assert_eq!(owner.len(), 29);
    drop(owner);
    let gone = fshm::Stream::open(&name).expect_err("the owner's drop removes the name");
    assert_eq!(gone.kind(), std::io::ErrorKind::NotFound);
}

/// The C owner creates and writes, says "ready"; the Rust guest reads, checks and
/// replies; the owner checks the reply and its fclose removes the name.
fn c_owner_rust_guest(link: Link) {
    let peer = Program::build("peer_owner.c", link);
    let name = stream_name("c-owner", link);
    let mut child = peer
        .command()
        .arg(&name)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the C owner");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout
        .read_line(&mut line)
        .expect("read the owner's stdout");
    if line != "ready\n" {
        // Show what the owner said before it failed.
        drop(child.stdin.take());
        let mut rest = String::new();
        let _ = stdout.read_to_string(&mut rest);
        let out = child.wait_with_output().expect("wait for the C owner");
        panic!("C owner did not get ready: {line}{rest}\n{}", show(&out));
    }
    {
        let mut guest = fshm::Stream::open(&name).expect("guest open");
        assert_eq!(guest.owner_state(), fshm::OwnerState::Alive);
        let mut hello = String::new();
        guest.read_to_string(&mut hello).expect("read");
        assert_eq!(hello, "hello from c\n");
        guest.write_all(b"reply from rust\n").expect("reply");
    }
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"go\n")
        .expect("tell the owner to go on");
    let mut out = child.wait_with_output().expect("wait for the C owner");
    let mut first = line.into_bytes();
    first.extend_from_slice(&out.stdout);
    let _ = stdout.read_to_end(&mut first);
    out.stdout = first;
    peer.check(&out);
    let gone = fshm::Stream::open(&name).expect_err("the owner's fclose removes the name");
    assert_eq!(gone.kind(), std::io::ErrorKind::NotFound);
}

#[test]
fn rust_owner_c_guest_shared() {
    rust_owner_c_guest(Link::Shared);
}

#[test]
fn rust_owner_c_guest_static() {
    rust_owner_c_guest(Link::Static);
}

#[test]
fn c_owner_rust_guest_shared() {
    c_owner_rust_guest(Link::Shared);
}

#[test]
fn c_owner_rust_guest_static() {
    c_owner_rust_guest(Link::Static);
}

#[test]
fn every_c_test_is_listed() {
    let dir = repo_root().join("c/tests");
    let mut found: Vec<String> = std::fs::read_dir(&dir)
        .expect("read c/tests")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("test_") && (n.ends_with(".c") || n.ends_with(".cpp")))
        .collect();
    found.sort();
    let mut listed: Vec<String> = LISTED.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(
        found, listed,
        "c_tests! must list every c/tests/test_* program"
    );
}
