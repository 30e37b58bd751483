/*
 * threads.c — C threads sharing streams in one process, the cases shmfile.h's
 * THREAD SAFETY paragraph promises: one FILE* used by several threads at once
 * (stdio calls, and fshm_* calls on it meanwhile), and one FILE* per thread on the
 * same stream.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>

#include <shmfile.h>

#include "mixed.h"

#define MAX_THREADS 16

struct worker {
    FILE *f;            /* the shared FILE*, or NULL: open one of its own */
    const char *name;
    unsigned id, lines;
    int err;            /* errno of the first failure, or 0 */
};

static void *write_lines(void *arg)
{
    struct worker *w = arg;
    FILE *f = w->f ? w->f : fshm_open(w->name, 0, FSHM_GUEST | FSHM_APPEND);
    if (f == NULL) {
        w->err = errno;
        return NULL;
    }
    for (unsigned i = 0; i < w->lines && w->err == 0; i++) {
        /* One stdio call per line: whole under the FILE's lock. Flushing often makes
         * the threads' flushes and buffer fills overlap. */
        if (fprintf(f, "t%u %u\n", w->id, i) < 0 || (i % 7 == 0 && fflush(f) != 0))
            w->err = errno ? errno : EIO;
    }
    if (w->f == NULL && fclose(f) != 0 && w->err == 0)
        w->err = errno;
    return NULL;
}

/* Calls the functions that shmfile.h says are safe while other threads use f. */
static void *query(void *arg)
{
    struct worker *w = arg;
    for (unsigned i = 0; i < w->lines && w->err == 0; i++) {
        unsigned long long lost = 1;
        if (fshm_owner_state(w->f) != FSHM_OWNER_ALIVE || fshm_lost_bytes(w->f, &lost) != 0 ||
            lost != 0 || fshm_chmod(w->f, 0600) != 0)
            w->err = errno ? errno : EIO;
        /* fshm_sync and fshm_wait only under the FILE's lock. */
        flockfile(w->f);
        if (fshm_sync(w->f) != 0)
            w->err = errno;
        funlockfile(w->f);
    }
    return NULL;
}

int mixed_c_threads(const char *name, int shared, unsigned threads, unsigned lines)
{
    if (threads == 0 || threads > MAX_THREADS) {
        errno = EINVAL;
        return -1;
    }
    FILE *f = NULL;
    if (shared) {
        f = fshm_open(name, 0, FSHM_GUEST | FSHM_APPEND);
        if (f == NULL)
            return -1;
    }
    pthread_t tid[MAX_THREADS + 1];
    struct worker w[MAX_THREADS + 1];
    unsigned started = 0;
    int err = 0;
    for (unsigned t = 0; t <= threads; t++) {
        if (t == threads && !shared)
            break; /* the query thread needs the shared FILE* */
        w[t] = (struct worker){f, name, t, lines, 0};
        int e = pthread_create(&tid[t], NULL, t == threads ? query : write_lines, &w[t]);
        if (e != 0) {
            err = e;
            break;
        }
        started++;
    }
    for (unsigned t = 0; t < started; t++) {
        pthread_join(tid[t], NULL);
        if (err == 0)
            err = w[t].err;
    }
    if (f != NULL && fclose(f) != 0 && err == 0)
        err = errno;
    if (err != 0) {
        errno = err;
        return -1;
    }
    return 0;
}
