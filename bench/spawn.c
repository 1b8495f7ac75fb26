/* SPDX-License-Identifier: MIT */
/*
 * spawn.c - the cost of running a subprocess through br_exec.
 *
 * What it measures
 *   --mode window: a task runs n (default 1,000) subprocesses of
 *   /bin/true, keeping 16 in flight: it starts 16, then each time the
 *   oldest completes it starts another. Reported in ms per spawn: wall
 *   time / n, which covers the spawn (forkexec.c), the exit seen
 *   through the loop, and the reap.
 *
 * How
 *   The runtime has --workers workers (default 2). A first, untimed run
 *   of 64 subprocesses (--warmup N to change it, 0 for none) warms the
 *   page cache and the allocator. The clock runs on the main thread from
 *   spawning the task to br_await() on it returning.
 *   Peer: peers/spawn_c.c, the same window with posix_spawn() and
 *   waitpid() in a plain C loop.
 *
 * Output: JSON lines, metric "window", in ms.
 */
#include "braid.h"
#include "bench.h"

#define WINDOW 16

static long n_spawns;

static void check(int err, const char *what)
{
	if (err < 0)
		bench_die("spawn: %s: %s", what, br_strerror(err));
}

static br_future *start(br_runtime *rt)
{
	static const char *const argv[] = { "/bin/true", NULL };

	return br_exec(rt, argv, NULL);
}

static void *window(void *arg)
{
	br_runtime *rt = br_current_runtime();
	br_future *fs[WINDOW];
	long started = 0, done = 0;

	for (; started < n_spawns && started < WINDOW; started++)
		fs[started] = start(rt);
	while (done < n_spawns) {
		br_future *f = fs[done % WINDOW];

		check(br_await(f, NULL), "await");
		if (br_exec_exit_code(f) != 0)
			bench_die("spawn: /bin/true exited %d",
				  br_exec_exit_code(f));
		br_future_release(f);
		done++;
		if (started < n_spawns)
			fs[started++ % WINDOW] = start(rt);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct bench_opts o = {
		.n = 1000, .workers = 2, .mode = "window", .warmup = 64
	};
	br_config cfg = { 0 };
	br_runtime *rt;
	br_future *f;
	int64_t t0, t1;
	int err;

	bench_parse(&o, argc, argv, "[--workers N] [--n N] [--warmup N]");
	if (strcmp(o.mode, "window"))
		bench_die("spawn: --mode is window");
	cfg.workers = o.workers;
	err = br_runtime_new(&rt, &cfg);
	if (err < 0)
		bench_die("br_runtime_new: %s", br_strerror(err));
	if (o.warmup) {
		n_spawns = o.warmup;
		f = br_spawn(rt, window, NULL);
		check(br_await(f, NULL), "warm-up");
		br_future_release(f);
	}
	n_spawns = o.n;
	t0 = br_now_ns();
	f = br_spawn(rt, window, NULL);
	check(br_await(f, NULL), "task");
	t1 = br_now_ns();
	br_future_release(f);
	bench_report("spawn", "braid", o.mode, "ms", n_spawns,
		     br_runtime_workers(rt),
		     (double)(t1 - t0) / 1e6 / (double)n_spawns, argc, argv);
	br_runtime_free(rt);
	return 0;
}
