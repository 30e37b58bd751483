/*
 * common.h — small helpers shared by the C test programs of libshmfile.
 *
 * Every program: unique stream names (with the pid), cleanup of every name it
 * registered on success and on failure, a clear message on failure (on stdout,
 * so that tests that capture stderr still show it), exit status 0 on success.
 * Children forked by a test report failure through their exit status (_exit),
 * and the parent cleans up. An alarm turns a hang into a failure.
 */
#ifndef FSHM_TEST_COMMON_H
#define FSHM_TEST_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shmfile.h"

/* Seconds before a hung test (or child) is killed by SIGALRM: 120, times the whole
 * number in FSHM_TEST_TIME_FACTOR for slow runs (qemu-user, valgrind). */
#define T_ALARM t_alarm_secs()

static inline unsigned t_alarm_secs(void)
{
    const char *f = getenv("FSHM_TEST_TIME_FACTOR");
    long k = f && *f ? strtol(f, NULL, 10) : 1;
    return 120u * (unsigned)(k >= 1 && k <= 100 ? k : 1);
}

static pid_t t_main_pid;
static char t_names[32][300];
static int t_nnames;

/* Ends a forked child, or a failed test, with `code` while streams may still be
 * open. A child that inherited its parent's open FILE*s cannot free them (fclose
 * would close the parent's stream), and valgrind's leak scan hangs on the mapped
 * window of a stream left open; so under valgrind (FSHM_VALGRIND=1) it leaves
 * through exec, which valgrind does not leak-check (it runs with
 * --trace-children=no); otherwise _exit. */
static inline void t_child_exit(int code)
{
    const char *v = getenv("FSHM_VALGRIND");
    if (v != NULL && strcmp(v, "1") == 0) {
        char cmd[32];
        snprintf(cmd, sizeof cmd, "exit %d", code);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
    }
    _exit(code);
}

/* Whether FILE*s run in the portable mode (no in-place refills or direct writes),
 * as the library decides it: off glibc on x86_64/aarch64 always, there when
 * FSHM_PORTABLE_FILE=1. */
static inline int t_portable_file(void)
{
#if defined(__GLIBC__) && (defined(__x86_64__) || defined(__aarch64__))
    const char *v = getenv("FSHM_PORTABLE_FILE");
    return v != NULL && strcmp(v, "1") == 0;
#else
    return 1;
#endif
}

/* Removes every name this program registered; errors (already gone) ignored. */
static inline void t_cleanup(void)
{
    int i;
    for (i = 0; i < t_nnames; i++)
        (void)fshm_force_destroy(t_names[i]);
}

static inline void t_fail(const char *file, int line, const char *fmt, ...)
{
    int saved = errno;
    va_list ap;
    printf("FAIL %s:%d (pid %d, errno %d = %s): ", file, line, (int)getpid(),
           saved, strerror(saved));
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    if (getpid() == t_main_pid)
        t_cleanup();
    /* Not exit(): streams are still open, and valgrind's leak scan of their mapped
     * windows (which reach past the objects' size) never ends. */
    t_child_exit(1);
}

#define CHECKF(cond, ...)                                                      \
    do {                                                                       \
        if (!(cond))                                                           \
            t_fail(__FILE__, __LINE__, __VA_ARGS__);                           \
    } while (0)
#define CHECK(cond) CHECKF(cond, "%s", "check `" #cond "` failed")
/* `call_fails` is true and errno is `err`. */
#define CHECK_ERR(call_fails, err)                                             \
    do {                                                                       \
        errno = 0;                                                             \
        if (!(call_fails))                                                     \
            t_fail(__FILE__, __LINE__, "`%s` did not fail", #call_fails);      \
        if (errno != (err))                                                    \
            t_fail(__FILE__, __LINE__, "`%s` failed with errno %d, want %s",   \
                   #call_fails, errno, #err);                                  \
    } while (0)

/* SIGALRM: the test hung. Say so, and (in the main process) remove its names. */
static void t_on_alarm(int sig)
{
    static const char msg[] = "FAIL: timed out (SIGALRM): a wait never ended\n";
    int i;
    (void)sig;
    if (write(1, msg, sizeof msg - 1) < 0) {
        /* nothing more to do */
    }
    if (getpid() == t_main_pid)
        for (i = 0; i < t_nnames; i++) {
            /* The stream's object and its lock object "<object>%lock.<key>", the
             * key (16 hex digits) read from the header at offset 72 (built with
             * async-signal-safe calls only; names here are short). */
            static const char hex[] = "0123456789abcdef";
            char path[sizeof t_names[0] + 16];
            char lock[sizeof t_names[0] + 32];
            unsigned long long key = 0;
            size_t n = strlen(t_names[i]);
            int fd, k;
            if (n + 9 + 1 <= sizeof path) {
                memcpy(path, "/dev/shm", 8);
                memcpy(path + 8, t_names[i], n + 1);
                fd = open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
                if (fd >= 0) {
                    if (pread(fd, &key, sizeof key, 72) != (ssize_t)sizeof key)
                        key = 0;
                    close(fd);
                }
            }
            shm_unlink(t_names[i]);
            if (key != 0 && n + 6 + 16 + 1 <= sizeof lock) {
                memcpy(lock, t_names[i], n);
                memcpy(lock + n, "%lock.", 6);
                for (k = 0; k < 16; k++)
                    lock[n + 6 + k] = hex[(key >> (60 - 4 * k)) & 0xf];
                lock[n + 6 + 16] = '\0';
                shm_unlink(lock);
            }
        }
    _exit(2);
}

static inline void t_init(void)
{
    struct sigaction sa;
    t_main_pid = getpid();
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = t_on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    alarm(T_ALARM);
}

/* Makes a unique name "/fshm-ct-<tag>-<pid>-<n>" in buf and registers it. */
static inline const char *t_name(char *buf, size_t size, const char *tag)
{
    static int counter;
    snprintf(buf, size, "/fshm-ct-%s-%d-%d", tag, (int)getpid(), counter++);
    CHECK(t_nnames < 32);
    snprintf(t_names[t_nnames++], sizeof t_names[0], "%s", buf);
    return buf;
}

/* Whether the shm name exists (without creating anything). */
static inline int t_exists(const char *name)
{
    int fd = shm_open(name, O_RDONLY, 0);
    if (fd >= 0) {
        close(fd);
        return 1;
    }
    CHECKF(errno == ENOENT || errno == EACCES, "shm_open(%s) probe", name);
    return errno == EACCES;
}

/* Whether fileno(f) of an fshm FILE* is the stream's fd: on glibc. A musl cookie
 * FILE has none (shmfile.h, FILE MODES); t_no_fileno checks that it says so. */
#ifdef __GLIBC__
#define T_HAVE_FILENO 1
#else
#define T_HAVE_FILENO 0
#endif

/* Checks that fileno(f) fails with EBADF (an fshm FILE* off glibc). */
static inline void t_no_fileno(FILE *f)
{
    int fd;
    errno = 0;
    fd = fileno(f);
    CHECKF(fd == -1 && errno == EBADF, "fileno gave %d (errno %d), want -1 with EBADF", fd,
           errno);
}

/* fstat of the shm object behind f, the stream `name`: through fileno(f) where that
 * is its fd, else (after checking that fileno fails) by the name under /dev/shm. */
static inline int t_fstat(FILE *f, const char *name, struct stat *st)
{
    char path[400];
    if (T_HAVE_FILENO)
        return fstat(fileno(f), st);
    t_no_fileno(f);
    snprintf(path, sizeof path, "/dev/shm%s", name);
    return stat(path, st);
}

/* Forks; the child gets its own alarm. stdio is flushed first so that nothing
 * buffered is written twice. */
static inline pid_t t_fork(void)
{
    pid_t pid;
    fflush(NULL);
    pid = fork();
    CHECK(pid >= 0);
    if (pid == 0)
        alarm(T_ALARM);
    return pid;
}

/* Waits for `pid` and checks that it exited with status 0. */
static inline void t_wait_ok(pid_t pid, const char *what)
{
    int st;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0,
           "child %s failed (status 0x%x)", what, st);
}

static inline void t_pipe(int p[2])
{
    CHECK(pipe(p) == 0);
}

/* One byte through a pipe: a go-ahead or an acknowledgement. */
static inline void t_signal(int fd, char c)
{
    CHECK(write(fd, &c, 1) == 1);
}

static inline char t_await(int fd)
{
    char c = 0;
    ssize_t r;
    do
        r = read(fd, &c, 1);
    while (r < 0 && errno == EINTR);
    CHECKF(r == 1, "pipe closed or failed while waiting (read returned %d)",
           (int)r);
    return c;
}

/* Reads all of a stream from a fresh guest into buf (NUL-terminated); returns
 * the length. */
static inline size_t t_read_all(const char *name, char *buf, size_t size)
{
    FILE *g = fshm_guest_open(name);
    size_t n;
    CHECKF(g != NULL, "guest open of %s", name);
    n = fread(buf, 1, size - 1, g);
    CHECK(!ferror(g));
    buf[n] = 0;
    CHECK(fclose(g) == 0);
    return n;
}

#endif
