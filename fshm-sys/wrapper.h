/*
 * Input header for bindgen (fshm-sys).
 *
 * fshm-sys binds the glibc stdio "cookie stream" API (fopencookie and its
 * callback types) plus the real layout of `struct _IO_FILE`, none of which the
 * `libc` crate provides. _GNU_SOURCE must be defined before <stdio.h> or glibc
 * hides fopencookie and cookie_io_functions_t.
 *
 * probe/layout.c includes this same file, so the C layout probe and the Rust
 * bindings always see one header configuration.
 */
#ifndef FSHM_SYS_WRAPPER_H
#define FSHM_SYS_WRAPPER_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <stdio.h>

#endif /* FSHM_SYS_WRAPPER_H */
