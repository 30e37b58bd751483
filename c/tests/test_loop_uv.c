/*
 * test_loop_uv.c — libuv's uv_poll_t follows three streams written by other
 * processes through fshm_event_fd: every byte, then the end when each owner is
 * killed with SIGKILL (the loop ends when every poll handle is closed).
 */
#include "loop_common.h"
#include <uv.h>

static void on_readable(uv_poll_t *h, int status, int events)
{
    struct l_stream *s = h->data;
    CHECKF(status == 0, "uv_poll status %d", status);
    CHECK(events & UV_READABLE);
    if (l_on_readable(s)) {
        CHECK(uv_poll_stop(h) == 0);
        uv_close((uv_handle_t *)h, NULL);
    }
}

int main(void)
{
    struct l_stream st[L_STREAMS];
    uv_poll_t h[L_STREAMS];
    uv_loop_t loop;
    int i;
    t_init();
    CHECK(uv_loop_init(&loop) == 0);
    for (i = 0; i < L_STREAMS; i++) {
        l_start(&st[i], i);
        CHECK(uv_poll_init(&loop, &h[i], st[i].fd) == 0);
        h[i].data = &st[i];
        CHECK(uv_poll_start(&h[i], UV_READABLE, on_readable) == 0);
    }
    CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
    CHECK(uv_loop_close(&loop) == 0);
    for (i = 0; i < L_STREAMS; i++)
        l_finish(&st[i]);
    t_cleanup();
    printf("ok\n");
    return 0;
}
