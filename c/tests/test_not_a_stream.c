/*
 * test_not_a_stream.c — what another user puts at a stream's name (a FIFO, a
 * socket, a directory, a symbolic link to a real stream) is refused at once by
 * every C entry point: guest opens (read-write, FSHM_RDONLY, FSHM_BLOCK,
 * fshm_open_ex with check_owner) with EPROTO, owner opens with EEXIST (and with
 * FSHM_RECLAIM with EPROTO or EEXIST), fshm_force_destroy of a directory with
 * EPROTO; and nothing planted is changed. A hang (a plain read-only open of a FIFO
 * waits for a writer forever) is a failure: each kind is tried in a forked child
 * with its own alarm.
 *
 * The attacker that plants them is a forked child running as uid/gid 1002 where
 * this process may switch users (root); otherwise it runs as this user.
 */
#include "common.h"

#include <grp.h>
#include <sys/socket.h>
#include <sys/un.h>

/* Seconds a victim may take for all its calls (each takes microseconds). */
#define VICTIM_ALARM 30

enum kind { FIFO, SOCKET, DIRECTORY, SYMLINK, KINDS };
static const char *kind_names[KINDS] = {"FIFO", "socket", "directory", "symbolic link"};

static char real[300];

/* Plants `kind` at `path`, in a child that becomes uid 1002 if it can. */
static void plant(enum kind kind, const char *path, const char *target)
{
    pid_t pid = t_fork();
    if (pid == 0) {
        int r = -1;
        if (setgroups(0, NULL) == 0) {
            CHECK(setgid(1002) == 0);
            CHECK(setuid(1002) == 0);
        }
        umask(0);
        switch (kind) {
        case FIFO:
            r = mkfifo(path, 0644);
            break;
        case DIRECTORY:
            r = mkdir(path, 0755);
            break;
        case SYMLINK:
            r = symlink(target, path);
            break;
        case SOCKET: {
            struct sockaddr_un a;
            int s = socket(AF_UNIX, SOCK_STREAM, 0);
            CHECK(s >= 0);
            memset(&a, 0, sizeof a);
            a.sun_family = AF_UNIX;
            CHECK(strlen(path) < sizeof a.sun_path);
            strcpy(a.sun_path, path);
            r = bind(s, (struct sockaddr *)&a, sizeof a);
            close(s);
            break;
        }
        default:
            break;
        }
        CHECKF(r == 0, "planting a %s at %s", kind_names[kind], path);
        t_child_exit(0);
    }
    t_wait_ok(pid, "planter");
}

/* Every entry point against what is at `name`, in a child with its own alarm:
 * returns the child's pid. */
static pid_t victim(enum kind kind, const char *name)
{
    pid_t pid = t_fork();
    if (pid == 0) {
        struct fshm_options o;
        alarm(VICTIM_ALARM);
        CHECK_ERR(fshm_guest_open(name) == NULL, EPROTO);
        CHECK_ERR(fshm_open(name, 0, FSHM_GUEST | FSHM_RDONLY) == NULL, EPROTO);
        CHECK_ERR(fshm_open(name, 0, FSHM_GUEST | FSHM_RDONLY | FSHM_BLOCK) == NULL, EPROTO);
        CHECK_ERR(fshm_open(name, 0, FSHM_GUEST | FSHM_APPEND) == NULL, EPROTO);
        memset(&o, 0, sizeof o);
        o.size = sizeof o;
        o.check_owner = 1;
        o.owner_uid = 1002;
        CHECK_ERR(fshm_open_ex(name, 0, FSHM_GUEST | FSHM_RDONLY, &o) == NULL, EPROTO);
        CHECK_ERR(fshm_create(name, 0600) == NULL, EEXIST);
        errno = 0;
        CHECK(fshm_open(name, 0600, FSHM_OWNER | FSHM_RECLAIM) == NULL);
        CHECKF(errno == EPROTO || errno == EEXIST, "FSHM_RECLAIM on a %s: errno %d",
               kind_names[kind], errno);
        if (kind == DIRECTORY)
            CHECK_ERR(fshm_force_destroy(name) == -1, EPROTO);
        t_child_exit(0);
    }
    return pid;
}

int main(void)
{
    char name[300], path[400], target[400];
    struct stat before, after;
    FILE *r;
    int k, st;
    pid_t pid;

    t_init();
    t_name(real, sizeof real, "real");
    r = fshm_create(real, 0644);
    CHECK(r != NULL);
    snprintf(target, sizeof target, "/dev/shm%s", real);
    for (k = 0; k < KINDS; k++) {
        t_name(name, sizeof name, "planted");
        snprintf(path, sizeof path, "/dev/shm%s", name);
        plant((enum kind)k, path, target);
        CHECK(lstat(path, &before) == 0);
        pid = victim((enum kind)k, name);
        CHECK(waitpid(pid, &st, 0) == pid);
        CHECK(lstat(path, &after) == 0);
        /* A directory is removed here (fshm_force_destroy, which t_cleanup calls,
         * refuses it), before any check can fail. */
        if (k == DIRECTORY)
            CHECK(rmdir(path) == 0);
        CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the victim of a %s failed (0x%x)",
               kind_names[k], st);
        CHECKF(after.st_ino == before.st_ino && after.st_mode == before.st_mode,
               "the %s was changed", kind_names[k]);
        /* fshm_force_destroy removes the entry itself (a link, never its target),
         * a directory excepted. */
        if (k != DIRECTORY) {
            CHECK(fshm_force_destroy(name) == 0);
            CHECK(lstat(path, &after) == -1 && errno == ENOENT);
        }
    }
    /* The link's target, a real stream, was never reached through the link. */
    CHECK(fclose(r) == 0);
    CHECK(!t_exists(real));
    t_cleanup();
    printf("test_not_a_stream: ok\n");
    return 0;
}
