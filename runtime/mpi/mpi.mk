# SPDX-License-Identifier: MIT
# runtime/mpi/mpi.mk - libbraid-mpi: pools across the ranks of an MPI job
# (br_mpi_serve), included by the top-level Makefile. It is built when an
# MPI compiler wrapper is found (MPICC, default mpicc: Debian's
# libopenmpi-dev), and left out otherwise: libbraid itself never links
# MPI, and braid builds and tests without it.
#
#   make                 also builds $(B)/libbraid-mpi.{a,so}
#   make examples        also builds $(B)/examples/cluster_primes
#   make test-mpi        the MPI tests under mpirun -np 3, over shared
#                        memory and over TCP, and cluster_primes once
#                        (part of `make test`)
#   MPIRUN_FLAGS=...     extra mpirun options

MPICC        ?= mpicc
MPIRUN       ?= mpirun
MPIRUN_FLAGS ?=
HAVE_MPI     := $(if $(shell command -v $(MPICC) 2>/dev/null),1,)
MPI_SRC      := $(wildcard runtime/mpi/*.c)
MPI_OBJ      := $(MPI_SRC:%.c=$(B)/%.o)
MPI_LIBS     := $(if $(HAVE_MPI),$(B)/libbraid-mpi.a $(B)/libbraid-mpi.so)
# As root (CI), Open MPI's mpirun refuses to run without these.
MPIRUN_ENV   := OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
                OMPI_MCA_btl_vader_single_copy_mechanism=none

lib: $(MPI_LIBS)

$(B)/runtime/mpi/%.o: runtime/mpi/%.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  MPICC   $<")
	$(Q)$(MPICC) $(CPPFLAGS) -Iruntime/mpi $(CFLAGS) $(LIBFLAGS) -c -o $@ $<

$(B)/libbraid-mpi.a: $(MPI_OBJ)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

$(B)/libbraid-mpi.so: $(MPI_OBJ) $(B)/libbraid.so
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(MPICC) $(CFLAGS) $(SOFLAGS) -Wl,-soname,libbraid-mpi.so.$(BR_MAJOR) \
		-o $@ $(MPI_OBJ) -L$(B) -lbraid $(LDLIBS)

# Programs that use it link both static libraries.
$(B)/tests/mpi_%: tests/mpi_%.c $(TEST_HELPER) $(MPI_LIBS) $(B)/libbraid.a
	@mkdir -p $(@D)
	@$(if $(Q),echo "  MPICC   $<")
	$(Q)$(MPICC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(B)/libbraid-mpi.a \
		$(B)/libbraid.a $(LDLIBS)

MPI_TEST_BIN := $(if $(HAVE_MPI),$(patsubst tests/%.c,$(B)/tests/%,$(wildcard tests/mpi_*.c)))

# The example that spans ranks; the plain examples rule (Makefile) leaves
# it out. tests/test_examples.c runs it without mpirun, test-mpi with.
MPI_EXAMPLES := $(if $(HAVE_MPI),$(B)/examples/cluster_primes)
examples: $(MPI_EXAMPLES)
$(B)/tests/test_examples: $(MPI_EXAMPLES)

$(B)/examples/cluster_primes: examples/cluster_primes.c $(MPI_LIBS) \
			      $(B)/libbraid.a
	@mkdir -p $(@D)
	@$(if $(Q),echo "  MPICC   $<")
	$(Q)$(MPICC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(B)/libbraid-mpi.a \
		$(B)/libbraid.a $(LDLIBS)

.PHONY: test-mpi
ifeq ($(HAVE_MPI),1)
# Each program runs over shared memory (vader) and over TCP, which
# stands in for separate hosts, and again under --enable-recovery, where
# it kills one rank on purpose (BRAID_MPI_KILL_RANK). The example runs on
# 3 ranks, and on one, which must end as cleanly as a program that never
# met MPI (mpirun takes a rank that does not finalize for a crash).
test-mpi: $(MPI_TEST_BIN) $(MPI_EXAMPLES)
	$(Q)fail=0; for t in $(MPI_TEST_BIN); do \
	  for btl in vader,self tcp,self; do \
	    echo "  MPI     $$t (btl $$btl)"; \
	    env $(MPIRUN_ENV) timeout 300 $(MPIRUN) --oversubscribe -np 3 \
	      --mca btl $$btl $(MPIRUN_FLAGS) $$t || \
	      { echo "  FAILED  $$t (btl $$btl)"; fail=1; }; \
	  done; \
	  echo "  MPI     $$t (a rank killed, --enable-recovery)"; \
	  env $(MPIRUN_ENV) BRAID_MPI_KILL_RANK=2 timeout 300 $(MPIRUN) \
	    --oversubscribe -np 3 --enable-recovery --mca btl tcp,self \
	    $(MPIRUN_FLAGS) $$t > $(B)/tests/mpi_recovery.out 2>&1; \
	  if grep -q "^mpi: recovery ok" $(B)/tests/mpi_recovery.out; then :; else \
	    cat $(B)/tests/mpi_recovery.out; \
	    echo "  FAILED  $$t (a rank killed)"; fail=1; fi; \
	done; \
	echo "  MPI     $(B)/examples/cluster_primes (3 ranks, btl tcp,self)"; \
	env $(MPIRUN_ENV) timeout 300 $(MPIRUN) --oversubscribe -np 3 \
	  --mca btl tcp,self $(MPIRUN_FLAGS) $(B)/examples/cluster_primes \
	  --limit 1000000 --chunk 10000 --workers 1 \
	  > $(B)/examples/cluster_primes.out 2>&1; \
	if grep -q "^78498 primes below 1000000 " $(B)/examples/cluster_primes.out && \
	   grep -q "^check: 3 jobs and a task agree: 3245 primes" \
	     $(B)/examples/cluster_primes.out && \
	   grep -q "^3 ranks took part" $(B)/examples/cluster_primes.out; then :; else \
	  cat $(B)/examples/cluster_primes.out; \
	  echo "  FAILED  $(B)/examples/cluster_primes"; fail=1; fi; \
	echo "  MPI     $(B)/examples/cluster_primes (1 rank)"; \
	if env $(MPIRUN_ENV) timeout 300 $(MPIRUN) -np 1 $(MPIRUN_FLAGS) \
	     $(B)/examples/cluster_primes --limit 100000 --workers 1 \
	     > $(B)/examples/cluster_primes_1.out 2>&1 && \
	   grep -q "^9592 primes below 100000 " \
	     $(B)/examples/cluster_primes_1.out && \
	   grep -q "^1 rank took part" $(B)/examples/cluster_primes_1.out; then :; else \
	  cat $(B)/examples/cluster_primes_1.out; \
	  echo "  FAILED  $(B)/examples/cluster_primes (1 rank)"; fail=1; fi; \
	exit $$fail
else
test-mpi:
	@$(SKIP) "test-mpi: no $(MPICC) (Debian: libopenmpi-dev openmpi-bin)"
endif

# Installed beside libbraid, with a pkg-config file of its own, so that
# only programs that ask for braid-mpi link MPI.
.PHONY: install-mpi uninstall-mpi
install: install-mpi
uninstall: uninstall-mpi
ifeq ($(HAVE_MPI),1)
install-mpi: $(MPI_LIBS)
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig
	install -m 644 $(B)/libbraid-mpi.a $(DESTDIR)$(LIBDIR)/libbraid-mpi.a
	install -m 755 $(B)/libbraid-mpi.so \
		$(DESTDIR)$(LIBDIR)/libbraid-mpi.so.$(BR_VERSION)
	ln -sf libbraid-mpi.so.$(BR_VERSION) \
		$(DESTDIR)$(LIBDIR)/libbraid-mpi.so.$(BR_MAJOR)
	ln -sf libbraid-mpi.so.$(BR_MAJOR) $(DESTDIR)$(LIBDIR)/libbraid-mpi.so
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(PC_LIBDIR)|' \
	    -e 's|@INCDIR@|$(PC_INCDIR)|' -e 's|@VERSION@|$(BR_VERSION)|' \
	    runtime/mpi/braid-mpi.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/braid-mpi.pc
else
install-mpi:
	@echo "  INSTALL libbraid-mpi skipped: no $(MPICC)"
endif
uninstall-mpi:
	rm -f $(DESTDIR)$(LIBDIR)/libbraid-mpi.a $(DESTDIR)$(LIBDIR)/libbraid-mpi.so \
	      $(DESTDIR)$(LIBDIR)/libbraid-mpi.so.$(BR_MAJOR) \
	      $(DESTDIR)$(LIBDIR)/libbraid-mpi.so.$(BR_VERSION) \
	      $(DESTDIR)$(LIBDIR)/pkgconfig/braid-mpi.pc
