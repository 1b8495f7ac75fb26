# SPDX-License-Identifier: MIT
# tests/faults.mk - the fault sweep, included by tests/tests.mk.
#
# A faults build (FAULTS=1: build/<variant>-faults/) compiles braid's
# fault points in (runtime/internal.h, BR__FAULT) and links libfiu.
# scripts/faults.py runs tests/faults.c, a scenario over the core, I/O,
# the pools, sync and subprocesses, under each point and under libfiu's
# POSIX wrappers (fiu-run -x), and checks that no run crashes, hangs,
# leaks or trips a sanitizer: under a fault a call fails with an error,
# nothing else. See the script for the modes.
#
#   make test-faults        the full sweep in asan: every point fails
#                           once, always and at random (1%) over the
#                           scenario, the POSIX groups likewise, and the
#                           core, I/O, pool and sync unit test programs
#                           run under every point failing always
#                           (crashes and hangs only)
#   make test-faults-short  every point once and always over the
#                           scenario (make test runs it)
#
# FAULTS_TIMEOUT_S bounds one run of the scenario (a hang), default 60;
# FAULTS_ARGS passes more options to the script (e.g. --point NAME).

FAULTS_TIMEOUT_S ?= 60
FAULTS_ARGS      ?=

.PHONY: test-faults test-faults-short

# The scenario is a plain program, not a Criterion one.
$(B)/tests/faults: $(B)/tests/faults.o $(B)/libbraid.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) $(LTOFLAGS) -o $@ $< $(B)/libbraid.a $(LDLIBS)

# libfiu's POSIX wrappers do not run under ASan (scripts/faults.py says
# why): their groups run the debug variant's scenario, and the tests that
# use them (suite faults_posix) its test_faults.
POSIX_TESTS := build/debug-faults/tests/test_faults
POSIX_ONLY  := --filter 'faults_posix/*'
ifeq ($(VARIANT)$(FAULTS),asan1)
test-faults: $(B)/tests/faults $(B)/tests/test_faults $(TEST_BIN)
	$(Q)$(MAKE) --no-print-directory VARIANT=debug FAULTS=1 \
		build/debug-faults/tests/faults $(POSIX_TESTS)
	$(Q)fail=0; \
	$(call run_tests,$(B)/tests/test_faults,,--jobs 2) \
	$(call run_tests,$(POSIX_TESTS),,$(POSIX_ONLY)) \
	python3 scripts/faults.py --full --timeout $(FAULTS_TIMEOUT_S) \
		--build $(B) --posix-build build/debug-faults \
		$(FAULTS_ARGS) || fail=1; \
	exit $$fail

test-faults-short: $(B)/tests/faults $(B)/tests/test_faults
	$(Q)$(MAKE) --no-print-directory VARIANT=debug FAULTS=1 $(POSIX_TESTS)
	$(Q)fail=0; \
	$(call run_tests,$(B)/tests/test_faults,,--jobs 2) \
	$(call run_tests,$(POSIX_TESTS),,$(POSIX_ONLY)) \
	python3 scripts/faults.py --timeout $(FAULTS_TIMEOUT_S) \
		--build $(B) $(FAULTS_ARGS) || fail=1; \
	exit $$fail
else
# Without libfiu (scripts/deps.sh's faults group) there is no sweep.
HAVE_FIU := $(shell printf '\043include <fiu-control.h>\n' | \
		$(CC) -E - >/dev/null 2>&1 && command -v fiu-run >/dev/null && echo 1)
test-faults test-faults-short:
ifeq ($(HAVE_FIU),1)
	$(Q)$(MAKE) --no-print-directory VARIANT=asan FAULTS=1 $@
else
	@$(SKIP) "$@: no libfiu or fiu-run (scripts/deps.sh, group faults)"
endif
endif
