/* SPDX-License-Identifier: MIT */
/*
 * handoff.c - what it costs to wake a task on another thread, what an idle
 * or lightly loaded runtime costs, and how long a spawned task can wait.
 *
 * What it measures (one --mode per invocation; all on --workers, default 2)
 *   promise: two tasks pinned to workers 0 and 1 (br_spawn_on) pass a
 *     token n times (default 200,000) through promises: A resolves the
 *     promise B awaits, then B the one A awaits, a fresh promise each
 *     way per round. ns per round trip: wall time / n.
 *   (The same over channels is bench/chan's --mode pingpong-apart.)
 *   thread: the main thread (a plain thread, not a worker) and one task
 *     (br_spawn from the main thread, not pinned) pass the token through
 *     promises, n times (default 50,000). ns per round trip.
 *   idle: a runtime with nothing to do for --ms (default 5,000) ms. The
 *     CPU time the whole process used over that window (getrusage), in
 *     ms of CPU per second of wall time. The window opens 200 ms after
 *     br_runtime_new() returns, so start-up is not counted.
 *   light: one hand-off every millisecond for --ms ms: the main thread
 *     sleeps to the next millisecond and resolves a promise a task
 *     awaits. CPU time of the process over wall time, in percent of one
 *     CPU.
 *   light-timer: the same load made by the runtime itself: one task
 *     calls br_sleep_ms(1) in a loop. Percent of one CPU.
 *   storm: one task spawns n tasks (default 1,000,000) in a loop and
 *     releases each future at once; each task records the time from the
 *     line before its br_spawn to its own first instruction. Two lines:
 *     the longest such wait (storm-max) and the 99.9th percentile
 *     (storm-p999), in us.
 *   storm-thread: the same with the main thread as the spawner
 *     (storm-thread-max, storm-thread-p999).
 *
 * How
 *   The ping-pong tasks first await a start promise, so neither runs
 *   ahead alone; the clock runs on the main thread from resolving it to
 *   br_await() on both tasks returning. A storm's tasks count down to a
 *   promise the main thread awaits.
 *
 *   Peers: peers/handoff_go.go (unbuffered channels with GOMAXPROCS=2,
 *   free and with each goroutine locked to its own thread; idle and
 *   light; the same storm of goroutines) and peers/handoff_pthread.c
 *   (mutex+condvar and eventfd round trips between threads pinned to CPUs
 *   0 and 1; a condvar hand-off every millisecond).
 *
 * Output: one JSON line per figure (two for the storms).
 */
#include <stdatomic.h>

#include "braid.h"
#include "bench.h"
#include "duel.h"

static br_runtime *rt;

static void check(int err, const char *what)
{
	if (err < 0)
		bench_die("handoff: %s: %s", what, br_strerror(err));
}

static void sleep_until(int64_t t)
{
	struct timespec ts = { .tv_sec = t / 1000000000,
			       .tv_nsec = t % 1000000000 };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL))
		;
}

/* ---- ping-pong through promises ---- */

static double promise_pingpong(long n)
{
	struct duel d = { .rounds = n, .ping = duel_promise() };

	return (double)duel_run(rt, &d, duel_pinger, 0, duel_ponger, 1) /
	       (double)n;
}

static double thread_pingpong(long n)
{
	struct duel d = { .rounds = n };
	br_future *b;
	int64_t t0, t1;

	d.ping = duel_promise();
	d.start = br_promise_new();
	b = br_spawn(rt, duel_ponger, &d);
	t0 = bench_now_ns();
	check(br_promise_resolve(d.start, NULL), "resolve start");
	duel_ping(&d);
	check(br_await(b, NULL), "task B");
	t1 = bench_now_ns();
	br_future_release(b);
	br_future_release(d.start);
	return (double)(t1 - t0) / (double)n;
}

/* ---- idle and light load ---- */

/* Settle after start-up, then return the process's CPU time. */
static int64_t window_open(int64_t *wall)
{
	sleep_until(bench_now_ns() + 200000000);
	*wall = bench_now_ns();
	return bench_cpu_ns();
}

static double idle(long ms)
{
	int64_t wall, cpu = window_open(&wall);

	sleep_until(wall + ms * 1000000);
	/* CPU ns per wall ns = CPU ms per wall s, times 1000. */
	return (double)(bench_cpu_ns() - cpu) * 1000.0 /
	       (double)(bench_now_ns() - wall);
}

struct ticks {
	br_future **ps; /* one promise per tick, two references each */
	long n;
};

static void *tick_awaiter(void *arg)
{
	struct ticks *k = arg;

	for (long i = 0; i < k->n; i++) {
		check(br_await(k->ps[i], NULL), "await tick");
		br_future_release(k->ps[i]);
	}
	return NULL;
}

static void *tick_sleeper(void *arg)
{
	long n = *(long *)arg;

	for (long i = 0; i < n; i++)
		check(br_sleep_ms(1), "br_sleep_ms");
	return NULL;
}

static double light(long ms, int timer)
{
	struct ticks k = { .n = ms };
	br_future *t;
	int64_t wall, cpu, end;

	if (!timer) {
		k.ps = malloc((size_t)ms * sizeof(*k.ps));
		if (!k.ps)
			bench_die("handoff: out of memory");
		for (long i = 0; i < ms; i++)
			k.ps[i] = duel_promise();
	}
	cpu = window_open(&wall);
	if (timer) {
		t = br_spawn(rt, tick_sleeper, &k.n);
	} else {
		t = br_spawn(rt, tick_awaiter, &k);
		for (long i = 0; i < ms; i++) {
			sleep_until(wall + (i + 1) * 1000000);
			check(br_promise_resolve(k.ps[i], NULL), "resolve");
			br_future_release(k.ps[i]);
		}
	}
	check(br_await(t, NULL), "ticking task");
	end = bench_now_ns();
	br_future_release(t);
	free(k.ps);
	return (double)(bench_cpu_ns() - cpu) * 100.0 / (double)(end - wall);
}

/* ---- spawn storm ---- */

static int64_t *spawned_at; /* written before each br_spawn */
static int64_t *waited;	    /* written by each task, once */
static atomic_long left;
static br_future *all_ran;
static long storm_n;

static void *stormer(void *arg)
{
	long i = (long)(intptr_t)arg;

	waited[i] = bench_now_ns() - spawned_at[i];
	if (atomic_fetch_sub_explicit(&left, 1, memory_order_acq_rel) == 1) {
		check(br_promise_resolve(all_ran, NULL), "resolve all_ran");
		br_future_release(all_ran); /* the resolver's reference */
	}
	return NULL;
}

static void spawn_all(void)
{
	for (long i = 0; i < storm_n; i++) {
		spawned_at[i] = bench_now_ns();
		br_future_release(br_spawn(rt, stormer, (void *)(intptr_t)i));
	}
}

static void *storm_spawner(void *arg)
{
	spawn_all();
	return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* Fills out[0] with the longest wait, out[1] with the 99.9th percentile,
 * both in us. */
static void storm(long n, int from_thread, double out[2])
{
	br_future *s = NULL;

	storm_n = n;
	spawned_at = malloc((size_t)n * sizeof(*spawned_at));
	waited = malloc((size_t)n * sizeof(*waited));
	if (!spawned_at || !waited)
		bench_die("handoff: out of memory");
	atomic_store(&left, n);
	all_ran = duel_promise();
	if (from_thread)
		spawn_all();
	else
		s = br_spawn(rt, storm_spawner, NULL);
	check(br_await(all_ran, NULL), "await the storm");
	br_future_release(all_ran);
	if (s) {
		check(br_await(s, NULL), "spawner");
		br_future_release(s);
	}
	qsort(waited, (size_t)n, sizeof(*waited), cmp_i64);
	out[0] = (double)waited[n - 1] / 1000.0;
	out[1] = (double)waited[(size_t)((double)(n - 1) * 0.999)] / 1000.0;
	free(spawned_at);
	free(waited);
}

int main(int argc, char **argv)
{
	struct bench_opts o = { .n = 0, .workers = 2, .ms = 5000 };
	br_config cfg = { 0 };
	const char *m;
	double v, st[2];
	long n = 0;
	int err;

	bench_parse(&o, argc, argv,
		    "--mode promise|thread|idle|light|light-timer|storm|"
		    "storm-thread [--workers N] [--n N] [--ms MS]");
	m = o.mode;
	if (!m)
		bench_die("handoff: --mode is required (see --help)");
	cfg.workers = o.workers;
	err = br_runtime_new(&rt, &cfg);
	if (err < 0)
		bench_die("br_runtime_new: %s", br_strerror(err));
	if (!strcmp(m, "promise") && br_runtime_workers(rt) < 2)
		bench_die("handoff: --mode %s needs 2 workers", m);
	if (!strcmp(m, "promise")) {
		n = o.n ? o.n : 200000;
		v = promise_pingpong(n);
	} else if (!strcmp(m, "thread")) {
		n = o.n ? o.n : 50000;
		v = thread_pingpong(n);
	} else if (!strcmp(m, "idle")) {
		n = o.ms;
		v = idle(o.ms);
	} else if (!strcmp(m, "light") || !strcmp(m, "light-timer")) {
		n = o.ms;
		v = light(o.ms, m[5] != '\0');
	} else if (!strcmp(m, "storm") || !strcmp(m, "storm-thread")) {
		char metric[32];

		n = o.n ? o.n : 1000000;
		storm(n, m[5] != '\0', st);
		snprintf(metric, sizeof(metric), "%s-max", m);
		bench_report("handoff", "braid", metric, "us", n,
			     br_runtime_workers(rt), st[0], argc, argv);
		snprintf(metric, sizeof(metric), "%s-p999", m);
		bench_report("handoff", "braid", metric, "us", n,
			     br_runtime_workers(rt), st[1], argc, argv);
		br_runtime_free(rt);
		return 0;
	} else {
		bench_die("handoff: unknown --mode %s", m);
	}
	bench_report("handoff", "braid", m,
		     !strcmp(m, "idle")	     ? "ms/s" :
		     !strncmp(m, "light", 5) ? "%" :
					       "ns",
		     n, br_runtime_workers(rt), v, argc, argv);
	br_runtime_free(rt);
	return 0;
}
