/* SPDX-License-Identifier: MIT */
/*
 * duel.h - two sides passing a token through promises, for the programs
 * that time hand-offs between tasks (switch.c) and between threads
 * (handoff.c).
 *
 * Design
 *   In each round trip A resolves a promise that B awaits, then B resolves
 *   a promise that A awaits. A promise completes only once, so each side
 *   makes a fresh one per round and hands it over before waking the other
 *   side; a promise is resolved by a side holding its own reference, as
 *   br_promise_resolve() requires. Both sides first await d->start, so
 *   neither runs ahead alone; duel_run() times from resolving it to both
 *   tasks having returned.
 *
 * Concurrency
 *   ping is written by B (or by main, before the start) before B resolves
 *   pong, and read by A after it awaits pong; pong is written by A before
 *   it resolves ping and read by B after it awaits ping. The promises
 *   order the accesses.
 */
#ifndef BENCH_DUEL_H
#define BENCH_DUEL_H

#include "braid.h"
#include "bench.h"

struct duel {
	br_future *start; /* resolved by main when the clock starts */
	long rounds;	  /* round trips (or, for yielders, per task) */
	br_future *ping;  /* A resolves it, B awaits it */
	br_future *pong;  /* B resolves it, A awaits it */
};

static void duel_check(int err, const char *what)
{
	if (err < 0)
		bench_die("duel: %s: %s", what, br_strerror(err));
}

/* A promise with two references: one for its awaiter, one for its
 * resolver. */
static br_future *duel_promise(void)
{
	br_future *p = br_promise_new();

	duel_check(br_future_error(p), "br_promise_new");
	return br_future_retain(p);
}

/* Side A's rounds: from a task, or from a plain thread. */
static void duel_ping(struct duel *d)
{
	br_future *mine, *theirs;

	for (long i = 0; i < d->rounds; i++) {
		mine = duel_promise();
		d->pong = mine;
		theirs = d->ping;
		duel_check(br_promise_resolve(theirs, NULL), "resolve ping");
		br_future_release(theirs);
		duel_check(br_await(mine, NULL), "await pong");
		br_future_release(mine);
	}
}

/* Side B's rounds; d->ping must be set (duel_promise()) before. */
static void duel_pong(struct duel *d)
{
	br_future *mine = d->ping, *theirs;

	for (long i = 0; i < d->rounds; i++) {
		duel_check(br_await(mine, NULL), "await ping");
		br_future_release(mine);
		if (i + 1 < d->rounds) {
			mine = duel_promise();
			d->ping = mine;
		}
		theirs = d->pong;
		duel_check(br_promise_resolve(theirs, NULL), "resolve pong");
		br_future_release(theirs);
	}
}

/* The two sides as task bodies: each awaits the start first. */
static void *duel_pinger(void *arg)
{
	struct duel *d = arg;

	duel_check(br_await(d->start, NULL), "await start");
	duel_ping(d);
	return NULL;
}

static void *duel_ponger(void *arg)
{
	struct duel *d = arg;

	duel_check(br_await(d->start, NULL), "await start");
	duel_pong(d);
	return NULL;
}

/*
 * Run fa on worker wa and fb on worker wb of rt, both on d, from a new
 * start promise; return the wall time in ns from resolving it to both
 * having ended. Context: a plain thread.
 */
static int64_t duel_run(br_runtime *rt, struct duel *d, br_task_fn fa,
			unsigned wa, br_task_fn fb, unsigned wb)
{
	br_future *a, *b;
	int64_t t0, t1;

	d->start = br_promise_new();
	a = br_spawn_on(rt, wa, fa, d);
	b = br_spawn_on(rt, wb, fb, d);
	t0 = bench_now_ns();
	duel_check(br_promise_resolve(d->start, NULL), "resolve start");
	duel_check(br_await(a, NULL), "task A");
	duel_check(br_await(b, NULL), "task B");
	t1 = bench_now_ns();
	br_future_release(a);
	br_future_release(b);
	br_future_release(d->start);
	return t1 - t0;
}

#endif
