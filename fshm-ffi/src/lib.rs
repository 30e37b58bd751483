//! libshmfile: the shmfile 1.1.0 C API, as thin wrappers over `fshm`.
#![deny(unsafe_op_in_unsafe_fn)]
