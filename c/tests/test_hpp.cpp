// test_hpp.cpp — shmfile.hpp, the C++17 interface, against real streams: the
// RAII stream (moves, the destructor's fclose removing an owner's name), errors
// as std::system_error and as std::error_code, the streambuf under std::ostream
// and std::istream (formatted I/O, seeks, reading on after the end), a guest in
// another process following an owner's lines until it closes, an owner that dies,
// and (where shmfile.h has them) the event descriptor and shmfile::poll.
// Compiled with -std=c++17 -Wall -Wextra -Werror by g++ (fshm-ffi/tests/c_api.rs)
// and by clang++ (ci/c-checks.sh).
#include "shmfile.hpp"

#include "common.h"

#include <poll.h>

#include <chrono>
#include <iostream>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

using namespace std::chrono_literals;

static_assert(!std::is_copy_constructible_v<shmfile::stream>, "stream is move-only");
static_assert(!std::is_copy_assignable_v<shmfile::stream>, "stream is move-only");
static_assert(std::is_nothrow_move_constructible_v<shmfile::stream>, "noexcept move");
static_assert(std::is_nothrow_move_assignable_v<shmfile::stream>, "noexcept move");
static_assert(noexcept(shmfile::stream::guest("/x", 0, std::declval<std::error_code &>())),
              "the error_code overloads do not throw");
static_assert(SHMFILE_VERSION_NUMBER >= 10200, "the C header's version macros");

// `expr` throws std::system_error whose code is `errc`.
#define CHECK_THROWS(expr, errc)                                                    \
    do {                                                                            \
        bool thrown_ = false;                                                       \
        try {                                                                       \
            (void)(expr);                                                           \
        } catch (const std::system_error &e_) {                                     \
            thrown_ = true;                                                         \
            CHECKF(e_.code() == (errc), "`%s` threw %s", #expr, e_.what());         \
        }                                                                           \
        CHECKF(thrown_, "`%s` did not throw", #expr);                               \
    } while (0)

static std::string line_for(int i)
{
    return "line " + std::to_string(i) + " of the owner";
}

// Errors in both styles; nothing is created by a failed call.
static void errors()
{
    char buf[128];
    const std::string name = t_name(buf, sizeof buf, "hpp-err");

    CHECK_THROWS(shmfile::stream::guest(name), std::errc::no_such_file_or_directory);
    try {
        shmfile::stream::guest(name);
    } catch (const std::system_error &e) {
        CHECKF(std::string(e.what()).find(name) != std::string::npos,
               "the message names the stream: %s", e.what());
    }
    std::error_code ec;
    shmfile::stream none = shmfile::stream::guest(name, 0, ec);
    CHECK(ec == std::errc::no_such_file_or_directory && !none && none.get() == nullptr);
    CHECK(!t_exists(name.c_str()));

    // Both FSHM_OWNER and FSHM_GUEST: EINVAL, in both styles.
    CHECK_THROWS(shmfile::stream::open(name, 0600, FSHM_OWNER | FSHM_GUEST),
                 std::errc::invalid_argument);
    shmfile::stream::open(name.c_str(), 0600, FSHM_OWNER | FSHM_GUEST, ec);
    CHECK(ec == std::errc::invalid_argument);
    CHECK(!t_exists(name.c_str()));

    shmfile::stream owner = shmfile::stream::create(name);
    CHECK(owner);
    CHECK_THROWS(shmfile::stream::create(name), std::errc::file_exists);
    shmfile::stream::create(name, 0600, 0, ec);
    CHECK(ec == std::errc::file_exists);

    // A guest at the end, without FSHM_BLOCK: a timeout both ways.
    shmfile::stream g = shmfile::stream::guest(name, FSHM_RDONLY);
    CHECK(g.wait(0ms, ec) == shmfile::wait_result::timeout && !ec);
    CHECK_THROWS(g.wait(0ms), std::errc::timed_out);
    // Writing through a read-only guest: the ostream goes bad, the streambuf tells
    // why (EBADF).
    {
        shmfile::streambuf sb(g);
        std::ostream out(&sb);
        out << "no" << std::flush;
        CHECK(out.bad() && sb.error() == std::errc::bad_file_descriptor);
        std::clearerr(g.get());
    }
    g.close();
    CHECK(!g);
    // Closing twice, flushing nothing.
    g.close(ec);
    CHECK(ec == std::errc::bad_file_descriptor);
    CHECK_THROWS(g.close(), std::errc::bad_file_descriptor);
    g.flush(ec);
    CHECK(ec == std::errc::invalid_argument);
    CHECK_THROWS(g.owner(), std::errc::invalid_argument);
    g.sync(ec);
    CHECK(ec == std::errc::invalid_argument);

    // An empty stream's iostream is bad at once; its streambuf fails with EINVAL.
    shmfile::iostream empty{shmfile::stream()};
    CHECK(empty.bad());
    shmfile::streambuf nobuf{static_cast<FILE *>(nullptr)};
    CHECK(nobuf.sputc('x') == std::char_traits<char>::eof());
    CHECK(nobuf.error() == std::errc::invalid_argument);
    owner.close();
    CHECK(!t_exists(name.c_str()));
}

// Moves and the destructor: the FILE* is closed exactly once, by its last holder.
static void raii()
{
    char buf[128];
    const std::string name = t_name(buf, sizeof buf, "hpp-raii");
    {
        shmfile::stream a = shmfile::stream::create(name, 0640);
        FILE *f = a.get();
        shmfile::stream b(std::move(a));
        CHECK(!a && b.get() == f); // NOLINT: a moved-from stream holds nothing
        shmfile::stream c;
        c = std::move(b);
        CHECK(!b && c.get() == f);
        CHECK(c.owner() == shmfile::owner_state::alive);
        c.chmod(0600);
        c.chgrp(getegid());
        CHECK(c.lost_bytes() == 0);
        if (T_HAVE_FILENO)
            CHECK(c.fd() == fileno(f));
        FILE *raw = c.release();
        CHECK(!c && raw == f);
        c.reset(raw); // owns it again
        CHECK(t_exists(name.c_str()));
    } // c's destructor: fclose, the owner's name goes
    CHECK(!t_exists(name.c_str()));

    // fshm_open_ex through stream::open with options: a lossy ring.
    fshm_options o = {};
    o.size = sizeof o;
    o.ring_capacity = static_cast<unsigned long long>(sysconf(_SC_PAGESIZE));
    o.ring_policy = FSHM_RING_LOSSY;
    shmfile::stream ring = shmfile::stream::open(name, 0600, FSHM_OWNER, o);
    o.ring_policy = 7;
    std::error_code ec;
    shmfile::stream::open(name + "-x", 0600, FSHM_OWNER, o, ec);
    CHECK(ec == std::errc::invalid_argument);
    ring.close();
}

// std::ostream/std::istream over one stream: formatted output and input, seeks,
// mixing with C stdio on the same FILE*, and reading on after the end.
static void streambuf_io()
{
    char buf[128];
    const std::string name = t_name(buf, sizeof buf, "hpp-io");
    shmfile::iostream io(shmfile::stream::create(name));
    CHECK(io.good());
    io << "hello world " << 42 << ' ' << 2.5 << '\n' << std::flush;
    CHECK(io.good() && io.tellp() == 19);
    CHECK(std::fputs("from C\n", io.file().get()) >= 0);

    io.seekg(6);
    std::string word;
    int n = 0;
    double d = 0;
    io >> word >> n >> d;
    CHECKF(io.good() && word == "world" && n == 42 && d == 2.5, "read '%s' %d %g",
           word.c_str(), n, d);
    io.ignore(1);
    std::string line;
    CHECK(std::getline(io, line) && line == "from C");
    CHECK(!std::getline(io, line) && io.eof());

    // Another handle appends; after clear() the same istream reads on.
    {
        shmfile::stream other = shmfile::stream::guest(name, FSHM_APPEND);
        shmfile::streambuf ob(other);
        std::ostream out(&ob);
        out << "more\n" << std::flush;
        CHECK(out.good() && !ob.error());
    }
    io.clear();
    CHECK(std::getline(io, line) && line == "more");
    CHECK(io.tellg() == 31);
    // peek (underflow) does not move the position; putback steps back.
    io.seekg(0);
    CHECK(io.peek() == 'h' && io.tellg() == 0);
    CHECK(io.get() == 'h' && io.putback('h') && io.get() == 'h');
    io.file().close();
}

// A guest in another process follows the owner's lines with std::getline over a
// blocking stream, until the owner closes; then a second owner dies (killed
// without fclose) and its guest's istream ends as well.
static void across_processes()
{
    const int lines = 2000;
    char buf[128];
    const std::string name = t_name(buf, sizeof buf, "hpp-proc");
    shmfile::stream owner = shmfile::stream::create(name, 0600);
    int ready[2];
    t_pipe(ready);
    const pid_t child = t_fork();
    if (child == 0) {
        int code = 0;
        {
            shmfile::iostream in(shmfile::stream::guest(name, FSHM_BLOCK | FSHM_RDONLY));
            t_signal(ready[1], 'r');
            std::string line;
            int i = 0;
            while (std::getline(in, line)) {
                if (line != line_for(i)) {
                    std::printf("FAIL: line %d is '%s'\n", i, line.c_str());
                    code = 1;
                    break;
                }
                i++;
            }
            if (code == 0 && (i != lines || !in.eof() || in.bad() || in.error())) {
                std::printf("FAIL: the guest read %d lines (eof %d, error %s)\n", i,
                            static_cast<int>(in.eof()), in.error().message().c_str());
                code = 1;
            }
            if (code == 0 && in.file().owner() != shmfile::owner_state::closed) {
                std::printf("FAIL: the owner is not closed\n");
                code = 1;
            }
            std::error_code ec;
            if (code == 0 && in.file().wait(0ms, ec) != shmfile::wait_result::end) {
                std::printf("FAIL: wait after the end: %s\n", ec.message().c_str());
                code = 1;
            }
        }
        std::fflush(stdout);
        t_child_exit(code);
    }
    CHECK(t_await(ready[0]) == 'r');
    {
        shmfile::streambuf sb(owner);
        std::ostream out(&sb);
        for (int i = 0; i < lines; i++) {
            out << line_for(i) << '\n';
            if (i % 100 == 0)
                out << std::flush; // the guest sees the first lines while we write
        }
        out.flush();
        CHECK(out.good() && !sb.error());
    }
    owner.close(); // the guest's getline ends
    t_wait_ok(child, "C++ guest");
    close(ready[0]);
    close(ready[1]);

    // An owner that dies: a child creates the stream, writes, and _exits without
    // fclose; the guest here reads every byte, then the end, and sees it dead.
    const std::string dead = t_name(buf, sizeof buf, "hpp-dead");
    int made[2], go[2];
    t_pipe(made);
    t_pipe(go);
    const pid_t writer = t_fork();
    if (writer == 0) {
        shmfile::stream o = shmfile::stream::create(dead);
        shmfile::streambuf sb(o);
        std::ostream out(&sb);
        out << "last words\n" << std::flush;
        t_signal(made[1], 'm');
        (void)t_await(go[0]);
        t_child_exit(0); // dies holding the stream
    }
    CHECK(t_await(made[0]) == 'm');
    shmfile::iostream in(shmfile::stream::guest(dead, FSHM_BLOCK));
    CHECK(in.file().owner() == shmfile::owner_state::alive);
    t_signal(go[1], 'g');
    std::string line;
    CHECK(std::getline(in, line) && line == "last words");
    CHECK(!std::getline(in, line) && in.eof() && !in.bad());
    int st = 0;
    CHECK(waitpid(writer, &st, 0) == writer && WIFEXITED(st));
    CHECK(in.file().owner() == shmfile::owner_state::dead);
    in.file().close();
    CHECK(fshm_force_destroy(dead.c_str()) == 0);
    close(made[0]);
    close(made[1]);
    close(go[0]);
    close(go[1]);
}

#ifdef FSHM_POLLDATA
// The event descriptor under poll(2), and shmfile::poll over two streams, one fed
// by another process.
static void events()
{
    char buf[128];
    const std::string quiet = t_name(buf, sizeof buf, "hpp-ev-quiet");
    const std::string busy = t_name(buf, sizeof buf, "hpp-ev-busy");
    shmfile::stream qo = shmfile::stream::create(quiet);
    shmfile::stream bo = shmfile::stream::create(busy);
    shmfile::stream qg = shmfile::stream::guest(quiet, FSHM_RDONLY);
    shmfile::stream bg = shmfile::stream::guest(busy, FSHM_RDONLY);

    const int fd = bg.event_fd();
    CHECK(fd >= 0);
    std::error_code ec;
    CHECK(bg.event_fd(ec) >= 0 && !ec);
    shmfile::stream none;
    CHECK_THROWS(none.event_fd(), std::errc::invalid_argument);

    std::vector<fshm_pollfd> fds{qg.poll_entry(), bg.poll_entry()};
    CHECK(shmfile::poll(fds, 0ms) == 0);
    CHECK(shmfile::poll(fds, 0ms, ec) == 0 && !ec);

    const pid_t child = t_fork();
    if (child == 0) {
        std::fputs("ping\n", bo.get());
        const int code = std::fflush(bo.get()) == 0 ? 0 : 1;
        std::fflush(stdout);
        t_child_exit(code);
    }
    t_wait_ok(child, "writer");
    struct pollfd p = {fd, POLLIN, 0};
    CHECK(::poll(&p, 1, 10000) == 1 && (p.revents & POLLIN));
    CHECK(shmfile::poll(fds, 10s) == 1);
    CHECK(fds[0].revents == 0 && (fds[1].revents & FSHM_POLLDATA));
    std::string line;
    {
        shmfile::streambuf sb(bg);
        std::istream in(&sb);
        CHECK(std::getline(in, line) && line == "ping");
    }
    qo.close();
    fds = {qg.poll_entry(), bg.poll_entry()};
    CHECK(shmfile::poll(fds.data(), fds.size(), 10s) == 1);
    CHECK((fds[0].revents & FSHM_POLLEND) && fds[1].revents == 0);
    bo.close();
}
#endif

int main()
{
    t_init();
    try {
        errors();
        raii();
        streambuf_io();
        across_processes();
#ifdef FSHM_POLLDATA
        events();
#else
        std::printf("skipped: shmfile.hpp events: this shmfile.h has no fshm_event_fd\n");
#endif
    } catch (const std::exception &e) {
        t_fail(__FILE__, __LINE__, "uncaught exception: %s", e.what());
    }
    t_cleanup();
    std::printf("test_hpp: ok\n");
    return 0;
}
