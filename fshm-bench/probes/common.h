/*
 * common.h — helpers for the probes: small C programs that measure one mechanism
 * underneath fshm (no fshm code), to show what bounds a benchmark target.
 * BENCHMARKS.md quotes their output; ci/bench-smoke.sh builds them and runs each once.
 */
#ifndef FSHM_PROBE_COMMON_H
#define FSHM_PROBE_COMMON_H
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static inline double probe_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Exits with a message if `ok` is false. */
static inline void probe_check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "probe: %s: %s\n", what, strerror(errno));
        exit(1);
    }
}

/* "/fshm-probe-<tag>-<pid>" in buf. */
static inline const char *probe_name(char *buf, size_t size, const char *tag)
{
    snprintf(buf, size, "/fshm-probe-%s-%d", tag, (int)getpid());
    return buf;
}
#endif
