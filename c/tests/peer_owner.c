/*
 * peer_owner.c — the C side of "C owner, Rust guest" (driven by fshm-ffi/tests/c_api.rs,
 * not run on its own). Creates argv[1], writes "hello from c\n", prints "ready" on
 * stdout, waits for a line on stdin, then checks that a guest appended
 * "reply from rust\n", and fcloses (which removes the name).
 */
#include "common.h"

int main(int argc, char **argv)
{
    FILE *o;
    char buf[256];
    size_t n;
    t_init();
    CHECK(argc == 2);
    snprintf(t_names[t_nnames++], sizeof t_names[0], "%s", argv[1]);
    o = fshm_create(argv[1], 0600);
    CHECKF(o != NULL, "create %s", argv[1]);
    CHECK(fputs("hello from c\n", o) >= 0 && fflush(o) == 0);
    printf("ready\n");
    fflush(stdout);
    CHECK(fgets(buf, sizeof buf, stdin) != NULL);
    n = fread(buf, 1, sizeof buf - 1, o);
    buf[n] = 0;
    CHECKF(strcmp(buf, "reply from rust\n") == 0, "read \"%s\"", buf);
    CHECK(fclose(o) == 0);
    CHECK(!t_exists(argv[1]));
    printf("peer_owner: ok\n");
    return 0;
}
