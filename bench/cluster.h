/* SPDX-License-Identifier: MIT */
/*
 * cluster.h - what bench/cluster.c and its plain MPI peer share: the tiny
 * job, and the CPU time of every rank of an MPI job that runs on this one
 * machine.
 *
 * Design
 *   The idle cost of a pool across ranks is the CPU time its ranks burn
 *   while nothing is asked of them. Rank 0 measures it for every rank:
 *   under mpirun on one host the ranks are the children of rank 0's parent
 *   (mpirun, or the orted of this host), each named by the
 *   OMPI_COMM_WORLD_RANK (or PMIX_RANK) of its environment, and a rank's
 *   cost is that of its whole process tree (its threads, its zygote and
 *   its worker processes). Times are read from each thread's schedstat,
 *   in nanoseconds: /proc/PID/stat counts clock ticks (10 ms), too coarse
 *   for the 1% bar over a few seconds. A thread that ends between the two
 *   reads takes its time with it, which does not happen to an idle pool.
 *
 * Concurrency
 *   Main thread only; no state of its own.
 */
#ifndef BENCH_CLUSTER_H
#define BENCH_CLUSTER_H

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

/* Items of the tiny job: 100 ints in, their sum (8 bytes) out. */
#define CLUSTER_INTS 100
/* Ranks cluster_cpu() tells apart. */
#define CLUSTER_MAX_RANKS 64

/* The sum of the 100 ints of item i, as the benches fill them. */
static inline int64_t cluster_item_sum(long i)
{
	return (int64_t)(i % 1000) * CLUSTER_INTS +
	       CLUSTER_INTS * (CLUSTER_INTS - 1) / 2;
}

/* Fill n items of CLUSTER_INTS ints: item i holds (i % 1000) + k. */
static inline int32_t *cluster_items(long n)
{
	int32_t *v = malloc((size_t)n * CLUSTER_INTS * sizeof(int32_t));

	for (long i = 0; v && i < n; i++)
		for (int k = 0; k < CLUSTER_INTS; k++)
			v[i * CLUSTER_INTS + k] = (int32_t)(i % 1000) + k;
	return v;
}

/* The MPI rank pid runs as, from its environment, or -1. */
static inline int cluster_rank_of(pid_t pid)
{
	static const char *const keys[] = { "OMPI_COMM_WORLD_RANK=",
					    "PMIX_RANK=", "PMI_RANK=" };
	char path[64], *buf;
	size_t n = 0, cap = 1 << 16;
	FILE *f;
	int rank = -1;

	snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
	f = fopen(path, "r");
	buf = malloc(cap + 1);
	if (f && buf)
		n = fread(buf, 1, cap, f);
	if (f)
		fclose(f);
	if (!buf)
		return -1;
	buf[n] = '\0';
	for (size_t at = 0; at < n && rank < 0; at += strlen(buf + at) + 1)
		for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
			if (!strncmp(buf + at, keys[k], strlen(keys[k])))
				rank = atoi(buf + at + strlen(keys[k]));
	free(buf);
	return rank;
}

/*
 * cluster_cpu - the CPU time so far of each rank's process tree, in ns,
 * into ns[rank] (zeroed first), for the ranks that run on this host
 * beside the caller; *launcher_ns gets that of their parent (mpirun or
 * orted) alone. Returns the number of ranks found.
 */
static inline int cluster_cpu(int64_t ns[CLUSTER_MAX_RANKS],
			      int64_t *launcher_ns)
{
	pid_t launcher = getppid();
	struct dirent *e;
	int found = 0;
	DIR *d = opendir("/proc");

	memset(ns, 0, CLUSTER_MAX_RANKS * sizeof(ns[0]));
	*launcher_ns = bench_proc_ns(launcher);
	if (!d)
		return 0;
	while ((e = readdir(d))) {
		pid_t pid = (pid_t)atoi(e->d_name), p = pid, up;
		int rank, depth;

		if (pid <= 0)
			continue;
		/* Walk up to the child of the launcher this process is
		 * under, if any: that child is a rank. */
		for (depth = 0; depth < 16; depth++) {
			up = bench_ppid(p);
			if (up == launcher || up <= 1)
				break;
			p = up;
		}
		if (up != launcher)
			continue;
		rank = cluster_rank_of(p);
		if (rank < 0 || rank >= CLUSTER_MAX_RANKS)
			continue;
		found += p == pid;
		ns[rank] += bench_proc_ns(pid);
	}
	closedir(d);
	return found;
}

#endif /* BENCH_CLUSTER_H */
