use std::io::{Read, Seek, SeekFrom, Write};

#[test]
fn smoke() {
    let name = format!("/fshm-smoke-{}", std::process::id());
    let mut o = fshm::Stream::create(&name).unwrap();
    o.write_all(b"hello").unwrap();
    let mut g = fshm::Stream::open(&name).unwrap();
    let mut s = String::new();
    g.read_to_string(&mut s).unwrap();
    assert_eq!(s, "hello");
    let big = vec![7u8; 3 << 20];
    o.write_all(&big).unwrap();
    let mut v = Vec::new();
    g.read_to_end(&mut v).unwrap();
    assert_eq!(v.len(), 3 << 20);
    g.seek(SeekFrom::End(10)).unwrap();
    g.write_all(b"x").unwrap();
    assert_eq!(o.len(), 5 + (3 << 20) + 11);
    assert_eq!(g.owner_state(), fshm::OwnerState::Alive);
    drop(o);
    assert_eq!(g.owner_state(), fshm::OwnerState::Closed);
    assert!(fshm::Stream::open(&name).is_err());
}
