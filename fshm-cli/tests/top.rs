//! `fshm top` against real streams written by other processes: the live view rendered
//! into ratatui's `TestBackend` (its module is compiled into this test), and `--once`
//! run as the real binary.
//!
//! The streams are created and written by `fshm write --create` processes fed through
//! their standard input; the test waits for what it wrote to be committed by polling
//! `fshm::inspect` (bounded), never by sleeping. Every name is unique to the test and
//! removed on drop, also when an assertion fails.

#[allow(dead_code)]
#[path = "../src/text.rs"]
mod text;
#[allow(dead_code)]
#[path = "../src/top.rs"]
mod top;

use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyModifiers};
use ratatui::Terminal;
use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(20);

fn unique_prefix() -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    format!(
        "/fshm-top-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// An `fshm write --create` process owning `name`; killed, reaped and its stream
/// removed on drop.
struct Writer {
    child: Child,
    name: String,
}

impl Writer {
    fn spawn(name: &str, options: &[&str]) -> Writer {
        let child = Command::new(env!("CARGO_BIN_EXE_fshm"))
            .args(["write", "--create"])
            .args(options)
            .arg(name)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn fshm write");
        let w = Writer {
            child,
            name: name.to_owned(),
        };
        wait_until(|| fshm::inspect(name).is_ok(), "the stream to be created");
        w
    }
    fn stdin(&mut self) -> &mut ChildStdin {
        self.child.stdin.as_mut().expect("piped stdin")
    }
    /// Writes `n` bytes through the process and waits until the stream's length is
    /// `until`.
    fn write(&mut self, n: usize, until: u64) {
        self.stdin()
            .write_all(&vec![b'x'; n])
            .expect("feed fshm write");
        self.stdin().flush().expect("flush");
        let name = self.name.clone();
        wait_until(
            || fshm::inspect(&name).map(|i| i.len).unwrap_or(0) == until,
            "the bytes to be committed",
        );
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fshm::force_destroy(&self.name);
    }
}

fn wait_until(mut ok: impl FnMut() -> bool, what: &str) {
    let t = Instant::now();
    while !ok() {
        assert!(t.elapsed() < TIMEOUT, "timed out waiting for {what}");
        std::thread::yield_now();
    }
}

/// The text of a rendered buffer, one line per row.
fn screen(t: &Terminal<TestBackend>) -> String {
    let b = t.backend().buffer();
    let w = b.area.width as usize;
    b.content()
        .chunks(w)
        .map(|row| row.iter().map(|c| c.symbol()).collect::<String>())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The screen line that shows `name`.
fn line_of<'a>(screen: &'a str, name: &str) -> &'a str {
    screen
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no line for {name} in\n{screen}"))
}

#[test]
fn live_view_shows_kind_rate_and_lag_of_streams_written_elsewhere() {
    let prefix = unique_prefix();
    let lin_name = format!("{prefix}/linear");
    let ring_name = format!("{prefix}/ring");
    let mut lin = Writer::spawn(&lin_name, &[]);
    let mut ring = Writer::spawn(&ring_name, &["--ring", "64K", "--lossless"]);

    // A lossless reader in this process, which reads 100 of the ring's 1000 bytes.
    let reader = fshm::Stream::open(&ring_name).expect("open the ring");
    let mut follower = reader.follow();
    ring.write(1000, 1000);
    let mut buf = [0u8; 100];
    follower.read_exact(&mut buf).expect("read 100 bytes");
    assert_eq!(buf, [b'x'; 100]);

    lin.write(4096, 4096);
    let mut users = top::Users::default();
    let first = top::sample(&format!("{prefix}/")).expect("first sample");
    lin.write(8192, 4096 + 8192);
    let second = top::sample(&format!("{prefix}/")).expect("second sample");

    let mut app = top::App::new(format!("{prefix}/"));
    app.rows = top::rows(Some(&first), &second, app.sort, &mut users);
    let mut term = Terminal::new(TestBackend::new(160, 10)).expect("test terminal");
    term.draw(|f| top::draw(f, &app)).expect("draw");
    let s = screen(&term);

    let l = line_of(&s, &lin_name);
    assert!(l.contains("linear") && l.contains("alive"), "{l}");
    let rate = l
        .split_whitespace()
        .find(|c| c.ends_with("/s"))
        .unwrap_or_else(|| panic!("no rate in {l}"));
    assert!(rate != "0/s" && rate != "0B/s", "rate {rate} in {l}");
    let r = line_of(&s, &ring_name);
    assert!(r.contains("ring lossless"), "{r}");
    // One attached reader, 900 bytes behind (the length is 1000).
    let cells: Vec<&str> = r.split_whitespace().collect();
    assert_eq!(cells[cells.len() - 2..], ["1", "900"], "{r}");
    // Sorted by rate: the linear stream, written between the samples, comes first.
    assert!(s.find(&lin_name) < s.find(&ring_name), "{s}");

    // `s` sorts by name: the ring's name (".../ring") after ".../linear" still; `/`
    // edits the prefix, Enter applies it.
    assert_eq!(
        top::key(&mut app, KeyCode::Char('s'), KeyModifiers::NONE),
        top::Action::Redraw
    );
    assert_eq!(app.sort, top::SortKey::Name);
    top::key(&mut app, KeyCode::Char('/'), KeyModifiers::NONE);
    for c in "ri".chars() {
        top::key(&mut app, KeyCode::Char(c), KeyModifiers::NONE);
    }
    assert_eq!(
        top::key(&mut app, KeyCode::Enter, KeyModifiers::NONE),
        top::Action::Refresh
    );
    assert_eq!(app.prefix, format!("{prefix}/ri"));
    let only_ring = top::sample(&app.prefix).expect("filtered sample");
    app.rows = top::rows(None, &only_ring, app.sort, &mut users);
    term.draw(|f| top::draw(f, &app)).expect("draw");
    let s = screen(&term);
    assert!(s.contains(&ring_name) && !s.contains(&lin_name), "{s}");
    assert_eq!(
        top::key(&mut app, KeyCode::Char('q'), KeyModifiers::NONE),
        top::Action::Quit
    );
    drop(reader);
}

#[test]
fn once_prints_one_plain_frame() {
    let prefix = unique_prefix();
    let name = format!("{prefix}/s");
    let mut w = Writer::spawn(&name, &["--ring", "64K"]);
    w.write(10, 10);
    let out = Command::new(env!("CARGO_BIN_EXE_fshm"))
        .args(["top", "--once", "--interval", "0.05", &prefix])
        .output()
        .expect("run fshm top --once");
    assert!(out.status.success(), "{out:?}");
    assert!(out.stderr.is_empty(), "{out:?}");
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    assert!(!text.contains('\x1b'), "escape codes in {text:?}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(header, top::COLUMNS, "{text}");
    let cells: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(cells[0], name);
    assert_eq!(&cells[2..6], ["alive", "ring", "lossy", "10"], "{text}");
    // Columns line up: each header title starts where its cells start.
    let at = lines[0].find("OWNER").expect("OWNER");
    assert_eq!(&lines[1][at..at + 5], "alive", "{text}");
}

#[test]
fn once_refuses_a_bad_interval_and_top_refuses_no_terminal() {
    let out = Command::new(env!("CARGO_BIN_EXE_fshm"))
        .args(["top", "--once", "--interval", "-1"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = Command::new(env!("CARGO_BIN_EXE_fshm"))
        .arg("top")
        .stdout(Stdio::piped())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--once"),
        "{out:?}"
    );
}
