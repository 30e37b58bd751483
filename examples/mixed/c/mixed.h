/*
 * mixed.h — the C side of the mixed example, as its Rust side calls it
 * (src/lib.rs declares the same functions).
 */
#ifndef FSHM_MIXED_H
#define FSHM_MIXED_H

#include <stddef.h>

/* Opens the existing stream `name` as an appending guest and writes `count` lines
 * "<tag> <i>\n" (i = 0 .. count-1), each whole. 0, or -1 with errno. */
int mixed_c_produce(const char *name, const char *tag, unsigned count);

/* Opens the existing stream `name` read-only and copies its bytes into `out`
 * (`cap` bytes), reading through the fd, until the owner closes the stream or
 * dies. Waits at most `timeout_ms` for each new byte. The number of bytes, or -1
 * with errno (ETIMEDOUT, or ENOBUFS when the stream outgrew `cap`). */
long mixed_c_consume(const char *name, char *out, size_t cap, long timeout_ms);

/* Starts `threads` threads (at most 16) that each write `lines` lines "t<k> <i>\n"
 * to the existing stream `name`: all through one shared FILE* opened with
 * FSHM_APPEND (`shared` non-zero; one more thread then calls fshm_owner_state,
 * fshm_lost_bytes, fshm_chmod and, under flockfile, fshm_sync on that FILE*
 * meanwhile), or each through a FILE* of its own. 0, or -1 with errno. */
int mixed_c_threads(const char *name, int shared, unsigned threads, unsigned lines);

#endif
