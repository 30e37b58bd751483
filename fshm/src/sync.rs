//! The atomics and fences of the shared-memory protocols, from one place, so that the
//! same protocol code runs under the `loom` model checker.
//!
//! A normal build re-exports `std`'s. Built with `RUSTFLAGS="--cfg loom"`, the header's
//! atomics and the protocols' fences are `loom`'s, which explores the interleavings and
//! weak-memory outcomes of the protocol steps in `stream.rs`, `linear.rs`, `ring.rs`
//! and `wait.rs` on a header built in process memory; `sys.rs` then models the futex
//! and `membarrier` calls, and the checks live in `loom_tests.rs`. Only the header's
//! words go through here: the data bytes of a real mapping keep `std`'s atomics
//! (`window.rs`), since a model never maps a stream.

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU32, AtomicU64};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64};

/// The fast side of an asymmetric fence whose slow side is
/// `sys::membarrier_global` (`ring.rs`, "Attaching"): a compiler fence, which the
/// slow side's barrier turns into a full memory barrier on every running thread of a
/// registered process (membarrier(2)). `loom` has no `membarrier`, so a model takes the
/// full barrier that the pair amounts to.
#[inline(always)]
pub(crate) fn light_fence() {
    #[cfg(not(loom))]
    std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
    #[cfg(loom)]
    fence(std::sync::atomic::Ordering::SeqCst);
}
