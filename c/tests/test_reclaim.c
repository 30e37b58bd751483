/*
 * test_reclaim.c — FSHM_RECLAIM and fshm_owner_state: an owner killed with SIGKILL
 * reads as FSHM_OWNER_DEAD from a guest; creating the name again fails with EEXIST
 * without FSHM_RECLAIM and succeeds with it; FSHM_RECLAIM never takes a live
 * owner's stream, a persistent one, or an object that is not an fshm stream.
 */
#include "common.h"

static char name[300];

/* Forks an owner child that creates `name` with `flags`, writes "old", signals, and
 * waits to be killed. Returns its pid. */
static pid_t owner_child(int flags, int hold[2])
{
    int ready[2];
    pid_t pid;
    t_pipe(ready);
    pid = t_fork();
    if (pid == 0) {
        FILE *o = fshm_open(name, 0644, FSHM_OWNER | flags);
        CHECK(o != NULL);
        CHECK(fputs("old", o) >= 0 && fflush(o) == 0);
        t_signal(ready[1], 'r');
        t_await(hold[0]);
        t_child_exit(1);
    }
    t_await(ready[0]);
    close(ready[0]);
    close(ready[1]);
    return pid;
}

static void kill_child(pid_t pid)
{
    int st;
    CHECK(kill(pid, SIGKILL) == 0);
    CHECK(waitpid(pid, &st, 0) == pid && WIFSIGNALED(st));
}

int main(void)
{
    int hold[2], fd;
    pid_t pid;
    FILE *g, *o;
    char buf[16];

    t_init();
    t_pipe(hold);

    /* Alive, then dead. */
    t_name(name, sizeof name, "reclaim");
    pid = owner_child(0, hold);
    g = fshm_guest_open(name);
    CHECK(g != NULL);
    CHECK(fshm_owner_state(g) == FSHM_OWNER_ALIVE);
    CHECK_ERR(fshm_open(name, 0600, FSHM_OWNER | FSHM_RECLAIM) == NULL, EEXIST);
    kill_child(pid);
    CHECK(fshm_owner_state(g) == FSHM_OWNER_DEAD);
    CHECK(fshm_wait(g, -1) == 1); /* unread data first */
    CHECK(fread(buf, 1, sizeof buf, g) == 3 && memcmp(buf, "old", 3) == 0);
    CHECK(fshm_wait(g, -1) == 0); /* then end of stream */
    CHECK(fclose(g) == 0);
    CHECK(t_exists(name));

    /* Without FSHM_RECLAIM: EEXIST, nothing changed. With it: a fresh stream. */
    CHECK_ERR(fshm_create(name, 0600) == NULL, EEXIST);
    CHECK_ERR(fshm_open(name, 0600, FSHM_OWNER | FSHM_PERSIST) == NULL, EEXIST);
    g = fshm_guest_open(name);
    CHECK(g != NULL && fshm_owner_state(g) == FSHM_OWNER_DEAD);
    CHECK(fclose(g) == 0);
    o = fshm_open(name, 0600, FSHM_OWNER | FSHM_RECLAIM);
    CHECK(o != NULL);
    CHECK(fshm_owner_state(o) == FSHM_OWNER_ALIVE);
    CHECK(fread(buf, 1, sizeof buf, o) == 0); /* empty: not the old stream */
    {
        struct stat st;
        CHECK(t_fstat(o, name, &st) == 0 && (st.st_mode & 07777) == 0600);
    }
    g = fshm_guest_open(name);
    CHECK(g != NULL && fshm_owner_state(g) == FSHM_OWNER_ALIVE);
    CHECK(fclose(g) == 0);
    CHECK(fclose(o) == 0);
    CHECK(!t_exists(name));

    /* A dead owner's persistent stream is never reclaimed. */
    t_name(name, sizeof name, "reclaim-persist");
    pid = owner_child(FSHM_PERSIST, hold);
    kill_child(pid);
    CHECK_ERR(fshm_open(name, 0600, FSHM_OWNER | FSHM_RECLAIM) == NULL, EEXIST);
    g = fshm_guest_open(name);
    CHECK(g != NULL && fshm_owner_state(g) == FSHM_OWNER_DEAD);
    CHECK(fread(buf, 1, sizeof buf, g) == 3 && memcmp(buf, "old", 3) == 0);
    CHECK(fclose(g) == 0);
    CHECK(fshm_force_destroy(name) == 0);

    /* An object that is not an fshm stream is never reclaimed. */
    t_name(name, sizeof name, "reclaim-alien");
    fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    CHECK(fd >= 0);
    CHECK(write(fd, "not fshm", 8) == 8);
    CHECK_ERR(fshm_open(name, 0600, FSHM_OWNER | FSHM_RECLAIM) == NULL, EEXIST);
    CHECK(pread(fd, buf, 8, 0) == 8 && memcmp(buf, "not fshm", 8) == 0);
    CHECK(t_exists(name));
    CHECK(close(fd) == 0);
    CHECK(fshm_force_destroy(name) == 0);

    /* Reclaiming a name that does not exist simply creates it. */
    t_name(name, sizeof name, "reclaim-fresh");
    o = fshm_open(name, 0600, FSHM_OWNER | FSHM_RECLAIM);
    CHECK(o != NULL);
    CHECK(fclose(o) == 0);
    CHECK(!t_exists(name));

    close(hold[0]);
    close(hold[1]);
    t_cleanup();
    printf("test_reclaim: ok\n");
    return 0;
}
