/* SPDX-License-Identifier: MIT */
/*
 * asyncio_tour.c - the asyncio program people start from, in braid.
 *
 * Three independent runtimes (three event loops, as three asyncio loops
 * in three threads would be), each running a group of tasks. A task
 * sleeps for its delay and returns "Awaited"; with a negative delay the
 * sleep returns at once (as asyncio.sleep(-1) does) and it returns "Get
 * to the past". The program awaits a single task, gathers the first group
 * (results in argument order), walks the second with as_completed from
 * inside a task (completion order: the negative sleeps first) under a
 * deadline scope (asyncio's `async with asyncio.timeout(5)`), gathers
 * the third, and frees everything. All groups run at the same time, so
 * the whole tour takes about one 300 ms sleep.
 */
#include <braid.h>
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define NTASKS 6

static const int64_t delays[NTASKS] = { 300, -1, 300, -5, 300, -1 };

static void *coro(void *arg)
{
	int64_t ms = (int64_t)(intptr_t)arg;
	int ret = br_sleep_ms(ms);

	if (ret < 0)
		return br_fail(ret, "sleep interrupted");
	/* The value is a void *; the strings are never written through. */
	return (void *)(uintptr_t)(ms < 0 ? "Get to the past" : "Awaited");
}

static void spawn_group(br_runtime *rt, br_future **fs)
{
	int i;

	for (i = 0; i < NTASKS; i++)
		fs[i] = br_spawn(rt, coro, (void *)(intptr_t)delays[i]);
}

static void release_group(br_future **fs)
{
	int i;

	for (i = 0; i < NTASKS; i++)
		br_future_release(fs[i]);
}

/* What the walker saw, printed by main once the walker is done so that
 * the lines do not interleave with the others. */
static char walk_log[1024];

/* Runs as a task on the second runtime: as_completed suspends the task,
 * not the thread. */
static void *walk_as_completed(void *arg)
{
	br_future **fs = arg;
	br_as_completed *it = br_as_completed_new(fs, NTASKS);
	int64_t t0 = br_now_ns();
	br_deadline scope;
	br_future *f;
	size_t used = 0;
	int r;

	if (!it)
		return br_fail(-ENOMEM, "as_completed: out of memory");
	/* async with asyncio.timeout(5): every wait below ends with
	 * -ETIMEDOUT if the walk is not over in 5 s. */
	br_deadline_enter(&scope, 5000);
	while ((r = br_as_completed_next_ex(it, &f)) == 0) {
		void *v;

		br_await(f, &v); /* already complete: returns at once */
		used += (size_t)snprintf(
			walk_log + used, sizeof(walk_log) - used,
			"  +%3lld ms on runtime 2, worker %d: %s\n",
			(long long)((br_now_ns() - t0) / 1000000),
			br_worker_id(), (const char *)v);
		if (used >= sizeof(walk_log))
			break;
	}
	br_deadline_leave(&scope);
	br_as_completed_free(it);
	/* BR_EDONE is the end; anything else stopped the walk early. */
	if (r < 0 && r != BR_EDONE)
		return br_fail(r, "as_completed: the walk was cut short");
	return NULL;
}

static void print_gather(const char *name, br_future **fs)
{
	void *vals[NTASKS];
	int ret = br_gather(fs, NTASKS, vals), i;

	printf("%s: br_gather returned %d (%s)\n", name, ret, br_strerror(ret));
	for (i = 0; i < NTASKS; i++)
		printf("  [%d] delay %4lld ms -> %s\n", i, (long long)delays[i],
		       (const char *)vals[i]);
}

/* The usage on stdout for --help (status 0), on stderr for a mistake
 * (status 2). */
static __attribute__((noreturn)) void usage(const char *name, int status)
{
	fprintf(status ? stderr : stdout,
		"usage: %s [--help]\n"
		"Three runtimes, each running a group of tasks: await, gather and "
		"as_completed,\nas an asyncio program would.\n",
		name);
	exit(status);
}

int main(int argc, char **argv)
{
	br_runtime *rt[3];
	br_future *g1[NTASKS], *g2[NTASKS], *g3[NTASKS], *single, *walker;
	int64_t t0 = br_now_ns();
	void *v;
	int i, ret, c;
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1)
		usage(argv[0], c == 'h' ? 0 : 2);
	if (optind < argc)
		usage(argv[0], 2);
	for (i = 0; i < 3; i++) {
		ret = br_runtime_new(&rt[i], &(br_config){ .workers = 1 });
		if (ret < 0) {
			fprintf(stderr, "br_runtime_new: %s\n",
				br_strerror(ret));
			return 1;
		}
	}
	printf("braid %s: three runtimes, one loop each\n",
	       br_version_string());

	/* Everything starts at once, on its own runtime. */
	single = br_spawn(rt[0], coro, (void *)(intptr_t)300);
	spawn_group(rt[0], g1);
	spawn_group(rt[1], g2);
	spawn_group(rt[2], g3);
	walker = br_spawn(rt[1], walk_as_completed, g2);

	ret = br_await(single, &v);
	printf("single task: %s (%d)\n", (const char *)v, ret);
	print_gather("first group", g1);
	br_await(walker, NULL);
	printf("second group, br_as_completed (completion order):\n%s",
	       walk_log);
	print_gather("third group", g3);

	br_future_release(single);
	br_future_release(walker);
	release_group(g1);
	release_group(g2);
	release_group(g3);
	for (i = 0; i < 3; i++)
		br_runtime_free(rt[i]);
	printf("all done in %lld ms (one 300 ms sleep: the groups ran "
	       "concurrently)\n",
	       (long long)((br_now_ns() - t0) / 1000000));
	return 0;
}
