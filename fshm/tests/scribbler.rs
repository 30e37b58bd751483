//! A scribbler (issue 7): a process with write access rewrites random header fields
//! (len, hwm, alloc, seq, waiters, owner_state, the ring writer's wake-up words, reader
//! slots) at random for about 2 s while an appender, followers (read-write and
//! read-only) and a reader run on the stream. They must all end without crashing: only
//! clean errors (an `io::Error` naming the stream) or end-of-stream.
//!
//! The scribbler never truncates the object: that makes others' mappings fault, the one
//! trust boundary `RELIABILITY.md` documents.

mod common;

use common::{fork_child, raw_shm_open, NameGuard, Rng, Signal, Status};
use std::io::{Read, Seek, SeekFrom, Write};
use std::time::{Duration, Instant};

const DURATION: Duration = Duration::from_secs(2);

/// Dynamic header fields `(offset, width)` (the layout table in `fshm::header`).
fn fields() -> Vec<(u64, usize)> {
    let mut f = vec![
        (64, 8),  // len
        (80, 8),  // alloc
        (128, 4), // seq
        (132, 4), // reserved (was a waiter count)
        (192, 4), // owner_state
        (256, 4), // space_seq
        (260, 4), // reserved
        (320, 4), // slot_gen
        (324, 4), // followers
        (384, 8), // hwm
        (392, 8), // ring_writer
    ];
    for k in 0..32 {
        f.push((1024 + 64 * k, 8)); // slot[k].pos
        f.push((1032 + 64 * k, 4)); // slot[k].active
    }
    f
}

fn value(rng: &mut Rng, around: u64) -> u64 {
    match rng.below(6) {
        0 => rng.next_u64(),
        1 => rng.below(1 << 20),
        2 => u64::MAX - rng.below(4),
        3 => 1 << rng.below(64),
        4 => around
            .wrapping_add(rng.below(1 << 16))
            .wrapping_sub(1 << 15),
        _ => rng.below(3),
    }
}

/// Counts of one participant: calls that returned data, clean errors, ends of stream.
#[derive(Default, Debug, Clone, Copy)]
struct Tally {
    ok: u64,
    errors: u64,
    ends: u64,
}

impl Tally {
    fn count<T>(&mut self, r: std::io::Result<T>, name: &str) -> Option<T> {
        match r {
            Ok(v) => {
                self.ok += 1;
                Some(v)
            }
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.contains("fshm stream") && msg.contains(name), "{msg}");
                self.errors += 1;
                None
            }
        }
    }

    fn send(&self, s: &Signal) {
        let b: Vec<u8> = [self.ok, self.errors, self.ends]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        s.send(&b);
    }

    fn recv(s: &Signal) -> Tally {
        let b = s.recv(24);
        let w = |i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap());
        Tally {
            ok: w(0),
            errors: w(1),
            ends: w(2),
        }
    }
}

fn follower(name: &str, read_only: bool, until: Instant) -> Tally {
    let mut t = Tally::default();
    let s = fshm::OpenOptions::new()
        .read_only(read_only)
        .open(name)
        .unwrap();
    let mut buf = vec![0u8; 16 << 10];
    let mut i = 0u64;
    while Instant::now() < until {
        i += 1;
        let mut f = s.follow().timeout(Some(Duration::from_millis(20)));
        if let Some(0) = t.count(f.read(&mut buf), name) {
            t.ends += 1;
        }
        if i % 64 == 0 {
            let _ = t.count((&s).seek(SeekFrom::End(0)), name);
        }
    }
    t
}

fn reader(name: &str, until: Instant) -> Tally {
    let mut t = Tally::default();
    let mut rng = Rng::new(11);
    let s = fshm::Stream::open(name).unwrap();
    let mut buf = vec![0u8; 8 << 10];
    let mut i = 0u64;
    while Instant::now() < until {
        i += 1;
        let len = s.len();
        let at = match rng.below(3) {
            0 => rng.below(len.max(1)),
            1 => len.saturating_sub(rng.below(100)),
            _ => rng.next_u64(),
        };
        t.count(s.read_at(at, &mut buf), name);
        t.count((&s).seek(SeekFrom::End(-1)), name);
        t.count((&s).read(&mut buf), name);
        if s.wait_for(len, Some(Duration::from_millis(1))) == fshm::WaitStatus::Ended {
            t.ends += 1;
        }
        let _ = s.owner_state();
        let _ = s.oldest();
        if i % 50 == 0 {
            // New handles and outside views while the header is being scribbled.
            if let Some(g) = t.count(fshm::Stream::open(name), name) {
                t.count(g.read_at(0, &mut buf), name);
            }
            t.count(fshm::inspect(name), name);
        }
    }
    t
}

fn appender(name: &str, until: Instant) -> Tally {
    let mut t = Tally::default();
    let s = fshm::OpenOptions::new().append(true).open(name).unwrap();
    s.set_write_timeout(Some(Duration::from_millis(20)));
    let rec = [b'r'; 300];
    while Instant::now() < until {
        t.count((&s).write(&rec), name);
    }
    t
}

/// Runs the scribbler against one stream; returns the scribbler's rounds and the
/// tallies of the others.
fn scribble(owner: fshm::Stream) -> (u64, Vec<Tally>) {
    let name = owner.name().to_owned();
    let name = name.as_str();
    let go = Signal::new();
    let reports: Vec<Signal> = (0..5).map(|_| Signal::new()).collect();
    let rounds = Signal::new();
    let start = |go: &Signal| {
        go.wait();
        Instant::now() + DURATION
    };
    let mut children = vec![
        fork_child(|| {
            let until = start(&go);
            appender(name, until).send(&reports[0]);
            0
        }),
        fork_child(|| {
            let until = start(&go);
            follower(name, false, until).send(&reports[1]);
            0
        }),
        fork_child(|| {
            let until = start(&go);
            follower(name, true, until).send(&reports[2]);
            0
        }),
        fork_child(|| {
            let until = start(&go);
            reader(name, until).send(&reports[3]);
            0
        }),
        fork_child(|| {
            let until = start(&go);
            let raw = raw_shm_open(name, libc::O_RDWR, 0).unwrap();
            let size = raw.size();
            let fields = fields();
            let mut rng = Rng::new(12);
            let mut n = 0u64;
            while Instant::now() < until {
                let (off, width) = fields[rng.below(fields.len() as u64) as usize];
                let cur = u64::from_le_bytes(raw.pread(64, 8).try_into().unwrap());
                let v = value(&mut rng, cur);
                raw.pwrite(off, &v.to_le_bytes()[..width]);
                n += 1;
                if n % 16 == 0 {
                    // Give the others a moment with each state.
                    std::thread::yield_now();
                }
            }
            // Honest writers may grow the object; nobody may shrink it.
            assert!(raw.size() >= size, "the object shrank");
            rounds.send_u64(n);
            0
        }),
    ];
    go.send(&[1; 5]);
    // Every participant stops by itself after DURATION; the reports wait in the pipes.
    for c in &mut children {
        let st = c.wait();
        assert_eq!(st, Status::Exited(0), "a participant crashed or failed");
    }
    let n = rounds.recv_u64();
    let tallies: Vec<Tally> = reports[..4].iter().map(Tally::recv).collect();
    drop(owner);
    (n, tallies)
}

#[test]
fn a_scribbled_header_gives_readers_and_writers_only_clean_errors_or_end_of_stream() {
    let mut total = 0;
    for (label, opts) in [
        ("linear", {
            let mut o = fshm::OpenOptions::new();
            o.max_size(64 << 20).mode(0o644);
            o
        }),
        ("lossless ring", {
            let mut o = fshm::OpenOptions::new();
            o.ring(256 << 10, fshm::RingPolicy::Lossless).mode(0o644);
            o
        }),
        ("lossy ring", {
            let mut o = fshm::OpenOptions::new();
            o.ring(256 << 10, fshm::RingPolicy::Lossy).mode(0o644);
            o
        }),
    ] {
        let g = NameGuard::new("scribble");
        let mut owner = opts.create(g.name()).unwrap();
        owner.write_all(&[b'x'; 10_000]).unwrap();
        let (rounds, t) = scribble(owner);
        assert!(rounds > 1000, "only {rounds} scribbles");
        total += rounds;
        eprintln!(
            "scribbler {label}: {rounds} header fields rewritten in {DURATION:?}; \
             [ok calls, clean errors, ends of stream] appender {:?}, follower {:?}, \
             read-only follower {:?}, reader {:?}",
            [t[0].ok, t[0].errors, t[0].ends],
            [t[1].ok, t[1].errors, t[1].ends],
            [t[2].ok, t[2].errors, t[2].ends],
            [t[3].ok, t[3].errors, t[3].ends],
        );
        g.assert_gone();
    }
    eprintln!("scribbler: {total} header fields rewritten in all, no crash");
}
