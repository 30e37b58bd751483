/*
 * roundtrip.c — a C user of an installed libshmfile, built by ci/install-check.sh
 * with pkg-config, with CMake (find_package) and with Meson (dependency()).
 *
 * Creates the stream argv[1], writes a line, reads it back through a guest and
 * checks that the library reports EXPECT_VERSION, the version the build system
 * found. Removes the stream on failure too.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <shmfile.h>

#ifndef EXPECT_VERSION
#error "build with -DEXPECT_VERSION=\"X.Y.Z\", the version the build system found"
#endif

#define CHECK(c) do { if (!(c)) { \
    printf("roundtrip: line %d: %s failed (errno %d: %s)\n", __LINE__, #c, errno, \
           strerror(errno)); \
    if (name) fshm_force_destroy(name); \
    return 1; } } while (0)

int main(int argc, char **argv)
{
    const char *name = NULL;
    CHECK(argc == 2);
    name = argv[1];
    unsigned char major = 0, minor = 0, patch = 0;
    const char *extra = NULL;
    shmfile_get_version(&major, &minor, &patch, &extra);
    char version[32];
    snprintf(version, sizeof version, "%u.%u.%u", major, minor, patch);
    CHECK(strcmp(version, EXPECT_VERSION) == 0);
    CHECK(extra && strcmp(extra, "fshm") == 0);

    const char msg[] = "hello through an installed libshmfile\n";
    FILE *owner = fshm_open(name, 0600, FSHM_OWNER);
    CHECK(owner != NULL);
    CHECK(fputs(msg, owner) >= 0 && fflush(owner) == 0);

    FILE *guest = fshm_guest_open(name);
    CHECK(guest != NULL);
    char buf[128] = {0};
    CHECK(fgets(buf, sizeof buf, guest) != NULL);
    CHECK(strcmp(buf, msg) == 0);
    CHECK(fshm_owner_state(guest) == FSHM_OWNER_ALIVE);
    CHECK(fclose(guest) == 0);

    CHECK(fclose(owner) == 0);
    errno = 0;
    CHECK(fshm_guest_open(name) == NULL && errno == ENOENT); /* the owner removed it */
    printf("roundtrip: ok (shmfile %s %s)\n", version, extra);
    return 0;
}
