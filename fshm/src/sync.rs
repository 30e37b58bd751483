//! The atomics and fences of the shared-memory protocols, from one place, so that the
//! same protocol code runs under the `loom` model checker.
//!
//! A normal build re-exports `std`'s. (The cfg is `fshm_loom`, not `loom`, so that
//! crates which check themselves under `loom`, tokio among the dev-dependencies, build
//! as usual.) Built with `RUSTFLAGS="--cfg fshm_loom"`, the header's
//! atomics and the protocols' fences are `loom`'s, which explores the interleavings and
//! weak-memory outcomes of the protocol steps in `handle.rs`, `linear.rs`, `ring.rs`
//! and `wait.rs` on a header built in process memory; `sys.rs` then models the futex
//! and `membarrier` calls, and the checks live in `loom_tests.rs`. Only the header's
//! words go through here: the data bytes of a real mapping keep `std`'s atomics
//! (`window.rs`), since a model never maps a stream.

#[cfg(not(fshm_loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU32, AtomicU64};

#[cfg(fshm_loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64};

/// The fast side of an asymmetric fence whose slow side is
/// `sys::membarrier_global` (`ring.rs`, "Attaching"): a compiler fence, which the
/// slow side's barrier turns into a full memory barrier on every running thread of a
/// registered process (membarrier(2)). `loom` has no `membarrier`, so a model takes the
/// full barrier that the pair amounts to.
#[inline(always)]
pub(crate) fn light_fence() {
    #[cfg(not(fshm_loom))]
    std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
    #[cfg(fshm_loom)]
    fence(std::sync::atomic::Ordering::SeqCst);
}

/// Marks a place where a sequentially consistent write (a read-modify-write or a store)
/// is followed by a sequentially consistent load of another word, and the protocol
/// relies on the two being in that order for every thread (Dekker's pattern: the
/// wake rule in `wait.rs`, "Attaching" in `ring.rs`). In a normal build it is no code:
/// all `SeqCst` accesses are in one total order, which gives that. `loom` models
/// `SeqCst` accesses as `AcqRel` only (its documentation; tokio-rs/loom issue 180), so
/// it would report lost wake-ups and overruns that cannot happen, while it models
/// `SeqCst` fences fully: under `loom` this is a `SeqCst` fence, which orders the pair
/// as the total order does.
#[inline(always)]
pub(crate) fn seqcst_write_then_load() {
    #[cfg(fshm_loom)]
    fence(std::sync::atomic::Ordering::SeqCst);
}
