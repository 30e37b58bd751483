//! Hierarchical stream names (`/streams/my_stream`): owners and guests in separate
//! processes, the mapping to flat shm objects, listing by prefix, every refused form,
//! look-alikes of escaped names, and the length limit on the object name.

mod common;

use common::{fork_child, unique_name, Signal};
use std::io::{ErrorKind, Read, Write};
use std::path::PathBuf;

/// Names (stream names) and raw `/dev/shm` entries this test made: removed on drop,
/// also when the test fails.
#[derive(Default)]
struct Cleanup {
    names: Vec<String>,
    entries: Vec<PathBuf>,
}

impl Cleanup {
    fn name(&mut self, name: String) -> String {
        self.names.push(name.clone());
        name
    }
    fn entry(&mut self, path: PathBuf) -> PathBuf {
        self.entries.push(path.clone());
        path
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = fshm::force_destroy(n);
        }
        for p in &self.entries {
            let _ = std::fs::remove_file(p).or_else(|_| std::fs::remove_dir(p));
        }
    }
}

/// The `/dev/shm` entry of the stream `name`.
fn object_path(name: &str) -> PathBuf {
    let object = fshm::object_name(name).expect("a valid name");
    PathBuf::from(format!("{}{object}", fshm::SHM_DIR))
}

/// `/dev/shm` entries whose names contain `token`.
fn entries_with(token: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(fshm::SHM_DIR)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.contains(token))
        .collect();
    v.sort();
    v
}

fn assert_einval<T: std::fmt::Debug>(r: std::io::Result<T>, what: &str) {
    let e = r.expect_err(what);
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{what}: {e}");
    assert_eq!(fshm::errno_of(&e), libc::EINVAL, "{what}: {e}");
}

#[test]
fn owner_and_guest_in_two_processes_share_a_hierarchical_stream() {
    let mut c = Cleanup::default();
    let base = unique_name("tree");
    let name = c.name(format!("{base}/streams/my_stream"));
    let first_component = PathBuf::from(format!("{}{base}", fshm::SHM_DIR));

    // A Rust owner here; a guest in a child, by the name without its leading '/'.
    let mut owner = fshm::OpenOptions::new().mode(0o600).create(&name).unwrap();
    assert_eq!(owner.name(), name);
    owner.write_all(b"hello from the owner\n").unwrap();
    assert!(
        object_path(&name).is_file(),
        "no object {:?}",
        object_path(&name)
    );
    assert!(
        object_path(&name)
            .to_str()
            .unwrap()
            .ends_with("%2Fstreams%2Fmy_stream"),
        "{:?}",
        object_path(&name)
    );
    assert!(!first_component.exists(), "a directory was created");
    let bare = name[1..].to_owned();
    let mut child = fork_child(|| {
        let mut g = fshm::Stream::open(&bare).unwrap();
        let mut got = String::new();
        g.read_to_string(&mut got).unwrap();
        assert_eq!(got, "hello from the owner\n");
        assert_eq!(g.owner_state(), fshm::OwnerState::Alive);
        g.write_all(b"reply from the guest\n").unwrap();
        0
    });
    child.assert_success();
    let mut reply = String::new();
    owner.read_to_string(&mut reply).unwrap();
    assert_eq!(reply, "reply from the guest\n");
    let info = fshm::inspect(&bare).unwrap();
    assert_eq!(info.name, name);
    assert_eq!(info.len, 42);
    drop(owner);
    assert!(
        !object_path(&name).exists(),
        "the owner's drop left the object"
    );
    assert_eq!(
        fshm::Stream::open(&name).unwrap_err().kind(),
        ErrorKind::NotFound
    );

    // An owner in a child; the guest here.
    let ready = Signal::new();
    let done = Signal::new();
    let name2 = c.name(format!("{base}/app/shard-3/events"));
    let mut child = fork_child(|| {
        let mut o = fshm::Stream::create(&name2).unwrap();
        o.write_all(b"event 1\n").unwrap();
        ready.notify();
        done.wait();
        let mut got = String::new();
        o.read_to_string(&mut got).unwrap();
        assert_eq!(got, "ack\n");
        0
    });
    ready.wait();
    {
        let mut g = fshm::Stream::open(&name2).unwrap();
        let mut got = String::new();
        g.read_to_string(&mut got).unwrap();
        assert_eq!(got, "event 1\n");
        g.write_all(b"ack\n").unwrap();
    }
    done.notify();
    child.assert_success();
    assert!(!object_path(&name2).exists());
    assert!(!first_component.exists());
}

#[test]
fn a_directory_in_dev_shm_does_not_interfere() {
    let mut c = Cleanup::default();
    let base = unique_name("dir");
    let dir = c.entry(PathBuf::from(format!("{}{base}", fshm::SHM_DIR)));
    std::fs::create_dir(&dir).unwrap();
    let name = c.name(format!("{base}/x"));
    let mut s = fshm::Stream::create(&name).unwrap();
    s.write_all(b"beside the directory").unwrap();
    assert!(object_path(&name).is_file());
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    drop(s);
    assert!(!object_path(&name).exists());
    assert!(dir.is_dir());
}

#[test]
fn listing_shows_stream_names_and_filters_by_prefix() {
    let mut c = Cleanup::default();
    let base = unique_name("ls");
    let names: Vec<String> = ["/a/x", "/a/y", "/b/z", "", "%/q"]
        .iter()
        .map(|s| c.name(format!("{base}{s}")))
        .collect();
    let streams: Vec<fshm::Stream> = names
        .iter()
        .map(|n| fshm::Stream::create(n).unwrap())
        .collect();

    // Entries that are no stream's object: the companion name of a stream that does
    // not exist, a bad escape and a lower-case escape, each a hard link to a real
    // stream (so an fshm header is there to be found).
    let real = object_path(&names[0]);
    let companion = c.entry(PathBuf::from(format!(
        "{}%lock.0123456789abcdef",
        object_path(&format!("{base}/none")).display()
    )));
    let bad_escape = c.entry(PathBuf::from(format!("{}{base}%zz", fshm::SHM_DIR)));
    let lower = c.entry(PathBuf::from(format!("{}{base}%2fa", fshm::SHM_DIR)));
    for link in [&companion, &bad_escape, &lower] {
        std::fs::hard_link(&real, link).unwrap();
    }

    let listed = |prefix: &str| -> Vec<String> {
        fshm::list_with_prefix(prefix)
            .unwrap()
            .into_iter()
            .map(|i| i.name)
            .filter(|n| n.starts_with(&base))
            .collect()
    };
    let all = vec![
        base.clone(),
        format!("{base}%/q"),
        format!("{base}/a/x"),
        format!("{base}/a/y"),
        format!("{base}/b/z"),
    ];
    assert_eq!(listed(""), all);
    assert_eq!(listed("/"), all);
    let everything: Vec<String> = fshm::list()
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .filter(|n| n.starts_with(&base))
        .collect();
    assert_eq!(everything, all);
    assert_eq!(
        listed(&format!("{base}/a/")),
        [format!("{base}/a/x"), format!("{base}/a/y")]
    );
    assert_eq!(
        listed(&format!("{}/a/", &base[1..])),
        listed(&format!("{base}/a/"))
    );
    assert_eq!(
        listed(&format!("{base}/")),
        [
            format!("{base}/a/x"),
            format!("{base}/a/y"),
            format!("{base}/b/z")
        ]
    );
    assert_eq!(listed(&base), all);
    assert_eq!(listed(&format!("{base}%")), [format!("{base}%/q")]);
    assert_eq!(listed(&format!("{base}/c")), Vec::<String>::new());
    // The listing's names open the streams they name.
    for info in fshm::list_with_prefix(&base).unwrap() {
        fshm::Stream::open(&info.name).unwrap();
    }
    drop(streams);
    for n in &names {
        assert!(!object_path(n).exists(), "{n} left behind");
    }
}

#[test]
fn every_refused_form_is_einval_everywhere_and_creates_nothing() {
    let base = unique_name("refused");
    let token = &base[1..];
    let bad = [
        format!("{base}//b"),
        format!("//{token}"),
        format!("{base}/"),
        format!("{base}/b/"),
        format!("{base}/./b"),
        format!("{base}/../b"),
        format!("{base}/."),
        format!("{base}/.."),
        format!("./{token}"),
        format!("../{token}"),
        format!("{base}/a\0b"),
        format!("{base}\0"),
        String::new(),
        "/".to_owned(),
        "//".to_owned(),
        "/./".to_owned(),
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
        assert_einval(
            fshm::OpenOptions::new().read_only(true).open(name),
            &format!("open read-only {name:?}"),
        );
        assert_einval(fshm::inspect(name), &format!("inspect {name:?}"));
        assert_einval(
            fshm::force_destroy(name),
            &format!("force_destroy {name:?}"),
        );
        assert_einval(fshm::reclaim(name), &format!("reclaim {name:?}"));
        assert_einval(fshm::object_name(name), &format!("object_name {name:?}"));
        let e = fshm::Stream::create(name).unwrap_err();
        assert!(e.to_string().contains("stream name"), "{name:?}: {e}");
    }
    assert_eq!(entries_with(token), Vec::<String>::new());
}

#[test]
fn a_name_that_looks_escaped_cannot_reach_another_stream() {
    let mut c = Cleanup::default();
    let base = unique_name("lookalike");
    let nested = c.name(format!("{base}/b"));
    let flat = c.name(format!("{base}%2Fb"));
    let mut owner = fshm::Stream::create(&nested).unwrap();
    owner.write_all(b"nested").unwrap();

    // The flat look-alike does not find, inspect or remove the nested stream.
    assert_eq!(
        fshm::Stream::open(&flat).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        fshm::inspect(&flat).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        fshm::force_destroy(&flat).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert!(!fshm::reclaim(&flat).unwrap());
    assert!(object_path(&nested).is_file());

    // It is a stream of its own, on an object of its own.
    let mut other = fshm::Stream::create(&flat).unwrap();
    other.write_all(b"flat!").unwrap();
    assert_ne!(object_path(&flat), object_path(&nested));
    assert!(object_path(&flat).to_str().unwrap().ends_with("%252Fb"));
    let read = |n: &str| {
        let mut s = String::new();
        fshm::Stream::open(n)
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        s
    };
    assert_eq!(read(&nested), "nested");
    assert_eq!(read(&flat), "flat!");
    fshm::force_destroy(&flat).unwrap();
    assert!(object_path(&nested).is_file());
    assert_eq!(read(&nested), "nested");
    drop(other);
    drop(owner);
    assert_eq!(entries_with(&base[1..]), Vec::<String>::new());
}

#[test]
fn a_flat_name_holding_percent_maps_to_an_escaped_object() {
    let mut c = Cleanup::default();
    let base = unique_name("pct");
    let name = c.name(format!("{base}%zz"));
    // The object a flat name with '%' mapped to before the escape existed.
    let old = c.entry(PathBuf::from(format!("{}{base}%zz", fshm::SHM_DIR)));
    let s = fshm::Stream::create(&name).unwrap();
    let path = object_path(&name);
    assert_eq!(
        path.file_name().unwrap(),
        &format!("{}%25zz", &base[1..])[..]
    );
    assert!(path.is_file());
    assert!(!old.exists());
    assert_eq!(
        fshm::stream_name(&format!("{base}%25zz")),
        Some(name.clone())
    );
    assert_eq!(fshm::stream_name(&format!("{base}%zz")), None);
    drop(s);
    assert!(!path.exists());
}

#[test]
fn the_limit_is_on_the_encoded_name() {
    let mut c = Cleanup::default();
    let base = unique_name("long");
    let token = base[1..].to_owned();
    // `{token}/{filler}`: the '/' costs 3 bytes of object name.
    let name_with_object_len = |n: usize| {
        let filler = "f".repeat(n - token.len() - 3);
        format!("/{token}/{filler}")
    };
    let longest = c.name(name_with_object_len(fshm::OBJECT_NAME_MAX));
    let over = c.name(name_with_object_len(fshm::OBJECT_NAME_MAX + 1));
    // The user name itself is within 255 bytes; its object name is not.
    assert_eq!(over.len(), fshm::OBJECT_NAME_MAX + 1 - 2 + 1);
    assert_eq!(
        fshm::object_name(&over).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    let e = fshm::Stream::create(&over).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("too long"), "{e}");
    assert_einval(fshm::Stream::open(&over), "open of an overlong name");
    assert_einval(
        fshm::force_destroy(&over),
        "force_destroy of an overlong name",
    );

    let s = fshm::Stream::create(&longest).unwrap();
    let path = object_path(&longest);
    assert_eq!(
        path.file_name().unwrap().len(),
        fshm::OBJECT_NAME_MAX,
        "{path:?}"
    );
    assert!(path.is_file());
    assert_eq!(fshm::inspect(&longest).unwrap().name, longest);
    drop(s);
    assert_eq!(entries_with(&token), Vec::<String>::new());
}

#[test]
fn reclaim_and_force_destroy_use_the_mapping() {
    let mut c = Cleanup::default();
    let base = unique_name("reclaim");
    let name = c.name(format!("{base}/dead/owner"));
    // An owner that dies without closing.
    let mut child = fork_child(|| {
        let s = fshm::Stream::create(&name).unwrap();
        std::mem::forget(s);
        0
    });
    child.assert_success();
    assert_eq!(fshm::inspect(&name).unwrap().owner, fshm::OwnerState::Dead);
    assert!(fshm::reclaim(&name).unwrap());
    assert!(!object_path(&name).exists());

    // Reclaim on create, then force_destroy while the owner lives.
    let mut child = fork_child(|| {
        let s = fshm::Stream::create(&name).unwrap();
        std::mem::forget(s);
        0
    });
    child.assert_success();
    let s = fshm::OpenOptions::new()
        .reclaim(true)
        .create(&name)
        .unwrap();
    assert_eq!(fshm::inspect(&name).unwrap().owner, fshm::OwnerState::Alive);
    fshm::force_destroy(&name).unwrap();
    assert!(!object_path(&name).exists());
    assert_eq!(
        fshm::force_destroy(&name).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    drop(s);
    assert_eq!(entries_with(&base[1..]), Vec::<String>::new());
}

#[test]
fn names_in_glibcs_semaphore_namespace_are_refused_and_semaphores_left_alone() {
    let mut c = Cleanup::default();
    let token = unique_name("sem")[1..].to_owned();
    // A real named semaphore: glibc keeps it in /dev/shm/sem.<name>.
    let sem_name = std::ffi::CString::new(format!("/{token}")).unwrap();
    let sem_file = c.entry(PathBuf::from(format!("{}/sem.{token}", fshm::SHM_DIR)));
    // SAFETY: a NUL-terminated name; the variadic mode and value are the C types.
    let sem = unsafe {
        libc::sem_open(
            sem_name.as_ptr(),
            libc::O_CREAT | libc::O_EXCL,
            0o600 as libc::c_uint,
            1 as libc::c_uint,
        )
    };
    assert_ne!(sem, libc::SEM_FAILED, "{}", std::io::Error::last_os_error());
    // glibc's file; musl names its semaphores' files otherwise (the names are refused
    // all the same).
    let glibc = cfg!(target_env = "gnu");
    assert!(!glibc || sem_file.exists());
    for name in [
        format!("sem.{token}"),
        format!("/sem.{token}"),
        format!("/sem.{token}/x"),
        "/sem.".to_owned(),
    ] {
        assert_einval(fshm::Stream::create(&name), &format!("create {name:?}"));
        assert_einval(
            fshm::OpenOptions::new().reclaim(true).create(&name),
            &format!("create with reclaim {name:?}"),
        );
        assert_einval(fshm::Stream::open(&name), &format!("open {name:?}"));
        assert_einval(fshm::inspect(&name), &format!("inspect {name:?}"));
        assert_einval(fshm::reclaim(&name), &format!("reclaim {name:?}"));
        assert_einval(
            fshm::force_destroy(&name),
            &format!("force_destroy {name:?}"),
        );
        assert_einval(fshm::object_name(&name), &format!("object_name {name:?}"));
        let e = fshm::Stream::open(&name).unwrap_err();
        assert!(e.to_string().contains("'sem.'"), "{name:?}: {e}");
    }
    // The semaphore's file is the encoding of no stream name: never listed.
    assert_eq!(fshm::stream_name(&format!("sem.{token}")), None);
    assert!(fshm::list()
        .unwrap()
        .iter()
        .all(|i| !i.name.starts_with("/sem.")));
    assert!(!glibc || sem_file.exists(), "the semaphore was removed");
    // SAFETY: `sem` is the open semaphore made above; it still works.
    unsafe {
        assert_eq!(libc::sem_trywait(sem), 0);
        assert_eq!(libc::sem_post(sem), 0);
        assert_eq!(libc::sem_close(sem), 0);
        assert_eq!(libc::sem_unlink(sem_name.as_ptr()), 0);
    }
    // Names that only look alike are streams like any other.
    for name in [
        format!("/sem/{token}"),
        format!("/{token}/sem.x"),
        format!("/Sem.{token}"),
        format!("/sem{token}"),
    ] {
        let name = c.name(name);
        let s = fshm::Stream::create(&name).unwrap();
        assert_eq!(fshm::inspect(&name).unwrap().name, name);
        drop(s);
    }
    assert_eq!(entries_with(&token), Vec::<String>::new());
}
