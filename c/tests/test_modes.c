/*
 * test_modes.c — mode bits as an unprivileged process sees them. A forked child
 * drops to uid/gid 65534 and opens as a guest: 0644 gives a read-only guest (its
 * writes fail with EBADF through the FILE* and the fd), 0600 gives EACCES, 0666 a
 * read-write guest; fshm_chmod and fshm_chgrp change what a later guest gets; the
 * owner's mode is applied exactly whatever the umask. Needs root to switch users;
 * without it, only the exact-mode part runs.
 */
#include "common.h"
#include <grp.h>

static char name[300];

enum expect { RW, RO, DENIED };

static void as_nobody(enum expect expect, const char *contents)
{
    pid_t pid = t_fork();
    if (pid == 0) {
        FILE *g;
        char buf[256];
        size_t n;
        CHECK(setgroups(0, NULL) == 0);
        CHECK(setgid(65534) == 0);
        CHECK(setuid(65534) == 0);
        CHECK(getuid() == 65534 && geteuid() == 65534);
        errno = 0;
        g = fshm_guest_open(name);
        if (expect == DENIED) {
            CHECKF(g == NULL && errno == EACCES, "want EACCES, got %p", (void *)g);
            CHECK_ERR(fshm_open(name, 0, FSHM_GUEST | FSHM_RDONLY) == NULL, EACCES);
            t_child_exit(0);
        }
        CHECK(g != NULL);
        n = fread(buf, 1, sizeof buf - 1, g);
        buf[n] = 0;
        CHECKF(strcmp(buf, contents) == 0, "read \"%s\", want \"%s\"", buf, contents);
        clearerr(g);
        if (expect == RO) {
            size_t w;
            if (T_HAVE_FILENO)
                CHECK((fcntl(fileno(g), F_GETFL) & O_ACCMODE) == O_RDONLY);
            else
                t_no_fileno(g);
            errno = 0;
            w = fwrite("nobody", 1, 6, g);
            CHECK(w < 6 || fflush(g) == EOF);
#ifdef __GLIBC__
            CHECK(errno == EBADF);
#else
            /* musl refuses a write to a FILE opened "r" itself, errno untouched. */
            CHECK(w == 0 && ferror(g));
#endif
            CHECK_ERR(write(fileno(g), "nobody", 6) == -1, EBADF); /* musl: fd -1 */
            CHECK_ERR(fshm_chmod(g, 0666) == -1, EPERM);
        } else {
            if (T_HAVE_FILENO)
                CHECK((fcntl(fileno(g), F_GETFL) & O_ACCMODE) == O_RDWR);
            else
                t_no_fileno(g);
            CHECK(fputs("+nobody", g) >= 0);
            CHECK(fflush(g) == 0);
        }
        CHECK(fclose(g) == 0);
        t_child_exit(0);
    }
    t_wait_ok(pid, expect == RW ? "read-write nobody" : expect == RO ? "read-only nobody"
                                                                    : "denied nobody");
}

static mode_t mode_of(FILE *f)
{
    struct stat st;
    CHECK(t_fstat(f, name, &st) == 0);
    return st.st_mode & 07777;
}

static void exact_modes(void)
{
    static const mode_t modes[] = {0, 0400, 0604, 0640, 0666, 0777, 01777, 02755, 07777};
    size_t i;
    mode_t old = umask(077);
    for (i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        FILE *f;
        /* Without CAP_FSETID the kernel clears S_ISUID, and S_ISGID with group
         * execute, on the header's write, so those modes are exact only for root. */
        if (geteuid() != 0 && (modes[i] & (S_ISUID | S_ISGID)) != 0) {
            printf("skipped: mode %o needs root (without it the kernel clears set-id bits on "
                   "write)\n", (unsigned)modes[i]);
            continue;
        }
        t_name(name, sizeof name, "exact");
        f = fshm_create(name, modes[i]);
        CHECKF(f != NULL, "create with mode %o", (unsigned)modes[i]);
        CHECKF(mode_of(f) == modes[i], "mode %o, want %o", (unsigned)mode_of(f),
               (unsigned)modes[i]);
        CHECK(fshm_chmod(f, 0) == 0 && mode_of(f) == 0);
        CHECK(fshm_chmod(f, modes[i]) == 0 && mode_of(f) == modes[i]);
        CHECK(fclose(f) == 0);
    }
    umask(old);
}

int main(void)
{
    FILE *o;
    char buf[256];

    t_init();
    exact_modes();
    if (geteuid() != 0) {
        printf("skipped: the unprivileged-guest part needs root to switch users\n");
        t_cleanup();
        return 0;
    }
    umask(077);
    t_name(name, sizeof name, "modes");
    o = fshm_create(name, 0644);
    CHECK(o != NULL);
    CHECK(mode_of(o) == 0644);
    CHECK(fputs("secret", o) >= 0 && fflush(o) == 0);
    as_nobody(RO, "secret");

    CHECK(fshm_chmod(o, 0600) == 0);
    as_nobody(DENIED, "");

    CHECK(fshm_chmod(o, 0666) == 0);
    as_nobody(RW, "secret");
    CHECK(t_read_all(name, buf, sizeof buf) == 13 && strcmp(buf, "secret+nobody") == 0);

    /* Group bits: group nobody may write, others nothing. */
    CHECK(fshm_chmod(o, 0660) == 0);
    as_nobody(DENIED, "");
    CHECK(fshm_chgrp(o, 65534) == 0);
    {
        struct stat st;
        CHECK(t_fstat(o, name, &st) == 0 && st.st_gid == 65534 && st.st_uid == 0);
    }
    as_nobody(RW, "secret+nobody");
    /* The group's bits decide for a member, even where others' would allow more. */
    CHECK(fshm_chmod(o, 0604) == 0);
    as_nobody(DENIED, "");
    CHECK(fshm_chmod(o, 0644) == 0);
    as_nobody(RO, "secret+nobody+nobody");

    CHECK(fclose(o) == 0);
    CHECK(!t_exists(name));
    t_cleanup();
    printf("test_modes: ok\n");
    return 0;
}
