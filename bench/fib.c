/* SPDX-License-Identifier: MIT */
/*
 * fib.c - fork-join cost: fib(n) with one task per call.
 *
 * What it measures
 *   The wall time of fib(n) (default 30) where every call with n >= 2
 *   spawns fib(n - 1) as a task, computes fib(n - 2) itself, awaits the
 *   child and adds the two. For fib(30) that is 1.35 million tasks, each doing
 *   almost no work, so the figure is the cost of spawn, await and steal.
 *   n goes in through the void * argument as an intptr_t and the value
 *   comes back the same way.
 *
 * How
 *   A runtime with --workers workers is started, then one untimed warm-up
 *   run of fib(--warmup) (default 20) starts its threads and fills its
 *   stack caches. The clock runs from spawning the root task on the main
 *   thread to br_await() on it returning there. The result is checked.
 *   The peers (bench/peers/fib_*) do the same recursion with their own
 *   task primitive and the same warm-up.
 *
 * Output: one JSON line, metric "wall" in ms.
 */
#include <inttypes.h>

#include "braid.h"
#include "bench.h"

static br_runtime *rt;

static void *fib_task(void *arg);

static intptr_t fib(intptr_t n)
{
	br_future *child;
	intptr_t b;
	void *a;
	int err;

	if (n < 2)
		return n;
	child = br_spawn(rt, fib_task, (void *)(n - 1));
	b = fib(n - 2);
	err = br_await(child, &a);
	if (err < 0)
		bench_die("fib: await: %s", br_strerror(err));
	br_future_release(child);
	return (intptr_t)a + b;
}

static void *fib_task(void *arg)
{
	return (void *)fib((intptr_t)arg);
}

/* Run fib(n) as a task from the main thread and return its value. */
static intptr_t run(long n)
{
	br_future *root;
	void *v;
	int err;

	root = br_spawn(rt, fib_task, (void *)(intptr_t)n);
	err = br_await(root, &v);
	if (err < 0)
		bench_die("fib: root: %s: %s", br_strerror(err),
			  br_future_message(root));
	br_future_release(root);
	return (intptr_t)v;
}

/* The reference value, by iteration. */
static intptr_t fib_iter(long n)
{
	intptr_t a = 0, b = 1, t;

	while (n-- > 0) {
		t = a + b;
		a = b;
		b = t;
	}
	return a;
}

int main(int argc, char **argv)
{
	struct bench_opts o = { .n = 30, .workers = 2, .warmup = 20 };
	br_config cfg = { 0 };
	intptr_t got;
	int64_t t0, t1;
	int err;

	bench_parse(&o, argc, argv, "[--workers N] [--n N] [--warmup N]");
	if (o.n > 60 || o.warmup > 60 || o.workers == 0)
		bench_die("fib: want 1 <= workers, n <= 60");
	cfg.workers = o.workers;
	err = br_runtime_new(&rt, &cfg);
	if (err < 0)
		bench_die("br_runtime_new: %s", br_strerror(err));

	if (o.warmup > 0 && run(o.warmup) != fib_iter(o.warmup))
		bench_die("fib: wrong warm-up result");

	t0 = br_now_ns();
	got = run(o.n);
	t1 = br_now_ns();
	if (got != fib_iter(o.n))
		bench_die("fib(%ld) gave %" PRIdPTR ", want %" PRIdPTR, o.n,
			  got, fib_iter(o.n));

	bench_report("fib", "braid", "wall", "ms", o.n, br_runtime_workers(rt),
		     (double)(t1 - t0) / 1e6, argc, argv);
	br_runtime_free(rt);
	return 0;
}
