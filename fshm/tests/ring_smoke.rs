use std::io::{Read, Write};

#[test]
fn ring_smoke() {
    let name = format!("/fshm-ringsmoke-{}", std::process::id());
    let mut o = fshm::OpenOptions::new()
        .ring(8192, fshm::RingPolicy::Lossy)
        .create(&name)
        .unwrap();
    let mut g = fshm::Stream::open(&name).unwrap();
    let data: Vec<u8> = (0..20000u32).map(|i| (i % 251) as u8).collect();
    o.write_all(&data).unwrap();
    assert_eq!(o.len(), 20000);
    let mut buf = vec![0u8; 4096];
    let e = g.read(&mut buf).unwrap_err();
    let ov = fshm::overrun_of(&e).expect("overrun");
    assert_eq!(ov.lost(), 20000 - 8192);
    let mut rest = Vec::new();
    g.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, &data[20000 - 8192..]);

    // lossless
    let name2 = format!("/fshm-ringsmoke2-{}", std::process::id());
    let o2 = fshm::OpenOptions::new()
        .ring(8192, fshm::RingPolicy::Lossless)
        .create(&name2)
        .unwrap();
    let g2 = fshm::Stream::open(&name2).unwrap();
    assert!(g2.is_attached());
    let t = std::thread::spawn(move || {
        let mut o2 = o2;
        o2.write_all(&data).unwrap();
        drop(o2);
        data
    });
    let mut got = Vec::new();
    g2.follow().read_to_end(&mut got).unwrap();
    let data = t.join().unwrap();
    assert_eq!(got, data);
}
