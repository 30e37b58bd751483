/*
 * peer_guest.c — the C side of "Rust owner, C guest" (driven by fshm-ffi/tests/c_api.rs,
 * not run on its own). argv[1] is a stream whose owner wrote "hello from rust\n";
 * reads it, checks it, and appends "reply from c\n".
 */
#include "common.h"

int main(int argc, char **argv)
{
    FILE *g;
    char buf[256];
    size_t n;
    t_init();
    CHECK(argc == 2);
    g = fshm_guest_open(argv[1]);
    CHECKF(g != NULL, "guest open of %s", argv[1]);
    CHECK(fshm_owner_state(g) == FSHM_OWNER_ALIVE);
    n = fread(buf, 1, sizeof buf - 1, g);
    buf[n] = 0;
    CHECKF(strcmp(buf, "hello from rust\n") == 0, "read \"%s\"", buf);
    clearerr(g);
    CHECK(fputs("reply from c\n", g) >= 0);
    CHECK(fclose(g) == 0);
    printf("peer_guest: ok\n");
    return 0;
}
