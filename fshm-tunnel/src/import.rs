//! The importing side: owns a local replica of every remote stream under a prefix,
//! applies frames strictly by position, and refetches what is missing by range queries
//! from a thread of its own (never from inside a Zenoh callback).
//!
//! Everything that arrives is untrusted: keys must decode to a valid stream name under
//! the imported prefix, frames must pass their checksum and bounds, and the replica is
//! written only through the fshm API (appends and [`fshm::Stream::skip_to`]), so a
//! hostile exporter can at worst fill a replica with its own bytes or have it closed.

use crate::frame::{self, Kind, Meta, SourceState};
use crate::receiver::{Budget, Piece, Receiver, Sink};
use crate::{map_name, name_of_key, query_key, KEY_ROOT};
use fshm::{OpenOptions, RingPolicy, Stream};
use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver as Rx, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use zenoh::qos::CongestionControl;
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
    /// Bytes held out of order per stream at most, and for all streams together.
    pub reorder_limit: usize,
    /// How long a replica may go without a word from its source (an answer to a
    /// resync, a description or a frame) before it is marked stale
    /// ([`fshm::Stream::set_stale`]): its exporter or the link is gone. The mark is
    /// cleared once the replica has caught up again. `fshm-tunnel import` uses three
    /// resync periods (3 s by default).
    pub stale_after: Duration,
    /// Smallest capacity of a ring replica (rounded up to whole pages): a replica may
    /// hold more of the past than its source, for local readers (lossy readers: they
    /// cannot hold the importer back) that must not lose bytes to bursts from the
    /// network. 0: the source's capacity.
    pub ring_min_capacity: u64,
    /// Replicas held at once at most: those open, and those closed (their source ended)
    /// that are still in `/dev/shm`. A replica beyond it is not created (said once on
    /// standard error) and is tried again at a later description, once one is gone.
    pub max_streams: usize,
    /// Bytes of `/dev/shm` the replicas may take together at most: a ring replica
    /// counts its header page and whole capacity from its creation, a linear replica
    /// its header page and length. A ring replica that does not fit is not created
    /// (tried again later, as for `max_streams`); a linear replica that reaches it
    /// stops growing, holds what it has, is marked stale
    /// ([`fshm::Stream::set_stale`]) and resumes once there is room again.
    pub max_bytes: u64,
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
    /// When the source last gave word of itself (a description or a frame).
    heard: Instant,
    /// Since when the replica is marked stale (`None`: it is not).
    stale_since: Option<Instant>,
    /// The position the last range query asked from.
    fetched_from: Option<u64>,
    /// The source's length as known at the last resync: a replica still short of it at
    /// the next one lost bytes on the way (or their frames are late beyond a resync
    /// period) and asks for them. Bytes merely in flight are not asked again: a range
    /// query per resync while live frames flow would send them twice.
    due: u64,
    /// When bytes were last applied (live frames or a query's reply).
    progressed: Instant,
    /// When the replica could not be created: tried again at a description a resync
    /// period later.
    failed: Option<Instant>,
    /// A replica of a lossless ring: how its applied position is acknowledged.
    ack: Option<Acking>,
    /// A ring replica (its size is fixed at creation; a linear one grows).
    ring: bool,
    /// A linear replica stopped at `max_bytes`: no bytes are applied (nor fetched)
    /// until there is room again.
    full: bool,
    /// Whether reaching `max_bytes` was said on standard error (once per replica).
    said_full: bool,
}

/// The acknowledgements of a lossless ring's replica ([`crate::ack`]).
struct Acking {
    key: String,
    ident: u64,
    /// The position last acknowledged.
    acked: Option<u64>,
    /// Bytes applied after which an acknowledgement goes out before the queue runs empty.
    every: u64,
}

impl Acking {
    fn new(name: &str, importer: &str, m: &Meta) -> Option<Acking> {
        (m.lossless && m.ring_capacity != 0).then(|| Acking {
            key: crate::ack::ack_key(name, importer),
            ident: m.ident,
            acked: None,
            // A few per ring: the exporter holds at most a ring of unacknowledged bytes.
            every: (m.ring_capacity / 8).max(1),
        })
    }
}

/// Publishes the replica's applied position if it is `at_least` bytes past the last
/// acknowledgement (`None`: in any case). From the importer's main thread, never from a
/// Zenoh callback; `Drop` congestion control: it never waits, a lost acknowledgement is
/// repeated by the next one.
fn acknowledge(session: &Session, r: &mut Replica, at_least: Option<u64>) {
    let Some(a) = r.ack.as_mut() else { return };
    if r.stream.is_none() {
        return;
    }
    let pos = r.recv.pos();
    if let (Some(k), Some(acked)) = (at_least, a.acked) {
        if pos < acked.saturating_add(k.max(1)) {
            return;
        }
    }
    let _ = session
        .put(a.key.as_str(), crate::ack::encode(a.ident, pos).to_vec())
        .congestion_control(CongestionControl::Drop)
        .wait();
    a.acked = Some(pos);
}

impl Replica {
    /// A replica of the source `m` describes, at `local` (`stream`: `None` if it could
    /// not be created), heard from now.
    fn new(
        local: String,
        stream: Option<Stream>,
        recv: Receiver,
        m: &Meta,
        ack: Option<Acking>,
        ring: bool,
    ) -> Replica {
        Replica {
            local,
            stream,
            recv,
            ident: m.ident,
            known_len: m.len,
            state: m.state,
            querying: false,
            asked: None,
            heard: Instant::now(),
            stale_since: None,
            fetched_from: None,
            due: 0,
            progressed: Instant::now(),
            failed: None,
            ack,
            ring,
            full: false,
            said_full: false,
        }
    }

    /// Closes the replica (its owner's close: followers see the end) if its source ended
    /// and every byte the source held is here; whether it is closed.
    fn close_if_complete(&mut self) -> bool {
        if self.stream.is_some()
            && self.state != SourceState::Alive
            && self.recv.pos() >= self.known_len
        {
            self.stream = None;
        }
        self.stream.is_none()
    }

    /// Marks the replica stale, or clears the mark, saying so on standard error.
    fn mark_stale(&mut self, stale: bool, why: &str) {
        let Some(s) = self.stream.as_ref() else {
            return;
        };
        match s.set_stale(stale) {
            Ok(()) => {
                self.stale_since = stale.then(Instant::now);
                eprintln!("fshm-tunnel import: {}: {why}", self.local);
            }
            Err(e) => eprintln!("fshm-tunnel import: {}: {e}", self.local),
        }
    }

    /// Clears the stale mark once the source has given word again and the replica holds
    /// everything it last said it held, with no gap waiting to be refetched.
    fn clear_if_caught_up(&mut self) {
        let Some(since) = self.stale_since else {
            return;
        };
        if self.heard > since && self.recv.pos() >= self.known_len && self.recv.gap_end().is_none()
        {
            self.mark_stale(false, "caught up with its source again: stale mark cleared");
        }
    }
}

/// Writes to a replica; a linear one grows by `room` bytes at most (`None`: a ring, no
/// growth). A piece that does not fit is refused whole ([`FULL`]), nothing of it written.
struct ReplicaSink<'a> {
    stream: &'a mut Stream,
    room: Option<u64>,
}

/// The error a [`ReplicaSink`] refuses a piece with: the replicas' `max_bytes` is reached.
const FULL: &str = "the importer's --max-bytes limit is reached";

impl ReplicaSink<'_> {
    fn grow(&mut self, by: u64) -> io::Result<()> {
        match self.room {
            Some(room) if by > room => Err(io::Error::new(io::ErrorKind::StorageFull, FULL)),
            Some(room) => {
                self.room = Some(room - by);
                Ok(())
            }
            None => Ok(()),
        }
    }
}

impl Sink for ReplicaSink<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.grow(bytes.len() as u64)?;
        self.stream.write_all(bytes)
    }
    fn skip(&mut self, to: u64) -> io::Result<()> {
        let by = to.saturating_sub(self.stream.len());
        self.grow(by)?;
        self.stream.skip_to(to).map(|_| ())
    }
}

/// Room (bytes under `max_bytes`) that lets a linear replica stopped at the limit grow
/// again.
const RESUME_ROOM: u64 = 256 << 10;

/// Description queries for single unknown streams in flight at most.
const DESCRIBING_MAX: usize = 16;

/// Test hook: the importer applies at most this many bytes per second
/// (`FSHM_TUNNEL_TEST_IMPORT_RATE`), to test back-pressure with a slow importer.
fn test_rate() -> Option<f64> {
    std::env::var("FSHM_TUNNEL_TEST_IMPORT_RATE")
        .ok()?
        .parse()
        .ok()
        .filter(|r: &f64| *r > 0.0)
}

/// Test hook: the importer ignores every live data frame
/// (`FSHM_TUNNEL_TEST_DROP_LIVE_DATA=1`), as if Zenoh lost them all: replicas then fill
/// only through the range queries of their resyncs.
fn test_drop_live_data() -> bool {
    std::env::var_os("FSHM_TUNNEL_TEST_DROP_LIVE_DATA").is_some_and(|v| v == "1")
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
        budget: Budget::new(opts.reorder_limit),
        describing: std::collections::HashSet::new(),
        session: session.clone(),
        importer: crate::ack::importer_id(&opts.prefix, opts.as_prefix.as_deref()),
        held: HashMap::new(),
        used: 0,
    }));
    // Live frames are applied in Zenoh's callback itself: no hop to another thread (a
    // wake-up per frame, tens of microseconds on a busy machine). Applying never waits
    // on the network — a missing range is asked of the query thread, which never blocks
    // this callback — and a replica's writer never waits for its (read-only, lossy)
    // readers; the time the apply takes holds Zenoh's delivery back, which is the
    // back-pressure a lossless stream needs.
    let live = im.clone();
    let drop_live = test_drop_live_data();
    let _sub = session
        .declare_subscriber(format!("{KEY_ROOT}/*/d"))
        .callback(move |sample| {
            // A frame larger than a Zenoh batch arrives as its fragments: applied from
            // them, without joining them into one buffer first.
            let parts: Vec<&[u8]> = sample.payload().slices().collect();
            if drop_live && parts.first().and_then(|p| p.get(4)) == Some(&0) {
                return;
            }
            lock(&live).on_frame(sample.key_expr().as_str(), &parts);
        })
        .wait()
        .map_err(|e| io::Error::other(format!("cannot declare the subscriber: {e}")))?;
    let qsession = session.clone();
    let qstop = stop.clone();
    let querier = std::thread::Builder::new()
        .name("import queries".into())
        .spawn(move || query_loop(&qsession, qrx, tx, &qstop))?;
    let mut last_resync: Option<Instant> = None;
    let mut last_stale_check = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if last_stale_check.elapsed() >= Duration::from_millis(100) {
            last_stale_check = Instant::now();
            lock(&im).mark_unheard_stale();
        }
        if last_resync.is_none_or(|t| t.elapsed() >= opts.resync) {
            last_resync = Some(Instant::now());
            let mut im = lock(&im);
            im.release_gone();
            im.resume_full();
            // One description query at a time: queries slower than the resync period (a
            // peer that holds them to their timeout) must not pile up before the
            // fetches.
            if im.describing.insert(String::new()) {
                im.ask(None, format!("{KEY_ROOT}/*/q?meta"));
            }
            let behind: Vec<String> = im
                .replicas
                .iter_mut()
                .filter_map(|(n, r)| {
                    let due = std::mem::replace(&mut r.due, r.known_len);
                    let stuck = r.recv.pos() < due || r.recv.gap_end().is_some();
                    (r.stream.is_some() && !r.querying && !r.full && stuck).then(|| n.clone())
                })
                .collect();
            for n in behind {
                im.fetch(&n);
            }
            im.acknowledge_all(None);
        }
        // Acknowledgements of what the live frames applied go out at least every tick
        // (and from `on_frame` every eighth of a ring).
        lock(&im).acknowledge_all(Some(1));
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(Event::Frame(key, bytes)) => {
                let parts: Vec<&[u8]> = bytes.slices().collect();
                lock(&im).on_frame(&key, &parts)
            }
            Ok(Event::QueryDone(Some(name))) => {
                let mut im = lock(&im);
                if !im.describing.remove(&name) {
                    // A range query that brought nothing is asked again at the next
                    // resync, not at once: a source described longer than anyone
                    // serves must not spin the importer on queries.
                    let mut progressed = true;
                    if let Some(r) = im.replicas.get_mut(&name) {
                        r.querying = false;
                        progressed = r.fetched_from != Some(r.recv.pos()) && !r.close_if_complete();
                    }
                    if progressed {
                        im.catch_up(&name);
                    }
                }
            }
            Ok(Event::QueryDone(None)) => {
                lock(&im).describing.remove("");
            }
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
    /// Shared by the replicas' reorder buffers.
    budget: Budget,
    /// Description queries in flight: `""` for all streams, else the remote names
    /// asked about (one each, however many frames of unknown streams arrive).
    describing: std::collections::HashSet<String>,
    session: Session,
    /// The id this importer acknowledges under ([`crate::ack::importer_id`]).
    importer: String,
    /// The replicas this importer created that may still be in `/dev/shm`, by local
    /// name, with the bytes each counts against `max_bytes` (see [`ImportOptions`]).
    held: HashMap<String, u64>,
    /// The sum of `held`.
    used: u64,
}

impl Importer {
    /// Counts `bytes` for the replica `local` (replacing what it counted).
    fn charge(&mut self, local: &str, bytes: u64) {
        let old = self.held.insert(local.to_owned(), bytes).unwrap_or(0);
        self.used = self.used - old + bytes;
    }

    /// Counts the replica `local` no more.
    fn uncharge(&mut self, local: &str) {
        if let Some(old) = self.held.remove(local) {
            self.used -= old;
        }
    }

    /// Stops counting closed replicas that are gone from `/dev/shm` (a non-persistent
    /// one as its last reader closed, a persistent one once removed) or replaced by a
    /// stream that is not this user's replica.
    fn release_gone(&mut self) {
        let open: std::collections::HashSet<&str> = self
            .replicas
            .values()
            .filter(|r| r.stream.is_some())
            .map(|r| r.local.as_str())
            .collect();
        // SAFETY: `geteuid` has no preconditions and cannot fail.
        let uid = unsafe { libc::geteuid() };
        let gone: Vec<String> = self
            .held
            .keys()
            .filter(|l| !open.contains(l.as_str()))
            .filter(|l| fshm::inspect(l).map_or(true, |i| i.replica_of.is_none() || i.uid != uid))
            .cloned()
            .collect();
        for l in gone {
            self.uncharge(&l);
        }
    }

    /// Lets linear replicas stopped at `max_bytes` grow again (and catch up) once there
    /// is room for [`RESUME_ROOM`]: not a range query per resync for a few bytes.
    fn resume_full(&mut self) {
        if self.used.saturating_add(RESUME_ROOM) > self.opts.max_bytes {
            return;
        }
        let full: Vec<String> = self
            .replicas
            .iter()
            .filter(|(_, r)| r.full && r.stream.is_some())
            .map(|(n, _)| n.clone())
            .collect();
        for n in full {
            if let Some(r) = self.replicas.get_mut(&n) {
                r.full = false;
            }
            self.catch_up(&n);
        }
    }

    /// Why a replica counting `bytes` cannot be created at `local` now (`None`: it
    /// can). What a replica at `local` counts already is not counted: creating takes
    /// it back.
    fn no_room(&self, local: &str, bytes: u64) -> Option<String> {
        let mine = self.held.get(local).copied();
        let streams = self.held.len() - usize::from(mine.is_some());
        let used = self.used - mine.unwrap_or(0);
        if streams >= self.opts.max_streams {
            Some(format!(
                "the importer holds {streams} replicas, its --max-streams limit (tried \
                 again once one is gone)"
            ))
        } else if used.saturating_add(bytes) > self.opts.max_bytes {
            Some(format!(
                "it needs {bytes} bytes of /dev/shm and the replicas hold {used} of the \
                 importer's --max-bytes limit {} (tried again once replicas free room)",
                self.opts.max_bytes
            ))
        } else {
            None
        }
    }

    /// Acknowledges every lossless replica (`at_least`: see [`acknowledge`]).
    fn acknowledge_all(&mut self, at_least: Option<u64>) {
        for r in self.replicas.values_mut() {
            acknowledge(&self.session, r, at_least);
        }
    }

    /// Marks stale every open replica whose source has given no word for
    /// `stale_after`.
    fn mark_unheard_stale(&mut self) {
        let after = self.opts.stale_after;
        for r in self.replicas.values_mut() {
            if r.stream.is_some() && r.stale_since.is_none() && r.heard.elapsed() >= after {
                let why = format!(
                    "no word from its source for {} ms (exporter or link gone): marked stale; \
                     it stays open and resumes when the source is back",
                    after.as_millis()
                );
                r.mark_stale(true, &why);
            }
        }
    }

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
        if r.stream.is_none() || r.querying || r.full {
            return;
        }
        let pos = r.recv.pos();
        let sel = format!("{}?from={pos}", query_key(name));
        self.ask(Some(name), sel);
        if let Some(r) = self.replicas.get_mut(name) {
            r.fetched_from = Some(pos);
        }
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
        r.clear_if_caught_up();
        if r.recv.pos() >= r.known_len && r.state != SourceState::Alive {
            // The source's end: the replica's owner closes, its followers see the end.
            r.stream = None;
            return;
        }
        if r.recv.pos() < r.known_len || r.recv.gap_end().is_some() {
            self.fetch(name);
        }
    }

    fn on_frame(&mut self, key: &str, parts: &[&[u8]]) {
        let Some(name) = name_of_key(key) else {
            return;
        };
        let Some(local) = map_name(&name, &self.opts.prefix, self.opts.as_prefix.as_deref()) else {
            return;
        };
        let Ok(f) = frame::decode_parts(parts) else {
            // Corrupt: refetch from where the replica stands.
            self.fetch(&name);
            return;
        };
        match f.kind {
            Kind::Meta => {
                let payload = f.joined();
                let whole = frame::Frame {
                    kind: f.kind,
                    pos: f.pos,
                    extra: f.extra,
                    payload: &payload,
                };
                if let Ok(m) = Meta::parse(&whole) {
                    self.on_meta(&name, local, m);
                }
            }
            Kind::Data | Kind::Lost => {
                let Some(r) = self.replicas.get_mut(&name) else {
                    // Data of a stream not known yet: ask for its description, once while
                    // the question is open and for a few names at a time (the periodic
                    // description of all streams finds the others).
                    if self.describing.len() < DESCRIBING_MAX
                        && self.describing.insert(name.clone())
                    {
                        let sel = format!("{}?meta", query_key(&name));
                        let _ = self.qtx.send((Some(name), sel));
                    }
                    return;
                };
                let Some(stream) = r.stream.as_mut() else {
                    return;
                };
                r.heard = Instant::now();
                if r.full {
                    // Refetched once there is room.
                    return;
                }
                let before = r.recv.pos();
                let counted = self.held.get(&r.local).copied().unwrap_or(0);
                let room = (!r.ring).then(|| {
                    self.opts
                        .max_bytes
                        .saturating_sub(self.used.saturating_sub(counted))
                        .saturating_sub(counted.max(fshm::header::DATA_OFFSET + before))
                });
                let mut sink = ReplicaSink { stream, room };
                let offered = match f.kind {
                    Kind::Data => r.recv.offer_data(f.pos, &f.payload, &mut sink),
                    _ => r.recv.offer(f.pos, Piece::Lost(f.extra), &mut sink),
                };
                let applied = r.recv.pos() - before;
                if applied > 0 {
                    r.progressed = Instant::now();
                }
                if !r.ring {
                    let local = r.local.clone();
                    let len = fshm::header::DATA_OFFSET + r.recv.pos();
                    self.charge(&local, len.max(counted));
                }
                let Some(r) = self.replicas.get_mut(&name) else {
                    return;
                };
                match offered {
                    Err(e) if e.kind() == io::ErrorKind::StorageFull && !r.ring => {
                        // Holds what it has; its readers wait (the stale mark says why).
                        r.full = true;
                        if !std::mem::replace(&mut r.said_full, true) {
                            eprintln!(
                                "fshm-tunnel import: {}: {FULL}: the replica stops growing at \
                             {} bytes and is marked stale; it resumes when replicas free \
                             room",
                                r.local,
                                r.recv.pos()
                            );
                        }
                        if r.stale_since.is_none() {
                            if let Some(s) = r.stream.as_ref() {
                                if s.set_stale(true).is_ok() {
                                    r.stale_since = Some(Instant::now());
                                }
                            }
                        }
                        return;
                    }
                    Err(e) => {
                        eprintln!("fshm-tunnel import: {}: {e}: replica closed", r.local);
                        r.stream = None;
                        return;
                    }
                    Ok(()) => {}
                }
                r.known_len = r.known_len.max(r.recv.pos());
                let gap = r.recv.gap_end().is_some();
                r.clear_if_caught_up();
                let done = r.state != SourceState::Alive && r.recv.pos() >= r.known_len;
                if let Some(every) = r.ack.as_ref().map(|a| a.every) {
                    acknowledge(&self.session, r, Some(every));
                }
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
    /// Time spent idle earns no credit beyond 50 ms of bytes (no burst after a pause).
    fn throttle(&mut self, applied: u64) {
        let Some(rate) = self.rate else { return };
        self.applied_since.1 += applied;
        let due = Duration::from_secs_f64(self.applied_since.1 as f64 / rate);
        let spent = self.applied_since.0.elapsed();
        if spent > due + Duration::from_millis(50) {
            self.applied_since = (Instant::now(), 0);
        } else if due > spent {
            std::thread::sleep(due - spent);
        }
    }

    fn on_meta(&mut self, name: &str, local: String, m: Meta) {
        let mut failed_before = false;
        if let Some(r) = self.replicas.get_mut(name) {
            let retry = r.failed.is_some_and(|t| t.elapsed() >= self.opts.resync);
            if r.ident == m.ident && !retry {
                r.heard = Instant::now();
                r.known_len = r.known_len.max(m.len);
                if m.state != SourceState::Alive {
                    r.state = m.state;
                }
                // An ended source whose bytes are all here closes the replica now, also
                // while a range query is out (every resync asks one: waiting for it to
                // bring something would wait forever).
                if r.close_if_complete() {
                    return;
                }
                // Behind what the source reports: asked for at once if nothing arrived
                // for a resync period (a source quiet since the link or the exporter
                // came back), if the source ended, or if the replica is stale; while
                // bytes flow they are on their way, and the next resync asks for what
                // is still missing then.
                let quiet = r.progressed.elapsed() >= self.opts.resync;
                let now = quiet || r.state != SourceState::Alive || r.stale_since.is_some();
                if r.stream.is_some() && !r.querying && now {
                    self.catch_up(name);
                } else {
                    r.clear_if_caught_up();
                }
                return;
            }
            // Another stream under the name: the old replica ends here (or one that
            // could not be created is tried again).
            failed_before = r.failed.is_some();
            self.replicas.remove(name);
        }
        if m.state != SourceState::Alive && m.len == 0 {
            return;
        }
        let mut source = format!("{}{name}", self.opts.source);
        // Cut to what a replica's header holds (a long name must not keep it away).
        let mut cut = source.len().min(fshm::header::SOURCE_MAX);
        while !source.is_char_boundary(cut) {
            cut -= 1;
        }
        source.truncate(cut);
        let ring = m.ring_capacity != 0;
        let bytes = fshm::header::DATA_OFFSET
            + if ring {
                ring_capacity(&m, self.opts.ring_min_capacity)
            } else {
                0
            };
        let created = match self.no_room(&local, bytes) {
            Some(why) => Err(io::Error::new(io::ErrorKind::StorageFull, why)),
            None => create_replica(&local, &m, &source, self.opts.ring_min_capacity),
        };
        match created {
            Ok(stream) => {
                let bytes = if ring {
                    bytes
                } else {
                    fshm::header::DATA_OFFSET + stream.len()
                };
                self.charge(&local, bytes);
                let start = stream.len();
                let ack = Acking::new(name, &self.importer, &m);
                let recv = Receiver::with_budget(start, self.opts.reorder_limit, &self.budget);
                let r = Replica::new(local, Some(stream), recv, &m, ack, ring);
                self.replicas.insert(name.to_owned(), r);
                // The exporter learns of this importer before any byte is released.
                if let Some(r) = self.replicas.get_mut(name) {
                    acknowledge(&self.session, r, None);
                }
                self.catch_up(name);
            }
            Err(e) => {
                // Said once; tried again at each description (a name squatted for a
                // while, or space freed, must not keep the replica away for good).
                if !failed_before {
                    eprintln!("fshm-tunnel import: cannot create the replica {local}: {e}");
                }
                let mut r = Replica::new(local, None, Receiver::new(0, 0), &m, None, ring);
                r.failed = Some(Instant::now());
                self.replicas.insert(name.to_owned(), r);
            }
        }
    }
}

/// The capacity of a ring replica of a source described by `m`.
fn ring_capacity(m: &Meta, min_cap: u64) -> u64 {
    let page = 4096;
    m.ring_capacity.max(min_cap.div_ceil(page) * page)
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
        let cap = ring_capacity(m, min_cap);
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
    // A dead importer's replica at the name is ours to take back; a live stream,
    // anything not a replica, or another user's stream is not (an importer running as
    // root would otherwise remove any user's replica).
    if let Ok(info) = fshm::inspect(local) {
        // SAFETY: `geteuid` has no preconditions and cannot fail.
        let ours = info.uid == unsafe { libc::geteuid() };
        if ours && info.replica_of.is_some() && info.owner != fshm::OwnerState::Alive {
            let _ = fshm::force_destroy(local);
        }
    }
    let s = o.create(local)?;
    if m.ring_capacity != 0 && m.oldest > 0 {
        s.skip_to(m.oldest)?;
    }
    Ok(s)
}
