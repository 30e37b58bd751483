/*
 * fresh_writes.c — writing 256 MiB into a new shm object through the kernel: pwrite in
 * 4 KiB and 64 KiB pieces, and 64 KiB pieces into memory reserved ahead with
 * fallocate in 4 MiB steps. Bounds fshm's FILE* writes against stdio's: both end in the
 * kernel's copy into fresh pages (perf: most of the time in copy_folio_from_iter_atomic).
 *
 * usage: fresh_writes [MiB]     (default 256)
 */
#include "common.h"

static double run(size_t total, size_t chunk, size_t step)
{
    static char buf[1 << 16];
    char name[64];
    size_t o, reserved = 0;
    double t0;
    int fd;
    memset(buf, 5, sizeof buf);
    probe_name(name, sizeof name, "fresh");
    fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    probe_check(fd >= 0, "shm_open");
    t0 = probe_now();
    for (o = 0; o < total; o += chunk) {
        if (step != 0 && o + chunk > reserved) {
            probe_check(fallocate(fd, 0, (off_t)reserved, (off_t)step) == 0, "fallocate");
            reserved += step;
        }
        probe_check(pwrite(fd, buf, chunk, (off_t)o) == (ssize_t)chunk, "pwrite");
    }
    t0 = probe_now() - t0;
    close(fd);
    shm_unlink(name);
    return (double)total / t0 / 1e6;
}

int main(int argc, char **argv)
{
    size_t total = (size_t)(argc > 1 ? atoi(argv[1]) : 256) << 20;
    int rep;
    printf("| method | MB/s, 3 runs |\n|---|---|\n");
    printf("| pwrite 4 KiB |");
    for (rep = 0; rep < 3; rep++)
        printf(" %.0f", run(total, 4096, 0));
    printf(" |\n| pwrite 64 KiB |");
    for (rep = 0; rep < 3; rep++)
        printf(" %.0f", run(total, 65536, 0));
    printf(" |\n| fallocate 4 MiB ahead + pwrite 64 KiB |");
    for (rep = 0; rep < 3; rep++)
        printf(" %.0f", run(total, 65536, 4u << 20));
    printf(" |\n");
    return 0;
}
