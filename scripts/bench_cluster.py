# SPDX-License-Identifier: MIT
"""bench_cluster.py - the cluster workload of scripts/bench.py.

A process pool across the ranks of an MPI job (bench/cluster.c, built
with libbraid-mpi) against a plain MPI master/worker program
(bench/peers/cluster_mpi.c), mpi4py.futures.MPIPoolExecutor
(bench/peers/cluster_mpi4py.py) and Dask distributed
(bench/peers/cluster_dask.py). Each MPI configuration runs under
`mpirun --oversubscribe -np RANKS --mca btl BTL`, over shared memory
(vader,self) and over TCP (tcp,self, which stands in for separate
hosts); the runner appends the transport to the metric each program
prints (job becomes job-shm or job-tcp), so that braid's rows and its
peers' pair up by transport. Dask runs without mpirun: its own protocol
over TCP on the loopback, hence its -tcp rows.

Measured per configuration (see each program's header):
  job      tiny jobs (sum of 100 ints), 16 in flight, us per job
  map      100,000 such items mapped at once, us per item
  idle     an idle pool: the highest CPU-ms per second of any rank
  cpu0-*   rank 0's own CPU time per job or per item (braid only), at 3
           ranks on both transports and at 5 and 9 ranks over TCP: the
           driver's cost as ranks are added
  driver-* the driver thread's CPU time per job or item it shipped
  remote-* the share of the jobs or items that ran on ranks other than 0

The configurations look like bench.py's Config: .missing() and
.run(env, timeout), which returns bench/bench.h's JSON lines.
"""

import functools
import os
import shutil
import subprocess
import sys

BIN = "build/release/bench"
MPIRUN = "mpirun"
# Open MPI refuses to run as root (CI) without the first two; the third
# keeps the shared-memory transport off ptrace-based single copy, which
# containers often forbid (as runtime/mpi/mpi.mk runs the tests).
MPIRUN_ENV = {
    "OMPI_ALLOW_RUN_AS_ROOT": "1",
    "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
    "OMPI_MCA_btl_vader_single_copy_mechanism": "none",
}
TRANSPORTS = (("shm", "vader,self"), ("tcp", "tcp,self"))
# bench.py's run_one(cfg, env, timeout), set by the runner.
RUN_ONE = None
RANKS = 3
SCALE_RANKS = (5, 9)

LABELS = {}
for _tag, _name in (("shm", "shared memory"), ("tcp", "TCP")):
    LABELS.update({
        ("cluster", "job-" + _tag):
            "tiny jobs over %s, 16 in flight, per job" % _name,
        ("cluster", "map-" + _tag):
            "100,000 tiny jobs mapped over %s, per item" % _name,
        ("cluster", "idle-" + _tag):
            "idle pool over %s, CPU per rank (highest)" % _name,
        ("cluster", "cpu0-job-" + _tag):
            "rank 0's CPU per job over %s" % _name,
        ("cluster", "cpu0-map-" + _tag):
            "rank 0's CPU per mapped item over %s" % _name,
        ("cluster", "driver-job-" + _tag):
            "driver thread's CPU per job shipped over %s" % _name,
        ("cluster", "driver-map-" + _tag):
            "driver thread's CPU per item shipped over %s" % _name,
        ("cluster", "remote-job-" + _tag):
            "share of the jobs run on other ranks (%s)" % _name,
        ("cluster", "remote-map-" + _tag):
            "share of the mapped items run on other ranks (%s)" % _name,
    })

PEER_NAMES = {
    "mpi": "plain MPI master/worker",
    ("cluster", "mpi"): "plain MPI master/worker",
    "mpi4py": "mpi4py.futures MPIPoolExecutor",
    "dask": "Dask distributed, LocalCluster of 2 processes",
}
for _tag in ("shm", "tcp"):
    PEER_NAMES[("cluster", "job-" + _tag, "mpi")] = \
        "plain MPI, one job in flight per worker"
    PEER_NAMES[("cluster", "map-" + _tag, "mpi")] = \
        "plain MPI, chunks of 100 items, 2 in flight per worker"
    PEER_NAMES[("cluster", "idle-" + _tag, "mpi")] = \
        "plain MPI workers waiting in MPI_Recv"
    PEER_NAMES[("cluster", "map-" + _tag, "mpi4py")] = \
        "mpi4py.futures executor.map, chunksize 100"

BRAID_NAMES = {}
for _tag in ("shm", "tcp"):
    BRAID_NAMES[("cluster", "job-" + _tag)] = "br_submit"
    BRAID_NAMES[("cluster", "map-" + _tag)] = "br_map"
    BRAID_NAMES[("cluster", "idle-" + _tag)] = "br_pool (mpi)"

NOTES = {
    ("cluster", "job-shm", RANKS):
        "Cluster: 3 ranks on this one machine (mpirun --oversubscribe), "
        "so ranks compete for its CPUs with each other and with their "
        "worker processes. braid: a pool with .mpi = 1 and 1 worker "
        "process per rank; rank 0's own worker takes jobs too, and the "
        "driver ships to ranks 1 and 2 what waits beyond its ring. The "
        "plain MPI program's workers (ranks 1 and 2) sum in the rank "
        "itself. Python peers run fewer jobs (mpi4py 1,000 jobs, Dask "
        "150 jobs and 500 items); Dask is not under mpirun (its own TCP "
        "protocol on the loopback). cpu0 rows: rank 0's getrusage over "
        "the timed part, per job or item; driver rows: the driver "
        "thread's CPU (schedstat) per job or item it shipped; remote "
        "rows: the share of the work that ran on ranks 1 and up. The "
        "config column counts ranks.",
}

# Every cluster figure pairs up whatever n its program used.
ANY_N = {("cluster", m) for (_, m) in LABELS}
# Shares describe a run rather than rank it: no ratio.
NO_RATIO = {("cluster", m) for (_, m) in LABELS if m.startswith("remote-")}


@functools.lru_cache(maxsize=None)
def python_with(module):
    """A Python interpreter that can import module, or None: the Debian
    packages (python3-mpi4py, python3-distributed) install for the
    system's python3, which may not be the one running this script."""
    seen = []
    for exe in (sys.executable, "/usr/bin/python3", shutil.which("python3")):
        if not exe or exe in seen:
            continue
        seen.append(exe)
        try:
            r = subprocess.run([exe, "-c", "import " + module],
                               capture_output=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            continue
        if r.returncode == 0:
            return exe
    return None


class ClusterConfig:
    """One run of a cluster program, under mpirun unless btl is None."""

    def __init__(self, impl, ranks, tag, btl, prog, args, module=None):
        self.workload = "cluster"
        self.impl = impl
        self.threads = ranks
        self.tag = tag
        self.btl = btl
        self.prog = prog
        self.args = [str(a) for a in args]
        self.module = module
        self.env = dict(MPIRUN_ENV) if btl else {}

    def argv(self):
        prog = self.prog
        if self.module:
            prog = python_with(self.module) or "python3"
        cmd = [prog] + self.args
        if self.btl:
            cmd = [MPIRUN, "--oversubscribe", "-np", str(self.threads),
                   "--mca", "btl", self.btl] + cmd
        return cmd

    def text(self):
        return " ".join(self.argv())

    def missing(self):
        if self.btl and not shutil.which(MPIRUN):
            return "no mpirun (apt-get install openmpi-bin libopenmpi-dev)"
        if self.module:
            if not python_with(self.module):
                return "no python3 with %s (apt-get install %s)" % (
                    self.module, "python3-mpi4py" if self.module ==
                    "mpi4py" else "python3-distributed")
            return None
        if not os.access(self.prog, os.X_OK):
            return "%s not built (needs mpicc: libopenmpi-dev)" % self.prog
        return None

    def run(self, env, timeout):
        lines, err = RUN_ONE(self, env, timeout)
        for d in lines:
            d["metric"] = "%s-%s" % (d["metric"], self.tag)
            d["cmd"] = self.text()
        return lines, err


def configs(quick):
    out = []
    for tag, btl in TRANSPORTS:
        for mode in ("job", "map", "idle"):
            args = ["--mode", mode]
            if mode == "idle" and quick:
                args += ["--ms", 2000]
            out.append(ClusterConfig("braid", RANKS, tag, btl,
                                     BIN + "/cluster", args))
            out.append(ClusterConfig("mpi", RANKS, tag, btl,
                                     BIN + "/peers/cluster_mpi", args))
        # Slow peers: fewer jobs, the same per-job figure.
        for mode, n in (("job", 1000), ("map", 100000)):
            out.append(ClusterConfig(
                "mpi4py", RANKS, tag, btl, None,
                ["-m", "mpi4py.futures", "bench/peers/cluster_mpi4py.py",
                 "--mode", mode, "--n", n], module="mpi4py"))
    for mode, n in (("job", 150), ("map", 500)):
        out.append(ClusterConfig("dask", RANKS, "tcp", None, None,
                                 ["bench/peers/cluster_dask.py", "--mode",
                                  mode, "--n", n], module="distributed"))
    # The driver's cost as ranks are added (TCP, as between hosts).
    if not quick:
        for ranks in SCALE_RANKS:
            for mode in ("job", "map"):
                out.append(ClusterConfig("braid", ranks, "tcp",
                                         "tcp,self", BIN + "/cluster",
                                         ["--mode", mode]))
    return out
