//! The importing side: owns a local replica of every remote stream under a prefix,
//! applies frames strictly by position, and refetches what is missing by range queries
//! from a thread of its own (never from inside a Zenoh callback).
//!
//! Everything that arrives is untrusted: keys must decode to a valid stream name under
//! the imported prefix, frames must pass their checksum and bounds, and the replica is
//! written only through the fshm API (appends and [`fshm::Stream::skip_to`]), so a
//! hostile exporter can at worst fill a replica with its own bytes or have it closed.

use crate::frame::{self, Kind, Meta, SourceState};
use crate::receiver::{Piece, Receiver, Sink};
use crate::{map_name, name_of_key, query_key, KEY_ROOT};
use fshm::{OpenOptions, RingPolicy, Stream};
use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver as Rx, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use zenoh::query::ConsolidationMode;
use zenoh::{Session, Wait};

/// What to import.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// Remote streams whose name starts with this are imported.
    pub prefix: String,
    /// Local prefix replacing `prefix` in the replicas' names (`None`: the same names).
    pub as_prefix: Option<String>,
    /// Where the replicas come from, recorded in each (`fshm stat`).
    pub source: String,
    /// How often every exporter is asked for its streams (new ones, lengths, ends): the
    /// bound on how long a replica waits after a reconnection.
    pub resync: Duration,
    /// Bytes held out of order per stream at most.
    pub reorder_limit: usize,
    /// Smallest capacity of a ring replica (rounded up to whole pages): a replica may
    /// hold more of the past than its source, for local readers (lossy readers: they
    /// cannot hold the importer back) that must not lose bytes to bursts from the
    /// network. 0: the source's capacity.
    pub ring_min_capacity: u64,
}

enum Event {
    /// A query's reply as Zenoh delivered it (no copy: `ZBytes` shares Zenoh's buffer).
    Frame(String, zenoh::bytes::ZBytes),
    QueryDone(Option<String>),
}

struct Replica {
    local: String,
    stream: Option<Stream>,
    recv: Receiver,
    ident: u64,
    known_len: u64,
    state: SourceState,
    querying: bool,
    asked: Option<Instant>,
}

struct ReplicaSink<'a>(&'a mut Stream);

impl Sink for ReplicaSink<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.0.write_all(bytes)
    }
    fn skip(&mut self, to: u64) -> io::Result<()> {
        self.0.skip_to(to).map(|_| ())
    }
}

/// Test hook: the importer applies at most this many bytes per second
/// (`FSHM_TUNNEL_TEST_IMPORT_RATE`), to test back-pressure with a slow importer.
fn test_rate() -> Option<f64> {
    std::env::var("FSHM_TUNNEL_TEST_IMPORT_RATE")
        .ok()?
        .parse()
        .ok()
        .filter(|r: &f64| *r > 0.0)
}

/// Runs an importer until `stop` is set.
pub fn run(session: &Session, opts: &ImportOptions, stop: Arc<AtomicBool>) -> io::Result<()> {
    // Query replies reach this thread through a bounded channel (a full one holds the
    // query thread back).
    let (tx, rx) = mpsc::sync_channel::<Event>(16);
    let (qtx, qrx) = mpsc::channel::<(Option<String>, String)>();
    let im = Arc::new(Mutex::new(Importer {
        opts: opts.clone(),
        replicas: HashMap::new(),
        qtx,
        rate: test_rate(),
        applied_since: (Instant::now(), 0),
    }));
    // Live frames are applied in Zenoh's callback itself: no hop to another thread (a
    // wake-up per frame, tens of microseconds on a busy machine). Applying never waits
    // on the network — a missing range is asked of the query thread, which never blocks
    // this callback — and a replica's writer never waits for its (read-only, lossy)
    // readers; the time the apply takes holds Zenoh's delivery back, which is the
    // back-pressure a lossless stream needs.
    let live = im.clone();
    let _sub = session
        .declare_subscriber(format!("{KEY_ROOT}/*/d"))
        .callback(move |sample| {
            let bytes = sample.payload().to_bytes();
            lock(&live).on_frame(sample.key_expr().as_str(), &bytes);
        })
        .wait()
        .map_err(|e| io::Error::other(format!("cannot declare the subscriber: {e}")))?;
    let qsession = session.clone();
    let qstop = stop.clone();
    let querier = std::thread::Builder::new()
        .name("import queries".into())
        .spawn(move || query_loop(&qsession, qrx, tx, &qstop))?;
    let mut last_resync: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        if last_resync.is_none_or(|t| t.elapsed() >= opts.resync) {
            last_resync = Some(Instant::now());
            let mut im = lock(&im);
            im.ask(None, format!("{KEY_ROOT}/*/q?meta"));
            let behind: Vec<String> = im
                .replicas
                .iter()
                .filter(|(_, r)| r.stream.is_some() && !r.querying)
                .map(|(n, _)| n.clone())
                .collect();
            for n in behind {
                im.fetch(&n);
            }
        }
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(Event::Frame(key, bytes)) => lock(&im).on_frame(&key, &bytes.to_bytes()),
            Ok(Event::QueryDone(Some(name))) => {
                let mut im = lock(&im);
                if let Some(r) = im.replicas.get_mut(&name) {
                    r.querying = false;
                }
                im.catch_up(&name);
            }
            Ok(Event::QueryDone(None)) => {}
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    // The query thread ends at its next request, which `stop` makes its last (the
    // importer, and with it the query channel, may live on in Zenoh's callback).
    drop(_sub);
    let _ = lock(&im).qtx.send((None, String::new()));
    let _ = querier.join();
    Ok(())
}

/// The importer's state, locked by the subscriber's callback and the main loop; a
/// panic while it was held leaves nothing half-applied that the next frame cannot
/// take up (replicas are written only by appends), so a poisoned lock is taken as is.
fn lock(im: &Mutex<Importer>) -> std::sync::MutexGuard<'_, Importer> {
    im.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs the queries the main loop asks for, one at a time, and feeds their replies back
/// as frames.
fn query_loop(
    session: &Session,
    rx: Rx<(Option<String>, String)>,
    tx: SyncSender<Event>,
    stop: &AtomicBool,
) {
    while let Ok((name, selector)) = rx.recv() {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let replies = session
            .get(selector.as_str())
            .consolidation(ConsolidationMode::None)
            .timeout(Duration::from_secs(5))
            .wait();
        if let Ok(replies) = replies {
            while let Ok(reply) = replies.recv() {
                if let Ok(sample) = reply.result() {
                    let key = sample.key_expr().as_str().to_owned();
                    let f = Event::Frame(key, sample.payload().clone());
                    if tx.send(f).is_err() {
                        return;
                    }
                }
            }
        }
        if tx.send(Event::QueryDone(name)).is_err() {
            return;
        }
    }
}

struct Importer {
    opts: ImportOptions,
    /// By remote name.
    replicas: HashMap<String, Replica>,
    qtx: mpsc::Sender<(Option<String>, String)>,
    rate: Option<f64>,
    applied_since: (Instant, u64),
}

impl Importer {
    fn ask(&mut self, name: Option<&str>, selector: String) {
        if let Some(r) = name.and_then(|n| self.replicas.get_mut(n)) {
            r.querying = true;
            r.asked = Some(Instant::now());
        }
        let _ = self.qtx.send((name.map(str::to_owned), selector));
    }

    /// Asks for the bytes from the replica's position.
    fn fetch(&mut self, name: &str) {
        let Some(r) = self.replicas.get(name) else {
            return;
        };
        if r.stream.is_none() || r.querying {
            return;
        }
        let sel = format!("{}?from={}", query_key(name), r.recv.pos());
        self.ask(Some(name), sel);
    }

    /// After a query: asks again while the replica is behind what it knows the source
    /// holds; closes it once a source that ended is complete here.
    fn catch_up(&mut self, name: &str) {
        let Some(r) = self.replicas.get_mut(name) else {
            return;
        };
        if r.stream.is_none() {
            return;
        }
        if r.recv.pos() >= r.known_len && r.state != SourceState::Alive {
            // The source's end: the replica's owner closes, its followers see the end.
            r.stream = None;
            return;
        }
        if r.recv.pos() < r.known_len || r.recv.gap_end().is_some() {
            self.fetch(name);
        }
    }

    fn on_frame(&mut self, key: &str, bytes: &[u8]) {
        let Some(name) = name_of_key(key) else {
            return;
        };
        let Some(local) = map_name(&name, &self.opts.prefix, self.opts.as_prefix.as_deref()) else {
            return;
        };
        let Ok(f) = frame::decode(bytes) else {
            // Corrupt: refetch from where the replica stands.
            self.fetch(&name);
            return;
        };
        match f.kind {
            Kind::Meta => {
                if let Ok(m) = Meta::parse(&f) {
                    self.on_meta(&name, local, m);
                }
            }
            Kind::Data | Kind::Lost => {
                let Some(r) = self.replicas.get_mut(&name) else {
                    // Data of a stream not known yet: ask for its description.
                    self.ask(None, format!("{}?meta", query_key(&name)));
                    return;
                };
                let Some(stream) = r.stream.as_mut() else {
                    return;
                };
                let piece = match f.kind {
                    Kind::Data => Piece::Data(f.payload),
                    _ => Piece::Lost(f.extra),
                };
                let before = r.recv.pos();
                if let Err(e) = r.recv.offer(f.pos, piece, &mut ReplicaSink(stream)) {
                    eprintln!("fshm-tunnel import: {}: {e}: replica closed", r.local);
                    r.stream = None;
                    return;
                }
                let applied = r.recv.pos() - before;
                r.known_len = r.known_len.max(r.recv.pos());
                let gap = r.recv.gap_end().is_some();
                let done = r.state != SourceState::Alive && r.recv.pos() >= r.known_len;
                if done {
                    r.stream = None;
                } else if gap {
                    self.fetch(&name);
                }
                self.throttle(applied);
            }
        }
    }

    /// Test hook: sleeps so that no more than `rate` bytes per second are applied.
    fn throttle(&mut self, applied: u64) {
        let Some(rate) = self.rate else { return };
        self.applied_since.1 += applied;
        let due = Duration::from_secs_f64(self.applied_since.1 as f64 / rate);
        let spent = self.applied_since.0.elapsed();
        if due > spent {
            std::thread::sleep(due - spent);
        }
    }

    fn on_meta(&mut self, name: &str, local: String, m: Meta) {
        if let Some(r) = self.replicas.get_mut(name) {
            if r.ident == m.ident {
                r.known_len = r.known_len.max(m.len);
                if m.state != SourceState::Alive {
                    r.state = m.state;
                }
                if r.stream.is_some() && !r.querying {
                    self.catch_up(name);
                }
                return;
            }
            // Another stream under the name: the old replica ends here.
            self.replicas.remove(name);
        }
        if m.state != SourceState::Alive && m.len == 0 {
            return;
        }
        let source = format!("{}{name}", self.opts.source);
        match create_replica(&local, &m, &source, self.opts.ring_min_capacity) {
            Ok(stream) => {
                let start = stream.len();
                self.replicas.insert(
                    name.to_owned(),
                    Replica {
                        local,
                        stream: Some(stream),
                        recv: Receiver::new(start, self.opts.reorder_limit),
                        ident: m.ident,
                        known_len: m.len,
                        state: m.state,
                        querying: false,
                        asked: None,
                    },
                );
                self.catch_up(name);
            }
            Err(e) => {
                eprintln!("fshm-tunnel import: cannot create the replica {local}: {e}");
                // Remembered as closed so that every resync does not try again.
                self.replicas.insert(
                    name.to_owned(),
                    Replica {
                        local,
                        stream: None,
                        recv: Receiver::new(0, 0),
                        ident: m.ident,
                        known_len: m.len,
                        state: m.state,
                        querying: false,
                        asked: None,
                    },
                );
            }
        }
    }
}

/// Creates the replica `local` of a source described by `m`: same kind, size and
/// persistence, the source's mode without write bits for group and others, marked a
/// replica of `source`. A replica left by an importer that died is reclaimed; any
/// other stream at the name is left alone (the create fails with `EEXIST`). A ring
/// replica starts at the source's oldest byte.
fn create_replica(local: &str, m: &Meta, source: &str, min_cap: u64) -> io::Result<Stream> {
    // A ring reserves all its memory at once: a remote description may not make this
    // host reserve more than the largest ring fshm makes by default.
    if m.ring_capacity > fshm::DEFAULT_MAX_SIZE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "the source's ring capacity {} exceeds the importer's limit {}",
                m.ring_capacity,
                fshm::DEFAULT_MAX_SIZE
            ),
        ));
    }
    let mut o = OpenOptions::new();
    o.mode(0o600 | (m.mode & 0o044))
        .persist(m.persistent)
        .max_size(m.max_size)
        .replica_of(source);
    if m.ring_capacity != 0 {
        let page = 4096;
        let cap = m.ring_capacity.max(min_cap.div_ceil(page) * page);
        o.max_size(cap);
        o.ring(
            cap,
            if m.lossless {
                RingPolicy::Lossless
            } else {
                RingPolicy::Lossy
            },
        );
    } else if m.immutable {
        o.immutable(true);
    }
    // A dead importer's replica at the name is ours to take back; a live stream or
    // anything not a replica is not.
    if let Ok(info) = fshm::inspect(local) {
        if info.replica_of.is_some() && info.owner != fshm::OwnerState::Alive {
            let _ = fshm::force_destroy(local);
        }
    }
    let s = o.create(local)?;
    if m.ring_capacity != 0 && m.oldest > 0 {
        s.skip_to(m.oldest)?;
    }
    Ok(s)
}
