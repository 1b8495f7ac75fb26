/* SPDX-License-Identifier: MIT */
/*
 * cluster_primes.c - a process pool across the ranks of an MPI job: count
 * the primes below a limit on the worker processes of every rank.
 *
 * br_mpi_serve() comes first in main(). On every rank but 0 it serves the
 * pool's jobs and never returns; rank 0 returns from it and runs the
 * program, whose pool (.mpi = 1) then spans every rank: each rank runs
 * worker processes of its own, and jobs go wherever there is room. The
 * futures are the usual ones. First, three br_submit() jobs count three
 * small ranges wherever they land, while a task of the runtime counts the
 * same numbers here; br_gather() waits for the four, pool and task
 * futures alike, and their counts must agree. Then br_map() counts
 * [0, limit) in items of --chunk numbers, which it cuts into chunks
 * spread over every rank. Each answer names the rank, host and worker
 * that gave it, so the program can print what each rank did.
 *
 * Run it:
 *   mpirun -np 3 build/release/examples/cluster_primes [--limit N]
 *          [--chunk N] [--workers N]          (--help says more)
 * Without mpirun (or srun) it is an ordinary program with a local pool.
 */
#include <braid.h>
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_RANKS 1024
#define MAX_WORKERS 256
/* The check: three jobs and a task count [0, CHECK_HI). */
#define CHECK_JOBS 3
#define CHECK_HI 30000

struct range {
	uint64_t lo, hi;
};

struct answer {
	uint64_t count;
	int32_t rank;
	int32_t pid;
	char host[48];
};

static int is_prime(uint64_t n)
{
	if (n < 2)
		return 0;
	if (n % 2 == 0)
		return n == 2;
	for (uint64_t d = 3; d * d <= n; d += 2)
		if (n % d == 0)
			return 0;
	return 1;
}

static uint64_t count_range(struct range r)
{
	uint64_t count = 0;

	for (uint64_t n = r.lo; n < r.hi; n++)
		count += is_prime(n);
	return count;
}

/* The rank this process belongs to, as the launcher set it (a worker
 * process inherits its rank's environment); 0 outside MPI. */
static int32_t my_rank(void)
{
	static const char *const vars[] = { "OMPI_COMM_WORLD_RANK", "PMIX_RANK",
					    "PMI_RANK", "SLURM_PROCID" };

	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
		const char *s = getenv(vars[i]);

		if (s)
			return (int32_t)atoi(s);
	}
	return 0;
}

/* A job: runs in a worker process of some rank. */
static int count_job(br_job *job, const void *in, size_t len)
{
	struct answer a = { 0, my_rank(), (int32_t)getpid(), "" };
	struct range r;

	if (len != sizeof(r))
		return br_job_fail(job, -EINVAL, "not a range");
	memcpy(&r, in, sizeof(r));
	a.count = count_range(r);
	if (gethostname(a.host, sizeof(a.host) - 1) < 0)
		strcpy(a.host, "?");
	return br_job_write(job, &a, sizeof(a));
}

/* A task: counts its range here, on the runtime's thread. */
static void *count_task(void *arg)
{
	return (void *)(uintptr_t)count_range(*(struct range *)arg);
}

/* The check: CHECK_JOBS pool jobs and one task, gathered together. */
static int check(br_runtime *rt, br_pool *pool)
{
	static struct range whole = { 0, CHECK_HI };
	br_future *fs[CHECK_JOBS + 1];
	void *values[CHECK_JOBS + 1];
	uint64_t pooled = 0;
	int err;

	for (int i = 0; i < CHECK_JOBS; i++) {
		struct range r = { (uint64_t)i * CHECK_HI / CHECK_JOBS,
				   (uint64_t)(i + 1) * CHECK_HI / CHECK_JOBS };

		fs[i] = br_submit(pool, count_job, &r, sizeof(r));
	}
	fs[CHECK_JOBS] = br_spawn(rt, count_task, &whole);
	err = br_gather(fs, CHECK_JOBS + 1, values);
	for (int i = 0; i < CHECK_JOBS && err == 0; i++) {
		size_t len;
		const struct answer *a = br_future_bytes(fs[i], &len);

		pooled += a->count;
		printf("  check job %d ran on rank %d (%s)\n", i, (int)a->rank,
		       a->host);
	}
	if (err == 0 && pooled != (uint64_t)(uintptr_t)values[CHECK_JOBS]) {
		fprintf(stderr, "check: the jobs count %llu, the task %llu\n",
			(unsigned long long)pooled,
			(unsigned long long)(uintptr_t)values[CHECK_JOBS]);
		err = -EIO;
	} else if (err == 0) {
		printf("check: %d jobs and a task agree: %llu primes below "
		       "%d\n",
		       CHECK_JOBS, (unsigned long long)pooled, CHECK_HI);
	} else {
		for (int i = 0; i <= CHECK_JOBS; i++)
			if (br_future_state(fs[i]) != BR_DONE)
				fprintf(stderr, "check: %s\n",
					br_future_message(fs[i]));
	}
	for (int i = 0; i <= CHECK_JOBS; i++)
		br_future_release(fs[i]);
	return err;
}

/* What each rank did: ranges, distinct worker processes, its host. */
static int report(br_future *f, size_t n)
{
	static uint64_t ranges[MAX_RANKS];
	static int32_t pids[MAX_RANKS][MAX_WORKERS];
	static unsigned npids[MAX_RANKS];
	static char hosts[MAX_RANKS][48];
	int ranks = 0;

	for (size_t i = 0; i < n; i++) {
		size_t len;
		const struct answer *a = br_map_result(f, i, &len);
		int32_t r = a->rank;
		unsigned k = 0;

		if (r < 0 || r >= MAX_RANKS)
			continue;
		ranges[r]++;
		memcpy(hosts[r], a->host, sizeof(hosts[r]));
		while (k < npids[r] && pids[r][k] != a->pid)
			k++;
		if (k == npids[r] && k < MAX_WORKERS)
			pids[r][npids[r]++] = a->pid;
	}
	for (int r = 0; r < MAX_RANKS; r++) {
		if (!ranges[r])
			continue;
		ranks++;
		printf("  rank %d (%s): %llu ranges on %u worker process%s\n",
		       r, hosts[r], (unsigned long long)ranges[r], npids[r],
		       npids[r] == 1 ? "" : "es");
	}
	return ranks;
}

/* The usage on stdout for --help (status 0), on stderr for a mistake
 * (status 2). */
static __attribute__((noreturn)) void usage(const char *name, int status)
{
	fprintf(status ? stderr : stdout,
		"usage: %s [--limit N] [--chunk N] [--workers N]\n"
		"Counts the primes below N on the worker processes of every "
		"rank of an MPI job\n"
		"(under mpirun -np 3), or of this machine alone without "
		"mpirun.\n"
		"  -l, --limit N    count below N (default 10000000)\n"
		"  -c, --chunk N    numbers per mapped item (default 100000)\n"
		"  -w, --workers N  worker processes per rank, at most %d "
		"(default: one per CPU)\n"
		"  -h, --help       print this and exit\n",
		name, MAX_WORKERS);
	exit(status);
}

/* A positive decimal number, or the usage. */
static uint64_t arg_u64(const char *name, const char *s)
{
	char *end;
	uint64_t v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-')
		usage(name, 2);
	return v;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "limit", required_argument, NULL, 'l' },
		{ "chunk", required_argument, NULL, 'c' },
		{ "workers", required_argument, NULL, 'w' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t limit = 10000000, chunk = 100000, workers = 0, total = 0;
	struct range *items;
	size_t n;
	br_runtime *rt = NULL;
	br_pool *pool = NULL;
	br_future *f;
	int64_t t0, wall;
	int err, c, ranks;

	/* First of all: the other ranks serve jobs in here until rank 0
	 * exits, and never return. Without mpirun it returns 0 at once. */
	err = br_mpi_serve(&argc, &argv);
	if (err < 0) {
		fprintf(stderr, "br_mpi_serve: %s\n", br_strerror(err));
		return 1;
	}
	while ((c = getopt_long(argc, argv, "l:c:w:h", opts, NULL)) != -1) {
		switch (c) {
		case 'l':
			limit = arg_u64(argv[0], optarg);
			break;
		case 'c':
			chunk = arg_u64(argv[0], optarg);
			break;
		case 'w':
			workers = arg_u64(argv[0], optarg);
			break;
		case 'h':
			usage(argv[0], 0);
		default:
			usage(argv[0], 2);
		}
	}
	if (optind < argc || !limit || !chunk || workers > MAX_WORKERS)
		usage(argv[0], 2);
	n = (size_t)((limit + chunk - 1) / chunk);
	items = calloc(n, sizeof(*items));
	for (size_t i = 0; items && i < n; i++) {
		items[i].lo = i * chunk;
		items[i].hi = i * chunk + chunk < limit ? i * chunk + chunk :
							  limit;
	}
	err = br_runtime_new(&rt, NULL);
	if (err == 0)
		err = br_pool_new(&pool, rt,
				  &(br_pool_config){
					  .workers = (unsigned)workers,
					  .mpi = 1,
				  });
	if (err < 0 || !items) {
		fprintf(stderr, "start: %s\n",
			br_strerror(err < 0 ? err : -ENOMEM));
		br_runtime_free(rt); /* NULL is a no-op */
		free(items);
		return 1;
	}
	printf("counting primes below %llu in %zu ranges of %llu\n",
	       (unsigned long long)limit, n, (unsigned long long)chunk);
	err = check(rt, pool);
	if (err < 0)
		goto out; /* check() said why */
	t0 = br_now_ns();
	/* chunk 0: br_map cuts the items into chunks by itself. */
	f = br_map(pool, count_job, items, sizeof(*items), n, 0);
	err = br_await(f, NULL);
	wall = br_now_ns() - t0;
	if (err == 0) {
		for (size_t i = 0; i < n; i++) {
			size_t len;
			const struct answer *a = br_map_result(f, i, &len);

			total += a->count;
		}
		printf("%llu primes below %llu in %.3f s\n",
		       (unsigned long long)total, (unsigned long long)limit,
		       (double)wall / 1e9);
		ranks = report(f, n);
		printf("%d rank%s took part\n", ranks, ranks == 1 ? "" : "s");
	} else {
		fprintf(stderr, "map: %s\n", br_future_message(f));
	}
	br_future_release(f);
out:
	br_pool_free(pool);
	br_runtime_free(rt);
	free(items);
	return err < 0 ? 1 : 0;
}
