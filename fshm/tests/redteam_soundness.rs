//! Red-team soundness reproducers: safe call sequences in one process that change bytes
//! under a lent `&[u8]`. Each test asserts the promise ("bytes lent by `fill_buf` do not
//! change while the slice lives"); a test that fails demonstrates the hole.

mod common;

use common::NameGuard;
use fshm::{OpenOptions, RingPolicy, Stream};
use std::fs::File;
use std::io::{BufRead, Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;

const RING: u64 = 4096;
/// The first data byte's offset in the object (the header's size).
const DATA_OFFSET: u64 = 4096;

/// The (hidden, feature-gated) C layer's fd coherence moves a ring reader's position
/// from the offset of the read-only descriptor `AsFd` hands out. Safe code can `lseek`
/// that descriptor (a `File` over a duplicate shares its offset), and
/// `absorb_fd_offset` then moves the position back below the reader's published slot
/// without raising `trust_from` (as `Seek` does) or publishing the slot: `fill_buf`
/// lends bytes the writer is allowed to overwrite, and it does.
#[test]
fn fd_offset_absorbed_backwards_lets_the_writer_overwrite_lent_ring_bytes() {
    use fshm::c_layer::CLayer;
    let g = NameGuard::new("rt-absorb");
    let mut w = OpenOptions::new()
        .ring(RING, RingPolicy::Lossless)
        .create(g.name())
        .unwrap();
    let mut r = Stream::open(g.name()).unwrap();
    assert!(r.is_attached());
    w.write_all(&[b'A'; RING as usize]).unwrap();
    // The reader reads everything: its slot is published at RING.
    let mut sink = vec![0u8; RING as usize];
    r.read_exact(&mut sink).unwrap();
    assert_eq!(r.position(), RING);
    // Safe: seek the read-only descriptor's shared offset back to position 0.
    let mut f = File::from(r.as_fd().try_clone_to_owned().unwrap());
    f.seek(SeekFrom::Start(DATA_OFFSET)).unwrap();
    assert_eq!(r.absorb_fd_offset().unwrap(), 0);
    // A plain `Seek` back would make the next `fill_buf` refuse (trust_from); here:
    let lent: &[u8] = match r.fill_buf() {
        Ok(b) => b,
        // Fixed: the absorbed move is a seek, after which lending is refused.
        Err(e) => {
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
            return;
        }
    };
    assert_eq!(lent.len(), RING as usize);
    let before = lent[0];
    // The slot still says RING: the writer may overwrite positions 0..RING, and does
    // (no wait: room up to 2 * RING).
    w.write_all(&[b'B'; RING as usize]).unwrap();
    let after = lent[0];
    assert_eq!(
        before, after,
        "bytes lent as &[u8] by fill_buf changed while the slice lived"
    );
}
