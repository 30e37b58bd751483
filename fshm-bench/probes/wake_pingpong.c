/*
 * wake_pingpong.c — the floor of a sleeping ping-pong between two processes, without
 * fshm code: 8-byte messages over a pipe pair, against a futex word each way in a
 * MAP_SHARED mapping of a /dev/shm object (FUTEX_WAIT / FUTEX_WAKE, shared keys, as
 * fshm's followers sleep). Median µs per round trip of 3 runs of 50 000 trips.
 * Bounds the target "ping-pong without spinning no worse than a pipe".
 *
 * usage: wake_pingpong [round trips]
 */
#include "common.h"
#include <linux/futex.h>
#include <stdatomic.h>
#include <sys/syscall.h>

static void fwait(_Atomic unsigned *w, unsigned seen)
{
    syscall(SYS_futex, (unsigned *)w, FUTEX_WAIT, seen, NULL, NULL, 0);
}

static void fwake(_Atomic unsigned *w)
{
    syscall(SYS_futex, (unsigned *)w, FUTEX_WAKE, 1, NULL, NULL, 0);
}

static double pipes(long n)
{
    int ab[2], ba[2];
    long i, m = 0;
    double t0;
    pid_t pid;
    probe_check(pipe(ab) == 0 && pipe(ba) == 0, "pipe");
    pid = fork();
    probe_check(pid >= 0, "fork");
    if (pid == 0) {
        for (i = 0; i < n; i++) {
            probe_check(read(ab[0], &m, sizeof m) == sizeof m, "read");
            probe_check(write(ba[1], &m, sizeof m) == sizeof m, "write");
        }
        _exit(0);
    }
    t0 = probe_now();
    for (i = 0; i < n; i++) {
        probe_check(write(ab[1], &i, sizeof i) == sizeof i, "write");
        probe_check(read(ba[0], &m, sizeof m) == sizeof m, "read");
    }
    t0 = probe_now() - t0;
    waitpid(pid, NULL, 0);
    close(ab[0]);
    close(ab[1]);
    close(ba[0]);
    close(ba[1]);
    return t0 / (double)n * 1e6;
}

/* Each side waits for the other's word to reach the trip number. */
static double futexes(long n)
{
    char name[64];
    _Atomic unsigned *w;
    long i;
    double t0;
    pid_t pid;
    int fd;
    probe_name(name, sizeof name, "wake");
    fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    probe_check(fd >= 0 && ftruncate(fd, 4096) == 0, "shm object");
    w = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    probe_check(w != MAP_FAILED, "mmap");
    shm_unlink(name);
    close(fd);
    pid = fork();
    probe_check(pid >= 0, "fork");
    if (pid == 0) {
        for (i = 1; i <= n; i++) {
            unsigned v;
            while ((v = atomic_load(&w[0])) != (unsigned)i)
                fwait(&w[0], v);
            atomic_store(&w[32], (unsigned)i);
            fwake(&w[32]);
        }
        _exit(0);
    }
    t0 = probe_now();
    for (i = 1; i <= n; i++) {
        unsigned v;
        atomic_store(&w[0], (unsigned)i);
        fwake(&w[0]);
        while ((v = atomic_load(&w[32])) != (unsigned)i)
            fwait(&w[32], v);
    }
    t0 = probe_now() - t0;
    waitpid(pid, NULL, 0);
    munmap((void *)w, 4096);
    return t0 / (double)n * 1e6;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 50000;
    int rep;
    printf("| sleeping round trip | µs, 3 runs |\n|---|---|\n| pipe pair |");
    for (rep = 0; rep < 3; rep++)
        printf(" %.2f", pipes(n));
    printf(" |\n| shared futex words in a /dev/shm mapping |");
    for (rep = 0; rep < 3; rep++)
        printf(" %.2f", futexes(n));
    printf(" |\n");
    return 0;
}
