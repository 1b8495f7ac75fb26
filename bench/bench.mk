# SPDX-License-Identifier: MIT
# bench.mk - benchmark programs, their peers and the runner; included by
# the top-level Makefile.
#
#   make bench          build everything, then scripts/bench.py (5 rounds;
#                       3 for echo and http)
#   make bench-summary  build, then one quick round of fib, switch, skynet
#   make bench-build    build the braid benches and every peer whose
#                       toolchain is present
#   make bench-core     build only fib, skynet and switch (with OBS=0: in
#                       build/release-noobs, for scripts/obs_cost.py)
#   make compare        build, then bench/models: threads vs processes vs
#                       async on every workload, a progress line per
#                       measurement on stderr, then its table on stdout and
#                       its JSON, markdown table and plots in build/bench/
#   make compare UPDATE_RESULTS=1
#                       the same, then copies the PNGs, the JSON and the
#                       markdown table to bench/results/ (what README
#                       shows, and what git keeps)
#   BENCH_ARGS=...      extra runner options, e.g. BENCH_ARGS="--only fib"
#                       or "--only cluster" (the MPI workload alone)
#   COMPARE_ARGS=...    extra bench/models options, e.g. "--runs 5"
#
# Benchmarks always use the release variant, whatever VARIANT says: the
# targets above re-enter make with VARIANT=release. Peers whose toolchain
# (g++ with oneTBB, gcc with OpenMP, go, libuv) is missing are skipped with
# a note and the runner leaves them out. The echo and http workloads also
# need braid's examples/echo_server and examples/http_server, which
# bench-build builds when their sources exist; nginx and wrk are used as
# Debian installs them. The cluster workload (bench/cluster.c and its
# plain MPI peer) is built with $(MPICC) when runtime/mpi/mpi.mk found it
# (HAVE_MPI), and left out otherwise; its Python peers need mpi4py and
# Dask (scripts/deps.sh, group mpi-peers).

BENCH_B     := build/release$(BSUFFIX)
BENCH_NAMES := fib skynet switch sleep chan handoff blocking spawn pool echo_client
BENCH_BIN   := $(BENCH_NAMES:%=$(BENCH_B)/bench/%)
BENCH_PEERS := $(addprefix $(BENCH_B)/bench/peers/, \
                 fib_tbb skynet_tbb fib_omp fib_go skynet_go switch_go sleep_go \
                 chan_go chan_pthread handoff_go handoff_pthread blocking_pthread pool_pthread spawn_c spawn_go \
                 pool_fork \
                 echo_epoll echo_uring echo_uv echo_go http_go)
BENCH_EXAMPLES := $(patsubst examples/%.c,$(BENCH_B)/examples/%, \
                    $(wildcard examples/echo_server.c examples/http_server.c))
# The cluster workload's programs, when there is MPI (runtime/mpi/mpi.mk).
BENCH_MPI   := $(if $(HAVE_MPI),$(BENCH_B)/bench/cluster \
                 $(BENCH_B)/bench/peers/cluster_mpi)
BENCH_ARGS  ?=
COMPARE_ARGS ?=
UPDATE_RESULTS ?= 0
# bench/models is three files: the driver, one measurement, the verdict.
MODELS_SRC  := bench/models.c bench/models_run.c bench/models_verdict.c

GO       ?= go
CXX      ?= g++
PEER_CXXFLAGS := -O2 -std=c++17 -pthread
PEER_CFLAGS   := -O2 -std=gnu11 -fopenmp
# Single-file builds in GOPATH mode: no module, no network. GOFLAGS is
# cleared so that a user's -mod or proxy setting cannot get in the way.
PEER_GOENV    := GO111MODULE=off GOFLAGS= GOCACHE=$(CURDIR)/build/gocache \
                 GOPATH=$(CURDIR)/build/gopath

.PHONY: bench bench-summary bench-build bench-programs compare bench-core \
        bench-core-programs

bench: bench-build
	$(Q)python3 scripts/bench.py --no-build $(BENCH_ARGS)

bench-summary: bench-build
	$(Q)python3 scripts/bench.py --no-build --quick $(BENCH_ARGS)

bench-build:
	$(Q)$(MAKE) --no-print-directory VARIANT=release bench-programs

bench-core:
	$(Q)$(MAKE) --no-print-directory VARIANT=release bench-core-programs

bench-core-programs: $(addprefix $(BENCH_B)/bench/,fib skynet switch)

bench-programs: $(BENCH_BIN) $(BENCH_PEERS) $(BENCH_EXAMPLES) \
                $(BENCH_B)/bench/models $(BENCH_MPI)

# The timing needs the machine to itself. A run leaves the committed
# bench/results/ alone unless UPDATE_RESULTS=1 asks for the copy that
# keeps what the README shows in step with that run.
compare: bench-build
	$(Q)$(BENCH_B)/bench/models --json build/bench/models.json \
		--plot-dir build/bench --markdown build/bench/models.md \
		$(COMPARE_ARGS)
ifeq ($(UPDATE_RESULTS),1)
	$(Q)mkdir -p bench/results && \
		cp build/bench/models.json build/bench/models.md bench/results/ && \
		for f in build/bench/models_*.png; do \
			if [ -e "$$f" ]; then cp "$$f" bench/results/; fi; \
		done
	@echo "compare: bench/results/ updated from build/bench/"
else
	@echo "compare: results in build/bench/; bench/results/ is unchanged" \
	      "(make compare UPDATE_RESULTS=1 updates it)"
endif

# Built in any variant: tests/test_models runs it (the asan build under
# make test-asan). -MMD is left out: it cannot name one .d for three
# sources; the prerequisites are listed instead.
$(B)/bench/models: $(MODELS_SRC) bench/models.h bench/bench.h include/braid.h \
                   $(B)/libbraid.a
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(CPPFLAGS) $(filter-out -MMD -MP,$(CFLAGS)) -o $@ \
		$(MODELS_SRC) $(B)/libbraid.a $(LDLIBS) -lm

$(B)/bench/models_verdict.o: bench/models_verdict.c bench/models.h
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(BENCH_B)/bench/%: bench/%.c bench/bench.h bench/duel.h include/braid.h \
                    $(BENCH_B)/libbraid.a
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(LTOFLAGS) -o $@ $< \
		$(BENCH_B)/libbraid.a $(LDLIBS)

# The cluster workload: braid's side links libbraid-mpi (br_mpi_serve);
# the peer is a plain MPI program. Both need an MPI compiler wrapper.
$(BENCH_B)/bench/cluster: bench/cluster.c bench/cluster.h bench/bench.h \
                          include/braid.h $(BENCH_B)/libbraid-mpi.a \
                          $(BENCH_B)/libbraid.a
	@mkdir -p $(@D)
	@$(if $(Q),echo "  MPICC   $<")
	$(Q)$(MPICC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(BENCH_B)/libbraid-mpi.a \
		$(BENCH_B)/libbraid.a $(LDLIBS)

$(BENCH_B)/bench/peers/cluster_mpi: bench/peers/cluster_mpi.c bench/cluster.h \
                                    bench/bench.h
	@mkdir -p $(@D)
	@$(if $(Q),echo "  MPICC   $<")
	$(Q)$(MPICC) -O2 -std=gnu11 -o $@ $<

# The peers are plain programs, built with their own toolchain's usual
# flags (the Python peers need no build: the runner starts python3). A missing toolchain prints a note and leaves no binary, so the
# recipe runs again next time and the runner skips that peer.
$(BENCH_B)/bench/peers/%_tbb: bench/peers/%_tbb.cpp
	@mkdir -p $(@D)
	$(Q)if ! command -v $(CXX) >/dev/null 2>&1; then \
		echo "  SKIP    $@ (no $(CXX))"; \
	elif ! echo '#include <tbb/task_group.h>' | \
	     $(CXX) -x c++ -E - >/dev/null 2>&1; then \
		echo "  SKIP    $@ (no oneTBB: apt-get install libtbb-dev)"; \
	else \
		$(if $(Q),echo "  CXX     $<" &&) \
		$(CXX) $(PEER_CXXFLAGS) -o $@ $< -ltbb; \
	fi

$(BENCH_B)/bench/peers/%_pthread: bench/peers/%_pthread.c bench/bench.h \
                                 bench/peers/mailbox.h
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) -O2 -std=gnu11 -pthread -o $@ $<

$(BENCH_B)/bench/peers/spawn_c $(BENCH_B)/bench/peers/pool_fork: \
		$(BENCH_B)/bench/peers/%: bench/peers/%.c bench/bench.h
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) -O2 -std=gnu11 -o $@ $<

$(BENCH_B)/bench/peers/%_omp: bench/peers/%_omp.c
	@mkdir -p $(@D)
	$(Q)if ! echo 'int main(void) { return 0; }' | \
	     $(CC) -fopenmp -x c -o /dev/null - >/dev/null 2>&1; then \
		echo "  SKIP    $@ ($(CC) -fopenmp fails: no libgomp?)"; \
	else \
		$(if $(Q),echo "  CC      $<" &&) \
		$(CC) $(PEER_CFLAGS) -o $@ $<; \
	fi

# The C echo peers: plain epoll, liburing (a braid dependency, so always
# there) and libuv, which is optional.
PEER_NET_CFLAGS := -O2 -g -std=gnu11 -D_GNU_SOURCE -Wall -Wextra \
                   -Wno-unused-parameter

$(BENCH_B)/bench/peers/echo_epoll: bench/peers/echo_epoll.c \
                                   bench/peers/echo_peer.h
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(PEER_NET_CFLAGS) -o $@ $<

$(BENCH_B)/bench/peers/echo_uring: bench/peers/echo_uring.c \
                                   bench/peers/echo_peer.h
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(PEER_NET_CFLAGS) -o $@ $< -luring

$(BENCH_B)/bench/peers/echo_uv: bench/peers/echo_uv.c bench/peers/echo_peer.h
	@mkdir -p $(@D)
	$(Q)if ! echo '#include <uv.h>' | $(CC) -x c -E - >/dev/null 2>&1; then \
		echo "  SKIP    $@ (no libuv: apt-get install libuv1-dev)"; \
	else \
		$(if $(Q),echo "  CC      $<" &&) \
		$(CC) $(PEER_NET_CFLAGS) -o $@ $< -luv; \
	fi

# goline.go (the JSON line) and gostart.go (goroutines released
# together) are built into every Go peer.
$(BENCH_B)/bench/peers/%_go: bench/peers/%_go.go bench/peers/goline.go \
                            bench/peers/gostart.go
	@mkdir -p $(@D)
	$(Q)if ! command -v $(GO) >/dev/null 2>&1; then \
		echo "  SKIP    $@ (no go: apt-get install golang-go)"; \
	else \
		$(if $(Q),echo "  GO      $<" &&) \
		$(PEER_GOENV) $(GO) build -o $@ $(filter %.go,$^); \
	fi

# The Go network peers share netpeer.go, built with each of them.
$(BENCH_B)/bench/peers/echo_go $(BENCH_B)/bench/peers/http_go: \
	bench/peers/netpeer.go

-include $(BENCH_BIN:=.d) $(BENCH_B)/bench/cluster.d
