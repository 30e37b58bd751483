/*
 * consumer.c — the C consumer of the mixed example: follows a stream until its
 * owner closes it, reading the bytes through the stream's fd with read(2).
 *
 * read(2) past the committed length returns zeros (the object is larger than the
 * committed bytes), so the consumer asks the FILE* for the length first: fshm_wait
 * says when there is more, fseek(SEEK_END)/ftell give the length, and fseek back
 * plus fflush puts the fd's offset at the position again (shmfile.h, fshm_sync).
 */
#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include <shmfile.h>

#include "mixed.h"

/* The committed length of `f`'s stream, leaving the FILE* and its fd at `pos`. */
static long stream_length(FILE *f, long pos)
{
    if (fseek(f, 0, SEEK_END) != 0)
        return -1;
    long len = ftell(f);
    if (len < 0 || fseek(f, pos, SEEK_SET) != 0 || fflush(f) != 0)
        return -1;
    return len;
}

long mixed_c_consume(const char *name, char *out, size_t cap, long timeout_ms)
{
    FILE *f = fshm_open(name, 0, FSHM_GUEST | FSHM_RDONLY);
    if (f == NULL)
        return -1;
    int fd = fileno(f);
    long got = 0;
    int e = 0;
    for (;;) {
        int w = fshm_wait(f, timeout_ms);
        if (w < 0) {
            e = errno;
            break;
        }
        long len = stream_length(f, got);
        if (len < 0) {
            e = errno;
            break;
        }
        if (len > got) {
            if ((size_t)len > cap) {
                e = ENOBUFS;
                break;
            }
            ssize_t n = read(fd, out + got, (size_t)(len - got));
            if (n <= 0) {
                e = n < 0 ? errno : EIO;
                break;
            }
            got += n;
            continue;
        }
        if (w == 0)
            break; /* the owner closed the stream (or died) and all was read */
    }
    if (fclose(f) != 0 && e == 0)
        e = errno;
    if (e != 0) {
        errno = e;
        return -1;
    }
    return got;
}
