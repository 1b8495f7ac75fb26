/* SPDX-License-Identifier: MIT */
/*
 * serve.c - br_mpi_serve(): join the MPI job, and turn every rank but 0
 * into a server of pool jobs; the waiting that the driver and the servers
 * share.
 *
 * Design
 *   br_mpi_serve() is the first thing main() calls. Outside an MPI launch
 *   (no launcher's variables in the environment) it does nothing, so the
 *   same program runs as an ordinary local one. Inside, it forks the
 *   zygote first, while the process has one thread (MPI_Init starts
 *   threads of its own, and a worker forked from a process with threads
 *   would inherit their locks), then initialises MPI asking for
 *   MPI_THREAD_MULTIPLE, duplicates MPI_COMM_WORLD for braid's own
 *   messages, and makes errors return instead of aborting. A job of one
 *   rank has nobody to serve it: its pools stay local. Rank 0 starts the
 *   driver thread (driver.c) and returns; the other ranks serve
 *   (server.c) until rank 0 says goodbye, then finalise MPI and exit.
 *
 *   MPI implementations poll: a rank blocked in MPI_Recv keeps a CPU
 *   busy. Neither side ever blocks in MPI. They test with MPI_Iprobe and
 *   MPI_Test, spin while work flows, and otherwise sleep on a futex with a
 *   growing nap (br__mpi_nap), which another thread with news for them
 *   cuts short (br__mpi_ring). An idle rank wakes once per longest nap
 *   (driver.c's and server.c's NAP_IDLE_NS) for a probe that finds
 *   nothing; what that costs is in docs/ARCHITECTURE.md.
 *
 * Concurrency
 *   br_mpi_serve: the main thread, once. After it, only the driver thread
 *   (rank 0) or the serving thread (other ranks) calls MPI.
 */
#include <errno.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "wire.h"

/* Rounds of probing with nothing found before the first nap. */
#define SPIN_ROUNDS 64
#define NAP_MIN_NS 20000

MPI_Comm br__mpi_comm = MPI_COMM_NULL;
int br__mpi_rank, br__mpi_size;
char br__mpi_host[72];
uint64_t br__mpi_cpus[MW_CPU_WORDS];
int br__mpi_node;

/* Where this rank runs: the CPUs it may use, into br__mpi_cpus, and its
 * machine, named by the lowest rank that shares its memory, into
 * br__mpi_node. Collective: every rank calls it from br_mpi_serve. */
static void note_place(void)
{
	MPI_Comm node;
	cpu_set_t set;

	/* Fails past CPU_SETSIZE (1024) CPUs: none known, and no rank is
	 * taken to share this one's. */
	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		for (int c = 0; c < MW_CPU_WORDS * 64 && c < CPU_SETSIZE; c++)
			if (CPU_ISSET(c, &set))
				br__mpi_cpus[c / 64] |= (uint64_t)1 << (c % 64);
	br__mpi_node = br__mpi_rank;
	if (MPI_Comm_split_type(br__mpi_comm, MPI_COMM_TYPE_SHARED,
				br__mpi_rank, MPI_INFO_NULL,
				&node) != MPI_SUCCESS)
		return;
	MPI_Allreduce(&br__mpi_rank, &br__mpi_node, 1, MPI_INT, MPI_MIN, node);
	MPI_Comm_free(&node);
}

static int launched(void)
{
	static const char *vars[] = {
		"OMPI_COMM_WORLD_SIZE", "PMI_SIZE",    "PMIX_RANK", "PMI_RANK",
		"MPI_LOCALNRANKS",	"SLURM_PROCID"
	};

	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		if (getenv(vars[i]))
			return 1;
	return 0;
}

static void finish(void)
{
	br__mpi_driver_stop();
}

int br_mpi_serve(int *argc, char ***argv)
{
	int provided = 0, r;

	if (br__mpi_comm != MPI_COMM_NULL)
		return br__mpi_rank == 0 ? 0 : -EBUSY;
	if (!launched())
		return 0;
	/* Before MPI starts threads; -EBUSY: the program has threads of its
	 * own already, and its pools will say -ENOTSUP. */
	br_zygote_start();
	if (MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided) !=
	    MPI_SUCCESS)
		return -EIO;
	MPI_Comm_dup(MPI_COMM_WORLD, &br__mpi_comm);
	MPI_Comm_set_errhandler(br__mpi_comm, MPI_ERRORS_RETURN);
	MPI_Comm_rank(br__mpi_comm, &br__mpi_rank);
	MPI_Comm_size(br__mpi_comm, &br__mpi_size);
	if (gethostname(br__mpi_host, sizeof(br__mpi_host) - 1) < 0)
		strcpy(br__mpi_host, "?");
	note_place();
	if (br__mpi_rank != 0)
		br__mpi_serve_forever();
	if (br__mpi_size > 1) {
		r = br__mpi_driver_start();
		if (r < 0)
			return r;
	}
	atexit(finish);
	return 0;
}

struct br__mpi_out *br__mpi_out_new(size_t len)
{
	return malloc(sizeof(struct br__mpi_out) + len);
}

void br__mpi_send(struct br__mpi_out **list, struct br__mpi_out *out,
		  size_t len, int rank, int tag)
{
	out->rank = rank;
	if (MPI_Isend(out->data, (int)len, MPI_BYTE, rank, tag, br__mpi_comm,
		      &out->req) != MPI_SUCCESS) {
		free(out);
		return;
	}
	out->next = *list;
	*list = out;
}

void br__mpi_send_copy(struct br__mpi_out **list, int rank, int tag,
		       const void *msg, size_t len)
{
	struct br__mpi_out *out = br__mpi_out_new(len);

	if (!out)
		return;
	memcpy(out->data, msg, len);
	br__mpi_send(list, out, len, rank, tag);
}

int br__mpi_test(struct br__mpi_out **list, const uint8_t *dead)
{
	int n = 0;

	while (*list) {
		struct br__mpi_out *out = *list;
		int done = 0;

		if (!dead || !dead[out->rank])
			MPI_Test(&out->req, &done, MPI_STATUS_IGNORE);
		if (done) {
			*list = out->next;
			free(out);
			n++;
		} else {
			list = &out->next;
		}
	}
	return n;
}

char *br__mpi_recv(int source, int *src, int *tag, size_t *len)
{
	MPI_Status st;
	int flag = 0, count = 0;
	char *buf;

	if (MPI_Iprobe(source, MPI_ANY_TAG, br__mpi_comm, &flag, &st) !=
		    MPI_SUCCESS ||
	    !flag)
		return NULL;
	MPI_Get_count(&st, MPI_BYTE, &count);
	if (count < 0)
		count = 0;
	buf = malloc((size_t)count + 1);
	if (!buf)
		return NULL;
	MPI_Recv(buf, count, MPI_BYTE, st.MPI_SOURCE, st.MPI_TAG, br__mpi_comm,
		 MPI_STATUS_IGNORE);
	*src = st.MPI_SOURCE;
	*tag = st.MPI_TAG;
	*len = (size_t)count;
	return buf;
}

void br__mpi_ring(_Atomic uint32_t *bell, _Atomic uint32_t *sleeping)
{
	/* seq_cst: a Dekker pair with br__mpi_nap's store of sleeping and
	 * load of bell. */
	atomic_fetch_add_explicit(bell, 1, memory_order_seq_cst);
	if (atomic_load_explicit(sleeping, memory_order_seq_cst))
		syscall(SYS_futex, bell, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

int br__mpi_sleep(_Atomic uint32_t *bell, _Atomic uint32_t *sleeping,
		  int64_t ns)
{
	uint32_t seen = atomic_load_explicit(bell, memory_order_acquire);
	struct timespec ts;

	ts.tv_sec = ns / 1000000000;
	ts.tv_nsec = ns % 1000000000;
	/* seq_cst: pairs with br__mpi_ring. */
	atomic_store_explicit(sleeping, 1, memory_order_seq_cst);
	if (atomic_load_explicit(bell, memory_order_seq_cst) == seen)
		syscall(SYS_futex, bell, FUTEX_WAIT_PRIVATE, seen, &ts, NULL,
			0);
	atomic_store_explicit(sleeping, 0, memory_order_relaxed);
	return atomic_load_explicit(bell, memory_order_relaxed) != seen;
}

void br__mpi_nap(_Atomic uint32_t *bell, _Atomic uint32_t *sleeping,
		 unsigned *idle, int64_t max_ns)
{
	int64_t ns;

	if (++*idle < SPIN_ROUNDS)
		return;
	ns = (int64_t)NAP_MIN_NS
	     << ((*idle - SPIN_ROUNDS) < 16 ? (*idle - SPIN_ROUNDS) : 16);
	if (br__mpi_sleep(bell, sleeping, ns < max_ns ? ns : max_ns))
		*idle = 0; /* news: look at once, and keep looking */
}
