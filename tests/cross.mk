# SPDX-License-Identifier: MIT
# tests/cross.mk - the context-switch check, natively and for AArch64 under
# qemu-user. Included by the top Makefile, which defines CC, Q, B, CSTD and
# WARN.
#
# tests/ctx_check.c uses only runtime/ctx.h and one runtime/ctx_<arch>.S,
# with no test framework, so it can be linked -static with a cross
# compiler and run under qemu-user, where Criterion is not available. It is
# built with fixed flags, not the VARIANT's: under ASan or TSan an
# unannotated stack switch is reported as an error, and what is checked
# here is the assembly, not the build variant. -O2 gives the register
# allocator the most room to keep values in callee-saved registers.
#
# The AArch64 half needs the Debian packages gcc-aarch64-linux-gnu,
# libc6-dev-arm64-cross and qemu-user (or qemu-user-static). Without them
# it is skipped with a note; it is not an error.

CTX_CHECK_FLAGS := $(CSTD) $(WARN) -O2 -g -fno-omit-frame-pointer \
                   -D_GNU_SOURCE -Iruntime
CTX_CHECK_DEPS  := tests/ctx_check.c runtime/ctx.h

# The native assembly file follows the compiler's target, so that CC=clang
# or a native AArch64 host picks the right one.
CTX_NATIVE_ARCH := $(firstword $(subst -, ,$(shell $(CC) -dumpmachine 2>/dev/null)))

AARCH64_CC   ?= aarch64-linux-gnu-gcc
AARCH64_QEMU ?= $(firstword $(shell command -v qemu-aarch64 qemu-aarch64-static 2>/dev/null))

.PHONY: test-cross

$(B)/tests/ctx_check: $(CTX_CHECK_DEPS) runtime/ctx_$(CTX_NATIVE_ARCH).S
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(CTX_CHECK_FLAGS) -o $@ $(filter %.c %.S,$^) -lm

test-cross: $(B)/tests/ctx_check
	@echo "  RUN     ctx_check ($(CTX_NATIVE_ARCH) native)"
	$(Q)$(B)/tests/ctx_check
ifeq ($(CTX_NATIVE_ARCH),aarch64)
	@echo "ctx_check: the native run above covers AArch64"
else
	$(Q)if command -v $(AARCH64_CC) >/dev/null 2>&1 && \
	    [ -n "$(AARCH64_QEMU)" ]; then \
		$(if $(Q),echo "  CC      $(B)/tests/ctx_check-aarch64";) \
		$(AARCH64_CC) -static $(CTX_CHECK_FLAGS) \
		    -o $(B)/tests/ctx_check-aarch64 tests/ctx_check.c \
		    runtime/ctx_aarch64.S -lm && \
		echo "  RUN     ctx_check (aarch64 under $(notdir $(AARCH64_QEMU)))" && \
		$(AARCH64_QEMU) $(B)/tests/ctx_check-aarch64; \
	else \
		echo "ctx_check: AArch64 check skipped: $(AARCH64_CC) or qemu-aarch64 missing (packages gcc-aarch64-linux-gnu, libc6-dev-arm64-cross, qemu-user)"; \
	fi
endif
