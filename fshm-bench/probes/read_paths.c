/*
 * read_paths.c — a new process reading 256 MiB already in a shm object, in 64 KiB
 * requests: read(2) on the fd against a mapping copied with memcpy (faulting the
 * pages in, 16 at a time by fault-around), MAP_POPULATE, or MADV_POPULATE_READ in 2 MiB
 * steps. Mapped rates include the munmap. Bounds fshm's FILE* re-read at 64 KiB: a
 * copy out of a mapping pays for mapping every 4 KiB page; read(2) copies through the
 * kernel's own mapping.
 *
 * usage: read_paths [MiB]     (default 256)
 */
#include "common.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

static double run(const char *name, size_t total, int mode)
{
    static char buf[1 << 16];
    size_t sum = 0, o;
    double t0;
    int fd = shm_open(name, O_RDONLY, 0);
    probe_check(fd >= 0, "shm_open");
    t0 = probe_now();
    if (mode == 0) {
        for (o = 0; o < total;) {
            ssize_t n = read(fd, buf, sizeof buf);
            probe_check(n > 0, "read");
            o += (size_t)n;
            sum += (size_t)buf[0];
        }
    } else {
        char *m = mmap(NULL, total, PROT_READ, MAP_SHARED | (mode == 2 ? MAP_POPULATE : 0),
                       fd, 0);
        probe_check(m != MAP_FAILED, "mmap");
        for (o = 0; o < total; o += sizeof buf) {
            if (mode == 3 && o % (2u << 20) == 0)
                madvise(m + o, 2u << 20, MADV_POPULATE_READ);
            memcpy(buf, m + o, sizeof buf);
            sum += (size_t)buf[0];
        }
        munmap(m, total);
    }
    close(fd);
    if (sum == 1)
        printf(" ");
    return (double)total / (probe_now() - t0) / 1e6;
}

int main(int argc, char **argv)
{
    static const char *what[] = {"read(2), 64 KiB", "mmap + memcpy (faults)",
                                 "MAP_POPULATE + memcpy", "MADV_POPULATE_READ 2 MiB + memcpy"};
    size_t total = (size_t)(argc > 1 ? atoi(argv[1]) : 256) << 20, o;
    char name[64], *w = malloc(1 << 20);
    int fd, rep, mode;
    probe_check(w != NULL, "malloc");
    memset(w, 7, 1 << 20);
    probe_name(name, sizeof name, "read");
    fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    probe_check(fd >= 0, "shm_open create");
    for (o = 0; o < total; o += 1 << 20)
        probe_check(pwrite(fd, w, 1 << 20, (off_t)o) == 1 << 20, "pwrite");
    close(fd);
    printf("| method | MB/s, 3 runs |\n|---|---|\n");
    for (mode = 0; mode < 4; mode++) {
        printf("| %s |", what[mode]);
        for (rep = 0; rep < 3; rep++) {
            pid_t pid;
            int pfd[2];
            double r = 0;
            probe_check(pipe(pfd) == 0, "pipe");
            pid = fork();
            probe_check(pid >= 0, "fork");
            if (pid == 0) { /* each run in a new process, as a new guest */
                r = run(name, total, mode);
                probe_check(write(pfd[1], &r, sizeof r) == sizeof r, "write");
                _exit(0);
            }
            probe_check(read(pfd[0], &r, sizeof r) == sizeof r, "read result");
            waitpid(pid, NULL, 0);
            close(pfd[0]);
            close(pfd[1]);
            printf(" %.0f", r);
        }
        printf(" |\n");
    }
    shm_unlink(name);
    free(w);
    return 0;
}
