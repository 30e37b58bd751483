//! Data promises (design brief §4): every handle, in every process, reads and writes the
//! same bytes; a length never covers bytes not yet written; positions are per handle;
//! seeks and gaps behave as on a file.

mod common;

use common::{checksum, fork_child, read_all, NameGuard, Rng, Signal};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::time::{Duration, Instant};

#[test]
fn guest_in_another_process_sees_owner_writes_and_owner_sees_guest_writes() {
    let g = NameGuard::new("own-to-guest");
    let name = g.name();
    let mut owner = fshm::Stream::create(name).unwrap();
    owner.write_all(b"from owner;").unwrap();
    let ready = Signal::new();
    let go = Signal::new();
    let mut child = fork_child(|| {
        let mut guest = fshm::Stream::open(name).unwrap();
        assert_eq!(guest.role(), fshm::Role::Guest);
        let mut s = String::new();
        guest.read_to_string(&mut s).unwrap();
        assert_eq!(s, "from owner;");
        guest.write_all(b"from guest;").unwrap();
        ready.notify();
        // The owner writes more; the guest sees it without reopening.
        go.wait();
        s.clear();
        guest.read_to_string(&mut s).unwrap();
        assert_eq!(s, "owner again");
        0
    });
    ready.wait();
    assert_eq!(read_all(&owner), b"from owner;from guest;");
    owner.seek(SeekFrom::End(0)).unwrap();
    owner.write_all(b"owner again").unwrap();
    go.notify();
    child.assert_success();
    drop(owner);
    g.assert_gone();
}

#[test]
fn owner_in_another_process_sees_guest_writes_and_guest_sees_owner_writes() {
    let g = NameGuard::new("guest-to-own");
    let name = g.name();
    let created = Signal::new();
    let guest_wrote = Signal::new();
    let checked = Signal::new();
    let mut child = fork_child(|| {
        let mut owner = fshm::Stream::create(name).unwrap();
        owner.write_all(b"0123456789").unwrap();
        created.notify();
        guest_wrote.wait();
        assert_eq!(read_all(&owner), b"0123GUEST9tail");
        checked.notify();
        0
    });
    created.wait();
    let mut guest = fshm::Stream::open(name).unwrap();
    assert_eq!(read_all(&guest), b"0123456789");
    guest.seek(SeekFrom::Start(4)).unwrap();
    guest.write_all(b"GUEST").unwrap();
    guest.seek(SeekFrom::End(0)).unwrap();
    guest.write_all(b"tail").unwrap();
    guest_wrote.notify();
    checked.wait();
    child.assert_success();
    // The owner closed: the name is gone, the guest still reads the bytes.
    g.assert_gone();
    assert_eq!(read_all(&guest), b"0123GUEST9tail");
    assert_eq!(guest.owner_state(), fshm::OwnerState::Closed);
}

const RECORD_HEADER: usize = 16;

/// A record: `[payload len u32][index u32][checksum u64]` then the payload.
fn make_record(index: u32, rng: &mut Rng) -> Vec<u8> {
    // Mostly small records, some large ones that cross pages and growth steps.
    let size = match rng.below(10) {
        0 => 60_000 + rng.below(250_000),
        1 => rng.below(5),
        _ => 1 + rng.below(9_000),
    } as usize;
    let mut payload = vec![0u8; size];
    rng.fill(&mut payload);
    // No zero bytes, so a payload never looks like the zeros of unwritten memory.
    for b in &mut payload {
        *b |= 1;
    }
    let mut rec = Vec::with_capacity(RECORD_HEADER + size);
    rec.extend_from_slice(&(size as u32).to_le_bytes());
    rec.extend_from_slice(&index.to_le_bytes());
    rec.extend_from_slice(&(checksum(&payload) ^ u64::from(index)).to_le_bytes());
    rec.extend_from_slice(&payload);
    rec
}

#[test]
fn a_reader_never_sees_a_length_covering_unwritten_bytes() {
    const RECORDS: u32 = 1500;
    let g = NameGuard::new("no-torn-len");
    let name = g.name();
    let owner = fshm::Stream::create(name).unwrap();
    let reader_ready = Signal::new();
    // The writer is another process; the parent polls the length and checks records.
    let mut writer = fork_child(|| {
        let mut s = fshm::Stream::open(name).unwrap();
        reader_ready.wait();
        let mut rng = Rng::new(7);
        for i in 0..RECORDS {
            let rec = make_record(i, &mut rng);
            // One write call per record: the length must jump over the whole record.
            assert_eq!(s.write(&rec).unwrap(), rec.len());
        }
        0
    });
    reader_ready.notify();
    let reader = &owner;
    let deadline = Instant::now() + common::PATIENCE;
    let (mut off, mut next, mut last_len, mut polls) = (0u64, 0u32, 0u64, 0u64);
    while next < RECORDS {
        assert!(Instant::now() < deadline, "writer stalled at record {next}");
        let len = reader.len();
        polls += 1;
        assert!(
            len >= last_len,
            "length went backwards: {last_len} -> {len}"
        );
        last_len = len;
        // Check every record that lies wholly within the length just seen.
        loop {
            if off + RECORD_HEADER as u64 > len {
                break;
            }
            let mut h = [0u8; RECORD_HEADER];
            assert_eq!(reader.read_at(off, &mut h).unwrap(), RECORD_HEADER);
            let size = u32::from_le_bytes(h[0..4].try_into().unwrap()) as u64;
            let index = u32::from_le_bytes(h[4..8].try_into().unwrap());
            let sum = u64::from_le_bytes(h[8..16].try_into().unwrap());
            assert_eq!(
                index, next,
                "record header at {off} not yet written (len {len})"
            );
            let end = off + RECORD_HEADER as u64 + size;
            if end > len {
                // A record header within the length but not its payload cannot happen
                // with whole-write commits.
                panic!("length {len} covers the header of record {index} but not its end {end}");
            }
            let mut payload = vec![0u8; size as usize];
            assert_eq!(
                reader
                    .read_at(off + RECORD_HEADER as u64, &mut payload)
                    .unwrap(),
                size as usize
            );
            assert_eq!(
                checksum(&payload) ^ u64::from(index),
                sum,
                "record {index} at {off} is not intact though the length {len} covers it"
            );
            off = end;
            next += 1;
        }
        if len == off && next < RECORDS {
            // Nothing new: wait for the next commit (bounded; the writer may be done).
            reader.wait_for(len, Some(Duration::from_millis(100)));
        }
    }
    assert!(polls > 1);
    writer.assert_success();
    assert_eq!(owner.len(), off);
    drop(owner);
    g.assert_gone();
}

#[test]
fn two_handles_in_one_process_have_independent_positions() {
    let g = NameGuard::new("pos-local");
    let name = g.name();
    let mut a = fshm::Stream::create(name).unwrap();
    let mut b = fshm::Stream::open(name).unwrap();
    a.write_all(b"abcdef").unwrap();
    assert_eq!(a.position(), 6);
    assert_eq!(b.position(), 0);
    let mut buf = [0u8; 2];
    b.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ab");
    assert_eq!((a.position(), b.position()), (6, 2));
    b.write_all(b"XY").unwrap();
    assert_eq!((a.position(), b.position()), (6, 4));
    a.write_all(b"gh").unwrap();
    assert_eq!((a.position(), b.position()), (8, 4));
    let mut rest = String::new();
    b.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "efgh");
    assert_eq!(read_all(&a), b"abXYefgh");
    drop(b);
    drop(a);
    g.assert_gone();
}

#[test]
fn handles_in_two_processes_have_independent_positions() {
    let g = NameGuard::new("pos-procs");
    let name = g.name();
    let mut owner = fshm::Stream::create(name).unwrap();
    owner.write_all(b"abcdef").unwrap();
    let child_moved = Signal::new();
    let parent_wrote = Signal::new();
    let mut child = fork_child(|| {
        let mut guest = fshm::Stream::open(name).unwrap();
        let mut buf = [0u8; 3];
        guest.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"abc");
        guest.write_all(b"D").unwrap();
        assert_eq!(guest.position(), 4);
        child_moved.notify();
        parent_wrote.wait();
        // The parent's writes at its own position 6 did not move ours.
        assert_eq!(guest.position(), 4);
        let mut rest = String::new();
        guest.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "efgh");
        0
    });
    child_moved.wait();
    // The child's reads and writes did not move the owner's position.
    assert_eq!(owner.position(), 6);
    owner.write_all(b"gh").unwrap();
    assert_eq!(owner.position(), 8);
    parent_wrote.notify();
    child.assert_success();
    assert_eq!(read_all(&owner), b"abcDefgh");
    drop(owner);
    g.assert_gone();
}

#[test]
fn seek_set_cur_end_and_a_negative_seek_is_invalid_input() {
    let g = NameGuard::new("seek");
    let name = g.name();
    let mut s = fshm::Stream::create(name).unwrap();
    s.write_all(b"0123456789").unwrap();
    assert_eq!(s.seek(SeekFrom::Start(3)).unwrap(), 3);
    assert_eq!(s.seek(SeekFrom::Current(2)).unwrap(), 5);
    assert_eq!(s.seek(SeekFrom::Current(-1)).unwrap(), 4);
    let mut b = [0u8; 1];
    s.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"4");
    // END is relative to the committed length, also as another process changes it.
    assert_eq!(s.seek(SeekFrom::End(0)).unwrap(), 10);
    assert_eq!(s.seek(SeekFrom::End(-3)).unwrap(), 7);
    let mut child = fork_child(|| {
        let g = fshm::Stream::open(name).unwrap();
        g.set_len(4).unwrap();
        0
    });
    child.assert_success();
    assert_eq!(s.seek(SeekFrom::End(0)).unwrap(), 4);
    assert_eq!(s.seek(SeekFrom::End(2)).unwrap(), 6);
    // Reading at or past the length is end of file.
    assert_eq!(s.read(&mut b).unwrap(), 0);
    // A negative resulting position is refused and leaves the position alone.
    for bad in [SeekFrom::End(-5), SeekFrom::Current(-7)] {
        let e = s.seek(bad).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad:?}");
        assert_eq!(fshm::errno_of(&e), libc::EINVAL);
        assert!(e.to_string().contains(name), "{e}");
        assert_eq!(s.position(), 6);
    }
    drop(s);
    g.assert_gone();
}

#[test]
fn writing_past_the_length_leaves_a_gap_of_zeros_also_over_truncated_dirty_bytes() {
    let g = NameGuard::new("gap");
    let name = g.name();
    let mut s = fshm::Stream::create(name).unwrap();
    // Plain gap in fresh memory.
    s.seek(SeekFrom::Start(5)).unwrap();
    s.write_all(b"x").unwrap();
    assert_eq!(read_all(&s), b"\0\0\0\0\0x");

    // Dirty bytes, truncated away, then a write past the new length: zeros again.
    let dirty = vec![0xAAu8; 100_000];
    s.seek(SeekFrom::Start(0)).unwrap();
    s.write_all(&dirty).unwrap();
    s.set_len(10).unwrap();
    assert_eq!(s.len(), 10);
    s.seek(SeekFrom::End(0)).unwrap();
    s.write_all(&[0xAA; 10]).unwrap();
    // Another process writes far past the length.
    let mut child = fork_child(|| {
        let g = fshm::Stream::open(name).unwrap();
        g.write_at(50_000, b"far").unwrap();
        0
    });
    child.assert_success();
    let all = read_all(&s);
    assert_eq!(all.len(), 50_003);
    assert!(all[..20].iter().all(|&b| b == 0xAA));
    assert!(
        all[20..50_000].iter().all(|&b| b == 0),
        "gap shows stale bytes at {:?}",
        all[20..50_000].iter().position(|&b| b != 0).map(|i| i + 20)
    );
    assert_eq!(&all[50_000..], b"far");

    // set_len that extends: the extension reads as zeros, also over dirty bytes.
    s.set_len(30).unwrap();
    s.write_at(0, &[0xBB; 40]).unwrap();
    s.set_len(20).unwrap();
    s.set_len(60).unwrap();
    let all = read_all(&s);
    assert_eq!(all.len(), 60);
    assert!(all[..20].iter().all(|&b| b == 0xBB));
    assert!(all[20..].iter().all(|&b| b == 0), "{:?}", &all[20..]);
    drop(s);
    g.assert_gone();
}
