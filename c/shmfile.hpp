// shmfile.hpp — the C++17 interface of libshmfile (fshm): named byte streams in
// POSIX shared memory, over the C API of shmfile.h. Header-only; link with
// -lshmfile as for C (pkg-config --cflags --libs shmfile, or CMake's
// shmfile::shmfile). Reference: shmfile.hpp(3).
//
//   shmfile::stream owner = shmfile::stream::create("/metrics", 0640);
//   shmfile::streambuf buf(owner);
//   std::ostream out(&buf);
//   out << "temperature=" << 21.5 << std::endl;       // std::endl flushes: visible
//
//   shmfile::iostream in(shmfile::stream::guest("/metrics", FSHM_BLOCK));
//   for (std::string line; std::getline(in, line);)   // follows until the owner
//       use(line);                                    // closes or dies
//
// ERRORS. Every operation that can fail comes twice: one throws std::system_error,
// the other (the same arguments plus a std::error_code&) is noexcept and sets the
// code (cleared on success). Codes are errno values in std::generic_category(), so
// they compare equal to std::errc constants: `ec == std::errc::no_such_file_or_directory`.
// Which errno means what is in shmfile.h (ERRORS) and the functions' man pages.
//
// THREAD SAFETY. As the C functions each member calls (shmfile.h, THREAD SAFETY):
// one shmfile::stream used from several threads needs the same care as one FILE*;
// a shmfile::streambuf, like every std::streambuf, and the std::istream/ostream over
// it are for one thread at a time. Distinct objects are independent.
#ifndef SHMFILE_HPP
#define SHMFILE_HPP

#include "shmfile.h"

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdio>
#include <istream>
#include <streambuf>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <sys/types.h>

namespace shmfile {

// A timeout that never runs out (negative, as for the C functions).
inline constexpr std::chrono::milliseconds no_timeout{-1};

// What stream::wait found.
enum class wait_result {
    end = 0,  // end of stream: the owner closed the stream or died, nothing left
    data = 1, // data past the position
    timeout,  // the time ran out (the noexcept overload only; the other throws)
};

// The state of a stream's owner (stream::owner).
enum class owner_state {
    alive = FSHM_OWNER_ALIVE,
    closed = FSHM_OWNER_CLOSED,
    dead = FSHM_OWNER_DEAD,
};

// A stream name: a C string or a std::string (which must outlive the call).
class name_ref {
public:
    name_ref(const char *name) noexcept : p_(name) {}
    name_ref(const std::string &name) noexcept : p_(name.c_str()) {}
    const char *c_str() const noexcept { return p_; }

private:
    const char *p_;
};

namespace detail {

// errno after a failed call, as an error_code (EIO if the call left errno 0).
inline std::error_code last_error() noexcept
{
    const int e = errno;
    return std::error_code(e != 0 ? e : EIO, std::generic_category());
}

[[noreturn]] inline void raise(const std::error_code &ec, const char *what,
                               const char *name = nullptr)
{
    std::string msg(what);
    if (name != nullptr) {
        msg += ' ';
        msg += name;
    }
    throw std::system_error(ec, msg);
}

inline long to_ms(std::chrono::milliseconds t) noexcept
{
    if (t.count() < 0)
        return -1;
    return t.count() > LONG_MAX ? LONG_MAX : static_cast<long>(t.count());
}

} // namespace detail

// A stream handle: owns one FILE* from fshm_open and fclose()s it when destroyed
// (for an owner without FSHM_PERSIST that removes the name). Move-only; a
// moved-from or default-constructed stream holds nothing (operator bool is false).
// The FILE* stays usable with every stdio and fshm_* function through get().
class stream {
public:
    stream() noexcept = default;
    // Adopts `f`, a FILE* from fshm_open & co. (or nullptr).
    explicit stream(FILE *f) noexcept : f_(f) {}
    stream(const stream &) = delete;
    stream &operator=(const stream &) = delete;
    stream(stream &&other) noexcept : f_(std::exchange(other.f_, nullptr)) {}
    stream &operator=(stream &&other) noexcept
    {
        if (this != &other)
            reset(std::exchange(other.f_, nullptr));
        return *this;
    }
    // fclose()s the FILE*; an error it reports is lost (call close() to see it).
    ~stream() { reset(); }

    // fshm_open(name, mode, flags).
    static stream open(name_ref name, mode_t mode, int flags)
    {
        std::error_code ec;
        stream s = open(name, mode, flags, ec);
        if (ec)
            detail::raise(ec, "fshm_open", name.c_str());
        return s;
    }
    static stream open(name_ref name, mode_t mode, int flags, std::error_code &ec) noexcept
    {
        return opened(fshm_open(name.c_str(), mode, flags), ec);
    }
    // fshm_open_ex(name, mode, flags, &options).
    static stream open(name_ref name, mode_t mode, int flags, const fshm_options &options)
    {
        std::error_code ec;
        stream s = open(name, mode, flags, options, ec);
        if (ec)
            detail::raise(ec, "fshm_open_ex", name.c_str());
        return s;
    }
    static stream open(name_ref name, mode_t mode, int flags, const fshm_options &options,
                       std::error_code &ec) noexcept
    {
        return opened(fshm_open_ex(name.c_str(), mode, flags, &options), ec);
    }
    // Creates `name` as its owner: fshm_open(name, mode, FSHM_OWNER | flags).
    static stream create(name_ref name, mode_t mode = 0600, int flags = 0)
    {
        return open(name, mode, FSHM_OWNER | flags);
    }
    static stream create(name_ref name, mode_t mode, int flags, std::error_code &ec) noexcept
    {
        return open(name, mode, FSHM_OWNER | flags, ec);
    }
    // Opens `name` as a guest: fshm_open(name, 0, FSHM_GUEST | flags).
    static stream guest(name_ref name, int flags = 0)
    {
        return open(name, 0, FSHM_GUEST | flags);
    }
    static stream guest(name_ref name, int flags, std::error_code &ec) noexcept
    {
        return open(name, 0, FSHM_GUEST | flags, ec);
    }

    FILE *get() const noexcept { return f_; }
    explicit operator bool() const noexcept { return f_ != nullptr; }
    // Gives up the FILE* without closing it.
    FILE *release() noexcept { return std::exchange(f_, nullptr); }
    // fclose()s the FILE* held (errors lost), then holds `f`.
    void reset(FILE *f = nullptr) noexcept
    {
        FILE *old = std::exchange(f_, f);
        if (old != nullptr)
            std::fclose(old);
    }

    // fclose(3), reporting its error (the FILE* is closed either way). EBADF when
    // nothing is held.
    void close()
    {
        std::error_code ec;
        close(ec);
        if (ec)
            detail::raise(ec, "fclose");
    }
    void close(std::error_code &ec) noexcept
    {
        if (f_ == nullptr) {
            ec = std::make_error_code(std::errc::bad_file_descriptor);
            return;
        }
        errno = 0;
        ec = std::fclose(std::exchange(f_, nullptr)) == 0 ? std::error_code()
                                                            : detail::last_error();
    }

    // fileno(3): the stream's shm descriptor (glibc; elsewhere -1 with EBADF, see
    // shmfile.h), owned by the FILE*. -1 when nothing is held.
    int fd() const noexcept { return f_ != nullptr ? fileno(f_) : -1; }

    // fflush(3) (EINVAL when nothing is held: fflush(NULL) would flush every FILE*).
    void flush()
    {
        std::error_code ec;
        flush(ec);
        if (ec)
            detail::raise(ec, "fflush");
    }
    void flush(std::error_code &ec) noexcept
    {
        if (f_ == nullptr) {
            ec = std::make_error_code(std::errc::invalid_argument);
            return;
        }
        errno = 0;
        ec = std::fflush(f_) == 0 ? std::error_code() : detail::last_error();
    }

    // fshm_wait: data (1), end (0); throws on errors, ETIMEDOUT included.
    wait_result wait(std::chrono::milliseconds timeout = no_timeout)
    {
        const int r = call(fshm_wait(f_, detail::to_ms(timeout)), "fshm_wait");
        return r == 1 ? wait_result::data : wait_result::end;
    }
    // As wait(), but a timeout is wait_result::timeout with `ec` cleared.
    wait_result wait(std::chrono::milliseconds timeout, std::error_code &ec) noexcept
    {
        errno = 0;
        const int r = fshm_wait(f_, detail::to_ms(timeout));
        if (r >= 0) {
            ec.clear();
            return r == 1 ? wait_result::data : wait_result::end;
        }
        ec = detail::last_error();
        if (ec == std::errc::timed_out) {
            ec.clear();
            return wait_result::timeout;
        }
        return wait_result::end;
    }

    // fshm_sync.
    void sync() { call(fshm_sync(f_), "fshm_sync"); }
    void sync(std::error_code &ec) noexcept { ec = status(fshm_sync(f_)); }

    // fshm_owner_state.
    owner_state owner() const
    {
        return static_cast<owner_state>(call(fshm_owner_state(f_), "fshm_owner_state"));
    }
    owner_state owner(std::error_code &ec) const noexcept
    {
        errno = 0;
        const int r = fshm_owner_state(f_);
        ec = r < 0 ? detail::last_error() : std::error_code();
        return r < 0 ? owner_state::closed : static_cast<owner_state>(r);
    }

    // fshm_chmod, fshm_chgrp.
    void chmod(mode_t mode) { call(fshm_chmod(f_, mode), "fshm_chmod"); }
    void chmod(mode_t mode, std::error_code &ec) noexcept { ec = status(fshm_chmod(f_, mode)); }
    void chgrp(gid_t gid) { call(fshm_chgrp(f_, gid), "fshm_chgrp"); }
    void chgrp(gid_t gid, std::error_code &ec) noexcept { ec = status(fshm_chgrp(f_, gid)); }

    // fshm_lost_bytes: bytes lost to ring overruns so far.
    unsigned long long lost_bytes() const
    {
        unsigned long long n = 0;
        call(fshm_lost_bytes(f_, &n), "fshm_lost_bytes");
        return n;
    }
    unsigned long long lost_bytes(std::error_code &ec) const noexcept
    {
        unsigned long long n = 0;
        ec = status(fshm_lost_bytes(f_, &n));
        return n;
    }

#ifdef FSHM_POLLDATA
    // fshm_event_fd: a descriptor for poll(2)/epoll/an event loop, readable while
    // the stream has data past the position or has ended; owned by the FILE*
    // (closed with it). See fshm_event_fd(3) for when it is re-armed.
    int event_fd() const { return call(fshm_event_fd(f_), "fshm_event_fd"); }
    int event_fd(std::error_code &ec) const noexcept
    {
        errno = 0;
        const int fd = fshm_event_fd(f_);
        ec = fd < 0 ? detail::last_error() : std::error_code();
        return fd;
    }
    // An entry for shmfile::poll / fshm_poll that waits on this stream.
    fshm_pollfd poll_entry(short events = FSHM_POLLDATA | FSHM_POLLEND) const noexcept
    {
        return fshm_pollfd{f_, events, 0};
    }
#endif

private:
    static stream opened(FILE *f, std::error_code &ec) noexcept
    {
        // errno is read at once: fshm_open sets it on failure.
        ec = f != nullptr ? std::error_code() : detail::last_error();
        return stream(f);
    }
    static std::error_code status(int r) noexcept
    {
        return r < 0 ? detail::last_error() : std::error_code();
    }
    static int call(int r, const char *what)
    {
        if (r < 0)
            detail::raise(detail::last_error(), what);
        return r;
    }
    FILE *f_ = nullptr;
};

#ifdef FSHM_POLLDATA
// fshm_poll over `n` entries (stream::poll_entry makes them): waits until one of
// the streams has data or has ended, or `timeout` passes. Returns how many entries
// have revents set (0: the time ran out).
inline std::size_t poll(fshm_pollfd *fds, std::size_t n, std::chrono::milliseconds timeout,
                        std::error_code &ec) noexcept
{
    errno = 0;
    const int r = fshm_poll(fds, n, detail::to_ms(timeout));
    ec = r < 0 ? detail::last_error() : std::error_code();
    return r < 0 ? 0 : static_cast<std::size_t>(r);
}
inline std::size_t poll(fshm_pollfd *fds, std::size_t n,
                        std::chrono::milliseconds timeout = no_timeout)
{
    std::error_code ec;
    const std::size_t r = poll(fds, n, timeout, ec);
    if (ec)
        detail::raise(ec, "fshm_poll");
    return r;
}
inline std::size_t poll(std::vector<fshm_pollfd> &fds, std::chrono::milliseconds timeout,
                        std::error_code &ec) noexcept
{
    return poll(fds.data(), fds.size(), timeout, ec);
}
inline std::size_t poll(std::vector<fshm_pollfd> &fds,
                        std::chrono::milliseconds timeout = no_timeout)
{
    return poll(fds.data(), fds.size(), timeout);
}
#endif

// A std::streambuf over a FILE* of this library, so that std::ostream and
// std::istream read and write the stream: every operation is the stdio call on the
// FILE* (fputc/fwrite, getc/fread, fflush, fseeko/ftello), so the FILE*'s own
// buffer is the only one, and C and C++ calls on the same FILE* may be mixed. Does
// not own the FILE* (keep the stream alive while this is in use); over no FILE*
// every operation fails (EINVAL).
//
// pubsync() (std::flush, std::endl) is fflush: the bytes reach the stream and
// other handles see them. Reads at the end give end-of-file (the istream's eofbit),
// or with FSHM_BLOCK wait like a pipe's read until data or the owner's end; after
// is.clear() the next read tries again (the FILE*'s end-of-file and error
// indicators are cleared when a read reports them). error() holds the errno of the
// last failed operation, e.g. ENOBUFS for a lossy ring reader that was overrun
// (its next read continues at the oldest byte held).
class streambuf : public std::streambuf {
public:
    explicit streambuf(FILE *f) noexcept : f_(f) {}
    explicit streambuf(const stream &s) noexcept : f_(s.get()) {}
    streambuf(const streambuf &) = delete;
    streambuf &operator=(const streambuf &) = delete;

    FILE *file() const noexcept { return f_; }
    // The last failure (cleared by clear_error()).
    std::error_code error() const noexcept { return err_; }
    void clear_error() noexcept { err_.clear(); }

protected:
    int_type overflow(int_type c) override
    {
        if (traits_type::eq_int_type(c, traits_type::eof()))
            return traits_type::not_eof(c);
        if (!usable())
            return traits_type::eof();
        errno = 0;
        if (std::fputc(traits_type::to_char_type(c), f_) == EOF) {
            failed();
            return traits_type::eof();
        }
        return c;
    }

    std::streamsize xsputn(const char_type *s, std::streamsize n) override
    {
        if (n <= 0 || !usable())
            return 0;
        errno = 0;
        const std::size_t w = std::fwrite(s, 1, static_cast<std::size_t>(n), f_);
        if (w < static_cast<std::size_t>(n))
            failed();
        return static_cast<std::streamsize>(w);
    }

    // Peeks one byte: getc, then ungetc of that same byte (stdio steps back in its
    // buffer; nothing is written).
    int_type underflow() override
    {
        if (!usable())
            return traits_type::eof();
        errno = 0;
        const int c = std::getc(f_);
        if (c == EOF)
            return ended();
        std::ungetc(c, f_);
        return traits_type::to_int_type(static_cast<char_type>(c));
    }

    int_type uflow() override
    {
        if (!usable())
            return traits_type::eof();
        errno = 0;
        const int c = std::getc(f_);
        if (c == EOF)
            return ended();
        return traits_type::to_int_type(static_cast<char_type>(c));
    }

    std::streamsize xsgetn(char_type *s, std::streamsize n) override
    {
        if (n <= 0 || !usable())
            return 0;
        errno = 0;
        const std::size_t r = std::fread(s, 1, static_cast<std::size_t>(n), f_);
        if (r < static_cast<std::size_t>(n))
            ended();
        return static_cast<std::streamsize>(r);
    }

    int_type pbackfail(int_type c) override
    {
        if (traits_type::eq_int_type(c, traits_type::eof()) || !usable())
            return traits_type::eof();
        return std::ungetc(traits_type::to_char_type(c), f_) == EOF ? traits_type::eof() : c;
    }

    int sync() override
    {
        if (!usable())
            return -1;
        errno = 0;
        if (std::fflush(f_) != 0) {
            failed();
            return -1;
        }
        return 0;
    }

    pos_type seekoff(off_type off, std::ios_base::seekdir dir,
                     std::ios_base::openmode = std::ios_base::in | std::ios_base::out) override
    {
        if (!usable())
            return pos_type(off_type(-1));
        const int whence = dir == std::ios_base::beg   ? SEEK_SET
                           : dir == std::ios_base::cur ? SEEK_CUR
                                                       : SEEK_END;
        errno = 0;
        // tellg()/tellp() ask for (0, cur): no seek then, which would flush.
        if (!(off == 0 && whence == SEEK_CUR) &&
            fseeko(f_, static_cast<off_t>(off), whence) != 0) {
            failed();
            return pos_type(off_type(-1));
        }
        const off_t pos = ftello(f_);
        if (pos < 0) {
            failed();
            return pos_type(off_type(-1));
        }
        return pos_type(static_cast<off_type>(pos));
    }

    pos_type seekpos(pos_type pos, std::ios_base::openmode which =
                                       std::ios_base::in | std::ios_base::out) override
    {
        return seekoff(off_type(pos), std::ios_base::beg, which);
    }

private:
    void failed() noexcept { err_ = detail::last_error(); }

    // A streambuf over no FILE* (an empty stream): every operation fails with EINVAL.
    bool usable() noexcept
    {
        if (f_ != nullptr)
            return true;
        err_ = std::make_error_code(std::errc::invalid_argument);
        return false;
    }

    // A read found the end or failed: record a failure, then clear the FILE*'s
    // indicators so that the next read (after the istream's clear()) tries again.
    int_type ended() noexcept
    {
        if (std::ferror(f_))
            failed();
        std::clearerr(f_);
        return traits_type::eof();
    }

    FILE *f_;
    std::error_code err_;
};

// A std::iostream that owns its stream: shmfile::iostream io(stream::create("/x"));
// io << ...; std::getline(io, line). Not movable (the istream holds its buffer's
// address); file() reaches the stream for wait(), owner(), close() and the rest.
class iostream : public std::iostream {
public:
    explicit iostream(stream s) : std::iostream(nullptr), s_(std::move(s)), buf_(s_)
    {
        this->rdbuf(&buf_);
        if (!s_)
            this->setstate(std::ios_base::badbit);
    }
    iostream(const iostream &) = delete;
    iostream &operator=(const iostream &) = delete;

    stream &file() noexcept { return s_; }
    const stream &file() const noexcept { return s_; }
    // The errno of the last failed read or write (see streambuf::error).
    std::error_code error() const noexcept { return buf_.error(); }

private:
    stream s_;
    streambuf buf_;
};

} // namespace shmfile

#endif // SHMFILE_HPP
