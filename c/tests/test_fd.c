/*
 * test_fd.c — fileno(f) is the stream's real shm fd: fstat shows a regular shm
 * object of the exact mode; fclose closes it (shmfile 1.1.0 leaked it). Mixed use
 * of write(2)/read(2) on fileno(f) and fwrite/fseek/fread on f stays coherent and
 * ends up with the same bytes as the same calls on a plain file. All that needs
 * glibc, where fileno() is made the stream's fd; elsewhere (musl) a cookie FILE has
 * no fd, and the test checks that fileno says so (EBADF) and that the FILE* works on.
 */
#include "common.h"

static char name[300];

/* The sequence of mixed fd / FILE* calls, run on a stream and on a plain file. */
static void mixed_sequence(FILE *f)
{
    int fd = fileno(f);
    CHECK(write(fd, "0123456789", 10) == 10);
    CHECK(fseek(f, 0, SEEK_END) == 0);
    CHECK(ftell(f) == 10);
    CHECK(fwrite("abc", 1, 3, f) == 3);
    CHECK(fflush(f) == 0);
    CHECK(write(fd, "XYZ", 3) == 3);
    CHECK(fseek(f, 4, SEEK_SET) == 0);
    CHECK(fwrite("__", 1, 2, f) == 2);
    CHECK(fflush(f) == 0);
    /* The fd continues where the FILE* left off. */
    CHECK(write(fd, "+", 1) == 1);
    CHECK(fseek(f, 0, SEEK_END) == 0);
    CHECK(fwrite("!", 1, 1, f) == 1);
    CHECK(fflush(f) == 0);
    CHECK(write(fd, "tail", 4) == 4);
}

static void fileno_is_real(void)
{
    FILE *f;
    int fd;
    struct stat st;
    mode_t old = umask(077);

    t_name(name, sizeof name, "fileno");
    f = fshm_create(name, 0664);
    umask(old);
    CHECK(f != NULL);
    fd = fileno(f);
    CHECK(fd > 2);
    CHECK(fcntl(fd, F_GETFD) != -1);
    CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    CHECK((fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDWR);
    CHECK(fstat(fd, &st) == 0);
    CHECK(S_ISREG(st.st_mode));
    CHECKF((st.st_mode & 07777) == 0664, "mode %o despite umask 077",
           (unsigned)(st.st_mode & 07777));
    CHECK(st.st_uid == geteuid());
    CHECK(st.st_size >= 4096);
    CHECK(fshm_chmod(f, 0640) == 0);
    CHECK(fstat(fd, &st) == 0 && (st.st_mode & 07777) == 0640);
    CHECK(fshm_chgrp(f, getegid()) == 0);
    CHECK(fstat(fd, &st) == 0 && st.st_gid == getegid());
    {
        /* The same object as the name. */
        struct stat by_name;
        char path[400];
        snprintf(path, sizeof path, "/dev/shm%s", name);
        CHECK(stat(path, &by_name) == 0);
        CHECK(by_name.st_ino == st.st_ino && by_name.st_dev == st.st_dev);
    }
    CHECK(fclose(f) == 0);
    errno = 0;
    CHECKF(fcntl(fd, F_GETFD) == -1 && errno == EBADF, "fclose left fd %d open", fd);
    CHECK(!t_exists(name));

    /* A guest's fd is closed by fclose too, and the name stays. */
    f = fshm_create(name, 0600);
    CHECK(f != NULL);
    {
        FILE *g = fshm_guest_open(name);
        int gfd;
        CHECK(g != NULL);
        gfd = fileno(g);
        CHECK(gfd >= 0 && gfd != fileno(f));
        CHECK(fclose(g) == 0);
        errno = 0;
        CHECK(fcntl(gfd, F_GETFD) == -1 && errno == EBADF);
        CHECK(t_exists(name));
    }
    CHECK(fclose(f) == 0);
    CHECK(!t_exists(name));
}

static void mixed_fd_and_file(int sync_with_fclose)
{
    char expect[128], got[128], tmpl[] = "/tmp/fshm-ct-plainXXXXXX";
    FILE *f, *plain;
    int pfd;
    ssize_t n;
    size_t m;

    /* The reference: the same calls on a plain file. */
    pfd = mkstemp(tmpl);
    CHECK(pfd >= 0);
    plain = fdopen(pfd, "r+");
    CHECK(plain != NULL);
    unlink(tmpl);
    mixed_sequence(plain);
    CHECK(fflush(plain) == 0);
    n = pread(pfd, expect, sizeof expect - 1, 0);
    CHECK(n > 0);
    expect[n] = 0;
    CHECK(fclose(plain) == 0);
    CHECKF(strcmp(expect, "0123__+789abcXYZ!tail") == 0, "plain file: %s", expect);

    t_name(name, sizeof name, "mixed");
    f = fshm_open(name, 0600, FSHM_OWNER | FSHM_PERSIST);
    CHECK(f != NULL);
    mixed_sequence(f);
    if (sync_with_fclose) {
        CHECK(fclose(f) == 0);
        f = NULL;
    } else {
        CHECK(fshm_sync(f) == 0);
    }
    m = t_read_all(name, got, sizeof got);
    CHECKF(m == (size_t)n && strcmp(got, expect) == 0, "stream holds \"%s\", want \"%s\"",
           got, expect);
    if (f != NULL) {
        /* fshm_sync did not move the position: more writes go on at the end. */
        CHECK(ftell(f) == n);
        CHECK(fclose(f) == 0);
    }
    CHECK(t_exists(name)); /* FSHM_PERSIST */
    CHECK(fshm_force_destroy(name) == 0);
    CHECK(!t_exists(name));
}

/* Appends one observation to log. */
static void note(char *log, size_t size, const char *what, long v)
{
    size_t n = strlen(log);
    snprintf(log + n, size - n, "%s=%ld ", what, v);
}

/* Mixed positioning calls on f (already holding a..z), observed into log. As POSIX
 * asks when switching from the FILE* to its fd, an fflush follows each fseek. */
static void positions(FILE *f, char *log, size_t size)
{
    int fd = fileno(f), i;
    char c, buf[16];
    log[0] = 0;
    for (i = 25; i >= 0; i -= 3) {
        CHECK(fseek(f, i, SEEK_SET) == 0);
        CHECK(fflush(f) == 0);
        CHECK(read(fd, &c, 1) == 1);
        CHECKF(c == 'a' + i, "after fseek(%d), read(fileno) gave '%c'", i, c);
        note(log, size, "byte", c);
        note(log, size, "ftell", ftell(f));
    }
    CHECK(fseek(f, -2, SEEK_END) == 0);
    CHECK(fflush(f) == 0);
    /* Only read within the length: the fd sees the whole object, whose size is
     * page-granular, so read(2) past the length gives zeros, not end-of-file. */
    CHECK(read(fd, buf, 2) == 2 && memcmp(buf, "yz", 2) == 0);
    note(log, size, "ftell_at_end", ftell(f));
    CHECK(fseek(f, 3, SEEK_SET) == 0);
    CHECK(fflush(f) == 0);
    CHECK(write(fd, "DEF", 3) == 3);
    note(log, size, "ftell_after_write", ftell(f));
    CHECK(fread(buf, 1, 3, f) == 3);
    note(log, size, "fread", buf[0]);
    rewind(f);
    CHECK(fread(buf, 1, 6, f) == 6);
    CHECKF(memcmp(buf, "abcDEF", 6) == 0, "stream starts with %.6s", buf);
    CHECK(fseek(f, 0, SEEK_END) == 0);
    CHECK(fflush(f) == 0);
    CHECK(write(fd, "0123", 4) == 4);
    note(log, size, "ftell_after_append", ftell(f));
}

/* After fseek(f, N) + fflush, read(fileno(f)) returns the byte at N; after write(fd),
 * ftell counts the bytes written; all as on a plain file. */
static void positions_agree(void)
{
    FILE *f, *g, *plain;
    char c, buf[16], want[1024], got[1024];
    t_name(name, sizeof name, "pos");

    plain = tmpfile();
    CHECK(plain != NULL);
    CHECK(fputs("abcdefghijklmnopqrstuvwxyz", plain) >= 0);
    positions(plain, want, sizeof want);
    CHECK(fclose(plain) == 0);

    f = fshm_create(name, 0600);
    CHECK(f != NULL);
    CHECK(fputs("abcdefghijklmnopqrstuvwxyz", f) >= 0);
    positions(f, got, sizeof got);
    CHECKF(strcmp(want, got) == 0, "stream: %s\nplain file: %s", got, want);

    /* A guest's own fd and FILE* agree the same way, independently of the owner. */
    g = fshm_guest_open(name);
    CHECK(g != NULL);
    CHECK(fseek(g, 10, SEEK_SET) == 0);
    CHECK(fflush(g) == 0);
    CHECK(read(fileno(g), &c, 1) == 1 && c == 'k');
    CHECK(fread(&c, 1, 1, g) == 1 && c == 'l');
    CHECK(fclose(g) == 0);

    /* The fd's writes past the end (by positions()) joined the length at ftell, and
     * other handles see them. */
    g = fshm_guest_open(name);
    CHECK(g != NULL);
    CHECK(fseek(g, 0, SEEK_END) == 0 && ftell(g) == 30);
    CHECK(fseek(g, 26, SEEK_SET) == 0);
    CHECK(fread(buf, 1, sizeof buf, g) == 4 && memcmp(buf, "0123", 4) == 0);
    CHECK(fclose(g) == 0);
    CHECK(fclose(f) == 0);
}

/* Off glibc: fileno fails with EBADF on an owner's and a guest's FILE*, which go on
 * working. */
static void no_fileno(void)
{
    FILE *f, *g;
    char buf[8];
    t_name(name, sizeof name, "nofileno");
    f = fshm_create(name, 0600);
    CHECK(f != NULL);
    g = fshm_guest_open(name);
    CHECK(g != NULL);
    t_no_fileno(f);
    t_no_fileno(g);
    CHECK(fwrite("abc", 1, 3, f) == 3 && fflush(f) == 0 && !ferror(f));
    CHECK(fread(buf, 1, sizeof buf, g) == 3 && memcmp(buf, "abc", 3) == 0 && !ferror(g));
    CHECK(fclose(g) == 0);
    CHECK(fclose(f) == 0);
    CHECK(!t_exists(name));
    printf("skipped: fd tests: fileno() has no fd to give here (checked: EBADF)\n");
}

int main(void)
{
    t_init();
    if (!T_HAVE_FILENO) {
        no_fileno();
        t_cleanup();
        printf("test_fd: ok\n");
        return 0;
    }
    fileno_is_real();
    mixed_fd_and_file(0);
    mixed_fd_and_file(1);
    positions_agree();
    t_cleanup();
    printf("test_fd: ok\n");
    return 0;
}
