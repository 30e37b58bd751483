/*
 * test_names.c — hierarchical names ("/streams/my_stream") from C: owners and
 * guests in separate processes, the flat shm object each name maps to ('/' as
 * "%2F", '%' as "%25"), no directory in /dev/shm, reclaim and fshm_force_destroy
 * by such names, every refused form (EINVAL, nothing created), a flat name that
 * looks like an escaped one, the limit of 255 bytes (NAME_MAX) on the object name,
 * and names starting with "sem." (the files of glibc's named semaphores): EINVAL,
 * and the semaphore's file left alone.
 *
 * The object names are computed here independently of the library, and probed
 * with shm_open(3) directly.
 */
#include "common.h"

#include <dirent.h>

static char base[64];
static char got[4096];

/* Registers `name` for cleanup: fshm_force_destroy at the end, and its object
 * name too, which the alarm handler's shm_unlink reaches. */
static void reg(const char *name, const char *object)
{
    CHECK(t_nnames + 2 <= 32);
    snprintf(t_names[t_nnames++], sizeof t_names[0], "%s", name);
    snprintf(t_names[t_nnames++], sizeof t_names[0], "%s", object);
}

/* The object name of the stream `name`: "/" + components joined by "%2F", each
 * '%' written "%25". */
static void encode(const char *name, char *out, size_t size)
{
    size_t o = 0;
    if (*name == '/')
        name++;
    out[o++] = '/';
    for (; *name; name++) {
        const char *piece = *name == '/' ? "%2F" : *name == '%' ? "%25" : NULL;
        if (piece) {
            CHECK(o + 3 < size);
            memcpy(out + o, piece, 3);
            o += 3;
        } else {
            CHECK(o + 1 < size);
            out[o++] = *name;
        }
    }
    out[o] = 0;
}

/* Whether the shm object `object` exists (probed by its object name). */
static int object_exists(const char *object)
{
    int fd = shm_open(object, O_RDONLY, 0);
    if (fd >= 0) {
        close(fd);
        return 1;
    }
    CHECKF(errno == ENOENT, "shm_open(%s) probe", object);
    return 0;
}

static int path_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static void owner_and_guest_in_two_processes(void)
{
    char name[300], object[300], dir[300];
    int go[2], ack[2];
    pid_t pid;
    FILE *o;
    snprintf(name, sizeof name, "%s/streams/my_stream", base);
    encode(name, object, sizeof object);
    reg(name, object);
    snprintf(dir, sizeof dir, "/dev/shm%s", base);
    t_pipe(go);
    t_pipe(ack);
    pid = t_fork();
    if (pid == 0) {
        FILE *g;
        t_await(go[0]);
        g = fshm_guest_open(name + 1); /* without its leading '/' */
        CHECK(g != NULL);
        CHECK(fread(got, 1, sizeof got, g) == 6 && memcmp(got, "hello\n", 6) == 0);
        CHECK(fshm_owner_state(g) == FSHM_OWNER_ALIVE);
        clearerr(g);
        CHECK(fputs("reply\n", g) >= 0 && fflush(g) == 0);
        CHECK(fclose(g) == 0);
        t_signal(ack[1], 'a');
        t_child_exit(0);
    }
    o = fshm_create(name, 0600);
    CHECK(o != NULL);
    CHECK(object_exists(object));
    CHECK(!path_exists(dir)); /* no directory in /dev/shm */
    CHECK(fputs("hello\n", o) >= 0 && fflush(o) == 0);
    t_signal(go[1], 'g');
    t_await(ack[0]);
    t_wait_ok(pid, "guest of a hierarchical name");
    CHECK(fseek(o, 6, SEEK_SET) == 0);
    CHECK(fread(got, 1, sizeof got, o) == 6 && memcmp(got, "reply\n", 6) == 0);
    CHECK(fclose(o) == 0);
    CHECK(!object_exists(object)); /* the owner's fclose removed it */
    CHECK_ERR(fshm_guest_open(name) == NULL, ENOENT);
    close(go[0]); close(go[1]); close(ack[0]); close(ack[1]);
}

static void persistent_owner_in_a_child_then_force_destroy(void)
{
    char name[300], object[300];
    pid_t pid;
    FILE *g;
    snprintf(name, sizeof name, "%s/app/shard-3/events", base);
    encode(name, object, sizeof object);
    reg(name, object);
    pid = t_fork();
    if (pid == 0) {
        FILE *o = fshm_open(name, 0640, FSHM_OWNER | FSHM_PERSIST);
        CHECK(o != NULL);
        CHECK(fputs("event 1\n", o) >= 0);
        CHECK(fclose(o) == 0);
        t_child_exit(0);
    }
    t_wait_ok(pid, "persistent owner");
    CHECK(object_exists(object));
    g = fshm_guest_open(name);
    CHECK(g != NULL);
    CHECK(fshm_owner_state(g) == FSHM_OWNER_CLOSED);
    CHECK(fread(got, 1, sizeof got, g) == 8 && memcmp(got, "event 1\n", 8) == 0);
    CHECK(fclose(g) == 0);
    CHECK(fshm_force_destroy(name) == 0);
    CHECK(!object_exists(object));
    CHECK_ERR(fshm_force_destroy(name) == -1, ENOENT);
}

static void reclaim_by_a_hierarchical_name(void)
{
    char name[300], object[300];
    pid_t pid;
    FILE *o;
    snprintf(name, sizeof name, "%s/dead/owner", base);
    encode(name, object, sizeof object);
    reg(name, object);
    pid = t_fork();
    if (pid == 0) {
        /* Dies with the stream open: its owner is dead. */
        CHECK(fshm_create(name, 0600) != NULL);
        t_child_exit(0);
    }
    t_wait_ok(pid, "owner that dies");
    CHECK(object_exists(object));
    CHECK_ERR(fshm_create(name, 0600) == NULL, EEXIST);
    o = fshm_open(name, 0600, FSHM_OWNER | FSHM_RECLAIM);
    CHECK(o != NULL);
    CHECK(fshm_owner_state(o) == FSHM_OWNER_ALIVE);
    CHECK(fclose(o) == 0);
    CHECK(!object_exists(object));
}

/* The number of /dev/shm entries whose names start with `prefix`. */
static int entries_with_prefix(const char *prefix)
{
    DIR *d = opendir("/dev/shm");
    struct dirent *e;
    int n = 0;
    CHECK(d != NULL);
    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
            n++;
    CHECK(closedir(d) == 0);
    return n;
}

static void refused_forms(void)
{
    const char *suffixes[] = {"//b", "/", "/b/", "/./b", "/../b", "/.", "/..", "///"};
    const char *whole[] = {"", "/", "//", "/./", "/../", "./a", "../a", "a/./b"};
    char name[300];
    size_t i;
    for (i = 0; i < sizeof suffixes / sizeof suffixes[0] + sizeof whole / sizeof whole[0]; i++) {
        if (i < sizeof suffixes / sizeof suffixes[0])
            snprintf(name, sizeof name, "%s%s", base, suffixes[i]);
        else
            snprintf(name, sizeof name, "%s", whole[i - sizeof suffixes / sizeof suffixes[0]]);
        CHECKF(fshm_create(name, 0600) == NULL && errno == EINVAL,
               "fshm_create(\"%s\") should fail with EINVAL", name);
        CHECKF(fshm_open(name, 0600, FSHM_OWNER | FSHM_RECLAIM) == NULL && errno == EINVAL,
               "fshm_open(\"%s\", RECLAIM) should fail with EINVAL", name);
        CHECKF(fshm_guest_open(name) == NULL && errno == EINVAL,
               "fshm_guest_open(\"%s\") should fail with EINVAL", name);
        CHECKF(fshm_force_destroy(name) == -1 && errno == EINVAL,
               "fshm_force_destroy(\"%s\") should fail with EINVAL", name);
    }
    CHECK(entries_with_prefix(base + 1) == 0); /* nothing was created */
}

/* A name whose object would be one of glibc's named semaphores (sem_open("/x") is
 * /dev/shm/sem.x): EINVAL everywhere, and the semaphore's file is left alone. A
 * plain shm object of that name stands for the semaphore here (the file is all
 * sem_open makes), so the test needs no -pthread. */
static void semaphore_names(void)
{
    char sem_object[300], names[4][300], alike[300], alike_obj[300];
    const char *token = base + 1; /* "fshm-ct-names-<pid>-<n>" */
    int fd, i;
    FILE *o;
    snprintf(sem_object, sizeof sem_object, "/sem.%s", token);
    reg(sem_object, sem_object);
    fd = shm_open(sem_object, O_RDWR | O_CREAT | O_EXCL, 0600);
    CHECK(fd >= 0);
    CHECK(close(fd) == 0);
    snprintf(names[0], sizeof names[0], "sem.%s", token);
    snprintf(names[1], sizeof names[1], "/sem.%s", token);
    snprintf(names[2], sizeof names[2], "/sem.%s/x", token);
    snprintf(names[3], sizeof names[3], "/sem.");
    for (i = 0; i < 4; i++) {
        const char *name = names[i];
        CHECKF(fshm_create(name, 0600) == NULL && errno == EINVAL,
               "fshm_create(\"%s\") should fail with EINVAL", name);
        CHECKF(fshm_open(name, 0600, FSHM_OWNER | FSHM_RECLAIM) == NULL && errno == EINVAL,
               "fshm_open(\"%s\", RECLAIM) should fail with EINVAL", name);
        CHECKF(fshm_guest_open(name) == NULL && errno == EINVAL,
               "fshm_guest_open(\"%s\") should fail with EINVAL", name);
        CHECKF(fshm_force_destroy(name) == -1 && errno == EINVAL,
               "fshm_force_destroy(\"%s\") should fail with EINVAL", name);
    }
    CHECK(object_exists(sem_object));
    CHECK(shm_unlink(sem_object) == 0);
    /* Look-alikes are names like any other. */
    snprintf(alike, sizeof alike, "/sem/%s", token);
    encode(alike, alike_obj, sizeof alike_obj);
    reg(alike, alike_obj);
    o = fshm_create(alike, 0600);
    CHECK(o != NULL);
    CHECK(object_exists(alike_obj));
    CHECK(fclose(o) == 0);
    snprintf(alike, sizeof alike, "%s/sem.x", base);
    encode(alike, alike_obj, sizeof alike_obj);
    reg(alike, alike_obj);
    o = fshm_create(alike, 0600);
    CHECK(o != NULL);
    CHECK(fclose(o) == 0);
    CHECK(!object_exists(alike_obj));
}

static void lookalike_of_an_escaped_name(void)
{
    char nested[300], nested_obj[300], flat[300], flat_obj[300];
    FILE *o, *f;
    snprintf(nested, sizeof nested, "%s/b", base);
    snprintf(flat, sizeof flat, "%s%%2Fb", base); /* "<base>%2Fb", a flat name */
    encode(nested, nested_obj, sizeof nested_obj);
    encode(flat, flat_obj, sizeof flat_obj);
    reg(nested, nested_obj);
    reg(flat, flat_obj);
    CHECK(strcmp(nested_obj + strlen(base), "%2Fb") == 0);
    CHECK(strcmp(flat_obj + strlen(base), "%252Fb") == 0);
    o = fshm_create(nested, 0600);
    CHECK(o != NULL);
    CHECK(fputs("nested", o) >= 0 && fflush(o) == 0);
    CHECK_ERR(fshm_guest_open(flat) == NULL, ENOENT);
    CHECK_ERR(fshm_force_destroy(flat) == -1, ENOENT);
    CHECK(object_exists(nested_obj));
    f = fshm_create(flat, 0600);
    CHECK(f != NULL);
    CHECK(object_exists(flat_obj));
    CHECK(fputs("flat!", f) >= 0 && fflush(f) == 0);
    CHECK(t_read_all(nested, got, sizeof got) == 6 && strcmp(got, "nested") == 0);
    CHECK(t_read_all(flat, got, sizeof got) == 5 && strcmp(got, "flat!") == 0);
    CHECK(fclose(f) == 0);
    CHECK(!object_exists(flat_obj));
    CHECK(object_exists(nested_obj));
    CHECK(fclose(o) == 0);
    CHECK(!object_exists(nested_obj));
}

static void limit_on_the_object_name(void)
{
    char longest[300], longest_obj[300], over[310], over_obj[320];
    size_t fill;
    FILE *o;
    /* "<base>/fff...": the '/' costs 3 bytes of object name. */
    fill = 255 - (strlen(base) - 1) - 3;
    snprintf(longest, sizeof longest, "%s/", base);
    memset(longest + strlen(longest), 'f', fill);
    longest[strlen(base) + 1 + fill] = 0;
    snprintf(over, sizeof over, "%sf", longest);
    encode(longest, longest_obj, sizeof longest_obj);
    encode(over, over_obj, sizeof over_obj);
    reg(longest, longest_obj);
    reg(over, over_obj);
    CHECK(strlen(longest_obj) == 1 + 255);
    CHECK(strlen(over) == 255); /* within NAME_MAX as written, not once encoded */
    CHECK_ERR(fshm_create(over, 0600) == NULL, EINVAL);
    CHECK_ERR(fshm_guest_open(over) == NULL, EINVAL);
    CHECK_ERR(fshm_force_destroy(over) == -1, EINVAL);
    o = fshm_create(longest, 0600);
    CHECKF(o != NULL, "a name of 255 bytes once encoded is valid");
    CHECK(object_exists(longest_obj));
    CHECK(fclose(o) == 0);
    CHECK(!object_exists(longest_obj));
}

int main(void)
{
    t_init();
    t_name(base, sizeof base, "names");
    owner_and_guest_in_two_processes();
    persistent_owner_in_a_child_then_force_destroy();
    reclaim_by_a_hierarchical_name();
    refused_forms();
    semaphore_names();
    lookalike_of_an_escaped_name();
    limit_on_the_object_name();
    t_cleanup();
    printf("test_names: ok\n");
    return 0;
}
