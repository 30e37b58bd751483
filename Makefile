# libshmfile for C users: build the release libraries with cargo, install them with
# the header, the pkg-config file and the man pages.
#
#   make                                   # target/release/libshmfile.{so,a}
#   make install PREFIX=/usr/local         # or DESTDIR=/staging PREFIX=/usr
#   make uninstall PREFIX=/usr/local
#
# `make install` builds only what is missing and never re-runs cargo otherwise, so
# `make && sudo make install` needs no Rust toolchain as root: run `make` first.
#
# Then: cc prog.c $(pkg-config --cflags --libs shmfile)
#  (static: the .a plus $(pkg-config --static --libs-only-l shmfile) minus -lshmfile).

# The C API version (shmfile 1.1.0 plus additions); the soname is libshmfile.so.$(SOMAJOR),
# set in fshm-ffi/build.rs.
VERSION := 1.2.0
SOMAJOR := 1

PREFIX ?= /usr/local
DESTDIR ?=
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR ?= $(PREFIX)/share/man
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig

CARGO ?= cargo
CARGO_FLAGS ?=
# Where cargo puts its output: $(CARGO_TARGET_DIR) when set, else target/.
TARGET_DIR ?= $(if $(CARGO_TARGET_DIR),$(CARGO_TARGET_DIR),target)
RELEASE_DIR := $(TARGET_DIR)/release
# The system libraries libshmfile.a needs (from
# `cargo rustc --release -p fshm-ffi --crate-type staticlib -- --print native-static-libs`).
LIBS_PRIVATE ?= -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc

INSTALL ?= install
INSTALL_DATA ?= $(INSTALL) -m 644
INSTALL_LIB ?= $(INSTALL) -m 755
LN_S ?= ln -sf
# Refreshes the linker cache after a real (non-DESTDIR) install; `make install LDCONFIG=:`
# skips it.
LDCONFIG ?= ldconfig

SO_REAL := libshmfile.so.$(VERSION)
SO_MAJOR := libshmfile.so.$(SOMAJOR)
MAN_PAGES := $(wildcard c/man/*.3)

# In shmfile.pc, paths under the prefix are written as ${prefix}/..., so that
# `pkg-config --define-prefix` can relocate an installed tree.
PC_LIBDIR := $(patsubst $(PREFIX)/%,$${prefix}/%,$(LIBDIR))
PC_INCLUDEDIR := $(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))
# shmfile.pc is generated from c/shmfile.pc.in straight into its install place, so it
# always carries this install's PREFIX.
PC_SED = sed -e 's|@PREFIX@|$(PREFIX)|g' \
	-e 's|@LIBDIR@|$(PC_LIBDIR)|g' \
	-e 's|@INCLUDEDIR@|$(PC_INCLUDEDIR)|g' \
	-e 's|@VERSION@|$(VERSION)|g' \
	-e 's|@URL@|https://example.invalid/fshm|g' \
	-e 's|@LIBS_PRIVATE@|$(LIBS_PRIVATE)|g'

.PHONY: all build install uninstall clean check-man

all: build

# cargo decides what needs rebuilding, so `make` always asks it.
build:
	$(CARGO) build --release -p fshm-ffi $(CARGO_FLAGS)

# For `make install` on a tree where `make` has not run yet.
$(RELEASE_DIR)/libshmfile.so $(RELEASE_DIR)/libshmfile.a:
	$(CARGO) build --release -p fshm-ffi $(CARGO_FLAGS)

install: $(RELEASE_DIR)/libshmfile.so $(RELEASE_DIR)/libshmfile.a
	$(INSTALL) -d $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PKGCONFIGDIR) \
	    $(DESTDIR)$(MANDIR)/man3
	$(INSTALL_DATA) c/shmfile.h $(DESTDIR)$(INCLUDEDIR)/shmfile.h
	$(INSTALL_LIB) $(RELEASE_DIR)/libshmfile.so $(DESTDIR)$(LIBDIR)/$(SO_REAL)
	$(LN_S) $(SO_REAL) $(DESTDIR)$(LIBDIR)/$(SO_MAJOR)
	$(LN_S) $(SO_REAL) $(DESTDIR)$(LIBDIR)/libshmfile.so
	$(INSTALL_DATA) $(RELEASE_DIR)/libshmfile.a $(DESTDIR)$(LIBDIR)/libshmfile.a
	$(PC_SED) c/shmfile.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/shmfile.pc
	chmod 644 $(DESTDIR)$(PKGCONFIGDIR)/shmfile.pc
	$(INSTALL_DATA) $(MAN_PAGES) $(DESTDIR)$(MANDIR)/man3/
	@if [ -z "$(DESTDIR)" ]; then $(LDCONFIG) 2>/dev/null || true; fi

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/shmfile.h \
	    $(DESTDIR)$(LIBDIR)/$(SO_REAL) $(DESTDIR)$(LIBDIR)/$(SO_MAJOR) \
	    $(DESTDIR)$(LIBDIR)/libshmfile.so $(DESTDIR)$(LIBDIR)/libshmfile.a \
	    $(DESTDIR)$(PKGCONFIGDIR)/shmfile.pc \
	    $(addprefix $(DESTDIR)$(MANDIR)/man3/,$(notdir $(MAN_PAGES)))

# Renders every man page with warnings as errors. The one-line pages hold
# `.so man3/<page>.3`, resolved from a man root, as in an installed tree.
check-man:
	@root=$$(mktemp -d) && ln -s "$(CURDIR)/c/man" "$$root/man3" && \
	for p in $(notdir $(MAN_PAGES)); do \
	    out=$$(cd "$$root" && groff -man -ww -z man3/$$p 2>&1); \
	    if [ -n "$$out" ]; then echo "c/man/$$p: $$out"; rm -rf "$$root"; exit 1; fi; \
	done; rm -rf "$$root"; echo "man pages: no warnings"

clean:
	$(CARGO) clean --release -p fshm-ffi
