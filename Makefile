# libshmfile for C and C++ users: build the release libraries with cargo, link the
# versioned libshmfile.so, and install them with the headers, the pkg-config file, the
# CMake package and the man pages (libshmfile's in man3, and the fshm command's in man1:
# the command itself installs with `cargo install --path fshm-cli`).
#
#   make                                   # the usable tree target/shmfile/ (below)
#   make install PREFIX=/usr/local         # or DESTDIR=/staging PREFIX=/usr
#   make uninstall PREFIX=/usr/local
#
# `make` leaves in $(TARGET_DIR)/shmfile/ a tree that programs can build against and run
# from as it is (README, section C):
#   lib/libshmfile.so.X.Y.Z (symbol-versioned, soname libshmfile.so.X), the links
#   libshmfile.so.X and libshmfile.so, lib/libshmfile.a; include/shmfile.h, shmfile.hpp.
# cargo's own target/{debug,release}/libshmfile.so is for the Rust tests: it has no
# symbol versions (rustc hands the linker its own version script) and no
# libshmfile.so.X link beside it.
#
# `make install` builds only what is missing and never re-runs cargo otherwise, so
# `make && sudo make install` needs no Rust toolchain as root: run `make` first.
#
# Then: cc prog.c $(pkg-config --cflags --libs shmfile)
#  (static: the .a plus $(pkg-config --static --libs-only-l shmfile) minus -lshmfile),
# or in CMake: find_package(shmfile 1.2 CONFIG REQUIRED) and the imported targets
# shmfile::shmfile (libshmfile.so) and shmfile::shmfile_static (libshmfile.a). C++
# programs include <shmfile.hpp> (C++17) from the same directory.
#
#   make check-man       # every page renders without warnings; every function has one
#   make check-version   # the hand-written copies of the version agree with VERSION
#   make check-abi       # the tree's exports and symbol versions; a program built
#                        # and run from the tree with the README's commands

# The C API version (shmfile 1.1.0 plus additions), read from its one source:
# `c-api-version` in fshm-ffi/Cargo.toml, from which fshm-ffi/build.rs also derives
# shmfile_get_version and the soname libshmfile.so.$(SOMAJOR).
VERSION := $(shell sed -n 's/^c-api-version *= *"\([0-9.]*\)".*/\1/p' fshm-ffi/Cargo.toml)
ifeq ($(VERSION),)
$(error no c-api-version in fshm-ffi/Cargo.toml)
endif
SOMAJOR := $(word 1,$(subst ., ,$(VERSION)))
SOMINOR := $(word 2,$(subst ., ,$(VERSION)))

PREFIX ?= /usr/local
DESTDIR ?=
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR ?= $(PREFIX)/share/man
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
# The CMake package must lie two levels under LIBDIR: its paths are computed from there.
CMAKEDIR := $(LIBDIR)/cmake/shmfile

CARGO ?= cargo
CARGO_FLAGS ?=
# Where cargo puts its output: $(CARGO_TARGET_DIR) when set, else target/.
TARGET_DIR ?= $(if $(CARGO_TARGET_DIR),$(CARGO_TARGET_DIR),target)
RELEASE_DIR := $(TARGET_DIR)/release
# The tree `make` builds (headers and the versioned libraries, see above).
TREE := $(TARGET_DIR)/shmfile
CC ?= cc
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
# The fshm command's pages (fshm.1, fshm-ls.1...), generated from its clap definition by
# `cargo run -p fshm-cli -- man fshm-cli/man` and kept in the repository, so installing
# them needs no toolchain; ci/check-man.sh fails when they differ from the command's.
CLI_MAN_PAGES := $(wildcard fshm-cli/man/*.1)
HEADERS := c/shmfile.h c/shmfile.hpp

# Symbol versions of libshmfile.so: shmfile 1.1.0's functions
# (fshm-ffi/symbols-1.1.0.txt, frozen) under the node SHMFILE_1.1, every other symbol
# of the API (fshm-ffi/exported-symbols.txt) under SHMFILE_<major>.<minor> of this
# version; nothing else is exported. A program linked against this library records
# the node of each function it calls, so it refuses to start with an older library
# that lacks them.
SYMBOLS := fshm-ffi/exported-symbols.txt
SYMBOLS_1_1 := fshm-ffi/symbols-1.1.0.txt
NODE := SHMFILE_$(SOMAJOR).$(SOMINOR)
TREE_FILES := $(TREE)/lib/$(SO_REAL) $(TREE)/lib/$(SO_MAJOR) $(TREE)/lib/libshmfile.so \
	$(TREE)/lib/libshmfile.a $(addprefix $(TREE)/include/,$(notdir $(HEADERS)))

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

# The CMake package finds LIBDIR as the directory two levels above its own, and the
# header relative to LIBDIR when both lie under PREFIX (so the tree can move), else at
# the absolute INCLUDEDIR.
empty :=
space := $(empty) $(empty)
LIBDIR_UNDER := $(patsubst $(PREFIX)/%,%,$(LIBDIR))
INCLUDEDIR_UNDER := $(patsubst $(PREFIX)/%,%,$(INCLUDEDIR))
LIBDIR_UP := $(subst $(space),/,$(patsubst %,..,$(subst /, ,$(LIBDIR_UNDER))))
CMAKE_INCLUDEDIR := $(if $(and $(filter-out /%,$(LIBDIR_UNDER)),$(filter-out /%,$(INCLUDEDIR_UNDER))),$${_shmfile_libdir}/$(LIBDIR_UP)/$(INCLUDEDIR_UNDER),$(INCLUDEDIR))
CMAKE_SED = sed -e 's|@VERSION@|$(VERSION)|g' \
	-e 's|@SOMAJOR@|$(SOMAJOR)|g' \
	-e 's|@CMAKE_INCLUDEDIR@|$(CMAKE_INCLUDEDIR)|g' \
	-e 's|@CMAKE_LIBS_PRIVATE@|$(subst $(space),;,$(strip $(patsubst -l%,%,$(LIBS_PRIVATE))))|g'

.PHONY: all build tree install uninstall clean check-man check-version check-abi version

all: build

# cargo decides what needs rebuilding, so `make` always asks it.
build:
	$(CARGO) build --release -p fshm-ffi $(CARGO_FLAGS)
	@$(MAKE) --no-print-directory tree

tree: $(TREE_FILES)

# For `make install` on a tree where `make` has not run yet.
$(RELEASE_DIR)/libshmfile.a:
	$(CARGO) build --release -p fshm-ffi $(CARGO_FLAGS)

$(TREE)/shmfile.map: $(SYMBOLS) $(SYMBOLS_1_1) Makefile
	@mkdir -p $(@D)
	{ echo "SHMFILE_1.1 {"; echo "  global:"; sed 's/.*/    &;/' $(SYMBOLS_1_1); \
	  echo "  local: *;"; echo "};"; echo "$(NODE) {"; echo "  global:"; \
	  grep -vxF -f $(SYMBOLS_1_1) $(SYMBOLS) | sed 's/.*/    &;/'; \
	  echo "} SHMFILE_1.1;"; } > $@.tmp
	mv $@.tmp $@

# libshmfile.so linked from libshmfile.a (the same objects as cargo's cdylib) with the
# version script: rustc passes the linker a version script of its own ahead of any
# other, so a cdylib cannot carry these versions (see ARCHITECTURE.md). A symbol that
# the script names but the archive lacks fails the link (--no-undefined-version).
$(TREE)/lib/$(SO_REAL): $(RELEASE_DIR)/libshmfile.a $(TREE)/shmfile.map
	@mkdir -p $(@D)
	$(CC) -shared -o $@.tmp -Wl,--whole-archive $(RELEASE_DIR)/libshmfile.a \
	    -Wl,--no-whole-archive -Wl,--version-script=$(TREE)/shmfile.map \
	    -Wl,--no-undefined-version -Wl,--no-undefined -Wl,-soname,$(SO_MAJOR) \
	    -Wl,--gc-sections -Wl,-z,relro -Wl,-z,now $(LDFLAGS) $(LIBS_PRIVATE)
	mv $@.tmp $@

$(TREE)/lib/$(SO_MAJOR) $(TREE)/lib/libshmfile.so: $(TREE)/lib/$(SO_REAL)
	$(LN_S) $(SO_REAL) $@

$(TREE)/lib/libshmfile.a: $(RELEASE_DIR)/libshmfile.a
	@mkdir -p $(@D)
	cp $< $@

$(TREE)/include/%: c/%
	@mkdir -p $(@D)
	cp $< $@

install: $(TREE_FILES)
	$(INSTALL) -d $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PKGCONFIGDIR) \
	    $(DESTDIR)$(CMAKEDIR) $(DESTDIR)$(MANDIR)/man3 $(DESTDIR)$(MANDIR)/man1
	$(INSTALL_DATA) $(HEADERS) $(DESTDIR)$(INCLUDEDIR)/
	$(INSTALL_LIB) $(TREE)/lib/$(SO_REAL) $(DESTDIR)$(LIBDIR)/$(SO_REAL)
	$(LN_S) $(SO_REAL) $(DESTDIR)$(LIBDIR)/$(SO_MAJOR)
	$(LN_S) $(SO_REAL) $(DESTDIR)$(LIBDIR)/libshmfile.so
	$(INSTALL_DATA) $(TREE)/lib/libshmfile.a $(DESTDIR)$(LIBDIR)/libshmfile.a
	$(PC_SED) c/shmfile.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/shmfile.pc
	chmod 644 $(DESTDIR)$(PKGCONFIGDIR)/shmfile.pc
	$(CMAKE_SED) c/cmake/shmfileConfig.cmake.in > $(DESTDIR)$(CMAKEDIR)/shmfileConfig.cmake
	$(CMAKE_SED) c/cmake/shmfileConfigVersion.cmake.in \
	    > $(DESTDIR)$(CMAKEDIR)/shmfileConfigVersion.cmake
	chmod 644 $(DESTDIR)$(CMAKEDIR)/shmfileConfig.cmake \
	    $(DESTDIR)$(CMAKEDIR)/shmfileConfigVersion.cmake
	$(INSTALL_DATA) $(MAN_PAGES) $(DESTDIR)$(MANDIR)/man3/
	$(INSTALL_DATA) $(CLI_MAN_PAGES) $(DESTDIR)$(MANDIR)/man1/
	@if [ -z "$(DESTDIR)" ]; then $(LDCONFIG) 2>/dev/null || true; fi

uninstall:
	rm -f $(addprefix $(DESTDIR)$(INCLUDEDIR)/,$(notdir $(HEADERS))) \
	    $(DESTDIR)$(LIBDIR)/$(SO_REAL) $(DESTDIR)$(LIBDIR)/$(SO_MAJOR) \
	    $(DESTDIR)$(LIBDIR)/libshmfile.so $(DESTDIR)$(LIBDIR)/libshmfile.a \
	    $(DESTDIR)$(PKGCONFIGDIR)/shmfile.pc \
	    $(DESTDIR)$(CMAKEDIR)/shmfileConfig.cmake \
	    $(DESTDIR)$(CMAKEDIR)/shmfileConfigVersion.cmake \
	    $(addprefix $(DESTDIR)$(MANDIR)/man3/,$(notdir $(MAN_PAGES))) \
	    $(addprefix $(DESTDIR)$(MANDIR)/man1/,$(notdir $(CLI_MAN_PAGES)))

# Every function declared in c/shmfile.h has a page (or a `.so` link to the page that
# documents it), and every page renders without warnings (ci/check-man.sh).
check-man:
	@bash ci/check-man.sh

# Prints the C API version (for scripts: make -s version).
version:
	@echo $(VERSION)

check-version:
	@bash ci/check-version.sh $(VERSION)

# Needs the tree (`make` first).
check-abi:
	@bash ci/abi-check.sh $(TREE) $(VERSION)

clean:
	$(CARGO) clean --release -p fshm-ffi
	rm -rf $(TREE)
