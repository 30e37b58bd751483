/*
 * shmfile.h — the C API of fshm: named byte streams in POSIX shared memory.
 *
 * A drop-in replacement for shmfile 1.1.0: programs written against it compile
 * against this header and link against libshmfile.so or libshmfile.a unchanged.
 * Everything marked "Addition" is new in 1.2.0 (fshm); nothing old changed but
 * two corners of naming (see NAMES).
 *
 * A stream is a named byte sequence in shared memory, named like a file (see
 * NAMES). One process, the owner, creates it; any number of guest processes open
 * it by name. Each gets a FILE* that reads and writes the same bytes, with its
 * own position, like separate fopen(3)s of one file; fileno(3) on it is the
 * stream's real shm file descriptor (with glibc; other C libraries keep no
 * descriptor in a fopencookie(3) FILE, and fileno fails there with EBADF); on a
 * ring or an immutable stream it is a read-only one (see ZERO-COPY). A FILE*
 * inherited across fork(2) shares that descriptor's offset with the parent's copy:
 * use it in one of the two processes only (or open a guest in the child).
 * Bytes written through a FILE* reach other handles when stdio passes them to the
 * library: at fflush(3), fclose(3), a seek or a full 64 KiB buffer; a FILE* handed
 * 64 KiB or more in one fwrite(3) writes such chunks straight to the stream (they
 * are visible when fwrite returns) until its next small write or read (in the
 * fast FILE mode, see FILE MODES below).
 *
 * FILE MODES. With glibc on x86_64 and aarch64 a linear stream's FILE* reads in
 * place: a refill points stdio's buffer at the bytes in shared memory, so fread
 * copies each byte once; and large fwrites skip the buffer as said above. Both
 * rely on glibc's FILE internals, checked against its headers when the library
 * is built and tested. Everywhere else (musl, other architectures) the FILE*
 * uses only what fopencookie(3) documents: stdio copies each byte once more,
 * through its buffer, with the same results. FSHM_PORTABLE_FILE=1 in the
 * environment (read once, when the process opens its first stream) forces that
 * portable mode on glibc too: a testing and diagnostic knob, not a tuning one.
 * With musl, an fwrite that commits only part of the caller's bytes returns that
 * count with errno set but without ferror (the next write, or fflush, fails with
 * it), and a write must follow a read only after a seek, as C requires (musl
 * writes where its read-ahead ended).
 *
 * NAMES. A name is one or more '/'-separated components, like a path:
 * "/metrics", "/streams/my_stream"; the leading '/' is optional ("metrics" and
 * "/metrics" are one stream). Since shm_open(3) takes only flat names, and no
 * directories are made in /dev/shm, each name maps to one flat shm object: '/'
 * followed by the components joined by "%2F", every '%' inside a component
 * written "%25". "/streams/my_stream" is the object "/streams%2Fmy_stream";
 * the flat name "a%2Fb" is the object "/a%252Fb", never the stream "/a/b". The
 * object name, without its '/', must be at most 255 bytes (NAME_MAX); each '/'
 * between components and each '%' takes 3 of them. Flat names without '%' map to
 * the objects they had in shmfile 1.1.0. Changed from there: a flat name holding
 * '%' maps to another object ("/50%" was the object "/50%", now "/50%25").
 * A name starting with "sem." is refused (EINVAL): its object would be one of
 * glibc's named semaphores (sem_open("/x") is /dev/shm/sem.x), which fshm must
 * neither list, nor remove, nor share ("sem", "/sem/x", "/x/sem.y" are fine).
 * Besides the stream's object, fshm keeps a one-page lock object for it,
 * "<object name>%lock.<random key>" (shortened with a hash where that would
 * pass NAME_MAX), which only users who may write the stream can open (its
 * locks and the futex words writable waiters sleep on live there);
 * fshm_force_destroy removes both. A new stream is built under a name of its
 * own, "<object name>%new.<random key>", and appears under its name whole.
 *
 * TRUST. The mode bits, owning user and group decide, as for a file, who may
 * open a stream and how; a later fshm_chmod revokes no FILE* already open. A
 * process the mode admits only for reading cannot write by any path (FILE* or
 * fd), cannot attach to a lossless ring, and cannot delay writers, appenders,
 * writable waiters or opens, make a dead owner or reader look alive, or hide a
 * death by waking the header's futex words (writable waiters sleep on words in
 * the lock object). The tokens appends, reader slots and reclaim take are
 * locks on the stream's lock object (see NAMES), which only users who may write
 * the stream can open: change a stream's mode with fshm_chmod/fshm_chgrp, which
 * change both objects (a chmod(1) of the stream's file alone leaves the two
 * disagreeing). A process with write access is trusted further: every header
 * value is checked before use, so a scribbled header gives errors (EPROTO) or
 * end-of-file, never an access out of bounds; but it can make other processes
 * fault with SIGBUS where they read through their mapping (the FILE*'s in-place
 * reads do): by ftruncate(2)-ing the object shorter, or by punching holes in
 * committed data (fallocate(2) FALLOC_FL_PUNCH_HOLE) and then filling /dev/shm.
 * It can also hold the append token or reader slots while it lives. Give
 * untrusted readers read-only mode bits. Whatever happens, a FILE* never puts
 * into the stream a byte that the caller did not pass to it.
 * A name is not a credential: whoever creates a name first owns the stream
 * there, and a guest of that name writes into that user's stream. A guest that
 * must not opens with fshm_open_ex's check_owner (EPERM for another owner). What
 * another user puts at a name (a FIFO, socket, directory, device or symbolic
 * link, even swapped in between two calls) never makes an open wait: EPROTO;
 * nor does a regular file without a whole header, whatever locks it holds (a
 * stream is published whole: nothing at a name is a stream being set up). A
 * user with no access still reads /proc/locks, which tells by inode whether an
 * owner lives, how many lossless readers are attached and when appends happen.
 *
 * Link with -lshmfile (pkg-config --cflags --libs shmfile).
 *
 * ERRORS. Functions returning FILE* return NULL, and functions returning int
 * return -1, with errno set:
 *   EINVAL  name NULL or empty, holding an empty component ("//", a trailing
 *           '/') or a component "." or "..", starting with "sem.", or whose
 *           object name is longer than 255 bytes (see NAMES); both or neither of
 *           FSHM_OWNER/FSHM_GUEST;
 *           unknown flag bits; FSHM_RECLAIM on a guest; FSHM_RDONLY on an owner;
 *           mode bits outside 07777; a NULL FILE*.
 *   EBADF   a FILE* that this library did not make (or already closed); a write
 *           through a read-only guest's FILE* or fd.
 *   EROFS   a write through a guest of a replica (a stream that fshm-tunnel's
 *           importer mirrors from another host and alone writes: every guest
 *           opens it read-only; `fshm stat` names its source).
 *   EEXIST  FSHM_OWNER on a name that exists (without FSHM_RECLAIM, or with it
 *           while the owner lives or the stream is persistent).
 *   EAGAIN  FSHM_OWNER|FSHM_RECLAIM on a dead stream whose reclaim another
 *           process has held for over a second (nothing was removed).
 *   ENOENT  FSHM_GUEST on a name that does not exist.
 *   EACCES  the mode bits allow this process neither reading nor writing.
 *   EPERM   a guest's check_owner (fshm_open_ex) found another owning user.
 *   EPROTO  the name exists but is not an fshm stream, is of another layout
 *           version, or its header is malformed; at once for anything but a
 *           regular file at the name (a FIFO, socket, directory, device or
 *           symbolic link), and for an empty object or a header without its
 *           whole magic (streams are published whole: nothing at a name is a
 *           stream being set up): nothing another user puts there makes an
 *           open wait.
 *   ETIMEDOUT  fshm_wait or fshm_reserve_timeout timed out.
 *   EFBIG   a write past the stream's maximum size (fshm_options.max_size, by
 *           default 1 GiB).
 *   ENOSPC  /dev/shm is full; the stream stays usable up to what was committed.
 *   ENOBUFS a ring reader was overrun (see fshm_open_ex below).
 *   EBUSY   all 32 reader slots of a lossless ring are taken; a second writer
 *           of a ring in this process (see fshm_reserve).
 *   EDEADLK fshm_reserve and appends: this thread's own open reservation on
 *           another handle of the stream holds what the call would wait for.
 *   EPERM   fshm_chmod, fshm_chgrp: this process may not change the stream's
 *           mode or group (as for fchmod(2), fchown(2)).
 *
 * Through the FILE*, stdio reports errors as usual: ferror(f) is set, errno
 * tells why. fwrite(3) returns at most the bytes that reached the stream (a
 * failed write commits none of the bytes it was handed; bytes that stdio
 * buffered count as written until the fflush that fails); the stream never
 * holds a byte the caller did not pass. fseek(3) fails with EINVAL for a
 * negative position or one past LONG_MAX - 4096 (the fd's offset, 4096 bytes
 * of header ahead, must hold it), and on a ring for a position that is no
 * longer held or past the end; a relative seek that fails leaves the position
 * as it was. fclose(3) returns EOF (the FILE* is closed all the same) when
 * bytes written through fileno(f) cannot join the stream, e.g. EPROTO for a
 * malformed header.
 * The library never prints to stderr and never aborts its caller.
 */
#ifndef SHMFILE_H
#define SHMFILE_H

#include <stdio.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * THREAD SAFETY.
 *   fshm_open, fshm_open_ex, fshm_create, fshm_guest_open, fshm_force_destroy,
 *   shmfile_get_version: safe from any number of threads at once (two threads
 *   creating one name: one gets the stream, the other EEXIST).
 *   _fshm_printCopyrightVersion: as safe as printf(3) on stdout.
 *
 *   One FILE* used from several threads: each stdio call (fread, fwrite, fgets,
 *   fprintf, fseek, fflush, ...) takes the FILE's lock, as glibc does for every
 *   stream, and this library's callbacks run under it, so calls do not corrupt each
 *   other and each one is whole; a sequence of calls (fseek then fread) is whole
 *   only under flockfile(3)/funlockfile(3). The *_unlocked stdio functions need the
 *   caller's flockfile. A blocking read (FSHM_BLOCK) holds the lock while it waits,
 *   so other threads' calls on that FILE* wait with it.
 *   fshm_chmod, fshm_chgrp, fshm_owner_state, fshm_lost_bytes: safe at any time,
 *   also while other threads use the same FILE*: they work on the stream's handle,
 *   which has its own lock, not on the FILE's buffer.
 *   fshm_wait, fshm_event_fd, fshm_poll, fshm_sync, fshm_read_in_place,
 *   fshm_consume, fshm_reserve, fshm_commit: they read or flush the FILE's buffer
 *   or move its fd's offset, which the FILE's lock does not cover: while other
 *   threads use the same FILE* (or its fd), call them under flockfile(f) (neither
 *   takes that lock itself, so this cannot deadlock; a waiting fshm_wait or
 *   fshm_poll then holds the other threads back).
 *   The fd (fileno(3)): read(2), write(2) and lseek(2) on it from one thread while
 *   another uses the FILE* break the FILE/fd coherence rule (they share one offset):
 *   serialise them with flockfile(f) too.
 *   fclose(3) of a FILE* that another thread still uses, or passes to one of these
 *   functions, is undefined, as for any FILE*.
 *
 *   Several FILE*s on one stream in one process (fshm_open once per thread): each
 *   has its own fd, position, buffer and lock, like separate fopen(3)s of one file,
 *   and threads may use them at once without locking; FSHM_APPEND writes land whole
 *   across them, as across processes. A ring is written, in one process, through
 *   one FILE* without FSHM_APPEND (from its first write until fclose) or through
 *   FSHM_APPEND FILE*s only: a FILE* that would break this gets EBUSY. A lossless
 *   ring's writer also waits for readers attached in its own process: a thread that
 *   holds an attached guest must keep reading it, or close it, for writers not to
 *   wait for ever.
 */

/* VERSION. The version of this header, which is the C API version: shmfile 1.1.0
 * plus fshm's additions. SHMFILE_VERSION_NUMBER is MAJOR * 10000 + MINOR * 100 +
 * PATCH (minor and patch stay below 100), as SQLITE_VERSION_NUMBER and
 * ZSTD_VERSION_NUMBER are, so that `#if SHMFILE_VERSION_NUMBER >= 10200` selects
 * code using the 1.2 additions at compile time; shmfile_get_version() reports the
 * library a program runs with. shmfile 1.1.0's header defines none of these:
 * `#ifndef SHMFILE_VERSION_NUMBER` means 1.1.0. All come from one source, the
 * build checks them against it (`c-api-version` in fshm-ffi/Cargo.toml). */
#define SHMFILE_VERSION_MAJOR 1
#define SHMFILE_VERSION_MINOR 2
#define SHMFILE_VERSION_PATCH 0
#define SHMFILE_VERSION_NUMBER 10200
#define SHMFILE_VERSION_STRING "1.2.0"

/* fshm_open flags. Exactly one of FSHM_OWNER and FSHM_GUEST. */

/* Create the stream; the caller is its owner. Fails with EEXIST if the name
 * exists. fclose(3) of the owner's FILE* removes the name unless FSHM_PERSIST. */
#define FSHM_OWNER 1
/* Open an existing stream as a guest: read-write where the mode bits allow,
 * else read-only (writes then fail with EBADF). A guest never removes the name. */
#define FSHM_GUEST 2
/* Owner: leave the name in place after fclose. Ignored for guests, as in 1.1.0. */
#define FSHM_PERSIST 4
/* Addition: every write through this FILE* lands whole at the current end of the
 * stream, atomically with respect to appenders in every process. */
#define FSHM_APPEND 8
/* Addition, owner only: if the name exists, is a non-persistent fshm stream and
 * its owner died, remove it and create afresh. Never removes anything else, and
 * never waits more than a second for another process's reclaim (EAGAIN). */
#define FSHM_RECLAIM 16
/* Addition: reads block like a pipe's until data arrives or the owner closes or
 * dies (end-of-file), so `while (fgets(...))` follows a live stream. */
#define FSHM_BLOCK 32
/* Addition, guest only: open read-only even where the mode would allow writing. */
#define FSHM_RDONLY 64
/* Addition, owner only: create an immutable stream (linear streams only; EINVAL
 * with a ring): its committed bytes are never rewritten, so every FILE* may read
 * them in place (fshm_read_in_place) and write in place at the end
 * (fshm_reserve). Every write appends, serialised across processes as with
 * FSHM_APPEND; a write through a FILE* without FSHM_APPEND must start at the end,
 * or it fails with EINVAL (after an fseek back, or after another handle
 * appended), committing nothing. fileno(f) is read-only (write(2) fails with
 * EBADF; see ZERO-COPY). Recorded in the stream: guests follow it too. */
#define FSHM_IMMUTABLE 128

/* Opens or creates the stream `name`; `mode` (owner only) is applied exactly,
 * whatever the umask. Returns a FILE* to be closed with fclose(3), which also
 * closes its fd. */
FILE *fshm_open(const char *name, mode_t mode, int fshm_flags);

/* fshm_open(name, mode, FSHM_OWNER). */
FILE *fshm_create(const char *name, mode_t mode);

/* fshm_open(name, 0, FSHM_GUEST). */
FILE *fshm_guest_open(const char *name);

/* Sets the group of the stream behind `f`. 0, or -1 with errno. */
int fshm_chgrp(FILE *f, gid_t gid);

/* Sets the mode bits of the stream behind `f`; later opens see them. */
int fshm_chmod(FILE *f, mode_t mode);

/* Removes the name `name`, whatever its state; processes that have it open keep
 * working. 0, or -1 with errno. */
int fshm_force_destroy(const char *name);

/* Stores the library version (1.2.0, extra "fshm"); any pointer may be NULL. */
void shmfile_get_version(unsigned char *major, unsigned char *minor,
                         unsigned char *patchlevel, const char **extra);

/* Prints the product name and version to standard output. */
void _fshm_printCopyrightVersion(void);

/* Addition: waits until `f` has data to read past its position, for at most
 * `timeout_ms` milliseconds (negative: no limit). Returns 1 when data is there,
 * 0 at end-of-stream (the owner closed the stream or died), -1 with errno
 * (ETIMEDOUT when the time ran out). Idle waiting costs no CPU. */
int fshm_wait(FILE *f, long timeout_ms);

/* EVENT LOOPS (additions). A FILE* can be watched by poll(2), epoll(7), select(2)
 * and every loop built on them (libuv's uv_poll_t, GLib's g_unix_fd_add, libevent,
 * Qt's QSocketNotifier, Python's asyncio add_reader) through fshm_event_fd, and many
 * FILE*s can be waited on at once with fshm_poll. Neither starts a thread per
 * stream: the library's reactor threads (one per 127 waits, sleeping in
 * futex_waitv(2) on Linux 5.16+, polling every 100 us to 10 ms on older kernels)
 * wait for all of a process's streams, and writers still make no system call while
 * nobody waits. */

/* Returns a descriptor that is readable while data past f's position is
 * committed, or once the stream has ended (the owner closed or died). It is an
 * eventfd(2), close-on-exec, owned by f: fclose(f) closes it; each call returns the
 * same one. It stays readable until re-armed, and re-arms (clears, then watches for
 * data past f's position) at each call of fshm_event_fd and at each read of f that
 * finds no data (fread(3) returning short). So a loop's callback reads f until
 * fread returns 0, then clearerr(f): the descriptor is readable again at once if
 * data came meanwhile, else when the next commit lands. When a read finds no data
 * and the descriptor stays readable, the stream may have ended: fshm_poll(&p, 1, 0)
 * says so with FSHM_POLLEND (then stop watching the descriptor). A read-only FILE*
 * (FSHM_RDONLY, or a mode that allows only reading) may see it readable without new
 * data, up to 100 times a second. Do not write to it. -1 with errno: EINVAL (f is
 * NULL), EBADF (not from this library), EMFILE/ENFILE.
 * Thread safety: as fshm_wait; the descriptor itself may be polled from any
 * thread. */
int fshm_event_fd(FILE *f);

/* One entry of fshm_poll, as struct pollfd is of poll(2). */
struct fshm_pollfd {
    FILE *stream;  /* NULL: the entry is skipped (revents 0) */
    short events;  /* FSHM_POLLDATA; FSHM_POLLEND is reported whether asked or not */
    short revents; /* set by fshm_poll */
};
/* Data past the FILE*'s position (in its stdio buffer or committed). */
#define FSHM_POLLDATA 0x1
/* The stream ended: its owner closed or died and, for an entry asking for
 * FSHM_POLLDATA, no data is left past the position (it comes after the last data,
 * as end-of-file does). Reported even if not asked, like POLLHUP. */
#define FSHM_POLLEND 0x2

/* Waits until at least one of the n entries has an event, or timeout_ms
 * milliseconds pass (negative: no limit; 0: just look). Returns the number of
 * entries with revents set, 0 on timeout, -1 with errno: EINVAL (fds is NULL with
 * n > 0), EBADF (a stream not from this library; no revents changes). Any number of
 * streams (1,000 and more); a call with one ready costs a look at each (about
 * 0.2 us a FILE*: one lseek(2) for the fd-coherence rule). A closed owner is seen
 * by the look; a dead one by a liveness probe of every stream, made before a call
 * returns 0, so the call that finds no data reports it, however short its timeout;
 * during a wait a death is seen at once where the owner's process can be watched
 * (pidfd, Linux 5.3+), within about 60 ms elsewhere. Unknown bits in events are
 * ignored. With no stream (all NULL, or n == 0) it sleeps for the timeout, as
 * poll(2) does. fshm_event_fd(3) has the details.
 * Thread safety: as fshm_wait, for each FILE*. */
int fshm_poll(struct fshm_pollfd *fds, size_t n, long timeout_ms);

/* Addition: bytes written with write(2) on fileno(f) join the stream's length at
 * the handle's next stdio call that reaches the library (a read or write that
 * fills or drains the buffer, fseek, ftell, rewind, fflush with buffered data,
 * fclose). fshm_sync makes them join now. 0, or -1 with errno. */
int fshm_sync(FILE *f);

/* Addition: the state of the stream's owner. */
#define FSHM_OWNER_ALIVE 1
#define FSHM_OWNER_CLOSED 2
#define FSHM_OWNER_DEAD 3
/* Returns FSHM_OWNER_ALIVE, FSHM_OWNER_CLOSED or FSHM_OWNER_DEAD, or -1. */
int fshm_owner_state(FILE *f);

/* Addition: options for fshm_open_ex. Zero-initialise, set `size`, then the
 * fields you need:
 *     struct fshm_options o = {0};
 *     o.size = sizeof o;
 *     o.ring_capacity = 1 << 20;
 *     o.ring_policy = FSHM_RING_LOSSLESS;
 *     FILE *f = fshm_open_ex("/feed", 0600, FSHM_OWNER, &o);
 */
struct fshm_options {
    size_t size;                      /* sizeof(struct fshm_options) */
    /* Owner only: */
    unsigned long long max_size;      /* linear stream's maximum; 0: the
                                         default, 1 GiB; at most 16 TiB */
    unsigned long long ring_capacity; /* ring stream: bytes kept, a multiple of the
                                         page size; 0: a linear stream */
    int ring_policy;                  /* FSHM_RING_LOSSY or FSHM_RING_LOSSLESS */
    /* Guest only (added after ring_policy; a program compiled without them passes
     * the smaller size and keeps working): */
    int check_owner;                  /* non-zero: refuse (EPERM) a stream that the
                                         user owner_uid does not own */
    uid_t owner_uid;                  /* the owning user required by check_owner */
};

/* A ring stream keeps only its last `ring_capacity` bytes and is append-only:
 * every write lands at the end; positions (ftell) are absolute and keep growing.
 * A new guest starts reading at the oldest byte held.
 * LOSSY: the writer never waits; a reader that fell more than the capacity
 *   behind gets -1 / ferror with errno ENOBUFS from its read, and continues at
 *   the oldest byte held after clearerr(f); fshm_lost_bytes tells how much it
 *   lost. It never receives bytes that were overwritten while it copied them.
 * LOSSLESS: writes wait until every attached reader has read what they would
 *   overwrite. A guest opened read-write (not FSHM_APPEND) attaches itself; one
 *   opened read-only reads as a lossy reader. A dead reader stops holding the
 *   writer back within 50 ms. At most 32 readers attach (then EBUSY). */
#define FSHM_RING_LOSSY 0
#define FSHM_RING_LOSSLESS 1

/* Addition: fshm_open with options (NULL: as fshm_open). Each side's options are
 * refused on the other with EINVAL, as are FSHM_RECLAIM and FSHM_IMMUTABLE on a
 * guest and FSHM_RDONLY on an owner: max_size, ring_capacity and ring_policy
 * (non-zero) on a guest, check_owner on an owner. (FSHM_PERSIST and `mode` stay
 * ignored for guests, as in shmfile 1.1.0.) `size` that is no size this library
 * knows (a later struct's is accepted when its unknown fields are zero), a bad
 * policy, or a capacity that is not a multiple of the page size: EINVAL.
 * check_owner: a name is not a credential. /dev/shm is shared by every user, and
 * whoever creates a name first owns the stream there; a guest that writes secrets
 * into a stream, or trusts what it reads, sets check_owner and the owner_uid it
 * expects (e.g. the service's user), and a stream owned by anyone else fails with
 * EPERM. The check is an fstat(2) of the descriptor the FILE* then uses. */
FILE *fshm_open_ex(const char *name, mode_t mode, int fshm_flags,
                   const struct fshm_options *opts);

/* Addition: stores in *lost the bytes `f` lost to ring overruns so far. */
int fshm_lost_bytes(FILE *f, unsigned long long *lost);

/* ZERO-COPY (additions). Where no honest writer rewrites committed bytes, a reader
 * may read them where they lie in shared memory, and a writer may fill the space at
 * the end where it lies and commit it in one step:
 *   - an immutable stream (FSHM_IMMUTABLE): every FILE* on it;
 *   - a lossless ring: a guest attached to a reader slot (opened read-write, not
 *     FSHM_APPEND); the writer waits for it until it consumes the bytes.
 * fshm_read_in_place and fshm_reserve first flush the FILE's stdio buffer
 * (fflush(3)): buffered output reaches the stream, unread buffered input is given
 * back; fshm_consume and fshm_commit act on what those two returned. On a lossless ring do
 * not mix fread(3) and in-place reads: what stdio read ahead is released to the
 * writer, and an in-place read there fails with EINVAL.
 * Trust: the guarantee is the protocol's. In this process the library keeps it:
 * fileno(f) of a ring or an immutable stream is a read-only descriptor of its own
 * (write(2), ftruncate(2) and a writable shared mmap(2) of it fail), and the
 * writers of a ring in one process are one FILE* without FSHM_APPEND or any
 * number with it (EBUSY otherwise), so no reservation is written by anyone else.
 * Opening the object again by its path under /dev/shm is outside the library's
 * reach. Other processes with write permission can still write the object
 * directly (their own mapping or descriptor) and change bytes while you read them;
 * give processes you do not trust read-only mode bits.
 * Thread safety: as fshm_wait (under flockfile(f) while other threads use f). */

/* Returns the address of the committed bytes at f's position, where they lie in
 * shared memory, and stores their number in *len (0 at the end of what is
 * committed; with FSHM_BLOCK it waits for data first and returns 0 bytes only at
 * end-of-stream). The position does not move. The bytes stay valid and unchanged
 * until fshm_consume passes them, another call on f moves the position (fread,
 * fseek, ...), or fclose(f); read them only. NULL with errno: EINVAL when the
 * stream's bytes may change (not immutable, not an attached lossless reader), or
 * len is NULL; EBADF, EPROTO as for reads. */
const void *fshm_read_in_place(FILE *f, size_t *len);

/* Moves f's position past n of the bytes the last fshm_read_in_place returned
 * (on a lossless ring the writer may then overwrite them). 0, or -1 with errno:
 * EINVAL when n is more than those bytes (nothing moves). */
int fshm_consume(FILE *f, size_t n);

/* Reserves n bytes at the end of f's stream to fill in place, and returns their
 * address (the bytes hold whatever was there: zeros or older data). Nothing is
 * visible to readers until fshm_commit. Works on immutable streams and rings (n at
 * most the ring capacity); on a lossless ring it first waits for room as a write
 * does. On an immutable stream, and on a ring through an FSHM_APPEND FILE*, the
 * reservation holds the append lock until fshm_commit, as an append holds it for
 * its copy: fill it promptly. A process that dies holding a reservation commits
 * nothing and blocks nobody. While it is open, writes through f fail with EBUSY,
 * and appends and reservations through other FILE*s of the same stream in the
 * same thread fail with EDEADLK (they would wait for it forever; other threads
 * wait). NULL with errno: EINVAL for n == 0, on a linear stream that is not
 * immutable, and (without FSHM_APPEND) when f is not at the end of an immutable
 * stream; EFBIG past the maximum size or the ring capacity; EBUSY when a
 * reservation is open on f, or on a ring another FILE* of this process writes
 * (see Trust above); EDEADLK; EBADF on a read-only FILE*; ENOSPC; ETIMEDOUT. */
void *fshm_reserve(FILE *f, size_t n);

/* fshm_reserve, waiting at most timeout_ms milliseconds for the append lock and
 * a lossless ring's readers (0: not at all, then NULL with EAGAIN; negative: no
 * limit, as fshm_reserve). NULL with errno: ETIMEDOUT past the timeout, EAGAIN,
 * and fshm_reserve's errors. */
void *fshm_reserve_timeout(FILE *f, size_t n, long timeout_ms);

/* Commits the first n bytes of f's reservation (0: none) in one step, as one
 * write, and closes the reservation; f's position moves past them. 0, or -1 with
 * errno: EINVAL when no reservation is open or n exceeds it (it stays open). */
int fshm_commit(FILE *f, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* SHMFILE_H */
