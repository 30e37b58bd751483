/*
 * test_block.c — FSHM_BLOCK: a guest's `while (fgets(...))` follows a live stream,
 * receiving lines as the owner writes them, and ends when the owner fcloses or is
 * killed with SIGKILL. fshm_wait: -1/ETIMEDOUT on an idle stream, 1 when data is
 * there (also when it sits in the FILE*'s buffer), 0 once the owner has closed.
 */
#include "common.h"
#include <time.h>

static char name[300];
enum { LINES = 50 };

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* The guest follows LINES lines, acknowledging each before the next is written:
 * it receives them while the owner lives, not all at the end. */
static void follow_until_owner_closes(void)
{
    int go[2], ack[2], i;
    pid_t pid;
    FILE *o;
    char line[64];
    t_name(name, sizeof name, "follow");
    t_pipe(go);
    t_pipe(ack);
    pid = t_fork();
    if (pid == 0) {
        FILE *g;
        int n = 0;
        char want[64];
        t_await(go[0]);
        g = fshm_open(name, 0, FSHM_GUEST | FSHM_BLOCK);
        CHECK(g != NULL);
        while (fgets(line, sizeof line, g)) {
            snprintf(want, sizeof want, "line %d\n", n);
            CHECKF(strcmp(line, want) == 0, "got \"%s\", want \"%s\"", line, want);
            n++;
            t_signal(ack[1], 'a');
        }
        CHECK(feof(g) && !ferror(g));
        CHECK(n == LINES);
        CHECK(fshm_owner_state(g) == FSHM_OWNER_CLOSED);
        CHECK(fshm_wait(g, -1) == 0);
        CHECK(fclose(g) == 0);
        t_child_exit(0);
    }
    o = fshm_create(name, 0600);
    CHECK(o != NULL);
    t_signal(go[1], 'g');
    for (i = 0; i < LINES; i++) {
        CHECK(fprintf(o, "line %d\n", i) > 0);
        CHECK(fflush(o) == 0);
        t_await(ack[0]);
    }
    CHECK(fclose(o) == 0);
    t_wait_ok(pid, "following guest");
    CHECK(!t_exists(name));
    close(go[0]); close(go[1]); close(ack[0]); close(ack[1]);
}

/* The owner runs in its own child and is killed: the follower gets end-of-file and
 * sees the owner dead; the name stays until someone removes it. */
static void follow_until_owner_is_killed(void)
{
    int ready[2], ack[2], hold[2];
    pid_t owner, guest;
    int st;
    t_name(name, sizeof name, "killed");
    t_pipe(ready);
    t_pipe(ack);
    t_pipe(hold);
    owner = t_fork();
    if (owner == 0) {
        FILE *o = fshm_create(name, 0600);
        CHECK(o != NULL);
        CHECK(fputs("line 0\n", o) >= 0 && fflush(o) == 0);
        t_signal(ready[1], 'r');
        t_await(hold[0]); /* never returns: killed first */
        t_child_exit(1);
    }
    t_await(ready[0]);
    guest = t_fork();
    if (guest == 0) {
        char line[64];
        FILE *g = fshm_open(name, 0, FSHM_GUEST | FSHM_BLOCK);
        CHECK(g != NULL);
        CHECK(fshm_owner_state(g) == FSHM_OWNER_ALIVE);
        CHECK(fgets(line, sizeof line, g) != NULL && strcmp(line, "line 0\n") == 0);
        t_signal(ack[1], 'a');
        CHECK(fgets(line, sizeof line, g) == NULL); /* blocks until the owner dies */
        CHECK(feof(g) && !ferror(g));
        CHECK(fshm_owner_state(g) == FSHM_OWNER_DEAD);
        CHECK(fshm_wait(g, -1) == 0);
        CHECK(fclose(g) == 0);
        t_child_exit(0);
    }
    t_await(ack[0]);
    CHECK(kill(owner, SIGKILL) == 0);
    CHECK(waitpid(owner, &st, 0) == owner && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    t_wait_ok(guest, "guest of a killed owner");
    CHECK(t_exists(name));
    CHECK(fshm_force_destroy(name) == 0);
    close(ready[0]); close(ready[1]); close(ack[0]); close(ack[1]);
    close(hold[0]); close(hold[1]);
}

static void wait_with_timeout(void)
{
    int ready[2], go[2];
    pid_t owner;
    FILE *g;
    char c;
    double t0;
    t_name(name, sizeof name, "wait");
    t_pipe(ready);
    t_pipe(go);
    owner = t_fork();
    if (owner == 0) {
        FILE *o = fshm_create(name, 0600);
        CHECK(o != NULL);
        t_signal(ready[1], 'r');
        t_await(go[0]);
        CHECK(fputs("xy", o) >= 0 && fflush(o) == 0);
        t_await(go[0]);
        CHECK(fclose(o) == 0);
        t_child_exit(0);
    }
    t_await(ready[0]);
    g = fshm_guest_open(name);
    CHECK(g != NULL);
    t0 = now_ms();
    CHECK_ERR(fshm_wait(g, 100) == -1, ETIMEDOUT);
    CHECKF(now_ms() - t0 >= 90, "fshm_wait(100) returned after %.1f ms", now_ms() - t0);
    CHECK_ERR(fshm_wait(g, 0) == -1, ETIMEDOUT);
    t_signal(go[1], 'g');
    CHECK(fshm_wait(g, 20000) == 1); /* wakes when the owner's write lands */
    CHECK(fread(&c, 1, 1, g) == 1 && c == 'x');
    CHECK(fshm_wait(g, 0) == 1); /* 'y' sits in the FILE*'s buffer */
    CHECK(fread(&c, 1, 1, g) == 1 && c == 'y');
    CHECK_ERR(fshm_wait(g, 10) == -1, ETIMEDOUT);
    CHECK(fshm_owner_state(g) == FSHM_OWNER_ALIVE);
    t_signal(go[1], 'g');
    CHECK(fshm_wait(g, -1) == 0); /* wakes when the owner closes */
    CHECK(fshm_owner_state(g) == FSHM_OWNER_CLOSED);
    t_wait_ok(owner, "owner");
    CHECK(!t_exists(name));
    CHECK(fclose(g) == 0);
    close(ready[0]); close(ready[1]); close(go[0]); close(go[1]);
}

int main(void)
{
    t_init();
    follow_until_owner_closes();
    follow_until_owner_is_killed();
    wait_with_timeout();
    t_cleanup();
    printf("test_block: ok\n");
    return 0;
}
