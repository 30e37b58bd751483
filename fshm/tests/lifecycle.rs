//! Roles and lifecycle (design brief §3): who removes the name and when; persistence;
//! force-destroy.

mod common;

use common::{fork_child, read_all, shm_exists, NameGuard, Signal};
use fshm::OwnerState;
use std::io::{Read, Seek, SeekFrom, Write};

#[test]
fn owner_close_removes_the_name_guest_close_never_does() {
    let g = NameGuard::new("close");
    let name = g.name();
    let mut owner = fshm::Stream::create(name).unwrap();
    owner.write_all(b"data").unwrap();
    // A guest in another process opens and closes: the name stays.
    let mut child = fork_child(|| {
        let guest = fshm::Stream::open(name).unwrap();
        assert_eq!(read_all(&guest), b"data");
        drop(guest);
        assert!(shm_exists(name));
        0
    });
    child.assert_success();
    assert!(shm_exists(name));
    // A guest in this process too.
    drop(fshm::Stream::open(name).unwrap());
    assert!(shm_exists(name));
    assert_eq!(owner.owner_state(), OwnerState::Alive);
    drop(owner);
    g.assert_gone();
    assert_eq!(
        common::errno(fshm::Stream::open(name)),
        libc::ENOENT,
        "a closed owner's stream must not open"
    );
}

#[test]
fn a_persistent_stream_outlives_its_owner_until_force_destroyed() {
    let g = NameGuard::new("persist");
    let name = g.name();
    let mut owner = fshm::OpenOptions::new().persist(true).create(name).unwrap();
    assert!(owner.is_persistent());
    owner.write_all(b"kept").unwrap();
    drop(owner);
    assert!(shm_exists(name), "a persistent stream's name must remain");
    let mut child = fork_child(|| {
        let mut guest = fshm::Stream::open(name).unwrap();
        assert!(guest.is_persistent());
        assert_eq!(guest.owner_state(), OwnerState::Closed);
        // A wait on a closed owner's stream ends instead of blocking.
        assert_eq!(guest.wait_for(4, None), fshm::WaitStatus::Ended);
        let mut s = String::new();
        guest.read_to_string(&mut s).unwrap();
        assert_eq!(s, "kept");
        0
    });
    child.assert_success();
    let info = fshm::inspect(name).unwrap();
    assert_eq!(info.owner, OwnerState::Closed);
    assert!(info.persistent);
    assert_eq!(info.len, 4);
    fshm::force_destroy(name).unwrap();
    assert!(!shm_exists(name));
    assert_eq!(common::errno(fshm::force_destroy(name)), libc::ENOENT);
    g.assert_gone();
}

#[test]
fn force_destroy_leaves_processes_that_have_the_stream_open_working() {
    let g = NameGuard::new("force");
    let name = g.name();
    let mut owner = fshm::Stream::create(name).unwrap();
    owner.write_all(b"before;").unwrap();
    let opened = Signal::new();
    let destroyed = Signal::new();
    let guest_wrote = Signal::new();
    let mut child = fork_child(|| {
        let mut guest = fshm::Stream::open(name).unwrap();
        opened.notify();
        destroyed.wait();
        assert!(!shm_exists(name));
        // Reads, writes and growth still work on the unlinked object.
        guest.seek(SeekFrom::End(0)).unwrap();
        guest.write_all(b"after;").unwrap();
        guest.write_all(&vec![b'z'; 300_000]).unwrap();
        let all = read_all(&guest);
        assert!(all.starts_with(b"before;after;"));
        assert_eq!(guest.owner_state(), OwnerState::Alive);
        guest_wrote.notify();
        0
    });
    opened.wait();
    fshm::force_destroy(name).unwrap();
    assert!(!shm_exists(name));
    destroyed.notify();
    guest_wrote.wait();
    child.assert_success();
    // The owner still shares the object with the guest.
    assert_eq!(owner.len(), 7 + 6 + 300_000);
    assert!(read_all(&owner).starts_with(b"before;after;zzz"));
    drop(owner);
    g.assert_gone();
}

#[test]
fn an_owner_closing_after_force_destroy_leaves_a_new_stream_of_that_name_alone() {
    let g = NameGuard::new("rename");
    let name = g.name();
    let first = fshm::Stream::create(name).unwrap();
    fshm::force_destroy(name).unwrap();
    let created = Signal::new();
    let first_closed = Signal::new();
    // The second owner is another process.
    let mut child = fork_child(|| {
        let mut second = fshm::Stream::create(name).unwrap();
        second.write_all(b"second").unwrap();
        created.notify();
        first_closed.wait();
        assert!(shm_exists(name));
        assert_eq!(second.owner_state(), OwnerState::Alive);
        0
    });
    created.wait();
    drop(first);
    assert!(
        shm_exists(name),
        "the first owner removed the second owner's name"
    );
    let info = fshm::inspect(name).unwrap();
    assert_eq!(info.owner, OwnerState::Alive);
    assert_eq!(info.len, 6);
    first_closed.notify();
    child.assert_success();
    // The second owner closed in its turn: now the name is gone.
    g.assert_gone();
}

#[test]
fn creating_an_existing_name_fails_with_eexist_and_leaves_it_alone() {
    let g = NameGuard::new("exists");
    let name = g.name();
    let mut owner = fshm::Stream::create(name).unwrap();
    owner.write_all(b"mine").unwrap();
    let mut child = fork_child(|| {
        let e = fshm::Stream::create(name).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(fshm::errno_of(&e), libc::EEXIST);
        0
    });
    child.assert_success();
    assert_eq!(read_all(&owner), b"mine");
    drop(owner);
    g.assert_gone();
}
