/*
 * guest.c — the classic guest (after shmfile's example pair), in C.
 *
 * Opens the owner's stream (owner.c, or owner.rs in Rust), reads the record
 * "access-count=NNNNNNNNNN ...", bumps its 10-digit counter and writes it back
 * in place.
 *
 *   cc -std=c99 guest.c $(pkg-config --cflags --libs shmfile) -o guest
 *   ./guest /fshm-classic
 *
 * A guest never removes the name: its fclose(3) only closes its own handle.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <shmfile.h>

#define PREFIX "access-count="
#define DIGITS 10

int main(int argc, char **argv)
{
    const char *name = argc > 1 ? argv[1] : "/fshm-classic";
    FILE *f = fshm_guest_open(name);
    if (f == NULL) {
        fprintf(stderr, "guest: cannot open %s: %s\n", name, strerror(errno));
        return 1;
    }

    char rec[sizeof PREFIX - 1 + DIGITS];
    size_t got = fread(rec, 1, sizeof rec, f);
    unsigned long long count = 0;
    int ok = got == sizeof rec && memcmp(rec, PREFIX, sizeof PREFIX - 1) == 0;
    for (size_t i = sizeof PREFIX - 1; ok && i < sizeof rec; i++) {
        if (rec[i] < '0' || rec[i] > '9')
            ok = 0;
        else
            count = count * 10 + (unsigned long long)(rec[i] - '0');
    }
    if (!ok) {
        fprintf(stderr, "guest: %s: not a classic record\n", name);
        fclose(f);
        return 1;
    }

    /* A seek between a read and a write, as C requires; then the new digits
     * go over the old ones, and fflush makes them visible to every process. */
    if (fseek(f, (long)(sizeof PREFIX - 1), SEEK_SET) != 0
        || fprintf(f, "%0*llu", DIGITS, count + 1) != DIGITS
        || fflush(f) != 0) {
        fprintf(stderr, "guest: cannot update %s: %s\n", name, strerror(errno));
        fclose(f);
        return 1;
    }
    if (fclose(f) != 0) {
        fprintf(stderr, "guest: cannot close %s: %s\n", name, strerror(errno));
        return 1;
    }
    printf("guest: access count %llu -> %llu\n", count, count + 1);
    return 0;
}
