/*
 * ring_copy.c — the copy bound of a ring between two processes, without any fshm code:
 * a writer process copies 1 GiB in 4 KiB, 64 KiB or 1 MiB chunks into a 16 MiB shared
 * ring and publishes each chunk with a release store; a reader process spins on the
 * published length and copies whatever is there (up to 1 MiB, as the benchmark's
 * readers do) into its own buffer, publishing its position for the writer, which waits
 * for room. Nothing else: no lock, no checks, no wake-up protocol. Bounds the target
 * "ring ≥ 2× the best of pipe / pipe 1 MiB / socketpair": what two cores moving bytes
 * through a shared 16 MiB buffer reach here.
 *
 * usage: ring_copy [MiB per run]
 */
#include "common.h"
#include <stdatomic.h>

#define CAP (16u << 20)
#define READ_MAX (1u << 20)

struct shared {
    _Atomic unsigned long len;
    char pad[56];
    _Atomic unsigned long rpos;
};

static double run(size_t chunk, size_t total)
{
    struct shared *h = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    char *d = mmap(NULL, CAP, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE,
                   -1, 0);
    char *src = malloc(chunk + 65536);
    unsigned long pos = 0;
    double t0;
    pid_t pid;
    probe_check(h != MAP_FAILED && d != MAP_FAILED && src != NULL, "mmap");
    memset(src, 7, chunk + 65536);
    t0 = probe_now();
    pid = fork();
    probe_check(pid >= 0, "fork");
    if (pid == 0) {
        char *buf = malloc(READ_MAX);
        probe_check(buf != NULL, "malloc");
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
            memcpy(buf, d + off, n);
            pos += n;
            atomic_store_explicit(&h->rpos, pos, memory_order_release);
        }
        _exit(buf[READ_MAX - 1] == 7 ? 0 : 1);
    }
    while (pos < total) {
        while (pos + chunk - atomic_load_explicit(&h->rpos, memory_order_acquire) > CAP)
            __builtin_ia32_pause();
        memcpy(d + pos % CAP, src + pos % 65536, chunk);
        pos += chunk;
        atomic_store_explicit(&h->len, pos, memory_order_release);
    }
    waitpid(pid, NULL, 0);
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
    printf("| chunk | MB/s, 3 runs |\n|---|---|\n");
    for (i = 0; i < 3; i++) {
        printf("| %zu |", chunks[i]);
        for (rep = 0; rep < 3; rep++)
            printf(" %.0f", run(chunks[i], total));
        printf(" |\n");
        fflush(stdout);
    }
    return 0;
}
