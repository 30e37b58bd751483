/*
 * test_callback_errors.c — the error path of every callback behind an fshm FILE*
 * (write, read, seek, close), as stdio reports it:
 *
 *  - a write that fails (a full /dev/shm: ENOSPC; the maximum size: EFBIG) makes
 *    fwrite return the bytes committed, never more, with ferror set and errno
 *    telling why; the stream then holds exactly those bytes, and no byte from past
 *    the end of the caller's buffer is ever read (a PROT_NONE guard page follows
 *    it). The full /dev/shm is a 2 MiB tmpfs in a private mount namespace of a
 *    forked child (a user namespace too when not root); where namespaces are not
 *    available, that part says so in one line and is skipped. On musl, a write
 *    that commits part of the caller's bytes returns that count without ferror
 *    (musl sets it only for a write that fails outright: the next one);
 *  - a write after an in-place refill that only partly fits (EFBIG) keeps the
 *    bytes that fit and reports the rest; an FSHM_APPEND write that does not fit
 *    commits nothing;
 *  - a read whose refill fails (a scribbled header: EPROTO) is ferror, and reads
 *    work again once the header is right;
 *  - a seek that fails (EINVAL: negative, or past what off_t holds) leaves the
 *    position and the buffered bytes as they were;
 *  - fclose reports a close that could not take in bytes written through the fd;
 *  - a failing lseek of the fd's offset (a pipe in the fd's place) fails each
 *    callback cleanly and commits nothing.
 */
#include "common.h"

#include <sched.h>
#include <stdint.h>
#include <sys/mount.h>

/* 1 MiB + 8: two of them do not fit a 2 MiB /dev/shm. */
#define BIG ((size_t)(1 << 20) + 8)
/* Whether a short count from the write callback sets ferror: glibc's does; musl's
 * only a failure (shmfile.h, FILE MODES). */
#ifdef __GLIBC__
#define SHORT_WRITE_SETS_FERROR 1
#else
#define SHORT_WRITE_SETS_FERROR 0
#endif

/* Exit status of a child that found no usable namespace. */
#define T_SKIP 77

static char name[300];

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    size_t i;
    for (i = 0; i < n; i++)
        p[i] = (unsigned char)(i * 31 + i / 251 + seed);
}

/* `n` bytes of memory followed by an inaccessible page: reading one byte past
 * the end faults. */
static unsigned char *guarded(size_t n)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t span = (n + page - 1) / page * page;
    unsigned char *base = mmap(NULL, span + page, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(base != MAP_FAILED);
    CHECK(mprotect(base + span, page, PROT_NONE) == 0);
    return base + (span - n);
}

static void unguard(unsigned char *p, size_t n)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t span = (n + page - 1) / page * page;
    CHECK(munmap(p - (span - n), span + page) == 0);
}

/* The whole stream `name` through a fresh guest, into a new buffer. */
static unsigned char *contents(const char *nm, size_t *len)
{
    FILE *g = fshm_guest_open(nm);
    unsigned char *buf;
    long n;
    CHECKF(g != NULL, "guest open of %s", nm);
    CHECK(fseek(g, 0, SEEK_END) == 0);
    n = ftell(g);
    CHECK(n >= 0);
    rewind(g);
    buf = malloc((size_t)n + 1);
    CHECK(buf != NULL);
    CHECK(fread(buf, 1, (size_t)n + 1, g) == (size_t)n && feof(g) && !ferror(g));
    CHECK(fclose(g) == 0);
    *len = (size_t)n;
    return buf;
}

static int write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY);
    ssize_t n;
    if (fd < 0)
        return -1;
    n = write(fd, text, strlen(text));
    close(fd);
    return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* Enters a private mount namespace (and a user namespace when not root) with a
 * 2 MiB tmpfs on /dev/shm. NULL on success, else why it could not. */
static const char *private_full_dev_shm(void)
{
    uid_t uid = getuid();
    gid_t gid = getgid();
    char map[64];
    if (unshare(CLONE_NEWNS) != 0) {
        if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0)
            return "unshare(CLONE_NEWNS) and unshare(CLONE_NEWUSER|CLONE_NEWNS) are "
                   "refused (no privilege, user namespaces disabled, or a sandbox)";
        snprintf(map, sizeof map, "0 %u 1", (unsigned)uid);
        if (write_file("/proc/self/setgroups", "deny") != 0 ||
            write_file("/proc/self/uid_map", map) != 0)
            return "cannot map the user in a new user namespace";
        snprintf(map, sizeof map, "0 %u 1", (unsigned)gid);
        if (write_file("/proc/self/gid_map", map) != 0)
            return "cannot map the group in a new user namespace";
    }
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
        return "cannot make the mount namespace private";
    if (mount("tmpfs", "/dev/shm", "tmpfs", 0, "size=2m,mode=1777") != 0)
        return "cannot mount a tmpfs on /dev/shm in the namespace";
    return NULL;
}

/* Child: two fwrites of 1 MiB + 8 bytes onto a 2 MiB /dev/shm. The first fits;
 * the second returns what was committed, with ferror and ENOSPC; the stream holds
 * exactly the committed bytes. With `guard`, each source buffer ends right before
 * a PROT_NONE page. */
static int enospc_child(int guard)
{
    const char *why = private_full_dev_shm();
    unsigned char *a, *b, *got;
    size_t r1, r2, len;
    int err;
    FILE *f;
    if (why != NULL) {
        printf("skipped: full /dev/shm tests (ENOSPC, guard page): %s\n", why);
        fflush(stdout);
        t_child_exit(T_SKIP);
    }
    t_name(name, sizeof name, guard ? "enospc-guard" : "enospc");
    a = guard ? guarded(BIG) : malloc(BIG);
    b = guard ? guarded(BIG) : malloc(BIG);
    CHECK(a != NULL && b != NULL);
    fill(a, BIG, 1);
    fill(b, BIG, 2);
    f = fshm_create(name, 0600);
    CHECK(f != NULL);
    r1 = fwrite(a, 1, BIG, f);
    CHECKF(r1 == BIG && !ferror(f), "first fwrite: %zu of %zu", r1, BIG);
    errno = 0;
    r2 = fwrite(b, 1, BIG, f);
    err = errno;
    CHECKF(r2 < BIG, "second fwrite reported %zu of %zu bytes on a full /dev/shm", r2, BIG);
    CHECKF(ferror(f), "no ferror after a failed fwrite");
    CHECKF(err == ENOSPC, "errno %d after the failed fwrite, want ENOSPC", err);
    /* Nothing is left buffered that could still be written. */
    CHECK(fflush(f) == 0);
    got = contents(name, &len);
    CHECKF(len == r1 + r2, "the stream holds %zu bytes, fwrite reported %zu + %zu", len, r1,
           r2);
    CHECKF(memcmp(got, a, r1) == 0, "first fwrite's bytes differ");
    CHECKF(memcmp(got + r1, b, r2) == 0, "second fwrite's committed bytes differ");
    free(got);
    CHECK(fclose(f) == 0);
    CHECK(!t_exists(name));
    if (guard) {
        unguard(a, BIG);
        unguard(b, BIG);
    } else {
        free(a);
        free(b);
    }
    t_child_exit(0);
    return 0;
}

/* Runs the ENOSPC child; 0 if it found no namespace to run in (and said so). */
static int full_dev_shm(int guard)
{
    int st;
    pid_t pid = t_fork();
    if (pid == 0)
        enospc_child(guard);
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECKF(!WIFSIGNALED(st), "the ENOSPC child (guard %d) died of signal %d", guard,
           WTERMSIG(st));
    CHECKF(WIFEXITED(st) && (WEXITSTATUS(st) == 0 || WEXITSTATUS(st) == T_SKIP),
           "the ENOSPC child (guard %d) failed (status 0x%x)", guard, st);
    return WEXITSTATUS(st) == 0;
}

/* A stream at its maximum size: a large fwrite commits nothing and says so
 * (EFBIG), a small one fails at fflush; one that half fits keeps what fits. */
static void at_maximum(void)
{
    const size_t max = 4 * 65536;
    struct fshm_options o;
    unsigned char *src = guarded(BIG), *got;
    size_t n, len;
    FILE *f, *g;
    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    o.max_size = max;
    t_name(name, sizeof name, "efbig");
    fill(src, BIG, 3);

    f = fshm_open_ex(name, 0600, FSHM_OWNER, &o);
    CHECK(f != NULL);
    /* Past the maximum by 100 bytes: what fits is committed. */
    errno = 0;
    n = fwrite(src, 1, max + 100, f);
    if (n == max + 100) /* the portable mode buffers the last 100 bytes */
        CHECKF(t_portable_file() && fflush(f) == EOF, "fwrite past the maximum: %zu", n);
    else
        CHECKF(n == max, "fwrite past the maximum reported %zu bytes", n);
    CHECKF((ferror(f) || (!SHORT_WRITE_SETS_FERROR && n == max)) && errno == EFBIG,
           "after writing past the maximum");

    /* At the maximum: a fresh FILE* commits nothing of a large fwrite. */
    g = fshm_guest_open(name);
    CHECK(g != NULL);
    CHECK(fseek(g, 0, SEEK_END) == 0 && ftell(g) == (long)max);
    errno = 0;
    n = fwrite(src, 1, BIG, g);
    CHECKF(n == 0, "fwrite at the maximum reported %zu bytes", n);
    CHECKF(ferror(g) && errno == EFBIG, "after fwrite at the maximum");
    /* The same FILE* again, after clearerr: one byte fails too, at fputc (the
     * direct-write mode is still on after a large write) or at fflush. */
    clearerr(g);
    errno = 0;
    if (fputc('z', g) == 'z')
        CHECK(fflush(g) == EOF);
    CHECK(ferror(g) && errno == EFBIG);
    CHECK(fclose(g) == 0);

    /* An appender at the maximum: its writes stay whole, so none of them lands. */
    g = fshm_open(name, 0, FSHM_GUEST | FSHM_APPEND);
    CHECK(g != NULL);
    errno = 0;
    n = fwrite(src, 1, BIG, g);
    CHECKF(n == 0 && ferror(g) && errno == EFBIG, "append at the maximum: %zu", n);
    clearerr(g);
    CHECK(fwrite("xy", 1, 2, g) == 2);
    errno = 0;
    CHECK(fflush(g) == EOF && ferror(g) && errno == EFBIG);
    CHECK(fclose(g) == 0);

    /* The owner's FILE* once more, with a large write: never the full count. */
    clearerr(f);
    errno = 0;
    n = fwrite(src, 1, BIG, f);
    CHECKF(n < BIG && ferror(f) && errno == EFBIG, "second fwrite at the maximum: %zu", n);

    /* A write right after an in-place refill near the end: 3 of its 10 bytes fit. */
    clearerr(f);
    CHECK(fseek(f, (long)max - 5, SEEK_SET) == 0);
    CHECK(fgetc(f) == src[max - 5] && fgetc(f) == src[max - 4]);
#ifndef __GLIBC__
    /* C wants a positioning call between a read and a write; glibc does without,
     * musl drops its read-ahead and would write at the stream's end. */
    CHECK(fseek(f, 0, SEEK_CUR) == 0);
#endif
    CHECK(fwrite("0123456789", 1, 10, f) == 10);
    errno = 0;
    CHECK(fflush(f) == EOF && ferror(f) && errno == EFBIG);
    memcpy(src + max - 3, "012", 3);

    got = contents(name, &len);
    CHECKF(len == max, "the stream holds %zu bytes, its maximum is %zu", len, max);
    CHECKF(memcmp(got, src, max) == 0, "the stream's bytes differ from what was committed");
    free(got);
    CHECK(fclose(f) == 0);
    CHECK(!t_exists(name));
    unguard(src, BIG);
}

/* Writes the length field of the stream's header (little-endian, offset 64 of
 * the shm object) through a descriptor of its own, as any writer could. */
static void scribble_length(const char *nm, uint64_t len)
{
    unsigned char le[8];
    int i, fd = shm_open(nm, O_RDWR, 0);
    CHECK(fd >= 0);
    for (i = 0; i < 8; i++)
        le[i] = (unsigned char)(len >> (8 * i));
    CHECK(pwrite(fd, le, 8, 64) == 8);
    CHECK(close(fd) == 0);
}

/* A refill that fails is ferror with the stream's errno (EPROTO for a malformed
 * header), in place (linear) and by copying (FSHM_APPEND); the FILE* reads again
 * once the header is right. */
static void read_errors(void)
{
    const size_t n = 200000;
    unsigned char *src = malloc(n), *buf = malloc(n);
    int append;
    FILE *f;
    CHECK(src != NULL && buf != NULL);
    fill(src, n, 4);
    t_name(name, sizeof name, "rderr");
    for (append = 0; append <= 1; append++) {
        FILE *g;
        f = fshm_create(name, 0600);
        CHECK(f != NULL);
        CHECK(fwrite(src, 1, n, f) == n && fflush(f) == 0);
        g = fshm_open(name, 0, FSHM_GUEST | (append ? FSHM_APPEND : 0));
        CHECK(g != NULL);
        scribble_length(name, (uint64_t)1 << 62);
        errno = 0;
        CHECKF(fread(buf, 1, 10, g) == 0, "read through a malformed header");
        CHECKF(ferror(g) && errno == EPROTO, "append %d: after a failed refill", append);
        scribble_length(name, n);
        clearerr(g);
        CHECK(fread(buf, 1, n, g) == n && memcmp(buf, src, n) == 0);
        CHECK(fclose(g) == 0);
        CHECK(fclose(f) == 0);
        CHECK(!t_exists(name));
    }
    free(src);
    free(buf);
}

/* A relative seek that fails leaves the position and the unread bytes as they
 * were. */
static void seek_errors(void)
{
    const size_t n = 100000;
    unsigned char *src = malloc(n);
    FILE *f, *g;
    CHECK(src != NULL);
    fill(src, n, 5);
    t_name(name, sizeof name, "seekerr");
    f = fshm_create(name, 0600);
    CHECK(f != NULL);
    CHECK(fwrite(src, 1, n, f) == n && fflush(f) == 0);
    g = fshm_guest_open(name);
    CHECK(g != NULL);
    CHECK(fgetc(g) == src[0] && fgetc(g) == src[1]);
    CHECK_ERR(fseek(g, -1, SEEK_SET) == -1, EINVAL);
    CHECK(ftell(g) == 2 && fgetc(g) == src[2]);
    CHECK_ERR(fseek(g, -10, SEEK_CUR) == -1, EINVAL);
    CHECK(ftell(g) == 3 && fgetc(g) == src[3]);
    /* Past what off_t holds (with the header before the data, in the fd's offset):
     * the length plus LONG_MAX, LONG_MAX itself, a far position plus LONG_MAX. */
    CHECK_ERR(fseek(g, LONG_MAX, SEEK_END) == -1, EINVAL);
    CHECK(ftell(g) == 4 && fgetc(g) == src[4]);
    CHECK(ftell(g) == 5);
    /* (glibc seeks to a block boundary before an absolute target, so a failed
     * SEEK_SET may leave the position there; only the error is checked.) */
    CHECK_ERR(fseek(g, LONG_MAX, SEEK_SET) == -1, EINVAL);
    CHECK(fseek(g, 1L << 40, SEEK_SET) == 0 && ftell(g) == 1L << 40);
    CHECK_ERR(fseek(g, LONG_MAX, SEEK_CUR) == -1, EINVAL);
    CHECK(ftell(g) == 1L << 40 && fgetc(g) == EOF);
    CHECK(fseek(g, 5, SEEK_SET) == 0 && fgetc(g) == src[5]);
    CHECK(fclose(g) == 0);
    CHECK(fclose(f) == 0);
    CHECK(!t_exists(name));
    free(src);
}

/* fclose that cannot take in bytes written through the fd (the header says a
 * length past the maximum) returns EOF with EPROTO, and still closes and removes
 * the owner's name. Needs fileno (glibc). */
static void close_error(void)
{
    FILE *f;
    t_name(name, sizeof name, "closeerr");
    f = fshm_create(name, 0600);
    CHECK(f != NULL);
    if (fileno(f) < 0) {
        printf("skipped: fclose error test: fileno() is not the stream's fd here\n");
        CHECK(fclose(f) == 0);
        return;
    }
    CHECK(fwrite("abc", 1, 3, f) == 3 && fflush(f) == 0);
    CHECK(write(fileno(f), "def", 3) == 3);
    scribble_length(name, (uint64_t)1 << 62);
    errno = 0;
    CHECKF(fclose(f) == EOF && errno == EPROTO, "fclose over a malformed header");
    CHECK(!t_exists(name));
}

/* Every callback keeps the fd's offset in step with the stream's position (lseek on
 * the stream's fd). With a pipe put in the fd's place, that lseek fails (ESPIPE): the
 * read, write, seek and close callbacks each report it as stdio expects — fread 0
 * with ferror, fflush EOF, fseek -1, fclose EOF — and commit nothing; with the fd put
 * back, reads work again. Needs fileno (glibc). */
static void fd_errors(void)
{
    FILE *f, *g;
    int p[2], saved;
    char buf[8];
    size_t len;
    unsigned char *got;
    t_name(name, sizeof name, "fderr");
    f = fshm_create(name, 0600);
    CHECK(f != NULL);
    if (fileno(f) < 0) {
        printf("skipped: fd offset error test: fileno() is not the stream's fd here\n");
        CHECK(fclose(f) == 0);
        return;
    }
    CHECK(fwrite("abc", 1, 3, f) == 3 && fflush(f) == 0);
    g = fshm_open(name, 0, FSHM_GUEST);
    CHECK(g != NULL);
    CHECK(pipe(p) == 0);
    saved = dup(fileno(g));
    CHECK(saved >= 0);

    /* read */
    CHECK(dup2(p[0], fileno(g)) == fileno(g));
    errno = 0;
    CHECKF(fread(buf, 1, 3, g) == 0 && ferror(g) && errno == ESPIPE,
           "fread with the offset's lseek failing: errno %d", errno);
    clearerr(g);
    /* seek */
    errno = 0;
    CHECKF(fseek(g, 1, SEEK_SET) == -1 && errno == ESPIPE, "fseek: errno %d", errno);
    /* reads work again with the fd back */
    CHECK(dup2(saved, fileno(g)) == fileno(g));
    CHECK(fseek(g, 0, SEEK_SET) == 0);
    CHECK(fread(buf, 1, 3, g) == 3 && memcmp(buf, "abc", 3) == 0);

    /* write: the owner's fd replaced by the pipe's write end */
    {
        int fsaved = dup(fileno(f));
        CHECK(fsaved >= 0);
        CHECK(dup2(p[1], fileno(f)) == fileno(f));
        CHECK(fwrite("xyz", 1, 3, f) == 3);
        errno = 0;
        CHECKF(fflush(f) == EOF && errno == ESPIPE, "fflush: errno %d", errno);
        got = contents(name, &len);
        CHECKF(len == 3 && memcmp(got, "abc", 3) == 0, "a failed flush committed %zu bytes",
               len);
        free(got);
        CHECK(dup2(fsaved, fileno(f)) == fileno(f));
        CHECK(close(fsaved) == 0);
    }

    /* close */
    CHECK(dup2(p[0], fileno(g)) == fileno(g));
    errno = 0;
    CHECKF(fclose(g) == EOF && errno == ESPIPE, "fclose: errno %d", errno);
    CHECK(close(saved) == 0);
    CHECK(close(p[0]) == 0 && close(p[1]) == 0);
    clearerr(f);
    fclose(f);
    CHECK(!t_exists(name));
}

int main(void)
{
    t_init();
    if (full_dev_shm(0))
        full_dev_shm(1);
    at_maximum();
    read_errors();
    seek_errors();
    close_error();
    fd_errors();
    t_cleanup();
    printf("test_callback_errors: ok\n");
    return 0;
}
