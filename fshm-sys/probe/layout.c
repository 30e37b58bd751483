/*
 * Layout probe for fshm-sys.
 *
 * Compiled by build.rs with the target's C compiler against the same header
 * setup as the bindings (wrapper.h), so each function below reports what the
 * real libc headers say. The FILE part is glibc's only: musl's FILE is opaque. tests/layout.rs compares these numbers with the layout of
 * the Rust types in the committed (or freshly generated) bindings.
 */
#include "../wrapper.h"

#include <stdalign.h>
#include <stddef.h>
#include <sys/types.h>

/* cookie_io_functions_t: passed by value to fopencookie. */
size_t fshm_probe_sizeof_cookie_io_functions(void) { return sizeof(cookie_io_functions_t); }
size_t fshm_probe_alignof_cookie_io_functions(void) { return alignof(cookie_io_functions_t); }
size_t fshm_probe_offsetof_cookie_read(void) { return offsetof(cookie_io_functions_t, read); }
size_t fshm_probe_offsetof_cookie_write(void) { return offsetof(cookie_io_functions_t, write); }
size_t fshm_probe_offsetof_cookie_seek(void) { return offsetof(cookie_io_functions_t, seek); }
size_t fshm_probe_offsetof_cookie_close(void) { return offsetof(cookie_io_functions_t, close); }

/* Every callback is called through a function pointer of this size. */
size_t fshm_probe_sizeof_cookie_read_ptr(void) { return sizeof(cookie_read_function_t *); }

/* The type of the position the seek callback takes: off64_t in glibc, off_t in
 * musl (whose off64_t, where it exists, is a macro for off_t). */
#ifdef __GLIBC__
typedef off64_t seek_off_t;
#else
typedef off_t seek_off_t;
#endif

#ifdef __GLIBC__
/* FILE / struct _IO_FILE: set_fileno writes _fileno in place. */
size_t fshm_probe_sizeof_FILE(void) { return sizeof(FILE); }
size_t fshm_probe_alignof_FILE(void) { return alignof(FILE); }
size_t fshm_probe_offsetof_flags(void) { return offsetof(struct _IO_FILE, _flags); }
size_t fshm_probe_offsetof_fileno(void) { return offsetof(struct _IO_FILE, _fileno); }
size_t fshm_probe_sizeof_fileno(void) { return sizeof(((struct _IO_FILE *)0)->_fileno); }
#endif

/* Scalar types in the callback signatures. */
size_t fshm_probe_sizeof_off64_t(void) { return sizeof(seek_off_t); }
size_t fshm_probe_alignof_off64_t(void) { return alignof(seek_off_t); }
size_t fshm_probe_sizeof_ssize_t(void) { return sizeof(ssize_t); }
size_t fshm_probe_sizeof_size_t(void) { return sizeof(size_t); }
size_t fshm_probe_sizeof_int(void) { return sizeof(int); }

/* Signedness: (T)-1 < 0 holds only for signed types. */
int fshm_probe_off64_t_is_signed(void) { return (seek_off_t)-1 < 0; }
int fshm_probe_ssize_t_is_signed(void) { return (ssize_t)-1 < 0; }

/* SEEK_* values the seek callback receives as `whence`. */
int fshm_probe_seek_set(void) { return SEEK_SET; }
int fshm_probe_seek_cur(void) { return SEEK_CUR; }
int fshm_probe_seek_end(void) { return SEEK_END; }
