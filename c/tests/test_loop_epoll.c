/*
 * test_loop_epoll.c — plain epoll(7) follows three streams written by other
 * processes through fshm_event_fd: every byte, then the end when each owner is
 * killed with SIGKILL. One descriptor is watched edge-triggered (EPOLLET), the
 * others level-triggered.
 */
#include "loop_common.h"
#include <sys/epoll.h>

int main(void)
{
    struct l_stream st[L_STREAMS];
    struct epoll_event ev, evs[8];
    int ep, i, left = L_STREAMS;
    t_init();
    ep = epoll_create1(EPOLL_CLOEXEC);
    CHECK(ep >= 0);
    for (i = 0; i < L_STREAMS; i++) {
        l_start(&st[i], i);
        memset(&ev, 0, sizeof ev);
        ev.events = EPOLLIN | (i == 1 ? EPOLLET : 0);
        ev.data.u32 = (unsigned)i;
        CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, st[i].fd, &ev) == 0);
    }
    while (left > 0) {
        int n = epoll_wait(ep, evs, 8, -1);
        if (n < 0 && errno == EINTR)
            continue;
        CHECK(n > 0);
        for (i = 0; i < n; i++) {
            struct l_stream *s = &st[evs[i].data.u32];
            CHECK(evs[i].events & EPOLLIN);
            if (l_on_readable(s)) {
                CHECK(epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL) == 0);
                left--;
            }
        }
    }
    for (i = 0; i < L_STREAMS; i++)
        l_finish(&st[i]);
    CHECK(close(ep) == 0);
    t_cleanup();
    printf("ok\n");
    return 0;
}
