//! Raw bindings used by fshm: the glibc stdio items that `libc` lacks, and one import
//! path (`fshm_sys::libc`) for the POSIX shm / mman / fcntl calls.
#![deny(unsafe_op_in_unsafe_fn)]

pub use libc;
