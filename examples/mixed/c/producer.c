/*
 * producer.c — the C producer of the mixed example: appends numbered lines to an
 * existing stream through a FILE* that shmfile.h's fshm_open returns.
 */
#include <errno.h>
#include <stdio.h>

#include <shmfile.h>

#include "mixed.h"

int mixed_c_produce(const char *name, const char *tag, unsigned count)
{
    FILE *f = fshm_open(name, 0, FSHM_GUEST | FSHM_APPEND);
    if (f == NULL)
        return -1;
    for (unsigned i = 0; i < count; i++) {
        /* Each line reaches the stream whole at fflush: appenders never interleave
         * inside it. */
        if (fprintf(f, "%s %u\n", tag, i) < 0 || fflush(f) != 0) {
            int e = errno;
            fclose(f);
            errno = e;
            return -1;
        }
    }
    return fclose(f) == 0 ? 0 : -1;
}
