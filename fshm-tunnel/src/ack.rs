//! End-to-end acknowledgements of lossless rings.
//!
//! Zenoh's reliability is per connection (issue 26, item 6): a connection closed after
//! a long outage drops what it had queued while `put` returned success. So bytes of a
//! lossless ring count as delivered only once an importer says it has **applied** them:
//!
//! - every importer publishes, for each replica of a lossless ring, the position its
//!   replica has applied on `fshm/<hex name>/a/<importer id>` — after applying a batch,
//!   when its queue runs empty, and every resync period; from its main thread, never
//!   from inside a Zenoh callback, and with `CongestionControl::Drop` (a lost
//!   acknowledgement is repeated by the next one);
//! - the exporter reads the ring through its attached reader *ahead of* the reader's
//!   slot (`read_at` of the bytes the slot holds: the writer overwrites none of them)
//!   and moves the slot — releasing the bytes to the producer — only up to the smallest
//!   position acknowledged by the importers it knows ([`Ledger`]), so the slowest
//!   remote replica holds the producer back exactly as a slow local reader does; bytes
//!   Zenoh lost are still held and the importer refetches them by range query;
//! - an importer that stays behind without progress for the **patience**
//!   (`--ack-patience-ms`) is no longer waited for: the ring is released to what was
//!   sent, and its replica records the bytes it then misses as lost (if the source no
//!   longer holds them) when it comes back; its next acknowledgement makes it a holder
//!   again. With no importer known, bytes are released as soon as Zenoh accepted them.
//!
//! Acknowledgements come from the network and are untrusted: a CRC and the stream's
//! identity guard against corrupt or stale ones, an acknowledgement never releases
//! more than was sent, at most [`MAX_IMPORTERS`] ids are tracked per stream (others are
//! ignored), and an id holds the ring for at most the patience without progress — a
//! new id joining a stalled ring inherits the stall's start, so fresh ids cannot
//! extend it.
//!
//! Payload (little-endian, 24 bytes): magic `b"FSA1"`, CRC-32 (IEEE) of bytes 8..24,
//! the stream's identity (the meta frame's `ident`), the applied position.

use crate::{hex, KEY_ROOT};
use fshm::Stream;
use std::collections::HashMap;
use std::io::{Seek, SeekFrom};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Size of an acknowledgement's payload.
pub const ACK_LEN: usize = 24;
const MAGIC: [u8; 4] = *b"FSA1";
/// Importer ids tracked per stream at most; acknowledgements of others are ignored.
pub const MAX_IMPORTERS: usize = 32;
/// Longest importer id accepted (characters of `[0-9A-Za-z_-]`).
pub const MAX_ID_LEN: usize = 64;

/// The key on which importer `importer` acknowledges its replica of `name`.
pub fn ack_key(name: &str, importer: &str) -> String {
    format!("{}/{importer}", ack_prefix(name))
}

/// The key expression of every acknowledgement of every stream. The exporter declares
/// its subscriber once, when it starts, so that importers learn of it when they
/// connect, before any frame: Zenoh sends a publication only where it knows a matching
/// subscriber, and a declaration made later would reach an importer behind frames, on
/// a link whose receiving side the importer's back-pressure may hold up.
pub fn all_ack_keys() -> String {
    format!("{KEY_ROOT}/*/a/*")
}

fn ack_prefix(name: &str) -> String {
    format!("{KEY_ROOT}/{}/a", hex(name.as_bytes()))
}

/// The stream name and importer id an acknowledgement key carries, checked: a valid
/// stream name (as [`crate::name_of_key`] checks it) and an id of 1 to [`MAX_ID_LEN`]
/// characters of `[0-9A-Za-z_-]`; `None` for anything else.
pub fn parse_key(key: &str) -> Option<(String, &str)> {
    let (head, id) = key.rsplit_once('/')?;
    let hex = head
        .strip_prefix(KEY_ROOT)?
        .strip_prefix('/')?
        .strip_suffix("/a")?;
    if hex.contains('/') {
        return None;
    }
    let name = crate::name_of_key(&format!("{KEY_ROOT}/{hex}/d"))?;
    let ok = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    ok.then_some((name, id))
}

/// Encodes an acknowledgement of position `pos` of the stream `ident`.
pub fn encode(ident: u64, pos: u64) -> [u8; ACK_LEN] {
    let mut b = [0u8; ACK_LEN];
    b[..4].copy_from_slice(&MAGIC);
    b[8..16].copy_from_slice(&ident.to_le_bytes());
    b[16..24].copy_from_slice(&pos.to_le_bytes());
    let crc = crc32fast::hash(&b[8..]);
    b[4..8].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Decodes an acknowledgement: `(ident, pos)`, or `None` if it is not exactly one
/// well-formed acknowledgement.
pub fn decode(b: &[u8]) -> Option<(u64, u64)> {
    if b.len() != ACK_LEN || b[..4] != MAGIC {
        return None;
    }
    let crc = u32::from_le_bytes(b[4..8].try_into().ok()?);
    if crc != crc32fast::hash(&b[8..]) {
        return None;
    }
    let ident = u64::from_le_bytes(b[8..16].try_into().ok()?);
    let pos = u64::from_le_bytes(b[16..24].try_into().ok()?);
    Some((ident, pos))
}

/// The id this host's importer of `prefix` (mapped to `as_prefix`) acknowledges under:
/// the same for an importer restarted on the same host with the same prefixes (so that
/// it takes over its dead predecessor's place instead of waiting out its patience), and
/// different for another host, another private `/dev/shm` or other replicas. Derived
/// from `/etc/machine-id`, the host name, the device of `/dev/shm` and the prefixes.
pub fn importer_id(prefix: &str, as_prefix: Option<&str>) -> String {
    use std::os::unix::fs::MetadataExt;
    let mut h = Fnv::default();
    h.add(&std::fs::read("/etc/machine-id").unwrap_or_default());
    h.add(&std::fs::read("/proc/sys/kernel/hostname").unwrap_or_default());
    let dev = std::fs::metadata("/dev/shm").map(|m| m.dev()).unwrap_or(0);
    h.add(&dev.to_le_bytes());
    h.add(prefix.as_bytes());
    h.add(as_prefix.unwrap_or(prefix).as_bytes());
    format!("{:016x}", h.0)
}

/// FNV-1a, 64 bits: a stable hash (std's hasher may change between releases), with
/// each field's length mixed in so that fields cannot run into each other.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn add(&mut self, b: &[u8]) {
        for x in (b.len() as u64).to_le_bytes().iter().chain(b) {
            self.0 ^= u64::from(*x);
            self.0 = self.0.wrapping_mul(0x100_0000_01b3);
        }
    }
}

/// One importer as the exporter knows it.
#[derive(Debug)]
struct Known {
    /// The position it last acknowledged (untrusted: clamped where used).
    acked: u64,
    /// The highest effective position seen: an advance past it is progress.
    best: u64,
    /// Since when it has been behind what was sent without progress.
    quiet: Option<Instant>,
}

/// The exporter's record of one lossless ring's importers: where each has applied, and
/// how far the ring may be released. Pure (no Zenoh, no shared memory), so that tests
/// drive it with any acknowledgements and clocks.
#[derive(Debug)]
pub struct Ledger {
    patience: Duration,
    known: HashMap<String, Known>,
    released: u64,
    sent: u64,
    /// Since when the release point has stayed below `sent` without advancing.
    stall: Option<Instant>,
}

impl Ledger {
    /// A ledger for a ring whose reader stands at `pos` (released and sent up to it),
    /// waiting for a silent importer for `patience` at most.
    pub fn new(pos: u64, patience: Duration) -> Ledger {
        Ledger {
            patience,
            known: HashMap::new(),
            released: pos,
            sent: pos,
            stall: None,
        }
    }

    /// Where the bytes are released up to (the attached reader's slot).
    pub fn released(&self) -> u64 {
        self.released
    }

    /// How many importers are waited for.
    pub fn importers(&self) -> usize {
        self.known.len()
    }

    /// Records that everything before `pos` was handed to Zenoh (never moves back).
    pub fn sent(&mut self, pos: u64) {
        self.sent = self.sent.max(pos);
    }

    /// The effective position of an acknowledgement: never below what is released, never
    /// past what was sent (an acknowledgement of unsent bytes releases nothing more).
    fn effective(&self, acked: u64) -> u64 {
        acked.clamp(self.released, self.sent)
    }

    /// Records importer `id`'s acknowledgement of `pos`. A new id joins while fewer than
    /// [`MAX_IMPORTERS`] are known (else it is ignored: returns false); joining a ring
    /// already stalled, its patience counts from the stall's start.
    pub fn ack(&mut self, id: &str, pos: u64, now: Instant) -> bool {
        if let Some(k) = self.known.get_mut(id) {
            k.acked = pos;
            return true;
        }
        if self.known.len() >= MAX_IMPORTERS {
            return false;
        }
        let eff = self.effective(pos);
        let quiet = (eff < self.sent).then(|| self.stall.unwrap_or(now));
        self.known.insert(
            id.to_owned(),
            Known {
                acked: pos,
                best: eff,
                quiet,
            },
        );
        true
    }

    /// Moves the release point as far as the importers allow and returns it: the
    /// smallest effective acknowledgement, or what was sent when no importer is known.
    /// First forgets every importer behind what was sent that has made no progress for
    /// the patience (their ids are returned).
    pub fn release(&mut self, now: Instant) -> (u64, Vec<String>) {
        let (floor, sent, patience) = (self.released, self.sent, self.patience);
        let mut dropped = Vec::new();
        self.known.retain(|id, k| {
            let eff = k.acked.clamp(floor, sent);
            if eff > k.best {
                k.best = eff;
                k.quiet = None;
            }
            if eff >= sent {
                k.quiet = None;
                return true;
            }
            let since = *k.quiet.get_or_insert(now);
            if now.saturating_duration_since(since) >= patience {
                dropped.push(id.clone());
                return false;
            }
            true
        });
        let point = self
            .known
            .values()
            .map(|k| k.acked.clamp(floor, sent))
            .min()
            .unwrap_or(sent);
        if point >= sent {
            self.stall = None;
        } else if point > floor || self.stall.is_none() {
            self.stall = Some(now);
        }
        self.released = point;
        (point, dropped)
    }
}

/// The exporter's lossless rings by name, for the acknowledgements' subscriber.
pub type Releases = Arc<Mutex<HashMap<String, Arc<Release>>>>;

/// The acknowledgements' subscriber: hands a checked acknowledgement to its ring's
/// [`Release`]; ignores keys of streams not exported as lossless rings.
pub fn dispatch(releases: &Releases, key: &str, payload: &[u8]) {
    let Some((name, id)) = parse_key(key) else {
        return;
    };
    let r = releases
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&name)
        .cloned();
    if let Some(r) = r {
        r.on_ack(id, payload);
    }
}

/// A lossless ring's release, shared by its pump (which reports what it sent) and the
/// subscriber of its acknowledgements: moves the exporter's attached reader only up to
/// what the [`Ledger`] allows. Never blocks (a mutex held for a few comparisons and a
/// seek), so it runs inside Zenoh's callback.
pub struct Release {
    stream: Arc<Stream>,
    ident: u64,
    ledger: Mutex<Ledger>,
}

impl Release {
    /// The release of `stream` (an attached reader of a lossless ring, of identity
    /// `ident`), from its position, with `patience` for silent importers.
    pub fn new(stream: Arc<Stream>, ident: u64, patience: Duration) -> Release {
        let ledger = Ledger::new(stream.position(), patience);
        Release {
            stream,
            ident,
            ledger: Mutex::new(ledger),
        }
    }

    /// The stream's name.
    pub fn name(&self) -> &str {
        self.stream.name()
    }

    /// The pump handed everything before `pos` to Zenoh (or wakes with nothing new:
    /// silent importers are then timed out).
    pub fn sent(&self, pos: u64) {
        let mut l = self.ledger.lock().unwrap_or_else(|e| e.into_inner());
        l.sent(pos);
        self.apply(&mut l);
    }

    /// Importer `id`'s acknowledgement arrived: checked, recorded, and the ring
    /// released as far as it now may be.
    pub fn on_ack(&self, id: &str, payload: &[u8]) {
        let Some((ident, pos)) = decode(payload) else {
            return;
        };
        if ident != self.ident {
            return;
        }
        let mut l = self.ledger.lock().unwrap_or_else(|e| e.into_inner());
        l.ack(id, pos, Instant::now());
        self.apply(&mut l);
    }

    fn apply(&self, l: &mut Ledger) {
        let (point, dropped) = l.release(Instant::now());
        for id in dropped {
            eprintln!(
                "fshm-tunnel export: {}: importer {id} made no progress for {:?}: \
                 no longer waiting for it",
                self.stream.name(),
                l.patience
            );
        }
        // Forward only: a seek back would let the writer overwrite what the reader had
        // passed. An overrun (never expected here) may have moved the reader already.
        if point > self.stream.position() {
            if let Err(e) = (&*self.stream).seek(SeekFrom::Start(point)) {
                eprintln!("fshm-tunnel export: {}: release: {e}", self.stream.name());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Duration = Duration::from_secs(10);

    #[test]
    fn acknowledgements_round_trip_and_bad_ones_are_refused() {
        let a = encode(7, 12345);
        assert_eq!(decode(&a), Some((7, 12345)));
        for i in 0..ACK_LEN {
            let mut b = a;
            b[i] ^= 0x10;
            assert_eq!(decode(&b), None, "byte {i} flipped");
        }
        assert_eq!(decode(&a[..ACK_LEN - 1]), None);
        assert_eq!(decode(&[a.as_slice(), &[0]].concat()), None);
        let k = ack_key("/s/a", "host-1");
        assert_eq!(parse_key(&k), Some(("/s/a".to_owned(), "host-1")));
        for bad in ["", "a/b", "a*", "$x", &"x".repeat(MAX_ID_LEN + 1)] {
            assert_eq!(parse_key(&ack_key("/s/a", bad)), None, "{bad}");
        }
        for bad in [
            "fshm/2f2e2e/a/x",  // "/.."
            "fshm/2f61/d/x",    // not an acknowledgement
            "fshm/2f61/x/a/id", // an extra chunk
            "fshm/2f61/a",
            "other/2f61/a/x",
        ] {
            assert_eq!(parse_key(bad), None, "{bad}");
        }
        assert_eq!(k, format!("{KEY_ROOT}/2f732f61/a/host-1"));
    }

    #[test]
    fn the_importer_id_is_stable_and_depends_on_the_prefixes() {
        let a = importer_id("/s/", None);
        assert_eq!(a, importer_id("/s/", None));
        assert_eq!(a, importer_id("/s/", Some("/s/")));
        assert_ne!(a, importer_id("/s/", Some("/r/")));
        assert_ne!(a, importer_id("/t/", None));
        assert!(parse_key(&ack_key("/x", &a)).is_some());
    }

    /// (c) An acknowledgement beyond what was sent releases only what was sent.
    #[test]
    fn an_ack_beyond_the_sent_position_releases_no_unsent_byte() {
        let t = Instant::now();
        let mut l = Ledger::new(100, P);
        l.sent(1000);
        assert!(l.ack("a", 50, t));
        assert_eq!(
            l.release(t).0,
            100,
            "below the release point releases nothing"
        );
        l.ack("a", u64::MAX, t);
        assert_eq!(l.release(t).0, 1000);
        assert_eq!(l.released(), 1000);
        // Nothing more is sent: an acknowledgement far ahead still releases nothing.
        l.ack("a", 5000, t);
        assert_eq!(l.release(t).0, 1000);
        // The slowest importer rules; a fake one far ahead does not help it past.
        l.sent(3000);
        l.ack("b", 1500, t);
        l.ack("fake", 1 << 60, t);
        assert_eq!(l.release(t).0, 1500);
        // Never back: a lower acknowledgement (an importer restarted) holds from here.
        l.ack("b", 10, t);
        assert_eq!(l.release(t).0, 1500);
        l.ack("b", 2000, t);
        assert_eq!(l.release(t).0, 2000);
    }

    #[test]
    fn without_importers_what_was_sent_is_released() {
        let t = Instant::now();
        let mut l = Ledger::new(0, P);
        l.sent(4096);
        assert_eq!(l.release(t), (4096, vec![]));
    }

    #[test]
    fn a_silent_importer_is_waited_for_the_patience_then_no_longer() {
        let t = Instant::now();
        let mut l = Ledger::new(0, P);
        l.ack("a", 0, t);
        l.ack("b", 0, t);
        l.sent(100);
        assert_eq!(l.release(t).0, 0);
        // `a` makes progress now and then; `b` is silent.
        let mut now = t;
        for i in 1..=9u64 {
            now = t + Duration::from_secs(i);
            l.ack("a", 10 * i, now);
            assert_eq!(l.release(now).0, 0, "b still holds at {i} s");
        }
        let (point, dropped) = l.release(t + P);
        assert_eq!(dropped, vec!["b".to_owned()]);
        assert_eq!(point, 90, "a holds from where it is");
        assert_eq!(l.importers(), 1);
        // `b` comes back: it holds again from its next acknowledgement.
        l.ack("b", 0, now + P);
        l.sent(200);
        l.ack("a", 200, now + P);
        assert_eq!(l.release(now + P).0, 90);
    }

    #[test]
    fn new_ids_cannot_stretch_a_stall_nor_grow_without_bound() {
        let t = Instant::now();
        let mut l = Ledger::new(0, P);
        l.sent(100);
        l.ack("first", 0, t);
        assert_eq!(l.release(t).0, 0);
        // A flood of ids, each acknowledging nothing new, over the patience.
        let mut refused = 0;
        for i in 0..1000u32 {
            let now = t + P * i / 1000;
            if !l.ack(&format!("fake{i}"), 0, now) {
                refused += 1;
            }
            assert!(l.importers() <= MAX_IMPORTERS);
            l.release(now);
        }
        assert!(refused > 0);
        // At the patience every one of them is forgotten at once: the ring moves on.
        let (point, dropped) = l.release(t + P);
        assert_eq!(point, 100);
        assert_eq!(l.importers(), 0);
        assert_eq!(dropped.len(), MAX_IMPORTERS);
        // An id joining a ring that stalled long ago gets only what remains of the stall.
        l.sent(200);
        l.ack("x", 100, t + P);
        assert_eq!(l.release(t + P).0, 100);
        l.ack("late", 100, t + P + P / 2);
        assert_eq!(l.release(t + P + P / 2).0, 100);
        let (point, dropped) = l.release(t + 2 * P);
        assert_eq!(point, 200);
        assert_eq!(dropped.len(), 2);
    }
}
