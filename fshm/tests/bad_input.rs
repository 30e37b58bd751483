//! Bad input (design brief §8): every bad argument reachable from Rust gets
//! `InvalidInput`/`EINVAL` with a message, and changes nothing in `/dev/shm`.

mod common;

use common::{shm_exists, NameGuard};
use std::io::ErrorKind;

fn assert_einval<T: std::fmt::Debug>(r: std::io::Result<T>, what: &str) {
    let e = r.expect_err(what);
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{what}: {e}");
    assert_eq!(fshm::errno_of(&e), libc::EINVAL, "{what}: {e}");
    assert!(!e.to_string().is_empty());
}

/// Names of `/dev/shm` entries containing `token`.
fn entries_with(token: &str) -> Vec<String> {
    std::fs::read_dir(fshm::SHM_DIR)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.contains(token))
        .collect()
}

#[test]
fn bad_names_are_einval_everywhere_and_create_nothing() {
    let token = common::unique_name("badname");
    let token = token.trim_start_matches('/');
    let long = format!("/{token}{}", "x".repeat(fshm::OBJECT_NAME_MAX));
    let bad = [
        String::new(),
        "/".to_owned(),
        "//".to_owned(),
        format!("/{token}//b"),
        format!("{token}/b/"),
        format!("{token}/../b"),
        format!("/{token}\0b"),
        ".".to_owned(),
        "/..".to_owned(),
        long,
    ];
    for name in &bad {
        assert_einval(fshm::Stream::create(name), &format!("create {name:?}"));
        assert_einval(
            fshm::OpenOptions::new()
                .persist(true)
                .reclaim(true)
                .create(name),
            &format!("create(opts) {name:?}"),
        );
        assert_einval(fshm::Stream::open(name), &format!("open {name:?}"));
        assert_einval(fshm::inspect(name), &format!("inspect {name:?}"));
        assert_einval(
            fshm::force_destroy(name),
            &format!("force_destroy {name:?}"),
        );
    }
    assert_eq!(entries_with(token), Vec::<String>::new());
    // The longest allowed name works.
    let longest = format!(
        "/{}",
        &format!("{token}{}", "y".repeat(255))[..fshm::OBJECT_NAME_MAX]
    );
    let s = fshm::Stream::create(&longest).unwrap();
    assert!(shm_exists(&longest));
    drop(s);
    assert_eq!(entries_with(token), Vec::<String>::new());
}

#[test]
fn bad_options_are_einval_and_create_nothing() {
    let g = NameGuard::new("badopts");
    let name = g.name();
    let o = fshm::OpenOptions::new;
    assert_einval(o().mode(0o10000).create(name), "mode bit 0o10000");
    assert_einval(o().mode(u32::MAX).create(name), "mode u32::MAX");
    assert_einval(o().max_size(0).create(name), "max_size 0");
    assert_einval(
        o().max_size((1 << 44) + 1).create(name),
        "max_size over 16 TiB",
    );
    assert_einval(o().max_size(u64::MAX).create(name), "max_size u64::MAX");
    assert_einval(o().read_only(true).create(name), "read-only owner");
    assert_einval(
        o().ring(1000, fshm::RingPolicy::Lossy).create(name),
        "ring capacity not a page multiple",
    );
    assert_einval(
        o().ring(0, fshm::RingPolicy::Lossless).create(name),
        "ring capacity 0",
    );
    g.assert_gone();

    // Ring options on open are refused, and the existing stream is left alone.
    let s = fshm::Stream::create(name).unwrap();
    assert_einval(
        o().ring(1 << 16, fshm::RingPolicy::Lossy).open(name),
        "ring option on open",
    );
    assert_einval(s.set_permissions(0o17777), "set_permissions outside 0o7777");
    assert_eq!(fshm::inspect(name).unwrap().mode, fshm::DEFAULT_MODE);
    drop(s);
    g.assert_gone();
    // Opening a name that does not exist creates nothing either.
    assert_eq!(common::errno(fshm::Stream::open(name)), libc::ENOENT);
    g.assert_gone();
}
