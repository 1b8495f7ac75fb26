/* SPDX-License-Identifier: MIT */
/*
 * pool_fork.c - the fork-per-job peer of bench/pool.c: --n jobs (default
 * 1,000), each the sum of 100 ints, each in a child made by fork() that
 * writes its 8-byte answer to a pipe and exits; the parent reads it and
 * reaps the child, one job at a time. Reported in us per job.
 *
 * Output: one JSON line as bench/bench.h writes them, impl "fork".
 */
#include <sys/wait.h>
#include <unistd.h>

#include "../bench.h"

int main(int argc, char **argv)
{
	struct bench_opts o = { .n = 1000, .workers = 1, .mode = "submit" };
	int32_t in[100];
	int64_t t0, sum = 0;

	bench_parse(&o, argc, argv, "[--n N]");
	for (int i = 0; i < 100; i++)
		in[i] = i;
	t0 = bench_now_ns();
	for (long j = 0; j < o.n; j++) {
		int fd[2];
		int64_t s = 0;
		pid_t pid;

		if (pipe(fd) < 0)
			bench_die("pool_fork: pipe: %s", strerror(errno));
		pid = fork();
		if (pid < 0)
			bench_die("pool_fork: fork: %s", strerror(errno));
		if (pid == 0) {
			for (int i = 0; i < 100; i++)
				s += in[i];
			if (write(fd[1], &s, sizeof(s)) != sizeof(s))
				_exit(1);
			_exit(0);
		}
		close(fd[1]);
		if (read(fd[0], &s, sizeof(s)) != sizeof(s))
			bench_die("pool_fork: short read");
		close(fd[0]);
		waitpid(pid, NULL, 0);
		sum += s;
	}
	if (sum != 4950 * o.n)
		bench_die("pool_fork: wrong sum");
	bench_report("pool", "fork", "submit", "us", o.n, 1,
		     (double)(bench_now_ns() - t0) / 1e3 / (double)o.n, argc,
		     argv);
	return 0;
}
