# SPDX-License-Identifier: MIT
# tests/tests.mk - braid's test targets, included by the top-level Makefile.
#
# Each tests/test_<module>.c and tests/stress_<module>.c is one Criterion
# program, linked with tests/helpers.c and the static library (so tests can
# call internal br__ functions) into $(B)/tests/. Criterion forks every
# test into its own process and runs them two at a time.
#
#   make test           release, asan and tsan, WERROR=1, STRICT=1 (no
#                       part skipped for a missing tool); what CI runs
#   make test-unit      every test and stress program in $(VARIANT), after
#                       test-suites: each suite has the leak accounting
#   make test-asan      test-unit in the asan variant
#   make test-tsan      the concurrency programs in the tsan variant
#   make test-valgrind  release programs under valgrind (optional)
#   make test-install   tests/install_check.sh: a staged make install, a
#                       program built against it with pkg-config and with
#                       CMake, the man pages (with Doxygen), uninstall
#   make stress         the stress programs at full scale
#   make test-faults    the fault sweep (tests/faults.mk); make test runs
#                       its short form, test-faults-short
#   make soak           servers and pools under load for SOAK_S seconds
#                       (tests/soak.mk); make test runs it for 60 s
#   make fuzz           the libFuzzer targets (tests/fuzz.mk); make test
#                       runs those of FUZZ_IN_TEST (all of them) for
#                       FUZZ_TEST_S seconds each (fuzz-smoke)
#
# STRESS_SCALE sets BRAID_STRESS_SCALE for test-unit and test-tsan (default
# 1, which keeps every stress program well under a minute in asan);
# `stress` uses 10. CRITERION_FLAGS adds options, e.g. --filter 'future/*'.

TEST_SRC    := $(wildcard tests/test_*.c)
STRESS_SRC  := $(wildcard tests/stress_*.c)
TEST_BIN    := $(TEST_SRC:tests/%.c=$(B)/tests/%)
STRESS_BIN  := $(STRESS_SRC:tests/%.c=$(B)/tests/%)
TEST_OBJ    := $(TEST_BIN:=.o) $(STRESS_BIN:=.o)
TEST_HELPER := $(B)/tests/helpers.o
ifeq ($(VARIANT),tsan)
TEST_HELPER += $(B)/tests/tsan_criterion.o
endif

# test-tsan runs the programs where threads meet: scheduler, futures,
# combinators, tasks, timers, groups, the deque, every waiting call's time
# limits, and every stress program.
TSAN_TESTS  := runtime future combine task timer group deque io io_net sync chan fs streams signal \
               blocking exec forkexec pool stats deadline time_limits
TSAN_BIN    := $(filter $(TSAN_TESTS:%=$(B)/tests/test_%),$(TEST_BIN))

STRESS_SCALE    ?= 1

# A part of make test whose tools are missing (libfiu for test-faults,
# wrk for soak, clang's libFuzzer for fuzz-smoke, MPI for test-mpi) says
# SKIP and succeeds; with STRICT=1, which make test sets, it fails, so
# that a run cannot pass without them (scripts/deps.sh installs them).
# $(SKIP) "text": shell text that says so.
STRICT ?= 0
ifeq ($(STRICT),1)
SKIP = sh -c 'echo "  FAILED  $$* (STRICT=1: not skipped)"; exit 1' skip
else
SKIP = sh -c 'echo "  SKIP    $$*"' skip
endif
VALGRIND        := valgrind --quiet --error-exitcode=1 --trace-children=yes \
		   --leak-check=full
CRITERION_FLAGS ?=

TEST_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	    LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 \
	    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    TSAN_OPTIONS=suppressions=$(CURDIR)/tests/tsan.supp:halt_on_error=1:second_deadlock_stack=1

# $(call run_tests,programs,extra environment,criterion options): shell
# text that runs each program and sets fail=1 if one fails. A recipe runs
# one or more of these after `fail=0;` and ends with `exit $$fail`, so
# every program runs even after a failure.
define run_tests
for t in $(1); do \
	echo "  TEST    $$t"; \
	env $(TEST_ENV) $(2) $$t $(3) $(CRITERION_FLAGS) || \
		{ echo "  FAILED  $$t"; fail=1; }; \
done;
endef

.PHONY: test check test-unit test-asan test-tsan test-valgrind stress \
	test-fallbacks test-install test-suites

# Release tests link with LTOFLAGS (Makefile), so they run the library as
# libbraid.so users get it, optimised as a whole; their own code is
# compiled as usual (the benches and examples are the programs that inline
# braid's calls into their own).
$(B)/tests/%.o: tests/%.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

# Runs inside TSan's start-up, so it must not be instrumented itself.
$(B)/tests/tsan_criterion.o: tests/tsan_criterion.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(CSTD) $(WARN) -O1 -g -MMD -MP -c -o $@ $<

# test_examples runs the example servers as processes.
$(B)/tests/test_examples: $(EXAMPLES)

# test_models runs bench/models (built in the same variant, see
# bench/bench.mk) at a tiny scale and links its verdict code.
$(B)/tests/test_models: $(B)/tests/test_models.o $(TEST_HELPER) \
			$(B)/bench/models_verdict.o $(B)/libbraid.a \
			$(B)/bench/models
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) $(LTOFLAGS) -o $@ $< $(TEST_HELPER) \
		$(B)/bench/models_verdict.o $(B)/libbraid.a $(LDLIBS) -lcriterion

# test_stack links tests/stack_frames.c twice: with the stack-clash
# protection every program gets (Makefile) and without it, to show what an
# unprobed frame does. -rdynamic lets the overflow report name them.
STACK_FRAMES := $(B)/tests/stack_frames_probed.o $(B)/tests/stack_frames_plain.o
$(B)/tests/stack_frames_probed.o: tests/stack_frames.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -fstack-clash-protection \
		-DFRAMES_SUFFIX=_probed -c -o $@ $<
$(B)/tests/stack_frames_plain.o: tests/stack_frames.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -fno-stack-clash-protection \
		-DFRAMES_SUFFIX=_plain -c -o $@ $<
$(B)/tests/test_stack: $(B)/tests/test_stack.o $(TEST_HELPER) $(STACK_FRAMES) \
		       $(B)/libbraid.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) $(LTOFLAGS) -rdynamic -o $@ $< $(TEST_HELPER) \
		$(STACK_FRAMES) $(B)/libbraid.a $(LDLIBS) -lcriterion

# The stall detector names task functions with dladdr(), which sees a
# program's own functions only when they are exported.
$(B)/tests/test_stats: TEST_LDFLAGS := -rdynamic

$(B)/tests/%: $(B)/tests/%.o $(TEST_HELPER) $(B)/libbraid.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) $(LTOFLAGS) $(TEST_LDFLAGS) -o $@ $< $(TEST_HELPER) \
		$(B)/libbraid.a $(LDLIBS) -lcriterion

.SECONDARY: $(TEST_OBJ) $(TEST_HELPER) $(STACK_FRAMES)

# The fuzz targets make test runs for FUZZ_TEST_S seconds each.
FUZZ_IN_TEST ?= api http_parse

test:
	$(Q)scripts/deps.sh
	$(Q)$(MAKE) --no-print-directory format-check
	$(Q)$(MAKE) --no-print-directory tls-check
	$(Q)$(MAKE) --no-print-directory VARIANT=release WERROR=1 test-unit
	$(Q)$(MAKE) --no-print-directory VARIANT=release WERROR=1 test-fallbacks
	$(Q)$(MAKE) --no-print-directory VARIANT=release WERROR=1 test-install
	$(Q)$(MAKE) --no-print-directory VARIANT=release WERROR=1 STRICT=1 test-mpi
	$(Q)$(MAKE) --no-print-directory VARIANT=asan WERROR=1 test-unit
	$(Q)$(MAKE) --no-print-directory WERROR=1 STRICT=1 test-faults-short
	$(Q)$(MAKE) --no-print-directory VARIANT=release WERROR=1 STRICT=1 soak SOAK_S=$(SOAK_TEST_S)
	$(Q)$(MAKE) --no-print-directory STRICT=1 fuzz-smoke FUZZ="$(FUZZ_IN_TEST)"
	$(Q)$(MAKE) --no-print-directory VARIANT=tsan WERROR=1 test-tsan
	$(if $(filter %tests/cross.mk,$(MAKEFILE_LIST)),$(Q)$(MAKE) --no-print-directory test-cross)

check: test

# Every suite a test names has the leak accounting of helpers.h, so that
# a new suite cannot go without it.
test-suites:
	$(Q)fail=0; for f in $(TEST_SRC) $(STRESS_SRC); do \
		for s in $$(sed -En 's/^(Test|ParameterizedTestParameters)\(([a-z_0-9]+),.*/\2/p' $$f | sort -u); do \
			grep -Eq "^TestSuite\($$s, \.init = t_leak_init, \.fini = t_leak_fini\);" $$f || \
				{ echo "$$f: suite $$s has no TestSuite($$s, .init = t_leak_init, .fini = t_leak_fini)"; fail=1; }; \
		done; \
	done; exit $$fail

# Stress programs run one test at a time: each already loads both CPUs.
test-unit: test-suites $(TEST_BIN) $(STRESS_BIN)
	$(Q)fail=0; \
	$(call run_tests,$(TEST_BIN),,--jobs 2) \
	$(call run_tests,$(STRESS_BIN),BRAID_STRESS_SCALE=$(STRESS_SCALE),--jobs 1) \
	exit $$fail

# The wake-up paths this kernel does not take by itself: workers parked in
# ppoll() (no io_uring), and rings woken through an eventfd (no
# IORING_REGISTER_SEND_MSG_RING). The programs where threads meet, timers,
# deadline scopes and every call's time limits, and the whole I/O suite
# (test_io, test_io_net, test_fs, test_streams, test_signal, test_exec,
# stress_io), whose every call must give the same answer without a ring.
FALLBACK_BIN := $(filter $(addprefix $(B)/tests/test_,runtime future task combine timer deadline time_limits io io_net fs streams signal exec pool),$(TEST_BIN))
test-fallbacks: $(FALLBACK_BIN) $(STRESS_BIN)
	$(Q)fail=0; \
	$(call run_tests,$(FALLBACK_BIN) $(STRESS_BIN),BRAID_NO_URING=1,--jobs 1) \
	$(call run_tests,$(FALLBACK_BIN) $(STRESS_BIN),BRAID_NO_SEND_MSG_RING=1,--jobs 1) \
	exit $$fail

ifeq ($(VARIANT),asan)
test-asan: test-unit
else
test-asan:
	$(Q)$(MAKE) --no-print-directory VARIANT=asan test-asan
endif

ifeq ($(VARIANT),tsan)
test-tsan: $(TSAN_BIN) $(STRESS_BIN)
	$(Q)fail=0; \
	$(call run_tests,$(TSAN_BIN),,--jobs 2) \
	$(call run_tests,$(STRESS_BIN),BRAID_STRESS_SCALE=$(STRESS_SCALE),--jobs 1) \
	exit $$fail
else
test-tsan:
	$(Q)$(MAKE) --no-print-directory VARIANT=tsan test-tsan
endif

# Criterion notices valgrind and then runs one test at a time and lets
# each test process return from main, so leaks are seen; the tests fork,
# hence --trace-children. Valgrind cannot see what the kernel writes into
# io_uring's shared rings and buffers, so the loops run without a ring
# (BRAID_NO_URING=1) there. It is a leak check outside `make test`: tests
# bound in time, and those that need system calls valgrind 3.19 lacks
# (pidfd_open, for br_exec), fail under its slowdown.
ifeq ($(VARIANT),release)
test-valgrind: $(TEST_BIN)
	$(Q)fail=0; \
	$(call run_tests,$(TEST_BIN),BRAID_NO_URING=1 $(VALGRIND),) \
	exit $$fail
else
test-valgrind:
	$(Q)$(MAKE) --no-print-directory VARIANT=release test-valgrind
endif

# The script runs make install and uninstall itself, with this variant.
test-install: $(B)/libbraid.a $(B)/libbraid.so
	$(Q)MAKE="$(MAKE)" CC="$(CC)" VARIANT=$(VARIANT) tests/install_check.sh

stress: $(STRESS_BIN)
	$(Q)fail=0; \
	$(call run_tests,$(STRESS_BIN),BRAID_STRESS_SCALE=10,--jobs 1) \
	exit $$fail

-include tests/faults.mk
-include tests/soak.mk
-include tests/fuzz.mk
-include $(wildcard $(B)/tests/*.d)
