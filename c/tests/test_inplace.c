/*
 * test_inplace.c — between refills, the buffer of a linear stream's FILE* points
 * into the mapping, so fread copies once. Random sequences of stdio calls (fread,
 * fwrite, fgetc, ungetc, fputc, fgets, fseek, ftell, fflush, rewind), with and
 * without a seek between reading and writing, must give the same results and leave
 * the same bytes on a stream as on a plain file; guests (read-write and read-only)
 * must read those bytes back; refills of every size near a buffer's end agree.
 * Large fwrites go straight to the stream (no copy through the buffer) and small
 * ones are buffered again after them, except on FSHM_APPEND FILE*s, whose writes
 * stay whole. With FSHM_PORTABLE_FILE=1 (or off glibc x86_64/aarch64) the same
 * sequences run in the portable mode, which copies through the buffer.
 */
#include "common.h"

#define MAX_FILE (1u << 20)
#define MAX_IO (200 * 1000)

static char name[300];
static unsigned char *wbuf, *abuf, *bbuf;
static unsigned long long rng;
static int trace; /* FSHM_TRACE=1: print each call (to debug a failing seed) */

static unsigned long long next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static size_t pick_size(void)
{
    static const size_t sizes[] = {1,     2,     7,     100,   4095,   4096,  5000,
                                   65534, 65535, 65536, 65537, 70000, 131072, MAX_IO};
    return sizes[next() % (sizeof sizes / sizeof sizes[0])];
}

static size_t read_whole(FILE *f, unsigned char *buf);

/* FSHM_TRACE: where the whole contents first differ (to debug a failing seed). */
static void show_first_difference(FILE *f, FILE *p)
{
    size_t na, nb, d = 0;
    if (!trace)
        return;
    fflush(f);
    fflush(p);
    na = read_whole(f, abuf);
    nb = read_whole(p, bbuf);
    while (d < na && d < nb && abuf[d] == bbuf[d])
        d++;
    printf("contents: %zu vs %zu bytes, first difference at %zu\n", na, nb, d);
}

/* Runs `ops` random calls on the stream f and the plain file p, comparing each
 * result. strict: a seek always separates reading from writing, as C requires;
 * otherwise writes follow reads directly too, which glibc handles for plain files
 * (it writes at the read position) and fshm must handle the same way (glibc only:
 * see main). */
static void random_ops(FILE *f, FILE *p, int ops, int strict, int seed)
{
    int i, last_dir = 0, last_getc = EOF, after_ungetc = 0, pushed_other = 0;
    for (i = 0; i < ops; i++) {
        int op = (int)(next() % 13), dir = 0;
        long ra = 0, rb = 0;
        if (after_ungetc && (op == 1 || op == 4 || op == 12))
            op = 0; /* writes wait for a seek after an ungetc (glibc's pushback
                     * arithmetic then depends on where its buffer starts) */
        if (pushed_other && (op == 9 || op == 10))
            op = 0; /* so do ftell and fflush after pushing back another byte: glibc
                     * then counts from its buffer's end, wherever that is */
        if (op == 1 || op == 4 || op == 12)
            dir = 2;
        else if (op == 0 || op == 2 || op == 3 || op == 5)
            dir = 1;
        /* Writing then reading needs a flush or seek even for glibc on a plain
         * file (it then reads stale bytes), so only reading then writing goes
         * without one in the non-strict runs. */
        if (dir != 0 && last_dir != 0 && dir != last_dir && (strict || last_dir == 2)) {
            CHECK(fseek(f, 0, SEEK_CUR) == 0 && fseek(p, 0, SEEK_CUR) == 0);
            after_ungetc = 0;
        }
        if (trace)
            printf("seed %d/%d op %d: %d (at %ld)\n", seed, strict, i, op,
                   pushed_other ? -1L : ftell(p));
        switch (op) {
        case 0: { /* fread */
            size_t n = pick_size();
            ra = (long)fread(abuf, 1, n, f);
            rb = (long)fread(bbuf, 1, n, p);
            CHECKF(ra == rb, "seed %d op %d: fread(%zu) %ld vs %ld", seed, i, n, ra, rb);
            if (memcmp(abuf, bbuf, (size_t)ra) != 0) {
                long d = 0;
                while (abuf[d] == bbuf[d])
                    d++;
                show_first_difference(f, p);
                CHECKF(0, "seed %d op %d: fread(%zu) bytes differ from byte %ld: %d vs %d",
                       seed, i, n, d, abuf[d], bbuf[d]);
            }
            break;
        }
        case 1: { /* fwrite, kept inside MAX_FILE */
            size_t n = pick_size(), k;
            long at = ftell(p);
            if (at < 0 || (size_t)at + n > MAX_FILE)
                n = at >= 0 && (size_t)at < MAX_FILE ? MAX_FILE - (size_t)at : 0;
            for (k = 0; k < n; k++)
                wbuf[k] = (unsigned char)next();
            ra = (long)fwrite(wbuf, 1, n, f);
            rb = (long)fwrite(wbuf, 1, n, p);
            CHECKF(ra == rb, "seed %d op %d: fwrite(%zu) %ld vs %ld", seed, i, n, ra, rb);
            break;
        }
        case 2: /* fgetc */
            ra = fgetc(f);
            rb = fgetc(p);
            CHECKF(ra == rb, "seed %d op %d: fgetc %ld vs %ld", seed, i, ra, rb);
            last_getc = (int)ra;
            break;
        case 3: /* ungetc, right after a successful fgetc: the same or another byte */
            if (last_getc == EOF)
                break;
            {
                int c = next() % 2 ? last_getc : (int)(next() & 0xff);
                ra = ungetc(c, f);
                rb = ungetc(c, p);
                CHECKF(ra == rb, "seed %d op %d: ungetc %ld vs %ld", seed, i, ra, rb);
                after_ungetc = 1;
                pushed_other |= c != last_getc;
            }
            break;
        case 4: /* fputc */
            if (ftell(p) >= (long)MAX_FILE)
                break;
            {
                int c = (int)(next() & 0xff);
                ra = fputc(c, f);
                rb = fputc(c, p);
                CHECKF(ra == rb, "seed %d op %d: fputc %ld vs %ld", seed, i, ra, rb);
            }
            break;
        case 5: { /* fgets */
            char *x = fgets((char *)abuf, 100, f), *y = fgets((char *)bbuf, 100, p);
            CHECKF((x == NULL) == (y == NULL), "seed %d op %d: fgets", seed, i);
            if (x != NULL && trace && strcmp(x, y) != 0)
                printf("\nfgets: %zu bytes [%d %d %d] vs %zu [%d %d %d]\n", strlen(x),
                       (unsigned char)x[0], (unsigned char)x[1], (unsigned char)x[2], strlen(y),
                       (unsigned char)y[0], (unsigned char)y[1], (unsigned char)y[2]);
            if (x != NULL)
                CHECKF(strcmp(x, y) == 0, "seed %d op %d: fgets lines differ", seed, i);
            break;
        }
        case 6: { /* fseek SEEK_SET, sometimes past the end */
            long to = (long)(next() % (MAX_FILE + 1000));
            ra = fseek(f, to, SEEK_SET);
            rb = fseek(p, to, SEEK_SET);
            CHECKF(ra == rb, "seed %d op %d: fseek SET %ld: %ld vs %ld", seed, i, to, ra, rb);
            break;
        }
        case 7: { /* fseek SEEK_CUR, either way, sometimes before 0 */
            long by = (long)(next() % 140000) - 70000;
            long at = ftell(p);
            if (at >= 0 && at + by > (long)MAX_FILE)
                by = 0;
            if (trace)
                printf(" by %ld", by);
            ra = fseek(f, by, SEEK_CUR);
            rb = fseek(p, by, SEEK_CUR);
            CHECKF(ra == rb, "seed %d op %d: fseek CUR %ld: %ld vs %ld", seed, i, by, ra, rb);
            break;
        }
        case 8: { /* fseek SEEK_END */
            long by = -(long)(next() % 70000);
            ra = fseek(f, by, SEEK_END);
            rb = fseek(p, by, SEEK_END);
            CHECKF(ra == rb, "seed %d op %d: fseek END %ld: %ld vs %ld", seed, i, by, ra, rb);
            break;
        }
        case 9: /* ftell */
            ra = ftell(f);
            rb = ftell(p);
            CHECKF(ra == rb, "seed %d op %d: ftell %ld vs %ld", seed, i, ra, rb);
            break;
        case 10: /* fflush */
            ra = fflush(f);
            rb = fflush(p);
            CHECKF(ra == rb, "seed %d op %d: fflush %ld vs %ld", seed, i, ra, rb);
            break;
        case 11: /* rewind */
            rewind(f);
            rewind(p);
            break;
        case 12: { /* fprintf, kept inside MAX_FILE */
            long at = ftell(p);
            unsigned v = (unsigned)next();
            if (at >= 0 && (size_t)at + 40 <= MAX_FILE) {
                ra = fprintf(f, "<%u:%x>", v, v);
                rb = fprintf(p, "<%u:%x>", v, v);
                CHECKF(ra == rb, "seed %d op %d: fprintf %ld vs %ld", seed, i, ra, rb);
            }
            break;
        }
        }
        /* A seek that failed positioned nothing: musl keeps its read-ahead then, and
         * a write would land where that ended. */
        if (((op == 6 || op == 7 || op == 8) && ra == 0) || op == 10 || op == 11) {
            after_ungetc = 0;
            pushed_other = 0;
            last_dir = 0;
        } else if (dir != 0) {
            last_dir = dir;
        }
        if (op != 2)
            last_getc = EOF;
#ifdef __GLIBC__
        if (trace && !pushed_other)
            printf(" -> %ld, now at %ld [rp %ld re %ld wb %ld wp %ld we %ld be %ld fl %x]\n", rb,
                   ftell(p), (long)(f->_IO_read_ptr - f->_IO_buf_base),
                   (long)(f->_IO_read_end - f->_IO_buf_base),
                   (long)(f->_IO_write_base - f->_IO_buf_base),
                   (long)(f->_IO_write_ptr - f->_IO_buf_base),
                   (long)(f->_IO_write_end - f->_IO_buf_base),
                   (long)(f->_IO_buf_end - f->_IO_buf_base), (unsigned)f->_flags & 0xffff);
#else
        if (trace && !pushed_other)
            printf(" -> %ld, now at %ld\n", rb, ftell(p));
#endif
        CHECKF(!!feof(f) == !!feof(p), "seed %d op %d (%d): feof differs", seed, i, op);
        if (!pushed_other)
            CHECKF(ftell(f) == ftell(p), "seed %d op %d (%d): position %ld vs %ld", seed, i, op,
               ftell(f), ftell(p));
    }
}

/* Reads everything from f (from its start) into buf; returns the byte count. */
static size_t read_whole(FILE *f, unsigned char *buf)
{
    size_t n = 0, got;
    rewind(f);
    while ((got = fread(buf + n, 1, 4096, f)) > 0)
        n += got;
    CHECK(!ferror(f));
    return n;
}

static void differential(int seed, int strict)
{
    FILE *f, *p, *g, *r;
    size_t k, n0 = (size_t)(next() % (300 * 1000)), na, nb;

    f = fshm_create(name, 0600);
    CHECK(f != NULL);
    p = tmpfile();
    CHECK(p != NULL);
    for (k = 0; k < n0; k++)
        wbuf[k] = (unsigned char)next();
    CHECK(fwrite(wbuf, 1, n0, f) == n0 && fwrite(wbuf, 1, n0, p) == n0);
    rewind(f);
    rewind(p);
    random_ops(f, p, 150, strict, seed);
    CHECK(fflush(f) == 0 && fflush(p) == 0);

    na = read_whole(f, abuf);
    nb = read_whole(p, bbuf);
    CHECKF(na == nb, "seed %d: %zu bytes vs %zu", seed, na, nb);
    CHECKF(memcmp(abuf, bbuf, na) == 0, "seed %d: contents differ", seed);

    /* Another handle of each kind reads the same bytes. */
    g = fshm_guest_open(name);
    CHECK(g != NULL);
    r = fshm_open(name, 0, FSHM_GUEST | FSHM_RDONLY);
    CHECK(r != NULL);
    CHECK(read_whole(g, abuf) == nb && memcmp(abuf, bbuf, nb) == 0);
    CHECK(read_whole(r, abuf) == nb && memcmp(abuf, bbuf, nb) == 0);
    CHECK(fclose(r) == 0 && fclose(g) == 0);
    CHECK(fclose(f) == 0 && fclose(p) == 0);
}

/* Reads of every size ending at or near a refill's end (65535 bytes in place, then
 * the one left over) see exactly the stream's bytes, through fread and fgetc. */
static void refill_edges(void)
{
    FILE *f, *g;
    size_t total = 3 * 65536 + 3, k, step;
    f = fshm_create(name, 0600);
    CHECK(f != NULL);
    for (k = 0; k < total; k++)
        wbuf[k] = (unsigned char)(k * 7 + k / 65536);
    CHECK(fwrite(wbuf, 1, total, f) == total && fflush(f) == 0);
    g = fshm_guest_open(name);
    CHECK(g != NULL);
    for (step = 65533; step <= 65538; step++) {
        size_t at = 0, got;
        rewind(g);
        while ((got = fread(abuf, 1, step, g)) > 0) {
            CHECKF(memcmp(abuf, wbuf + at, got) == 0, "step %zu at %zu", step, at);
            at += got;
        }
        CHECKF(at == total && feof(g), "step %zu: %zu of %zu bytes", step, at, total);
    }
    /* A seek while most of a large refill is unread (it moves to a spill buffer):
     * ftell, fflush and a no-op fseek keep the position and the bytes. */
    rewind(g);
    CHECK(fread(abuf, 1, 10, g) == 10 && memcmp(abuf, wbuf, 10) == 0);
    CHECK(ftell(g) == 10);
    CHECK(fgetc(g) == wbuf[10] && ungetc(wbuf[10], g) == wbuf[10]);
    CHECK(fflush(g) == 0 && ftell(g) == 10);
    CHECK(fseek(g, 0, SEEK_CUR) == 0 && ftell(g) == 10);
    CHECK(fread(abuf, 1, total - 10, g) == total - 10);
    CHECK(memcmp(abuf, wbuf + 10, total - 10) == 0);
    rewind(g);
    for (k = 0; k < total; k++)
        CHECKF(fgetc(g) == wbuf[k], "fgetc at %zu", k);
    CHECK(fgetc(g) == EOF && feof(g));
    /* A stream exactly one byte long, and an empty one. */
    CHECK(fclose(g) == 0 && fclose(f) == 0);
    f = fshm_create(name, 0600);
    CHECK(f != NULL);
    g = fshm_guest_open(name);
    CHECK(g != NULL);
    CHECK(fgetc(g) == EOF && feof(g));
    clearerr(g);
    CHECK(fputc('x', f) == 'x' && fflush(f) == 0);
    CHECK(fgetc(g) == 'x' && fgetc(g) == EOF);
    CHECK(fclose(g) == 0 && fclose(f) == 0);
}

/* The length a new guest sees. */
static long guest_length(void)
{
    long n;
    FILE *g = fshm_guest_open(name);
    CHECK(g != NULL);
    CHECK(fseek(g, 0, SEEK_END) == 0);
    n = ftell(g);
    CHECK(fclose(g) == 0);
    return n;
}

/* After a write of whole buffers from the caller's memory, the next fwrite of 64 KiB
 * goes straight to the stream (a guest sees it before any fflush); a small fwrite
 * after that is buffered again (but for its first byte); on an FSHM_APPEND FILE*
 * nothing changes: a small fwrite stays in the buffer whole. In the portable mode
 * (no direct writes) stdio buffers as usual; the bytes are the same. */
static void direct_writes(void)
{
    const size_t big = 65536;
    const int direct = !t_portable_file();
    size_t k;
    FILE *f, *a;
    for (k = 0; k < 3 * big + 100; k++)
        wbuf[k] = (unsigned char)(k * 13 + k / 4093);
    f = fshm_create(name, 0600);
    CHECK(f != NULL);
    CHECK(fwrite(wbuf, 1, big, f) == big);
    CHECK(guest_length() == (long)big); /* glibc: no buffer yet, written directly */
    CHECK(fwrite(wbuf + big, 1, big, f) == big);
    CHECKF(!direct || guest_length() == (long)(2 * big), "64 KiB fwrite buffered: %ld",
           guest_length());
    CHECK(fwrite(wbuf + 2 * big, 1, big, f) == big);
    CHECKF(!direct || guest_length() == (long)(3 * big), "64 KiB fwrite buffered: %ld",
           guest_length());
    CHECK(fwrite(wbuf + 3 * big, 1, 60, f) == 60 && fputc(wbuf[3 * big + 60], f) != EOF);
    CHECKF(guest_length() < (long)(3 * big + 61), "small writes not buffered: %ld",
           guest_length());
    CHECK(fprintf(f, "%.39s", (const char *)"0123456789012345678901234567890123456789") == 39);
    memcpy(wbuf + 3 * big + 61, "012345678901234567890123456789012345678", 39);
    CHECK(fflush(f) == 0 && guest_length() == (long)(3 * big + 100));
    rewind(f);
    CHECK(fread(abuf, 1, 3 * big + 200, f) == 3 * big + 100 && feof(f));
    CHECK(memcmp(abuf, wbuf, 3 * big + 100) == 0);
    a = fshm_open(name, 0, FSHM_GUEST | FSHM_APPEND);
    CHECK(a != NULL);
    CHECK(fwrite(wbuf, 1, 2 * big, a) == 2 * big && fwrite(wbuf, 1, big, a) == big);
    CHECK(fwrite(wbuf, 1, 10, a) == 10);
    CHECKF(guest_length() == (long)(6 * big + 100), "append: %ld", guest_length());
    CHECK(fflush(a) == 0 && guest_length() == (long)(6 * big + 110));
    CHECK(fclose(a) == 0 && fclose(f) == 0);
}

int main(void)
{
    int seed;
    const char *v = getenv("FSHM_VALGRIND");
    const char *many = getenv("FSHM_SEEDS"); /* more seeds for a soak run */
    int seeds = many != NULL ? atoi(many) : v != NULL && strcmp(v, "1") == 0 ? 6 : 40;
    t_init();
    trace = getenv("FSHM_TRACE") != NULL;
    t_name(name, sizeof name, "inplace");
    wbuf = malloc(MAX_FILE);
    abuf = malloc(MAX_FILE + MAX_IO);
    bbuf = malloc(MAX_FILE + MAX_IO);
    CHECK(wbuf != NULL && abuf != NULL && bbuf != NULL);
    refill_edges();
    direct_writes();
    for (seed = 1; seed <= seeds; seed++) {
        rng = 0x9e3779b97f4a7c15ULL * (unsigned long long)seed;
        differential(seed, 1);
#ifdef __GLIBC__
        /* Writing right after reading is glibc's extension: musl drops its read-ahead
         * and writes where the read-ahead ended, which depends on the buffer's size. */
        differential(seed, 0);
#endif
    }
    free(wbuf);
    free(abuf);
    free(bbuf);
    t_cleanup();
    printf("test_inplace: ok\n");
    return 0;
}
