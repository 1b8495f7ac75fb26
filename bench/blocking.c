/* SPDX-License-Identifier: MIT */
/*
 * blocking.c - the cost of a call on the blocking pool.
 *
 * What it measures
 *   --mode burst: a task makes n (default 100,000) br_spawn_blocking()
 *   calls of an empty function, then awaits each future in order.
 *   Reported in us per call: wall time / n. The pool starts empty and
 *   grows as it sees fit (up to its default of 64 threads); its queue is
 *   configured to hold n, so no call fails.
 *
 *   --mode serial: the task makes n (default 10,000) calls one at a time,
 *   awaiting each before the next: the round trip from a task to a pool
 *   thread and back. Reported in us per call.
 *
 * How
 *   The runtime has --workers workers (default 2). A first, untimed run
 *   of the same size (--warmup N to change it, 0 for none) warms the
 *   pool and the allocator: the timed run measures the steady state, not
 *   the first touch of fresh heap pages (10 us each here, more than a
 *   call). The clock runs on the main thread from spawning the task to
 *   br_await() on it returning.
 *   Peers: peers/blocking_pthread.c (a plain pthread pool with a
 *   mutex+condvar queue) and peers/blocking_py.py (asyncio.to_thread).
 *
 * Output: JSON lines, metrics "burst" and "serial", in us.
 */
#include "braid.h"
#include "bench.h"

static long n_calls;

static void check(int err, const char *what)
{
	if (err < 0)
		bench_die("blocking: %s: %s", what, br_strerror(err));
}

static void *empty(void *arg)
{
	return arg;
}

static void *burst(void *arg)
{
	br_runtime *rt = br_current_runtime();
	br_future **fs = malloc((size_t)n_calls * sizeof(*fs));

	if (!fs)
		bench_die("blocking: out of memory");
	for (long i = 0; i < n_calls; i++)
		fs[i] = br_spawn_blocking(rt, empty, NULL);
	for (long i = 0; i < n_calls; i++) {
		check(br_await(fs[i], NULL), "await");
		br_future_release(fs[i]);
	}
	free(fs);
	return NULL;
}

static void *serial(void *arg)
{
	br_runtime *rt = br_current_runtime();

	for (long i = 0; i < n_calls; i++) {
		br_future *f = br_spawn_blocking(rt, empty, NULL);

		check(br_await(f, NULL), "await");
		br_future_release(f);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct bench_opts o = {
		.n = 0, .workers = 2, .mode = "burst", .warmup = -1
	};
	br_config cfg = { 0 };
	br_runtime *rt;
	br_task_fn fn;
	br_future *f;
	int64_t t0, t1;
	int err;

	bench_parse(&o, argc, argv,
		    "[--mode burst|serial] [--workers N] [--n N] [--warmup N]");
	if (!strcmp(o.mode, "burst")) {
		fn = burst;
		n_calls = o.n ? o.n : 100000;
	} else if (!strcmp(o.mode, "serial")) {
		fn = serial;
		n_calls = o.n ? o.n : 10000;
	} else {
		bench_die("blocking: --mode is burst or serial");
	}
	cfg.workers = o.workers;
	cfg.blocking_queue = n_calls > 65536 ? (unsigned)n_calls :
					       0; /* 0: default */
	err = br_runtime_new(&rt, &cfg);
	if (err < 0)
		bench_die("br_runtime_new: %s", br_strerror(err));
	if (o.warmup) {
		long n = n_calls;

		n_calls = o.warmup > 0 ? o.warmup : n;
		f = br_spawn(rt, fn, NULL);
		check(br_await(f, NULL), "warm-up");
		br_future_release(f);
		n_calls = n;
	}
	t0 = br_now_ns();
	f = br_spawn(rt, fn, NULL);
	check(br_await(f, NULL), "task");
	t1 = br_now_ns();
	br_future_release(f);
	bench_report("blocking", "braid", o.mode, "us", n_calls,
		     br_runtime_workers(rt),
		     (double)(t1 - t0) / 1000.0 / (double)n_calls, argc, argv);
	br_runtime_free(rt);
	return 0;
}
