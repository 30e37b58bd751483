/*
 * ring_touch.c — what the second copy costs: a writer process copies 1 GiB in 4 KiB,
 * 64 KiB or 1 MiB chunks into a 16 MiB shared ring (release store per chunk); the
 * reader process, on another CPU, reads every byte either after copying it out into
 * its own 1 MiB buffer (two copies in all, as fshm's copying API makes) or in place in
 * the ring (one copy, as a loaned-sample design like iceoryx2's makes). Both sum the
 * bytes, as the benchmark's readers do. No fshm code, no lock, no wake-up protocol.
 * Bounds the goal "fshm ≥ 1.2× iceoryx2" at large messages.
 *
 * usage: ring_touch [MiB per run]
 */
#include "common.h"
#include <sched.h>
#include <stdatomic.h>

#define CAP (16u << 20)
#define READ_MAX (1u << 20)

struct shared {
    _Atomic unsigned long len;
    char pad[56];
    _Atomic unsigned long rpos;
};

static void pin(int nth)
{
    cpu_set_t all, one;
    int c, seen = 0;
    probe_check(sched_getaffinity(0, sizeof all, &all) == 0, "sched_getaffinity");
    for (c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &all) && seen++ == nth) {
            CPU_ZERO(&one);
            CPU_SET(c, &one);
            probe_check(sched_setaffinity(0, sizeof one, &one) == 0, "sched_setaffinity");
            return;
        }
}

static unsigned long sum(const unsigned char *p, size_t n)
{
    unsigned long s = 0;
    while (n > 0) {
        size_t k = n < 65536 ? n : 65536, i;
        unsigned int b = 0;
        for (i = 0; i < k; i++)
            b += p[i];
        s += b;
        p += k;
        n -= k;
    }
    return s;
}

static double run(size_t chunk, size_t total, int in_place)
{
    struct shared *h = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    unsigned char *d = mmap(NULL, CAP, PROT_READ | PROT_WRITE,
                            MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    unsigned char *src = malloc(chunk + 65536);
    unsigned long pos = 0;
    double t0;
    pid_t pid;
    int status;
    probe_check(h != MAP_FAILED && d != MAP_FAILED && src != NULL, "mmap");
    memset(src, 7, chunk + 65536);
    t0 = probe_now();
    pid = fork();
    probe_check(pid >= 0, "fork");
    if (pid == 0) {
        unsigned char *buf = malloc(READ_MAX);
        unsigned long s = 0;
        probe_check(buf != NULL, "malloc");
        pin(1);
        memset(buf, 1, READ_MAX);
        while (pos < total) {
            unsigned long l = atomic_load_explicit(&h->len, memory_order_acquire), n;
            size_t off;
            if (l == pos) {
                __builtin_ia32_pause();
                continue;
            }
            n = l - pos < READ_MAX ? l - pos : READ_MAX;
            off = pos % CAP;
            if (off + n > CAP)
                n = CAP - off;
            if (in_place) {
                s += sum(d + off, n);
            } else {
                memcpy(buf, d + off, n);
                s += sum(buf, n);
            }
            pos += n;
            atomic_store_explicit(&h->rpos, pos, memory_order_release);
        }
        _exit(s == 7ul * total ? 0 : 1);
    }
    pin(0);
    while (pos < total) {
        while (pos + chunk - atomic_load_explicit(&h->rpos, memory_order_acquire) > CAP)
            __builtin_ia32_pause();
        memcpy(d + pos % CAP, src + pos % 65536, chunk);
        pos += chunk;
        atomic_store_explicit(&h->len, pos, memory_order_release);
    }
    probe_check(waitpid(pid, &status, 0) == pid, "waitpid");
    probe_check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "reader's sum");
    t0 = probe_now() - t0;
    munmap(h, 4096);
    munmap(d, CAP);
    free(src);
    return (double)total / t0 / 1e6;
}

int main(int argc, char **argv)
{
    static const size_t chunks[] = {4096, 65536, 1u << 20};
    size_t total = (size_t)(argc > 1 ? atoi(argv[1]) : 1024) << 20;
    int i, rep;
    printf("| chunk | copy out + sum, MB/s, 3 runs | sum in place, MB/s, 3 runs |\n|---|---|---|\n");
    for (i = 0; i < 3; i++) {
        printf("| %zu |", chunks[i]);
        for (rep = 0; rep < 3; rep++)
            printf(" %.0f", run(chunks[i], total, 0));
        printf(" |");
        for (rep = 0; rep < 3; rep++)
            printf(" %.0f", run(chunks[i], total, 1));
        printf(" |\n");
        fflush(stdout);
    }
    return 0;
}
