//! fshm
