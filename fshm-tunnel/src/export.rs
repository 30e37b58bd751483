//! The exporting side: finds the streams under a prefix, publishes their committed
//! bytes as position-stamped frames, and answers range queries from what the source
//! still holds.

use crate::ack::{self, Release};
use crate::frame::{self, Kind, Meta, SourceState};
use crate::{data_key, name_of_key, query_key, under, BATCH, KEY_ROOT, QUERY_CHUNK};
use fshm::{OpenOptions, OwnerState, Stream, WaitStatus};
use std::collections::HashMap;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use zenoh::qos::CongestionControl;
use zenoh::{Session, Wait};

/// How long an ended stream whose name is gone is still described to queries.
const ENDED_KEPT: Duration = Duration::from_secs(60);

/// Queries waiting for the answering thread at most (older ones are dropped first).
const QUERY_QUEUE: usize = 256;

/// Frame buffers a pump keeps for reuse at most (one is in use at a time, unless a
/// subscriber in the exporter's own session keeps frames).
const POOLED: usize = 4;

/// Frames of at least this many bytes go in pooled buffers; smaller ones in a buffer of
/// their own size.
const POOL_FROM: usize = 64 << 10;

/// A pump's frame buffers, each `HEADER + BATCH` bytes. A frame of at least
/// [`POOL_FROM`] bytes is handed to Zenoh in one of them, which comes back here when
/// Zenoh drops it (once the frame is in its batches): a new 1 MiB `Vec` per frame cost a
/// fresh mapping from the kernel (page faults, pages zeroed by the kernel) and a
/// zero-fill of its own every time. A pump whose stream is idle for one wait (200 ms)
/// empties its pool: an exporter of many streams holds buffers for the busy ones only.
type Pool = Arc<Mutex<Vec<Vec<u8>>>>;

/// A frame's buffer: `len` bytes of it are the frame. One of `pool`'s goes back to it
/// when dropped (by Zenoh, or by the pump when a read brought nothing); a small frame's
/// is its own size, with no pool (a stream that trickles must not hold 1 MiB a frame).
struct FrameBuf {
    buf: Vec<u8>,
    len: usize,
    pool: Option<Pool>,
}

impl FrameBuf {
    /// A buffer for a frame of up to `payload` bytes.
    fn for_payload(pool: &Pool, payload: usize) -> FrameBuf {
        if payload < POOL_FROM {
            let buf = vec![0; frame::HEADER + payload];
            return FrameBuf {
                buf,
                len: 0,
                pool: None,
            };
        }
        let reused = pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
        FrameBuf {
            buf: reused.unwrap_or_else(|| vec![0; frame::HEADER + BATCH]),
            len: 0,
            pool: Some(pool.clone()),
        }
    }
}

impl AsRef<[u8]> for FrameBuf {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for FrameBuf {
    fn drop(&mut self) {
        if let Some(pool) = &self.pool {
            let mut p = pool.lock().unwrap_or_else(|e| e.into_inner());
            if p.len() < POOLED {
                p.push(std::mem::take(&mut self.buf));
            }
        }
    }
}

/// What to export.
#[derive(Clone, Debug)]
pub struct ExportOptions {
    /// Streams whose canonical name starts with this are exported.
    pub prefix: String,
    /// How often `/dev/shm` is listed for new streams.
    pub scan: Duration,
    /// How long a lossless ring waits at most for an importer that makes no progress
    /// (its acknowledgements stopped: link down, importer gone) before its bytes are
    /// released without it ([`crate::ack`]).
    pub ack_patience: Duration,
}

/// One exported stream, as queries see it.
struct Entry {
    /// A read-only handle for queries (never attached).
    reader: Stream,
    ident: u64,
}

type Table = Arc<Mutex<HashMap<String, Arc<Entry>>>>;

/// The exporter's user: it exports only the streams that user owns (the opens check it,
/// so a stream swapped in under a listed name is refused too).
fn euid() -> u32 {
    // SAFETY: `geteuid` has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The identity of the object behind a handle: its inode number.
fn ident(s: &Stream) -> io::Result<u64> {
    use std::os::fd::AsFd;
    let fd = s.as_fd().try_clone_to_owned()?;
    Ok(std::fs::File::from(fd).metadata()?.ino())
}

/// The meta frame of a stream.
fn meta(s: &Stream, ident: u64) -> io::Result<Meta> {
    let info = s.info()?;
    let state = match info.owner {
        OwnerState::Closed => SourceState::Closed,
        OwnerState::Dead => SourceState::Dead,
        _ => SourceState::Alive,
    };
    // The length first, then the oldest byte: a ring's oldest never passes its length.
    let len = s.len();
    let oldest = s.oldest().min(len);
    Ok(Meta {
        ident,
        ring_capacity: info.ring_capacity.unwrap_or(0),
        lossless: info.lossless,
        persistent: info.persistent,
        immutable: info.immutable,
        mode: info.mode,
        max_size: info.max_size,
        len,
        oldest,
        state,
    })
}

/// Runs an exporter until `stop` is set: lists the prefix every `scan`, starts a pump
/// per new stream, answers queries.
pub fn run(session: &Session, opts: &ExportOptions, stop: Arc<AtomicBool>) -> io::Result<()> {
    let table: Table = Arc::default();
    // Queries are answered by a thread of their own, never in Zenoh's callback: an
    // answer of up to `QUERY_CHUNK` bytes waits on the link, and a callback that waits
    // holds Zenoh's receive side (every stream's frames, acknowledgements) with it. The
    // queue between them is a ring: a flood of queries drops the oldest (their queriers
    // get an empty answer and ask again), it never blocks the callback.
    let queryable = session
        .declare_queryable(format!("{KEY_ROOT}/*/q"))
        .with(zenoh::handlers::RingChannel::new(QUERY_QUEUE))
        .wait()
        .map_err(|e| io::Error::other(format!("cannot declare the queryable: {e}")))?;
    let t = table.clone();
    let qstop = stop.clone();
    let answerer = std::thread::Builder::new()
        .name("export queries".into())
        .spawn(move || {
            while !qstop.load(Ordering::Relaxed) {
                match queryable.recv_timeout(Duration::from_millis(100)) {
                    Ok(Some(q)) => answer(&t, q),
                    Ok(None) => {}
                    Err(_) => break,
                }
            }
        })?;
    let releases = ack::Releases::default();
    let _acks = acknowledgements(session, &releases)?;
    let mut pumps: HashMap<String, (u64, std::thread::JoinHandle<()>)> = HashMap::new();
    // Ended streams whose name is gone: their end is still answered to queries for a
    // while (an importer that missed it learns it from its next resync), then dropped.
    let mut gone: HashMap<String, std::time::Instant> = HashMap::new();
    while !stop.load(Ordering::Relaxed) {
        let listed = match fshm::list_with_prefix(&opts.prefix) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("fshm-tunnel export: cannot list {}: {e}", opts.prefix);
                Vec::new()
            }
        };
        let names: std::collections::HashSet<String> =
            listed.iter().map(|i| i.name.clone()).collect();
        pumps.retain(|name, (_, h)| {
            if names.contains(name) || !h.is_finished() {
                gone.remove(name);
                return true;
            }
            let since = *gone
                .entry(name.clone())
                .or_insert_with(std::time::Instant::now);
            if since.elapsed() < ENDED_KEPT {
                return true;
            }
            gone.remove(name);
            table.lock().unwrap().remove(name);
            false
        });
        for info in listed {
            // Replicas are not exported again: two tunnels in opposite directions would
            // loop. Streams of other users are not exported: on the importing host the
            // replica is the importer's, and readers there could not tell a stream any
            // local user put under the prefix from the real one.
            if info.replica_of.is_some() || !under(&info.name, &opts.prefix) || info.uid != euid() {
                continue;
            }
            if let Some((id, h)) = pumps.get(&info.name) {
                let same = fshm::OpenOptions::new()
                    .read_only(true)
                    .open(&info.name)
                    .and_then(|s| ident(&s))
                    .map(|i| i == *id)
                    .unwrap_or(true);
                if same || !h.is_finished() {
                    continue;
                }
            }
            let acks = (&releases, opts.ack_patience);
            match start(session, &info, &table, stop.clone(), acks) {
                Ok((id, h)) => {
                    pumps.insert(info.name.clone(), (id, h));
                }
                Err(e) => eprintln!("fshm-tunnel export: {}: {e}", info.name),
            }
        }
        std::thread::sleep(opts.scan);
    }
    for (_, (_, h)) in pumps {
        let _ = h.join();
    }
    let _ = answerer.join();
    Ok(())
}

/// Opens a stream for export and starts its pump.
fn start(
    session: &Session,
    info: &fshm::StreamInfo,
    table: &Table,
    stop: Arc<AtomicBool>,
    (releases, ack_patience): (&ack::Releases, Duration),
) -> io::Result<(u64, std::thread::JoinHandle<()>)> {
    let name = info.name.clone();
    // Opened read-write where the mode bits allow (it never writes): a lossless ring is
    // then read by an attached reader, which holds the producer back until the
    // importers acknowledge the bytes (`ack.rs`), and every wait sleeps on the stream's
    // futex word (a read-only handle cannot announce its sleep and polls: fshm's rule
    // for read-only waiters).
    let s = OpenOptions::new().owner_uid(euid()).open(&name)?;
    if info.lossless && !s.is_attached() {
        eprintln!(
            "fshm-tunnel export: {name}: cannot attach to the lossless ring (no write access): \
             exported as a lossy reader"
        );
    }
    let id = ident(&s)?;
    let reader = OpenOptions::new()
        .read_only(true)
        .owner_uid(euid())
        .open(&name)?;
    if ident(&reader)? != id {
        return Err(io::Error::other("replaced while being opened"));
    }
    table
        .lock()
        .unwrap()
        .insert(name.clone(), Arc::new(Entry { reader, ident: id }));
    let publisher = session
        .declare_publisher(data_key(&name))
        .congestion_control(if info.ring_capacity.is_some() && !info.lossless {
            CongestionControl::Drop
        } else {
            CongestionControl::Block
        })
        .wait()
        .map_err(|e| io::Error::other(format!("cannot declare the publisher: {e}")))?;
    let s = Arc::new(s);
    let release = s
        .is_attached()
        .then(|| Registered::new(releases, &s, id, ack_patience));
    let h = std::thread::Builder::new()
        .name(format!("export {name}"))
        .spawn(move || {
            let n = s.name().to_owned();
            let r = release.as_ref().map(|r| &*r.1);
            if let Err(e) = pump(&s, id, &publisher, &stop, r) {
                eprintln!("fshm-tunnel export: {n}: {e}");
            }
        })?;
    Ok((id, h))
}

/// The subscriber of every importer's acknowledgements, for the whole exporter's life
/// (see [`ack::all_ack_keys`] for why it is not one per stream).
fn acknowledgements(
    session: &Session,
    releases: &ack::Releases,
) -> io::Result<zenoh::pubsub::Subscriber<()>> {
    let r = releases.clone();
    session
        .declare_subscriber(ack::all_ack_keys())
        .callback(move |sample| {
            ack::dispatch(&r, sample.key_expr().as_str(), &sample.payload().to_bytes());
        })
        .wait()
        .map_err(|e| io::Error::other(format!("cannot declare the ack subscriber: {e}")))
}

/// A lossless ring's [`Release`], registered for the acknowledgements' subscriber while
/// its pump runs (the registration holds the attached reader: dropping this removes it,
/// unless another stream under the name took its place).
struct Registered(ack::Releases, Arc<Release>);

impl Registered {
    fn new(releases: &ack::Releases, s: &Arc<Stream>, id: u64, patience: Duration) -> Self {
        let r = Arc::new(Release::new(s.clone(), id, patience));
        let mut t = releases.lock().unwrap_or_else(|e| e.into_inner());
        t.insert(s.name().to_owned(), r.clone());
        Registered(releases.clone(), r)
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let name = self.1.name();
        if t.get(name).is_some_and(|r| Arc::ptr_eq(r, &self.1)) {
            t.remove(name);
        }
    }
}

/// Publishes a stream's bytes as they are committed, then its end. A lossless ring
/// (`release`) is read ahead of its attached reader's slot, which [`Release`] moves
/// only as far as the importers acknowledged.
fn pump(
    s: &Stream,
    id: u64,
    publisher: &zenoh::pubsub::Publisher<'_>,
    stop: &AtomicBool,
    release: Option<&Release>,
) -> io::Result<()> {
    let put = |f: zenoh::bytes::ZBytes| {
        publisher
            .put(f)
            .wait()
            .map_err(|e| io::Error::other(format!("publish: {e}")))
    };
    let pool = Pool::default();
    let attached = s.is_attached();
    // Live from the end (the importer catches up by query), or, attached, from where the
    // slot holds the ring.
    let mut pos = if attached { s.position() } else { s.len() };
    put(meta(s, id)?.frame().into())?;
    while !stop.load(Ordering::Relaxed) {
        match s.wait_for(pos, Some(Duration::from_millis(200))) {
            WaitStatus::Data => {
                let avail = s.len().saturating_sub(pos).min(BATCH as u64) as usize;
                if avail == 0 {
                    continue;
                }
                let mut f = FrameBuf::for_payload(&pool, avail);
                // An attached reader reads the bytes its slot holds, ahead of the slot.
                let r = s.read_at(pos, &mut f.buf[frame::HEADER..frame::HEADER + avail]);
                match r {
                    Ok(0) => std::thread::sleep(Duration::from_millis(1)),
                    Ok(n) => {
                        f.len = frame::HEADER + n;
                        frame::write_header(&mut f.buf[..frame::HEADER], Kind::Data, pos, 0, n);
                        frame::seal(&mut f.buf[..f.len]);
                        put(bytes::Bytes::from_owner(f).into())?;
                        pos += n as u64;
                        if let Some(r) = release {
                            r.sent(pos);
                        }
                    }
                    Err(e) => match fshm::overrun_of(&e) {
                        Some(o) => {
                            put(frame::encode(Kind::Lost, pos, o.resume_at(), &[]).into())?;
                            pos = o.resume_at();
                            if let Some(r) = release {
                                r.sent(pos);
                            }
                        }
                        None => return Err(e),
                    },
                }
            }
            WaitStatus::Ended => {
                if s.len() > pos {
                    continue;
                }
                put(meta(s, id)?.frame().into())?;
                return Ok(());
            }
            // Idle: silent importers time out, the pool is given back.
            _ => {
                pool.lock().unwrap_or_else(|e| e.into_inner()).clear();
                if let Some(r) = release {
                    r.sent(pos);
                }
            }
        }
    }
    Ok(())
}

/// Answers a query: `fshm/<hex>/q?meta` (the stream's meta frame), `?from=POS` (meta,
/// then the bytes from `POS` that the source holds, at most [`QUERY_CHUNK`], with a lost
/// frame first for what it no longer holds), and `fshm/*/q?meta` (every exported
/// stream's meta). Streams not exported are never answered.
fn answer(table: &Table, q: zenoh::query::Query) {
    let key = q.key_expr().as_str().to_owned();
    let entries: Vec<(String, Arc<Entry>)> = {
        let t = table.lock().unwrap();
        match name_of_key(&key) {
            Some(name) => t
                .get(&name)
                .map(|e| (name, e.clone()))
                .into_iter()
                .collect(),
            None => t.iter().map(|(n, e)| (n.clone(), e.clone())).collect(),
        }
    };
    let from: Option<u64> = q.parameters().get("from").and_then(|v| v.parse().ok());
    for (name, e) in entries {
        let rkey = query_key(&name);
        let Ok(k) = zenoh::key_expr::KeyExpr::new(rkey.as_str()) else {
            continue;
        };
        if !q.key_expr().intersects(&k) {
            continue;
        }
        let reply = |f: Vec<u8>| q.reply(k.clone(), f).wait().is_ok();
        let Ok(m) = meta(&e.reader, e.ident) else {
            continue;
        };
        if !reply(m.frame()) {
            return;
        }
        let Some(mut at) = from else { continue };
        let end = m.len.min(at.saturating_add(QUERY_CHUNK));
        if at < m.oldest {
            if !reply(frame::encode(Kind::Lost, at, m.oldest, &[])) {
                return;
            }
            at = m.oldest;
        }
        while at < end {
            let n = (end - at).min(BATCH as u64) as usize;
            let mut buf = Vec::with_capacity(frame::HEADER + n);
            frame::encode_header(&mut buf, Kind::Data, at, 0, n);
            buf.resize(frame::HEADER + n, 0);
            match e.reader.read_at(at, &mut buf[frame::HEADER..]) {
                Ok(0) => break,
                Ok(got) => {
                    buf.truncate(frame::HEADER + got);
                    buf[16..20].copy_from_slice(&(got as u32).to_le_bytes());
                    frame::seal(&mut buf);
                    if !reply(buf) {
                        return;
                    }
                    at += got as u64;
                }
                Err(err) => match fshm::overrun_of(&err) {
                    Some(o) if o.resume_at() > at => {
                        if !reply(frame::encode(Kind::Lost, at, o.resume_at(), &[])) {
                            return;
                        }
                        at = o.resume_at();
                    }
                    _ => break,
                },
            }
        }
    }
}
