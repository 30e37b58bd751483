//! The importer's per-stream state machine, apart from Zenoh and shared memory so that a
//! property test can drive it: it applies pieces strictly by position, drops
//! duplicates, keeps a bounded reorder buffer, and says which range to refetch.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Where applied pieces go (a replica, or a model in tests).
pub trait Sink {
    /// Appends `bytes` at the sink's end (which is [`Receiver::pos`]).
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()>;
    /// Moves the end to `to`: the bytes before it are lost at the source.
    fn skip(&mut self, to: u64) -> std::io::Result<()>;
}

/// A piece of the source at an absolute position, borrowed from the frame it came in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Committed bytes.
    Data(&'a [u8]),
    /// Bytes gone at the source up to (excluding) this position.
    Lost(u64),
}

impl Piece<'_> {
    fn end(&self, pos: u64) -> u64 {
        match self {
            Piece::Data(d) => pos + d.len() as u64,
            Piece::Lost(to) => *to,
        }
    }
}

/// A piece kept out of order (owned).
#[derive(Debug)]
enum Held {
    Data(Vec<u8>),
    Lost(u64),
}

/// What one held piece costs beyond its payload, in bytes of the reorder limit: about
/// its entry in the map (key, value, the tree's share).
const HELD_COST: usize = 64;

impl Held {
    fn cost(&self) -> usize {
        HELD_COST
            + match self {
                Held::Data(d) => d.len(),
                Held::Lost(_) => 0,
            }
    }

    fn piece(&self) -> Piece<'_> {
        match self {
            Held::Data(d) => Piece::Data(d),
            Held::Lost(to) => Piece::Lost(*to),
        }
    }
}

/// Bytes that several receivers may hold out of order together (an importer's streams:
/// a peer announcing many streams must not multiply the reorder limit). Clones share it.
#[derive(Clone, Debug)]
pub struct Budget {
    used: Arc<AtomicUsize>,
    limit: usize,
}

impl Budget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Budget {
        Budget {
            used: Arc::new(AtomicUsize::new(0)),
            limit,
        }
    }

    /// Bytes held now by all the receivers sharing it.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn take(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                u.checked_add(n).filter(|&t| t <= self.limit)
            })
            .is_ok()
    }

    fn give(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::Relaxed);
    }
}

/// Applies pieces to a sink in position order.
#[derive(Debug)]
pub struct Receiver {
    pos: u64,
    pending: BTreeMap<u64, Held>,
    pending_bytes: usize,
    limit: usize,
    budget: Budget,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.budget.give(self.pending_bytes);
    }
}

impl Receiver {
    /// A receiver whose sink ends at `pos`, buffering at most `limit` bytes out of order.
    pub fn new(pos: u64, limit: usize) -> Receiver {
        Receiver::with_budget(pos, limit, &Budget::new(limit))
    }

    /// As [`new`](Self::new), and holding no more than `budget` allows together with
    /// the other receivers that share it.
    pub fn with_budget(pos: u64, limit: usize, budget: &Budget) -> Receiver {
        Receiver {
            pos,
            pending: BTreeMap::new(),
            pending_bytes: 0,
            limit,
            budget: budget.clone(),
        }
    }

    /// The position the sink ends at: everything before it is applied.
    pub fn pos(&self) -> u64 {
        self.pos
    }

    /// Bytes the reorder buffer holds, counted against its limit (payloads and a fixed
    /// cost per piece).
    pub fn held_bytes(&self) -> usize {
        self.pending_bytes
    }

    /// The first position after a gap that the reorder buffer waits to fill, if any:
    /// the range `[pos, gap_end)` is missing.
    pub fn gap_end(&self) -> Option<u64> {
        self.pending.keys().next().copied()
    }

    /// Offers the payload of one data frame at `pos`, in the pieces it arrived in (Zenoh's
    /// fragments), one after the other as [`offer`](Self::offer) takes them; the first
    /// error of the sink stops the rest.
    pub fn offer_data(
        &mut self,
        pos: u64,
        pieces: &[&[u8]],
        sink: &mut impl Sink,
    ) -> std::io::Result<()> {
        let mut at = pos;
        for piece in pieces {
            self.offer(at, Piece::Data(piece), sink)?;
            at += piece.len() as u64;
        }
        Ok(())
    }

    /// Offers a piece at `pos`. Applies it (and whatever it unblocks) when it reaches
    /// the end, drops what is already applied, buffers what lies ahead (while the buffer
    /// has room; else drops it, to be refetched). An error of the sink is returned and
    /// leaves the receiver at the last applied position.
    pub fn offer(
        &mut self,
        pos: u64,
        piece: Piece<'_>,
        sink: &mut impl Sink,
    ) -> std::io::Result<()> {
        if piece.end(pos) <= self.pos || piece == Piece::Data(&[]) {
            return Ok(()); // a duplicate, or nothing
        }
        if pos > self.pos {
            // What holding the piece costs, its entry included: a lost range or an
            // empty payload is no free entry (a hostile peer's stream of them would
            // otherwise grow the buffer without end).
            let size = HELD_COST
                + match &piece {
                    Piece::Data(d) => d.len(),
                    Piece::Lost(_) => 0,
                };
            if self.pending_bytes + size <= self.limit
                && !self.pending.contains_key(&pos)
                && self.budget.take(size)
            {
                self.pending_bytes += size;
                let held = match piece {
                    Piece::Data(d) => Held::Data(d.to_vec()),
                    Piece::Lost(to) => Held::Lost(to),
                };
                self.pending.insert(pos, held);
            }
            return Ok(());
        }
        self.apply(pos, piece, sink)?;
        // Drain what the buffer now continues.
        while let Some((&p, _)) = self.pending.first_key_value() {
            if p > self.pos {
                break;
            }
            let (p, held) = self.pending.pop_first().expect("just seen");
            self.pending_bytes -= held.cost();
            self.budget.give(held.cost());
            if held.piece().end(p) > self.pos {
                self.apply(p, held.piece(), sink)?;
            }
        }
        Ok(())
    }

    /// Applies a piece that starts at or before `self.pos` and ends after it.
    fn apply(&mut self, pos: u64, piece: Piece<'_>, sink: &mut impl Sink) -> std::io::Result<()> {
        match piece {
            Piece::Data(d) => {
                let skip = (self.pos - pos) as usize;
                sink.write(&d[skip..])?;
                self.pos = pos + d.len() as u64;
            }
            Piece::Lost(to) => {
                sink.skip(to)?;
                self.pos = to;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The replica as a model: bytes by position, lost positions as `None`.
    #[derive(Default)]
    struct Model(Vec<Option<u8>>);

    impl Sink for Model {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
            self.0.extend(bytes.iter().map(|&b| Some(b)));
            Ok(())
        }
        fn skip(&mut self, to: u64) -> std::io::Result<()> {
            self.0.resize(to as usize, None);
            Ok(())
        }
    }

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// A peer that sends lost ranges and empty frames ahead of the position, each at a
    /// position of its own, fills the reorder buffer only up to its limit: no piece
    /// is free to hold.
    #[test]
    fn pieces_without_payload_are_held_only_up_to_the_limit() {
        let mut r = Receiver::new(0, 4096);
        let mut m = Model::default();
        for k in 0..100_000u64 {
            let pos = 10 + 2 * k;
            let piece = if k % 2 == 0 {
                Piece::Lost(pos + 1)
            } else {
                Piece::Data(&[])
            };
            r.offer(pos, piece, &mut m).unwrap();
        }
        assert!(r.held_bytes() <= 4096, "held {}", r.held_bytes());
        assert!(
            r.pending.len() <= 4096 / HELD_COST,
            "{} pieces held",
            r.pending.len()
        );
        // The gap filled: what was held applies, and the accounting returns to zero.
        r.offer(0, Piece::Data(&[7; 10]), &mut m).unwrap();
        assert_eq!(r.pos(), 11);
        assert_eq!(r.held_bytes(), r.pending.len() * HELD_COST);
    }

    /// Receivers sharing a budget hold no more than it together, and give back what
    /// they applied or dropped.
    #[test]
    fn receivers_sharing_a_budget_hold_no_more_than_it_together() {
        let budget = Budget::new(10_000);
        let mut m = Model::default();
        let mut rs: Vec<Receiver> = (0..10)
            .map(|_| Receiver::with_budget(0, 8_000, &budget))
            .collect();
        for r in &mut rs {
            for k in 0..10u64 {
                r.offer(100 + 1000 * k, Piece::Data(&[1; 1000]), &mut m)
                    .unwrap();
            }
        }
        let held: usize = rs.iter().map(Receiver::held_bytes).sum();
        assert!(held <= 10_000 && budget.used() == held, "held {held}");
        rs[0].offer(0, Piece::Lost(100), &mut m).unwrap();
        assert_eq!(rs[0].held_bytes(), 0);
        drop(rs);
        assert_eq!(budget.used(), 0);
    }

    /// Random sources cut into frames (some lost ranges), delivered with drops,
    /// duplicates, reordering and corrupted frames, then refetched the way the importer
    /// does (from its position, in order), every frame in up to three pieces as Zenoh's
    /// fragments bring it: the replica always equals the source, a lost byte is never
    /// data, and a frame in pieces is refused or taken exactly as it is whole.
    #[test]
    fn the_replica_always_equals_the_source() {
        for seed in 1..400u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            // The source: frames in order.
            let mut frames = Vec::new();
            let mut truth: Vec<Option<u8>> = Vec::new();
            let mut pos = 0u64;
            for _ in 0..rng.below(40) + 1 {
                if rng.below(8) == 0 {
                    let to = pos + rng.below(50) + 1;
                    frames.push(crate::frame::encode(crate::frame::Kind::Lost, pos, to, &[]));
                    truth.resize(to as usize, None);
                    pos = to;
                } else {
                    let n = rng.below(60) + 1;
                    let d: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                    frames.push(crate::frame::encode(crate::frame::Kind::Data, pos, 0, &d));
                    truth.extend(d.iter().map(|&b| Some(b)));
                    pos += n;
                }
            }
            let limit = rng.below(300) as usize;
            let mut r = Receiver::new(0, limit);
            let mut m = Model::default();
            // A frame arrives in up to three pieces cut at places `cut` chooses (Zenoh's
            // fragments) and is applied piece by piece, as the importer does.
            let offer = |r: &mut Receiver, m: &mut Model, f: &[u8], cut: u64| {
                let a = (cut % (f.len() as u64 + 1)) as usize;
                let b = a + ((cut >> 20) % (f.len() - a + 1) as u64) as usize;
                let whole = crate::frame::decode(f).ok().map(|fr| fr.pos);
                let parts = crate::frame::decode_parts(&[&f[..a], &f[a..b], &f[b..]]);
                assert_eq!(whole, parts.as_ref().ok().map(|p| p.pos), "seed {seed}");
                if let Ok(fr) = parts {
                    match fr.kind {
                        crate::frame::Kind::Data => r.offer_data(fr.pos, &fr.payload, m).unwrap(),
                        crate::frame::Kind::Lost => {
                            r.offer(fr.pos, Piece::Lost(fr.extra), m).unwrap()
                        }
                        crate::frame::Kind::Meta => unreachable!(),
                    }
                }
            };
            // Live delivery: dropped, duplicated, reordered, corrupted.
            let mut live: Vec<Vec<u8>> = Vec::new();
            for f in &frames {
                match rng.below(6) {
                    0 => {}
                    1 => {
                        live.push(f.clone());
                        live.push(f.clone());
                    }
                    2 => {
                        let mut g = f.clone();
                        let i = rng.below(g.len() as u64) as usize;
                        g[i] ^= 1 << rng.below(8);
                        live.push(g);
                    }
                    _ => live.push(f.clone()),
                }
            }
            for i in 0..live.len() {
                let j = (i + rng.below(4) as usize).min(live.len() - 1);
                live.swap(i, j);
            }
            for f in &live {
                offer(&mut r, &mut m, f, rng.next());
                assert!(m.0.len() as u64 == r.pos());
                assert_eq!(&m.0[..], &truth[..m.0.len()], "seed {seed}");
            }
            // Refetch from the position until done, as the importer's range queries do.
            let mut rounds = 0;
            while r.pos() < pos {
                rounds += 1;
                assert!(rounds < 1000, "seed {seed}: no progress");
                for f in &frames {
                    let fr = crate::frame::decode(f).unwrap();
                    let end = match fr.kind {
                        crate::frame::Kind::Lost => fr.extra,
                        _ => fr.pos + fr.payload.len() as u64,
                    };
                    if end > r.pos() {
                        offer(&mut r, &mut m, f, rng.next());
                    }
                }
            }
            assert_eq!(m.0, truth, "seed {seed}");
        }
    }
}
