/* SPDX-License-Identifier: MIT */
/*
 * trace_tour.c - seeing inside the runtime: a small mixed workload run
 * with BRAID_TRACE on, its br_stats() figures, and one deliberate stall.
 *
 * The workload, on two workers:
 *   - a fork-join tree of small CPU tasks (idle workers steal them);
 *   - tasks passing a byte back and forth over a socket pair (I/O waits);
 *   - tasks that tick on a br_ticker (timers) and calls on the
 *     blocking pool;
 *   - one task that computes for 40 ms without suspending, which the
 *     stall detector reports on stderr while it runs.
 *
 * Run it, then open the file in https://ui.perfetto.dev (or
 * chrome://tracing): one track per worker with each task's run slices
 * and parks, steals as instants, and the I/O waits as async slices.
 *
 *   build/release/examples/trace_tour [trace.json]
 *
 * BRAID_TRACE, when set, wins over the argument. The trace and the stall
 * report show a task's name (br_spawn_opts.name, br_task_set_name) when
 * it has one: the ping-pong pair and the hog here. Other tasks are shown
 * by their function, named with dladdr(), which sees only exported
 * symbols: so the task functions here are not static, and the Makefile
 * links this program with -rdynamic. Otherwise they show the program and
 * an offset, for addr2line.
 */
#include <braid.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define ROUNDS 200

/* Exported, so that the trace can name them (see above). */
void *tree(void *arg);
void *echo_side(void *arg);
void *ping_side(void *arg);
void *ticking(void *arg);
void *blocking_call(void *arg);
void *hog(void *arg);
void *tour(void *arg);

void *tree(void *arg)
{
	intptr_t depth = (intptr_t)arg;
	br_future *l, *r;
	void *a, *b;

	if (depth == 0) {
		volatile unsigned x = 0;

		for (unsigned i = 0; i < 2000; i++)
			x += i * i;
		return (void *)1;
	}
	l = br_spawn(br_current_runtime(), tree, (void *)(depth - 1));
	r = br_spawn(br_current_runtime(), tree, (void *)(depth - 1));
	br_await(l, &a);
	br_await(r, &b);
	br_future_release(l);
	br_future_release(r);
	return (void *)((intptr_t)a + (intptr_t)b);
}

/* Reads a byte and sends it back, ROUNDS times. */
void *echo_side(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char c = 'x';

	for (int i = 0; i < ROUNDS; i++) {
		if (br_read(fd, &c, 1) != 1 || br_write(fd, &c, 1) != 1)
			return br_fail(-5, "echo failed");
	}
	return NULL;
}

/* Starts the exchange and waits for each byte to come back. */
void *ping_side(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char c = 'x';

	for (int i = 0; i < ROUNDS; i++) {
		if (br_write(fd, &c, 1) != 1 || br_read(fd, &c, 1) != 1)
			return br_fail(-5, "ping failed");
	}
	return NULL;
}

/* Five ticks 2 ms apart, on a grid that does not drift. */
void *ticking(void *arg)
{
	br_ticker *t;

	if (br_ticker_new(&t, 2) < 0)
		return br_fail(-12, "br_ticker_new");
	for (int i = 0; i < 5; i++)
		br_ticker_next(t);
	br_ticker_free(t);
	return arg;
}

void *blocking_call(void *arg)
{
	usleep(3000);
	return arg;
}

/* Holds its worker for 40 ms: a stall. */
void *hog(void *arg)
{
	int64_t end = br_now_ns() + 40 * 1000000;

	while (br_now_ns() < end)
		;
	return arg;
}

void *tour(void *arg)
{
	br_runtime *rt = br_current_runtime();
	br_future *fs[16];
	int sv[2], n = 0;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return br_fail(-1, "socketpair");
	fs[n++] = br_spawn(rt, tree, (void *)12);
	fs[n++] = br_spawn_ex(rt, echo_side, (void *)(intptr_t)sv[0],
			      &(br_spawn_opts){ .name = "pong" });
	fs[n++] = br_spawn_ex(rt, ping_side, (void *)(intptr_t)sv[1],
			      &(br_spawn_opts){ .name = "ping" });
	for (int i = 0; i < 4; i++)
		fs[n++] = br_spawn(rt, ticking, NULL);
	for (int i = 0; i < 3; i++)
		fs[n++] = br_spawn_blocking(rt, blocking_call, NULL);
	/* Pinned: br_gather() would otherwise run it inline on this task's
	 * fiber, and the stall would be reported under tour's name. */
	fs[n++] = br_spawn_ex(rt, hog, NULL,
			      &(br_spawn_opts){ .worker = 1,
						.flags = BR_SPAWN_PINNED,
						.name = "hog (40 ms)" });
	br_gather(fs, (size_t)n, NULL);
	for (int i = 0; i < n; i++)
		br_future_release(fs[i]);
	close(sv[0]);
	close(sv[1]);
	return NULL;
}

/* The usage on stdout for --help (status 0), on stderr for a mistake
 * (status 2). */
static __attribute__((noreturn)) void usage(const char *name, int status)
{
	fprintf(status ? stderr : stdout,
		"usage: %s [--help] [TRACE.json]\n"
		"A small mixed workload traced into TRACE.json (default "
		"trace.json; BRAID_TRACE,\nwhen set, wins), its br_stats() "
		"figures, and one reported stall.\n",
		name);
	exit(status);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = "trace.json";
	br_config cfg = { .workers = 2 };
	br_runtime_stats st = { 0 };
	br_runtime *rt;
	br_future *f;
	int err;

	while ((err = getopt_long(argc, argv, "h", opts, NULL)) != -1)
		usage(argv[0], err == 'h' ? 0 : 2);
	if (optind + 1 == argc)
		path = argv[optind];
	else if (optind < argc)
		usage(argv[0], 2);

	if (!getenv("BRAID_TRACE"))
		setenv("BRAID_TRACE", path, 1);
	path = getenv("BRAID_TRACE");
	err = br_runtime_new(&rt, &cfg);
	if (err < 0) {
		fprintf(stderr, "br_runtime_new: %s\n", br_strerror(err));
		return 1;
	}
	f = br_spawn(rt, tour, NULL);
	err = br_await(f, NULL);
	br_future_release(f);
	br_stats(rt, &st);
	printf("tasks run %llu in %llu slices; steals %llu of %llu tried; "
	       "%llu parks, %llu wake-ups\n"
	       "I/O %llu submitted, %llu completed; %llu timers; "
	       "%llu blocking calls; %llu stalls\n",
	       (unsigned long long)st.total.tasks_run,
	       (unsigned long long)st.total.slices,
	       (unsigned long long)st.total.steals_won,
	       (unsigned long long)st.total.steals_tried,
	       (unsigned long long)st.total.parks,
	       (unsigned long long)st.total.wakeups,
	       (unsigned long long)st.total.io_submitted,
	       (unsigned long long)st.total.io_completed,
	       (unsigned long long)st.total.timers_fired,
	       (unsigned long long)st.total.blocking_calls,
	       (unsigned long long)st.total.stalls);
	br_runtime_free(rt); /* writes the trace */
	printf("trace written to %s: open it in https://ui.perfetto.dev\n",
	       path);
	return err < 0 ? 1 : 0;
}
