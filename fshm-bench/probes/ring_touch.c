/*
 * ring_touch.c — what the second copy costs: a writer process copies 1 GiB in 4 KiB,
 * 64 KiB or 1 MiB chunks into a 16 MiB shared ring (release store per chunk); the
 * reader process, on another CPU, reads every byte either after copying it out into
 * its own 1 MiB buffer (two copies in all, as fshm's copying API makes) or in place in
 * the ring (one copy, as a loaned-sample design like iceoryx2's makes). Both sum the
 * bytes, as the benchmark's readers do. No fshm code, no lock, no wake-up protocol.
 * Bounds the goal "fshm ≥ 1.2× iceoryx2" at large messages. The ring's size is the
 * second argument: a ring cycles through all of it, where a pool of samples can hand out
 * the ones just released again, still in cache.
 *
 * usage: ring_touch [MiB per run] [ring KiB, default 16384]
 */
#include "common.h"
#include <emmintrin.h>
#include <sched.h>
#include <stdatomic.h>

static size_t CAP = 16u << 20;
#define READ_MAX (1u << 20)

struct shared {
    _Atomic unsigned long len;
    char pad[56];
    _Atomic unsigned long rpos;
};

/* The first two CPUs this process may run on, found once before anything is pinned:
 * the writer runs on the first, the reader on the second (as in fshm-bench). */
static int cpus[2] = {-1, -1};

static void find_cpus(void)
{
    cpu_set_t all;
    int c, seen = 0;
    probe_check(sched_getaffinity(0, sizeof all, &all) == 0, "sched_getaffinity");
    for (c = 0; c < CPU_SETSIZE && seen < 2; c++)
        if (CPU_ISSET(c, &all))
            cpus[seen++] = c;
}

static void pin(int nth)
{
    cpu_set_t one;
    if (cpus[nth] < 0)
        return;
    CPU_ZERO(&one);
    CPU_SET(cpus[nth], &one);
    probe_check(sched_setaffinity(0, sizeof one, &one) == 0, "sched_setaffinity");
}

/* The sum of the bytes, 16 at a time (SSE2's sum of absolute differences against 0), as
 * fshm-bench's readers compute it. */
static unsigned long sum(const unsigned char *p, size_t n)
{
    __m128i acc = _mm_setzero_si128(), zero = _mm_setzero_si128();
    unsigned long s, lanes[2];
    size_t i;
    for (i = 0; i + 16 <= n; i += 16)
        acc = _mm_add_epi64(acc, _mm_sad_epu8(_mm_loadu_si128((const __m128i *)(p + i)), zero));
    _mm_storeu_si128((__m128i *)lanes, acc);
    s = lanes[0] + lanes[1];
    for (; i < n; i++)
        s += p[i];
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
    if (argc > 2)
        CAP = (size_t)atoi(argv[2]) << 10;
    find_cpus();
    probe_check(CAP >= READ_MAX, "the ring must hold at least 1 MiB");
    printf("%zu KiB ring, %zu MiB per run\n\n", CAP >> 10, total >> 20);
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
