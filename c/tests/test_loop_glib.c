/*
 * test_loop_glib.c — a GLib main loop (g_unix_fd_add) follows three streams
 * written by other processes through fshm_event_fd: every byte, then the end when
 * each owner is killed with SIGKILL.
 */
#include "loop_common.h"
#include <glib-unix.h>
#include <glib.h>

static GMainLoop *main_loop;
static int left = L_STREAMS;

static gboolean on_readable(gint fd, GIOCondition cond, gpointer data)
{
    struct l_stream *s = data;
    CHECK(fd == s->fd);
    CHECK(cond & G_IO_IN);
    if (l_on_readable(s)) {
        if (--left == 0)
            g_main_loop_quit(main_loop);
        return G_SOURCE_REMOVE;
    }
    return G_SOURCE_CONTINUE;
}

int main(void)
{
    struct l_stream st[L_STREAMS];
    int i;
    t_init();
    main_loop = g_main_loop_new(NULL, FALSE);
    for (i = 0; i < L_STREAMS; i++) {
        l_start(&st[i], i);
        CHECK(g_unix_fd_add(st[i].fd, G_IO_IN, on_readable, &st[i]) > 0);
    }
    g_main_loop_run(main_loop);
    g_main_loop_unref(main_loop);
    CHECK(left == 0);
    for (i = 0; i < L_STREAMS; i++)
        l_finish(&st[i]);
    t_cleanup();
    printf("ok\n");
    return 0;
}
