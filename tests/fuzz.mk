# SPDX-License-Identifier: MIT
# tests/fuzz.mk - libFuzzer targets, included by tests/tests.mk.
#
# Every tests/fuzz/fuzz_<name>.c is a target: it defines
# LLVMFuzzerTestOneInput and is built by clang with
# -fsanitize=fuzzer,address,undefined into build/fuzz/fuzz_<name>.
# Beside it, all optional:
#   tests/fuzz/<name>/        seed corpus (committed; only read)
#   tests/fuzz/<name>.dict    libFuzzer dictionary
#   tests/fuzz/<name>.flags   more libFuzzer options, on one line
# A target that includes braid.h is linked with build/fuzz/libbraid.a,
# the library built by clang with the same sanitizers and the fuzzer's
# coverage (-fsanitize=fuzzer-no-link). New inputs go to
# build/fuzz/corpus/<name>/, crashes and the like to
# build/fuzz/artifacts/<name>/, each run's output to
# build/fuzz/<name>.log.
#
#   make fuzz           each target for FUZZ_S seconds (default 60)
#   make fuzz-smoke     each target for FUZZ_TEST_S seconds (default 20);
#                       make test runs it with FUZZ=$(FUZZ_IN_TEST)
#   make fuzz-build     build the targets
#   FUZZ=<name>         only that target, e.g. make fuzz FUZZ=http_parse
#
# Without clang or its libFuzzer runtime (Debian: clang and
# libclang-rt-14-dev, scripts/deps.sh's fuzz group), each of these prints
# a note saying so and succeeds, or fails with STRICT=1 (make test).

FUZZ_CC     ?= clang
FUZZ_S      ?= 60
FUZZ_TEST_S ?= 20
FUZZ_B      := build/fuzz
FUZZ_SRC    := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_NAMES  := $(FUZZ_SRC:tests/fuzz/fuzz_%.c=%)
ifneq ($(FUZZ),)
FUZZ_NAMES  := $(filter $(FUZZ),$(FUZZ_NAMES))
endif
FUZZ_BIN    := $(FUZZ_NAMES:%=$(FUZZ_B)/fuzz_%)
FUZZ_SAN    := -fsanitize=address,undefined -fno-sanitize-recover=all \
	       -fno-omit-frame-pointer
FUZZ_CFLAGS := -std=gnu11 -g -O1 $(FUZZ_SAN) -pthread -D_GNU_SOURCE \
	       -Iinclude -Iruntime -Iexamples -Wall -Wextra \
	       -Wno-unused-parameter -MMD -MP
FUZZ_ENV    := LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 \
	       UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
FUZZ_LIB_OBJ := $(patsubst $(B)/%,$(FUZZ_B)/%,$(LIB_OBJ))
# The targets that include braid.h, found when one is built.
FUZZ_WITH_LIB = $(shell grep -lE '^\#include [<"]braid\.h[>"]' $(FUZZ_SRC))

# Shell text: true if $(FUZZ_CC) can link a libFuzzer program.
FUZZ_PROBE := mkdir -p $(FUZZ_B) && printf '%s\n' \
	'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n);' \
	'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n)' \
	'{ return 0; }' > $(FUZZ_B)/probe.c && \
	$(FUZZ_CC) -fsanitize=fuzzer -o $(FUZZ_B)/probe $(FUZZ_B)/probe.c \
	>/dev/null 2>&1
FUZZ_SKIP = $(SKIP) "fuzz targets: $(FUZZ_CC) cannot build a libFuzzer" \
	"program here (install clang and libclang-rt-14-dev: scripts/deps.sh," \
	"group fuzz)"

.PHONY: fuzz fuzz-smoke fuzz-build fuzz-programs

$(FUZZ_B)/runtime/%.o: runtime/%.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $< (fuzz)")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link $(LIBFLAGS) \
		-c -o $@ $<

$(FUZZ_B)/runtime/%.o: runtime/%.S
	@mkdir -p $(@D)
	@$(if $(Q),echo "  AS      $< (fuzz)")
	$(Q)$(FUZZ_CC) $(CPPFLAGS) -MMD -MP -c -o $@ $<

$(FUZZ_B)/libbraid.a: $(FUZZ_LIB_OBJ)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

$(FUZZ_B)/fuzz_%: tests/fuzz/fuzz_%.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $< (fuzz)")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< \
		$(if $(filter %.a,$^),$(filter %.a,$^) -luring)

fuzz-programs: $(FUZZ_BIN)
	@:

# Evaluated here only, so that a make without fuzzing never runs grep.
fuzz-build:
	$(Q)if $(FUZZ_PROBE); then \
		$(MAKE) --no-print-directory fuzz-programs \
			FUZZ_LINKED="$(FUZZ_WITH_LIB)"; \
	else $(FUZZ_SKIP); fi

ifneq ($(FUZZ_LINKED),)
$(patsubst tests/fuzz/fuzz_%.c,$(FUZZ_B)/fuzz_%,$(FUZZ_LINKED)): \
	$(FUZZ_B)/libbraid.a
endif

# $(call fuzz_run,seconds): run each target for that long with its seeds
# and the corpus grown so far; on a finding, show the log's end and fail.
define fuzz_run
fail=0; \
for n in $(FUZZ_NAMES); do \
	c=$(FUZZ_B)/corpus/$$n; a=$(FUZZ_B)/artifacts/$$n; \
	log=$(FUZZ_B)/$$n.log; \
	mkdir -p $$c $$a; \
	seeds=; [ -d tests/fuzz/$$n ] && seeds=tests/fuzz/$$n; \
	dict=; [ -f tests/fuzz/$$n.dict ] && dict=-dict=tests/fuzz/$$n.dict; \
	flags=; [ -f tests/fuzz/$$n.flags ] && flags=$$(cat tests/fuzz/$$n.flags); \
	echo "  FUZZ    $$n for $(1) s"; \
	if env $(FUZZ_ENV) $(FUZZ_B)/fuzz_$$n -max_total_time=$(1) \
		-print_final_stats=1 -artifact_prefix=$$a/ $$dict $$flags \
		$$c $$seeds > $$log 2>&1; then \
		echo "          $$(grep -a '^stat::number_of_executed_units' $$log \
			| sed 's/.*: */executions: /'), $$(grep -a -E '^#[0-9]+' $$log \
			| tail -1 | grep -o -E 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9a-zA-Z]+')"; \
	else \
		tail -40 $$log; echo "  FAILED  fuzz_$$n: see $$log and $$a/"; \
		fail=1; \
	fi; \
done; \
exit $$fail;
endef

fuzz:
	$(Q)if $(FUZZ_PROBE); then \
		$(MAKE) --no-print-directory fuzz-programs \
			FUZZ_LINKED="$(FUZZ_WITH_LIB)" || exit 1; \
		$(call fuzz_run,$(FUZZ_S)) \
	else $(FUZZ_SKIP); fi

fuzz-smoke:
	$(Q)if $(FUZZ_PROBE); then \
		$(MAKE) --no-print-directory fuzz-programs \
			FUZZ_LINKED="$(FUZZ_WITH_LIB)" || exit 1; \
		$(call fuzz_run,$(FUZZ_TEST_S)) \
	else $(FUZZ_SKIP); fi

-include $(wildcard $(FUZZ_B)/*.d $(FUZZ_B)/runtime/*.d)
