//! The ring's fast paths keep its promises: a writer that remembers the length (the
//! `ring_writer` token) never writes over another handle's bytes, in one process or
//! across processes; an attached reader that skips the overrun check (a trusted read)
//! still reports an overrun after a seek back; a writer that remembers the length never
//! lowers the high-water mark an appender killed mid-write left. (`fshm/src/ring.rs`
//! has the rules.)

mod common;

use common::{fork_child, NameGuard, Signal};
use std::cell::RefCell;
use std::io::{Read, Seek, SeekFrom, Write};

fn lossless(name: &str, cap: u64) -> fshm::Stream {
    fshm::OpenOptions::new()
        .ring(cap, fshm::RingPolicy::Lossless)
        .create(name)
        .expect("create ring")
}

fn read_all(r: &fshm::Stream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 1000];
    loop {
        let n = (&*r).read(&mut buf).expect("read");
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn writers_taking_turns_keep_every_byte() {
    let g = NameGuard::new("turns");
    let owner = lossless(g.name(), 1 << 16);
    let reader = fshm::Stream::open(g.name()).unwrap();
    reader.attach().unwrap();
    let mut expect = Vec::new();
    for round in 0..50u8 {
        // Several writes in a row by one handle (its remembered length is used), then
        // the next handle's turn. A process writes a ring through one handle at a time
        // (a handle without append mode stays its writer until it closes), so each
        // turn is a new handle's; `writers_in_two_processes_taking_turns_keep_every_byte`
        // has two handles alternate.
        let w = fshm::Stream::open(g.name()).unwrap();
        w.detach(); // a writer, not a reader
        for k in 0..3u8 {
            let msg = [round, k, 0xA5, round ^ k];
            (&w).write_all(&msg).unwrap();
            expect.extend_from_slice(&msg);
        }
    }
    assert_eq!(owner.len(), expect.len() as u64);
    assert_eq!(read_all(&reader), expect);
}

#[test]
fn writers_in_two_processes_taking_turns_keep_every_byte() {
    let g = NameGuard::new("turns2");
    let owner = lossless(g.name(), 1 << 16);
    let reader = fshm::Stream::open(g.name()).unwrap();
    reader.attach().unwrap();
    let (to_child, to_parent) = (Signal::new(), Signal::new());
    let name = g.name().to_string();
    let mut child = fork_child(|| {
        let s = fshm::Stream::open(&name).unwrap();
        for round in 0..40u8 {
            to_child.wait();
            for k in 0..5u8 {
                (&s).write_all(&[1, round, k]).unwrap();
            }
            to_parent.notify();
        }
        0
    });
    let mut expect = Vec::new();
    for round in 0..40u8 {
        for k in 0..5u8 {
            (&owner).write_all(&[0, round, k]).unwrap();
            expect.extend_from_slice(&[0, round, k]);
        }
        to_child.notify();
        to_parent.wait();
        for k in 0..5u8 {
            expect.extend_from_slice(&[1, round, k]);
        }
    }
    child.assert_success();
    assert_eq!(owner.len(), expect.len() as u64);
    assert_eq!(read_all(&reader), expect);
}

thread_local! {
    /// What the ring-read hook does on this test's thread (other threads: nothing).
    static DURING_COPY: RefCell<Option<Box<dyn FnMut()>>> = const { RefCell::new(None) };
}

fn run_during_copy() {
    DURING_COPY.with(|h| {
        if let Some(f) = h.borrow_mut().as_mut() {
            f();
        }
    });
}

/// Reads at `reader`'s position while `write` runs between the copy and its check.
fn read_while_writing(
    reader: &fshm::Stream,
    buf: &mut [u8],
    write: impl FnMut() + 'static,
) -> std::io::Result<usize> {
    DURING_COPY.with(|h| *h.borrow_mut() = Some(Box::new(write)));
    fshm::test_hooks::set_ring_read_pause(Some(run_during_copy));
    let r = (&*reader).read(buf);
    DURING_COPY.with(|h| *h.borrow_mut() = None);
    r
}

#[test]
fn trusted_reader_still_sees_an_overrun_after_seeking_back() {
    let g = NameGuard::new("trust");
    let cap = 4096u64;
    let owner = std::rc::Rc::new(lossless(g.name(), cap));
    let reader = fshm::Stream::open(g.name()).unwrap();
    reader.attach().unwrap();
    (&*owner).write_all(&[b'a'; 4096]).unwrap();
    let mut buf = vec![0u8; 4096];
    assert_eq!((&reader).read(&mut buf).unwrap(), 4096);
    // The writer looks at the reader's slot (position 4096) and remembers it.
    (&*owner).write_all(b"x").unwrap();
    // Back to position 1, still held; a writer that remembers 4096 need not wait.
    (&reader).seek(SeekFrom::Start(1)).unwrap();
    let w = owner.clone();
    let r = read_while_writing(&reader, &mut buf, move || {
        (&*w).write_all(&[b'b'; 2000]).unwrap();
    });
    let e = r.expect_err("bytes overwritten during the copy were returned");
    let o = fshm::overrun_of(&e).expect("an overrun");
    assert_eq!(o.resume_at(), 4097 + 2000 - cap);
    assert_eq!(reader.position(), o.resume_at());
    // From there the reader reads what is held, the bytes written last.
    let got = read_all(&reader);
    assert_eq!(got.len() as u64, cap);
    assert!(got.ends_with(&[b'b'; 2000]));
    fshm::test_hooks::set_ring_read_pause(None);
}

#[test]
fn a_sole_writer_keeps_the_mark_a_killed_appender_left() {
    let g = NameGuard::new("killedmark");
    let cap = 4096u64;
    let name = g.name();
    let owner = fshm::OpenOptions::new()
        .ring(cap, fshm::RingPolicy::Lossy)
        .create(name)
        .unwrap();
    (&owner).write_all(&[b'a'; 4096]).unwrap();
    let paused = Signal::new();
    let mut victim = fork_child(|| {
        let s = fshm::OpenOptions::new().append(true).open(name).unwrap();
        common::pause_appends_forever(&paused);
        let _ = (&s).write(&[b'Z'; 2000]);
        1 // not reached: the hook blocks until the kill
    });
    paused.wait();
    assert_eq!(victim.kill(), common::Status::Signaled(libc::SIGKILL));
    // The victim's 2000 bytes overwrote positions 0..2000 of the ring's second lap,
    // so bytes below 2000 are no longer held, though the length stayed at 4096.
    assert_eq!(owner.len(), 4096);
    assert_eq!(owner.oldest(), 2000);
    // The owner writes on: first after the victim (it loads the length), then as the
    // sole writer since its last write (it remembers it).
    (&owner).write_all(b"0123456789").unwrap();
    (&owner).write_all(b"0123456789").unwrap();
    assert_eq!(owner.len(), 4116);
    assert_eq!(owner.oldest(), 2000, "the high-water mark moved down");
    let guest = fshm::Stream::open(name).unwrap();
    assert_eq!(guest.position(), 2000);
    let got = read_all(&guest);
    assert_eq!(got.len(), 4116 - 2000);
    assert!(got.ends_with(b"01234567890123456789"));
}

/// The byte at absolute position `p` of a stream of 100-byte lines `{n:099}\n`.
fn line_byte(p: u64) -> u8 {
    let line = format!("{:099}\n", p / 100);
    line.as_bytes()[(p % 100) as usize]
}

#[test]
fn a_reader_joining_a_full_lossless_ring_under_a_busy_writer_is_never_overrun() {
    let g = NameGuard::new("join-race");
    let name = g.name();
    let cap = 4 * 4096;
    let owner = lossless(name, cap);
    let started = Signal::new();
    // A writer process writing 100-byte lines without pause, the ring always full.
    let mut writer = fork_child(|| {
        let mut w = fshm::OpenOptions::new().append(false).open(name).unwrap();
        w.detach();
        let mut n = 0u64;
        loop {
            w.write_all(format!("{n:099}\n").as_bytes()).unwrap();
            n += 1;
            if n == 2 * cap / 100 {
                started.notify();
            }
        }
    });
    started.wait();
    // Readers join, read the first 300 bytes from where they started, and leave.
    let (mut joins, mut overruns) = (0, 0);
    for _ in 0..3000 {
        let mut r = fshm::Stream::open(name).unwrap();
        assert!(r.is_attached());
        let start = r.position();
        let mut buf = [0u8; 300];
        match r.read_exact(&mut buf) {
            Ok(()) => {
                for (i, &b) in buf.iter().enumerate() {
                    assert_eq!(b, line_byte(start + i as u64), "byte {}", start + i as u64);
                }
            }
            Err(e) if fshm::overrun_of(&e).is_some() => overruns += 1,
            Err(e) => panic!("{e}"),
        }
        joins += 1;
    }
    writer.kill();
    assert_eq!(overruns, 0, "{overruns} of {joins} joins were overrun");
    drop(owner);
    g.assert_gone();
}
