/* SPDX-License-Identifier: MIT */
/*
 * skynet.c - the skynet benchmark: a million tasks in a tree.
 *
 * What it measures
 *   The wall time to build and collapse a tree of tasks with fan-out 10:
 *   each inner node spawns 10 children and gathers their values, each of
 *   the n leaves (default 1,000,000, so 6 levels) returns its own number,
 *   and the root's value must be n(n-1)/2 = 499999500000. About 1.11
 *   million tasks are spawned, awaited and freed in all.
 *
 * How
 *   A node's number and its level go in through the void * argument as
 *   one intptr_t (number * 8 + level) and the sum comes back the same way.
 *   A runtime with --workers workers is started, one untimed warm-up tree
 *   of --warmup leaves (default 10,000) runs, then the clock runs from
 *   spawning the root on the main thread to br_await() on it returning
 *   there. The peers (bench/peers/skynet_*) build the same tree.
 *
 * Output: one JSON line, metric "wall" in ms.
 */
#include <inttypes.h>

#include "braid.h"
#include "bench.h"

#define FANOUT 10
#define MAX_LEVELS 7 /* the tree's size must fit 3 bits; 10^7 leaves */

_Static_assert(sizeof(intptr_t) >= 8, "a sum of 10^6 leaves needs 64 bits");

static br_runtime *rt;
static const intptr_t powers[MAX_LEVELS + 1] = {
	1, 10, 100, 1000, 10000, 100000, 1000000, 10000000,
};

/* A node with number num whose subtree holds 10^level leaves. */
static void *skynet(void *arg)
{
	intptr_t num = (intptr_t)arg >> 3, level = (intptr_t)arg & 7;
	br_future *kids[FANOUT];
	void *vals[FANOUT];
	intptr_t sum = 0, step;
	int i, err;

	if (level == 0)
		return (void *)num;
	step = powers[level - 1];
	for (i = 0; i < FANOUT; i++)
		kids[i] = br_spawn(rt, skynet,
				   (void *)(((num + i * step) << 3) |
					    (level - 1)));
	err = br_gather(kids, FANOUT, vals);
	if (err < 0)
		bench_die("skynet: gather: %s", br_strerror(err));
	for (i = 0; i < FANOUT; i++) {
		sum += (intptr_t)vals[i];
		br_future_release(kids[i]);
	}
	return (void *)sum;
}

/* Run a tree of 10^levels leaves from the main thread; return its sum. */
static intptr_t run(int levels)
{
	br_future *root;
	void *v;
	int err;

	root = br_spawn(rt, skynet, (void *)(intptr_t)levels);
	err = br_await(root, &v);
	if (err < 0)
		bench_die("skynet: root: %s: %s", br_strerror(err),
			  br_future_message(root));
	br_future_release(root);
	return (intptr_t)v;
}

/* log10(n) if n is a power of ten within range, else -1. */
static int levels_of(long n)
{
	int l;

	for (l = 0; l <= MAX_LEVELS; l++)
		if (powers[l] == n)
			return l;
	return -1;
}

int main(int argc, char **argv)
{
	struct bench_opts o = { .n = 1000000, .workers = 2, .warmup = 10000 };
	br_config cfg = { 0 };
	int levels, wlevels;
	intptr_t got, want;
	int64_t t0, t1;
	int err;

	bench_parse(&o, argc, argv, "[--workers N] [--n LEAVES] [--warmup N]");
	levels = levels_of(o.n);
	wlevels = o.warmup ? levels_of(o.warmup) : 0;
	if (levels < 0 || wlevels < 0 || o.workers == 0)
		bench_die("skynet: --n and --warmup must be powers of 10 "
			  "up to 10^%d, --workers at least 1",
			  MAX_LEVELS);

	cfg.workers = o.workers;
	err = br_runtime_new(&rt, &cfg);
	if (err < 0)
		bench_die("br_runtime_new: %s", br_strerror(err));

	if (o.warmup && run(wlevels) != (intptr_t)o.warmup * (o.warmup - 1) / 2)
		bench_die("skynet: wrong warm-up sum");

	t0 = br_now_ns();
	got = run(levels);
	t1 = br_now_ns();
	want = (intptr_t)o.n * (o.n - 1) / 2;
	if (got != want)
		bench_die("skynet: sum %" PRIdPTR ", want %" PRIdPTR, got,
			  want);

	bench_report("skynet", "braid", "wall", "ms", o.n,
		     br_runtime_workers(rt), (double)(t1 - t0) / 1e6, argc,
		     argv);
	br_runtime_free(rt);
	return 0;
}
