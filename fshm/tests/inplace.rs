//! Reading in place (`Stream::in_place`), the layer under the C API's `FILE*` reads:
//! it hands out exactly the committed bytes at the position, in this handle's mapping,
//! without moving the position; it refuses rings; it waits like a follower when asked.

mod common;

use common::{fork_child, NameGuard, Signal};
use fshm::c_layer::CLayer;
use std::io::{ErrorKind, Seek, SeekFrom, Write};

/// Copies `n` bytes from a raw in-place address.
fn copy_out(p: *const u8, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    // SAFETY: the tests pass addresses and lengths `Stream::in_place` returned, which
    // stay valid while the stream is open.
    unsafe { std::ptr::copy_nonoverlapping(p, v.as_mut_ptr(), n) };
    v
}

#[test]
fn hands_out_the_committed_bytes_at_the_position() {
    let g = NameGuard::new("inplace-bytes");
    let mut owner = fshm::Stream::create(g.name()).unwrap();
    owner.write_all(b"0123456789abcdef").unwrap();
    let mut guest = fshm::Stream::open(g.name()).unwrap();

    let at0 = guest.in_place(10, false).unwrap();
    assert_eq!((at0.pos, at0.len), (0, 10));
    assert_eq!(copy_out(at0.ptr, at0.len), b"0123456789");
    assert_eq!(guest.position(), 0, "the position does not move");

    guest.seek(SeekFrom::Start(12)).unwrap();
    let at12 = guest.in_place(100, false).unwrap();
    assert_eq!((at12.pos, at12.len), (12, 4), "no more than is committed");
    assert_eq!(copy_out(at12.ptr, at12.len), b"cdef");
    // One mapping: the address of position 12 is 12 bytes after position 0's.
    assert_eq!(at12.ptr as usize - at0.ptr as usize, 12);
    assert_eq!(guest.position_in_window(at12.ptr), Some(12));

    // A write by another handle is seen at once.
    owner.write_all(b"XY").unwrap();
    let more = guest.in_place(100, false).unwrap();
    assert_eq!(copy_out(more.ptr, more.len), b"cdefXY");

    // At and past the length: nothing.
    guest.seek(SeekFrom::Start(18)).unwrap();
    assert_eq!(guest.in_place(100, false).unwrap().len, 0);
    guest.seek(SeekFrom::Start(1 << 20)).unwrap();
    assert_eq!(guest.in_place(100, false).unwrap().len, 0);
}

#[test]
fn addresses_outside_the_window_are_not_positions() {
    let g = NameGuard::new("inplace-window");
    let owner = fshm::Stream::create(g.name()).unwrap();
    let local = [0u8; 16];
    // Not mapped yet: nothing is in the window.
    assert_eq!(owner.position_in_window(local.as_ptr()), None);
    assert!(!owner.overlaps_window(local.as_ptr(), local.len()));
    let at = owner.in_place(1, false).unwrap();
    assert_eq!(owner.position_in_window(local.as_ptr()), None);
    assert!(!owner.overlaps_window(local.as_ptr(), local.len()));
    assert!(owner.overlaps_window(at.ptr, 1));
    // A range ending just before the window does not overlap it; one byte more does.
    let before = at.ptr.wrapping_sub(8);
    assert!(!owner.overlaps_window(before, 8));
    assert!(owner.overlaps_window(before, 9));
    assert_eq!(owner.position_in_window(before), None);
}

#[test]
fn rings_are_refused_and_nothing_changes() {
    let g = NameGuard::new("inplace-ring");
    let mut ring = fshm::OpenOptions::new()
        .ring(64 * 1024, fshm::RingPolicy::Lossy)
        .create(g.name())
        .unwrap();
    ring.write_all(b"abc").unwrap();
    let err = ring.in_place(10, false).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains(g.name()), "{err}");
    assert_eq!(ring.len(), 3);
    assert_eq!(ring.position(), 3);
}

#[test]
fn waiting_returns_data_from_another_process_or_nothing_once_the_owner_is_gone() {
    let g = NameGuard::new("inplace-wait");
    let name = g.name();
    let owner = fshm::Stream::create(name).unwrap();
    let guest = fshm::Stream::open(name).unwrap();
    let go = Signal::new();
    let mut child = fork_child(|| {
        go.wait();
        let mut o = fshm::Stream::open(name).unwrap();
        o.write_all(b"late").unwrap();
        0
    });
    go.notify();
    // Blocks until the child's write is committed.
    let at = guest.in_place(100, true).unwrap();
    assert!(at.len >= 1 && at.len <= 4, "{}", at.len);
    assert_eq!(copy_out(at.ptr, at.len), &b"late"[..at.len]);
    child.assert_success();
    // The owner closes: a wait at the end returns nothing.
    let mut end = fshm::Stream::open(name).unwrap();
    end.seek(SeekFrom::End(0)).unwrap();
    drop(owner);
    assert_eq!(end.in_place(100, true).unwrap().len, 0);
    drop(guest);
}
