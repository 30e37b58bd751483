//! Committed bytes in place: for a buffered layer over a stream (the C API's `FILE*`)
//! that reads straight out of the handle's mapping instead of copying into a buffer of
//! its own first.
//!
//! Everything a read checks is checked here too (the committed length, the object's
//! size behind it); what the layer may do with the address is in [`Stream::in_place`].

use crate::error::{invalid, Result};
use crate::stream::{Stream, WaitStatus};

/// Committed bytes of a linear stream, in place in a handle's mapping
/// ([`Stream::in_place`]).
#[derive(Debug, Clone, Copy)]
pub struct InPlace {
    /// Address of the byte at [`pos`](InPlace::pos) in the handle's mapping.
    pub ptr: *const u8,
    /// Committed bytes from `ptr` on (0: nothing to read at `pos`).
    pub len: usize,
    /// The handle's position, whose byte `ptr` addresses.
    pub pos: u64,
}

impl Stream {
    /// The committed bytes at the handle's position, in place: the address of the byte
    /// at the position in this handle's mapping and how many committed bytes follow it
    /// (at most `max`). The position does not move. With `wait`, waits first until there
    /// is data there or the owner has closed or died (then `len` is 0), like a
    /// [`Follower`](crate::Follower).
    ///
    /// The bytes stay mapped while the handle lives, and committed bytes are never
    /// taken away (the object never shrinks); other processes may still overwrite them,
    /// as they may any committed bytes, so read them with raw copies, never through a
    /// Rust reference. For linear streams only: a ring reuses its pages, and its reads
    /// must check for overruns after copying.
    ///
    /// # Errors
    /// `InvalidInput` on a ring stream; otherwise as a read.
    pub fn in_place(&self, max: usize, wait: bool) -> Result<InPlace> {
        if self.is_ring() {
            return Err(invalid(
                self.name(),
                "a ring's bytes cannot be read in place",
            ));
        }
        if wait {
            let pos = self.position();
            // Without a deadline a wait does not time out; Ended finds no data below.
            while self.wait_until(pos, None, crate::DEFAULT_SPIN) == WaitStatus::TimedOut {}
        }
        let mut c = self.lock();
        let pos = c.pos;
        let window = self.window()?;
        let len = self.checked_len()?;
        let n = if pos >= len {
            0
        } else {
            (len - pos).min(max as u64)
        };
        if n > 0 {
            self.ensure_readable(&mut c, pos + n)?;
        }
        Ok(InPlace {
            ptr: window.data_ptr_wrapping(pos),
            len: n as usize,
            pos,
        })
    }

    /// The stream position whose byte this handle's mapping holds at `ptr`, if `ptr`
    /// points into the data part of the mapping (or one past its end).
    pub fn position_in_window(&self, ptr: *const u8) -> Option<u64> {
        let w = self.mapped_window()?;
        let base = w.data_ptr_wrapping(0) as usize;
        let p = ptr as usize;
        let off = p.checked_sub(base)? as u64;
        (off <= w.data_len()).then_some(off)
    }

    /// Whether `ptr .. ptr + len` overlaps the data part of this handle's mapping.
    pub fn overlaps_window(&self, ptr: *const u8, len: usize) -> bool {
        let Some(w) = self.mapped_window() else {
            return false;
        };
        let base = w.data_ptr_wrapping(0) as usize;
        let end = base.saturating_add(w.data_len() as usize);
        let p = ptr as usize;
        p < end && p.saturating_add(len) > base
    }
}
