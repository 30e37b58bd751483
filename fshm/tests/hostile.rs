//! Untrusted headers (design brief §6, §3): an object that is not an fshm stream is
//! refused with `EPROTO` at once — a wrong magic, an empty object, a header without its
//! magic or with a half-written one, whatever locks are held on it (streams are
//! published whole: nothing at a name is a stream being set up); a malformed or hostile
//! header gives an error, never a crash.
//!
//! Everything that touches a scribbled header runs in a forked child, so a crash shows as
//! a signal in the child's status instead of killing the test harness.

mod common;

use common::{fork_child, plain_object, raw_shm_open, NameGuard, Rng};
use std::io::{Read, Seek, SeekFrom, Write};
use std::time::{Duration, Instant};

/// Header field offsets (the layout table in `fshm::header`).
const MAGIC: u64 = 0;
const VERSION: u64 = 8;
const DATA_OFFSET_FIELD: u64 = 12;
const MAX_SIZE: u64 = 16;
const RING_CAPACITY: u64 = 24;
const FLAGS: u64 = 32;
const READER_SLOTS: u64 = 36;
const LOCK_INO: u64 = 40;
const LOCK_KEY: u64 = 72;
const LEN: u64 = 64;
const HWM: u64 = 384;
const ALLOC: u64 = 80;
const OWNER_STATE: u64 = 192;

/// What "at once" allows a refusal (a few system calls) on a loaded machine: far less
/// than any wait the library could be making.
const AT_ONCE: Duration = Duration::from_millis(500);

#[test]
fn an_object_with_a_wrong_magic_is_refused_with_eproto_at_once() {
    let g = NameGuard::new("wrong-magic");
    let name = g.name();
    let mut junk = vec![0u8; 8192];
    Rng::new(1).fill(&mut junk);
    junk[0] |= 1; // a non-zero magic
    let obj = plain_object(name, &junk);
    let t = Instant::now();
    let e = fshm::Stream::open(name).unwrap_err();
    assert_eq!(fshm::errno_of(&e), libc::EPROTO, "{e}");
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
    assert!(e.to_string().contains(name), "{e}");
    // "At once": nothing is waited for.
    assert!(
        t.elapsed() < AT_ONCE * common::time_factor(),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(common::errno(fshm::inspect(name)), libc::EPROTO);
    assert!(!fshm::list().unwrap().iter().any(|i| i.name == name));
    // Nothing was changed.
    assert_eq!(obj.pread(0, 8192), junk);
    drop(obj);
    fshm::force_destroy(name).unwrap();
    g.assert_gone();
}

#[test]
fn an_empty_object_with_no_owner_is_refused_with_eproto_at_once() {
    let g = NameGuard::new("empty");
    let name = g.name();
    for size in [0u64, 8192] {
        let obj = plain_object(name, b"");
        obj.ftruncate(size);
        let t = Instant::now();
        let e = fshm::Stream::open(name).unwrap_err();
        assert_eq!(fshm::errno_of(&e), libc::EPROTO, "size {size}: {e}");
        assert!(
            t.elapsed() < AT_ONCE * common::time_factor(),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(obj.size(), size, "the guest changed the object");
        drop(obj);
        fshm::force_destroy(name).unwrap();
    }
    g.assert_gone();
}

/// Takes the owner's liveness lock (an OFD lock on byte 0) on a raw descriptor, as an
/// owner does while it sets the header up.
fn hold_owner_lock(fd: libc::c_int) {
    // SAFETY: an all-zero flock is a valid value of this plain C struct.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = 0;
    fl.l_len = 1;
    // SAFETY: `fl` is a valid flock for the call.
    let r = unsafe { libc::fcntl(fd, libc::F_OFD_SETLK, &fl) };
    assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
}

#[test]
fn a_header_without_its_whole_magic_is_refused_at_once_even_with_the_owner_lock_held() {
    // What a creator's object looks like while it is being set up — but at the name, where
    // a create never puts one (it publishes its stream whole): the owner lock held, the
    // header zero, or all but its magic written, or its magic half-written. Whoever holds
    // the lock, no open waits for it.
    let g = NameGuard::new("setting-up");
    let name = g.name();
    let model = NameGuard::new("model");
    let real = fshm::Stream::create(model.name()).unwrap();
    let model_fd = raw_shm_open(model.name(), libc::O_RDONLY, 0).unwrap();
    let header = model_fd.pread(0, 4096);
    drop(real);
    let mut half_magic = header.clone();
    half_magic[4..8].fill(0);
    let mut no_magic = header.clone();
    no_magic[..8].fill(0);
    for (what, bytes) in [
        ("a zero header", vec![0u8; 4096]),
        ("all but the magic", no_magic),
        ("a half-written magic", half_magic),
    ] {
        let obj = plain_object(name, &bytes);
        obj.ftruncate(8192);
        hold_owner_lock(obj.fd);
        for read_only in [false, true] {
            let t = Instant::now();
            let e = fshm::OpenOptions::new()
                .read_only(read_only)
                .open(name)
                .unwrap_err();
            assert_eq!(fshm::errno_of(&e), libc::EPROTO, "{what}: {e}");
            assert!(e.to_string().contains("not an fshm stream"), "{e}");
            assert!(
                t.elapsed() < AT_ONCE * common::time_factor(),
                "{what}: {:?}",
                t.elapsed()
            );
        }
        assert_eq!(common::errno(fshm::inspect(name)), libc::EPROTO, "{what}");
        assert_eq!(obj.pread(0, 4096), bytes, "{what}: the guest changed it");
        drop(obj);
        fshm::force_destroy(name).unwrap();
    }
    g.assert_gone();
    model.assert_gone();
}

/// One hostile header: creates a real stream with some data, scribbles `patch` over its
/// header through a separate descriptor, then opens it as a guest and uses it. Runs in a
/// child; returns the errno of the open (0 if it opened).
fn scribbled(tag: &str, patch: &[(u64, Vec<u8>)], check: fn(&fshm::Stream)) -> i32 {
    let g = NameGuard::new(tag);
    let name = g.name();
    let errno_slot = common::Signal::new();
    let mut child = fork_child(|| {
        let mut owner = fshm::Stream::create(name).unwrap();
        owner.write_all(&[b'd'; 10_000]).unwrap();
        let raw = raw_shm_open(name, libc::O_RDWR, 0).unwrap();
        for (off, bytes) in patch {
            raw.pwrite(*off, bytes);
        }
        let opened = fshm::Stream::open(name);
        let code = match &opened {
            Ok(_) => 0,
            Err(e) => {
                assert!(e.to_string().contains(name), "{e}");
                fshm::errno_of(e)
            }
        };
        errno_slot.send_u64(code as u64);
        if let Ok(guest) = opened {
            check(&guest);
            use_everything(&guest);
        }
        // The owner itself must survive a hostile header too.
        use_everything(&owner);
        let _ = fshm::inspect(name);
        let _ = fshm::list();
        owner.set_len(0).ok();
        drop(owner);
        0
    });
    let code = errno_slot.recv_u64() as i32;
    let status = child.wait();
    assert_eq!(
        status,
        common::Status::Exited(0),
        "{tag}: child crashed or failed"
    );
    // The owner closed: nothing left, whatever the header said.
    let _ = fshm::force_destroy(name);
    g.assert_gone();
    code
}

/// Every operation of a handle; each may fail, none may crash.
fn use_everything(s: &fshm::Stream) {
    let mut h = s;
    let mut buf = vec![0u8; 70_000];
    let _ = s.len();
    let _ = s.is_empty();
    let _ = s.owner_state();
    let _ = s.read_at(0, &mut buf);
    let _ = s.read_at(9_990, &mut buf);
    let _ = s.read_at(u64::MAX - 5, &mut buf);
    let _ = h.seek(SeekFrom::End(0));
    let _ = h.seek(SeekFrom::End(-1));
    let _ = h.seek(SeekFrom::Start(0));
    let mut v = Vec::new();
    let _ = h.read_to_end(&mut v);
    let _ = s.wait_for(0, Some(Duration::from_millis(1)));
    let _ = s.wait_for(u64::MAX, Some(Duration::from_millis(1)));
    let _ = s.write_at(20_000, b"past the end");
    let _ = s.write_at(3, b"inside");
    let _ = s.write_at(u64::MAX - 3, b"far");
    let _ = h.seek(SeekFrom::End(5));
    let _ = h.write(b"tail");
    let _ = s.set_len(5);
    let _ = s.set_len(200_000);
    let _ = s.read_at(0, &mut buf);
}

/// Header bytes to overwrite: `(offset, bytes)` pairs.
type Patch = Vec<(u64, Vec<u8>)>;

fn u32b(v: u32) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

fn u64b(v: u64) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

fn no_check(_: &fshm::Stream) {}

#[test]
fn a_header_of_random_bytes_is_refused_with_eproto() {
    let mut junk = vec![0u8; 4096];
    Rng::new(2).fill(&mut junk);
    junk[0] |= 1;
    assert_eq!(scribbled("junk", &[(0, junk)], no_check), libc::EPROTO);
}

#[test]
fn malformed_fixed_fields_are_refused_with_eproto() {
    let cases: Vec<(&str, Patch)> = vec![
        ("huge-max", vec![(MAX_SIZE, u64b(u64::MAX))]),
        ("max-over-limit", vec![(MAX_SIZE, u64b((1 << 44) + 1))]),
        ("zero-max", vec![(MAX_SIZE, u64b(0))]),
        ("bad-flags", vec![(FLAGS, u32b(0x80))]),
        ("lossless-linear", vec![(FLAGS, u32b(4))]),
        ("ring-no-cap", vec![(FLAGS, u32b(2))]),
        ("cap-no-ring", vec![(RING_CAPACITY, u64b(4096))]),
        ("version", vec![(VERSION, u32b(1))]),
        ("version-2", vec![(VERSION, u32b(2))]),
        ("version-next", vec![(VERSION, u32b(4))]),
        ("no-lock-object", vec![(LOCK_INO, u64b(0))]),
        ("no-lock-key", vec![(LOCK_KEY, u64b(0))]),
        ("data-offset", vec![(DATA_OFFSET_FIELD, u32b(0))]),
        ("slots", vec![(READER_SLOTS, u32b(1_000_000))]),
    ];
    for (tag, patch) in cases {
        assert_eq!(scribbled(tag, &patch, no_check), libc::EPROTO, "{tag}");
    }
}

#[test]
fn a_length_beyond_the_maximum_or_the_object_gives_errors_not_crashes() {
    // len > max_size: the guest opens (the fixed fields are fine) but reads are refused.
    fn len_over_max(s: &fshm::Stream) {
        let mut b = [0u8; 16];
        assert_eq!(common::errno(s.read_at(0, &mut b)), libc::EPROTO);
        let mut h = s;
        assert_eq!(common::errno(h.seek(SeekFrom::End(0))), libc::EPROTO);
        assert!(s.len() <= s.max_size());
    }
    let code = scribbled(
        "len-over-max",
        &[(MAX_SIZE, u64b(1 << 20)), (LEN, u64b((1 << 20) + 1))],
        len_over_max,
    );
    assert_eq!(code, 0);

    // len within max_size but past the object's real size.
    fn len_past_object(s: &fshm::Stream) {
        let mut b = vec![0u8; 4096];
        let at = s.len() - 10;
        assert_eq!(common::errno(s.read_at(at, &mut b)), libc::EPROTO);
        // A large read (through pread, the copy rule) is refused the same way.
        let mut big = vec![0u8; 1 << 16];
        assert_eq!(
            common::errno(s.read_at(at - 60_000, &mut big)),
            libc::EPROTO
        );
        // Bytes the object does hold still read.
        assert_eq!(s.read_at(0, &mut b[..16]).unwrap(), 16);
    }
    let code = scribbled(
        "len-past-object",
        &[(MAX_SIZE, u64b(1 << 40)), (LEN, u64b((1 << 40) - 1))],
        len_past_object,
    );
    assert_eq!(code, 0);
    let code = scribbled(
        "len-past-object-1g",
        &[(LEN, u64b(1 << 29))],
        len_past_object,
    );
    assert_eq!(code, 0);

    // Huge high-water mark and allocation hints, and a garbage owner state.
    let code = scribbled(
        "hints",
        &[
            (HWM, u64b(u64::MAX)),
            (ALLOC, u64b(u64::MAX)),
            (OWNER_STATE, u32b(77)),
        ],
        |s| {
            // Writes past the length still work and the gap is bounded by the window.
            s.write_at(100_000, b"ok").unwrap();
            let mut b = [0u8; 2];
            s.read_at(100_000, &mut b).unwrap();
            assert_eq!(&b, b"ok");
        },
    );
    assert_eq!(code, 0);
}

#[test]
fn a_header_scribbled_after_the_guest_opened_gives_errors_not_crashes() {
    let g = NameGuard::new("late-scribble");
    let name = g.name();
    let mut child = fork_child(|| {
        let mut owner = fshm::Stream::create(name).unwrap();
        owner.write_all(&[1u8; 5000]).unwrap();
        let guest = fshm::Stream::open(name).unwrap();
        let raw = raw_shm_open(name, libc::O_RDWR, 0).unwrap();
        // Fixed fields change under the guest: it keeps its own checked copy.
        raw.pwrite(MAX_SIZE, &u64b(u64::MAX));
        raw.pwrite(FLAGS, &u32b(u32::MAX));
        assert_eq!(guest.max_size(), fshm::DEFAULT_MAX_SIZE);
        raw.pwrite(LEN, &u64b(fshm::DEFAULT_MAX_SIZE));
        let mut b = vec![0u8; 4096];
        assert_eq!(
            common::errno(guest.read_at(fshm::DEFAULT_MAX_SIZE - 100, &mut b)),
            libc::EPROTO
        );
        use_everything(&guest);
        raw.pwrite(LEN, &u64b(u64::MAX));
        use_everything(&guest);
        // A random scribble over the whole header, many times.
        let mut rng = Rng::new(3);
        let mut junk = vec![0u8; 4096];
        for _ in 0..50 {
            rng.fill(&mut junk);
            raw.pwrite(0, &junk);
            use_everything(&guest);
        }
        drop(guest);
        drop(raw);
        drop(owner);
        0
    });
    assert_eq!(child.wait(), common::Status::Exited(0));
    let _ = fshm::force_destroy(name);
    g.assert_gone();
}

#[test]
fn randomly_mutated_headers_give_errors_or_work_but_never_crash() {
    let g = NameGuard::new("fuzz");
    let name = g.name();
    let mut child = fork_child(|| {
        let mut rng = Rng::new(4);
        let fields: [(u64, usize); 11] = [
            (MAGIC, 8),
            (VERSION, 4),
            (DATA_OFFSET_FIELD, 4),
            (MAX_SIZE, 8),
            (RING_CAPACITY, 8),
            (FLAGS, 4),
            (READER_SLOTS, 4),
            (LEN, 8),
            (HWM, 8),
            (ALLOC, 8),
            (OWNER_STATE, 4),
        ];
        let (mut opened, mut refused) = (0, 0);
        for round in 0..150 {
            let mut owner = fshm::Stream::create(name).unwrap();
            owner
                .write_all(&vec![7u8; rng.below(200_000) as usize])
                .unwrap();
            let raw = raw_shm_open(name, libc::O_RDWR, 0).unwrap();
            // Mutate one to three fields (the magic rarely, so most rounds get past it).
            for _ in 0..1 + rng.below(3) {
                let (off, size) = fields[1 + rng.below(fields.len() as u64 - 1) as usize];
                let (off, size) = if rng.below(20) == 0 {
                    (MAGIC, 8)
                } else {
                    (off, size)
                };
                let v = match rng.below(4) {
                    0 => rng.next_u64(),
                    1 => rng.below(1 << 20),
                    2 => u64::MAX - rng.below(3),
                    _ => 1u64 << rng.below(64),
                };
                raw.pwrite(off, &v.to_le_bytes()[..size]);
            }
            match fshm::OpenOptions::new().open(name) {
                Ok(guest) => {
                    opened += 1;
                    use_everything(&guest);
                }
                Err(e) => {
                    refused += 1;
                    let errno = fshm::errno_of(&e);
                    assert!(
                        [libc::EPROTO, libc::ENOMEM, libc::EINVAL].contains(&errno),
                        "round {round}: unexpected {e}"
                    );
                }
            }
            let _ = fshm::inspect(name);
            use_everything(&owner);
            drop(raw);
            drop(owner);
            let _ = fshm::force_destroy(name);
        }
        assert!(
            opened > 0 && refused > 0,
            "opened {opened}, refused {refused}"
        );
        0
    });
    assert_eq!(child.wait(), common::Status::Exited(0));
    g.assert_gone();
}

#[test]
fn a_read_only_guest_survives_a_hostile_header_too() {
    if common::skip_unless_users_can_switch() {
        return;
    }
    let g = NameGuard::new("ro-hostile");
    let name = g.name();
    let mut owner = fshm::OpenOptions::new().mode(0o644).create(name).unwrap();
    owner.write_all(b"abc").unwrap();
    let raw = raw_shm_open(name, libc::O_RDWR, 0).unwrap();
    raw.pwrite(LEN, &u64b(1 << 29));
    let mut child = fork_child(|| {
        common::drop_privileges(65534);
        let guest = fshm::Stream::open(name).unwrap();
        assert!(!guest.is_writable());
        let mut b = vec![0u8; 100];
        assert_eq!(
            common::errno(guest.read_at((1 << 29) - 50, &mut b)),
            libc::EPROTO
        );
        use_everything(&guest);
        0
    });
    assert_eq!(child.wait(), common::Status::Exited(0));
    raw.pwrite(LEN, &u64b(3));
    assert_eq!(common::read_all(&owner), b"abc");
    drop(raw);
    drop(owner);
    g.assert_gone();
}
