// test_cxx.cpp — shmfile.h is clean C++: it compiles with g++ -Wall -Wextra -Werror,
// its declarations have C linkage (this links against the library), and the API
// works from C++.
#include "shmfile.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <unistd.h>

static int failures = 0;

#define EXPECT(cond)                                                                  \
    do {                                                                              \
        if (!(cond)) {                                                                \
            std::printf("FAIL %s:%d: %s (errno %d)\n", __FILE__, __LINE__, #cond, errno); \
            failures++;                                                               \
        }                                                                             \
    } while (0)

int main()
{
    const std::string name = "/fshm-ct-cxx-" + std::to_string(getpid());
    unsigned char major = 0, minor = 0, patch = 0;
    const char *extra = nullptr;
    shmfile_get_version(&major, &minor, &patch, &extra);
    EXPECT(major == 1 && minor == 2 && patch == 0 && std::strcmp(extra, "fshm") == 0);

    FILE *o = fshm_open(name.c_str(), 0600, FSHM_OWNER | FSHM_APPEND);
    EXPECT(o != nullptr);
    if (o == nullptr)
        return 1;
    EXPECT(std::fputs("from c++", o) >= 0 && std::fflush(o) == 0);
    EXPECT(fshm_chmod(o, 0640) == 0);
    EXPECT(fshm_chgrp(o, getegid()) == 0);
    EXPECT(fshm_sync(o) == 0);
    EXPECT(fshm_owner_state(o) == FSHM_OWNER_ALIVE);

    FILE *g = fshm_open(name.c_str(), 0, FSHM_GUEST | FSHM_RDONLY | FSHM_BLOCK);
    EXPECT(g != nullptr);
    EXPECT(fshm_wait(g, 1000) == 1);
    char buf[32] = {0};
    EXPECT(std::fread(buf, 1, 8, g) == 8 && std::string(buf) == "from c++");
    errno = 0;
    EXPECT(fshm_wait(g, 0) == -1 && errno == ETIMEDOUT);
    EXPECT(std::fclose(g) == 0);

    FILE *g2 = fshm_guest_open(name.c_str());
    EXPECT(g2 != nullptr && std::fclose(g2) == 0);
    errno = 0;
    EXPECT(fshm_create(name.c_str(), 0600) == nullptr && errno == EEXIST);
    EXPECT(std::fclose(o) == 0);

    FILE *p = fshm_open(name.c_str(), 0600, FSHM_OWNER | FSHM_PERSIST | FSHM_RECLAIM);
    EXPECT(p != nullptr && std::fclose(p) == 0);
    EXPECT(fshm_force_destroy(name.c_str()) == 0);
    errno = 0;
    EXPECT(fshm_force_destroy(name.c_str()) == -1 && errno == ENOENT);
    EXPECT(FSHM_OWNER_CLOSED == 2 && FSHM_OWNER_DEAD == 3);

    std::fflush(stdout);
    _fshm_printCopyrightVersion();
    if (failures == 0)
        std::printf("test_cxx: ok\n");
    return failures == 0 ? 0 : 1;
}
