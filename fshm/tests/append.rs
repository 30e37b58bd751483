//! Append mode (design brief §4): each append lands whole at the current end, atomically
//! with respect to appenders in every process; a process killed mid-append neither wedges
//! the others nor exposes its partial bytes.

mod common;

use common::{checksum, fork_child, read_all, NameGuard, Rng, Signal};
use std::io::Write;

const HEADER: usize = 20;

/// `[writer u32][seq u32][size u32][checksum u64]` then `size` payload bytes.
fn record(writer: u32, seq: u32, size: usize) -> Vec<u8> {
    let mut payload = vec![0u8; size];
    Rng::new(u64::from(writer) << 32 | u64::from(seq)).fill(&mut payload);
    let mut r = Vec::with_capacity(HEADER + size);
    r.extend_from_slice(&writer.to_le_bytes());
    r.extend_from_slice(&seq.to_le_bytes());
    r.extend_from_slice(&(size as u32).to_le_bytes());
    r.extend_from_slice(
        &(checksum(&payload) ^ u64::from(writer) << 32 ^ u64::from(seq)).to_le_bytes(),
    );
    r.extend_from_slice(&payload);
    r
}

/// Parses `bytes` as consecutive records; panics on any torn or interleaved record.
/// Returns the `(writer, seq)` pairs in order.
fn parse(bytes: &[u8]) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    let mut off = 0;
    while off < bytes.len() {
        assert!(off + HEADER <= bytes.len(), "torn record header at {off}");
        let f = |i: usize| u32::from_le_bytes(bytes[off + i..off + i + 4].try_into().unwrap());
        let (writer, seq, size) = (f(0), f(4), f(8) as usize);
        let sum = u64::from_le_bytes(bytes[off + 12..off + 20].try_into().unwrap());
        let end = off + HEADER + size;
        assert!(
            end <= bytes.len(),
            "record {writer}/{seq} at {off} runs past the end"
        );
        let payload = &bytes[off + HEADER..end];
        assert_eq!(
            checksum(payload) ^ u64::from(writer) << 32 ^ u64::from(seq),
            sum,
            "record {writer}/{seq} at {off} is torn or interleaved"
        );
        out.push((writer, seq));
        off = end;
    }
    out
}

fn size_of(rng: &mut Rng) -> usize {
    match rng.below(20) {
        0 => 40_000 + rng.below(60_000) as usize,
        _ => rng.below(3_000) as usize,
    }
}

#[test]
fn appenders_in_several_processes_each_land_every_record_whole_exactly_once() {
    const WRITERS: u32 = 3;
    const PER_WRITER: u32 = 300;
    let g = NameGuard::new("append");
    let name = g.name();
    let owner = fshm::OpenOptions::new()
        .max_size(256 << 20)
        .create(name)
        .unwrap();
    let ready = Signal::new();
    let go = Signal::new();
    let mut children: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (ready, go) = (&ready, &go);
            fork_child(move || {
                let mut s = fshm::OpenOptions::new().append(true).open(name).unwrap();
                assert!(s.is_append());
                ready.notify();
                go.wait();
                let mut rng = Rng::new(u64::from(w) + 100);
                for seq in 0..PER_WRITER {
                    let r = record(w, seq, size_of(&mut rng));
                    // One write call is one append: it must land whole.
                    assert_eq!(s.write(&r).unwrap(), r.len());
                    // The handle's position is the end of its own record.
                    assert!(s.position() >= r.len() as u64);
                }
                0
            })
        })
        .collect();
    for _ in 0..WRITERS {
        ready.wait();
    }
    for _ in 0..WRITERS {
        go.notify();
    }
    for c in &mut children {
        c.assert_success();
    }
    let all = read_all(&owner);
    let got = parse(&all);
    assert_eq!(got.len(), (WRITERS * PER_WRITER) as usize);
    let mut next = vec![0u32; WRITERS as usize];
    for (w, seq) in got {
        assert_eq!(
            seq, next[w as usize],
            "writer {w}: record lost, duplicated or reordered"
        );
        next[w as usize] += 1;
    }
    assert!(next.iter().all(|&n| n == PER_WRITER));
    // Expected total length: every writer's records, regenerated.
    let total: usize = (0..WRITERS)
        .map(|w| {
            let mut rng = Rng::new(u64::from(w) + 100);
            (0..PER_WRITER)
                .map(|_| HEADER + size_of(&mut rng))
                .sum::<usize>()
        })
        .sum();
    assert_eq!(owner.len(), total as u64);
    drop(owner);
    g.assert_gone();
}

#[test]
fn an_appender_killed_mid_append_neither_wedges_others_nor_exposes_its_bytes() {
    const PARTIAL: usize = 100_000;
    const RECORDS: u32 = 50;
    let g = NameGuard::new("append-kill");
    let name = g.name();
    let mut owner = fshm::Stream::create(name).unwrap();
    owner.write_all(b"prefix|").unwrap();
    let paused = Signal::new();
    let mut victim = fork_child(|| {
        let mut s = fshm::OpenOptions::new().append(true).open(name).unwrap();
        common::pause_appends_forever(&paused);
        let _ = s.write(&[b'Z'; PARTIAL]);
        1 // not reached: the hook blocks until the kill
    });
    paused.wait();
    // The victim holds the append lock with its bytes copied but not committed.
    assert_eq!(owner.len(), 7, "partial append bytes were committed");

    let started = Signal::new();
    let mut other = fork_child(|| {
        let mut s = fshm::OpenOptions::new().append(true).open(name).unwrap();
        started.notify();
        for seq in 0..RECORDS {
            let r = record(9, seq, 10);
            assert_eq!(s.write(&r).unwrap(), r.len());
        }
        0
    });
    started.wait();
    assert_eq!(victim.kill(), common::Status::Signaled(libc::SIGKILL));
    // The other appender is not wedged by the dead one's lock.
    other.assert_success();
    let want = 7 + RECORDS as u64 * (HEADER as u64 + 10);
    assert_eq!(owner.len(), want);
    let all = read_all(&owner);
    assert_eq!(&all[..7], b"prefix|");
    let got = parse(&all[7..]);
    assert_eq!(got, (0..RECORDS).map(|s| (9, s)).collect::<Vec<_>>());

    // The victim's uncommitted bytes stay hidden also when the length later grows over
    // them without writing: a gap reads as zeros.
    owner.set_len(want + PARTIAL as u64).unwrap();
    let all = read_all(&owner);
    let gap = &all[want as usize..];
    assert!(
        gap.iter().all(|&b| b == 0),
        "a killed appender's partial bytes show in a gap ({} non-zero)",
        gap.iter().filter(|&&b| b != 0).count()
    );
    // And appending goes on at the end.
    let mut app = fshm::OpenOptions::new().append(true).open(name).unwrap();
    app.write_all(b"end").unwrap();
    assert_eq!(owner.len(), want + PARTIAL as u64 + 3);
    drop(app);
    drop(owner);
    g.assert_gone();
}
