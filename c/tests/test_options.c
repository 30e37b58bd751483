/*
 * test_options.c — fshm_open_ex and fshm_lost_bytes: NULL options act as fshm_open;
 * bad options are EINVAL and create nothing (a bad ring policy too, on a linear
 * stream as on a ring); a small max_size gives EFBIG; a lossy ring reader that was
 * overrun gets ENOBUFS, learns how much it lost, and goes on after clearerr; a seek
 * past a ring's end is EINVAL and leaves the position where it was. Each side's
 * options and flags on the other side are EINVAL and change nothing (owner-only
 * ones on a guest, check_owner on an owner); FSHM_PERSIST and `mode` stay ignored
 * for a guest, as in shmfile 1.1.0. check_owner admits the owning user and refuses
 * any other with EPERM. `size` is a version's: the first struct's (without
 * check_owner) is accepted, sizes between versions are not, a later struct's is
 * when its unknown fields are zero.
 */
#include "common.h"

static char name[300];

static struct fshm_options opts(unsigned long long max, unsigned long long cap, int policy)
{
    struct fshm_options o;
    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    o.max_size = max;
    o.ring_capacity = cap;
    o.ring_policy = policy;
    return o;
}

/* The first struct fshm_options, before check_owner and owner_uid: what a program
 * compiled then passes. */
struct fshm_options_v1 {
    size_t size;
    unsigned long long max_size;
    unsigned long long ring_capacity;
    int ring_policy;
};

static void each_side_refuses_the_others_options(void)
{
    struct fshm_options o;
    struct stat st;
    FILE *f, *g;
    /* On a name that does not exist: EINVAL, not ENOENT, and nothing created. */
    o = opts(1 << 20, 0, FSHM_RING_LOSSY);
    CHECK_ERR(fshm_open_ex(name, 0, FSHM_GUEST, &o) == NULL, EINVAL);
    o = opts(0, (unsigned long long)sysconf(_SC_PAGESIZE), FSHM_RING_LOSSY);
    CHECK_ERR(fshm_open_ex(name, 0, FSHM_GUEST, &o) == NULL, EINVAL);
    o = opts(0, 0, FSHM_RING_LOSSLESS);
    CHECK_ERR(fshm_open_ex(name, 0, FSHM_GUEST, &o) == NULL, EINVAL);
    CHECK_ERR(fshm_open(name, 0, FSHM_GUEST | FSHM_RECLAIM) == NULL, EINVAL);
    CHECK_ERR(fshm_open(name, 0, FSHM_GUEST | FSHM_IMMUTABLE) == NULL, EINVAL);
    CHECK_ERR(fshm_open(name, 0600, FSHM_OWNER | FSHM_RDONLY) == NULL, EINVAL);
    o = opts(0, 0, FSHM_RING_LOSSY);
    o.check_owner = 1;
    o.owner_uid = geteuid();
    CHECK_ERR(fshm_open_ex(name, 0600, FSHM_OWNER, &o) == NULL, EINVAL);
    CHECK(!t_exists(name));
    /* On a stream that exists: the same, and nothing joins it. */
    f = fshm_open(name, 0600, FSHM_OWNER);
    CHECK(f != NULL);
    CHECK(fputs("abc", f) >= 0 && fflush(f) == 0);
    o = opts(1 << 20, 0, FSHM_RING_LOSSY);
    CHECK_ERR(fshm_open_ex(name, 0, FSHM_GUEST, &o) == NULL, EINVAL);
    o = opts(0, 0, FSHM_RING_LOSSLESS);
    CHECK_ERR(fshm_open_ex(name, 0, FSHM_GUEST | FSHM_APPEND, &o) == NULL, EINVAL);
    CHECK_ERR(fshm_open(name, 0, FSHM_GUEST | FSHM_RECLAIM) == NULL, EINVAL);
    CHECK_ERR(fshm_open(name, 0, FSHM_GUEST | FSHM_IMMUTABLE) == NULL, EINVAL);
    /* shmfile 1.1.0's inputs a guest ignores: FSHM_PERSIST and the mode. */
    g = fshm_open(name, 0644, FSHM_GUEST | FSHM_PERSIST);
    CHECK(g != NULL);
    CHECK(fclose(g) == 0);
    CHECK(t_fstat(f, name, &st) == 0 && (st.st_mode & 07777) == 0600);
    CHECK(fclose(f) == 0);
    CHECK(!t_exists(name));
}

static void check_owner(void)
{
    struct fshm_options o;
    FILE *f, *g;
    char buf[16];
    f = fshm_open(name, 0666, FSHM_OWNER);
    CHECK(f != NULL);
    CHECK(fputs("abc", f) >= 0 && fflush(f) == 0);
    o = opts(0, 0, FSHM_RING_LOSSY);
    o.check_owner = 1;
    o.owner_uid = geteuid() + 1;
    CHECK_ERR(fshm_open_ex(name, 0, FSHM_GUEST, &o) == NULL, EPERM);
    CHECK_ERR(fshm_open_ex(name, 0, FSHM_GUEST | FSHM_APPEND, &o) == NULL, EPERM);
    CHECK_ERR(fshm_open_ex(name, 0, FSHM_GUEST | FSHM_RDONLY, &o) == NULL, EPERM);
    /* check_owner 0: owner_uid is not looked at. */
    o.check_owner = 0;
    g = fshm_open_ex(name, 0, FSHM_GUEST, &o);
    CHECK(g != NULL);
    CHECK(fclose(g) == 0);
    o.check_owner = 1;
    o.owner_uid = geteuid();
    g = fshm_open_ex(name, 0, FSHM_GUEST | FSHM_APPEND, &o);
    CHECK(g != NULL);
    CHECK(fputs("def", g) >= 0 && fclose(g) == 0);
    CHECK(t_read_all(name, buf, sizeof buf) == 6 && strcmp(buf, "abcdef") == 0);
    CHECK(fclose(f) == 0);
    CHECK(!t_exists(name));
}

static void struct_sizes(void)
{
    struct fshm_options_v1 v1;
    struct {
        struct fshm_options o;
        unsigned long long later; /* a field of a later shmfile.h */
    } later;
    FILE *f;
    /* The first struct: accepted (a ring made through it). */
    memset(&v1, 0, sizeof v1);
    v1.size = sizeof v1;
    v1.ring_capacity = (unsigned long long)sysconf(_SC_PAGESIZE);
    v1.ring_policy = FSHM_RING_LOSSY;
    f = fshm_open_ex(name, 0600, FSHM_OWNER, (const struct fshm_options *)&v1);
    CHECK(f != NULL);
    CHECK(fclose(f) == 0);
    CHECK(!t_exists(name));
    /* A size between versions, or short of the first: EINVAL. */
    v1.size = sizeof v1 - 1;
    CHECK_ERR(fshm_open_ex(name, 0600, FSHM_OWNER, (const struct fshm_options *)&v1) == NULL,
              EINVAL);
    /* A later struct whose unknown field is zero: accepted; set: EINVAL, as this
     * library cannot honour it. */
    memset(&later, 0, sizeof later);
    later.o.size = sizeof later;
    f = fshm_open_ex(name, 0600, FSHM_OWNER, &later.o);
    CHECK(f != NULL);
    CHECK(fclose(f) == 0);
    later.later = 1;
    CHECK_ERR(fshm_open_ex(name, 0600, FSHM_OWNER, &later.o) == NULL, EINVAL);
    CHECK(!t_exists(name));
}

int main(void)
{
    struct fshm_options o;
    unsigned long long lost = 99;
    long page = sysconf(_SC_PAGESIZE);
    FILE *f, *g, *tmp;
    static char buf[1 << 16];
    size_t n;

    t_init();
    t_name(name, sizeof name, "opts");

    /* Bad options: EINVAL, nothing created. */
    o = opts(0, 0, FSHM_RING_LOSSY);
    o.size = sizeof o - 1;
    CHECK_ERR(fshm_open_ex(name, 0600, FSHM_OWNER, &o) == NULL, EINVAL);
    o = opts(0, (unsigned long long)page, 7);
    CHECK_ERR(fshm_open_ex(name, 0600, FSHM_OWNER, &o) == NULL, EINVAL);
    o = opts(0, (unsigned long long)page + 1, FSHM_RING_LOSSY);
    CHECK_ERR(fshm_open_ex(name, 0600, FSHM_OWNER, &o) == NULL, EINVAL);
    /* A bad policy is EINVAL on a linear stream too (the policy is unused there). */
    o = opts(0, 0, -1);
    CHECK_ERR(fshm_open_ex(name, 0600, FSHM_OWNER, &o) == NULL, EINVAL);
    o = opts(1 << 20, 0, 2);
    CHECK_ERR(fshm_open_ex(name, 0600, FSHM_OWNER, &o) == NULL, EINVAL);
    o = opts(0, 0, FSHM_RING_LOSSY);
    CHECK_ERR(fshm_open_ex(NULL, 0600, FSHM_OWNER, &o) == NULL, EINVAL);
    CHECK_ERR(fshm_open_ex(name, 0600, FSHM_OWNER | (1 << 20), &o) == NULL, EINVAL);
    CHECK(!t_exists(name));

    /* NULL options: as fshm_open. Ring/size options on a guest: EINVAL. */
    f = fshm_open_ex(name, 0600, FSHM_OWNER, NULL);
    CHECK(f != NULL);
    o = opts(1 << 20, 0, FSHM_RING_LOSSY);
    CHECK_ERR(fshm_open_ex(name, 0, FSHM_GUEST, &o) == NULL, EINVAL);
    g = fshm_open_ex(name, 0, FSHM_GUEST, NULL);
    CHECK(g != NULL);
    CHECK(fshm_lost_bytes(g, &lost) == 0 && lost == 0);
    CHECK(fclose(g) == 0);
    CHECK(fclose(f) == 0);
    CHECK(!t_exists(name));

    /* fshm_lost_bytes argument checks. */
    tmp = tmpfile();
    CHECK(tmp != NULL);
    CHECK_ERR(fshm_lost_bytes(NULL, &lost) == -1, EINVAL);
    CHECK_ERR(fshm_lost_bytes(tmp, &lost) == -1, EBADF);
    CHECK(fclose(tmp) == 0);

    /* A small maximum: a write past it fails with EFBIG (the stream keeps what fit). */
    o = opts((unsigned long long)page, 0, FSHM_RING_LOSSY);
    f = fshm_open_ex(name, 0600, FSHM_OWNER, &o);
    CHECK(f != NULL);
    memset(buf, 'm', sizeof buf);
    errno = 0;
    n = fwrite(buf, 1, (size_t)page + 100, f);
    CHECK(n < (size_t)page + 100 || fflush(f) == EOF);
    CHECK(errno == EFBIG);
    CHECK(fclose(f) == 0);
    CHECK(!t_exists(name));

    /* A lossy ring of one page: a reader overrun by the writer gets ENOBUFS. */
    o = opts(0, (unsigned long long)page, FSHM_RING_LOSSY);
    f = fshm_open_ex(name, 0600, FSHM_OWNER, &o);
    CHECK(f != NULL);
    g = fshm_open(name, 0, FSHM_GUEST | FSHM_RDONLY);
    CHECK(g != NULL);
    memset(buf, 'r', (size_t)page * 3);
    CHECK(fwrite(buf, 1, (size_t)page * 3, f) == (size_t)page * 3 && fflush(f) == 0);
    errno = 0;
    n = fread(buf, 1, (size_t)page, g);
    CHECKF(n == 0 && ferror(g) && errno == ENOBUFS, "overrun read gave %zu", n);
    CHECK(fshm_lost_bytes(g, &lost) == 0);
    CHECKF(lost >= (unsigned long long)page, "lost %llu", lost);
    clearerr(g);
    n = fread(buf, 1, sizeof buf, g);
    CHECKF(n > 0 && n <= (size_t)page && buf[0] == 'r', "after clearerr read %zu", n);
    /* Past the ring's end: EINVAL, and ftell still tells the same position. */
    {
        long at = ftell(g), end = ftell(f);
        CHECK(at > 0 && end == (long)page * 3);
        CHECK_ERR(fseek(g, LONG_MAX, SEEK_END) == -1, EINVAL);
        CHECK(ftell(g) == at);
        CHECK_ERR(fseek(f, LONG_MAX, SEEK_END) == -1, EINVAL);
        CHECK(ftell(f) == end);
        CHECK_ERR(fseek(g, 1, SEEK_END) == -1, EINVAL);
        CHECK(ftell(g) == at);
        CHECK(fseek(g, 0, SEEK_END) == 0 && ftell(g) == end);
    }
    CHECK(fclose(g) == 0);
    CHECK(fclose(f) == 0);
    CHECK(!t_exists(name));

    each_side_refuses_the_others_options();
    check_owner();
    struct_sizes();

    t_cleanup();
    printf("test_options: ok\n");
    return 0;
}
