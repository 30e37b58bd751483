/*
 * ring_protocol.c — the cross-core cost of publishing every 64-byte write on a shared
 * ring, without any fshm code: a writer process and a reader process that follows it
 * (spinning), 256 MiB in 64-byte messages through a 16 MiB ring. Four ways to publish:
 *   fshm's until its fourth session: load the length, raise hwm (read-modify-write),
 *           copy, raise the length (read-modify-write), load the futex word; the reader
 *           copies, loads hwm, stores its slot position, loads the room futex word;
 *   fshm's now: store hwm (on its own line), copy, compare-and-swap the length from
 *           the value the writer remembers, load the futex word; the reader copies,
 *           stores its slot position, loads the room futex word;
 *   one read-modify-write of the length per message, nothing else;
 *   a plain release store of the length (no wake-up protocol possible).
 * Bounds the target "ring at 64 B ≥ 10× a pipe".
 */
#include "common.h"
#include <stdatomic.h>

#define CAP (16u << 20)

struct shared {
    _Atomic unsigned long len, hwm;
    char pad1[48];
    _Atomic unsigned seq;
    char pad2[60];
    _Atomic unsigned long slot;
    char pad3[56];
    _Atomic unsigned space_seq;
    char pad4[60];
    _Atomic unsigned long hwm2;
};

static double run(int mode, size_t total)
{
    const size_t msg = 64;
    struct shared *h = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    char *d = mmap(NULL, CAP, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE,
                   -1, 0);
    char src[64];
    unsigned long pos = 0;
    double t0;
    pid_t pid;
    probe_check(h != MAP_FAILED && d != MAP_FAILED, "mmap");
    memset(src, 1, sizeof src);
    t0 = probe_now();
    pid = fork();
    probe_check(pid >= 0, "fork");
    if (pid == 0) {
        static char buf[1 << 16];
        while (pos < total) {
            unsigned long l = atomic_load(&h->len), n;
            size_t off;
            if (l == pos) {
                __builtin_ia32_pause();
                continue;
            }
            n = l - pos < sizeof buf ? l - pos : sizeof buf;
            off = pos % CAP;
            if (off + n > CAP)
                n = CAP - off;
            memcpy(buf, d + off, n);
            if (mode == 0)
                (void)atomic_load(&h->hwm);
            if (mode == 0 || mode == 3) {
                atomic_store(&h->slot, pos + n);
                (void)atomic_load(&h->space_seq);
            }
            pos += n;
        }
        _exit(0);
    }
    while (pos < total) {
        if (mode == 0) {
            (void)atomic_load(&h->len);
            atomic_fetch_add(&h->hwm, msg);
        }
        if (mode == 3) {
            atomic_store_explicit(&h->hwm2, pos + msg, memory_order_relaxed);
            atomic_thread_fence(memory_order_release);
        }
        memcpy(d + pos % CAP, src, msg);
        if (mode == 3) {
            unsigned long expect = pos;
            (void)atomic_compare_exchange_strong(&h->len, &expect, pos + msg);
            (void)atomic_load(&h->seq);
        } else if (mode == 0) {
            atomic_fetch_add(&h->len, msg);
            (void)atomic_load(&h->seq);
        } else if (mode == 1) {
            atomic_fetch_add(&h->len, msg);
        } else {
            atomic_store_explicit(&h->len, pos + msg, memory_order_release);
        }
        pos += msg;
    }
    waitpid(pid, NULL, 0);
    t0 = probe_now() - t0;
    munmap(h, 4096);
    munmap(d, CAP);
    return (double)total / t0 / 1e6;
}

int main(int argc, char **argv)
{
    static const char *what[] = {"fshm's former protocol (2 RMW + 2 loads; reader 2 loads + store)",
                                 "one read-modify-write per message",
                                 "plain release store per message",
                                 "fshm's protocol now (store + CAS + load; reader load + store)"};
    size_t total = (size_t)(argc > 1 ? atoi(argv[1]) : 256) << 20;
    int mode, rep;
    printf("| publishing each 64 B write | MB/s, 3 runs |\n|---|---|\n");
    for (mode = 0; mode < 4; mode++) {
        printf("| %s |", what[mode]);
        for (rep = 0; rep < 3; rep++)
            printf(" %.0f", run(mode, total));
        printf(" |\n");
    }
    return 0;
}
