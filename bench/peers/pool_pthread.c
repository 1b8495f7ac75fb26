/* SPDX-License-Identifier: MIT */
/*
 * pool_pthread.c - the CPU-bound peer of bench/pool.c --mode cpu: --workers
 * threads (default 2) pulling --n jobs (default 64) of about --ms (default
 * 50) ms from a shared atomic counter. Reported: wall time over the ideal
 * (one job's time, measured first as the median of 5, times n / workers),
 * as bench/pool.c reports it.
 *
 * Output: one JSON line as bench/bench.h writes them, impl "pthread".
 */
#include <pthread.h>
#include <stdatomic.h>

#include "../bench.h"

static atomic_long next_job;
static long n_jobs;
static uint64_t iters;
static volatile uint64_t sink;

static uint64_t spin(uint64_t k)
{
	uint64_t x = 88172645463325252ull;

	for (uint64_t i = 0; i < k; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
	}
	return x;
}

static void *worker(void *arg)
{
	while (atomic_fetch_add(&next_job, 1) < n_jobs)
		sink = spin(iters);
	return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	struct bench_opts o = { .n = 64, .workers = 2, .mode = "cpu", .ms = 50 };
	pthread_t th[64];
	int64_t t[5], t0, job_ns;

	bench_parse(&o, argc, argv, "[--workers N] [--n N] [--ms MS]");
	if (o.workers < 1 || o.workers > 64)
		bench_die("pool_pthread: --workers is 1 to 64");
	iters = 1000000;
	for (;;) {
		t0 = bench_now_ns();
		sink = spin(iters);
		t[0] = bench_now_ns() - t0;
		if (t[0] > 5000000)
			break;
		iters *= 4;
	}
	iters = (uint64_t)((double)iters * (double)o.ms * 1e6 / (double)t[0]);
	for (int i = 0; i < 5; i++) {
		t0 = bench_now_ns();
		sink = spin(iters);
		t[i] = bench_now_ns() - t0;
	}
	qsort(t, 5, sizeof(t[0]), cmp_i64);
	job_ns = t[2];
	n_jobs = o.n;
	t0 = bench_now_ns();
	for (unsigned i = 0; i < o.workers; i++)
		pthread_create(&th[i], NULL, worker, NULL);
	for (unsigned i = 0; i < o.workers; i++)
		pthread_join(th[i], NULL);
	bench_report("pool", "pthread", "cpu", "x ideal", o.n, o.workers,
		     (double)(bench_now_ns() - t0) /
			     ((double)job_ns * (double)o.n / o.workers),
		     argc, argv);
	return 0;
}
