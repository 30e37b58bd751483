//! Rust and the C files that build.rs compiled share streams: in one process (threads),
//! and across processes (this package's binary, spawned once per side).

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);
const CAP: usize = 16 << 20;

/// A stream name unique to this test (pid + counter); removes the name when dropped,
/// also when the test fails.
struct Name(String);

impl Name {
    fn new(what: &str) -> Name {
        static N: AtomicU32 = AtomicU32::new(0);
        Name(format!(
            "/fshm-mixed-{what}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ))
    }
}

impl Drop for Name {
    fn drop(&mut self) {
        let _ = fshm::force_destroy(&self.0);
    }
}

/// A persistent owner: a reader that opens the name after the owner closed it still
/// finds it, reads everything and then end-of-stream, whatever the threads' order.
fn owner(name: &Name) -> fshm::Stream {
    fshm::OpenOptions::new()
        .mode(0o600)
        .persist(true)
        .append(true)
        .create(&name.0)
        .expect("create the stream")
}

/// Appends `line` and a newline in one write, so that it lands whole (`writeln!` would
/// write its pieces one by one, and other appenders could land between them).
fn append_line(s: &mut fshm::Stream, line: &str) {
    s.write_all(format!("{line}\n").as_bytes()).unwrap();
}

fn lines(tag: &str, count: u32) -> String {
    (0..count).map(|i| format!("{tag} {i}\n")).collect()
}

/// Checks that `text` holds exactly the lines of every writer in `expect` (tag, count),
/// each writer's in order, none torn or repeated.
fn assert_interleaving(text: &str, expect: &[(&str, u32)]) {
    let mut next: HashMap<&str, u32> = expect.iter().map(|&(t, _)| (t, 0)).collect();
    for line in text.lines() {
        let (tag, i) = line.rsplit_once(' ').expect("a whole line");
        let n = next
            .get_mut(tag)
            .unwrap_or_else(|| panic!("torn line {line:?}"));
        assert_eq!(
            i.parse::<u32>().ok(),
            Some(*n),
            "line {line:?} out of order"
        );
        *n += 1;
    }
    for &(tag, count) in expect {
        assert_eq!(next[tag], count, "lines of {tag}");
    }
    assert!(text.ends_with('\n') || text.is_empty());
}

#[test]
fn c_producer_writes_rust_reads_in_one_process() {
    let name = Name::new("cprod");
    let mut s = owner(&name);
    fshm_mixed::c_produce(&name.0, "c", 500).expect("C producer");
    let mut text = String::new();
    s.seek(SeekFrom::Start(0)).unwrap();
    s.read_to_string(&mut text).unwrap();
    assert_eq!(text, lines("c", 500));
}

#[test]
fn rust_writes_c_consumer_reads_the_fd_in_one_process() {
    let name = Name::new("ccons");
    let mut s = owner(&name);
    let reader = {
        let n = name.0.clone();
        std::thread::spawn(move || fshm_mixed::c_consume(&n, CAP, TIMEOUT))
    };
    let expect = lines("rust", 2000);
    for line in expect.lines() {
        append_line(&mut s, line);
    }
    drop(s); // closing ends the stream for the C follower
    let got = reader.join().unwrap().expect("C consumer");
    assert_eq!(String::from_utf8(got).unwrap(), expect);
}

#[test]
fn rust_and_c_append_together_while_c_follows() {
    let name = Name::new("both");
    let mut s = owner(&name);
    let reader = {
        let n = name.0.clone();
        std::thread::spawn(move || fshm_mixed::c_consume(&n, CAP, TIMEOUT))
    };
    let producer = {
        let n = name.0.clone();
        std::thread::spawn(move || fshm_mixed::c_produce(&n, "c", 1000))
    };
    for i in 0..1000 {
        append_line(&mut s, &format!("rust {i}"));
    }
    producer.join().unwrap().expect("C producer");
    let mut all = String::new();
    s.seek(SeekFrom::Start(0)).unwrap();
    s.read_to_string(&mut all).unwrap();
    assert_interleaving(&all, &[("rust", 1000), ("c", 1000)]);
    drop(s);
    let got = reader.join().unwrap().expect("C consumer");
    assert_eq!(String::from_utf8(got).unwrap(), all);
}

/// Checks that the C threads' lines are all there, whole and each thread's in order.
fn check_threads(shared: bool) {
    let name = Name::new(if shared { "tshared" } else { "town" });
    let mut s = owner(&name);
    fshm_mixed::c_threads(&name.0, shared, 8, 3000).expect("C threads");
    let mut all = String::new();
    s.seek(SeekFrom::Start(0)).unwrap();
    s.read_to_string(&mut all).unwrap();
    let tags: Vec<String> = (0..8).map(|t| format!("t{t}")).collect();
    let expect: Vec<(&str, u32)> = tags.iter().map(|t| (t.as_str(), 3000)).collect();
    assert_interleaving(&all, &expect);
}

#[test]
fn c_threads_share_one_file() {
    check_threads(true);
}

#[test]
fn c_threads_each_with_a_file_on_one_stream() {
    check_threads(false);
}

#[test]
fn c_consumer_reports_a_missing_stream() {
    let name = Name::new("missing");
    let err = fshm_mixed::c_consume(&name.0, 16, TIMEOUT).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains(&name.0), "{err}");
    let err = fshm_mixed::c_produce(&name.0, "c", 1).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
    let err = fshm_mixed::c_threads(&name.0, true, 2, 1).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
    let err = fshm_mixed::c_threads(&name.0, false, 17, 1).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
}

fn spawn(args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_fshm-mixed"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn fshm-mixed")
}

fn finish(child: std::process::Child, what: &str) -> String {
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{what}: {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

#[test]
fn c_and_rust_share_a_stream_across_processes() {
    let name = Name::new("procs");
    let mut s = owner(&name);
    // Readers first, so that they follow the stream while it is written.
    let c_reader = spawn(&["c-consume", &name.0]);
    let rust_reader = spawn(&["rust-follow", &name.0]);
    let producers: Vec<_> = ["p0", "p1"]
        .iter()
        .map(|tag| (tag, spawn(&["c-produce", &name.0, tag, "800"])))
        .collect();
    for i in 0..800 {
        append_line(&mut s, &format!("owner {i}"));
    }
    for (tag, child) in producers {
        finish(child, &format!("C producer {tag}"));
    }
    let mut all = String::new();
    s.seek(SeekFrom::Start(0)).unwrap();
    s.read_to_string(&mut all).unwrap();
    assert_interleaving(&all, &[("owner", 800), ("p0", 800), ("p1", 800)]);
    drop(s); // end-of-stream for both readers
    assert_eq!(finish(c_reader, "C consumer"), all);
    assert_eq!(finish(rust_reader, "Rust follower"), all);
}

#[test]
fn the_binary_rejects_bad_arguments() {
    let out = finish_fail(spawn(&["c-produce", "/x", "tag", "many"]));
    assert!(out.contains("usage"), "{out}");
    let out = finish_fail(spawn(&["c-consume", "/bad/name/x"]));
    assert!(out.contains("/bad/name/x"), "{out}");
}

fn finish_fail(child: std::process::Child) -> String {
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(1));
    String::from_utf8_lossy(&out.stderr).into_owned()
}
