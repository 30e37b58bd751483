//! `Stream::skip_to` against the ring's other writers: a skip publishes the ring's end
//! as any other handle's write does (writers that remembered the length forget it), so
//! a write after a skip is never placed below it, reported done and never read.

mod common;

use common::{fork_child, NameGuard};
use std::io::Write;

/// Another process skips the ring's end while this process's handle, the ring's last
/// writer, remembers the length it wrote to: that handle's next write lands after the
/// skip (it is readable there), instead of at the remembered length below the skip,
/// where it would be reported written and never be read.
#[test]
fn a_skip_by_another_process_never_swallows_the_next_write() {
    for policy in [fshm::RingPolicy::Lossy, fshm::RingPolicy::Lossless] {
        let g = NameGuard::new("skip-other-proc");
        let mut w = fshm::OpenOptions::new()
            .mode(0o600)
            .ring(4096, policy)
            .create(g.name())
            .unwrap();
        w.write_all(b"abc").unwrap();
        w.write_all(b"def").unwrap(); // the sole writer: it now remembers length 6
        let name = g.name().to_owned();
        let mut child = fork_child(|| {
            let s = fshm::OpenOptions::new().append(true).open(&name).unwrap();
            assert!(s.is_writable());
            assert_eq!(s.skip_to(100).unwrap(), 94);
            0
        });
        child.assert_success();
        assert_eq!(w.len(), 100);
        w.write_all(b"xyz").unwrap();
        assert_eq!(
            w.len(),
            103,
            "{policy:?}: the write after the skip must be committed"
        );
        let r = fshm::OpenOptions::new()
            .read_only(true)
            .open(g.name())
            .unwrap();
        let mut buf = [0u8; 3];
        assert_eq!(r.read_at(100, &mut buf).unwrap(), 3);
        assert_eq!(&buf, b"xyz");
    }
}

/// The skipping handle itself goes on writing after its skip (the importer's pattern).
#[test]
fn the_skipping_handle_writes_after_its_skip() {
    let g = NameGuard::new("skip-self");
    let mut w = fshm::OpenOptions::new()
        .ring(4096, fshm::RingPolicy::Lossless)
        .create(g.name())
        .unwrap();
    w.write_all(b"abc").unwrap();
    assert_eq!(w.skip_to(5000).unwrap(), 4997);
    w.write_all(b"xyz").unwrap();
    assert_eq!(w.len(), 5003);
    let mut buf = [0u8; 3];
    assert_eq!(w.read_at(5000, &mut buf).unwrap(), 3);
    assert_eq!(&buf, b"xyz");
}
