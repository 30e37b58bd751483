/*
 * test_errors.c — every errno case of shmfile.h changes nothing and prints nothing:
 * EINVAL (names, flags, modes, NULL FILE*), EBADF (foreign FILE*, writes through a
 * read-only guest), EEXIST, ENOENT, EPROTO; plus shmfile_get_version (which
 * agrees with the header's SHMFILE_VERSION_* macros) and
 * _fshm_printCopyrightVersion.
 */
#include "common.h"

static char name[300];

/* The five FILE* functions on `f` all fail with `err`. */
static void file_fns_fail(FILE *f, int err)
{
    CHECK_ERR(fshm_chmod(f, 0600) == -1, err);
    CHECK_ERR(fshm_chgrp(f, getgid()) == -1, err);
    CHECK_ERR(fshm_wait(f, 0) == -1, err);
    CHECK_ERR(fshm_sync(f) == -1, err);
    CHECK_ERR(fshm_owner_state(f) == -1, err);
}

static void bad_names(void)
{
    char long_name[300];
    char max_name[300];
    const char *bad[] = {"", "/", ".", "..", "/.", "/..", "/a//b", "a/./b", "/a/", "//a"};
    size_t i;
    FILE *f;

    /* 256 characters after the slash: one past NAME_MAX. */
    snprintf(long_name, sizeof long_name, "/fshm-ct-long-%d-", (int)getpid());
    memset(long_name + strlen(long_name), 'x', 257 - strlen(long_name));
    long_name[257] = 0;
    CHECK(strlen(long_name) == 257);

    CHECK_ERR(fshm_open(NULL, 0600, FSHM_OWNER) == NULL, EINVAL);
    CHECK_ERR(fshm_open(NULL, 0, FSHM_GUEST) == NULL, EINVAL);
    CHECK_ERR(fshm_create(NULL, 0600) == NULL, EINVAL);
    CHECK_ERR(fshm_guest_open(NULL) == NULL, EINVAL);
    CHECK_ERR(fshm_force_destroy(NULL) == -1, EINVAL);
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECKF(fshm_create(bad[i], 0600) == NULL && errno == EINVAL,
               "fshm_create(\"%s\") should fail with EINVAL", bad[i]);
        CHECKF(fshm_guest_open(bad[i]) == NULL && errno == EINVAL,
               "fshm_guest_open(\"%s\") should fail with EINVAL", bad[i]);
        CHECKF(fshm_force_destroy(bad[i]) == -1 && errno == EINVAL,
               "fshm_force_destroy(\"%s\") should fail with EINVAL", bad[i]);
    }
    CHECK(!t_exists("/a"));
    CHECK_ERR(fshm_create(long_name, 0600) == NULL, EINVAL);
    CHECK_ERR(fshm_guest_open(long_name) == NULL, EINVAL);
    CHECK_ERR(fshm_force_destroy(long_name) == -1, EINVAL);
    long_name[256] = 0; /* 255 after the slash: the longest valid name */
    snprintf(max_name, sizeof max_name, "%s", long_name);
    snprintf(t_names[t_nnames++], sizeof t_names[0], "%s", max_name);
    f = fshm_create(max_name, 0600);
    CHECKF(f != NULL, "a 255-character name is valid");
    CHECK(fclose(f) == 0);
    CHECK(!t_exists(max_name));
}

static void bad_flags_and_modes(void)
{
    t_name(name, sizeof name, "flags");
    CHECK_ERR(fshm_open(name, 0600, 0) == NULL, EINVAL);
    CHECK_ERR(fshm_open(name, 0600, FSHM_PERSIST) == NULL, EINVAL);
    CHECK_ERR(fshm_open(name, 0600, FSHM_OWNER | FSHM_GUEST) == NULL, EINVAL);
    CHECK_ERR(fshm_open(name, 0600, FSHM_OWNER | (1 << 20)) == NULL, EINVAL);
    CHECK_ERR(fshm_open(name, 0600, FSHM_OWNER | 256) == NULL, EINVAL);
    CHECK_ERR(fshm_open(name, 0600, FSHM_OWNER | (int)0x80000000u) == NULL, EINVAL);
    CHECK_ERR(fshm_open(name, 0600, FSHM_OWNER | FSHM_RDONLY) == NULL, EINVAL);
    CHECK_ERR(fshm_open(name, 010000, FSHM_OWNER) == NULL, EINVAL);
    CHECK_ERR(fshm_open(name, 0170600, FSHM_OWNER) == NULL, EINVAL);
    CHECK_ERR(fshm_create(name, 010000) == NULL, EINVAL);
    CHECK(!t_exists(name));
    /* Guest-side flag errors on an existing stream change nothing either. */
    {
        FILE *o = fshm_open(name, 0600, FSHM_OWNER);
        struct stat before, after;
        CHECK(o != NULL);
        CHECK(fwrite("abc", 1, 3, o) == 3 && fflush(o) == 0);
        CHECK(t_fstat(o, name, &before) == 0);
        CHECK_ERR(fshm_open(name, 0, FSHM_GUEST | FSHM_RECLAIM) == NULL, EINVAL);
        CHECK_ERR(fshm_open(name, 0, FSHM_GUEST | (1 << 20)) == NULL, EINVAL);
        CHECK_ERR(fshm_open(name, 0, FSHM_GUEST | FSHM_OWNER) == NULL, EINVAL);
        CHECK_ERR(fshm_chmod(o, 010000) == -1, EINVAL);
        CHECK(t_fstat(o, name, &after) == 0);
        CHECK(before.st_mode == after.st_mode && after.st_size == before.st_size);
        CHECK(fshm_owner_state(o) == FSHM_OWNER_ALIVE);
        CHECK(fclose(o) == 0);
    }
    CHECK(!t_exists(name));
}

static void bad_files(void)
{
    FILE *devnull = fopen("/dev/null", "r+");
    FILE *tmp = tmpfile();
    CHECK(devnull != NULL && tmp != NULL);
    file_fns_fail(NULL, EINVAL);
    file_fns_fail(devnull, EBADF);
    file_fns_fail(tmp, EBADF);
    file_fns_fail(stdout, EBADF);
    CHECK(fclose(devnull) == 0);
    CHECK(fclose(tmp) == 0);
}

static void exists_missing_proto(void)
{
    FILE *o;
    char buf[64];
    int fd;

    /* EEXIST: a second owner; the first keeps working. */
    t_name(name, sizeof name, "exist");
    o = fshm_create(name, 0600);
    CHECK(o != NULL);
    CHECK(fputs("first", o) >= 0 && fflush(o) == 0);
    CHECK_ERR(fshm_create(name, 0600) == NULL, EEXIST);
    CHECK_ERR(fshm_open(name, 0600, FSHM_OWNER | FSHM_PERSIST) == NULL, EEXIST);
    CHECK_ERR(fshm_open(name, 0600, FSHM_OWNER | FSHM_RECLAIM) == NULL, EEXIST);
    CHECK(t_read_all(name, buf, sizeof buf) == 5 && strcmp(buf, "first") == 0);
    CHECK(fclose(o) == 0);

    /* ENOENT: a guest of a missing name, force_destroy of a missing name. */
    CHECK(!t_exists(name));
    CHECK_ERR(fshm_guest_open(name) == NULL, ENOENT);
    CHECK_ERR(fshm_open(name, 0, FSHM_GUEST | FSHM_RDONLY) == NULL, ENOENT);
    CHECK_ERR(fshm_force_destroy(name) == -1, ENOENT);
    CHECK(!t_exists(name));

    /* EPROTO: a plain shm object with garbage in it, and an empty one. Neither is
     * removed or changed, not even by an owner with FSHM_RECLAIM. */
    t_name(name, sizeof name, "proto");
    fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    CHECK(fd >= 0);
    {
        unsigned char junk[8192];
        struct stat st;
        memset(junk, 0xa5, sizeof junk);
        CHECK(ftruncate(fd, sizeof junk) == 0);
        CHECK(pwrite(fd, junk, sizeof junk, 0) == (ssize_t)sizeof junk);
        CHECK_ERR(fshm_guest_open(name) == NULL, EPROTO);
        CHECK_ERR(fshm_open(name, 0, FSHM_GUEST | FSHM_RDONLY) == NULL, EPROTO);
        CHECK_ERR(fshm_create(name, 0600) == NULL, EEXIST);
        CHECK_ERR(fshm_open(name, 0600, FSHM_OWNER | FSHM_RECLAIM) == NULL, EEXIST);
        CHECK(fstat(fd, &st) == 0 && st.st_size == (off_t)sizeof junk);
        CHECK(t_exists(name));
        CHECK(pread(fd, junk, sizeof junk, 0) == (ssize_t)sizeof junk);
        CHECK(junk[0] == 0xa5 && junk[sizeof junk - 1] == 0xa5);
        /* Empty object: no header, no owner setting one up. */
        CHECK(ftruncate(fd, 0) == 0);
        CHECK_ERR(fshm_guest_open(name) == NULL, EPROTO);
        CHECK(t_exists(name));
    }
    CHECK(close(fd) == 0);
    CHECK(fshm_force_destroy(name) == 0);
    CHECK(!t_exists(name));
}

/* A read-only guest's writes fail with EBADF, through the FILE* and the fd. */
static void read_only_guest(void)
{
    FILE *o, *g;
    char buf[64];
    size_t w;
    t_name(name, sizeof name, "rdonly");
    o = fshm_create(name, 0666);
    CHECK(o != NULL);
    CHECK(fputs("data", o) >= 0 && fflush(o) == 0);
    g = fshm_open(name, 0, FSHM_GUEST | FSHM_RDONLY);
    CHECK(g != NULL);
    if (T_HAVE_FILENO)
        CHECK((fcntl(fileno(g), F_GETFL) & O_ACCMODE) == O_RDONLY);
    else
        t_no_fileno(g);
    errno = 0;
    w = fwrite("XY", 1, 2, g);
    CHECK(w < 2 || fflush(g) == EOF);
#ifdef __GLIBC__
    CHECK(errno == EBADF);
#else
    /* musl refuses a write to a FILE opened "r" itself: ferror, errno untouched. */
    CHECK(w == 0 && ferror(g));
#endif
    clearerr(g);
    CHECK_ERR(write(fileno(g), "XY", 2) == -1, EBADF); /* musl: fileno is -1 */
    CHECK(fread(buf, 1, sizeof buf, g) == 4 && memcmp(buf, "data", 4) == 0);
    CHECK(fclose(g) == 0);
    CHECK(t_read_all(name, buf, sizeof buf) == 4 && strcmp(buf, "data") == 0);
    CHECK(fclose(o) == 0);
}

static void version(void)
{
    unsigned char a = 9, b = 9, c = 9;
    const char *extra = NULL;
    shmfile_get_version(&a, &b, &c, &extra);
    CHECK(a == 1 && b == 2 && c == 0);
    CHECK(extra != NULL && strcmp(extra, "fshm") == 0);
    shmfile_get_version(NULL, NULL, NULL, NULL);
    a = b = c = 9;
    shmfile_get_version(NULL, &b, NULL, NULL);
    CHECK(b == 2 && a == 9 && c == 9);
    shmfile_get_version(&a, NULL, &c, NULL);
    CHECK(a == 1 && c == 0);
    extra = NULL;
    shmfile_get_version(NULL, NULL, NULL, &extra);
    CHECK(extra != NULL && strcmp(extra, "fshm") == 0);

    /* The header this program was compiled with and the library it runs with say
     * one version: the macros, the single number and the string agree with it. */
    shmfile_get_version(&a, &b, &c, NULL);
    CHECKF(a == SHMFILE_VERSION_MAJOR && b == SHMFILE_VERSION_MINOR &&
               c == SHMFILE_VERSION_PATCH,
           "library %u.%u.%u, header %d.%d.%d", a, b, c, SHMFILE_VERSION_MAJOR,
           SHMFILE_VERSION_MINOR, SHMFILE_VERSION_PATCH);
    CHECK(SHMFILE_VERSION_NUMBER == a * 10000 + b * 100 + c);
    {
        char s[16];
        snprintf(s, sizeof s, "%u.%u.%u", a, b, c);
        CHECK(strcmp(s, SHMFILE_VERSION_STRING) == 0);
    }
#if SHMFILE_VERSION_NUMBER < 10200
#error "SHMFILE_VERSION_NUMBER must be usable in #if"
#endif
}

/* _fshm_printCopyrightVersion writes one line to stdout, in order with printf. */
static void copyright(void)
{
    int p[2], saved;
    char buf[1024];
    ssize_t n;
    t_pipe(p);
    CHECK(fflush(stdout) == 0);
    saved = dup(1);
    CHECK(saved >= 0 && dup2(p[1], 1) == 1);
    printf("before|");
    _fshm_printCopyrightVersion();
    printf("|after");
    fflush(stdout);
    CHECK(dup2(saved, 1) == 1);
    close(saved);
    close(p[1]);
    n = read(p[0], buf, sizeof buf - 1);
    close(p[0]);
    CHECK(n > 0);
    buf[n] = 0;
    CHECKF(strncmp(buf, "before|shmfile 1.2.0", 20) == 0, "printed: %s", buf);
    CHECKF(strstr(buf, "fshm") != NULL, "printed: %s", buf);
    CHECKF(strstr(buf, "\n|after") != NULL, "printed: %s", buf);
    CHECKF(strlen(buf) == (size_t)n, "printed a NUL: %s", buf);
}

int main(void)
{
    int p[2], saved;
    char buf[512];
    ssize_t n;
    t_init();

    /* Everything that fails must print nothing: collect stderr meanwhile. */
    t_pipe(p);
    CHECK(fcntl(p[0], F_SETFL, O_NONBLOCK) == 0);
    fflush(stderr);
    saved = dup(2);
    CHECK(saved >= 0 && dup2(p[1], 2) == 2);
    bad_names();
    bad_flags_and_modes();
    bad_files();
    exists_missing_proto();
    read_only_guest();
    fflush(stderr);
    CHECK(dup2(saved, 2) == 2);
    close(saved);
    close(p[1]);
    n = read(p[0], buf, sizeof buf - 1);
    close(p[0]);
    CHECKF(n <= 0, "the library printed to stderr: %.*s", (int)n, buf);

    version();
    copyright();
    t_cleanup();
    printf("test_errors: ok\n");
    return 0;
}
