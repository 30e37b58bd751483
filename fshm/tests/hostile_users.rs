//! Users who may only read a stream, played by real unprivileged processes: they cannot
//! delay an appender, a lossless writer, a reader's attach or a reclaim, cannot make a
//! dead owner or a dead reader look alive, and cannot hide a death by waking futex
//! words (design brief §9).
//!
//! The attacker is a forked child running as uid/gid 1002, which the streams' modes
//! (0644) admit for reading only. It takes an OFD read lock on every byte of the stream
//! object (any reader may; on the owner's byte the moment the owner dies), tries the
//! stream's lock object, and then calls `FUTEX_WAKE` on both futex words of the header
//! in a loop until it is killed.
//!
//! The uid switch needs root; run as another user, each test says it is skipped.

mod common;

use common::{fork_child, Child, NameGuard, Signal, Status};
use std::io::{Read, Write};
use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

/// The attacker's uid and gid: neither the streams' owner nor in their group.
const HOSTILE: u32 = 1002;
/// Header offsets of the two futex words (`fshm::header`).
const SEQ_AT: usize = 128;
const SPACE_SEQ_AT: usize = 256;
/// How soon a death must reach those who wait for it, whatever wake-ups arrive; the
/// tests allow four times this on a loaded machine (times `common::time_factor()`).
const DEATH_NOTICE: Duration = Duration::from_millis(250);

/// Whether this process can switch users; if not, the test prints its skip line.
fn root() -> bool {
    !common::skip_unless_users_can_switch()
}

/// What the attacker could do, as it reports it.
struct Report {
    /// `fcntl(F_OFD_SETLK, F_RDLCK)` over every byte of the stream object but the
    /// owner's: 0 or errno.
    read_lock: i32,
    /// `F_OFD_SETLK, F_WRLCK` on byte 0 through its read-only descriptor: errno.
    write_lock: i32,
    /// `shm_open` of the lock object, read-only: errno (0 if it opened).
    lock_object: i32,
}

/// Starts the attacker on `name` and returns once it holds its read lock and has begun
/// waking the futex words. The signal returned gets a byte when the attacker also holds
/// a read lock on the owner's byte (granted when the owner dies).
fn attacker(name: &str) -> (Child, Report, Signal) {
    let ready = Signal::new();
    let owner_byte = Signal::new();
    let child = fork_child(|| {
        common::drop_privileges(HOSTILE);
        let c = std::ffi::CString::new(name).unwrap();
        // SAFETY: `c` is NUL-terminated.
        let fd = unsafe { libc::shm_open(c.as_ptr(), libc::O_RDONLY, 0) };
        assert!(
            fd >= 0,
            "the attacker may read: {}",
            std::io::Error::last_os_error()
        );
        let lock = move |cmd: i32, kind: i32, start: i64, len: i64| -> i32 {
            // SAFETY: an all-zero flock is a valid value of this plain C struct.
            let mut fl: libc::flock = unsafe { std::mem::zeroed() };
            fl.l_type = kind as libc::c_short;
            fl.l_whence = libc::SEEK_SET as libc::c_short;
            fl.l_start = start;
            fl.l_len = len;
            // SAFETY: `fl` is a valid flock for the call.
            if unsafe { libc::fcntl(fd, cmd, &fl) } == 0 {
                0
            } else {
                std::io::Error::last_os_error().raw_os_error().unwrap()
            }
        };
        // Every byte from 1 on, to the end of time.
        let read_lock = lock(libc::F_OFD_SETLK, libc::F_RDLCK, 1, 0);
        let write_lock = lock(libc::F_OFD_SETLK, libc::F_WRLCK, 1, 1);
        // The owner's byte, as soon as the owner's write lock goes.
        let owner_byte = &owner_byte;
        std::thread::scope(|t| {
            t.spawn(move || {
                assert_eq!(lock(libc::F_OFD_SETLKW, libc::F_RDLCK, 0, 1), 0);
                owner_byte.notify();
            });
            attack(name, fd, [read_lock, write_lock], &ready)
        })
    });
    let report = Report {
        read_lock: ready.recv_u64() as i32,
        write_lock: ready.recv_u64() as i32,
        lock_object: ready.recv_u64() as i32,
    };
    (child, report, owner_byte)
}

/// The attacker's loop: reports, then wakes every futex word's sleepers, forever.
fn attack(name: &str, fd: libc::c_int, locks: [i32; 2], ready: &Signal) -> i32 {
    {
        let [read_lock, write_lock] = locks;
        let lock_name = std::ffi::CString::new(common::lock_object_name(name)).unwrap();
        // SAFETY: `lock_name` is NUL-terminated.
        let lfd = unsafe { libc::shm_open(lock_name.as_ptr(), libc::O_RDONLY, 0) };
        let lock_object = if lfd >= 0 {
            0
        } else {
            std::io::Error::last_os_error().raw_os_error().unwrap()
        };
        // SAFETY: maps the header page read-only from a valid descriptor.
        let header = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        assert_ne!(header, libc::MAP_FAILED);
        for v in [read_lock, write_lock, lock_object] {
            ready.send_u64(v as u64);
        }
        let word = |at: usize| (header as usize + at) as *const AtomicU32;
        loop {
            for at in [SEQ_AT, SPACE_SEQ_AT] {
                // SAFETY: FUTEX_WAKE on an aligned word of a live mapping; it only
                // wakes sleepers.
                unsafe {
                    libc::syscall(
                        libc::SYS_futex,
                        word(at),
                        libc::FUTEX_WAKE,
                        i32::MAX,
                        0,
                        0,
                        0,
                    )
                };
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

/// The attacker really holds its read lock, and gets nowhere else.
fn assert_attacking(r: &Report) {
    assert_eq!(r.read_lock, 0, "a reader may read-lock the whole object");
    assert_eq!(
        r.write_lock,
        libc::EBADF,
        "no write lock through a read-only descriptor"
    );
    assert_eq!(
        r.lock_object,
        libc::EACCES,
        "a reader may not open the lock object"
    );
}

#[test]
fn a_read_only_user_cannot_delay_appenders_or_opens() {
    if !root() {
        return;
    }
    let g = NameGuard::new("hostile-append");
    let name = g.name();
    let owner = fshm::OpenOptions::new().mode(0o644).create(name).unwrap();
    let (mut spy, report, _) = attacker(name);
    assert_attacking(&report);
    // Two appender processes, 200 appends each, while the attacker holds its lock.
    let appender = |tag: u8| {
        fork_child(move || {
            let mut s = fshm::OpenOptions::new().append(true).open(name).unwrap();
            for i in 0..200u8 {
                s.write_all(&[tag, i, b'\n']).unwrap();
            }
            0
        })
    };
    let (mut a, mut b) = (appender(b'a'), appender(b'b'));
    // Bounded: appenders blocked by the read lock would never finish.
    let bound = Duration::from_secs(30) * common::time_factor();
    assert_eq!(a.wait_timeout(bound), Status::Exited(0));
    assert_eq!(b.wait_timeout(bound), Status::Exited(0));
    assert_eq!(owner.len(), 2 * 200 * 3);
    let mut all = Vec::new();
    (&owner).read_to_end(&mut all).unwrap();
    for tag in [b'a', b'b'] {
        let mine: Vec<u8> = all
            .chunks(3)
            .filter(|c| c[0] == tag)
            .map(|c| c[1])
            .collect();
        assert_eq!(
            mine,
            (0..200u8).collect::<Vec<_>>(),
            "appends of {}",
            tag as char
        );
    }
    // Guests still open, read-write and read-only.
    assert!(fshm::Stream::open(name).unwrap().is_writable());
    spy.kill();
    drop(owner);
    g.assert_gone();
}

#[test]
fn a_read_only_user_cannot_keep_a_dead_owner_alive_or_hide_its_death() {
    if !root() {
        return;
    }
    let g = NameGuard::new("hostile-owner");
    let name = g.name();
    let created = Signal::new();
    let mut owner = fork_child(|| {
        let mut s = fshm::OpenOptions::new().mode(0o644).create(name).unwrap();
        s.write_all(b"last words\n").unwrap();
        created.notify();
        loop {
            // SAFETY: waits for the signal that ends the process.
            unsafe { libc::pause() };
        }
    });
    created.wait();
    let follower = fshm::Stream::open(name).unwrap();
    let reader = fshm::OpenOptions::new().read_only(true).open(name).unwrap();
    let (mut spy, report, owner_byte) = attacker(name);
    assert_attacking(&report);
    assert_eq!(owner.kill(), Status::Signaled(libc::SIGKILL));
    owner_byte.wait(); // the attacker now holds a read lock on the owner's byte
                       // The attacker's read lock on the owner's byte is no token.
    assert_eq!(follower.owner_state(), fshm::OwnerState::Dead);
    assert_eq!(fshm::inspect(name).unwrap().owner, fshm::OwnerState::Dead);
    // Followers past the last byte end, through the wake-up spam, writable or not. They
    // wait without a timeout (a wait's own deadline would end its last sleep quietly and
    // let it look); the test gives up after a bound far above the promise.
    for s in [&follower, &reader] {
        let from = Instant::now();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::scope(|t| {
            t.spawn(move || tx.send(s.wait_for(11, None)));
            let got = rx.recv_timeout(4 * DEATH_NOTICE * common::time_factor());
            assert_eq!(got, Ok(fshm::WaitStatus::Ended), "the death was hidden");
        });
        eprintln!("death noticed after {:?}", from.elapsed());
    }
    let mut lines = String::new();
    std::io::BufReader::new(follower.follow())
        .read_to_string(&mut lines)
        .unwrap();
    assert_eq!(lines, "last words\n");
    // Reclaim still works: the attacker cannot hold the name.
    let fresh = fshm::OpenOptions::new()
        .reclaim(true)
        .create(name)
        .expect("reclaim of a dead owner's stream");
    assert_eq!(fresh.len(), 0);
    spy.kill();
    drop((fresh, follower, reader));
    g.assert_gone();
}

#[test]
fn a_read_only_user_cannot_hold_a_lossless_writer_or_take_reader_slots() {
    if !root() {
        return;
    }
    let g = NameGuard::new("hostile-slots");
    let name = g.name();
    let cap = 4096u64;
    let mut writer = fshm::OpenOptions::new()
        .mode(0o644)
        .ring(cap, fshm::RingPolicy::Lossless)
        .create(name)
        .unwrap();
    writer.set_write_timeout(Some(Duration::from_secs(20) * common::time_factor()));
    let (mut spy, report, _) = attacker(name);
    assert_attacking(&report);
    // An honest reader attaches despite the read locks on every byte of the stream...
    let attached = Signal::new();
    let mut reader = fork_child(|| {
        let s = fshm::Stream::open(name).unwrap();
        assert!(s.is_attached(), "a writable guest attaches");
        attached.notify();
        loop {
            // SAFETY: waits for the signal that ends the process.
            unsafe { libc::pause() };
        }
    });
    attached.wait();
    assert_eq!(fshm::inspect(name).unwrap().attached_readers, 1);
    // ... and holds the writer while it lives: the ring fills and a write would wait.
    writer.write_all(&vec![7u8; cap as usize]).unwrap();
    writer.set_write_timeout(Some(Duration::from_millis(100)));
    let e = writer.write(&[8u8; 16]).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}");
    // Once it dies, the writer goes on within the liveness bound, through the spam.
    assert_eq!(reader.kill(), Status::Signaled(libc::SIGKILL));
    writer.set_write_timeout(Some(4 * DEATH_NOTICE * common::time_factor()));
    let more = vec![9u8; 3 * cap as usize];
    let mut done = 0;
    while done < more.len() {
        done += writer
            .write(&more[done..])
            .expect("a dead reader holds the writer");
    }
    assert_eq!(writer.len(), 4 * cap);
    // All 32 slots are still free for honest readers.
    let guests: Vec<_> = (0..32).map(|_| fshm::Stream::open(name).unwrap()).collect();
    assert!(guests.iter().all(fshm::Stream::is_attached));
    spy.kill();
    drop(guests);
    drop(writer);
    g.assert_gone();
}

#[test]
fn only_the_classes_that_may_write_can_open_the_lock_object() {
    if !root() {
        return;
    }
    for (mode, member_may) in [(0o640, false), (0o660, true), (0o600, false)] {
        let g = NameGuard::new("hostile-lockmode");
        let name = g.name();
        let owner = fshm::OpenOptions::new().mode(mode).create(name).unwrap();
        owner.set_group(1000).unwrap(); // the stream and its lock object
        let mut member = fork_child(|| {
            // SAFETY: plain system calls with valid arguments.
            unsafe {
                assert_eq!(libc::setgroups(1, [1000].as_ptr()), 0);
                assert_eq!(libc::setgid(1001), 0);
                assert_eq!(libc::setuid(1001), 0);
            }
            let lock = common::raw_shm_open(&common::lock_object_name(name), libc::O_RDWR, 0);
            let got = lock.map(drop).map_err(|e| e.raw_os_error());
            let want = if member_may {
                Ok(())
            } else {
                Err(Some(libc::EACCES))
            };
            assert_eq!(got, want, "mode {mode:o}");
            if member_may {
                // A writer of the group appends through the lock object.
                let mut s = fshm::OpenOptions::new().append(true).open(name).unwrap();
                s.write_all(b"group append").unwrap();
            }
            0
        });
        member.assert_success();
        drop(owner);
        g.assert_gone();
    }
}
