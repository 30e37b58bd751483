/*
 * create_syscalls.c — the cost of each system call an fshm owner makes to create and
 * close a linear stream, timed one by one over 20 000 rounds (µs each, including two
 * clock reads), against the raw baseline's three. Bounds the target "owner create +
 * close ≤ 2× raw shm_open create + close + unlink".
 *
 * usage: create_syscalls [rounds]
 */
#include "common.h"

#define STEPS 9

int main(int argc, char **argv)
{
    static const char *what[STEPS] = {
        "openat with O_CREAT and O_EXCL (shm_open)", "fcntl F_OFD_SETLK (owner lock)",
        "fstat (mode, identity)", "pwrite 4088 B (header page, allocates it)",
        "pwrite 8 B (magic)", "pwrite 4 B (state: closed)", "pread 132 B (futex words)",
        "stat of the name (still ours?)", "unlink + close"};
    static const int raw[STEPS] = {1, 0, 0, 0, 0, 0, 0, 0, 1};
    double acc[STEPS] = {0};
    int rounds = argc > 1 ? atoi(argv[1]) : 20000, i, k;
    char name[64], path[128], page[4096] = {0}, words[132];
    probe_name(name, sizeof name, "create");
    snprintf(path, sizeof path, "/dev/shm%s", name);
    for (i = 0; i < rounds; i++) {
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
        struct stat st;
        double t[STEPS + 1];
        int fd;
        t[0] = probe_now();
        fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
        t[1] = probe_now();
        probe_check(fd >= 0, "shm_open");
        probe_check(fcntl(fd, F_OFD_SETLK, &fl) == 0, "lock");
        t[2] = probe_now();
        probe_check(fstat(fd, &st) == 0, "fstat");
        t[3] = probe_now();
        probe_check(pwrite(fd, page + 8, 4088, 8) == 4088, "pwrite");
        t[4] = probe_now();
        probe_check(pwrite(fd, page, 8, 0) == 8, "pwrite");
        t[5] = probe_now();
        probe_check(pwrite(fd, page, 4, 192) == 4, "pwrite");
        t[6] = probe_now();
        probe_check(pread(fd, words, sizeof words, 128) == sizeof words, "pread");
        t[7] = probe_now();
        probe_check(stat(path, &st) == 0, "stat");
        t[8] = probe_now();
        shm_unlink(name);
        close(fd);
        t[9] = probe_now();
        for (k = 0; k < STEPS; k++)
            acc[k] += t[k + 1] - t[k];
    }
    {
        double all = 0, base = 0;
        printf("| step | µs |\n|---|---|\n");
        for (k = 0; k < STEPS; k++) {
            double us = acc[k] / rounds * 1e6;
            printf("| %s%s | %.2f |\n", what[k], raw[k] ? " (raw baseline too)" : "", us);
            all += us;
            base += raw[k] ? us : 0;
        }
        printf("| **all (fshm)** | %.2f |\n| **raw baseline steps** | %.2f |\n", all, base);
    }
    return 0;
}
