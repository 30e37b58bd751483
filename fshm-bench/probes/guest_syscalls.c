/*
 * guest_syscalls.c — the cost of each step a C guest makes to open and close an
 * existing stream through `fshm_open(FSHM_GUEST)` + `fclose`, timed one by one over
 * 20 000 rounds (µs each, including two clock reads), against the raw baseline's two
 * (shm_open + close); and the step that could replace two of them (one read(2) of the
 * header page, which leaves the offset past the header). Bounds the target "C guest open
 * + close ≤ 2× raw shm_open + close".
 *
 * usage: guest_syscalls [rounds]
 */
#include "common.h"

#define STEPS 7

static ssize_t no_io(void *c, char *b, size_t n)
{
    (void)c, (void)b, (void)n;
    return 0;
}

int main(int argc, char **argv)
{
    static const char *what[STEPS] = {
        "openat of an existing object (shm_open)", "pread 64 B (header)",
        "lseek SEEK_SET past the header", "fopencookie + fclose (glibc FILE, no I/O)",
        "lseek SEEK_CUR (fclose: bytes written through the fd?)", "close",
        "instead of pread + lseek: read 4096 B (header page, moves the offset)"};
    /* 1: raw baseline step; 2: an alternative, not part of today's path. */
    static const int kind[STEPS] = {1, 0, 0, 0, 0, 1, 2};
    double acc[STEPS] = {0};
    int rounds = argc > 1 ? atoi(argv[1]) : 20000, i, k;
    char name[64], page[4096] = {0};
    cookie_io_functions_t io = {.read = no_io};
    probe_name(name, sizeof name, "guest");
    {
        int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
        probe_check(fd >= 0, "shm_open (create)");
        probe_check(pwrite(fd, page, sizeof page, 0) == sizeof page, "pwrite");
        close(fd);
    }
    for (i = 0; i < rounds; i++) {
        double t[STEPS + 1], alt;
        FILE *f;
        int fd;
        t[0] = probe_now();
        fd = shm_open(name, O_RDWR, 0);
        t[1] = probe_now();
        probe_check(fd >= 0, "shm_open");
        probe_check(pread(fd, page, 64, 0) == 64, "pread");
        t[2] = probe_now();
        probe_check(lseek(fd, 4096, SEEK_SET) == 4096, "lseek");
        t[3] = probe_now();
        f = fopencookie(page, "r", io);
        probe_check(f != NULL, "fopencookie");
        fclose(f);
        t[4] = probe_now();
        probe_check(lseek(fd, 0, SEEK_CUR) == 4096, "lseek");
        t[5] = probe_now();
        probe_check(lseek(fd, 0, SEEK_SET) == 0, "lseek (untimed)");
        alt = probe_now();
        probe_check(read(fd, page, sizeof page) == sizeof page, "read");
        t[6] = probe_now();
        close(fd);
        t[7] = probe_now();
        /* Order in `what`: close is timed last but listed before the alternative. */
        for (k = 0; k < 5; k++)
            acc[k] += t[k + 1] - t[k];
        acc[5] += t[7] - t[6];
        acc[6] += t[6] - alt;
    }
    shm_unlink(name);
    {
        double all = 0, base = 0;
        printf("| step | µs |\n|---|---|\n");
        for (k = 0; k < STEPS; k++) {
            double us = acc[k] / rounds * 1e6;
            printf("| %s%s | %.2f |\n", what[k], kind[k] == 1 ? " (raw baseline too)" : "",
                   us);
            all += kind[k] == 2 ? 0 : us;
            base += kind[k] == 1 ? us : 0;
        }
        printf("| **all (fshm guest today)** | %.2f |\n| **raw baseline steps** | %.2f |\n",
               all, base);
    }
    return 0;
}
