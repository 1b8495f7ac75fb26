/* SPDX-License-Identifier: MIT */
/*
 * switch.c - the cost of handing the CPU from one task to another.
 *
 * What it measures
 *   --mode yield: two tasks pinned to worker 0 call br_yield() in turn,
 *   n times in all (default 10,000,000; each task yields n / 2 times).
 *   Reported in ns per switch: wall time / n.
 *
 *   --mode pingpong: two tasks pass a token n times (default 1,000,000)
 *   through promises: in each round trip A resolves a promise that B
 *   awaits, then B resolves a promise that A awaits. A promise completes
 *   only once, so each side makes a fresh one per round and hands it over
 *   before waking the other side; a promise is resolved by a task holding
 *   its own reference, as br_promise_resolve() requires. A is pinned to
 *   worker 0 and B to worker 1 (br_spawn_on), or both to worker 0 with
 *   --workers 1. Reported in ns per round trip: wall time / n.
 *
 *   Without --mode both are measured, one line each.
 *
 * How
 *   Both tasks first await a start promise, so neither runs ahead alone.
 *   The clock runs on the main thread from resolving that promise to
 *   br_await() on both tasks returning. The Go peer (peers/switch_go.go)
 *   does runtime.Gosched() and unbuffered-channel ping-pong the same way.
 *
 * Output: JSON lines, metrics "yield" and "pingpong" in ns.
 */
#include "braid.h"
#include "bench.h"
#include "duel.h"

static br_runtime *rt;

static void check(int err, const char *what)
{
	if (err < 0)
		bench_die("switch: %s: %s", what, br_strerror(err));
}

static void *yielder(void *arg)
{
	struct duel *d = arg;
	long i;

	check(br_await(d->start, NULL), "await start");
	for (i = 0; i < d->rounds; i++)
		check(br_yield(), "yield");
	return NULL;
}

int main(int argc, char **argv)
{
	struct bench_opts o = { .n = 0, .workers = 1 };
	br_config cfg = { 0 };
	struct duel d = { 0 };
	int yield = 1, pingpong = 1, err;
	long n;
	int64_t ns;

	bench_parse(&o, argc, argv,
		    "[--mode yield|pingpong] [--workers 1|2] [--n N]");
	if (o.mode && !strcmp(o.mode, "yield"))
		pingpong = 0;
	else if (o.mode && !strcmp(o.mode, "pingpong"))
		yield = 0;
	else if (o.mode)
		bench_die("switch: --mode is yield or pingpong");
	if (o.workers == 0)
		bench_die("switch: --workers must be at least 1");

	cfg.workers = o.workers;
	err = br_runtime_new(&rt, &cfg);
	if (err < 0)
		bench_die("br_runtime_new: %s", br_strerror(err));

	if (yield) {
		n = o.n ? o.n : 10000000;
		d.rounds = n / 2;
		ns = duel_run(rt, &d, yielder, 0, yielder, 0);
		bench_report("switch", "braid", "yield", "ns", 2 * d.rounds,
			     br_runtime_workers(rt),
			     (double)ns / (double)(2 * d.rounds), argc, argv);
	}
	if (pingpong) {
		n = o.n ? o.n : 1000000;
		d.rounds = n;
		d.ping = duel_promise();
		ns = duel_run(rt, &d, duel_pinger, 0, duel_ponger,
			      o.workers > 1 ? 1 : 0);
		bench_report("switch", "braid", "pingpong", "ns", n,
			     br_runtime_workers(rt), (double)ns / (double)n,
			     argc, argv);
	}
	br_runtime_free(rt);
	return 0;
}
