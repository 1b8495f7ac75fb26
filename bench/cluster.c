/* SPDX-License-Identifier: MIT */
/*
 * cluster.c - the cost of a job in a process pool across the ranks of an
 * MPI job (br_pool_config.mpi). Run under mpirun -np 3 (or more).
 *
 * What it measures
 *   --mode job: --n jobs (default 20,000) of 100 ints (400 bytes in, the
 *   8-byte sum out), submitted one at a time from 16 tasks: each task
 *   submits a job, awaits it and checks it, n / 16 times. us per job:
 *   wall / n.
 *   --mode map: br_map over --n items (default 100,000) of 100 ints, with
 *   automatic chunking. us per item: the median wall / n of 5 maps.
 *   --mode idle: the pool made, warmed up and then left alone; after 1 s
 *   of settling, the CPU time each rank's processes (the rank, its
 *   threads, its zygote and workers) burn over --ms (default 5,000) ms.
 *   Reported in CPU-ms per second, the highest of the ranks; every rank's
 *   figure goes to stderr. The ranks must run on this host (cluster.h).
 *   For job and map, more lines follow: rank 0's own CPU time (user +
 *   system, getrusage: its driver thread, its runtime's threads, not its
 *   worker processes) per job or per item, metric cpu0-job or cpu0-map;
 *   the share of the jobs or items that ran on other ranks (remote-job,
 *   remote-map, in %); and the driver thread's own CPU time per job or
 *   item it shipped (driver-job, driver-map). stderr tells how the work
 *   spread over the ranks and which of rank 0's threads spent that time.
 *
 * How
 *   br_mpi_serve() first; rank 0 makes a runtime of 2 workers and a pool
 *   of --workers (default 1) worker processes per rank, .mpi = 1, and
 *   runs an untimed warm-up of --warmup (default 2,000) jobs from the 16
 *   tasks. Each job answers its sum with its rank in the top byte, so
 *   that every answer is checked and counted by rank. Peers:
 *   peers/cluster_mpi.c (plain MPI), peers/cluster_mpi4py.py
 *   (mpi4py.futures), peers/cluster_dask.py (Dask distributed).
 *
 * Output: JSON lines, workload cluster, impl braid, threads the number
 * of ranks; metric job, map (us), idle (CPU-ms/s), cpu0-job, cpu0-map,
 * driver-job, driver-map (us of CPU), remote-job, remote-map (%).
 */
#include <dirent.h>
#include <stdatomic.h>

#include "braid.h"
#include "bench.h"
#include "cluster.h"

#define TASKS 16
#define MAP_REPS 5
#define SETTLE_MS 1000
#define MAX_THREADS 64

static br_pool *pool;
static const int32_t *items;
static long n_jobs;
static atomic_long per_rank[CLUSTER_MAX_RANKS];
static atomic_long wrong;

static void check(int err, const char *what)
{
	if (err < 0)
		bench_die("cluster: %s: %s", what, br_strerror(err));
}

/* This process's MPI rank (a worker inherits its rank's environment). */
static int64_t my_rank(void)
{
	static int64_t rank = -1;
	const char *s;

	if (rank < 0) {
		s = getenv("OMPI_COMM_WORLD_RANK");
		if (!s)
			s = getenv("PMIX_RANK");
		rank = s ? atoi(s) & 0x3f : 0;
	}
	return rank;
}

static int sum_job(br_job *job, const void *in, size_t len)
{
	const int32_t *v = in;
	int64_t s = 0;

	for (size_t i = 0; i < len / sizeof(*v); i++)
		s += v[i];
	s |= my_rank() << 56;
	return br_job_write(job, &s, sizeof(s));
}

/* Check the answer for item i, and count it for the rank that gave it. */
static void note(const void *out, size_t len, long i)
{
	int64_t v;

	if (!out || len != sizeof(v)) {
		atomic_fetch_add(&wrong, 1);
		return;
	}
	memcpy(&v, out, sizeof(v));
	if ((v & ((1LL << 56) - 1)) != cluster_item_sum(i))
		atomic_fetch_add(&wrong, 1);
	atomic_fetch_add(&per_rank[(v >> 56) & 0x3f], 1);
}

/* One of the 16 tasks: jobs t, t + 16, ... below n_jobs, one at a time. */
static void *submitter(void *arg)
{
	for (long i = (long)(intptr_t)arg; i < n_jobs; i += TASKS) {
		br_future *f = br_submit(pool, sum_job,
					 items + i * CLUSTER_INTS,
					 CLUSTER_INTS * sizeof(int32_t));
		const void *out;
		size_t len = 0;

		check(br_await(f, NULL), br_future_message(f));
		out = br_future_bytes(f, &len);
		note(out, len, i);
		br_future_release(f);
	}
	return NULL;
}

static void run_jobs(br_runtime *rt, long n)
{
	br_future *fs[TASKS];

	n_jobs = n;
	for (intptr_t t = 0; t < TASKS; t++)
		fs[t] = br_spawn(rt, submitter, (void *)t);
	check(br_gather(fs, TASKS, NULL), "gather");
	for (int t = 0; t < TASKS; t++)
		br_future_release(fs[t]);
}

/* One br_map of n items: its wall time; rank 0's CPU time over it is
 * added to *cpu. The answers are checked afterwards, outside both. */
static int64_t map_once(long n, int64_t *cpu)
{
	int64_t c0 = bench_cpu_ns(), t0 = bench_now_ns(), ns;
	br_future *f = br_map(pool, sum_job, items,
			      CLUSTER_INTS * sizeof(int32_t), (size_t)n, 0);

	check(br_await(f, NULL), br_future_message(f));
	ns = bench_now_ns() - t0;
	*cpu += bench_cpu_ns() - c0;
	for (long i = 0; i < n; i++) {
		size_t len = 0;
		const void *out = br_map_result(f, (size_t)i, &len);

		note(out, len, i);
	}
	br_future_release(f);
	return ns;
}

/* Rank 0's threads: their ids, names and CPU time so far. The threads
 * that br_mpi_serve() left (the main one, MPI's own and, newest, braid's
 * driver) are told from the runtime's, which come later. */
static int first_runtime_tid;

struct threads {
	int n;
	int tid[MAX_THREADS];
	char name[MAX_THREADS][20];
	int64_t ns[MAX_THREADS];
};

static void threads_read(struct threads *t)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;

	t->n = 0;
	while (d && (e = readdir(d)) && t->n < MAX_THREADS) {
		char path[96];
		long long ns = 0;
		FILE *f;
		int k = t->n;

		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		t->tid[k] = atoi(e->d_name);
		t->name[k][0] = '\0';
		snprintf(path, sizeof(path), "/proc/self/task/%d/comm",
			 t->tid[k]);
		f = fopen(path, "r");
		if (f) {
			if (fgets(t->name[k], sizeof(t->name[k]), f))
				t->name[k][strcspn(t->name[k], "\n")] = '\0';
			fclose(f);
		}
		snprintf(path, sizeof(path), "/proc/self/task/%d/schedstat",
			 t->tid[k]);
		f = fopen(path, "r");
		if (f) {
			if (fscanf(f, "%lld", &ns) != 1)
				ns = 0;
			fclose(f);
		}
		t->ns[k] = ns;
		t->n++;
	}
	if (d)
		closedir(d);
}

/*
 * Where rank 0's CPU went between a and b, per unit of work, on stderr;
 * returns the driver thread's part in ns. The driver is the newest of
 * the threads br_mpi_serve() left, which MPI_Init_thread's own precede.
 */
static int64_t threads_report(const struct threads *a, const struct threads *b,
			      long units, const char *unit)
{
	int64_t driver = 0;

	for (int i = 0; i < b->n; i++) {
		int64_t before = 0, ns;
		const char *what = "mpi";
		int newest = 1;

		for (int k = 0; k < a->n; k++)
			if (a->tid[k] == b->tid[i])
				before = a->ns[k];
		for (int k = 0; k < b->n; k++)
			if (b->tid[k] > b->tid[i] &&
			    b->tid[k] < first_runtime_tid)
				newest = 0;
		ns = b->ns[i] - before;
		if (b->tid[i] == (int)getpid()) {
			what = "main";
		} else if (b->tid[i] >= first_runtime_tid) {
			what = "runtime";
		} else if (newest) {
			what = "driver";
			driver = ns;
		}
		fprintf(stderr,
			"cluster: rank 0 thread %d (%s, %s): %.3f us per %s\n",
			b->tid[i], b->name[i], what,
			(double)ns / 1e3 / (double)units, unit);
	}
	return driver;
}

/* How the work spread over the ranks, on stderr; returns how much of it
 * ran on ranks other than 0. */
static long spread_report(const char *what)
{
	long total = 0;

	for (int r = 0; r < CLUSTER_MAX_RANKS; r++)
		total += atomic_load(&per_rank[r]);
	for (int r = 0; r < CLUSTER_MAX_RANKS; r++) {
		long v = atomic_load(&per_rank[r]);

		if (v)
			fprintf(stderr,
				"cluster: %s: rank %d ran %ld (%.1f%%)\n", what,
				r, v, 100.0 * (double)v / (double)total);
	}
	return total - atomic_load(&per_rank[0]);
}

/* The highest CPU-ms per second of any rank over ms of idleness. */
static double idle_cost(unsigned ranks, long ms)
{
	int64_t a[CLUSTER_MAX_RANKS], b[CLUSTER_MAX_RANKS], la, lb, t0, t;
	double worst = 0;
	int found;

	found = cluster_cpu(a, &la);
	if ((unsigned)found != ranks)
		bench_die("cluster: idle: found %d of %u ranks on this host",
			  found, ranks);
	t0 = bench_now_ns();
	usleep((useconds_t)ms * 1000);
	cluster_cpu(b, &lb);
	t = bench_now_ns() - t0;
	for (unsigned r = 0; r < ranks; r++) {
		double v = (double)(b[r] - a[r]) / 1e6 / ((double)t / 1e9);

		fprintf(stderr, "cluster: idle: rank %u %.2f CPU-ms/s\n", r, v);
		if (v > worst)
			worst = v;
	}
	fprintf(stderr, "cluster: idle: launcher %.2f CPU-ms/s\n",
		(double)(lb - la) / 1e6 / ((double)t / 1e9));
	return worst;
}

/* The share of n jobs or items that ran on other ranks, and the driver
 * thread's CPU time per one of those. */
static void report_remote(const char *mode, long n, unsigned ranks,
			  int64_t driver_ns, long remote, int argc, char **argv)
{
	char metric[32];

	snprintf(metric, sizeof(metric), "remote-%s", mode);
	bench_report("cluster", "braid", metric, "%", n, ranks,
		     100.0 * (double)remote / (double)n, argc, argv);
	if (!remote)
		return;
	snprintf(metric, sizeof(metric), "driver-%s", mode);
	bench_report("cluster", "braid", metric, "us", n, ranks,
		     (double)driver_ns / 1e3 / (double)remote, argc, argv);
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static unsigned ranks_of_job(void)
{
	const char *s = getenv("OMPI_COMM_WORLD_SIZE");

	if (!s)
		s = getenv("PMIX_SIZE");
	return s ? (unsigned)atoi(s) : 1;
}

int main(int argc, char **argv)
{
	struct bench_opts o = {
		.n = 0, .workers = 1, .mode = "job", .warmup = 2000, .ms = 5000
	};
	struct threads ta, tb;
	int64_t driver;
	long remote;
	unsigned ranks;
	br_runtime *rt;
	int64_t cpu0;
	int32_t *buf;
	double v;

	check(br_mpi_serve(&argc, &argv), "br_mpi_serve");
	/* Only rank 0 gets here. */
	bench_parse(&o, argc, argv,
		    "[--mode job|map|idle] [--workers N] [--n N] "
		    "[--warmup N] [--ms MS]");
	if (strcmp(o.mode, "job") && strcmp(o.mode, "map") &&
	    strcmp(o.mode, "idle"))
		bench_die("cluster: --mode is job, map or idle");
	if (!o.n)
		o.n = !strcmp(o.mode, "map") ? 100000 : 20000;
	ranks = ranks_of_job();
	buf = cluster_items(o.n > o.warmup ? o.n : o.warmup);
	if (!buf)
		bench_die("cluster: out of memory");
	items = buf;
	threads_read(&ta);
	for (int i = 0; i < ta.n; i++)
		if (ta.tid[i] >= first_runtime_tid)
			first_runtime_tid = ta.tid[i] + 1;
	check(br_runtime_new(&rt, &(br_config){ .workers = 2,
						.flags = BR_CONFIG_QUIET }),
	      "runtime");
	check(br_pool_new(&pool, rt,
			  &(br_pool_config){ .workers = o.workers, .mpi = 1 }),
	      "pool");
	if (o.warmup)
		run_jobs(rt, o.warmup);
	(void)spread_report("warm-up");
	memset(per_rank, 0, sizeof(per_rank));
	if (!strcmp(o.mode, "idle")) {
		usleep(SETTLE_MS * 1000);
		v = idle_cost(ranks, o.ms);
		bench_report("cluster", "braid", "idle", "CPU-ms/s", o.n, ranks,
			     v, argc, argv);
	} else if (!strcmp(o.mode, "job")) {
		int64_t t0 = bench_now_ns(), ns;

		threads_read(&ta);
		cpu0 = bench_cpu_ns();
		run_jobs(rt, o.n);
		ns = bench_now_ns() - t0;
		cpu0 = bench_cpu_ns() - cpu0;
		threads_read(&tb);
		bench_report("cluster", "braid", "job", "us", o.n, ranks,
			     (double)ns / 1e3 / (double)o.n, argc, argv);
		bench_report("cluster", "braid", "cpu0-job", "us", o.n, ranks,
			     (double)cpu0 / 1e3 / (double)o.n, argc, argv);
		driver = threads_report(&ta, &tb, o.n, "job");
		remote = spread_report("jobs");
		report_remote("job", o.n, ranks, driver, remote, argc, argv);
	} else {
		int64_t t[MAP_REPS];

		cpu0 = 0;
		threads_read(&ta);
		for (int i = 0; i < MAP_REPS; i++)
			t[i] = map_once(o.n, &cpu0);
		threads_read(&tb);
		qsort(t, MAP_REPS, sizeof(t[0]), cmp_i64);
		bench_report("cluster", "braid", "map", "us", o.n, ranks,
			     (double)t[MAP_REPS / 2] / 1e3 / (double)o.n, argc,
			     argv);
		bench_report("cluster", "braid", "cpu0-map", "us", o.n, ranks,
			     (double)cpu0 / 1e3 / (double)(o.n * MAP_REPS),
			     argc, argv);
		driver = threads_report(&ta, &tb, o.n * MAP_REPS, "item");
		remote = spread_report("items");
		report_remote("map", o.n * MAP_REPS, ranks, driver, remote,
			      argc, argv);
	}
	if (atomic_load(&wrong))
		bench_die("cluster: %ld answers wrong", atomic_load(&wrong));
	br_pool_free(pool);
	br_runtime_free(rt);
	free(buf);
	return 0;
}
