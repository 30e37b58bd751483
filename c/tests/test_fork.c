/*
 * test_fork.c — owner and guests in separate processes: what the owner writes with
 * fwrite a guest reads with fread, and back; FSHM_PERSIST keeps the name after the
 * owner's fclose; fshm_force_destroy removes the name while a guest keeps working
 * (and the old owner's fclose then leaves a new stream of that name alone); the
 * owner's fclose removes the name, a guest's never does.
 *
 * Children are forked before the parent opens anything, so they inherit no stream.
 */
#include "common.h"

static char name[300];

static void pattern(char *buf, size_t n, unsigned seed)
{
    size_t i;
    for (i = 0; i < n; i++)
        buf[i] = (char)('a' + (i * 7 + seed) % 26);
}

enum { BIG = 100000 };
static char big[BIG], got[BIG + 64];

static void owner_writes_guest_reads_and_replies(void)
{
    int go[2];
    pid_t pid;
    FILE *o;
    t_name(name, sizeof name, "xproc");
    pattern(big, BIG, 3);
    t_pipe(go);
    pid = t_fork();
    if (pid == 0) {
        FILE *g;
        close(go[1]);
        t_await(go[0]);
        g = fshm_guest_open(name);
        CHECK(g != NULL);
        CHECK(fread(got, 1, sizeof got, g) == BIG);
        CHECK(feof(g) && memcmp(got, big, BIG) == 0);
        CHECK(fshm_owner_state(g) == FSHM_OWNER_ALIVE);
        clearerr(g);
        CHECK(fputs("guest reply", g) >= 0);
        CHECK(fflush(g) == 0);
        CHECK(fclose(g) == 0);
        t_child_exit(0);
    }
    close(go[0]);
    o = fshm_create(name, 0600);
    CHECK(o != NULL);
    CHECK(fwrite(big, 1, BIG, o) == BIG);
    CHECK(fflush(o) == 0);
    t_signal(go[1], 'g');
    t_wait_ok(pid, "guest reader");
    CHECK(t_exists(name)); /* the guest's fclose left the name */
    CHECK(fread(got, 1, sizeof got, o) == 11 && memcmp(got, "guest reply", 11) == 0);
    rewind(o);
    CHECK(fread(got, 1, sizeof got, o) == BIG + 11 && memcmp(got, big, BIG) == 0);
    CHECK(fclose(o) == 0);
    CHECK(!t_exists(name)); /* the owner's fclose removed it */
    close(go[1]);
}

static void persist_keeps_the_name(void)
{
    pid_t pid;
    FILE *g;
    t_name(name, sizeof name, "persist");
    pid = t_fork();
    if (pid == 0) {
        FILE *o = fshm_open(name, 0600, FSHM_OWNER | FSHM_PERSIST);
        CHECK(o != NULL);
        CHECK(fputs("kept", o) >= 0);
        CHECK(fclose(o) == 0);
        CHECK(t_exists(name));
        t_child_exit(0);
    }
    t_wait_ok(pid, "persistent owner");
    CHECK(t_exists(name));
    g = fshm_open(name, 0, FSHM_GUEST | FSHM_PERSIST); /* PERSIST ignored for guests */
    CHECK(g != NULL);
    CHECK(fshm_owner_state(g) == FSHM_OWNER_CLOSED);
    CHECK(fread(got, 1, sizeof got, g) == 4 && memcmp(got, "kept", 4) == 0);
    CHECK(fshm_wait(g, 0) == 0); /* closed owner: end of stream */
    CHECK(fclose(g) == 0);
    CHECK(t_exists(name));
    /* A new owner cannot take the persistent name, even with FSHM_RECLAIM. */
    CHECK_ERR(fshm_open(name, 0600, FSHM_OWNER | FSHM_RECLAIM) == NULL, EEXIST);
    CHECK(fshm_force_destroy(name) == 0);
    CHECK(!t_exists(name));
    CHECK_ERR(fshm_guest_open(name) == NULL, ENOENT);
}

static void force_destroy_while_guest_works(void)
{
    int go[2], ack[2];
    pid_t pid;
    FILE *o, *o2;
    t_name(name, sizeof name, "destroy");
    t_pipe(go);
    t_pipe(ack);
    pid = t_fork();
    if (pid == 0) {
        FILE *g;
        t_await(go[0]);
        g = fshm_guest_open(name);
        CHECK(g != NULL);
        t_signal(ack[1], 'a');
        t_await(go[0]); /* the name is gone now */
        CHECK_ERR(fshm_guest_open(name) == NULL, ENOENT);
        CHECK(fread(got, 1, sizeof got, g) == 6 && memcmp(got, "before", 6) == 0);
        clearerr(g);
        CHECK(fputs("|after", g) >= 0 && fflush(g) == 0);
        rewind(g);
        CHECK(fread(got, 1, sizeof got, g) == 12 && memcmp(got, "before|after", 12) == 0);
        CHECK(fclose(g) == 0);
        t_child_exit(0);
    }
    o = fshm_create(name, 0600);
    CHECK(o != NULL);
    CHECK(fputs("before", o) >= 0 && fflush(o) == 0);
    t_signal(go[1], 'g');
    t_await(ack[0]);
    CHECK(fshm_force_destroy(name) == 0);
    CHECK(!t_exists(name));
    CHECK_ERR(fshm_force_destroy(name) == -1, ENOENT);
    t_signal(go[1], 'g');
    t_wait_ok(pid, "guest of a destroyed name");
    /* The owner still works on the unnamed object and sees the guest's write. */
    CHECK(fseek(o, 0, SEEK_SET) == 0);
    CHECK(fread(got, 1, sizeof got, o) == 12 && memcmp(got, "before|after", 12) == 0);
    /* A new stream takes the name; the old owner's fclose must leave it alone. */
    o2 = fshm_create(name, 0600);
    CHECK(o2 != NULL);
    CHECK(fclose(o) == 0);
    CHECK(t_exists(name));
    CHECK(fshm_owner_state(o2) == FSHM_OWNER_ALIVE);
    CHECK(fclose(o2) == 0);
    CHECK(!t_exists(name));
    close(go[0]); close(go[1]); close(ack[0]); close(ack[1]);
}

int main(void)
{
    t_init();
    owner_writes_guest_reads_and_replies();
    persist_keeps_the_name();
    force_destroy_while_guest_works();
    t_cleanup();
    printf("test_fork: ok\n");
    return 0;
}
