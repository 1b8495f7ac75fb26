# SPDX-License-Identifier: MIT
# tests/soak.mk - the soak, included by tests/tests.mk.
#
# scripts/soak.py runs the HTTP and echo example servers under wrk and
# hostile clients (slow loris, garbage, half-closes, connection floods)
# and tests/soak.c (a process pool under a random killer, blocking calls,
# channels) all at once, in the release variant, sampling RSS,
# descriptors, threads and children at a quiet point every SOAK_ROUND_S
# seconds; it fails on an error, a hang, or a figure that drifts by more
# than 1% after the warm-up (the first third). See the script.
#
#   make soak SOAK_S=600    ten minutes (the default)
#   make test               runs it for 60 s (SOAK_TEST_S)
#
# Without wrk (Debian package wrk, scripts/deps.sh's soak group) it prints
# a note saying so and succeeds, or fails with STRICT=1 (make test).

SOAK_S       ?= 600
SOAK_TEST_S  ?= 60
SOAK_ROUND_S ?= 5

.PHONY: soak

# A plain program, not a Criterion one.
$(B)/tests/soak: $(B)/tests/soak.o $(B)/libbraid.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) $(LTOFLAGS) -o $@ $< $(B)/libbraid.a $(LDLIBS)

ifeq ($(VARIANT)$(FAULTS)$(OBS),release01)
soak: $(B)/tests/soak $(B)/examples/http_server $(B)/examples/echo_server
	$(Q)if ! command -v wrk >/dev/null; then \
		$(SKIP) "soak: no wrk here (install it:" \
			"scripts/deps.sh, group soak)"; \
	else python3 scripts/soak.py --build $(B) --seconds $(SOAK_S) \
		--round $(SOAK_ROUND_S); fi
else
soak:
	$(Q)$(MAKE) --no-print-directory VARIANT=release FAULTS=0 OBS=1 $@
endif
