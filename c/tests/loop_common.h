/*
 * loop_common.h — what the event-loop tests (test_loop_*.c) share: writer
 * processes, and the reader's callback that checks every byte and the end.
 *
 * Each test follows L_STREAMS streams, each created and written by its own child
 * process (the owner): L_TOTAL bytes of a known pattern in chunks of varying
 * size. The test process opens each as a guest and waits on fshm_event_fd's
 * descriptor (or fshm_poll) in a real event loop; its callback reads what is
 * there, checks every byte, and once a stream's bytes have all arrived kills its
 * owner with SIGKILL. The loop then must report the end: the descriptor becomes
 * readable, no data is left, and fshm_poll says FSHM_POLLEND.
 */
#ifndef FSHM_LOOP_COMMON_H
#define FSHM_LOOP_COMMON_H

#include "common.h"

#define L_STREAMS 3
#define L_TOTAL (256 * 1024)

/* Byte `i` of stream `s`. */
static unsigned char l_byte(int s, size_t i)
{
    return (unsigned char)((i * 7 + (size_t)s * 13 + i / 4093) & 0xff);
}

struct l_stream {
    char name[300];
    int idx;
    pid_t pid;    /* the owner, a child */
    FILE *f;      /* this process's guest */
    int fd;       /* fshm_event_fd(f) */
    size_t got;   /* bytes read and checked */
    int killed;   /* the owner was sent SIGKILL */
    int ended;    /* FSHM_POLLEND seen, after every byte */
};

/* Starts the owner of stream `idx` in a child process and opens it as a guest
 * with its event descriptor. The child writes L_TOTAL bytes, then waits to be
 * killed. */
static void l_start(struct l_stream *s, int idx)
{
    int ready[2];
    memset(s, 0, sizeof *s);
    s->idx = idx;
    t_name(s->name, sizeof s->name, "loop");
    t_pipe(ready);
    s->pid = t_fork();
    if (s->pid == 0) {
        static unsigned char buf[8192];
        size_t off = 0, i, n;
        unsigned chunk = 0;
        FILE *o;
        close(ready[0]);
        o = fshm_open(s->name, 0600, FSHM_OWNER);
        CHECK(o != NULL);
        t_signal(ready[1], 'r');
        while (off < L_TOTAL) {
            n = 1 + (size_t)(chunk * 977u) % sizeof buf;
            if (n > L_TOTAL - off)
                n = L_TOTAL - off;
            for (i = 0; i < n; i++)
                buf[i] = l_byte(idx, off + i);
            CHECK(fwrite(buf, 1, n, o) == n);
            CHECK(fflush(o) == 0);
            off += n;
            /* Pace the writer now and then, so that readers catch up and wait
             * (nothing depends on it). */
            if (++chunk % 8 == 0)
                usleep(200);
        }
        for (;;)
            pause();
    }
    close(ready[1]);
    t_await(ready[0]);
    close(ready[0]);
    s->f = fshm_open(s->name, 0, FSHM_GUEST);
    CHECK(s->f != NULL);
    s->fd = fshm_event_fd(s->f);
    CHECK(s->fd >= 0);
    /* The same descriptor on every call. */
    CHECK(fshm_event_fd(s->f) == s->fd);
}

/* The loop's callback for a readable descriptor (or an fshm_poll event): reads
 * what is there and checks every byte; kills the owner once every byte arrived;
 * returns 1 once the stream has ended, after its last byte. */
static int l_on_readable(struct l_stream *s)
{
    static unsigned char buf[5000];
    struct fshm_pollfd p;
    size_t n, i;
    CHECK(!s->ended);
    while ((n = fread(buf, 1, sizeof buf, s->f)) > 0) {
        CHECKF(s->got + n <= L_TOTAL, "stream %d: %zu bytes, more than %d", s->idx,
               s->got + n, L_TOTAL);
        for (i = 0; i < n; i++)
            CHECKF(buf[i] == l_byte(s->idx, s->got + i),
                   "stream %d, byte %zu: %u, want %u", s->idx, s->got + i,
                   (unsigned)buf[i], (unsigned)l_byte(s->idx, s->got + i));
        s->got += n;
    }
    CHECK(!ferror(s->f));
    /* The read that found no data re-armed the descriptor. */
    clearerr(s->f);
    if (s->got == L_TOTAL && !s->killed) {
        CHECK(kill(s->pid, SIGKILL) == 0);
        s->killed = 1;
    }
    p.stream = s->f;
    p.events = FSHM_POLLDATA;
    p.revents = 0;
    CHECK(fshm_poll(&p, 1, 0) >= 0);
    if (p.revents & FSHM_POLLEND) {
        CHECKF(s->killed && s->got == L_TOTAL, "stream %d ended after %zu bytes", s->idx,
               s->got);
        CHECK(!(p.revents & FSHM_POLLDATA));
        CHECK(fshm_owner_state(s->f) == FSHM_OWNER_DEAD);
        s->ended = 1;
    }
    return s->ended;
}

/* After the loop: the owner was killed (not failed), the guest closes. */
static void l_finish(struct l_stream *s)
{
    int st;
    CHECK(s->ended);
    CHECK(waitpid(s->pid, &st, 0) == s->pid);
    CHECKF(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
           "owner of stream %d failed (status 0x%x)", s->idx, st);
    CHECK(fclose(s->f) == 0);
}

#endif
