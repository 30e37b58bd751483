/*
 * test_zerocopy.c — in-place reads (fshm_read_in_place, fshm_consume) and writes
 * (fshm_reserve, fshm_commit): a producer writes length-prefixed messages in place
 * (and some through fwrite) into an immutable stream and into a lossless ring, a
 * consumer in another process reads them in place with FSHM_BLOCK and checks every
 * byte; reserved bytes that are not committed never show; bad input gets a clear
 * errno and changes nothing.
 */
#include "common.h"

#include <stdint.h>

enum { MESSAGES = 4000, JUNK = 0xEE };

/* Message i: 4-byte length n (native order), then n bytes derived from i. */
static size_t msg_len(int i)
{
    return 4 + (size_t)(i * 7919 % 2000);
}

static unsigned char msg_byte(int i, size_t k)
{
    return (unsigned char)((k * 13 + (size_t)i) % 0xE0);
}

static void fill_message(unsigned char *p, int i)
{
    uint32_t n = (uint32_t)msg_len(i);
    size_t k;
    memcpy(p, &n, 4);
    for (k = 0; k < n; k++)
        p[4 + k] = msg_byte(i, k);
}

/* Writes MESSAGES messages through `f`: in place (reserving 64 bytes more, filled
 * with junk and not committed; every fifth first reserved and dropped), every third
 * with fwrite and fflush. */
static void produce(FILE *f)
{
    static unsigned char buf[4 + 2000];
    int i;
    for (i = 0; i < MESSAGES; i++) {
        size_t n = 4 + msg_len(i);
        if (i % 3 == 2) {
            fill_message(buf, i);
            CHECK(fwrite(buf, 1, n, f) == n);
            CHECK(fflush(f) == 0);
            continue;
        }
        if (i % 5 == 0) {
            unsigned char *p = fshm_reserve(f, n);
            CHECK(p != NULL);
            memset(p, JUNK, n);
            CHECK(fshm_commit(f, 0) == 0); /* commits nothing */
        }
        unsigned char *p = fshm_reserve(f, n + 64);
        CHECK(p != NULL);
        fill_message(p, i);
        memset(p + n, JUNK, 64);
        CHECK(fshm_commit(f, n) == 0);
    }
}

/* Reads messages in place from `f` (opened with FSHM_BLOCK) until end-of-stream and
 * checks each; exits the child with 0 when all MESSAGES arrived in order. */
static void consume_all(FILE *f)
{
    int next = 0;
    for (;;) {
        size_t n, at = 0;
        const unsigned char *p = fshm_read_in_place(f, &n);
        CHECK(p != NULL);
        if (n == 0)
            break;
        /* Commits are whole messages: what is lent never ends inside one. */
        while (at < n) {
            uint32_t len;
            size_t k;
            CHECKF(n - at >= 4, "a partial length prefix at message %d", next);
            memcpy(&len, p + at, 4);
            CHECKF(len == msg_len(next) && n - at - 4 >= len,
                   "message %d: length %u (want %zu), %zu bytes lent", next,
                   (unsigned)len, msg_len(next), n - at - 4);
            for (k = 0; k < len; k++)
                CHECKF(p[at + 4 + k] == msg_byte(next, k),
                       "message %d byte %zu: uncommitted or wrong", next, k);
            at += 4 + len;
            next++;
        }
        CHECK(fshm_consume(f, at) == 0);
    }
    CHECKF(next == MESSAGES, "got %d messages, want %d", next, MESSAGES);
}

static void producer_and_consumer(const char *name, const struct fshm_options *o,
                                  int flags)
{
    int attached[2];
    FILE *w;
    pid_t pid;
    t_pipe(attached);
    w = fshm_open_ex(name, 0600, FSHM_OWNER | flags, o);
    CHECK(w != NULL);
    pid = t_fork();
    if (pid == 0) {
        FILE *r = fshm_open(name, 0, FSHM_GUEST | FSHM_BLOCK);
        CHECK(r != NULL);
        t_signal(attached[1], 'a');
        consume_all(r);
        CHECK(fclose(r) == 0);
        t_child_exit(0);
    }
    t_await(attached[0]);
    produce(w);
    CHECK(fclose(w) == 0); /* ends the consumer's stream */
    t_wait_ok(pid, "consumer");
    close(attached[0]);
    close(attached[1]);
}

static void bad_input(void)
{
    char plain_name[300], imm_name[300], ring_name[300];
    struct fshm_options o = {0};
    unsigned char *p;
    size_t n = 99;
    FILE *plain, *imm, *g, *ring;

    plain = fshm_create(t_name(plain_name, sizeof plain_name, "zc-plain"), 0600);
    CHECK(plain != NULL);
    CHECK(fputs("data", plain) >= 0 && fflush(plain) == 0);
    rewind(plain);
    CHECK_ERR(fshm_read_in_place(plain, &n) == NULL, EINVAL);
    CHECK_ERR(fshm_reserve(plain, 4) == NULL, EINVAL);
    CHECK_ERR(fshm_read_in_place(NULL, &n) == NULL, EINVAL);
    CHECK_ERR(fshm_reserve(NULL, 1) == NULL, EINVAL);
    CHECK_ERR(fshm_consume(NULL, 1) == -1, EINVAL);
    CHECK_ERR(fshm_commit(NULL, 1) == -1, EINVAL);
    CHECK_ERR(fshm_read_in_place(stdout, &n) == NULL, EBADF);
    CHECK_ERR(fshm_open(plain_name, 0, FSHM_GUEST | FSHM_IMMUTABLE) == NULL, EINVAL);

    o.size = sizeof o;
    o.max_size = 100;
    imm = fshm_open_ex(t_name(imm_name, sizeof imm_name, "zc-imm"), 0600,
                       FSHM_OWNER | FSHM_IMMUTABLE, &o);
    CHECK(imm != NULL);
    CHECK_ERR(fshm_read_in_place(imm, NULL) == NULL, EINVAL);
    CHECK_ERR(fshm_reserve(imm, 0) == NULL, EINVAL);
    CHECK_ERR(fshm_reserve(imm, 101) == NULL, EFBIG);
    CHECK_ERR(fshm_commit(imm, 0) == -1, EINVAL); /* none open */
    p = fshm_reserve(imm, 10);
    CHECK(p != NULL);
    memcpy(p, "0123456789", 10);
    CHECK_ERR(fshm_reserve(imm, 1) == NULL, EBUSY);
    /* A write through the FILE* while the reservation is open. */
    CHECK(fputc('x', imm) == 'x');
    CHECK_ERR(fflush(imm) == EOF, EBUSY);
    clearerr(imm);
    CHECK_ERR(fshm_commit(imm, 11) == -1, EINVAL); /* stays open */
    CHECK(fshm_commit(imm, 10) == 0);

    g = fshm_guest_open(imm_name);
    CHECK(g != NULL);
    p = (unsigned char *)fshm_read_in_place(g, &n);
    CHECK(p != NULL && n == 10 && memcmp(p, "0123456789", 10) == 0);
    CHECK_ERR(fshm_consume(g, 11) == -1, EINVAL);
    CHECK(fshm_consume(g, 4) == 0 && ftell(g) == 4);
    p = (unsigned char *)fshm_read_in_place(g, &n);
    CHECK(p != NULL && n == 6 && memcmp(p, "456789", 6) == 0);
    /* Rewriting committed bytes: a write at position 4 fails, nothing changes. */
    CHECK(fputc('X', g) == 'X');
    CHECK_ERR(fflush(g) == EOF, EINVAL);
    clearerr(g);
    CHECK(fseek(g, 0, SEEK_END) == 0 && ftell(g) == 10);
    p = (unsigned char *)fshm_read_in_place(g, &n);
    CHECK(p != NULL && n == 0);
    CHECK(fclose(g) == 0);
    g = fshm_open(imm_name, 0, FSHM_GUEST | FSHM_RDONLY);
    CHECK(g != NULL);
    CHECK_ERR(fshm_reserve(g, 1) == NULL, EBADF);
    CHECK(fclose(g) == 0);

    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    o.ring_capacity = 4096;
    o.ring_policy = FSHM_RING_LOSSLESS;
    CHECK_ERR(fshm_open_ex(t_name(ring_name, sizeof ring_name, "zc-ring-imm"), 0600,
                           FSHM_OWNER | FSHM_IMMUTABLE, &o) == NULL,
              EINVAL);
    CHECK(!t_exists(ring_name));
    ring = fshm_open_ex(ring_name, 0600, FSHM_OWNER, &o);
    CHECK(ring != NULL);
    CHECK_ERR(fshm_reserve(ring, 4097) == NULL, EFBIG);
    /* The writer is not an attached reader. */
    CHECK_ERR(fshm_read_in_place(ring, &n) == NULL, EINVAL);
    CHECK(fclose(ring) == 0);
    CHECK(fclose(imm) == 0);
    CHECK(fclose(plain) == 0);
}

/* Lent bytes stay as they are in this process: fileno(f) of an immutable stream
 * (owner's and guest's) is read-only while a C in-place read is lent, so write(2),
 * pwrite(2), ftruncate(2) and a writable shared mmap(2) of it fail; the FILE*s still
 * write, through descriptors of their own. */
static void lent_bytes_cannot_be_written_through_fileno(void)
{
    char name[300];
    FILE *owner, *g, *files[2];
    const unsigned char *p;
    size_t n = 0;
    int i;
    owner = fshm_open(t_name(name, sizeof name, "zc-fd"), 0600,
                      FSHM_OWNER | FSHM_IMMUTABLE);
    CHECK(owner != NULL);
    CHECK(fputs("AAAA", owner) >= 0 && fflush(owner) == 0);
    g = fshm_guest_open(name);
    CHECK(g != NULL);
    p = fshm_read_in_place(g, &n);
    CHECK(p != NULL && n == 4 && p[0] == 'A');
    if (!T_HAVE_FILENO) {
        t_no_fileno(owner);
        CHECK(fclose(g) == 0 && fclose(owner) == 0);
        return;
    }
    files[0] = owner;
    files[1] = g;
    for (i = 0; i < 2; i++) {
        int fd = fileno(files[i]);
        void *m;
        CHECK(fd >= 0);
        CHECK_ERR(write(fd, "B", 1) == -1, EBADF);
        CHECK_ERR(pwrite(fd, "B", 1, 4096) == -1, EBADF);
        CHECK(ftruncate(fd, 4096) == -1);
        errno = 0;
        m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        CHECKF(m == MAP_FAILED && errno == EACCES,
               "a writable shared mapping of fileno (errno %d)", errno);
    }
    CHECK(p[0] == 'A' && p[3] == 'A');
    /* The FILE*s still write (appends), and the lent bytes stay. */
    CHECK(fputs("more", owner) >= 0 && fflush(owner) == 0);
    CHECK(p[0] == 'A' && memcmp(p, "AAAA", 4) == 0);
    CHECK(fshm_consume(g, 4) == 0);
    p = fshm_read_in_place(g, &n);
    CHECK(p != NULL && n == 4 && memcmp(p, "more", 4) == 0);
    /* Large writes (straight to the stream, through the kernel) keep fileno's
     * offset at the position, as on a plain file. */
    {
        static unsigned char big[100 * 1024];
        memset(big, 'b', sizeof big);
        CHECK(fwrite(big, 1, sizeof big, owner) == sizeof big);
        CHECK(fwrite(big, 1, sizeof big, owner) == sizeof big);
        CHECK(fflush(owner) == 0);
        CHECK(ftell(owner) == (long)(8 + 2 * sizeof big));
        CHECK(lseek(fileno(owner), 0, SEEK_CUR) == (off_t)(4096 + 8 + 2 * sizeof big));
        CHECK(fputs("end", owner) >= 0 && fflush(owner) == 0);
        CHECK(fshm_consume(g, 4) == 0);
        p = fshm_read_in_place(g, &n);
        CHECK(p != NULL && n == 2 * sizeof big + 3);
        CHECK(p[0] == 'b' && p[2 * sizeof big - 1] == 'b');
        CHECK(memcmp(p + 2 * sizeof big, "end", 3) == 0);
    }
    CHECK(fclose(g) == 0);
    CHECK(fclose(owner) == 0);
}

/* A reservation holds the append lock: another FILE*'s append or reservation in
 * the same thread fails with EDEADLK instead of waiting for itself; another
 * process's fshm_reserve_timeout gives up (EAGAIN at 0, ETIMEDOUT later). On a
 * ring, a second writer of this process without FSHM_APPEND gets EBUSY. */
static void reservations_never_wait_for_themselves(void)
{
    char name[300], ring_name[300];
    struct fshm_options o = {0};
    FILE *owner, *app, *ring, *other;
    unsigned char *p;
    int held[2], done[2];
    pid_t pid;
    owner = fshm_open(t_name(name, sizeof name, "zc-deadlock"), 0600,
                      FSHM_OWNER | FSHM_IMMUTABLE);
    CHECK(owner != NULL);
    app = fshm_open(name, 0, FSHM_GUEST | FSHM_APPEND);
    CHECK(app != NULL);
    p = fshm_reserve(owner, 4);
    CHECK(p != NULL);
    memcpy(p, "resv", 4);
    CHECK(fputs("x", app) >= 0);
    CHECK_ERR(fflush(app) == EOF, EDEADLK);
    clearerr(app);
    CHECK_ERR(fshm_reserve(app, 1) == NULL, EDEADLK);
    CHECK_ERR(fshm_reserve_timeout(app, 1, 0) == NULL, EDEADLK);
    t_pipe(held);
    t_pipe(done);
    pid = t_fork();
    if (pid == 0) {
        FILE *c = fshm_open(name, 0, FSHM_GUEST | FSHM_APPEND);
        CHECK(c != NULL);
        CHECK_ERR(fshm_reserve_timeout(c, 1, 0) == NULL, EAGAIN);
        CHECK_ERR(fshm_reserve_timeout(c, 1, 20) == NULL, ETIMEDOUT);
        t_signal(done[1], 'd');
        t_await(held[0]); /* the parent committed */
        p = fshm_reserve_timeout(c, 1, -1);
        CHECK(p != NULL);
        p[0] = 'c';
        CHECK(fshm_commit(c, 1) == 0);
        CHECK(fclose(c) == 0);
        t_child_exit(0);
    }
    t_await(done[0]);
    CHECK(fshm_commit(owner, 4) == 0);
    t_signal(held[1], 'h');
    t_wait_ok(pid, "reserve_timeout");
    p = fshm_reserve_timeout(app, 1, 0);
    CHECK(p != NULL);
    CHECK(fshm_commit(app, 0) == 0);
    CHECK(fclose(app) == 0);
    CHECK(fclose(owner) == 0);
    close(held[0]);
    close(held[1]);
    close(done[0]);
    close(done[1]);

    o.size = sizeof o;
    o.ring_capacity = 4096;
    o.ring_policy = FSHM_RING_LOSSY;
    ring = fshm_open_ex(t_name(ring_name, sizeof ring_name, "zc-two-writers"), 0600,
                        FSHM_OWNER, &o);
    CHECK(ring != NULL);
    other = fshm_guest_open(ring_name);
    CHECK(other != NULL);
    p = fshm_reserve(ring, 64);
    CHECK(p != NULL);
    CHECK_ERR(fshm_reserve(other, 64) == NULL, EBUSY);
    CHECK(fputs("x", other) >= 0);
    CHECK_ERR(fflush(other) == EOF, EBUSY);
    clearerr(other);
    CHECK(fshm_commit(ring, 0) == 0);
    CHECK(fclose(other) == 0);
    CHECK(fclose(ring) == 0);
}

int main(void)
{
    char name[300];
    struct fshm_options o = {0};
    t_init();
    bad_input();
    lent_bytes_cannot_be_written_through_fileno();
    reservations_never_wait_for_themselves();
    producer_and_consumer(t_name(name, sizeof name, "zc-linear"), NULL,
                          FSHM_IMMUTABLE);
    o.size = sizeof o;
    o.ring_capacity = 64 * 1024;
    o.ring_policy = FSHM_RING_LOSSLESS;
    producer_and_consumer(t_name(name, sizeof name, "zc-ring"), &o, 0);
    t_cleanup();
    printf("ok\n");
    return 0;
}
