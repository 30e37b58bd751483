//! Fault injection (issue 7): racing reclaimers of one dead name, guests racing the
//! creation of a stream, `kill -9` of plain readers, and a lossy ring under load read by
//! two processes.
//!
//! (A full `/dev/shm` — the stream stays usable up to what was committed — is asserted
//! by `space.rs`, `a_full_dev_shm_is_enospc_from_the_write_never_sigbus`.)

mod common;

use common::{fork_child, NameGuard, Rng, Signal, Status};
use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

/// Creates `name` in a child, writes to it, and kills the child: a dead owner's stream.
fn dead_stream(name: &str) {
    let created = Signal::new();
    let mut owner = fork_child(|| {
        let mut s = fshm::Stream::create(name).unwrap();
        s.write_all(b"dead owner's bytes").unwrap();
        created.notify();
        loop {
            // SAFETY: plain system call; waits for the SIGKILL.
            unsafe { libc::pause() };
        }
    });
    created.wait();
    assert_eq!(owner.kill(), Status::Signaled(libc::SIGKILL));
    assert_eq!(
        fshm::inspect(name).unwrap().owner,
        fshm::OwnerState::Dead,
        "{name}"
    );
}

#[test]
fn of_two_processes_reclaiming_one_dead_name_exactly_one_wins_and_a_live_stream_stays() {
    const ROUNDS: usize = 50;
    let g = NameGuard::new("reclaim-race");
    let name = g.name();
    let (mut plain_reclaims, mut removed_by_plain) = (0u64, 0u64);
    for round in 0..ROUNDS {
        dead_stream(name);
        let go = Signal::new();
        let results = Signal::new();
        let release = Signal::new();
        // Two creators with reclaim; the winner keeps its stream open until released.
        let mut racers: Vec<_> = (0..2u8)
            .map(|k| {
                let (go, results, release) = (&go, &results, &release);
                fork_child(move || {
                    go.wait();
                    match fshm::OpenOptions::new().reclaim(true).create(name) {
                        Ok(mut s) => {
                            s.write_all(&[b'0' + k]).unwrap();
                            results.send(&[b'W', k]);
                            release.wait();
                            // Still ours: nobody removed or replaced it.
                            assert_eq!(fshm::inspect(name).unwrap().len, 1);
                            assert_eq!(common::read_all(&s), [b'0' + k]);
                            0
                        }
                        Err(e) => {
                            assert_eq!(fshm::errno_of(&e), libc::EEXIST, "{e}");
                            assert_eq!(e.kind(), ErrorKind::AlreadyExists);
                            results.send(&[b'L', k]);
                            0
                        }
                    }
                })
            })
            .collect();
        // A third process runs plain reclaims through the race.
        let reclaimer_done = Signal::new();
        let mut reclaimer = fork_child(|| {
            go.wait();
            let (mut tries, mut removed) = (0u64, 0u64);
            let t = Instant::now();
            // Until the live winner's stream is seen (or a bounded number of tries).
            while tries < 2_000 && t.elapsed() < Duration::from_secs(10) {
                tries += 1;
                match fshm::reclaim(name) {
                    Ok(true) => removed += 1,
                    Ok(false) => {
                        if fshm::inspect(name).is_ok_and(|i| i.owner == fshm::OwnerState::Alive) {
                            break;
                        }
                    }
                    Err(e) => panic!("reclaim: {e}"),
                }
            }
            reclaimer_done.send_u64(tries);
            reclaimer_done.send_u64(removed);
            0
        });
        go.send(&[1, 1, 1]);
        let mut outcomes: Vec<[u8; 2]> = (0..2)
            .map(|_| results.recv(2).try_into().unwrap())
            .collect();
        outcomes.sort();
        let tries = reclaimer_done.recv_u64();
        let removed = reclaimer_done.recv_u64();
        reclaimer.assert_success();
        plain_reclaims += tries;
        removed_by_plain += removed;
        assert!(
            removed <= 1,
            "round {round}: one dead stream removed {removed} times"
        );
        // The plain reclaim may have removed the dead stream before either creator
        // reclaimed it; either way exactly one creator wins.
        assert_eq!(outcomes[0][0], b'L', "round {round}: {outcomes:?}");
        assert_eq!(outcomes[1][0], b'W', "round {round}: {outcomes:?}");
        assert_ne!(outcomes[0][1], outcomes[1][1]);
        // The winner's stream is alive, intact, and not removable by reclaim.
        let info = fshm::inspect(name).unwrap();
        assert_eq!(info.owner, fshm::OwnerState::Alive, "round {round}");
        assert_eq!(info.len, 1);
        assert!(
            !fshm::reclaim(name).unwrap(),
            "reclaim removed a live stream"
        );
        let e = fshm::OpenOptions::new()
            .reclaim(true)
            .create(name)
            .unwrap_err();
        assert_eq!(fshm::errno_of(&e), libc::EEXIST);
        release.send(&[1]);
        for r in &mut racers {
            r.assert_success();
        }
        g.assert_gone();
    }
    eprintln!(
        "faults reclaim race: {ROUNDS} rounds, 2 create-with-reclaim racers + 1 plain reclaimer \
         ({plain_reclaims} fshm::reclaim calls, {removed_by_plain} dead streams removed by them): \
         one winner every round, no live stream removed"
    );
}

#[test]
fn guests_racing_the_creation_never_see_a_half_made_header() {
    const ROUNDS: usize = 20;
    const GUESTS: usize = 4;
    const MAX: u64 = (7 << 20) + 3;
    const FIRST: &[u8] = b"the owner's first bytes";
    let g = NameGuard::new("create-race");
    let name = g.name();
    let (mut failed_opens, mut opens) = (0u64, 0u64);
    for round in 0..ROUNDS {
        let ready = Signal::new();
        let reports = Signal::new();
        let done = Signal::new();
        let mut guests: Vec<_> = (0..GUESTS)
            .map(|_| {
                let (ready, reports, done) = (&ready, &reports, &done);
                fork_child(move || {
                    ready.notify();
                    let deadline = Instant::now() + common::PATIENCE;
                    let mut not_found = 0u64;
                    let s = loop {
                        match fshm::Stream::open(name) {
                            Ok(s) => break s,
                            Err(e) if e.kind() == ErrorKind::NotFound => {
                                not_found += 1;
                                assert!(Instant::now() < deadline, "never created");
                                std::hint::spin_loop();
                            }
                            Err(e) => panic!("a guest racing the creation got: {e}"),
                        }
                    };
                    assert_eq!(s.max_size(), MAX, "a half-made header");
                    assert_eq!(s.role(), fshm::Role::Guest);
                    assert!(s.is_empty() || s.len() == FIRST.len() as u64);
                    assert_eq!(
                        s.wait_for(0, Some(common::PATIENCE)),
                        fshm::WaitStatus::Data
                    );
                    let mut b = vec![0u8; FIRST.len()];
                    assert_eq!(s.read_at(0, &mut b).unwrap(), FIRST.len());
                    assert_eq!(b, FIRST);
                    reports.send_u64(not_found);
                    done.wait();
                    0
                })
            })
            .collect();
        for _ in 0..GUESTS {
            ready.wait();
        }
        let mut owner = fshm::OpenOptions::new()
            .max_size(MAX)
            .mode(0o644)
            .create(name)
            .unwrap();
        owner.write_all(FIRST).unwrap();
        for _ in 0..GUESTS {
            failed_opens += reports.recv_u64();
            opens += 1;
        }
        done.send(&[1; GUESTS]);
        for c in &mut guests {
            c.assert_success();
        }
        drop(owner);
        assert!(!common::shm_exists(name), "round {round}");
    }
    eprintln!(
        "faults creation race: {ROUNDS} rounds x {GUESTS} spinning guests: {opens} opens, all \
         with the right header, {failed_opens} NotFound failures before, no other error"
    );
}

/// `words` as one little-endian byte string, for a single (atomic) pipe write.
fn pack(words: &[u64]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

#[test]
fn kill_9_of_a_plain_reader_goes_unnoticed_by_the_owner_and_other_readers() {
    const TOTAL: u64 = 8 << 20;
    const CHUNK: usize = 4096;
    let g = NameGuard::new("kill-reader");
    let name = g.name();
    let mut owner = fshm::OpenOptions::new().mode(0o644).create(name).unwrap();
    let ready = Signal::new();
    let victims_reading = Signal::new();
    let sums = Signal::new();
    // Two victims: a read-write follower (it registers as a waiter) and a read-only one.
    let mut victims: Vec<_> = [false, true]
        .into_iter()
        .map(|read_only| {
            let (ready, victims_reading) = (&ready, &victims_reading);
            fork_child(move || {
                let s = fshm::OpenOptions::new()
                    .read_only(read_only)
                    .open(name)
                    .unwrap();
                ready.notify();
                let mut f = s.follow();
                let mut b = [0u8; 100];
                f.read_exact(&mut b).unwrap();
                victims_reading.notify();
                // Keep following until killed.
                while f.read(&mut b).unwrap() > 0 {}
                1
            })
        })
        .collect();
    let mut survivors: Vec<_> = [false, true]
        .into_iter()
        .map(|read_only| {
            let (ready, sums) = (&ready, &sums);
            fork_child(move || {
                let s = fshm::OpenOptions::new()
                    .read_only(read_only)
                    .open(name)
                    .unwrap();
                ready.notify();
                let mut all = Vec::new();
                s.follow().read_to_end(&mut all).unwrap();
                // One write per report: reports of two processes share the pipe.
                sums.send(&pack(&[all.len() as u64, common::checksum(&all)]));
                0
            })
        })
        .collect();
    for _ in 0..4 {
        ready.wait();
    }
    let mut rng = Rng::new(77);
    let mut written = Vec::with_capacity(TOTAL as usize);
    let mut chunk = [0u8; CHUNK];
    let mut killed = false;
    while (written.len() as u64) < TOTAL {
        rng.fill(&mut chunk);
        owner.write_all(&chunk).unwrap();
        written.extend_from_slice(&chunk);
        if !killed && written.len() as u64 >= TOTAL / 4 {
            victims_reading.wait();
            victims_reading.wait();
            for v in &mut victims {
                assert_eq!(v.kill(), Status::Signaled(libc::SIGKILL));
            }
            killed = true;
        }
    }
    assert!(killed);
    assert_eq!(owner.len(), TOTAL);
    drop(owner);
    for _ in 0..2 {
        assert_eq!(sums.recv_u64(), TOTAL, "a surviving reader lost bytes");
        assert_eq!(sums.recv_u64(), common::checksum(&written));
    }
    for s in &mut survivors {
        s.assert_success();
    }
    eprintln!(
        "faults kill reader: 2 followers (read-write and read-only) killed mid-stream, 2 \
         survivors read all {TOTAL} bytes"
    );
    g.assert_gone();
}

/// A follower killed in its sleep leaves the "someone sleeps" bit of the futex word set;
/// the next commit clears it with one wake-up, and later commits make no system call
/// (the word no longer moves).
#[test]
fn a_follower_killed_asleep_costs_one_wake_not_one_per_commit() {
    let g = NameGuard::new("dead-sleeper");
    let name = g.name();
    let mut owner = fshm::Stream::create(name).unwrap();
    let asleep = Signal::new();
    let mut victim = fork_child(|| {
        let s = fshm::Stream::open(name).unwrap();
        asleep.notify();
        // Sleeps until data comes, which it never does before the kill.
        let _ = s.wait_for(0, None);
        0
    });
    asleep.wait();
    let word = common::SeqWord::of(name);
    word.wait_for_sleeper();
    let seq = || word.get();
    assert_eq!(victim.kill(), Status::Signaled(libc::SIGKILL));
    owner.write_all(b"first").unwrap();
    let after_first = seq();
    assert_eq!(after_first & 1, 0, "the first commit clears the stale bit");
    for _ in 0..1000 {
        owner.write_all(b"more").unwrap();
    }
    assert_eq!(
        seq(),
        after_first,
        "commits with nobody asleep must not wake anyone"
    );
    drop(owner);
    g.assert_gone();
}

const REC_MAGIC: [u8; 8] = [0xff; 8];
/// `[8 x 0xff][seq u64][len u32][checksum u64 with the top bit clear]` then `len`
/// payload bytes below 0x80: eight 0xff bytes in a row occur only at a record start, so
/// a reader can find the next record after an overrun.
const REC_HEADER: usize = 28;

fn lossy_record(seq: u64, len: usize) -> Vec<u8> {
    let mut r = vec![0u8; REC_HEADER + len];
    Rng::new(seq).fill(&mut r[REC_HEADER..]);
    for b in &mut r[REC_HEADER..] {
        *b &= 0x7f;
    }
    let sum = common::checksum(&r[REC_HEADER..]) ^ seq & (u64::MAX >> 1);
    r[..8].copy_from_slice(&REC_MAGIC);
    r[8..16].copy_from_slice(&seq.to_le_bytes());
    r[16..20].copy_from_slice(&(len as u32).to_le_bytes());
    r[20..28].copy_from_slice(&sum.to_le_bytes());
    r
}

/// What a lossy reader saw: whole records, overruns, bytes lost, last sequence number.
struct LossyReport {
    records: u64,
    overruns: u64,
    lost: u64,
    last: u64,
}

/// Follows a lossy ring to its end, checking that every record is whole and that
/// sequence numbers only skip right after an overrun.
fn lossy_reader(s: &fshm::Stream, buf_size: usize, slow: bool) -> LossyReport {
    let mut f = s.follow().timeout(Some(common::PATIENCE));
    let mut buf = vec![0u8; buf_size];
    let mut pending: Vec<u8> = Vec::new();
    let mut synced = false;
    let mut overrun_since_last = true;
    let mut rep = LossyReport {
        records: 0,
        overruns: 0,
        lost: 0,
        last: 0,
    };
    let mut last: Option<u64> = None;
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => pending.extend_from_slice(&buf[..n]),
            Err(e) => {
                let o = fshm::overrun_of(&e).unwrap_or_else(|| panic!("not an overrun: {e}"));
                assert!(o.lost() > 0);
                rep.overruns += 1;
                rep.lost += o.lost();
                pending.clear();
                synced = false;
                overrun_since_last = true;
                continue;
            }
        }
        if !synced {
            // Find the next record start.
            match pending.windows(8).position(|w| w == REC_MAGIC) {
                Some(at) => {
                    pending.drain(..at);
                    synced = true;
                }
                None => {
                    let keep = pending.len().min(7);
                    pending.drain(..pending.len() - keep);
                    continue;
                }
            }
        }
        let mut off = 0;
        while pending.len() - off >= REC_HEADER {
            let p = &pending[off..];
            assert_eq!(p[..8], REC_MAGIC, "no record start where one must be");
            let seq = u64::from_le_bytes(p[8..16].try_into().unwrap());
            let len = u32::from_le_bytes(p[16..20].try_into().unwrap()) as usize;
            if p.len() < REC_HEADER + len {
                break;
            }
            let rec = &p[..REC_HEADER + len];
            assert!(
                rec == lossy_record(seq, len),
                "record {seq} is torn or wrong"
            );
            if slow {
                // A slow consumer: it falls behind and gets overrun.
                let mut h = 0u64;
                for _ in 0..20 {
                    h ^= common::checksum(rec);
                }
                std::hint::black_box(h);
            }
            match last {
                Some(l) if !overrun_since_last => assert_eq!(seq, l + 1, "record skipped"),
                Some(l) => assert!(seq > l, "records out of order"),
                None => {}
            }
            last = Some(seq);
            overrun_since_last = false;
            rep.records += 1;
            off += REC_HEADER + len;
        }
        pending.drain(..off);
    }
    rep.last = last.expect("no record at all");
    rep
}

#[test]
fn a_lossy_ring_under_load_gives_two_readers_only_whole_records_or_overruns() {
    const CAP: u64 = 256 << 10;
    const RECORDS: u64 = 60_000;
    let g = NameGuard::new("lossy-load");
    let name = g.name();
    let created = Signal::new();
    let go = Signal::new();
    let mut writer = fork_child(|| {
        let mut s = fshm::OpenOptions::new()
            .ring(CAP, fshm::RingPolicy::Lossy)
            .create(name)
            .unwrap();
        created.notify();
        go.wait();
        go.wait();
        let mut rng = Rng::new(5);
        for seq in 0..RECORDS {
            let len = match rng.below(50) {
                0 => 10_000 + rng.below(50_000) as usize,
                _ => 1 + rng.below(2_000) as usize,
            };
            s.write_all(&lossy_record(seq, len)).unwrap();
        }
        0
    });
    created.wait();
    let reports = Signal::new();
    let mut readers: Vec<_> = [(64 << 10, false), (300, true)]
        .into_iter()
        .map(|(buf_size, slow)| {
            let (go, reports) = (&go, &reports);
            fork_child(move || {
                let s = fshm::Stream::open(name).unwrap();
                go.notify();
                let r = lossy_reader(&s, buf_size, slow);
                assert_eq!(r.last, RECORDS - 1, "the last record is always held");
                reports.send(&pack(&[r.records, r.overruns, r.lost]));
                0
            })
        })
        .collect();
    let figures: Vec<[u64; 3]> = (0..2)
        .map(|_| [reports.recv_u64(), reports.recv_u64(), reports.recv_u64()])
        .collect();
    writer.assert_success();
    for r in &mut readers {
        r.assert_success();
    }
    for f in &figures {
        assert!(f[0] > 0);
    }
    eprintln!(
        "faults lossy ring under load: {RECORDS} records through {} KiB, 2 readers: \
         [records whole, overruns, bytes lost] = {figures:?}",
        CAP >> 10
    );
    g.assert_gone();
}

/// A child forked while another thread of its parent is inside a handle's lazy
/// initialisation (here the mapping of a guest's window, on its first use) uses that
/// handle: it makes the window itself instead of waiting for a thread it does not have.
#[test]
fn a_child_forked_while_another_thread_maps_a_handle_uses_the_handle() {
    use std::sync::atomic::{AtomicBool, Ordering};
    static ENTERED: AtomicBool = AtomicBool::new(false);
    static RELEASE: AtomicBool = AtomicBool::new(false);
    thread_local! {
        /// Only the test's mapping thread pauses (other tests run in this process).
        static PAUSE_ME: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    fn pause() {
        if PAUSE_ME.with(|p| p.get()) {
            ENTERED.store(true, Ordering::SeqCst);
            let start = Instant::now();
            while !RELEASE.load(Ordering::SeqCst) {
                assert!(start.elapsed() < common::patience(), "never released");
                std::thread::yield_now();
            }
        }
    }
    let g = NameGuard::new("fork-lazy-map");
    let mut owner = fshm::Stream::create(g.name()).unwrap();
    owner.write_all(b"mapped by the child").unwrap();
    // A guest maps its window on first use.
    let guest = fshm::Stream::open(g.name()).unwrap();
    fshm::test_hooks::set_map_pause(Some(pause));
    std::thread::scope(|sc| {
        let mapper = sc.spawn(|| {
            PAUSE_ME.with(|p| p.set(true));
            guest.len()
        });
        let start = Instant::now();
        while !ENTERED.load(Ordering::SeqCst) {
            assert!(
                start.elapsed() < common::patience(),
                "the mapping never began"
            );
            std::thread::yield_now();
        }
        let mut child = fork_child(|| {
            let mut buf = [0u8; 64];
            let n = guest.read_at(0, &mut buf).unwrap();
            i32::from(&buf[..n] != b"mapped by the child")
        });
        RELEASE.store(true, Ordering::SeqCst);
        assert_eq!(mapper.join().unwrap(), 19);
        child.assert_success();
    });
    fshm::test_hooks::set_map_pause(None);
}
