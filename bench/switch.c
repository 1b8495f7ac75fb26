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

static br_runtime *rt;

struct duel {
	br_future *start; /* resolved by main when the clock starts */
	long rounds;	  /* per task (yield) or round trips (pingpong) */
	/*
	 * pingpong only: the promise the other side resolves next. ping is
	 * written by B (or main) before B resolves pong, and read by A after
	 * it awaits pong; pong is written by A before it resolves ping and
	 * read by B after it awaits ping. The promises order the accesses.
	 */
	br_future *ping; /* A resolves it, B awaits it */
	br_future *pong; /* B resolves it, A awaits it */
};

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

/* A promise with two references: one for its awaiter, one for its resolver. */
static br_future *promise2(void)
{
	br_future *p = br_promise_new();

	check(br_future_error(p), "br_promise_new");
	return br_future_retain(p);
}

static void *pinger(void *arg)
{
	struct duel *d = arg;
	br_future *mine, *theirs;
	long i;

	check(br_await(d->start, NULL), "await start");
	for (i = 0; i < d->rounds; i++) {
		mine = promise2();
		d->pong = mine;
		theirs = d->ping;
		check(br_promise_resolve(theirs, NULL), "resolve ping");
		br_future_release(theirs);
		check(br_await(mine, NULL), "await pong");
		br_future_release(mine);
	}
	return NULL;
}

static void *ponger(void *arg)
{
	struct duel *d = arg;
	br_future *mine = d->ping, *theirs;
	long i;

	check(br_await(d->start, NULL), "await start");
	for (i = 0; i < d->rounds; i++) {
		check(br_await(mine, NULL), "await ping");
		br_future_release(mine);
		if (i + 1 < d->rounds) {
			mine = promise2();
			d->ping = mine;
		}
		theirs = d->pong;
		check(br_promise_resolve(theirs, NULL), "resolve pong");
		br_future_release(theirs);
	}
	return NULL;
}

/*
 * Run fa on worker wa and fb on worker wb, both on d; return the wall time
 * in ns from the start signal to both having ended.
 */
static int64_t duel(struct duel *d, br_task_fn fa, unsigned wa, br_task_fn fb,
		    unsigned wb)
{
	br_future *a, *b;
	int64_t t0, t1;

	d->start = br_promise_new();
	a = br_spawn_on(rt, wa, fa, d);
	b = br_spawn_on(rt, wb, fb, d);
	t0 = br_now_ns();
	check(br_promise_resolve(d->start, NULL), "resolve start");
	check(br_await(a, NULL), "task A");
	check(br_await(b, NULL), "task B");
	t1 = br_now_ns();
	br_future_release(a);
	br_future_release(b);
	br_future_release(d->start);
	return t1 - t0;
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
		ns = duel(&d, yielder, 0, yielder, 0);
		bench_report("switch", "braid", "yield", "ns", 2 * d.rounds,
			     br_runtime_workers(rt),
			     (double)ns / (double)(2 * d.rounds), argc, argv);
	}
	if (pingpong) {
		n = o.n ? o.n : 1000000;
		d.rounds = n;
		d.ping = promise2();
		ns = duel(&d, pinger, 0, ponger, o.workers > 1 ? 1 : 0);
		bench_report("switch", "braid", "pingpong", "ns", n,
			     br_runtime_workers(rt), (double)ns / (double)n,
			     argc, argv);
	}
	br_runtime_free(rt);
	return 0;
}
