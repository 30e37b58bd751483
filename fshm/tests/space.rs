//! Growth and its limits (design brief §4): a stream grows far past its first page and
//! guests opened before see it without reopening; writing past the maximum is `EFBIG`
//! after a short write up to it; a full `/dev/shm` is a clean `ENOSPC`, never `SIGBUS`.

mod common;

use common::{fork_child, read_all, NameGuard, Signal};
use std::io::{Seek, SeekFrom, Write};

fn pattern(i: u64) -> u8 {
    (i.wrapping_mul(2_654_435_761) >> 13) as u8
}

#[test]
fn growth_to_200_mib_is_seen_by_a_guest_opened_before_without_reopening() {
    const SIZE: u64 = 200 << 20;
    const CHUNK: u64 = 1 << 20;
    let g = NameGuard::new("grow");
    let name = g.name();
    let mut owner = fshm::Stream::create(name).unwrap();
    let opened = Signal::new();
    let grown = Signal::new();
    let mut guest = fork_child(|| {
        let s = fshm::Stream::open(name).unwrap();
        assert!(s.is_empty());
        opened.notify();
        grown.wait();
        assert_eq!(s.len(), SIZE);
        let mut buf = vec![0u8; CHUNK as usize];
        let mut off = 0;
        while off < SIZE {
            assert_eq!(s.read_at(off, &mut buf).unwrap(), CHUNK as usize);
            for (k, &b) in buf.iter().enumerate().step_by(509) {
                assert_eq!(b, pattern(off + k as u64), "byte {}", off + k as u64);
            }
            assert_eq!(buf[CHUNK as usize - 1], pattern(off + CHUNK - 1));
            off += CHUNK;
        }
        // The guest grows it further itself, and the owner sees that.
        s.write_at(SIZE, b"guest tail").unwrap();
        0
    });
    opened.wait();
    let mut buf = vec![0u8; CHUNK as usize];
    let mut off = 0;
    while off < SIZE {
        for (k, b) in buf.iter_mut().enumerate() {
            *b = pattern(off + k as u64);
        }
        owner.write_all(&buf).unwrap();
        off += CHUNK;
    }
    grown.notify();
    guest.assert_success();
    assert_eq!(owner.len(), SIZE + 10);
    let mut tail = [0u8; 10];
    owner.read_at(SIZE, &mut tail).unwrap();
    assert_eq!(&tail, b"guest tail");
    let info = fshm::inspect(name).unwrap();
    assert!(info.object_size >= fshm::header::DATA_OFFSET + SIZE + 10);
    drop(owner);
    g.assert_gone();
}

#[test]
fn writing_past_the_maximum_is_a_short_write_then_efbig() {
    const MAX: u64 = 10_000;
    let g = NameGuard::new("efbig");
    let name = g.name();
    let owner = fshm::OpenOptions::new().max_size(MAX).create(name).unwrap();
    assert_eq!(owner.max_size(), MAX);
    // A guest in another process fills it.
    let mut child = fork_child(|| {
        let mut s = fshm::Stream::open(name).unwrap();
        assert_eq!(s.max_size(), MAX);
        s.write_all(&[b'a'; 9_000]).unwrap();
        // Short write up to the maximum...
        assert_eq!(s.write(&[b'b'; 2_000]).unwrap(), 1_000);
        // ...then EFBIG, with nothing changed.
        let e = s.write(b"c").unwrap_err();
        assert_eq!(fshm::errno_of(&e), libc::EFBIG);
        assert_eq!(e.kind(), std::io::ErrorKind::FileTooLarge);
        assert!(e.to_string().contains(name), "{e}");
        assert_eq!(common::errno(s.write_at(MAX, b"x")), libc::EFBIG);
        assert_eq!(common::errno(s.write_at(u64::MAX, b"x")), libc::EFBIG);
        assert_eq!(common::errno(s.set_len(MAX + 1)), libc::EFBIG);
        // write_all reports the failure too.
        s.seek(SeekFrom::Start(MAX - 1)).unwrap();
        assert_eq!(common::errno(s.write_all(b"yz")), libc::EFBIG);
        // An append that does not fit is refused whole.
        let mut app = fshm::OpenOptions::new().append(true).open(name).unwrap();
        assert_eq!(common::errno(app.write(b"q")), libc::EFBIG);
        0
    });
    child.assert_success();
    assert_eq!(owner.len(), MAX);
    let all = read_all(&owner);
    assert!(all[..9_000].iter().all(|&b| b == b'a'));
    assert!(all[9_000..9_999].iter().all(|&b| b == b'b'));
    assert_eq!(all[9_999], b'y');
    owner.set_len(MAX).unwrap();
    drop(owner);
    g.assert_gone();
}

/// Exit codes of the ENOSPC child.
const ENOSPC_OK: i32 = 0;
const NO_NAMESPACE: i32 = 10;

#[test]
fn a_full_dev_shm_is_enospc_from_the_write_never_sigbus() {
    if let Some(reason) = common::cannot_make_private_dev_shm() {
        common::skip(&reason);
        return;
    }
    let name = common::unique_name("enospc");
    let name = name.as_str();
    let mut child = fork_child(|| {
        // A private mount namespace with a 1 MiB tmpfs on /dev/shm: nothing outside sees it.
        if common::private_dev_shm(c"size=1m,mode=1777").is_err() {
            return NO_NAMESPACE;
        }
        let mut s = fshm::Stream::create(name).unwrap();
        let mut written: u64 = 0;
        let chunk: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8 + 1).collect();
        let err = loop {
            match s.write(&chunk) {
                Ok(n) => {
                    assert_eq!(n, chunk.len(), "short write before the error");
                    written += n as u64;
                    assert!(written < 2 << 20, "wrote past the 1 MiB file system");
                }
                Err(e) => break e,
            }
        };
        assert_eq!(fshm::errno_of(&err), libc::ENOSPC, "{err}");
        assert!(err.to_string().contains(name), "{err}");
        assert!(written > 500_000, "only {written} bytes before ENOSPC");
        // Everything committed reads back; the failed write changed nothing.
        assert_eq!(s.len(), written);
        let all = read_all(&s);
        for (i, b) in all.iter().enumerate() {
            assert_eq!(*b, chunk[i % chunk.len()], "byte {i}");
        }
        // Writing into what is already reserved still works; growing still fails.
        s.write_at(0, b"still writable").unwrap();
        assert_eq!(
            common::errno(s.write_at(written + (1 << 20), b"x")),
            libc::ENOSPC
        );
        // A guest fares no better, and no worse.
        let g = fshm::Stream::open(name).unwrap();
        assert_eq!(
            common::errno(g.write_at(written + (1 << 20), b"x")),
            libc::ENOSPC
        );
        assert_eq!(g.len(), written);
        drop(g);
        drop(s);
        assert!(!common::shm_exists(name));
        ENOSPC_OK
    });
    let status = child.wait();
    assert_ne!(
        status,
        common::Status::Signaled(libc::SIGBUS),
        "a full /dev/shm raised SIGBUS"
    );
    assert_ne!(
        status,
        common::Status::Exited(NO_NAMESPACE),
        "the private /dev/shm failed, although the probe made one"
    );
    assert_eq!(status, common::Status::Exited(ENOSPC_OK));
    // Nothing leaked into the real /dev/shm.
    assert!(!common::shm_exists(name));
}

/// The write path follows the followers (`grow.rs`): a 4 KiB write into fresh memory
/// goes through the kernel and extends the object by exactly its size — unless a
/// follower (here in another process) has waited for data and is still open; then it
/// reserves a growth step ahead and writes through the mapping. The follower closing
/// hands small writes back to the kernel path. The bytes are right either way.
#[test]
fn small_fresh_writes_reserve_ahead_only_while_a_follower_is_open() {
    const DATA: u64 = fshm::header::DATA_OFFSET;
    let g = NameGuard::new("followed");
    let name = g.name();
    let mut owner = fshm::Stream::create(name).unwrap();
    let size = || fshm::inspect(name).unwrap().object_size;
    let page: Vec<u8> = (0..4096u64).map(pattern).collect();

    owner.write_all(&page).unwrap();
    assert_eq!(size(), DATA + 4096, "alone: through the kernel, exactly");

    let waited = Signal::new();
    let release = Signal::new();
    let closed = Signal::new();
    let mut follower = fork_child(|| {
        let s = fshm::Stream::open(name).unwrap();
        let status = s.wait_for(4096, Some(std::time::Duration::from_millis(1)));
        assert_eq!(status, fshm::WaitStatus::TimedOut);
        waited.notify();
        release.wait();
        drop(s);
        closed.notify();
        0
    });
    waited.wait();
    owner.write_all(&page).unwrap();
    let reserved = size();
    assert!(
        reserved >= DATA + 64 * 1024, // the first growth step (fshm/src/grow.rs)
        "followed: a growth step ahead, got {reserved}"
    );
    // Fill what was reserved, then write past it.
    let mut at = 8192;
    while DATA + at < reserved {
        owner.write_all(&page).unwrap();
        at += 4096;
    }
    assert_eq!(size(), reserved);

    release.notify();
    closed.wait();
    follower.assert_success();
    owner.write_all(&page).unwrap();
    assert_eq!(
        size(),
        reserved + 4096,
        "the follower closed: exactly again"
    );

    let all = read_all(&owner);
    assert_eq!(all.len() as u64, at + 4096);
    for (i, chunk) in all.chunks(4096).enumerate() {
        assert_eq!(chunk, &page[..], "page {i}");
    }
}
