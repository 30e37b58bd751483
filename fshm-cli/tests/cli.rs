//! End-to-end tests of the `fshm` binary: each test runs the real executable with
//! `std::process::Command` and checks its stdout, stderr and exit code against streams
//! (and foreign shared-memory objects) that the test itself makes and removes.
//!
//! Every name is unique to the test (`/fshm-cli-{pid}-{counter}`) and held by a [`Shm`]
//! guard that force-destroys it on drop, so nothing is left in /dev/shm even when an
//! assertion fails. Child processes are held by guards that kill and reap them.
//! Synchronisation is by pipes (`read_line` on a child's stdout, a pipe from a forked
//! child) or by bounded polling of observable state; never by sleeping.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Longest time any single wait in these tests may take before the test fails.
const TIMEOUT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// A name for this test alone.
fn unique_name() -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    format!(
        "/fshm-cli-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A name that this test owns: force-destroyed (whatever it is) when dropped.
struct Shm(String);

impl Shm {
    fn new() -> Shm {
        Shm(unique_name())
    }
    fn name(&self) -> &str {
        &self.0
    }
    /// A name under this test's own first component: `/fshm-cli-{pid}-{n}{suffix}`.
    fn with_suffix(base: &str, suffix: &str) -> Shm {
        Shm(format!("{base}{suffix}"))
    }
    /// Whether the stream's shm object is in /dev/shm.
    fn exists(&self) -> bool {
        let object = fshm::object_name(&self.0).expect("a valid name");
        Path::new(&format!("/dev/shm{object}")).exists()
    }
}

impl Drop for Shm {
    fn drop(&mut self) {
        let _ = fshm::force_destroy(&self.0);
    }
}

/// Makes a shared-memory object that is not an fshm stream: 8 KiB of junk.
fn make_foreign(name: &str) {
    let c = std::ffi::CString::new(name).unwrap();
    // SAFETY: `c` is a valid NUL-terminated string; the flags and mode are plain ints.
    let fd = unsafe {
        libc::shm_open(
            c.as_ptr(),
            libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
            0o600,
        )
    };
    assert!(fd >= 0, "shm_open {name}: {}", io::Error::last_os_error());
    // SAFETY: `fd` was just returned by shm_open and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: `fd` is an open shm descriptor.
    let r = unsafe { libc::ftruncate(fd.as_raw_fd(), 8192) };
    assert_eq!(r, 0, "ftruncate: {}", io::Error::last_os_error());
    let mut f = std::fs::File::from(fd);
    let junk: Vec<u8> = (0..4096u32).map(|i| (i * 7 + 3) as u8).collect();
    f.write_all(&junk).unwrap();
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fshm"))
}

/// Runs `fshm ARGS` with no input and waits (bounded) for it.
fn fshm(args: &[&str]) -> Output {
    fshm_with_input(args, b"")
}

/// Runs `fshm ARGS` with `input` on its stdin, then closes stdin; waits (bounded).
fn fshm_with_input(args: &[&str], input: &[u8]) -> Output {
    let child = bin()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn fshm");
    let mut child = ChildGuard::new(child);
    let mut stdin = child.child().stdin.take().unwrap();
    let input = input.to_vec();
    let feeder = thread::spawn(move || {
        // The command may exit before reading everything (errors): ignore EPIPE.
        let _ = stdin.write_all(&input);
    });
    let out_reader = reader_thread(child.child().stdout.take().unwrap());
    let err_reader = reader_thread(child.child().stderr.take().unwrap());
    let status = child.wait_bounded();
    feeder.join().unwrap();
    Output {
        status,
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    }
}

fn reader_thread<R: Read + Send + 'static>(mut r: R) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut v = Vec::new();
        r.read_to_end(&mut v).unwrap();
        v
    })
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Asserts success and returns stdout as text.
fn ok_stdout(args: &[&str]) -> String {
    let o = fshm(args);
    assert!(
        o.status.success(),
        "fshm {args:?} failed: {:?}\nstderr: {}",
        o.status,
        text(&o.stderr)
    );
    assert_eq!(text(&o.stderr), "", "fshm {args:?} wrote to stderr");
    text(&o.stdout)
}

/// Asserts exit code `code`, nothing on stdout, and returns stderr.
fn fails(args: &[&str], code: i32) -> String {
    let o = fshm(args);
    assert_eq!(
        o.status.code(),
        Some(code),
        "fshm {args:?}: stdout {:?} stderr {:?}",
        text(&o.stdout),
        text(&o.stderr)
    );
    assert_eq!(text(&o.stdout), "", "fshm {args:?} printed to stdout");
    text(&o.stderr)
}

/// A child process that is killed and reaped when dropped, unless already reaped.
struct ChildGuard(Option<Child>);

impl ChildGuard {
    fn new(c: Child) -> ChildGuard {
        ChildGuard(Some(c))
    }
    fn child(&mut self) -> &mut Child {
        self.0.as_mut().unwrap()
    }
    /// Waits for the child to exit by itself within [`TIMEOUT`]; panics (after killing
    /// it) if it does not.
    fn wait_bounded(&mut self) -> ExitStatus {
        let deadline = Instant::now() + TIMEOUT;
        let child = self.0.as_mut().unwrap();
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                self.0 = None;
                return st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                self.0 = None;
                panic!("child did not exit within {TIMEOUT:?}");
            }
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Reads a child's stdout line by line on a thread; lines (or EOF, as an empty string)
/// arrive on a channel, received with a deadline.
struct Lines(mpsc::Receiver<String>);

impl Lines {
    fn new(out: ChildStdout) -> Lines {
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut r = BufReader::new(out);
            loop {
                let mut line = String::new();
                let n = r.read_line(&mut line).unwrap_or(0);
                if tx.send(line).is_err() || n == 0 {
                    return;
                }
            }
        });
        Lines(rx)
    }
    /// The next line, with its newline; `""` at EOF.
    fn next(&self) -> String {
        self.0
            .recv_timeout(TIMEOUT)
            .expect("no line from the child within the timeout")
    }
}

/// The first column of each row of `fshm ls` output (the header excluded).
fn ls_names(out: &str) -> Vec<&str> {
    out.lines()
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap())
        .collect()
}

/// Polls `f` until it returns `Some`, or panics at the deadline with `what`.
fn poll<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(2));
    }
}

fn create(name: &str, mode: u32, data: &[u8]) -> fshm::Stream {
    let mut s = fshm::OpenOptions::new()
        .mode(mode)
        .max_size(1 << 20)
        .create(name)
        .unwrap();
    s.write_all(data).unwrap();
    s
}

/// A persistent stream holding `data`, whose owner has closed it.
fn create_closed(name: &str, data: &[u8]) {
    let mut s = fshm::OpenOptions::new().persist(true).create(name).unwrap();
    s.write_all(data).unwrap();
}

fn parse_json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("invalid JSON ({e}): {s}"))
}

// ---------------------------------------------------------------------------------------
// ls
// ---------------------------------------------------------------------------------------

#[test]
fn ls_lists_streams_but_not_foreign_objects() {
    let shm = Shm::new();
    let foreign = Shm::new();
    let _owner = create(shm.name(), 0o640, b"hello world\n");
    make_foreign(foreign.name());

    let out = ok_stdout(&["ls", "-b"]);
    let mut lines = out.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "LENGTH", "MAX", "MODE", "OWNER", "PERSIST", "RING"]
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    let ours: Vec<&Vec<&str>> = rows.iter().filter(|r| r[0] == shm.name()).collect();
    assert_eq!(ours.len(), 1, "stream not listed exactly once:\n{out}");
    assert_eq!(
        *ours[0],
        [shm.name(), "12", "1048576", "0640", "alive", "no", "-"],
        "{out}"
    );
    assert!(
        rows.iter().all(|r| r[0] != foreign.name()),
        "foreign object listed:\n{out}"
    );
    // Without -b, sizes are for people.
    let out = ok_stdout(&["ls", shm.name()]);
    let row: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        row,
        [shm.name(), "12", "1.0M", "0640", "alive", "no", "-"],
        "{out}"
    );
    assert_eq!(out.lines().count(), 2, "{out}");

    let json = parse_json(&ok_stdout(&["ls", "--json"]));
    let items = json.as_array().expect("ls --json is an array");
    for it in items {
        assert!(it.is_object(), "{it}");
        assert!(it["name"].is_string(), "{it}");
    }
    let ours: Vec<&serde_json::Value> = items.iter().filter(|i| i["name"] == shm.name()).collect();
    assert_eq!(ours.len(), 1, "{json}");
    let it = ours[0];
    assert_eq!(it["len"], 12);
    assert_eq!(it["max_size"], 1 << 20);
    assert_eq!(it["mode"], "0640");
    assert_eq!(it["owner"], "alive");
    assert_eq!(it["persistent"], false);
    assert_eq!(it["ring_capacity"], serde_json::Value::Null);
    assert_eq!(it["lossless"], false);
    assert!(
        items.iter().all(|i| i["name"] != foreign.name()),
        "foreign object in JSON: {json}"
    );
    assert!(foreign.exists(), "ls must not touch a foreign object");
}

#[test]
fn ls_shows_closed_persistent_stream() {
    let shm = Shm::new();
    create_closed(shm.name(), b"abc");
    let json = parse_json(&ok_stdout(&["ls", "--json"]));
    let it = json
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == shm.name())
        .unwrap_or_else(|| panic!("not listed: {json}"))
        .clone();
    assert_eq!(it["owner"], "closed");
    assert_eq!(it["persistent"], true);
    assert_eq!(it["len"], 3);
    assert_eq!(it["mode"], "0600");
}

// ---------------------------------------------------------------------------------------
// stat
// ---------------------------------------------------------------------------------------

#[test]
fn stat_text_and_json() {
    let shm = Shm::new();
    let _owner = create(shm.name(), 0o640, b"0123456789");

    let out = ok_stdout(&["stat", "--bytes", shm.name()]);
    let fields: Vec<(&str, &str)> = out
        .lines()
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap_or_else(|| panic!("line {l:?}"));
            (k, v.trim())
        })
        .collect();
    let get = |k: &str| {
        fields
            .iter()
            .find(|(key, _)| *key == k)
            .unwrap_or_else(|| panic!("no {k:?} in:\n{out}"))
            .1
    };
    assert_eq!(get("name"), shm.name());
    assert_eq!(get("length"), "10");
    assert_eq!(get("max size"), "1048576");
    assert_eq!(get("mode"), "0640");
    assert_eq!(get("owner"), "alive");
    assert_eq!(get("persistent"), "no");
    assert_eq!(get("immutable"), "no");
    assert_eq!(get("ring"), "-");
    // SAFETY: getuid and getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    assert_eq!(get("uid/gid"), format!("{uid}/{gid}"));
    let memory: u64 = get("memory").parse().unwrap();
    assert!(memory >= 4096 + 10, "memory {memory}");
    let human = ok_stdout(&["stat", shm.name()]);
    assert!(human.lines().any(|l| l == "max size:    1.0M"), "{human}");
    assert!(human.lines().any(|l| l == "length:      10"), "{human}");

    let json = parse_json(&ok_stdout(&["stat", shm.name(), "--json"]));
    assert_eq!(json["name"], shm.name());
    assert_eq!(json["len"], 10);
    assert_eq!(json["max_size"], 1 << 20);
    assert_eq!(json["mode"], "0640");
    assert_eq!(json["owner"], "alive");
    assert_eq!(json["persistent"], false);
    assert_eq!(json["immutable"], false);
    assert_eq!(json["uid"], uid);
    assert_eq!(json["gid"], gid);
    assert_eq!(json["ring_capacity"], serde_json::Value::Null);
    assert_eq!(json["object_size"], memory);

    // The name without its leading slash works too.
    let json2 = parse_json(&ok_stdout(&["stat", &shm.name()[1..], "--json"]));
    assert_eq!(json2["name"], shm.name());
}

#[test]
fn stat_missing_name_fails_naming_it() {
    let shm = Shm::new();
    let err = fails(&["stat", shm.name()], 1);
    assert!(err.starts_with("fshm: "), "{err}");
    assert!(err.contains(shm.name()), "{err}");
    let err = fails(&["stat", shm.name(), "--json"], 1);
    assert!(err.contains(shm.name()), "{err}");
    assert!(!shm.exists());
}

#[test]
fn stat_foreign_object_is_not_an_fshm_stream() {
    let foreign = Shm::new();
    make_foreign(foreign.name());
    let err = fails(&["stat", foreign.name()], 1);
    assert!(err.starts_with("fshm: "), "{err}");
    assert!(err.contains("not an fshm stream"), "{err}");
    assert!(err.contains(foreign.name()), "{err}");
    assert!(foreign.exists());
}

#[test]
fn bad_names_are_usage_errors() {
    for args in [
        &["stat", "/a//b"][..],
        &["cat", ""],
        &["tail", "a/../b"],
        &["write", "/a/", "--create"],
        &["rm", "/."],
    ] {
        let err = fails(args, 2);
        assert!(err.starts_with("fshm: "), "{args:?}: {err}");
        assert!(err.contains("stream name"), "{args:?}: {err}");
        assert!(!err.contains("os error"), "{args:?}: {err}");
    }
    // Nothing is removed when one of several names is bad.
    let shm = Shm::new();
    create_closed(shm.name(), b"kept");
    let err = fails(&["rm", shm.name(), "/x//y"], 2);
    assert!(err.contains("x//y"), "{err}");
    assert!(shm.exists(), "rm removed a stream despite a bad name");
}

// ---------------------------------------------------------------------------------------
// cat
// ---------------------------------------------------------------------------------------

#[test]
fn cat_prints_committed_bytes_exactly() {
    let shm = Shm::new();
    let mut data: Vec<u8> = (0..=255u8).collect();
    data.extend_from_slice(b"\0\0\xff\xfe not utf-8 \xc3\x28 \n\r\n");
    data.extend((0..100_000u32).map(|i| (i % 251) as u8));
    let _owner = create(shm.name(), 0o600, &data);
    let o = fshm(&["cat", shm.name()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(o.stdout.len(), data.len());
    assert!(
        o.stdout == data,
        "cat output differs from the stream's bytes"
    );
    assert!(o.stderr.is_empty());
}

#[test]
fn cat_of_empty_stream_and_missing_name() {
    let shm = Shm::new();
    let _owner = create(shm.name(), 0o600, b"");
    assert_eq!(ok_stdout(&["cat", shm.name()]), "");
    let missing = Shm::new();
    let err = fails(&["cat", missing.name()], 1);
    assert!(err.contains(missing.name()), "{err}");
    let foreign = Shm::new();
    make_foreign(foreign.name());
    let err = fails(&["cat", foreign.name()], 1);
    assert!(err.contains("not an fshm stream"), "{err}");
}

#[test]
fn cat_of_lapped_ring_prints_only_held_bytes() {
    let shm = Shm::new();
    let mut owner = fshm::OpenOptions::new()
        .ring(4096, fshm::RingPolicy::Lossy)
        .create(shm.name())
        .unwrap();
    let data: Vec<u8> = (0..1000)
        .flat_map(|i| format!("line {i:04}\n").into_bytes())
        .collect();
    assert_eq!(data.len(), 10_000);
    for chunk in data.chunks(1000) {
        owner.write_all(chunk).unwrap();
    }
    let o = fshm(&["cat", shm.name()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), text(&data[10_000 - 4096..]));
}

// ---------------------------------------------------------------------------------------
// tail
// ---------------------------------------------------------------------------------------

fn tail_of(data: &[u8], args: &[&str]) -> String {
    let shm = Shm::new();
    let _owner = create(shm.name(), 0o600, data);
    let mut a = vec!["tail"];
    a.extend_from_slice(args);
    a.push(shm.name());
    ok_stdout(&a)
}

#[test]
fn tail_prints_last_lines() {
    assert_eq!(tail_of(b"1\n2\n3\n4\n5\n", &["-n", "3"]), "3\n4\n5\n");
    assert_eq!(tail_of(b"1\n2\n3\n4\n5", &["-n", "3"]), "3\n4\n5");
    assert_eq!(tail_of(b"1\n2\n3\n4\n5\n", &["--lines", "1"]), "5\n");
    assert_eq!(tail_of(b"a\nb\n", &["-n", "3"]), "a\nb\n");
    assert_eq!(tail_of(b"a\nb", &["-n", "3"]), "a\nb");
    assert_eq!(tail_of(b"a\nb\nc\n", &["-n", "3"]), "a\nb\nc\n");
    assert_eq!(tail_of(b"1\n2\n3\n", &["-n", "0"]), "");
    assert_eq!(tail_of(b"", &["-n", "3"]), "");
    assert_eq!(tail_of(b"\n\n\n\n", &["-n", "2"]), "\n\n");
    assert_eq!(tail_of(b"no newline", &["-n", "3"]), "no newline");
    // Default: 10 lines.
    let many: String = (1..=20).map(|i| format!("{i}\n")).collect();
    let last10: String = (11..=20).map(|i| format!("{i}\n")).collect();
    assert_eq!(tail_of(many.as_bytes(), &[]), last10);
}

#[test]
fn tail_scans_back_across_large_lines() {
    // The last lines start far more than one read buffer (64 KiB) back.
    let mut data = vec![b'x'; 300_000];
    data.push(b'\n');
    data.extend_from_slice(b"y\n");
    data.extend(vec![b'z'; 100_000]);
    let out = tail_of(&data, &["-n", "3"]);
    assert!(
        out.as_bytes() == &data[..],
        "tail -n 3 of 3 lines must print all"
    );
    let out = tail_of(&data, &["-n", "2"]);
    assert!(out.as_bytes() == &data[300_001..], "last two lines");
    let out = tail_of(&data, &["-n", "1"]);
    assert!(out.as_bytes() == &data[300_003..], "last line only");
    // With a final newline, and the line before it longer than one read buffer.
    let mut nl = vec![b'a'; 100_000];
    nl.push(b'\n');
    nl.extend(vec![b'b'; 70_000]);
    nl.push(b'\n');
    let out = tail_of(&nl, &["-n", "1"]);
    assert!(
        out.as_bytes() == &nl[100_001..],
        "last terminated line only"
    );
    let out = tail_of(&nl, &["-n", "2"]);
    assert!(out.as_bytes() == &nl[..]);
    let mut prefixed = b"first\n".to_vec();
    prefixed.extend_from_slice(&data);
    let out = tail_of(&prefixed, &["-n", "3"]);
    assert!(out.as_bytes() == &data[..]);
}

#[test]
fn tail_of_lapped_ring_prints_only_held_bytes() {
    let shm = Shm::new();
    let mut owner = fshm::OpenOptions::new()
        .ring(4096, fshm::RingPolicy::Lossy)
        .create(shm.name())
        .unwrap();
    let data: Vec<u8> = (0..1000)
        .flat_map(|i| format!("line {i:04}\n").into_bytes())
        .collect();
    for chunk in data.chunks(1000) {
        owner.write_all(chunk).unwrap();
    }
    assert_eq!(owner.oldest(), 10_000 - 4096);
    // More lines asked for than held: everything held, from mid-line.
    let all = ok_stdout(&["tail", "-n", "1000", shm.name()]);
    assert_eq!(all, text(&data[10_000 - 4096..]));
    assert!(all.starts_with(" 0590\n"), "{:?}", &all[..10]);
    assert_eq!(
        ok_stdout(&["tail", "-n", "3", shm.name()]),
        "line 0997\nline 0998\nline 0999\n"
    );
}

#[test]
fn tail_missing_name_fails() {
    let shm = Shm::new();
    let err = fails(&["tail", shm.name()], 1);
    assert!(err.contains(shm.name()), "{err}");
    let err = fails(&["tail", "-f", shm.name()], 1);
    assert!(err.contains(shm.name()), "{err}");
}

#[test]
fn tail_follow_prints_lines_as_they_arrive_and_ends_with_owner() {
    let shm = Shm::new();
    let mut owner = create(shm.name(), 0o600, b"old 1\nold 2\nold 3\n");
    let child = bin()
        .args(["tail", "-f", "-n", "2", shm.name()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = ChildGuard::new(child);
    let lines = Lines::new(child.child().stdout.take().unwrap());
    let err = reader_thread(child.child().stderr.take().unwrap());

    assert_eq!(lines.next(), "old 2\n");
    assert_eq!(lines.next(), "old 3\n");
    for i in 0..20 {
        // Each line must reach the follower while the owner still holds the stream.
        writeln!(owner, "live {i}").unwrap();
        assert_eq!(lines.next(), format!("live {i}\n"));
    }
    owner.write_all(b"two\nat once\n").unwrap();
    assert_eq!(lines.next(), "two\n");
    assert_eq!(lines.next(), "at once\n");
    owner.write_all(b"unterminated").unwrap();
    drop(owner);
    assert_eq!(lines.next(), "unterminated");
    assert_eq!(lines.next(), "", "EOF after the owner closed");
    let st = child.wait_bounded();
    assert!(st.success(), "tail -f exit: {st:?}");
    assert_eq!(text(&err.join().unwrap()), "");
    assert!(!shm.exists());
}

#[test]
fn tail_follow_ends_when_owner_dies() {
    let shm = Shm::new();
    let owner = ForkedOwner::spawn(shm.name(), false);
    let child = bin()
        .args(["tail", "-f", shm.name()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = ChildGuard::new(child);
    let lines = Lines::new(child.child().stdout.take().unwrap());
    // The forked owner wrote "ready\n" after creating the stream.
    assert_eq!(lines.next(), "ready\n");
    owner.kill();
    assert_eq!(lines.next(), "", "EOF after the owner died");
    let st = child.wait_bounded();
    assert!(st.success(), "tail -f exit: {st:?}");
}

#[test]
fn tail_follow_reports_overrun_on_lapped_lossy_ring() {
    let shm = Shm::new();
    let cap = 4096usize;
    let mut owner = fshm::OpenOptions::new()
        .ring(cap as u64, fshm::RingPolicy::Lossy)
        .create(shm.name())
        .unwrap();
    let mut data = b"ready\n".to_vec();
    owner.write_all(&data).unwrap();
    let child = bin()
        .args(["tail", "-f", shm.name()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = ChildGuard::new(child);
    let pid = child.child().id() as libc::pid_t;
    let watchdog = Watchdog::new(pid as u32);
    let mut out = BufReader::new(child.child().stdout.take().unwrap());
    let err = reader_thread(child.child().stderr.take().unwrap());
    // Once "ready" arrives the follower has read everything and waits at position 6.
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    assert_eq!(first, "ready\n");
    // Stall it: stop it and wait until the kernel reports it stopped.
    // SAFETY: `pid` is our unreaped child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    // SAFETY: an all-zero siginfo_t is a valid out-buffer.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waiting (without reaping: WNOWAIT) for our own child to stop.
    let r = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WSTOPPED | libc::WNOWAIT,
        )
    };
    assert_eq!(r, 0, "waitid: {}", io::Error::last_os_error());
    // Lap the stalled follower many times over, then end the stream and let it go on.
    let body: Vec<u8> = (0..20_000u32)
        .flat_map(|i| format!("line {i:08}\n").into_bytes())
        .collect();
    for chunk in body.chunks(1000) {
        owner.write_all(chunk).unwrap();
    }
    data.extend_from_slice(&body);
    drop(owner);
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    let mut rest = Vec::new();
    out.read_to_end(&mut rest).unwrap();
    drop(watchdog);
    let st = child.wait_bounded();
    assert!(st.success(), "tail -f exit: {st:?}");
    let err = text(&err.join().unwrap());

    // One overrun from position 6 to the oldest byte held, then exactly the held bytes.
    let total = data.len();
    let lost = total - cap - first.len();
    assert_eq!(
        err,
        format!("fshm: {}: reader overrun, {lost} bytes lost\n", shm.name()),
    );
    assert_eq!(rest.len(), cap, "{}", text(&rest));
    assert!(
        rest[..] == data[total - cap..],
        "bytes after the overrun are not the ring's last {cap}"
    );
}

/// Kills a process if not cancelled (dropped) within [`TIMEOUT`], so that a blocking
/// read on its pipe cannot hang the test.
struct Watchdog(Option<mpsc::Sender<()>>, Option<thread::JoinHandle<()>>);

impl Watchdog {
    fn new(pid: u32) -> Watchdog {
        let (tx, rx) = mpsc::channel::<()>();
        let h = thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(TIMEOUT) {
                // SAFETY: plain syscall; the child is not reaped before the watchdog
                // is dropped (joined), so the pid still names it.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            }
        });
        Watchdog(Some(tx), Some(h))
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.0.take());
        if let Some(h) = self.1.take() {
            let _ = h.join();
        }
    }
}

// ---------------------------------------------------------------------------------------
// write
// ---------------------------------------------------------------------------------------

#[test]
fn write_create_lives_while_stdin_is_open() {
    let shm = Shm::new();
    let child = bin()
        .args(["write", shm.name(), "--create", "--mode", "640"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = ChildGuard::new(child);
    let mut stdin = child.child().stdin.take().unwrap();
    let out = reader_thread(child.child().stdout.take().unwrap());
    let err = reader_thread(child.child().stderr.take().unwrap());

    stdin.write_all(b"first line\n").unwrap();
    stdin.flush().unwrap();
    let info = poll("the first line to be committed", || {
        fshm::inspect(shm.name()).ok().filter(|i| i.len == 11)
    });
    assert_eq!(info.mode, 0o640);
    assert_eq!(info.owner, fshm::OwnerState::Alive);
    assert!(!info.persistent);
    assert_eq!(info.ring_capacity, None);

    let mut guest = fshm::OpenOptions::new()
        .read_only(true)
        .open(shm.name())
        .unwrap();
    let mut buf = [0u8; 64];
    let n = guest.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"first line\n");

    stdin.write_all(b"second\n").unwrap();
    stdin.flush().unwrap();
    poll("the second line to be committed", || {
        (guest.len() == 18).then_some(())
    });
    let mut rest = String::new();
    guest.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "second\n");
    let json = parse_json(&ok_stdout(&["stat", shm.name(), "--json"]));
    assert_eq!(json["owner"], "alive");
    assert_eq!(json["len"], 18);
    assert!(shm.exists(), "stream gone while the writer runs");

    drop(stdin);
    let st = child.wait_bounded();
    assert!(
        st.success(),
        "write exit {st:?}: {}",
        text(&err.join().unwrap())
    );
    assert!(!shm.exists(), "the name outlived its non-persistent owner");
    assert_eq!(text(&out.join().unwrap()), "");
    // The guest still reads what it had.
    assert_eq!(guest.len(), 18);
}

#[test]
fn write_create_persist_keeps_the_name() {
    let shm = Shm::new();
    let o = fshm_with_input(
        &[
            "write",
            shm.name(),
            "--create",
            "--persist",
            "--mode",
            "0604",
        ],
        b"kept\nbytes\n",
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(o.stdout.is_empty() && o.stderr.is_empty());
    assert!(shm.exists());
    let info = fshm::inspect(shm.name()).unwrap();
    assert!(info.persistent);
    assert_eq!(info.owner, fshm::OwnerState::Closed);
    assert_eq!(info.mode, 0o604);
    assert_eq!(info.len, 11);
    assert_eq!(ok_stdout(&["cat", shm.name()]), "kept\nbytes\n");
}

#[test]
fn write_create_immutable_makes_an_immutable_stream_that_stat_and_ls_show() {
    let shm = Shm::new();
    let o = fshm_with_input(
        &["write", shm.name(), "--create", "--immutable", "--persist"],
        b"first\n",
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let info = fshm::inspect(shm.name()).unwrap();
    assert!(info.immutable);
    assert_eq!(info.len, 6);
    // Guests append to it; committed bytes are never rewritten.
    let o = fshm_with_input(&["write", shm.name()], b"second\n");
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(ok_stdout(&["cat", shm.name()]), "first\nsecond\n");
    let stat = ok_stdout(&["stat", shm.name()]);
    assert!(stat.lines().any(|l| l == "immutable:   yes"), "{stat}");
    let json = parse_json(&ok_stdout(&["stat", shm.name(), "--json"]));
    assert_eq!(json["immutable"], true);
    let ls = parse_json(&ok_stdout(&["ls", "--json"]));
    let it = ls
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == shm.name())
        .unwrap_or_else(|| panic!("{} not listed", shm.name()));
    assert_eq!(it["immutable"], true);
    // A mutable stream says so too.
    let other = Shm::new();
    let _owner = create(other.name(), 0o600, b"x");
    let json = parse_json(&ok_stdout(&["ls", "--json"]));
    let it = json
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == other.name())
        .unwrap();
    assert_eq!(it["immutable"], false);
}

#[test]
fn write_immutable_needs_create_and_no_ring() {
    let shm = Shm::new();
    for args in [
        &["write", shm.name(), "--immutable"][..],
        &[
            "write",
            shm.name(),
            "--create",
            "--immutable",
            "--ring",
            "4096",
        ][..],
    ] {
        let o = fshm_with_input(args, b"x\n");
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o.stderr));
        assert!(!shm.exists(), "{args:?} created the stream");
    }
}

#[test]
fn write_create_binary_and_large_input() {
    let shm = Shm::new();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 31 % 256) as u8).collect();
    let o = fshm_with_input(&["write", shm.name(), "--create", "--persist"], &data);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let c = fshm(&["cat", shm.name()]);
    assert!(c.status.success());
    assert!(c.stdout == data, "round trip through write and cat differs");
    let info = fshm::inspect(shm.name()).unwrap();
    assert_eq!(info.mode, 0o600, "default mode");
}

#[test]
fn write_create_over_existing_name_fails() {
    let shm = Shm::new();
    let _owner = create(shm.name(), 0o600, b"mine\n");
    let o = fshm_with_input(&["write", shm.name(), "--create"], b"theirs\n");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains(shm.name()));
    assert_eq!(ok_stdout(&["cat", shm.name()]), "mine\n");
}

#[test]
fn write_without_create_appends_as_guest() {
    let shm = Shm::new();
    let owner = create(shm.name(), 0o600, b"owner\n");
    let o = fshm_with_input(&["write", shm.name()], b"guest 1\n");
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = fshm_with_input(&["write", &shm.name()[1..]], b"guest 2\n");
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(owner.len(), 22);
    assert_eq!(ok_stdout(&["cat", shm.name()]), "owner\nguest 1\nguest 2\n");
    // A guest never removes the name, and the owner is still alive.
    let info = fshm::inspect(shm.name()).unwrap();
    assert_eq!(info.owner, fshm::OwnerState::Alive);
}

#[test]
fn write_without_create_to_missing_or_foreign_fails() {
    let shm = Shm::new();
    let o = fshm_with_input(&["write", shm.name()], b"x\n");
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains(shm.name()), "{}", text(&o.stderr));
    assert!(!shm.exists(), "write without --create created the name");

    let foreign = Shm::new();
    make_foreign(foreign.name());
    let o = fshm_with_input(&["write", foreign.name()], b"x\n");
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("not an fshm stream"));
}

#[test]
fn write_max_size_is_enforced() {
    let shm = Shm::new();
    let o = fshm_with_input(
        &[
            "write",
            shm.name(),
            "--create",
            "--persist",
            "--max-size",
            "4096",
        ],
        &[b'a'; 5000],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(text(&o.stderr).starts_with("fshm: "));
}

#[test]
fn write_ring_creates_a_ring() {
    let shm = Shm::new();
    let data: Vec<u8> = (0..2000)
        .flat_map(|i| format!("r{i:05}\n").into_bytes())
        .collect();
    let o = fshm_with_input(
        &[
            "write",
            shm.name(),
            "--create",
            "--persist",
            "--ring",
            "8192",
        ],
        &data,
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = ok_stdout(&["stat", shm.name(), "-b"]);
    assert!(
        out.lines()
            .any(|l| l == "ring:        8192 lossy readers=0"),
        "{out}"
    );
    let out = ok_stdout(&["stat", shm.name()]);
    assert!(
        out.lines()
            .any(|l| l == "ring:        8.0K lossy readers=0"),
        "{out}"
    );
    let json = parse_json(&ok_stdout(&["stat", shm.name(), "--json"]));
    assert_eq!(json["ring_capacity"], 8192);
    assert_eq!(json["lossless"], false);
    assert_eq!(
        ok_stdout(&["cat", shm.name()]).as_bytes(),
        &data[data.len() - 8192..]
    );

    let lossless = Shm::new();
    let o = fshm_with_input(
        &[
            "write",
            lossless.name(),
            "--create",
            "--persist",
            "--ring",
            "8K",
            "--lossless",
        ],
        b"x\n",
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = ok_stdout(&["stat", lossless.name(), "-b"]);
    assert!(
        out.lines()
            .any(|l| l == "ring:        8192 lossless readers=0"),
        "{out}"
    );
}

/// `len` of a ring counts every byte ever committed (crate docs, "Ring streams"), so
/// `stat` of a lapped ring must show more than its capacity.
#[test]
fn stat_of_lapped_ring_shows_total_length() {
    let shm = Shm::new();
    let mut owner = fshm::OpenOptions::new()
        .ring(4096, fshm::RingPolicy::Lossy)
        .create(shm.name())
        .unwrap();
    owner.write_all(&[b'r'; 3000]).unwrap();
    owner.write_all(&[b's'; 3000]).unwrap();
    assert_eq!(owner.len(), 6000);
    let out = ok_stdout(&["stat", shm.name(), "-b"]);
    assert!(out.lines().any(|l| l == "length:      6000"), "{out}");
    let out = ok_stdout(&["stat", shm.name()]);
    assert!(out.lines().any(|l| l == "length:      5.9K"), "{out}");
    let json = parse_json(&ok_stdout(&["stat", shm.name(), "--json"]));
    assert_eq!(json["len"], 6000);
}

#[test]
fn write_bad_options() {
    let shm = Shm::new();
    let o = fshm_with_input(&["write", shm.name(), "--create", "--ring", "1000"], b"x\n");
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(err.starts_with("fshm: "), "{err}");
    assert!(err.contains("ring capacity"), "{err}");
    assert!(err.contains("page size"), "{err}");
    assert!(!shm.exists());

    // Options that only make sense with --create say so, with the usage status.
    for opts in [
        &["--ring", "8192"][..],
        &["--persist"],
        &["--mode", "640"],
        &["--max-size", "1M"],
    ] {
        let mut args = vec!["write", shm.name()];
        args.extend_from_slice(opts);
        let o = fshm_with_input(&args, b"x\n");
        assert_eq!(o.status.code(), Some(2), "{opts:?} without --create");
        assert!(text(&o.stderr).contains("--create"), "{}", text(&o.stderr));
        assert!(o.stdout.is_empty());
    }
    fails(&["write", shm.name(), "--create", "--max-size", "1.5M"], 2);
    fails(&["write", shm.name(), "--create", "--ring", "8Q"], 2);

    let err = fails(&["write", shm.name(), "--create", "--lossless"], 2);
    assert!(err.contains("--ring"), "{err}");
    let err = fails(&["write", shm.name(), "--create", "--mode", "999"], 2);
    assert!(err.contains("999"), "{err}");
    let err = fails(&["write", shm.name(), "--create", "--mode", "17777"], 2);
    assert!(err.contains("17777"), "{err}");
    fails(&["write", shm.name(), "--create", "--max-size", "lots"], 2);
    fails(&["write"], 2);
    fails(&["frobnicate"], 2);
    fails(&[], 2);
    assert!(!shm.exists());
}

// ---------------------------------------------------------------------------------------
// rm
// ---------------------------------------------------------------------------------------

#[test]
fn rm_removes_streams() {
    let a = Shm::new();
    let b = Shm::new();
    create_closed(a.name(), b"a");
    create_closed(b.name(), b"b");
    assert_eq!(ok_stdout(&["rm", a.name(), &b.name()[1..]]), "");
    assert!(!a.exists() && !b.exists());
    // A live owner's stream can be removed too; the owner keeps working.
    let c = Shm::new();
    let mut owner = create(c.name(), 0o600, b"c");
    assert_eq!(ok_stdout(&["rm", c.name()]), "");
    assert!(!c.exists());
    owner.write_all(b"still fine").unwrap();
}

#[test]
fn rm_refuses_foreign_objects_without_force() {
    let foreign = Shm::new();
    make_foreign(foreign.name());
    let err = fails(&["rm", foreign.name()], 1);
    assert!(err.contains("not an fshm stream"), "{err}");
    assert!(err.contains(foreign.name()), "{err}");
    assert!(foreign.exists(), "rm removed a foreign object");
    assert_eq!(ok_stdout(&["rm", "--force", foreign.name()]), "");
    assert!(!foreign.exists());
}

#[test]
fn rm_missing_fails_but_removes_the_rest() {
    let missing = Shm::new();
    let err = fails(&["rm", missing.name()], 1);
    assert!(err.contains(missing.name()), "{err}");
    let err = fails(&["rm", "--force", missing.name()], 1);
    assert!(err.contains(missing.name()), "{err}");

    let present = Shm::new();
    create_closed(present.name(), b"x");
    let err = fails(&["rm", missing.name(), present.name()], 1);
    assert!(err.contains(missing.name()), "{err}");
    assert!(
        !present.exists(),
        "the stream after a missing name was not removed"
    );

    fails(&["rm"], 2);
}

// ---------------------------------------------------------------------------------------
// gc
// ---------------------------------------------------------------------------------------

/// A forked child that creates a stream as its owner (writing "ready\n" to it), tells the
/// parent through a pipe, and blocks until killed. Killed and reaped on drop.
struct ForkedOwner {
    pid: libc::pid_t,
    reaped: bool,
}

impl ForkedOwner {
    fn spawn(name: &str, persist: bool) -> ForkedOwner {
        let mut fds = [0; 2];
        // SAFETY: `fds` is a valid array of two ints.
        let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
        assert_eq!(r, 0, "pipe2: {}", io::Error::last_os_error());
        let (rd, wr) = (fds[0], fds[1]);
        // Prepared before fork: the child only calls fshm and async-signal-safe libc.
        let mut opts = fshm::OpenOptions::new();
        opts.persist(persist);
        let name = name.to_owned();
        // SAFETY: fork has no preconditions; the child below never returns into the
        // test harness (it ends with _exit or is killed).
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
        if pid == 0 {
            // Child. Drop every inherited descriptor but the pipe's write end, so that
            // pipes of other tests' children see EOF on time and no lock is shared.
            for fd in 3..4096 {
                if fd != wr {
                    // SAFETY: closing descriptors this process will not use again.
                    unsafe { libc::close(fd) };
                }
            }
            // A panic must not unwind into the test harness's copy in this child.
            let status = std::panic::catch_unwind(|| match opts.create(&name) {
                Ok(mut s) => {
                    if s.write_all(b"ready\n").is_ok() {
                        // Keep the stream open past the point of being killed.
                        std::mem::forget(s);
                        b'R'
                    } else {
                        b'W'
                    }
                }
                Err(_) => b'E',
            })
            .unwrap_or(b'P');
            // SAFETY: writing one byte from a valid buffer to our pipe.
            unsafe { libc::write(wr, (&status as *const u8).cast(), 1) };
            if status != b'R' {
                // SAFETY: _exit ends the child without running the parent's destructors.
                unsafe { libc::_exit(1) };
            }
            loop {
                // SAFETY: pause just waits for a signal (SIGKILL from the parent).
                unsafe { libc::pause() };
            }
        }
        let owner = ForkedOwner { pid, reaped: false };
        // SAFETY: closing the parent's copy of the write end, which it does not use.
        unsafe { libc::close(wr) };
        // SAFETY: `rd` is ours to own from here on.
        let rd = unsafe { OwnedFd::from_raw_fd(rd) };
        let mut pfd = libc::pollfd {
            fd: rd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `pfd` is a valid pollfd array of length 1.
        let r = unsafe { libc::poll(&mut pfd, 1, TIMEOUT.as_millis() as libc::c_int) };
        assert_eq!(r, 1, "the forked owner did not answer in time");
        let mut byte = [0u8; 1];
        let n = std::fs::File::from(rd).read(&mut byte).unwrap();
        assert_eq!(
            (n, byte[0]),
            (1, b'R'),
            "the forked owner could not create {name}"
        );
        owner
    }

    /// SIGKILLs the owner and reaps it.
    fn kill(mut self) {
        self.kill_and_reap();
    }

    fn kill_and_reap(&mut self) {
        if self.reaped {
            return;
        }
        self.reaped = true;
        // SAFETY: `pid` is our unreaped child, so it cannot have been reused.
        let r = unsafe { libc::kill(self.pid, libc::SIGKILL) };
        assert_eq!(r, 0, "kill: {}", io::Error::last_os_error());
        let mut status = 0;
        // SAFETY: waiting for our own child with a valid out-pointer.
        let r = unsafe { libc::waitpid(self.pid, &mut status, 0) };
        assert_eq!(r, self.pid, "waitpid: {}", io::Error::last_os_error());
        assert!(libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL);
    }
}

impl Drop for ForkedOwner {
    fn drop(&mut self) {
        if !self.reaped {
            self.reaped = true;
            // SAFETY: as in `kill_and_reap`; errors are ignored while unwinding.
            unsafe {
                libc::kill(self.pid, libc::SIGKILL);
                libc::waitpid(self.pid, std::ptr::null_mut(), 0);
            }
        }
    }
}

#[test]
fn gc_removes_only_dead_non_persistent_streams() {
    // gc runs with this test's prefix: a plain `gc` would also collect the dead
    // streams of tests running beside it.
    let base = unique_name();
    let dead = Shm::with_suffix(&base, "-dead");
    let dead_persistent = Shm::with_suffix(&base, "-dead-persistent");
    let alive_forked = Shm::with_suffix(&base, "-alive-forked");
    let alive_here = Shm::with_suffix(&base, "-alive-here");
    let foreign = Shm::with_suffix(&base, "-foreign");

    ForkedOwner::spawn(dead.name(), false).kill();
    ForkedOwner::spawn(dead_persistent.name(), true).kill();
    let live_child = ForkedOwner::spawn(alive_forked.name(), false);
    let _live_here = create(alive_here.name(), 0o600, b"here\n");
    make_foreign(foreign.name());

    assert_eq!(
        fshm::inspect(dead.name()).unwrap().owner,
        fshm::OwnerState::Dead
    );
    assert_eq!(
        fshm::inspect(dead_persistent.name()).unwrap().owner,
        fshm::OwnerState::Dead
    );
    assert_eq!(
        fshm::inspect(alive_forked.name()).unwrap().owner,
        fshm::OwnerState::Alive
    );
    let ls = ok_stdout(&["ls"]);
    assert!(
        ls.lines()
            .any(|l| l.starts_with(dead.name()) && l.split_whitespace().nth(4) == Some("dead")),
        "{ls}"
    );

    let out = ok_stdout(&["gc", &base]);
    let removed: Vec<&str> = out.lines().collect();
    assert!(
        removed.iter().all(|l| l.starts_with("removed /")),
        "unexpected gc output:\n{out}"
    );
    assert!(
        removed.contains(&format!("removed {}", dead.name()).as_str()),
        "dead stream not reported:\n{out}"
    );
    for kept in [&dead_persistent, &alive_forked, &alive_here, &foreign] {
        assert!(
            !removed.contains(&format!("removed {}", kept.name()).as_str()),
            "gc reported {}:\n{out}",
            kept.name()
        );
        assert!(kept.exists(), "gc removed {}", kept.name());
    }
    assert!(!dead.exists(), "gc did not remove the dead owner's stream");

    // A second gc finds nothing of ours to remove.
    let again = ok_stdout(&["gc", &base]);
    for s in [
        &dead,
        &dead_persistent,
        &alive_forked,
        &alive_here,
        &foreign,
    ] {
        assert!(
            !again.contains(&format!("removed {}\n", s.name())),
            "{again}"
        );
    }

    // Once the forked owner dies, its stream is collected too.
    live_child.kill();
    let out = ok_stdout(&["gc", &base]);
    assert!(
        out.lines()
            .any(|l| l == format!("removed {}", alive_forked.name())),
        "{out}"
    );
    assert!(!alive_forked.exists());
    assert!(dead_persistent.exists());
}

/// Forks a child that runs `f` as uid/gid 1002 when this process is root (else as this
/// user: the attack needs no privilege, only another process), writes the byte `f`
/// returns to a pipe, and then waits to be killed. Returns the child's pid once that
/// byte came (asserting it is `b'R'`).
fn fork_holder(f: impl FnOnce() -> u8) -> libc::pid_t {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two ints.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(r, 0, "pipe2: {}", io::Error::last_os_error());
    let (rd, wr) = (fds[0], fds[1]);
    // SAFETY: fork has no preconditions; the child below never returns into the test
    // harness (it ends with _exit or is killed).
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
    if pid == 0 {
        let status = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // SAFETY: plain system calls with valid arguments.
            unsafe {
                if libc::geteuid() == 0
                    && (libc::setgroups(0, std::ptr::null()) != 0
                        || libc::setgid(1002) != 0
                        || libc::setuid(1002) != 0)
                {
                    return b'U';
                }
            }
            f()
        }))
        .unwrap_or(b'P');
        // SAFETY: writing one byte from a valid buffer to our pipe.
        unsafe { libc::write(wr, (&status as *const u8).cast(), 1) };
        if status != b'R' {
            // SAFETY: _exit ends the child without running the parent's destructors.
            unsafe { libc::_exit(1) };
        }
        loop {
            // SAFETY: pause just waits for a signal (SIGKILL from the parent).
            unsafe { libc::pause() };
        }
    }
    // SAFETY: closing the parent's copy of the write end, which it does not use.
    unsafe { libc::close(wr) };
    // SAFETY: `rd` is ours to own from here on.
    let rd = unsafe { OwnedFd::from_raw_fd(rd) };
    let mut pfd = libc::pollfd {
        fd: rd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `pfd` is a valid pollfd array of length 1.
    let r = unsafe { libc::poll(&mut pfd, 1, TIMEOUT.as_millis() as libc::c_int) };
    assert_eq!(r, 1, "the forked child did not answer in time");
    let mut byte = [0u8; 1];
    let n = std::fs::File::from(rd).read(&mut byte).unwrap();
    assert_eq!((n, byte[0]), (1, b'R'), "the forked child failed");
    pid
}

/// Kills and reaps a child of `fork_holder`.
fn kill_holder(pid: libc::pid_t) {
    // SAFETY: `pid` is our unreaped child, so it cannot have been reused.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
}

#[test]
fn gc_skips_a_stream_whose_reclaim_token_is_held_and_goes_on() {
    let base = unique_name();
    // A user makes its own stream (open to all), lets its owner die, and holds the
    // reclaim token of the stream's lock object; "-b-dead" is an ordinary dead stream
    // that gc reaches after it.
    let held = Shm::with_suffix(&base, "-a-held");
    let dead = Shm::with_suffix(&base, "-b-dead");
    let name = held.name().to_owned();
    let owner = fork_holder(|| {
        let s = fshm::OpenOptions::new().mode(0o666).create(&name);
        match s {
            Ok(s) => {
                std::mem::forget(s);
                b'R'
            }
            Err(_) => b'E',
        }
    });
    kill_holder(owner);
    ForkedOwner::spawn(dead.name(), false).kill();
    let lock_prefix = format!("{}%lock.", held.name().trim_start_matches('/'));
    let lock = std::fs::read_dir("/dev/shm")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|f| f.starts_with(&lock_prefix))
        .expect("the held stream's lock object");
    let holder = fork_holder(|| {
        let c = std::ffi::CString::new(format!("/{lock}")).unwrap();
        // SAFETY: `c` is NUL-terminated.
        let fd = unsafe { libc::shm_open(c.as_ptr(), libc::O_RDWR, 0) };
        if fd < 0 {
            return b'O';
        }
        // SAFETY: an all-zero flock is a valid value of this plain C struct.
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = libc::F_WRLCK as libc::c_short;
        fl.l_len = 1; // byte 0: the reclaim token
                      // SAFETY: `fl` is a valid flock for the call.
        if unsafe { libc::fcntl(fd, libc::F_OFD_SETLK, &fl) } != 0 {
            return b'L';
        }
        b'R'
    });

    // And what a creator killed before publishing "-c-unfinished" left: an empty
    // object under a creation name, nobody holding its owner byte.
    let unfinished = Shm::with_suffix(&base, "-c-unfinished");
    let creation = format!("{}%new.00000000000000ab", unfinished.name());
    let c = std::ffi::CString::new(creation.as_str()).unwrap();
    // SAFETY: `c` is NUL-terminated; the descriptor is closed at once.
    unsafe {
        let fd = libc::shm_open(
            c.as_ptr(),
            libc::O_RDWR | libc::O_CREAT | libc::O_EXCL,
            0o600,
        );
        assert!(fd >= 0, "shm_open: {}", io::Error::last_os_error());
        libc::close(fd);
    }

    let start = Instant::now();
    let o = fshm(&["gc", &base]);
    let took = start.elapsed();
    kill_holder(holder);
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert_eq!(o.status.code(), Some(1), "stdout: {out}\nstderr: {err}");
    assert!(took < Duration::from_secs(10), "gc took {took:?}");
    assert_eq!(
        out,
        format!(
            "removed {}\nremoved {} (unfinished creation)\n",
            dead.name(),
            unfinished.name()
        ),
        "stderr: {err}"
    );
    assert!(!Path::new(&format!("/dev/shm{creation}")).exists());
    assert!(
        err.starts_with(&format!("fshm: gc: skipped {}: ", held.name())) && err.contains("reclaim"),
        "{err}"
    );
    assert!(held.exists() && !dead.exists());
    // Once the holder is gone, gc removes it.
    let out = ok_stdout(&["gc", &base]);
    assert_eq!(out, format!("removed {}\n", held.name()));
}

#[test]
fn gc_reads_the_shm_directory_once_not_once_per_dead_stream() {
    // 200 dead streams among 20,000 other objects (another user's, where the test runs
    // as root): gc used to read the whole directory again for each dead stream it
    // removed (4 million entries here, seconds); it reads it a few times in all.
    const DEAD: usize = 200;
    const JUNK: usize = 20_000;
    let base = unique_name();
    let dead: Vec<Shm> = (0..DEAD)
        .map(|i| Shm::with_suffix(&base, &format!("-dead-{i}")))
        .collect();
    let junk_prefix = format!("{}-junk-", base.trim_start_matches('/'));
    struct RemoveJunk(String);
    impl Drop for RemoveJunk {
        fn drop(&mut self) {
            for e in std::fs::read_dir("/dev/shm").unwrap().flatten() {
                if e.file_name().to_string_lossy().starts_with(&self.0) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
    let _junk = RemoveJunk(junk_prefix.clone());
    let names: Vec<String> = dead.iter().map(|s| s.name().to_owned()).collect();
    let maker = fork_holder(|| {
        for name in &names {
            match fshm::OpenOptions::new().mode(0o644).create(name) {
                Ok(s) => std::mem::forget(s), // its owner dies with this process
                Err(_) => return b'E',
            }
        }
        for i in 0..JUNK {
            let path = std::ffi::CString::new(format!("/dev/shm/{junk_prefix}{i}")).unwrap();
            // SAFETY: `path` is NUL-terminated; the descriptor is closed at once.
            let fd = unsafe { libc::open(path.as_ptr(), libc::O_CREAT | libc::O_WRONLY, 0o600) };
            if fd < 0 {
                return b'J';
            }
            // SAFETY: our own descriptor.
            unsafe { libc::close(fd) };
        }
        b'R'
    });
    kill_holder(maker);
    let start = Instant::now();
    let o = fshm(&["gc", &base]);
    let took = start.elapsed();
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert_eq!(o.status.code(), Some(0), "stdout: {out}\nstderr: {err}");
    assert_eq!(out.lines().count(), DEAD, "{out}");
    assert!(dead.iter().all(|s| !s.exists()));
    // A few directory reads of 20,000 entries take milliseconds; one per dead stream
    // took seconds.
    assert!(took < Duration::from_secs(1), "gc took {took:?}");
}

// ---------------------------------------------------------------------------------------
// Hierarchical names, escaped names, messages, exit statuses
// ---------------------------------------------------------------------------------------

#[test]
fn hierarchical_names_work_in_every_command() {
    let base = unique_name();
    let a = Shm::with_suffix(&base, "/streams/a");
    let b = Shm::with_suffix(&base, "/streams/b");
    let dead = Shm::with_suffix(&base, "/streams/dead");
    let other = Shm::with_suffix(&base, "/other/c");

    let o = fshm_with_input(&["write", a.name(), "--create", "--persist"], b"one\ntwo\n");
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = fshm_with_input(
        &["write", &b.name()[1..], "--create", "--persist"],
        b"bee\n",
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = fshm_with_input(&["write", a.name()], b"three\n");
    assert!(o.status.success(), "{}", text(&o.stderr));
    create_closed(other.name(), b"c");
    ForkedOwner::spawn(dead.name(), false).kill();
    assert!(a.exists() && b.exists() && other.exists() && dead.exists());
    let object = format!("/dev/shm{}", fshm::object_name(a.name()).unwrap());
    assert!(object.ends_with("%2Fstreams%2Fa"), "{object}");
    assert!(
        !Path::new(&format!("/dev/shm{base}")).exists(),
        "a directory was created in /dev/shm"
    );

    let under_streams = [a.name(), b.name(), dead.name()];
    let out = ok_stdout(&["ls", &format!("{base}/streams/")]);
    assert_eq!(ls_names(&out), under_streams, "{out}");
    let out = ok_stdout(&["ls", &format!("{}/streams/", &base[1..])]);
    assert_eq!(ls_names(&out), under_streams, "{out}");
    let out = ok_stdout(&["ls", &format!("{base}/")]);
    assert_eq!(
        ls_names(&out),
        [other.name(), a.name(), b.name(), dead.name()],
        "{out}"
    );
    let out = ok_stdout(&["ls", &format!("{base}/nothing/")]);
    assert_eq!(out.lines().count(), 1, "{out}");
    let json = parse_json(&ok_stdout(&["ls", "--json", &format!("{base}/streams/")]));
    let names: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, under_streams);
    // The whole listing shows them too, by their names.
    let all = ok_stdout(&["ls"]);
    assert!(ls_names(&all).contains(&a.name()), "{all}");

    let out = ok_stdout(&["stat", a.name()]);
    assert_eq!(
        out.lines().next(),
        Some(format!("name:        {}", a.name()).as_str())
    );
    assert_eq!(ok_stdout(&["cat", a.name()]), "one\ntwo\nthree\n");
    assert_eq!(ok_stdout(&["tail", "-n", "1", &a.name()[1..]]), "three\n");

    let out = ok_stdout(&["gc", &format!("{base}/")]);
    assert_eq!(out, format!("removed {}\n", dead.name()));
    assert!(!dead.exists());

    assert_eq!(ok_stdout(&["rm", a.name(), &b.name()[1..]]), "");
    assert!(!a.exists() && !b.exists());
    assert!(other.exists());
    // A flat name that looks like an escaped one reaches nothing else.
    let lookalike = format!("{base}%2Fother%2Fc");
    let err = fails(&["rm", &lookalike], 1);
    assert!(err.contains("No such file or directory"), "{err}");
    assert!(other.exists());
}

#[test]
fn names_with_newline_and_escape_are_escaped_in_human_output() {
    let base = unique_name();
    let evil = Shm::with_suffix(
        &base,
        "-evil\n/fake 1 1 0777 alive no -\x1b[2J\x1b]0;pwned\x07",
    );
    let escaped =
        format!("{base}-evil\\n/fake\\ 1\\ 1\\ 0777\\ alive\\ no\\ -\\033[2J\\033]0;pwned\\a");
    let _owner = create(evil.name(), 0o600, b"x");
    let raw = |s: &str| s.contains('\x1b') || s.contains('\x07');

    let out = ok_stdout(&["ls", &base]);
    assert!(!raw(&out), "raw escape in ls: {out:?}");
    assert_eq!(out.lines().count(), 2, "a name forged a line: {out:?}");
    // The name is the first column, up to the first unescaped space.
    let row = out.lines().nth(1).unwrap();
    assert!(row.starts_with(&format!("{escaped} ")), "{out:?}");

    let out = ok_stdout(&["stat", evil.name()]);
    assert!(!raw(&out), "raw escape in stat: {out:?}");
    assert_eq!(out.lines().count(), 10, "{out:?}");
    assert_eq!(
        out.lines().next().unwrap(),
        format!("name:        {escaped}")
    );

    // JSON carries the name as it is.
    let json = parse_json(&ok_stdout(&["ls", "--json", &base]));
    assert_eq!(json[0]["name"], evil.name());
    let json = parse_json(&ok_stdout(&["stat", "--json", evil.name()]));
    assert_eq!(json["name"], evil.name());

    // Error messages escape the name too, and stay on one line.
    let missing = format!("{base}-missing\x1b[31m\nline");
    for cmd in ["stat", "cat", "rm"] {
        let err = fails(&[cmd, &missing], 1);
        assert!(!raw(&err), "{cmd}: raw escape in {err:?}");
        assert_eq!(err.lines().count(), 1, "{cmd}: {err:?}");
        assert!(
            err.starts_with(&format!("fshm: {base}-missing\\033[31m\\nline: ")),
            "{cmd}: {err:?}"
        );
    }
    let err = fails(&["stat", &format!("{base}/\x1b[31m/")], 2);
    assert!(!raw(&err) && err.contains("\\033[31m"), "{err:?}");

    // So does gc's report.
    let dead = Shm::with_suffix(&base, "/dead\x1b[1m");
    ForkedOwner::spawn(dead.name(), false).kill();
    let out = ok_stdout(&["gc", &format!("{base}/")]);
    assert_eq!(out, format!("removed {base}/dead\\033[1m\n"));
    assert!(!dead.exists());
}

#[test]
fn errors_name_the_stream_once() {
    let missing = Shm::new();
    let name = missing.name();
    let expected = format!("fshm: {name}: cannot open: No such file or directory\n");
    assert_eq!(fails(&["stat", name], 1), expected);
    assert_eq!(fails(&["cat", name], 1), expected);
    assert_eq!(fails(&["tail", name], 1), expected);
    for args in [&["rm", name][..], &["rm", "--force", name]] {
        let err = fails(args, 1);
        assert_eq!(err.matches(name).count(), 1, "{err}");
        assert!(err.starts_with(&format!("fshm: {name}: ")), "{err}");
        assert!(err.ends_with(": No such file or directory\n"), "{err}");
    }
    let o = fshm_with_input(&["write", name], b"x");
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert_eq!(err.matches(name).count(), 1, "{err}");
    assert!(
        !err.contains("fshm stream") && !err.contains("os error"),
        "{err}"
    );

    let foreign = Shm::new();
    make_foreign(foreign.name());
    let err = fails(&["stat", foreign.name()], 1);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!("fshm: {}: not an fshm stream", foreign.name())),
        "{err}"
    );
    assert_eq!(err.matches(foreign.name()).count(), 1, "{err}");
    assert!(
        !err.contains("Protocol error") && !err.contains("os error"),
        "{err}"
    );
}

#[test]
fn help_documents_exit_statuses_and_names() {
    let out = ok_stdout(&["--help"]);
    assert!(out.contains("Exit status:"), "{out}");
    assert!(out.contains("  0  success"), "{out}");
    assert!(out.contains("  1  the operation failed"), "{out}");
    assert!(out.contains("  2  usage error"), "{out}");
    assert!(out.contains("/streams/my_stream"), "{out}");
    let out = ok_stdout(&["write", "--help"]);
    assert!(
        out.contains("--persist") && out.contains("--create"),
        "{out}"
    );
    let out = ok_stdout(&["ls", "--help"]);
    assert!(out.contains("[PREFIX]") && out.contains("--bytes"), "{out}");
}

#[test]
fn sizes_for_people_and_exact_with_bytes() {
    let shm = Shm::new();
    let o = fshm_with_input(
        &[
            "write",
            shm.name(),
            "--create",
            "--persist",
            "--max-size",
            "2M",
        ],
        &[b'z'; 6000],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let row = |args: &[&str]| -> Vec<String> {
        let out = ok_stdout(args);
        out.lines()
            .nth(1)
            .unwrap_or_else(|| panic!("no row: {out}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(row(&["ls", shm.name()])[1..3], ["5.9K", "2.0M"]);
    assert_eq!(row(&["ls", "-b", shm.name()])[1..3], ["6000", "2097152"]);
    assert_eq!(
        row(&["ls", "--bytes", shm.name()])[1..3],
        ["6000", "2097152"]
    );
    let json = parse_json(&ok_stdout(&["ls", "--json", shm.name()]));
    assert_eq!(json[0]["len"], 6000);
    assert_eq!(json[0]["max_size"], 2 << 20);
}

#[test]
fn stat_ls_and_json_show_a_replicas_source_and_stale_mark() {
    let shm = Shm::new();
    let owner = fshm::OpenOptions::new()
        .mode(0o644)
        .replica_of("zenoh:tcp/127.0.0.1:7447")
        .create(shm.name())
        .unwrap();
    let row = |out: &str| -> Vec<String> {
        out.lines()
            .map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
            .find(|r| r[0] == shm.name())
            .unwrap_or_else(|| panic!("not listed:\n{out}"))
    };
    for stale in [true, false] {
        owner.set_stale(stale).unwrap();
        let out = ok_stdout(&["stat", shm.name()]);
        assert!(
            out.lines()
                .any(|l| l == "replica of:  zenoh:tcp/127.0.0.1:7447 (read-only here)"),
            "{out}"
        );
        let line = out.lines().find(|l| l.starts_with("stale:")).unwrap();
        assert_eq!(line.contains("yes"), stale, "{out}");
        assert_eq!(line.ends_with("no"), !stale, "{out}");
        let json = parse_json(&ok_stdout(&["stat", shm.name(), "--json"]));
        assert_eq!(json["stale"], stale);
        assert_eq!(json["replica_of"], "zenoh:tcp/127.0.0.1:7447");
        let owner_cell = if stale { "alive,stale" } else { "alive" };
        assert_eq!(row(&ok_stdout(&["ls", "-b"]))[4], owner_cell);
        let json = parse_json(&ok_stdout(&["ls", shm.name(), "--json"]));
        assert_eq!(json[0]["stale"], stale);
    }
    // Any other stream: no stale line, `false` in JSON.
    let plain = Shm::new();
    let _p = create(plain.name(), 0o600, b"x");
    let out = ok_stdout(&["stat", plain.name()]);
    assert!(!out.contains("stale") && !out.contains("replica"), "{out}");
    assert_eq!(
        parse_json(&ok_stdout(&["stat", plain.name(), "--json"]))["stale"],
        false
    );
}
