//! # fshm-tunnel — mirror fshm streams to other hosts over Eclipse Zenoh
//!
//! Shared memory ends at the host. `fshm-tunnel export PREFIX` publishes every stream
//! whose name starts with `PREFIX` (those there now and those created later) over
//! [Zenoh](https://zenoh.io); `fshm-tunnel import PREFIX` on another host owns a local
//! **replica** of each, under the same name or a mapped prefix (`--as`), which local
//! processes open, read, follow and read in place with the ordinary fshm API.
//!
//! - **Byte-identical, never a hole.** Every frame carries its absolute position and a
//!   CRC-32 ([`frame`]); the importer applies bytes strictly by position
//!   ([`receiver`]), drops duplicates and corrupt frames, and refetches what is missing
//!   from the exporter's queryable. A late joiner catches up from what the source holds
//!   (a linear stream from 0, a ring from its oldest byte). Bytes the source no longer
//!   holds become a skip in the replica ([`fshm::Stream::skip_to`]): its readers get an
//!   overrun for them ([`fshm::Stream::lost_bytes`]), never a gap presented as data.
//! - **Replicas** are created with [`fshm::OpenOptions::replica_of`]: every local guest
//!   opens them read-only (writes fail with `EROFS`), `fshm stat` and
//!   [`fshm::StreamInfo::replica_of`] say where they come from, and their mode is the
//!   source's without write bits for group and others.
//! - **Lossless rings** are exported by an attached lossless reader and published with
//!   `CongestionControl::Block`; the reader releases bytes only once the importers
//!   acknowledge them applied ([`ack`]), so a slow importer or link holds the producer
//!   back instead of losing data, and bytes Zenoh dropped are refetched from the ring.
//!   An importer silent for `--ack-patience-ms` is no longer waited for.
//! - **Bounded**: the importer holds at most `--max-streams` replicas taking at most
//!   `--max-bytes` of `/dev/shm` together ([`import::ImportOptions`]): a peer that
//!   announces streams cannot fill the importing host's memory.
//! - **Ends**: the source owner's close or death is published explicitly (a meta frame,
//!   also the answer to every later query); the importer then closes the replica, and
//!   its followers get end-of-stream.
//!
//! Key expressions: `fshm/<hex of the stream name>/d` carries frames as they are
//! committed, `fshm/<hex>/q` is the exporter's queryable (`?meta`, `?from=POS`).
//! The design is in `ARCHITECTURE.md` ("fshm-tunnel") and the crate's README.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod ack;
pub mod export;
pub mod frame;
pub mod import;
pub mod receiver;

use std::io;

/// Root of the tunnel's key expressions.
pub const KEY_ROOT: &str = "fshm";

/// Bytes the exporter sends in one frame at most. A frame larger than a Zenoh batch
/// (65,535 bytes) travels in fragments: Zenoh copies it into its batches as it would a
/// small one (it serializes the message by reference, then fragment by fragment), and
/// the importer applies the fragments as they came ([`frame::decode_parts`]). 1 MiB
/// frames cost the exporter and importer together less CPU time per byte than frames
/// that fit one batch (63 KiB) or 256 KiB frames, and 4 MiB no less than 1 MiB
/// (BENCHMARKS.md, "fshm-tunnel"): per-message costs — wake-ups of Zenoh's threads and
/// of the pump — decide.
pub const BATCH: usize = 1 << 20;

/// Bytes one range query answers at most (the importer asks again from where it got).
pub const QUERY_CHUNK: u64 = 8 << 20;

/// The largest message the tunnel's Zenoh sessions take from a peer when no
/// configuration file is given (a file sets its own, or Zenoh's 1 GiB applies): the
/// largest frame and room for Zenoh's headers.
pub const MAX_MESSAGE: usize = frame::HEADER + frame::MAX_PAYLOAD + (1 << 20);

/// The key of stream `name`'s frames.
pub fn data_key(name: &str) -> String {
    format!("{KEY_ROOT}/{}/d", hex(name.as_bytes()))
}

/// The key of stream `name`'s queryable.
pub fn query_key(name: &str) -> String {
    format!("{KEY_ROOT}/{}/q", hex(name.as_bytes()))
}

fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(2 * b.len());
    for x in b {
        s.push_str(&format!("{x:02x}"));
    }
    s
}

/// The stream name a tunnel key (`fshm/<hex>/d` or `/q`) names, checked: valid hex of
/// valid UTF-8, and a valid stream name in canonical form. `None` for anything else.
pub fn name_of_key(key: &str) -> Option<String> {
    let mut parts = key.split('/');
    if parts.next()? != KEY_ROOT {
        return None;
    }
    let h = parts.next()?;
    let tail = parts.next()?;
    if parts.next().is_some() || (tail != "d" && tail != "q") {
        return None;
    }
    if h.len() % 2 != 0 || h.len() > 2 * 1024 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(h.get(i..i + 2)?, 16).ok())
        .collect();
    let name = String::from_utf8(bytes?).ok()?;
    canonical(&name).ok()
}

/// `name` in canonical form (`/a/b`), or the core's error for an invalid name.
pub fn canonical(name: &str) -> io::Result<String> {
    let object = fshm::object_name(name)?;
    Ok(fshm::stream_name(&object).unwrap_or_else(|| name.to_owned()))
}

/// Whether `name` is under `prefix` (a plain string prefix of the canonical name, as
/// [`fshm::list_with_prefix`] takes it).
pub fn under(name: &str, prefix: &str) -> bool {
    name.starts_with(prefix)
}

/// The local name of remote stream `name` imported under `prefix` and mapped to
/// `as_prefix`: checked to be under the prefix and a valid name under the mapped one.
pub fn map_name(name: &str, prefix: &str, as_prefix: Option<&str>) -> Option<String> {
    if !under(name, prefix) {
        return None;
    }
    let local = match as_prefix {
        None => name.to_owned(),
        Some(p) => format!("{p}{}", &name[prefix.len()..]),
    };
    let local = canonical(&local).ok()?;
    under(&local, as_prefix.unwrap_or(prefix)).then_some(local)
}

/// How long a blocking publication waits for room before Zenoh closes the connection,
/// in microseconds, unless a `--config` file says otherwise: Zenoh's lease (10 s; Zenoh's
/// own wait is 5 s), so that back-pressure from a slow importer does not become a close
/// within the lease, and no longer: a publication waiting on a dead connection holds
/// Zenoh's whole transmit side (every stream, query answers, new connections'
/// handshakes) until its wait ends, so the wait also bounds how late replicas resume
/// after an outage longer than the lease (with 60 s, a 12 s outage resumed 52 s after
/// the link came back; `tests/netns.rs`).
pub const WAIT_BEFORE_CLOSE_US: u64 = 10_000_000;

/// Zenoh configuration for the tunnel: `file` (JSON5, Zenoh's own format: TLS, access
/// control, ...) or Zenoh's defaults, then multicast scouting off (peers are given
/// explicitly), the endpoints given on the command line, and — unless the file sets
/// them — a blocking publication's wait before Zenoh closes a congested link raised to
/// [`WAIT_BEFORE_CLOSE_US`], and the largest message Zenoh reassembles from a peer cut
/// from 1 GiB to [`MAX_MESSAGE`] (a peer's huge messages are refused before they are
/// held, not after).
pub fn zenoh_config(
    file: Option<&std::path::Path>,
    listen: &[String],
    connect: &[String],
) -> io::Result<zenoh::Config> {
    let err = |e: Box<dyn std::error::Error + Send + Sync>| {
        io::Error::new(io::ErrorKind::InvalidInput, e.to_string())
    };
    let mut c = match file {
        Some(f) => zenoh::Config::from_file(f).map_err(|e| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("{}: {e}", f.display()))
        })?,
        None => {
            let mut c = zenoh::Config::default();
            c.insert_json5(
                "transport/link/tx/queue/congestion_control/block/wait_before_close",
                &WAIT_BEFORE_CLOSE_US.to_string(),
            )
            .map_err(err)?;
            c.insert_json5(
                "transport/link/rx/max_message_size",
                &MAX_MESSAGE.to_string(),
            )
            .map_err(err)?;
            c
        }
    };
    c.insert_json5("scouting/multicast/enabled", "false")
        .map_err(err)?;
    let list = |v: &[String]| -> String {
        let q: Vec<String> = v.iter().map(|e| format!("{e:?}")).collect();
        format!("[{}]", q.join(","))
    };
    if !listen.is_empty() {
        c.insert_json5("listen/endpoints", &list(listen))
            .map_err(err)?;
    }
    if !connect.is_empty() {
        c.insert_json5("connect/endpoints", &list(connect))
            .map_err(err)?;
    }
    Ok(c)
}

/// Opens a Zenoh session (blocking).
pub fn open_session(config: zenoh::Config) -> io::Result<zenoh::Session> {
    use zenoh::Wait;
    zenoh::open(config)
        .wait()
        .map_err(|e| io::Error::other(format!("cannot open the Zenoh session: {e}")))
}

/// A size given on the command line (`--max-bytes`): bytes, or a number followed by
/// K, M, G or T (powers of 1024; `KiB`, `MiB`... and lower case too). Zero is refused.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, suffix) = t.split_at(digits);
    let bad = || format!("invalid size '{s}' (bytes, or a number with K, M, G or T)");
    let n: u64 = num.parse().map_err(|_| bad())?;
    let shift = match suffix.to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KIB" => 10,
        "M" | "MIB" => 20,
        "G" | "GIB" => 30,
        "T" | "TIB" => 40,
        _ => return Err(bad()),
    };
    match n.checked_mul(1 << shift) {
        Some(0) => Err(format!("invalid size '{s}': must be more than 0")),
        Some(v) => Ok(v),
        None => Err(format!("size '{s}' is too large")),
    }
}

/// The importer's default `--max-bytes`: half of the size of the file system under
/// `/dev/shm` (1 GiB if it cannot be read).
pub fn default_max_bytes() -> u64 {
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: the path is NUL-terminated and `st` is a valid place for the result,
    // read only when `statvfs` succeeded (it then initialised it).
    let size = unsafe {
        if libc::statvfs(c"/dev/shm".as_ptr(), st.as_mut_ptr()) == 0 {
            let st = st.assume_init();
            // `fsblkcnt_t` and `c_ulong` are 32 bits on some targets.
            #[allow(clippy::unnecessary_cast)]
            (st.f_blocks as u64).saturating_mul(st.f_frsize as u64)
        } else {
            0
        }
    };
    if size == 0 {
        1 << 30
    } else {
        size / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_suffixes_and_bad_ones_are_refused() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("256M"), Ok(256 << 20));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert_eq!(parse_size("1KiB"), Ok(1024));
        for bad in ["", "M", "12Q", "-1", "1.5G", "0", "0K", "99999999999T"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert!(default_max_bytes() > 0);
    }

    #[test]
    fn keys_round_trip_and_hostile_keys_are_refused() {
        for n in ["/a", "/sensors/temp-1", "/50%"] {
            assert_eq!(name_of_key(&data_key(n)).as_deref(), Some(n));
            assert_eq!(name_of_key(&query_key(n)).as_deref(), Some(n));
        }
        for bad in [
            "fshm/2f2e2e/d",         // "/.."
            "fshm/2f612f2e2e2f62/d", // "/a/../b"
            "fshm/2f61/x",
            "fshm/2f6/d",
            "fshm/zz/d",
            "other/2f61/d",
            "fshm/2f61/d/more",
            "fshm//d",
            "fshm/2f0061/d", // NUL
            "fshm/ff/d",     // not UTF-8
        ] {
            assert_eq!(name_of_key(bad), None, "{bad}");
        }
    }

    #[test]
    fn names_map_only_under_the_prefix() {
        assert_eq!(map_name("/s/a", "/s/", None).as_deref(), Some("/s/a"));
        assert_eq!(
            map_name("/s/a", "/s/", Some("/r/")).as_deref(),
            Some("/r/a")
        );
        assert_eq!(map_name("/t/a", "/s/", Some("/r/")), None);
        assert_eq!(map_name("/s/a", "/s/", Some("/r/../")), None);
    }
}
