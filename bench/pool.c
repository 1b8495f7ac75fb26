/* SPDX-License-Identifier: MIT */
/*
 * pool.c - the cost of a job in braid's process pool.
 *
 * What it measures
 *   --mode map: br_map over n (default 100,000) tiny jobs, each the sum
 *   of 100 ints (400 bytes in, 8 bytes out), with automatic chunking.
 *   us per job: wall time / n, from the call to br_await returning.
 *   --mode submit: n single br_submit calls of the same job from one
 *   task, then br_gather over their futures. us per job.
 *   --mode cpu: --n jobs (default 64) of about --ms (default 50) ms of
 *   arithmetic each, submitted at once to a pool of --workers (default
 *   2) processes. Reported: wall time over the ideal, which is the sum
 *   of the job times / workers, with one job's time measured in this
 *   process before the pool starts (median of 5). 1.0 is perfect; the
 *   issue's 98% efficiency is 1.02.
 *   --mode light: one job every millisecond (at each millisecond after
 *   the start, from a task that awaits each job and then sleeps until
 *   the next one is due), for --ms (default 2,000) ms after 500 ms of
 *   the same untimed. Reported: the CPU time of the whole process tree
 *   (this process's threads, the zygote and the worker processes) over
 *   that window, in % of one CPU: what a lightly used pool costs.
 *
 * How
 *   A runtime of 2 workers (so its zygote forks before any thread) and a
 *   pool of --workers processes; an untimed warm-up (--warmup jobs,
 *   default 2,000) runs first. Peers: peers/pool_py.py (Python
 *   multiprocessing.Pool.map, imap with chunksize 1, and
 *   ProcessPoolExecutor.map), peers/pool_fork.c (a fork per job) and
 *   peers/pool_pthread.c (threads pulling from a counter, for cpu).
 *
 * Output: JSON lines, metric map, submit (us), cpu (ratio) or light
 * (% of a CPU).
 */
#include "braid.h"
#include "bench.h"

#define INTS 100

static long n_jobs;
static br_pool *pool;
static int32_t *items;

static void check(int err, const char *what)
{
	if (err < 0)
		bench_die("pool: %s: %s", what, br_strerror(err));
}

static int sum_job(br_job *job, const void *in, size_t len)
{
	const int32_t *v = in;
	int64_t s = 0;

	for (size_t i = 0; i < len / sizeof(*v); i++)
		s += v[i];
	return br_job_write(job, &s, sizeof(s));
}

/* About --ms of arithmetic: in holds the iteration count. */
static uint64_t spin(uint64_t iters)
{
	uint64_t x = 88172645463325252ull;

	for (uint64_t i = 0; i < iters; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
	}
	return x;
}

static int spin_job(br_job *job, const void *in, size_t len)
{
	uint64_t iters, x;

	memcpy(&iters, in, sizeof(iters));
	x = spin(iters);
	return br_job_write(job, &x, sizeof(x));
}

static void *map_task(void *arg)
{
	br_future *f = br_map(pool, sum_job, items, INTS * sizeof(int32_t),
			      (size_t)n_jobs, 0);

	check(br_await(f, NULL), "map");
	br_future_release(f);
	return NULL;
}

static void *submit_task(void *arg)
{
	br_future **fs = malloc((size_t)n_jobs * sizeof(*fs));

	if (!fs)
		bench_die("pool: out of memory");
	for (long i = 0; i < n_jobs; i++)
		fs[i] = br_submit(pool, sum_job, items + (i % 1000) * INTS,
				  INTS * sizeof(int32_t));
	check(br_gather(fs, (size_t)n_jobs, NULL), "gather");
	for (long i = 0; i < n_jobs; i++)
		br_future_release(fs[i]);
	free(fs);
	return NULL;
}

static void *cpu_task(void *arg)
{
	uint64_t iters = *(uint64_t *)arg;
	br_future **fs = malloc((size_t)n_jobs * sizeof(*fs));

	if (!fs)
		bench_die("pool: out of memory");
	for (long i = 0; i < n_jobs; i++)
		fs[i] = br_submit(pool, spin_job, &iters, sizeof(iters));
	check(br_gather(fs, (size_t)n_jobs, NULL), "gather");
	for (long i = 0; i < n_jobs; i++)
		br_future_release(fs[i]);
	free(fs);
	return NULL;
}

/* One job at each millisecond from now until *(int64_t *)arg
 * (br_now_ns()). */
static void *light_task(void *arg)
{
	int64_t until = *(int64_t *)arg, next = br_now_ns();

	while (next < until) {
		br_future *f =
			br_submit(pool, sum_job, items, INTS * sizeof(int32_t));

		check(br_await(f, NULL), "job");
		br_future_release(f);
		next += 1000000;
		br_sleep_until(next);
	}
	return NULL;
}

static double light(br_runtime *rt, long ms)
{
	int64_t until = br_now_ns() + 500 * 1000000ll, cpu0, t0;
	br_future *f = br_spawn(rt, light_task, &until);

	check(br_await(f, NULL), "warm-up");
	br_future_release(f);
	cpu0 = bench_tree_ns(getpid());
	t0 = br_now_ns();
	until = t0 + ms * 1000000ll;
	f = br_spawn(rt, light_task, &until);
	check(br_await(f, NULL), "light");
	br_future_release(f);
	return 100.0 * (double)(bench_tree_ns(getpid()) - cpu0) /
	       (double)(br_now_ns() - t0);
}

static int64_t timed(br_runtime *rt, br_task_fn fn, void *arg)
{
	int64_t t0 = br_now_ns();
	br_future *f = br_spawn(rt, fn, arg);

	check(br_await(f, NULL), "task");
	br_future_release(f);
	return br_now_ns() - t0;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* Iterations for about ms milliseconds, and one job's time in ns. */
static uint64_t calibrate(long ms, int64_t *job_ns)
{
	uint64_t iters = 1000000;
	int64_t t[5];
	volatile uint64_t sink;

	for (;;) {
		int64_t t0 = bench_now_ns();

		sink = spin(iters);
		t[0] = bench_now_ns() - t0;
		if (t[0] > 5000000)
			break;
		iters *= 4;
	}
	iters = (uint64_t)((double)iters * (double)ms * 1e6 / (double)t[0]);
	for (int i = 0; i < 5; i++) {
		int64_t t0 = bench_now_ns();

		sink = spin(iters);
		t[i] = bench_now_ns() - t0;
	}
	(void)sink;
	qsort(t, 5, sizeof(t[0]), cmp_i64);
	*job_ns = t[2];
	return iters;
}

int main(int argc, char **argv)
{
	struct bench_opts o = {
		.n = 0, .workers = 2, .mode = "map", .warmup = 2000, .ms = 0
	};
	br_runtime *rt;
	int64_t ns, job_ns = 0;
	uint64_t iters = 0;
	double v;
	int cpu;

	bench_parse(&o, argc, argv,
		    "[--mode map|submit|cpu|light] [--workers N] [--n N] "
		    "[--warmup N] [--ms MS]");
	cpu = !strcmp(o.mode, "cpu");
	if (!cpu && strcmp(o.mode, "map") && strcmp(o.mode, "submit") &&
	    strcmp(o.mode, "light"))
		bench_die("pool: --mode is map, submit, cpu or light");
	if (!o.n)
		o.n = cpu ? 64 : 100000;
	if (!o.ms)
		o.ms = cpu ? 50 : 2000;
	if (cpu)
		iters = calibrate(o.ms, &job_ns);
	check(br_runtime_new(&rt, &(br_config){ .workers = 2 }), "runtime");
	check(br_pool_new(&pool, rt, &(br_pool_config){ .workers = o.workers }),
	      "pool");
	items = malloc(1000 * INTS * sizeof(int32_t));
	if (!items)
		bench_die("pool: out of memory");
	for (int i = 0; i < 1000 * INTS; i++)
		items[i] = i;
	if (o.warmup) {
		n_jobs = o.warmup;
		timed(rt, submit_task, NULL);
	}
	n_jobs = o.n;
	if (!strcmp(o.mode, "light")) {
		bench_report("pool", "braid", "light", "% CPU", o.ms, o.workers,
			     light(rt, o.ms), argc, argv);
	} else if (cpu) {
		ns = timed(rt, cpu_task, &iters);
		v = (double)ns / ((double)job_ns * (double)n_jobs / o.workers);
		bench_report("pool", "braid", "cpu", "x ideal", n_jobs,
			     o.workers, v, argc, argv);
	} else {
		if (!strcmp(o.mode, "map")) {
			int32_t *big =
				malloc((size_t)n_jobs * INTS * sizeof(int32_t));

			if (!big)
				bench_die("pool: out of memory");
			for (long i = 0; i < n_jobs * INTS; i++)
				big[i] = (int32_t)i;
			free(items);
			items = big;
			ns = timed(rt, map_task, NULL);
		} else {
			ns = timed(rt, submit_task, NULL);
		}
		bench_report("pool", "braid", o.mode, "us", n_jobs, o.workers,
			     (double)ns / 1e3 / (double)n_jobs, argc, argv);
	}
	br_pool_free(pool);
	br_runtime_free(rt);
	free(items);
	return 0;
}
