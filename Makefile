# SPDX-License-Identifier: MIT
# braid - plain GNU make, no configure. Objects go to build/$(VARIANT)/, so
# switching variants never needs a clean. V=1 prints full commands.
# OBS=0 compiles the observation code out (br_stats counters, the stall
# detector, BRAID_STATS, BRAID_TRACE; -DBR_NO_OBS) into
# build/$(VARIANT)-noobs/: the peer that scripts/obs_cost.py measures its
# cost against. Such a build is for measuring only; its br_stats() reads 0.
# FAULTS=1 compiles braid's fault points in (-DBR_FAULTS, linked with
# libfiu: runtime/internal.h) into build/$(VARIANT)-faults/, for
# `make test-faults` (tests/faults.mk); e.g. make VARIANT=asan FAULTS=1.
# LTO=0 builds the release variant without link-time optimisation, into
# build/release-nolto/ (see LTOFLAGS below).

CC      ?= gcc
VARIANT ?= release
PREFIX  ?= /usr/local
LIBDIR  ?= $(PREFIX)/lib
INCDIR  ?= $(PREFIX)/include
MANDIR  ?= $(PREFIX)/share/man
DOXYGEN ?= doxygen
WERROR  ?= 0
OBS     ?= 1
FAULTS  ?= 0
LTO     ?= 1

VARIANTS := release debug asan tsan
ifeq ($(filter $(VARIANT),$(VARIANTS)),)
$(error VARIANT must be one of: $(VARIANTS))
endif

ifeq ($(OBS),0)
BSUFFIX := -noobs
override CPPFLAGS += -DBR_NO_OBS
endif
ifeq ($(FAULTS),1)
BSUFFIX := $(BSUFFIX)-faults
override CPPFLAGS += -DBR_FAULTS
endif
# Release builds optimise across files: the library is compiled into fat
# objects (intermediate code and machine code), libbraid.so is optimised
# as a whole when it is linked, and braid's benches and examples are
# compiled and linked with it, so br_spawn(), br_await() and the rest
# inline into their callers, as a C++ runtime's header templates or a Rust
# crate's generics do. Release tests are linked with it (tests/tests.mk).
# A program built without -flto links the same libbraid.a as ordinary
# code. What makes this safe with fibers that
# change threads: runtime/worker.c, "Fiber hazards".
ifeq ($(VARIANT),release)
ifeq ($(LTO),1)
LTOFLAGS := $(shell $(CC) -flto=auto -ffat-lto-objects -Werror -c -x c \
		/dev/null -o /dev/null 2>/dev/null && \
		echo -flto=auto -ffat-lto-objects)
else
BSUFFIX := $(BSUFFIX)-nolto
endif
endif
B := build/$(VARIANT)$(BSUFFIX)

CSTD     := -std=gnu11
WARN     := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wpointer-arith -Wwrite-strings -Wformat=2 -Wundef \
            -Wimplicit-fallthrough -Wvla -Wframe-larger-than=8192 \
            -Wno-unused-parameter \
            -Werror=implicit-function-declaration -Werror=implicit-int \
            -Werror=incompatible-pointer-types -Werror=int-conversion \
            -Werror=return-type -Werror=discarded-qualifiers
# Functions start on a 64-byte line: without it, where the linker happens
# to put an unchanged hot function moved the core benchmarks by up to 5%
# from one build to the next (scripts/obs_cost.py).
flags_release := -O2 -g -DNDEBUG -falign-functions=64
flags_debug   := -O0 -g3
flags_asan    := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all \
                 -fno-omit-frame-pointer -fno-optimize-sibling-calls
flags_tsan    := -O1 -g -fsanitize=thread -fno-omit-frame-pointer
VFLAGS := $(flags_$(VARIANT))
ifeq ($(WERROR),1)
WARN += -Werror
endif

# Every frame larger than a page probes its pages from the top down, so a
# task's stack overflow meets its guard instead of stepping over it into
# another task's stack (runtime/stack.c). Tests, examples and benches get
# it too: README asks programs built on braid to use it.
CLASHFLAGS := $(shell $(CC) -fstack-clash-protection -Werror -c -x c \
		/dev/null -o /dev/null 2>/dev/null && echo -fstack-clash-protection)

override CPPFLAGS += -D_GNU_SOURCE -Iinclude -Iruntime
override CFLAGS   := $(CSTD) $(WARN) $(VFLAGS) $(CLASHFLAGS) -pthread -MMD -MP \
		     $(CFLAGS)
LIBFLAGS := -fvisibility=hidden -fPIC
SOFLAGS  := -shared -Wl,-z,defs -Wl,-z,relro,-z,now -Wl,-z,noexecstack
LDLIBS   := -luring -pthread
ifeq ($(FAULTS),1)
LDLIBS   += -lfiu
endif
SANLD    := $(filter -fsanitize=%,$(VFLAGS))

LIB_SRC := $(wildcard runtime/*.c)
LIB_ASM := $(wildcard runtime/ctx_*.S)
LIB_OBJ := $(LIB_SRC:%.c=$(B)/%.o) $(patsubst %.S,$(B)/%.o,$(filter %x86_64.S,$(LIB_ASM)))
ifeq ($(shell uname -m),aarch64)
LIB_OBJ := $(LIB_SRC:%.c=$(B)/%.o) $(patsubst %.S,$(B)/%.o,$(filter %aarch64.S,$(LIB_ASM)))
endif

ifeq ($(V),1)
Q :=
else
Q := @
endif

.PHONY: all lib release debug asan tsan clean test check test-unit test-asan \
        test-tsan test-valgrind stress bench demo deps install uninstall \
        install-man docs format format-check lint tls-check examples \
        compare

all: lib
lib: $(B)/libbraid.a $(B)/libbraid.so

release debug asan tsan:
	$(Q)$(MAKE) --no-print-directory VARIANT=$@ lib

$(B)/runtime/%.o: runtime/%.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(LIBFLAGS) $(LTOFLAGS) -c -o $@ $<

$(B)/runtime/%.o: runtime/%.S
	@mkdir -p $(@D)
	@$(if $(Q),echo "  AS      $<")
	$(Q)$(CC) $(CPPFLAGS) -MMD -MP -c -o $@ $<

$(B)/libbraid.a: $(LIB_OBJ)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

$(B)/libbraid.so: $(LIB_OBJ)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) $(LTOFLAGS) $(SOFLAGS) -Wl,-soname,libbraid.so.$(BR_MAJOR) -o $@ $^ $(LDLIBS)

BR_MAJOR := $(shell sed -n 's/^\#define BR_VERSION_MAJOR \([0-9]*\)/\1/p' include/braid.h)
BR_MINOR := $(shell sed -n 's/^\#define BR_VERSION_MINOR \([0-9]*\)/\1/p' include/braid.h)
BR_PATCH := $(shell sed -n 's/^\#define BR_VERSION_PATCH \([0-9]*\)/\1/p' include/braid.h)

# Programs (tests, examples, benches) link the static library so that
# tests can reach internal br__ symbols.
# trace_tour exports its functions, so the trace can name its tasks.
$(B)/examples/trace_tour: EXAMPLE_LDFLAGS := -rdynamic

$(B)/examples/%: examples/%.c $(wildcard examples/*.h) $(B)/libbraid.a
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(LTOFLAGS) $(EXAMPLE_LDFLAGS) -o $@ $< \
		$(B)/libbraid.a $(LDLIBS)

# cluster_primes needs MPI: runtime/mpi/mpi.mk builds it, when it can.
EXAMPLES := $(patsubst examples/%.c,$(B)/examples/%, \
              $(filter-out examples/cluster_primes.c,$(wildcard examples/*.c)) \
              $(wildcard examples/recipes/*.c))
examples: $(EXAMPLES)

-include tests/tests.mk
-include runtime/mpi/mpi.mk
-include tests/cross.mk
-include bench/bench.mk

deps:
	$(Q)scripts/deps.sh

demo:
	$(Q)scripts/deps.sh
	$(Q)$(MAKE) --no-print-directory VARIANT=release lib examples
	$(Q)build/release/examples/asyncio_tour
	$(Q)$(MAKE) --no-print-directory bench-summary

# Installation: the header, both libraries, braid.pc, a CMake package
# (LIBDIR/cmake/braid) and, when Doxygen is there or has been run, the
# man pages. braid.pc and the CMake package name their directories
# relative to PREFIX (pkg-config) or to their own place (CMake) when
# LIBDIR and INCDIR lie under PREFIX, so a staged (DESTDIR) or moved
# installation works: pkg-config --define-variable=prefix=DIR, or
# CMAKE_PREFIX_PATH=DIR. Directories elsewhere stay absolute.
BR_VERSION := $(BR_MAJOR).$(BR_MINOR).$(BR_PATCH)
CMAKEDIR   := $(LIBDIR)/cmake/braid
under_prefix = $(filter $(PREFIX)/%,$(1))
PC_LIBDIR  := $(if $(call under_prefix,$(LIBDIR)),$${exec_prefix}/$(patsubst $(PREFIX)/%,%,$(LIBDIR)),$(LIBDIR))
PC_INCDIR  := $(if $(call under_prefix,$(INCDIR)),$${prefix}/$(patsubst $(PREFIX)/%,%,$(INCDIR)),$(INCDIR))
CM_INCDIR  := $(if $(and $(call under_prefix,$(LIBDIR)),$(call under_prefix,$(INCDIR))),$${_braid_libdir}/$(shell realpath -sm --relative-to=$(LIBDIR) $(INCDIR)),$(INCDIR))

install: $(B)/libbraid.a $(B)/libbraid.so
	install -d $(DESTDIR)$(INCDIR) $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(CMAKEDIR)
	install -m 644 include/braid.h $(DESTDIR)$(INCDIR)/braid.h
	install -m 644 $(B)/libbraid.a $(DESTDIR)$(LIBDIR)/libbraid.a
	install -m 755 $(B)/libbraid.so $(DESTDIR)$(LIBDIR)/libbraid.so.$(BR_VERSION)
	ln -sf libbraid.so.$(BR_VERSION) $(DESTDIR)$(LIBDIR)/libbraid.so.$(BR_MAJOR)
	ln -sf libbraid.so.$(BR_MAJOR) $(DESTDIR)$(LIBDIR)/libbraid.so
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(PC_LIBDIR)|' \
	    -e 's|@INCDIR@|$(PC_INCDIR)|' -e 's|@VERSION@|$(BR_VERSION)|' \
	    braid.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/braid.pc
	for f in braid-config braid-config-version; do \
		sed -e 's|@BRAID_INCDIR@|$(CM_INCDIR)|' \
		    -e 's|@BRAID_VERSION@|$(BR_VERSION)|' \
		    -e 's|@BRAID_MAJOR@|$(BR_MAJOR)|' \
		    cmake/$$f.cmake.in > $(DESTDIR)$(CMAKEDIR)/$$f.cmake || exit 1; \
	done
	@$(MAKE) --no-print-directory install-man

# The man pages Doxygen makes for braid's names (br_*, BR_*) and pages
# (braid.h, braid_<section>); it also makes pages for struct fields
# (flags, workers, ...), which are left out: they would shadow other
# pages of those names.
MAN_PAGES = br_*.3 BR_*.3 braid.3 braid.h.3 braid_*.3
install-man:
	@if command -v $(DOXYGEN) >/dev/null 2>&1; then \
		$(MAKE) -s --no-print-directory docs || exit 1; \
	fi; \
	if [ -f $(DOCS)/.stamp ]; then \
		echo "install -m 644 $(DOCS)/man/man3/{$(MAN_PAGES)} $(DESTDIR)$(MANDIR)/man3"; \
		install -d $(DESTDIR)$(MANDIR)/man3 && \
		install -m 644 $(addprefix $(DOCS)/man/man3/,$(MAN_PAGES)) \
			$(DESTDIR)$(MANDIR)/man3/; \
	else \
		echo "  SKIP    man pages: no $(DOXYGEN) (apt-get install doxygen, then make install again)"; \
	fi

uninstall:
	rm -f $(DESTDIR)$(INCDIR)/braid.h $(DESTDIR)$(LIBDIR)/libbraid.a \
	      $(DESTDIR)$(LIBDIR)/libbraid.so $(DESTDIR)$(LIBDIR)/libbraid.so.$(BR_MAJOR) \
	      $(DESTDIR)$(LIBDIR)/libbraid.so.$(BR_VERSION) \
	      $(DESTDIR)$(LIBDIR)/pkgconfig/braid.pc \
	      $(DESTDIR)$(CMAKEDIR)/braid-config.cmake \
	      $(DESTDIR)$(CMAKEDIR)/braid-config-version.cmake
	rmdir $(DESTDIR)$(CMAKEDIR) 2>/dev/null || true
	cd $(DESTDIR)$(MANDIR)/man3 2>/dev/null && rm -f $(MAN_PAGES) || true

# make docs: man pages (build/docs/man/man3) and HTML (build/docs/html)
# from braid.h's comments. braid.3 opens the header's page, so that
# `man braid` works too. Doxygen's warnings are kept in warnings.log
# and printed; tests/install_check.sh fails on any.
DOCS := build/docs
docs: $(DOCS)/.stamp
$(DOCS)/.stamp: include/braid.h docs/Doxyfile
	@if ! command -v $(DOXYGEN) >/dev/null 2>&1; then \
		echo "make docs: needs $(DOXYGEN) (apt-get install doxygen)" >&2; \
		exit 1; \
	fi
	@$(if $(Q),echo "  DOXYGEN $(DOCS)")
	$(Q)rm -rf $(DOCS) && mkdir -p $(DOCS)
	$(Q)BRAID_VERSION=$(BR_VERSION) BRAID_DOCS=$(DOCS) $(DOXYGEN) docs/Doxyfile
	$(Q)printf '.so man3/braid.h.3\n' > $(DOCS)/man/man3/braid.3
	$(Q)if [ -s $(DOCS)/warnings.log ]; then cat $(DOCS)/warnings.log >&2; fi
	$(Q)touch $@

FORMAT_SRC = $(wildcard runtime/*.[ch] runtime/mpi/*.[ch] include/*.h tests/*.[ch] tests/install/*.c tests/fuzz/*.[ch] bench/*.[ch] bench/peers/*.[ch] examples/*.[ch] examples/recipes/*.c)
format:
	clang-format -i $(FORMAT_SRC)
format-check:
	clang-format --dry-run --Werror $(FORMAT_SRC)

lint: tls-check
	cppcheck --quiet --enable=warning,performance --std=c11 -D_GNU_SOURCE \
	    -Iinclude -Iruntime runtime

# Thread-locals read only where a fiber cannot carry a stale thread pointer
# across a suspension (runtime/worker.c, "Fiber hazards").
tls-check:
	$(Q)python3 scripts/tls_check.py

clean:
	rm -rf build

-include $(LIB_OBJ:.o=.d)
