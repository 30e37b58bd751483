//! Owner liveness (design brief §3, §5): a killed owner reads as dead, its name can be
//! reclaimed on request (never a persistent stream, a live owner's, or a foreign object),
//! and waits end when the owner closes or dies.

mod common;

use common::{fork_child, read_all, shm_exists, Child, NameGuard, Signal};
use fshm::{OwnerState, WaitStatus};
use std::io::Write;
use std::time::{Duration, Instant};

/// Forks an owner that creates `name` with `opts`, writes `data`, reports ready and
/// blocks until killed.
/// The tests of this file run one at a time: a child forked by one test inherits every
/// descriptor the process has open at that moment — OFD lock included — so a parallel
/// test's reclaim or owner would look alive for as long as that child lives.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn blocked_owner(name: &str, opts: &fshm::OpenOptions, data: &[u8]) -> Child {
    let ready = Signal::new();
    let never = Signal::new();
    let child = fork_child(|| {
        let mut s = opts.create(name).unwrap();
        s.write_all(data).unwrap();
        ready.notify();
        // Block until killed (nobody ever signals this pipe).
        never.recv_timeout(1, Duration::from_secs(3600));
        1
    });
    ready.wait();
    child
}

#[test]
fn a_killed_owner_reads_as_dead_and_its_name_needs_reclaim() {
    let _serial = serial();
    let g = NameGuard::new("dead");
    let name = g.name();
    let mut owner = blocked_owner(name, &fshm::OpenOptions::new(), b"old data");
    let guest = fshm::Stream::open(name).unwrap();
    assert_eq!(guest.owner_state(), OwnerState::Alive);
    assert_eq!(fshm::inspect(name).unwrap().owner, OwnerState::Alive);
    // A live owner's stream is never reclaimed.
    let e = fshm::OpenOptions::new()
        .reclaim(true)
        .create(name)
        .unwrap_err();
    assert_eq!(fshm::errno_of(&e), libc::EEXIST);
    assert_eq!(owner.kill(), common::Status::Signaled(libc::SIGKILL));

    assert_eq!(guest.owner_state(), OwnerState::Dead);
    assert_eq!(fshm::inspect(name).unwrap().owner, OwnerState::Dead);
    assert!(fshm::list()
        .unwrap()
        .iter()
        .any(|i| i.name == name && i.owner == OwnerState::Dead));
    // The name outlived the owner; creating it again needs reclaim.
    assert!(shm_exists(name));
    assert_eq!(common::errno(fshm::Stream::create(name)), libc::EEXIST);
    let mut fresh = fshm::OpenOptions::new().reclaim(true).create(name).unwrap();
    assert!(fresh.is_empty());
    fresh.write_all(b"new").unwrap();
    // The guest keeps the old object.
    assert_eq!(read_all(&guest), b"old data");
    assert_eq!(guest.owner_state(), OwnerState::Dead);
    assert_eq!(fshm::inspect(name).unwrap().owner, OwnerState::Alive);
    drop(fresh);
    g.assert_gone();
}

#[test]
fn reclaim_never_removes_a_persistent_stream_of_a_dead_owner() {
    let _serial = serial();
    let g = NameGuard::new("reclaim-persist");
    let name = g.name();
    let mut owner = blocked_owner(name, fshm::OpenOptions::new().persist(true), b"keep");
    owner.kill();
    assert_eq!(fshm::inspect(name).unwrap().owner, OwnerState::Dead);
    let e = fshm::OpenOptions::new()
        .reclaim(true)
        .create(name)
        .unwrap_err();
    assert_eq!(fshm::errno_of(&e), libc::EEXIST);
    let guest = fshm::Stream::open(name).unwrap();
    assert_eq!(read_all(&guest), b"keep");
    drop(guest);
    fshm::force_destroy(name).unwrap();
    g.assert_gone();
}

#[test]
fn reclaim_never_removes_an_object_that_is_not_an_fshm_stream() {
    let _serial = serial();
    let g = NameGuard::new("reclaim-foreign");
    let name = g.name();
    let foreign = b"just some bytes, not a stream header".repeat(200);
    let obj = common::plain_object(name, &foreign);
    let e = fshm::OpenOptions::new()
        .reclaim(true)
        .create(name)
        .unwrap_err();
    assert_eq!(fshm::errno_of(&e), libc::EEXIST);
    assert!(shm_exists(name));
    assert_eq!(obj.pread(0, foreign.len() + 10), foreign);
    drop(obj);
    fshm::force_destroy(name).unwrap();

    // An empty object (no header at all) is not reclaimed either.
    let obj = common::plain_object(name, b"");
    let e = fshm::OpenOptions::new()
        .reclaim(true)
        .create(name)
        .unwrap_err();
    assert_eq!(fshm::errno_of(&e), libc::EEXIST);
    assert!(shm_exists(name));
    assert_eq!(obj.size(), 0);
    drop(obj);
    fshm::force_destroy(name).unwrap();
    g.assert_gone();
}

#[test]
fn wait_for_returns_data_when_a_writer_process_commits() {
    let _serial = serial();
    let g = NameGuard::new("wait-data");
    let name = g.name();
    let owner = fshm::Stream::create(name).unwrap();
    // Nothing written, owner alive: a short wait times out.
    assert_eq!(
        owner.wait_for(0, Some(Duration::from_millis(20))),
        WaitStatus::TimedOut
    );
    let waiting = Signal::new();
    let mut writer = fork_child(|| {
        let mut s = fshm::Stream::open(name).unwrap();
        waiting.wait();
        s.write_all(b"hello").unwrap();
        0
    });
    let guest = fshm::Stream::open(name).unwrap();
    waiting.notify();
    assert_eq!(
        guest.wait_for(0, Some(common::PATIENCE)),
        WaitStatus::Data,
        "the wait did not see the commit"
    );
    assert!(!guest.is_empty());
    writer.assert_success();
    assert_eq!(guest.wait_for(3, Some(Duration::ZERO)), WaitStatus::Data);
    assert_eq!(
        guest.wait_for(5, Some(Duration::from_millis(10))),
        WaitStatus::TimedOut
    );
    drop(guest);
    drop(owner);
    g.assert_gone();
}

#[test]
fn wait_for_ends_when_the_owner_process_closes() {
    let _serial = serial();
    let g = NameGuard::new("wait-close");
    let name = g.name();
    let created = Signal::new();
    let close = Signal::new();
    let mut owner = fork_child(|| {
        let mut s = fshm::Stream::create(name).unwrap();
        s.write_all(b"abc").unwrap();
        created.notify();
        close.wait();
        drop(s);
        0
    });
    created.wait();
    let guest = fshm::Stream::open(name).unwrap();
    close.notify();
    assert_eq!(guest.wait_for(3, Some(common::PATIENCE)), WaitStatus::Ended);
    assert_eq!(guest.owner_state(), OwnerState::Closed);
    // Data already there still counts as data.
    assert_eq!(guest.wait_for(1, Some(common::PATIENCE)), WaitStatus::Data);
    owner.assert_success();
    drop(guest);
    g.assert_gone();
}

#[test]
fn wait_for_ends_soon_after_the_owner_is_killed() {
    let _serial = serial();
    let g = NameGuard::new("wait-kill");
    let name = g.name();
    let mut owner = blocked_owner(name, &fshm::OpenOptions::new(), b"abc");
    let guest = fshm::Stream::open(name).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let (status, ended_at, killed_at) = std::thread::scope(|s| {
        let waiter = s.spawn(|| {
            tx.send(()).unwrap();
            let st = guest.wait_for(3, Some(common::PATIENCE));
            (st, Instant::now())
        });
        rx.recv().unwrap();
        let killed_at = Instant::now();
        owner.kill();
        let (st, at) = waiter.join().unwrap();
        (st, at, killed_at)
    });
    assert_eq!(status, WaitStatus::Ended, "a dead owner must end the wait");
    let took = ended_at.saturating_duration_since(killed_at);
    // Promised: within 250 ms; asserted generously.
    assert!(
        took <= Duration::from_secs(1) * common::time_factor(),
        "wait ended {took:?} after the kill"
    );
    assert_eq!(guest.owner_state(), OwnerState::Dead);
    drop(guest);
    fshm::force_destroy(name).unwrap();
    g.assert_gone();
}

/// An owner that never touched its stream closes it through the fd, without mapping it,
/// yet still wakes a follower asleep on the stream: the futex word moves on.
#[test]
fn an_owner_that_never_wrote_still_wakes_sleepers_when_it_closes() {
    let _serial = serial();
    let g = NameGuard::new("lazy-close");
    let name = g.name();
    let owner = fshm::Stream::create(name).unwrap();
    let asleep = Signal::new();
    let mut follower = fork_child(|| {
        let s = fshm::Stream::open(name).unwrap();
        asleep.notify();
        match s.wait_for(0, None) {
            fshm::WaitStatus::Ended => 0,
            _ => 1,
        }
    });
    asleep.wait();
    let word = common::SeqWord::of(name);
    word.wait_for_sleeper();
    let seq = || word.get();
    let before = seq();
    drop(owner);
    follower.assert_success();
    assert_ne!(seq(), before, "closing did not wake the sleeping follower");
    g.assert_gone();
}

/// The lock object is one page, allocated at creation, holding the futex words writable
/// waiters sleep on (`wait.rs`, "Where waiters sleep"). A writer that truncates it
/// (writers are trusted, but a bug can) must cost no `SIGBUS`: a handle that has not
/// mapped it yet refuses to, and waits by polling the header as a read-only handle
/// does; its waits still see every commit, and the stream ends as usual.
#[test]
fn a_truncated_lock_object_is_never_mapped_and_waits_still_end() {
    let _serial = serial();
    let g = NameGuard::new("lock-page");
    let name = g.name();
    let mut owner = fshm::Stream::create(name).unwrap();
    let lock = common::shm_path(&common::lock_object_name(name));
    assert_eq!(
        std::fs::metadata(&lock).unwrap().len(),
        4096,
        "the lock object is one page from creation on"
    );
    std::fs::OpenOptions::new()
        .write(true)
        .open(&lock)
        .unwrap()
        .set_len(0)
        .unwrap();
    let waiting = Signal::new();
    let mut follower = fork_child(|| {
        let guest = fshm::Stream::open(name).unwrap();
        assert!(guest.is_writable());
        assert_eq!(
            guest.wait_for(0, Some(Duration::from_millis(20))),
            WaitStatus::TimedOut
        );
        waiting.notify();
        assert_eq!(guest.wait_for(0, Some(common::PATIENCE)), WaitStatus::Data);
        assert_eq!(guest.wait_for(1, Some(common::PATIENCE)), WaitStatus::Ended);
        0
    });
    waiting.wait();
    owner.write_all(b"x").unwrap();
    drop(owner);
    follower.assert_success();
    g.assert_gone();
}
