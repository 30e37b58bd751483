/*
 * test_loop_poll.c — fshm_poll follows three streams written by other processes,
 * among idle streams, a skipped (NULL) entry and an entry that asks for the end
 * alone: every byte, then FSHM_POLLEND when each owner is killed with SIGKILL.
 * Also: bad input (a NULL array, a FILE* not from the library) fails and changes
 * no revents; a timeout returns 0; fshm_event_fd's descriptor is readable exactly
 * when data is past the position, re-arms on an empty read and on each call, and
 * stays readable once the stream ended; the bytes stdio read ahead count as data.
 */
#include "loop_common.h"
#include <poll.h>

enum { IDLE = 20 };

/* Whether fd is readable within ms milliseconds. */
static int readable(int fd, int ms)
{
    struct pollfd p;
    int r;
    p.fd = fd;
    p.events = POLLIN;
    p.revents = 0;
    do
        r = poll(&p, 1, ms);
    while (r < 0 && errno == EINTR);
    CHECK(r >= 0);
    return r == 1 && (p.revents & POLLIN);
}

static void bad_input(FILE *good)
{
    struct fshm_pollfd p[2];
    FILE *plain = tmpfile();
    CHECK(plain != NULL);
    CHECK_ERR(fshm_poll(NULL, 1, 0) == -1, EINVAL);
    CHECK(fshm_poll(NULL, 0, 0) == 0);
    p[0].stream = good;
    p[0].events = FSHM_POLLDATA;
    p[0].revents = 55;
    p[1].stream = plain;
    p[1].events = FSHM_POLLDATA;
    p[1].revents = 66;
    CHECK_ERR(fshm_poll(p, 2, -1) == -1, EBADF);
    CHECK(p[0].revents == 55 && p[1].revents == 66);
    CHECK_ERR(fshm_event_fd(NULL) == -1, EINVAL);
    CHECK_ERR(fshm_event_fd(plain) == -1, EBADF);
    CHECK(fclose(plain) == 0);
}

/* The descriptor on a stream this process owns: readable exactly when it should. */
static void descriptor_states(void)
{
    char name[300];
    struct fshm_pollfd p;
    FILE *o, *g;
    int fd;
    char c[4];
    t_name(name, sizeof name, "evfd");
    o = fshm_create(name, 0600);
    CHECK(o != NULL);
    g = fshm_guest_open(name);
    CHECK(g != NULL);
    fd = fshm_event_fd(g);
    CHECK(fd >= 0);
    CHECK(!readable(fd, 0));
    p.stream = g;
    p.events = FSHM_POLLDATA;
    p.revents = 9;
    CHECK(fshm_poll(&p, 1, 20) == 0); /* timed out */
    CHECK(p.revents == 0);
    CHECK(fputs("abc", o) >= 0 && fflush(o) == 0);
    CHECK(readable(fd, -1));
    CHECK(readable(fd, 0)); /* stays readable until re-armed */
    CHECK(fshm_poll(&p, 1, -1) == 1 && p.revents == FSHM_POLLDATA);
    /* One byte read: stdio read ahead the rest, which is still data. */
    CHECK(fgetc(g) == 'a');
    CHECK(fshm_event_fd(g) == fd);
    CHECK(readable(fd, 0));
    CHECK(fshm_poll(&p, 1, 0) == 1 && p.revents == FSHM_POLLDATA);
    /* Read to the end: the empty read re-armed it. */
    CHECK(fread(c, 1, sizeof c, g) == 2);
    CHECK(!readable(fd, 0));
    clearerr(g);
    CHECK(fshm_event_fd(g) == fd);
    CHECK(!readable(fd, 0));
    CHECK(fshm_poll(&p, 1, 0) == 0 && p.revents == 0);
    /* The owner closes: readable for good, and the end is reported. */
    CHECK(fclose(o) == 0);
    CHECK(readable(fd, -1));
    CHECK(fread(c, 1, sizeof c, g) == 0);
    clearerr(g);
    CHECK(readable(fd, 0));
    CHECK(fshm_event_fd(g) == fd);
    CHECK(readable(fd, 0));
    CHECK(fshm_poll(&p, 1, -1) == 1 && p.revents == FSHM_POLLEND);
    CHECK(fclose(g) == 0);
}

int main(void)
{
    struct l_stream st[L_STREAMS];
    /* [0] skipped, [1..3] the written streams, [4] stream 0 for the end alone, then
     * the idle streams. */
    struct fshm_pollfd p[1 + L_STREAMS + 1 + IDLE];
    FILE *idle_owner[IDLE], *idle[IDLE];
    char idle_name[IDLE][300];
    size_t n = sizeof p / sizeof p[0];
    int i, left = L_STREAMS, end_only = 1;
    t_init();
    descriptor_states();
    for (i = 0; i < IDLE; i++) {
        t_name(idle_name[i], sizeof idle_name[i], "idle");
        idle_owner[i] = fshm_create(idle_name[i], 0600);
        CHECK(idle_owner[i] != NULL);
        idle[i] = fshm_guest_open(idle_name[i]);
        CHECK(idle[i] != NULL);
    }
    for (i = 0; i < L_STREAMS; i++)
        l_start(&st[i], i);
    bad_input(st[0].f);
    p[0].stream = NULL;
    p[0].events = FSHM_POLLDATA;
    for (i = 0; i < L_STREAMS; i++) {
        p[1 + i].stream = st[i].f;
        p[1 + i].events = FSHM_POLLDATA;
    }
    p[1 + L_STREAMS].stream = st[0].f;
    p[1 + L_STREAMS].events = 0;
    for (i = 0; i < IDLE; i++) {
        p[2 + L_STREAMS + i].stream = idle[i];
        p[2 + L_STREAMS + i].events = FSHM_POLLDATA;
    }
    while (left > 0 || end_only) {
        size_t k;
        int r = fshm_poll(p, n, -1), seen = 0;
        CHECK(r >= 1);
        CHECK(p[0].revents == 0);
        for (k = 0; k < n; k++)
            seen += p[k].revents != 0;
        CHECK(seen == r);
        for (i = 0; i < L_STREAMS; i++) {
            short re = p[1 + i].revents;
            if (re == 0)
                continue;
            CHECK(re == FSHM_POLLDATA || re == FSHM_POLLEND);
            if (l_on_readable(&st[i])) {
                p[1 + i].stream = NULL;
                left--;
            }
        }
        if (p[1 + L_STREAMS].revents) {
            CHECK(p[1 + L_STREAMS].revents == FSHM_POLLEND);
            CHECK(st[0].killed);
            p[1 + L_STREAMS].stream = NULL;
            end_only = 0;
        }
        for (i = 0; i < IDLE; i++)
            CHECK(p[2 + L_STREAMS + i].revents == 0);
    }
    for (i = 0; i < L_STREAMS; i++)
        l_finish(&st[i]);
    for (i = 0; i < IDLE; i++) {
        CHECK(fclose(idle[i]) == 0);
        CHECK(fclose(idle_owner[i]) == 0);
    }
    t_cleanup();
    printf("ok\n");
    return 0;
}
