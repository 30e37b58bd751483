/*
 * spin_pingpong.c — the floor of a spinning ping-pong between two processes: each
 * side stores the trip number in its own cache line and spins (with pause) on the
 * other's, 200 000 round trips. fshm's ping-pong with spinning moves a message through
 * a ring each way on top of this.
 *
 * usage: spin_pingpong [round trips]
 */
#include "common.h"
#include <stdatomic.h>

struct lines {
    _Atomic long a;
    char pad[120];
    _Atomic long b;
};

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 200000, i;
    int rep;
    printf("| raw spin round trip | µs, 3 runs |\n|---|---|\n| two processes |");
    for (rep = 0; rep < 3; rep++) {
        struct lines *s = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                               -1, 0);
        double t0;
        pid_t pid;
        probe_check(s != MAP_FAILED, "mmap");
        pid = fork();
        probe_check(pid >= 0, "fork");
        if (pid == 0) {
            for (i = 1; i <= n; i++) {
                while (atomic_load_explicit(&s->a, memory_order_acquire) != i)
                    __builtin_ia32_pause();
                atomic_store_explicit(&s->b, i, memory_order_release);
            }
            _exit(0);
        }
        t0 = probe_now();
        for (i = 1; i <= n; i++) {
            atomic_store_explicit(&s->a, i, memory_order_release);
            while (atomic_load_explicit(&s->b, memory_order_acquire) != i)
                __builtin_ia32_pause();
        }
        t0 = probe_now() - t0;
        waitpid(pid, NULL, 0);
        munmap(s, 4096);
        printf(" %.3f", t0 / (double)n * 1e6);
    }
    printf(" |\n");
    return 0;
}
