/* SPDX-License-Identifier: MIT */
/*
 * sleep.c - many sleeping tasks: timer cost and memory per task.
 *
 * What it measures
 *   n tasks (default 100,000) each call br_sleep_ms(--ms) (default 100)
 *   and return. Three figures:
 *     - "wall": ms from the first spawn to the last task's completion,
 *       so the ideal is --ms plus the time to spawn and reap n tasks;
 *     - "rss_per_task": peak resident memory the tasks added, in KiB per
 *       task: ru_maxrss after they have all ended minus ru_maxrss just
 *       before the first spawn, divided by n;
 *     - "peak_alive": the most tasks asleep at the same moment. Only when
 *       it equals n were all n stacks in use together; if starting the
 *       tasks takes longer than --ms, the first ones end before the last
 *       ones start and rss_per_task understates the cost of a task;
 *     - "rss_per_alive": the same memory divided by peak_alive instead.
 *
 * How
 *   A driver task spawns the n tasks (they go to its worker's queue and
 *   are stolen from there, as goroutines started by one goroutine are),
 *   then waits for all of them with br_gather(). The clock and both
 *   ru_maxrss readings are taken inside the driver. There is no warm-up:
 *   it would raise the baseline peak and hide the memory being measured.
 *   The Go peer (peers/sleep_go.go) starts n goroutines doing time.Sleep.
 *
 * Output: four JSON lines: "wall" in ms, "rss_per_task" and
 * "rss_per_alive" in KiB, "peak_alive" in tasks.
 */
#include <stdatomic.h>
#include <sys/resource.h>

#include "braid.h"
#include "bench.h"

static br_runtime *rt;
static atomic_long alive, peak_alive;

struct result {
	long n, ms;
	int64_t wall_ns;
	long rss_before_kib, rss_after_kib;
};

static long maxrss_kib(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss; /* KiB on Linux */
}

static void *sleeper(void *arg)
{
	long now = atomic_fetch_add(&alive, 1) + 1;
	long peak = atomic_load_explicit(&peak_alive, memory_order_relaxed);
	int err;

	while (now > peak &&
	       !atomic_compare_exchange_weak(&peak_alive, &peak, now))
		;
	err = br_sleep_ms((intptr_t)arg);
	atomic_fetch_sub(&alive, 1);
	if (err < 0)
		return br_fail(err, "sleep");
	return NULL;
}

static void *driver(void *arg)
{
	struct result *r = arg;
	br_future **fs;
	int64_t t0;
	long i;
	int err;

	/* Touch the array first so that its pages are in the baseline. */
	fs = calloc((size_t)r->n, sizeof(*fs));
	if (!fs)
		return br_fail(-ENOMEM, "future array");
	memset(fs, 0, sizeof(*fs) * (size_t)r->n);
	r->rss_before_kib = maxrss_kib();
	t0 = br_now_ns();
	for (i = 0; i < r->n; i++)
		fs[i] = br_spawn(rt, sleeper, (void *)(intptr_t)r->ms);
	err = br_gather(fs, (size_t)r->n, NULL);
	r->wall_ns = br_now_ns() - t0;
	r->rss_after_kib = maxrss_kib();
	if (err < 0) {
		for (i = 0; i < r->n; i++)
			if (br_future_state(fs[i]) != BR_DONE)
				break;
		fprintf(stderr, "sleep: task %ld: %s: %s\n", i,
			br_strerror(err),
			i < r->n ? br_future_message(fs[i]) : "");
	}
	for (i = 0; i < r->n; i++)
		br_future_release(fs[i]);
	free(fs);
	return err < 0 ? br_fail(err, "a sleeper failed") : NULL;
}

int main(int argc, char **argv)
{
	struct bench_opts o = { .n = 100000, .workers = 2, .ms = 100 };
	struct result r = { 0 };
	br_config cfg = { 0 };
	br_future *f;
	long peak;
	int err;

	bench_parse(&o, argc, argv, "[--workers N] [--n TASKS] [--ms MS]");
	if (o.n == 0 || o.workers == 0)
		bench_die("sleep: --n and --workers must be at least 1");
	r.n = o.n;
	r.ms = o.ms;

	cfg.workers = o.workers;
	err = br_runtime_new(&rt, &cfg);
	if (err < 0)
		bench_die("br_runtime_new: %s", br_strerror(err));

	f = br_spawn(rt, driver, &r);
	err = br_await(f, NULL);
	if (err < 0)
		bench_die("sleep: %s: %s", br_strerror(err),
			  br_future_message(f));
	br_future_release(f);

	bench_report("sleep", "braid", "wall", "ms", o.n,
		     br_runtime_workers(rt), (double)r.wall_ns / 1e6, argc,
		     argv);
	bench_report("sleep", "braid", "rss_per_task", "KiB", o.n,
		     br_runtime_workers(rt),
		     (double)(r.rss_after_kib - r.rss_before_kib) / (double)o.n,
		     argc, argv);
	peak = atomic_load(&peak_alive);
	bench_report("sleep", "braid", "peak_alive", "tasks", o.n,
		     br_runtime_workers(rt), (double)peak, argc, argv);
	bench_report("sleep", "braid", "rss_per_alive", "KiB", o.n,
		     br_runtime_workers(rt),
		     (double)(r.rss_after_kib - r.rss_before_kib) /
			     (double)(peak ? peak : 1),
		     argc, argv);
	br_runtime_free(rt);
	return 0;
}
