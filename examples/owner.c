/*
 * owner.c — the classic owner (after shmfile's example pair), in C.
 *
 * Creates the stream (mode 0666), writes one record through the stream's fd,
 * as shmfile's owner did, then waits until a line (or end-of-file) arrives on
 * standard input, and prints the record as the guests left it. Guests
 * (guest.c, or guest.rs in Rust) bump its access counter; the Rust owner
 * (owner.rs) and this one are interchangeable.
 *
 *   cc -std=c99 -D_GNU_SOURCE owner.c $(pkg-config --cflags --libs shmfile) -o owner
 *   ./owner /fshm-classic
 *
 * fclose(3) of the owner's FILE* removes the name (no FSHM_PERSIST).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <shmfile.h>

static const char record[] = "access-count=0000000000 hello from the owner\n";

static int fail(const char *what, const char *name)
{
    fprintf(stderr, "owner: %s %s: %s\n", what, name, strerror(errno));
    return 1;
}

int main(int argc, char **argv)
{
    const char *name = argc > 1 ? argv[1] : "/fshm-classic";
    FILE *f = fshm_open(name, 0666, FSHM_OWNER);
    if (f == NULL)
        return fail("cannot create", name);

    /* Write the record through the fd: the library keeps the fd's offset at
     * the FILE*'s position (0 here), and fshm_sync makes the bytes join the
     * stream's length now, so that guests see them. */
    int fd = fileno(f);
    size_t done = 0, len = sizeof record - 1;
    while (done < len) {
        ssize_t n = write(fd, record + done, len - done);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fclose(f);
            return fail("cannot write", name);
        }
        done += (size_t)n;
    }
    if (fshm_sync(f) != 0) {
        fclose(f);
        return fail("cannot sync", name);
    }
    long size;
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0) {
        fclose(f);
        return fail("cannot seek", name);
    }
    printf("owner: %s holds %ld bytes; run guests, then press Enter (or close stdin)\n",
           name, size);
    fflush(stdout);

    int c;
    while ((c = getchar()) != EOF && c != '\n')
        ;

    /* rewind drops whatever the FILE* had buffered: read the bytes as they are now. */
    char now[4096];
    rewind(f);
    size_t got = fread(now, 1, sizeof now, f);
    if (ferror(f)) {
        fclose(f);
        return fail("cannot read", name);
    }
    printf("owner: final record: %.*s", (int)got, now);
    if (got > 0 && now[got - 1] != '\n')
        putchar('\n');
    if (fclose(f) != 0)
        return fail("cannot close", name);
    return fflush(stdout) == 0 ? 0 : 1;
}
