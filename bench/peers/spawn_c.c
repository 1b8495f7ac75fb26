/* SPDX-License-Identifier: MIT */
/*
 * spawn_c.c - the spawn peer: posix_spawn() and waitpid() in a plain loop.
 *
 * --mode window: run n (default 1,000) subprocesses of /bin/true,
 * keeping 16 in flight: start 16, then each time waitpid(-1) reaps one,
 * start another. Reported in ms per spawn: wall time / n. A first,
 * untimed run of 64 (--warmup N to change it, 0 for none) warms up as
 * the braid bench does. One thread, as such a loop is usually written.
 *
 * Output: a JSON line from bench/bench.h's bench_report(), impl "c".
 * The loop is one thread whatever --workers says; the threads field
 * echoes --workers (default 2) only so that the runner pairs this line
 * with the braid run of that many workers.
 */
#define _GNU_SOURCE
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../bench.h"

#define WINDOW 16

extern char **environ;

static void start(void)
{
	static char *const argv[] = { "/bin/true", NULL };
	pid_t pid;
	int err = posix_spawn(&pid, argv[0], NULL, NULL, argv, environ);

	if (err)
		bench_die("spawn_c: posix_spawn: %s", strerror(err));
}

static void run(long n)
{
	long started = 0, done = 0;

	for (; started < n && started < WINDOW; started++)
		start();
	while (done < n) {
		int status;

		if (waitpid(-1, &status, 0) < 0) {
			if (errno == EINTR)
				continue;
			bench_die("spawn_c: waitpid: %s", strerror(errno));
		}
		if (!WIFEXITED(status) || WEXITSTATUS(status))
			bench_die("spawn_c: /bin/true status %#x", status);
		done++;
		if (started < n) {
			start();
			started++;
		}
	}
}

int main(int argc, char **argv)
{
	struct bench_opts o = {
		.n = 1000, .workers = 2, .mode = "window", .warmup = 64
	};
	int64_t t0, t1;

	bench_parse(&o, argc, argv, "[--n N] [--warmup N] [--workers N]");
	if (strcmp(o.mode, "window"))
		bench_die("spawn_c: --mode is window");
	if (o.warmup)
		run(o.warmup);
	t0 = bench_now_ns();
	run(o.n);
	t1 = bench_now_ns();
	bench_report("spawn", "c", o.mode, "ms", o.n, o.workers,
		     (double)(t1 - t0) / 1e6 / (double)o.n, argc, argv);
	return 0;
}
