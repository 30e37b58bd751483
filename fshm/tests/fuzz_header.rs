//! Hostile headers, property-based (issue 7): the first 4096 bytes of a real stream
//! object are overwritten with arbitrary bytes (sometimes keeping the magic and version,
//! or every fixed field, valid so that deeper fields are reached) and the object is cut
//! or extended to an arbitrary size; then `open`, `read`, `len`, `seek(End)`,
//! `wait_for`, `inspect` and `list` must return errors or data, never crash.
//!
//! Each case runs in a forked child, so a crash fails the case instead of killing the
//! harness. 256 cases by default; `PROPTEST_CASES=N` for more.

mod common;

use common::{fork_child, raw_shm_open, NameGuard, Signal, Status};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::io::{Read, Seek, SeekFrom, Write};
use std::time::Duration;

/// How much of the real header a case keeps before patching.
#[derive(Clone, Copy, Debug)]
enum Keep {
    /// Arbitrary bytes everywhere (magic included).
    Nothing,
    /// Valid magic, version and data offset; the rest arbitrary.
    MagicAndVersion,
    /// Every fixed field (bytes 0..64) valid; the rest arbitrary.
    FixedFields,
    /// The real header with a few fields patched.
    Patched,
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Linear,
    Lossy,
    Lossless,
}

#[derive(Clone)]
struct Case {
    kind: Kind,
    data: usize,
    keep: Keep,
    bytes: Vec<u8>,
    /// `(offset, value, width)` patches for [`Keep::Patched`].
    patches: Vec<(u64, u64, usize)>,
    size: u64,
    live_owner: bool,
}

impl std::fmt::Debug for Case {
    /// The header bytes in full would fill screens: their first 64 and a checksum.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Case")
            .field("kind", &self.kind)
            .field("data", &self.data)
            .field("keep", &self.keep)
            .field("bytes[..64]", &&self.bytes[..64])
            .field("bytes_checksum", &common::checksum(&self.bytes))
            .field("patches", &self.patches)
            .field("size", &self.size)
            .field("live_owner", &self.live_owner)
            .finish()
    }
}

/// Offsets of every header field (the layout table in `fshm::header`).
const FIELDS: &[(u64, usize)] = &[
    (0, 8),
    (8, 4),
    (12, 4),
    (16, 8),
    (24, 8),
    (32, 4),
    (36, 4),
    (64, 8),
    (80, 8),
    (128, 4),
    (132, 4),
    (192, 4),
    (256, 4),
    (260, 4),
    (320, 4),
    (324, 4),
    (384, 8),
    (392, 8),
    (1024, 8),
    (1032, 4),
    (1024 + 64, 8),
    (1032 + 64, 4),
    (1024 + 64 * 31, 8),
    (1032 + 64 * 31, 4),
];

fn interesting_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        0u64..(1 << 21),
        (0u32..64).prop_map(|s| 1u64 << s),
        (0u64..4).prop_map(|d| u64::MAX - d),
        Just(1u64 << 44),
        Just((1u64 << 44) + 1),
        Just(fshm::DEFAULT_MAX_SIZE),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    let kind = prop_oneof![Just(Kind::Linear), Just(Kind::Lossy), Just(Kind::Lossless)];
    let keep = prop_oneof![
        Just(Keep::Nothing),
        Just(Keep::MagicAndVersion),
        Just(Keep::FixedFields),
        Just(Keep::Patched),
    ];
    let patch =
        (0..FIELDS.len(), interesting_u64()).prop_map(|(i, v)| (FIELDS[i].0, v, FIELDS[i].1));
    let size = prop_oneof![
        Just(0u64),
        0u64..8,
        4090u64..4100,
        0u64..(1 << 20),
        Just(4096 + (64 << 10)),
        Just(1u64 << 30),
        Just((1u64 << 30) + 4096),
        Just(1u64 << 36),
    ];
    (
        kind,
        0usize..100_000,
        keep,
        prop::collection::vec(any::<u8>(), 4096),
        prop::collection::vec(patch, 1..5),
        size,
        any::<bool>(),
    )
        .prop_map(
            |(kind, data, keep, bytes, patches, size, live_owner)| Case {
                kind,
                data,
                keep,
                bytes,
                patches,
                size,
                live_owner,
            },
        )
}

/// Every read-side operation of a handle; each may fail, none may crash. Returns how
/// many calls returned data (not an error).
fn use_handle(s: &fshm::Stream) -> u32 {
    let mut ok = 0;
    let mut count = |r: bool| ok += u32::from(r);
    let mut h = s;
    let mut buf = vec![0u8; 64 << 10];
    let len = s.len();
    count(len <= s.max_size() || s.is_ring());
    let _ = s.is_empty();
    let _ = s.oldest();
    let _ = s.owner_state();
    for _ in 0..3 {
        count(h.read(&mut buf).is_ok());
    }
    for at in [0, len.saturating_sub(10), len, u64::MAX - 5] {
        count(s.read_at(at, &mut buf).is_ok());
    }
    count(h.seek(SeekFrom::End(0)).is_ok());
    count(h.seek(SeekFrom::End(-1)).is_ok());
    count(h.read(&mut buf).is_ok());
    count(h.seek(SeekFrom::Start(0)).is_ok());
    for at in [0, len, u64::MAX] {
        let _ = s.wait_for(at, Some(Duration::from_millis(1)));
    }
    let mut f = s.follow().timeout(Some(Duration::from_millis(1)));
    count(f.read(&mut buf).is_ok());
    // Small writes inside the first data page (a linear stream) or one small append
    // (a ring): nothing that could make the object grow without bound.
    if s.is_ring() {
        s.set_write_timeout(Some(Duration::from_millis(1)));
        count(h.write(b"abc").is_ok());
    } else {
        count(s.write_at(0, b"abc").is_ok());
    }
    count(s.read_at(0, &mut buf[..3]).is_ok());
    ok
}

/// Outcome codes a case's child reports.
const OPENED_RW: u8 = 0;
const OPENED_RO: u8 = 1;
const REFUSED: u8 = 2;

/// Runs one case in a forked child; returns its outcome code.
fn run_case(c: &Case) -> Result<u8, TestCaseError> {
    let g = NameGuard::new("fuzz-hdr");
    let name = g.name();
    let report = Signal::new();
    let mut child = fork_child(|| {
        let mut opts = fshm::OpenOptions::new();
        match c.kind {
            Kind::Linear => opts.max_size(1 << 20),
            Kind::Lossy => opts.ring(64 << 10, fshm::RingPolicy::Lossy),
            Kind::Lossless => opts.ring(64 << 10, fshm::RingPolicy::Lossless),
        };
        // Persistent, so that the name outlives an owner closed before the scribble.
        let mut owner = opts.persist(true).create(name).unwrap();
        owner.write_all(&vec![b'd'; c.data]).unwrap();
        let raw = raw_shm_open(name, libc::O_RDWR, 0).unwrap();
        let real = raw.pread(0, 4096);
        // The owner stays open only if the object is not cut under its mapping (that
        // is the documented SIGBUS trust boundary, not what this test is about).
        let live = c.live_owner && c.size >= raw.size();
        let owner = if live {
            Some(owner)
        } else {
            drop(owner);
            None
        };
        let mut header = c.bytes.clone();
        match c.keep {
            Keep::Nothing => {}
            Keep::MagicAndVersion => header[..16].copy_from_slice(&real[..16]),
            Keep::FixedFields => header[..64].copy_from_slice(&real[..64]),
            Keep::Patched => {
                header.copy_from_slice(&real);
                for &(off, v, width) in &c.patches {
                    let off = off as usize;
                    header[off..off + width].copy_from_slice(&v.to_le_bytes()[..width]);
                }
            }
        }
        raw.pwrite(0, &header);
        raw.ftruncate(c.size);
        let mut code = REFUSED;
        for read_only in [false, true] {
            match fshm::OpenOptions::new().read_only(read_only).open(name) {
                Ok(guest) => {
                    code = code.min(u8::from(!guest.is_writable()));
                    use_handle(&guest);
                }
                Err(e) => {
                    assert!(e.to_string().contains(name), "{e}");
                }
            }
        }
        let _ = fshm::inspect(name);
        let _ = fshm::list();
        if let Some(owner) = &owner {
            // The owner keeps its own checked copy of the fixed fields; it must
            // survive the hostile dynamic ones.
            use_handle(owner);
        }
        report.send(&[code]);
        drop(raw);
        drop(owner);
        0
    });
    // The one-byte report waits in the pipe: reap the child first.
    let status = child.wait();
    prop_assert_eq!(status, Status::Exited(0), "case {:?} crashed the child", c);
    let code = report.recv_timeout(1, Duration::from_secs(5));
    drop(g);
    Ok(code.expect("the child reported")[0])
}

#[test]
fn arbitrary_headers_and_object_sizes_give_errors_or_data_never_a_crash() {
    let config = Config {
        // Shrunk failures are printed; do not write regression files into the tree.
        failure_persistence: None,
        ..Config::default()
    };
    let cases = config.cases;
    let mut runner = TestRunner::new(config);
    let mut outcomes = [0u64; 3];
    let tally = std::cell::RefCell::new(&mut outcomes);
    runner
        .run(&case(), |c| {
            let code = run_case(&c)?;
            tally.borrow_mut()[code as usize] += 1;
            Ok(())
        })
        .unwrap();
    // The strategy reaches both sides: some headers open, some are refused.
    assert!(outcomes[REFUSED as usize] > 0, "{outcomes:?}");
    assert!(
        outcomes[OPENED_RW as usize] + outcomes[OPENED_RO as usize] > 0,
        "{outcomes:?}"
    );
    eprintln!(
        "fuzz header: {cases} cases, each in a forked child (open read-write and read-only, \
         reads, seeks, waits, follow, inspect, list): opened {}, refused {}, no crash",
        outcomes[OPENED_RW as usize] + outcomes[OPENED_RO as usize],
        outcomes[REFUSED as usize],
    );
}
