//! Each side's options on the other side: an option for creating a stream given to
//! `open` (mode, persist, max_size, reclaim, ring, immutable), or a guest's option
//! given to `create` (read_only, owner_uid), is `InvalidInput` (`EINVAL`) naming it,
//! and changes nothing: no object is made, an existing stream is not joined. Options
//! at their defaults are no misuse. And `owner_uid`: a guest refuses (`EPERM`) a
//! stream that another user owns — with real processes of two users where this
//! process may switch users (root).

mod common;

use common::{fork_child, NameGuard, Signal, Status};
use std::io::{ErrorKind, Read, Write};

/// Asserts an `InvalidInput` (`EINVAL`) error whose message names each of `options`.
fn refused<T: std::fmt::Debug>(r: std::io::Result<T>, options: &[&str]) {
    let e = r.expect_err("a misuse was accepted");
    assert_eq!(
        (e.kind(), fshm::errno_of(&e)),
        (ErrorKind::InvalidInput, libc::EINVAL),
        "{e}"
    );
    for o in options {
        assert!(e.to_string().contains(o), "{e} does not name {o}");
    }
}

/// Each option for creating a stream, set to something but its default.
fn owner_only() -> Vec<(&'static str, fshm::OpenOptions)> {
    let new = fshm::OpenOptions::new;
    vec![
        ("mode", new().mode(0o644).clone()),
        ("persist", new().persist(true).clone()),
        ("max_size", new().max_size(1 << 20).clone()),
        ("reclaim", new().reclaim(true).clone()),
        ("ring", new().ring(4096, fshm::RingPolicy::Lossless).clone()),
        ("immutable", new().immutable(true).clone()),
    ]
}

#[test]
fn each_owner_only_option_given_to_open_is_refused_and_creates_nothing() {
    let g = NameGuard::new("misuse-absent");
    for (option, o) in owner_only() {
        refused(o.open(g.name()), &[option]);
        let mut ro = o.clone();
        refused(ro.read_only(true).open(g.name()), &[option]);
        assert!(!common::shm_exists(g.name()), "{option}: created");
    }
    // Several at once: all named.
    refused(
        fshm::OpenOptions::new()
            .mode(0o640)
            .persist(true)
            .ring(4096, fshm::RingPolicy::Lossy)
            .open(g.name()),
        &["mode", "persist", "ring", "apply to create only"],
    );
    g.assert_gone();
}

#[test]
fn each_owner_only_option_given_to_open_leaves_an_existing_stream_unjoined() {
    let g = NameGuard::new("misuse-ring");
    let mut owner = fshm::OpenOptions::new()
        .ring(4096, fshm::RingPolicy::Lossless)
        .create(g.name())
        .unwrap();
    owner.write_all(b"abc").unwrap();
    let before = fshm::inspect(g.name()).unwrap();
    for (option, o) in owner_only() {
        refused(o.open(g.name()), &[option]);
        // No reader slot was taken, nothing changed.
        assert_eq!(fshm::inspect(g.name()).unwrap(), before, "{option}");
    }
    // The same options at their defaults are no misuse.
    let mut guest = fshm::OpenOptions::new()
        .mode(fshm::DEFAULT_MODE)
        .persist(false)
        .max_size(fshm::DEFAULT_MAX_SIZE)
        .reclaim(false)
        .immutable(false)
        .open(g.name())
        .unwrap();
    let mut s = String::new();
    guest.read_to_string(&mut s).unwrap();
    assert_eq!(s, "abc");
    drop((guest, owner));
    g.assert_gone();
}

#[test]
fn each_guest_only_option_given_to_create_is_refused_and_creates_nothing() {
    let g = NameGuard::new("misuse-create");
    refused(
        fshm::OpenOptions::new().read_only(true).create(g.name()),
        &["read-only"],
    );
    refused(
        fshm::OpenOptions::new().owner_uid(0).create(g.name()),
        &["owner_uid"],
    );
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    refused(
        fshm::OpenOptions::new().owner_uid(me).create(g.name()),
        &["owner_uid"],
    );
    g.assert_gone();
}

#[test]
fn owner_uid_admits_the_owner_and_refuses_everyone_else() {
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    let g = NameGuard::new("owner-uid");
    let mut owner = fshm::OpenOptions::new()
        .mode(0o666)
        .create(g.name())
        .unwrap();
    owner.write_all(b"abc").unwrap();
    let mut guest = fshm::OpenOptions::new()
        .owner_uid(me)
        .append(true)
        .open(g.name())
        .unwrap();
    guest.write_all(b"def").unwrap();
    for o in [
        fshm::OpenOptions::new()
            .owner_uid(me.wrapping_add(1))
            .clone(),
        fshm::OpenOptions::new()
            .owner_uid(me.wrapping_add(1))
            .read_only(true)
            .clone(),
    ] {
        let e = o.open(g.name()).unwrap_err();
        assert_eq!(
            (e.kind(), fshm::errno_of(&e)),
            (ErrorKind::PermissionDenied, libc::EPERM),
            "{e}"
        );
        assert!(
            e.to_string().contains(&format!(
                "owned by uid {me}, not by uid {}",
                me.wrapping_add(1)
            )),
            "{e}"
        );
    }
    assert_eq!(owner.len(), 6);
    drop((guest, owner));
    g.assert_gone();
}

#[test]
fn a_guest_with_owner_uid_writes_nothing_into_a_squatters_stream() {
    if common::skip_unless_users_can_switch() {
        return;
    }
    const SQUATTER: u32 = 1002;
    let g = NameGuard::new("squatted");
    let name = g.name();
    // The squatter creates the name first, writable by all, and waits.
    let (ready, done) = (Signal::new(), Signal::new());
    let mut squatter = fork_child(|| {
        common::drop_privileges(SQUATTER);
        let s = fshm::OpenOptions::new().mode(0o666).create(name).unwrap();
        ready.notify();
        done.wait();
        i32::from(!s.is_empty())
    });
    ready.wait();
    assert_eq!(fshm::inspect(name).unwrap().uid, SQUATTER);
    // The victim (root here) expects its own service's stream: refused, before a byte.
    for o in [
        fshm::OpenOptions::new().owner_uid(0).append(true).clone(),
        fshm::OpenOptions::new().owner_uid(0).clone(),
    ] {
        let e = o.open(name).unwrap_err();
        assert_eq!(
            (e.kind(), fshm::errno_of(&e)),
            (ErrorKind::PermissionDenied, libc::EPERM),
            "{e}"
        );
        assert!(e.to_string().contains("owned by uid 1002"), "{e}");
    }
    // A guest in another process, as another unprivileged user, alike.
    let mut other = fork_child(|| {
        common::drop_privileges(1003);
        let e = fshm::OpenOptions::new()
            .owner_uid(0)
            .open(name)
            .unwrap_err();
        i32::from(fshm::errno_of(&e) != libc::EPERM)
    });
    assert_eq!(other.wait(), Status::Exited(0));
    // Expecting the squatter's uid admits it.
    let guest = fshm::OpenOptions::new()
        .owner_uid(SQUATTER)
        .read_only(true)
        .open(name)
        .unwrap();
    assert_eq!(guest.len(), 0, "a refused guest wrote");
    done.notify();
    assert_eq!(squatter.wait(), Status::Exited(0), "the squatter got bytes");
    drop(guest);
    g.assert_gone();
}
