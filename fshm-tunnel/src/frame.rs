//! The tunnel's wire format: every Zenoh payload is one frame with its own absolute
//! position and a CRC-32 over header and payload, so a receiver never trusts Zenoh's
//! delivery (issue 26, item 6: a payload cut at a connection's close arrives with a
//! correct Zenoh header) and applies bytes strictly by position.
//!
//! Layout (little-endian), 32 bytes then the payload:
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 0 | 4 | magic `b"FST1"` |
//! | 4 | 1 | kind: 0 data, 1 lost, 2 meta |
//! | 5 | 3 | zero |
//! | 8 | 8 | `pos`: data: position of the payload's first byte; lost: first position gone; meta: the source's length |
//! | 16 | 4 | payload length |
//! | 20 | 4 | CRC-32 (IEEE) of the 32 header bytes with this field zero, then the payload |
//! | 24 | 8 | `extra`: lost: the position the source holds again from; else 0 |

/// Frame kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Committed bytes at `pos`.
    Data,
    /// Bytes `[pos, extra)` are gone at the source (a lossy ring overwrote them).
    Lost,
    /// The stream's description ([`Meta`]).
    Meta,
}

/// Header size.
pub const HEADER: usize = 32;
/// Largest payload a frame may carry; larger claims are refused.
pub const MAX_PAYLOAD: usize = 16 << 20;
const MAGIC: [u8; 4] = *b"FST1";

/// A decoded frame, borrowing its payload.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The kind.
    pub kind: Kind,
    /// See the table in the module docs.
    pub pos: u64,
    /// See the table in the module docs.
    pub extra: u64,
    /// The payload.
    pub payload: &'a [u8],
}

fn crc(header: &[u8], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(header);
    h.update(payload);
    h.finalize()
}

/// Encodes a frame: header, then `payload`.
pub fn encode(kind: Kind, pos: u64, extra: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + payload.len());
    encode_header(&mut out, kind, pos, extra, payload.len());
    out.extend_from_slice(payload);
    seal(&mut out);
    out
}

/// Writes a header with a zero CRC for a payload of `len` bytes; [`seal`] fills it in
/// once the payload follows (so the payload can be read straight into the buffer).
pub fn encode_header(out: &mut Vec<u8>, kind: Kind, pos: u64, extra: u64, len: usize) {
    let at = out.len();
    out.resize(at + HEADER, 0);
    write_header(&mut out[at..], kind, pos, extra, len);
}

/// [`encode_header`] into the first [`HEADER`] bytes of `out` (a buffer reused for
/// frames, the payload read in after them).
pub fn write_header(out: &mut [u8], kind: Kind, pos: u64, extra: u64, len: usize) {
    out[..4].copy_from_slice(&MAGIC);
    out[4] = match kind {
        Kind::Data => 0,
        Kind::Lost => 1,
        Kind::Meta => 2,
    };
    out[5..8].fill(0);
    out[8..16].copy_from_slice(&pos.to_le_bytes());
    out[16..20].copy_from_slice(&(len as u32).to_le_bytes());
    out[20..24].fill(0);
    out[24..32].copy_from_slice(&extra.to_le_bytes());
}

/// Fills in the CRC of a frame made by [`encode_header`] and its payload.
pub fn seal(frame: &mut [u8]) {
    let c = crc(&frame[..HEADER], &frame[HEADER..]);
    frame[20..24].copy_from_slice(&c.to_le_bytes());
}

/// Why a frame was refused.
#[derive(Debug, PartialEq, Eq)]
pub struct BadFrame(pub &'static str);

/// Decodes and checks a frame: magic, kind, length, CRC, and that positions do not
/// overflow. Anything else is refused.
pub fn decode(buf: &[u8]) -> Result<Frame<'_>, BadFrame> {
    let p = decode_parts(&[buf])?;
    Ok(Frame {
        kind: p.kind,
        pos: p.pos,
        extra: p.extra,
        payload: &buf[HEADER..],
    })
}

/// A decoded frame whose payload is in several pieces, borrowed.
#[derive(Debug, PartialEq, Eq)]
pub struct Parts<'a> {
    /// The kind.
    pub kind: Kind,
    /// See the table in the module docs.
    pub pos: u64,
    /// See the table in the module docs.
    pub extra: u64,
    /// The payload, in order (empty pieces left out).
    pub payload: Vec<&'a [u8]>,
}

impl Parts<'_> {
    /// The payload in one buffer (a copy).
    pub fn joined(&self) -> Vec<u8> {
        self.payload.concat()
    }
}

/// [`decode`] of a frame that arrived in pieces (Zenoh delivers a message larger than
/// its batch as the fragments it received), checked the same way, without joining
/// the pieces into one buffer.
pub fn decode_parts<'a>(parts: &[&'a [u8]]) -> Result<Parts<'a>, BadFrame> {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    if total < HEADER {
        return Err(BadFrame("short frame"));
    }
    // The header, gathered from the first pieces; the payload's pieces after it.
    let mut header = [0u8; HEADER];
    let mut payload = Vec::with_capacity(parts.len());
    let mut filled = 0;
    for p in parts {
        let take = (HEADER - filled).min(p.len());
        header[filled..filled + take].copy_from_slice(&p[..take]);
        filled += take;
        if p.len() > take {
            payload.push(&p[take..]);
        }
    }
    if header[..4] != MAGIC {
        return Err(BadFrame("bad magic"));
    }
    let kind = match header[4] {
        0 => Kind::Data,
        1 => Kind::Lost,
        2 => Kind::Meta,
        _ => return Err(BadFrame("unknown kind")),
    };
    if header[5..8] != [0; 3] {
        return Err(BadFrame("reserved bytes set"));
    }
    let u64_at = |i: usize| u64::from_le_bytes(header[i..i + 8].try_into().unwrap());
    let pos = u64_at(8);
    let len = u32::from_le_bytes(header[16..20].try_into().unwrap()) as usize;
    let want = u32::from_le_bytes(header[20..24].try_into().unwrap());
    let extra = u64_at(24);
    if len > MAX_PAYLOAD || total != HEADER + len {
        return Err(BadFrame("length"));
    }
    header[20..24].fill(0);
    let mut h = crc32fast::Hasher::new();
    h.update(&header);
    for p in &payload {
        h.update(p);
    }
    if h.finalize() != want {
        return Err(BadFrame("checksum"));
    }
    // Positions stay below 2^62, so `pos + len` never overflows anywhere.
    if pos >= 1 << 62 || extra >= 1 << 62 {
        return Err(BadFrame("position"));
    }
    if kind == Kind::Lost && extra <= pos {
        return Err(BadFrame("empty loss"));
    }
    Ok(Parts {
        kind,
        pos,
        extra,
        payload,
    })
}

/// Whether the source still has its owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceState {
    /// The owner has the stream open.
    Alive,
    /// The owner closed it: no byte past `len` will come.
    Closed,
    /// The owner died: no byte past `len` will come.
    Dead,
}

/// A stream's description, the payload of a meta frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    /// Identity of the source object (its inode number): another value under the same
    /// name is another stream.
    pub ident: u64,
    /// Ring capacity, 0 for a linear stream.
    pub ring_capacity: u64,
    /// Lossless ring.
    pub lossless: bool,
    /// The name outlives the owner.
    pub persistent: bool,
    /// Immutable linear stream.
    pub immutable: bool,
    /// Mode bits of the source.
    pub mode: u32,
    /// Maximum size.
    pub max_size: u64,
    /// Committed length.
    pub len: u64,
    /// Oldest position held.
    pub oldest: u64,
    /// Owner state.
    pub state: SourceState,
}

const META_LEN: usize = 8 + 8 + 4 + 4 + 8 + 8 + 8 + 4;

impl Meta {
    /// Encodes a meta frame.
    pub fn frame(&self) -> Vec<u8> {
        let mut p = Vec::with_capacity(META_LEN);
        p.extend_from_slice(&self.ident.to_le_bytes());
        p.extend_from_slice(&self.ring_capacity.to_le_bytes());
        let flags = u32::from(self.lossless)
            | u32::from(self.persistent) << 1
            | u32::from(self.immutable) << 2;
        p.extend_from_slice(&flags.to_le_bytes());
        p.extend_from_slice(&self.mode.to_le_bytes());
        p.extend_from_slice(&self.max_size.to_le_bytes());
        p.extend_from_slice(&self.len.to_le_bytes());
        p.extend_from_slice(&self.oldest.to_le_bytes());
        let state: u32 = match self.state {
            SourceState::Alive => 0,
            SourceState::Closed => 1,
            SourceState::Dead => 2,
        };
        p.extend_from_slice(&state.to_le_bytes());
        encode(Kind::Meta, self.len, 0, &p)
    }

    /// Decodes and checks a meta frame's payload (`pos` is its length).
    pub fn parse(f: &Frame<'_>) -> Result<Meta, BadFrame> {
        let p = f.payload;
        if f.kind != Kind::Meta || p.len() != META_LEN {
            return Err(BadFrame("meta length"));
        }
        let u64_at = |i: usize| u64::from_le_bytes(p[i..i + 8].try_into().unwrap());
        let u32_at = |i: usize| u32::from_le_bytes(p[i..i + 4].try_into().unwrap());
        let flags = u32_at(16);
        if flags & !7 != 0 {
            return Err(BadFrame("meta flags"));
        }
        let m = Meta {
            ident: u64_at(0),
            ring_capacity: u64_at(8),
            lossless: flags & 1 != 0,
            persistent: flags & 2 != 0,
            immutable: flags & 4 != 0,
            mode: u32_at(20),
            max_size: u64_at(24),
            len: u64_at(32),
            oldest: u64_at(40),
            state: match u32_at(48) {
                0 => SourceState::Alive,
                1 => SourceState::Closed,
                2 => SourceState::Dead,
                _ => return Err(BadFrame("meta state")),
            },
        };
        if m.len != f.pos
            || m.oldest > m.len
            || m.mode > 0o7777
            || m.max_size == 0
            || m.max_size > fshm::header::MAX_SIZE_LIMIT
            || m.ring_capacity > m.max_size
            || (m.ring_capacity == 0 && (m.lossless || m.oldest != 0 || m.len > m.max_size))
        {
            return Err(BadFrame("meta values"));
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_corruption_is_refused() {
        let f = encode(Kind::Data, 77, 0, b"hello");
        let d = decode(&f).unwrap();
        assert_eq!((d.kind, d.pos, d.payload), (Kind::Data, 77, &b"hello"[..]));
        for i in 0..f.len() {
            let mut g = f.clone();
            g[i] ^= 0x40;
            assert!(decode(&g).is_err(), "flip at {i}");
        }
        assert!(decode(&f[..f.len() - 1]).is_err());
        let mut longer = f.clone();
        longer.push(0);
        assert!(decode(&longer).is_err());
    }

    /// A frame cut into pieces at every pair of places decodes to the same frame, and
    /// every corruption of a piece is refused as it is whole.
    #[test]
    fn a_frame_in_pieces_decodes_as_it_does_whole() {
        let payload: Vec<u8> = (0..100u8).collect();
        let f = encode(Kind::Data, 1 << 40, 0, &payload);
        for a in 0..=f.len() {
            for b in a..=f.len() {
                let pieces = [&f[..a], &f[a..b], &f[b..]];
                let d = decode_parts(&pieces).unwrap();
                assert_eq!((d.kind, d.pos, d.extra), (Kind::Data, 1 << 40, 0));
                assert_eq!(d.joined(), payload, "cut at {a} and {b}");
                assert!(d.payload.iter().all(|p| !p.is_empty()));
            }
        }
        for i in (0..f.len()).step_by(7) {
            let mut g = f.clone();
            g[i] ^= 0x40;
            let (x, y) = g.split_at(40);
            assert!(decode_parts(&[x, y]).is_err(), "flip at {i}");
        }
        let (x, y) = f.split_at(10);
        assert!(decode_parts(&[x, &y[..y.len() - 1]]).is_err());
        assert!(decode_parts(&[x, y, &[0]]).is_err());
        assert!(decode_parts(&[&f[..31]]).is_err());
    }

    #[test]
    fn meta_round_trip_and_bad_values() {
        let m = Meta {
            ident: 9,
            ring_capacity: 4096,
            lossless: true,
            persistent: false,
            immutable: false,
            mode: 0o640,
            max_size: 4096,
            len: 10_000,
            oldest: 5904,
            state: SourceState::Dead,
        };
        let f = m.frame();
        assert_eq!(Meta::parse(&decode(&f).unwrap()).unwrap(), m);
        let bad = Meta {
            oldest: 20_000,
            ..m.clone()
        };
        assert!(Meta::parse(&decode(&bad.frame()).unwrap()).is_err());
        let bad = Meta {
            ring_capacity: 0,
            ..m
        };
        assert!(Meta::parse(&decode(&bad.frame()).unwrap()).is_err());
    }
}
