/*
 * test_append.c — FSHM_APPEND: three processes each fwrite+fflush RECORDS records
 * of varying sizes through guests opened with FSHM_APPEND; every record is in the
 * stream exactly once and whole, and an fseek does not stop a write from
 * appending.
 */
#include "common.h"

static char name[300];
enum { WRITERS = 3, RECORDS = 300 };

/* Record i of writer w: "<w> <i> <len> <payload>\n", payload of len copies of a
 * letter, len between 1 and 700. */
static int record(char *buf, size_t size, int w, int i)
{
    int len = 1 + (i * 37 + w * 101) % 700, n;
    n = snprintf(buf, size, "%d %d %d ", w, i, len);
    memset(buf + n, 'a' + (w * 7 + i) % 26, (size_t)len);
    buf[n + len] = '\n';
    buf[n + len + 1] = 0;
    return n + len + 1;
}

static void appender(int w, int go)
{
    char buf[1024];
    int i;
    FILE *g;
    t_await(go);
    g = fshm_open(name, 0, FSHM_GUEST | FSHM_APPEND);
    CHECK(g != NULL);
    for (i = 0; i < RECORDS; i++) {
        int n = record(buf, sizeof buf, w, i);
        if (i % 50 == 7)
            CHECK(fseek(g, 0, SEEK_SET) == 0); /* appends anyway */
        CHECK(fwrite(buf, 1, (size_t)n, g) == (size_t)n);
        CHECK(fflush(g) == 0);
    }
    CHECK(fclose(g) == 0);
}

int main(void)
{
    static char seen[WRITERS][RECORDS];
    static char all[WRITERS * RECORDS * 720];
    int go[2], w, i;
    pid_t pids[WRITERS];
    FILE *o;
    size_t n, expect = 0;
    char *p, buf[1024];

    t_init();
    t_name(name, sizeof name, "append");
    t_pipe(go);
    for (w = 0; w < WRITERS; w++) {
        pids[w] = t_fork();
        if (pids[w] == 0) {
            close(go[1]);
            appender(w, go[0]);
            t_child_exit(0);
        }
        for (i = 0; i < RECORDS; i++)
            expect += (size_t)record(buf, sizeof buf, w, i);
    }
    o = fshm_create(name, 0600);
    CHECK(o != NULL);
    for (w = 0; w < WRITERS; w++)
        t_signal(go[1], 'g');
    for (w = 0; w < WRITERS; w++)
        t_wait_ok(pids[w], "appender");

    n = fread(all, 1, sizeof all - 1, o);
    CHECKF(n == expect, "stream holds %zu bytes, want %zu", n, expect);
    all[n] = 0;
    for (p = all; *p;) {
        int rw, ri, len, k;
        char *nl = strchr(p, '\n');
        CHECK(nl != NULL);
        CHECKF(sscanf(p, "%d %d %d %n", &rw, &ri, &len, &k) == 3, "bad record at %ld",
               (long)(p - all));
        CHECK(rw >= 0 && rw < WRITERS && ri >= 0 && ri < RECORDS);
        CHECKF(!seen[rw][ri], "record %d/%d twice", rw, ri);
        seen[rw][ri] = 1;
        CHECK(record(buf, sizeof buf, rw, ri) == (int)(nl + 1 - p));
        CHECKF(memcmp(buf, p, (size_t)(nl + 1 - p)) == 0, "record %d/%d torn", rw, ri);
        p = nl + 1;
    }
    for (w = 0; w < WRITERS; w++)
        for (i = 0; i < RECORDS; i++)
            CHECKF(seen[w][i], "record %d/%d missing", w, i);

    /* The owner's own writes, without FSHM_APPEND, go where it is: at the end now. */
    CHECK(fputs("end\n", o) >= 0 && fflush(o) == 0);
    CHECK(fseek(o, 0, SEEK_END) == 0 && ftell(o) == (long)expect + 4);
    CHECK(fclose(o) == 0);
    close(go[0]);
    close(go[1]);
    t_cleanup();
    printf("test_append: ok\n");
    return 0;
}
