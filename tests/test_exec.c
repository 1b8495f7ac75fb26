/* SPDX-License-Identifier: MIT */
/*
 * test_exec.c - subprocesses: exit codes and signals, errors, stdin
 * feeding and output capture (up to 100 MiB), timeouts, cancellation, the
 * environment and working directory, many children at once, and that no
 * child outlives its future; process groups killed whole, output kept
 * past a time limit, max_output, pass_fds and a clean environment. Each
 * test runs with io_uring (when the kernel has it) and with the readiness
 * fallback.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "forkexec.h"
#include "helpers.h"

/* Every test leaves no descriptor, thread or child behind (helpers.h). */
TestSuite(exec, .init = t_leak_init, .fini = t_leak_fini);

/* No child is left, alive or zombie, and none is waitable. */
static void assert_no_children(void)
{
	cr_assert_eq(t_count_children(), 0, "a child process was left behind");
	cr_assert_eq(waitpid(-1, NULL, WNOHANG), -1);
	cr_assert_eq(errno, ECHILD);
}

static const char *const *sh(const char *script)
{
	static const char *argv[4];

	argv[0] = "sh";
	argv[1] = "-c";
	argv[2] = script;
	argv[3] = NULL;
	return argv;
}

/* For scripts that redirect to fds above 9, which dash does not take. */
static const char *const *bash(const char *script)
{
	static const char *argv[4];

	argv[0] = "bash";
	argv[1] = "-c";
	argv[2] = script;
	argv[3] = NULL;
	return argv;
}

/* Await f, assert it ended DONE, and return its exit code. */
static int exit_code(br_future *f)
{
	t_await_value(f);
	return br_exec_exit_code(f);
}

/* Await f, assert that the child exited 0 and printed exactly want. */
static void assert_output(br_future *f, const char *want)
{
	size_t len;
	const char *out;

	cr_assert_eq(exit_code(f), 0);
	out = br_future_bytes(f, &len);
	cr_assert_eq(len, strlen(want), "output: %.*s", (int)len, out);
	if (len)
		cr_assert_arr_eq(out, want, len);
}

Test(exec, exit_codes_and_signals_are_reported, .timeout = 30)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(2, flags);
		br_future *f;
		int code, signo;

		f = br_exec(rt, sh("exit 0"), NULL);
		cr_assert_eq(exit_code(f), 0);
		br_future_release(f);

		f = br_exec(rt, sh("exit 3"), NULL);
		cr_assert_eq(exit_code(f), 3);
		cr_assert_eq(br_exec_status(f, &code, &signo), 0);
		cr_assert_eq(code, 3);
		cr_assert_eq(signo, 0);
		br_future_release(f);

		f = br_exec(rt, sh("kill -9 $$"), NULL);
		cr_assert_eq(exit_code(f), 128 + 9);
		cr_assert_eq(br_exec_status(f, &code, &signo), 0);
		cr_assert_eq(code, -1);
		cr_assert_eq(signo, SIGKILL);
		br_future_release(f);

		br_runtime_free(rt);
		assert_no_children();
	}
}

Test(exec, bad_input_and_missing_programs_fail_the_future, .timeout = 30)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(1, flags);
		const char *missing[] = { "braid-no-such-program-xyz", NULL };
		const char *empty[] = { NULL };
		const char *cat[] = { "cat", NULL };
		br_exec_opts o = { .stdout_mode = 7 };
		br_future *f;
		int fds = t_count_fds();

		f = br_exec(rt, missing, NULL);
		cr_assert_eq(br_future_state(f), BR_FAILED);
		cr_assert_eq(br_await(f, NULL), -ENOENT);
		br_future_release(f);

		f = br_exec(rt, NULL, NULL);
		cr_assert_eq(br_await(f, NULL), -EINVAL);
		br_future_release(f);
		f = br_exec(rt, empty, NULL);
		cr_assert_eq(br_await(f, NULL), -EINVAL);
		br_future_release(f);
		f = br_exec(rt, cat, &o);
		cr_assert_eq(br_await(f, NULL), -EINVAL);
		cr_assert_eq(o.stdout_fd, -1);
		br_future_release(f);
		o = (br_exec_opts){ .stdin_data = "x",
				    .stdin_len = 1,
				    .stdin_mode = BR_EXEC_PIPE };
		f = br_exec(rt, cat, &o);
		cr_assert_eq(br_await(f, NULL), -EINVAL);
		br_future_release(f);
		f = br_exec(NULL, cat, NULL);
		cr_assert_eq(br_await(f, NULL), BR_EBADOBJ);
		cr_assert_eq(br_exec_exit_code(f), BR_EBADOBJ);
		br_future_release(f);
		cr_assert_eq(br_exec_exit_code(NULL), BR_EBADOBJ);

		t_assert_no_leaked_fds(fds);
		br_runtime_free(rt);
		assert_no_children();
	}
}

Test(exec, stdin_data_is_fed_and_stdout_captured, .timeout = 30)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(2, flags);
		const char *cat[] = { "cat", NULL };
		br_exec_opts o = { .stdout_mode = BR_EXEC_CAPTURE,
				   .stdin_data = "hello, child\n",
				   .stdin_len = 13 };
		br_future *f = br_exec(rt, cat, &o);

		assert_output(f, "hello, child\n");
		br_future_release(f);

		/* Empty input: the child sees end of file at once. */
		o = (br_exec_opts){ .stdout_mode = BR_EXEC_CAPTURE,
				    .stdin_data = "" };
		f = br_exec(rt, cat, &o);
		assert_output(f, "");
		br_future_release(f);

		/* A child that never reads its input still completes. */
		o = (br_exec_opts){ .stdin_data = "ignored", .stdin_len = 7 };
		f = br_exec(rt, sh("exit 5"), &o);
		cr_assert_eq(exit_code(f), 5);
		br_future_release(f);

		br_runtime_free(rt);
		assert_no_children();
	}
}

/* The child exits while this task keeps its worker, so the watcher finds
 * it gone at once and cancels the stdin feeder before it ever ran. */
static void *exit_before_the_feeder_starts(void *arg)
{
	br_exec_opts o = { .stdin_data = "ignored", .stdin_len = 7 };
	int p[2], pass[1], code = -1;
	br_future *f;
	char c;

	T_REQUIRE(pipe2(p, O_CLOEXEC) == 0);
	pass[0] = p[1];
	o.pass_fds = pass;
	o.npass_fds = 1;
	f = br_exec(br_current_runtime(), sh("exit 5"), &o);
	close(p[1]);
	/* A plain read, which keeps the worker here: end of file once the
	 * child, which held the pipe's other end, has exited. */
	T_REQUIRE(read(p[0], &c, 1) == 0);
	close(p[0]);
	T_REQUIRE(br_await(f, NULL) == 0);
	T_REQUIRE(br_exec_status(f, &code, NULL) == 0 && code == 5);
	br_future_release(f);
	return NULL;
}

/* The stdin socket of a child that exits before its feeder task starts
 * was never closed (the suite's leak check names it). */
Test(exec, stdin_of_a_child_gone_before_its_feeder_started_is_closed,
     .timeout = 30)
{
	FOR_EACH_MODE(flags)
	{
		int fds = t_count_fds();
		br_runtime *rt = t_runtime(1, flags);

		t_assert_task_ok(
			br_spawn(rt, exit_before_the_feeder_starts, NULL));
		br_runtime_free(rt);
		cr_assert_eq(t_count_fds(), fds, "a descriptor was left open");
		assert_no_children();
	}
}

Test(exec, stderr_capture_joins_stdout_in_order, .timeout = 30)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(1, flags);
		br_exec_opts o = { .stdout_mode = BR_EXEC_CAPTURE,
				   .stderr_mode = BR_EXEC_CAPTURE };
		br_future *f = br_exec(
			rt, sh("echo out1; echo err >&2; echo out2"), &o);

		assert_output(f, "out1\nerr\nout2\n");
		br_future_release(f);

		/* stderr alone, stdout to /dev/null. */
		o = (br_exec_opts){ .stdout_mode = BR_EXEC_NULL,
				    .stderr_mode = BR_EXEC_CAPTURE };
		f = br_exec(rt, sh("echo out; echo err >&2"), &o);
		assert_output(f, "err\n");
		br_future_release(f);

		br_runtime_free(rt);
		assert_no_children();
	}
}

Test(exec, large_output_is_captured_without_deadlock, .timeout = 60)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(2, flags);
		const char *head[] = { "head", "-c", "104857600", "/dev/zero",
				       NULL };
		br_exec_opts o = { .stdout_mode = BR_EXEC_CAPTURE };
		br_future *f = br_exec(rt, head, &o);
		const unsigned char *out;
		size_t len, i;

		cr_assert_eq(exit_code(f), 0);
		out = br_future_bytes(f, &len);
		cr_assert_eq(len, (size_t)100 << 20);
		for (i = 0; i < len; i += 4096)
			cr_assert_eq(out[i], 0);
		br_future_release(f);
		br_runtime_free(rt);
		assert_no_children();
	}
}

Test(exec, large_input_and_output_flow_together, .timeout = 60)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(2, flags);
		const char *cat[] = { "cat", NULL };
		size_t n = (size_t)16 << 20, len, i;
		unsigned char *in = malloc(n);
		const unsigned char *out;
		br_exec_opts o = { .stdout_mode = BR_EXEC_CAPTURE };
		br_future *f;

		cr_assert_not_null(in);
		for (i = 0; i < n; i++)
			in[i] = (unsigned char)(i * 131 + (i >> 12));
		o.stdin_data = in;
		o.stdin_len = n;
		/* cat writes as it reads: with pipes of 64 KiB either side,
		 * feeding and capturing must overlap or both stall. */
		f = br_exec(rt, cat, &o);
		cr_assert_eq(exit_code(f), 0);
		out = br_future_bytes(f, &len);
		cr_assert_eq(len, n);
		cr_assert(memcmp(out, in, n) == 0);
		br_future_release(f);
		free(in);
		br_runtime_free(rt);
		assert_no_children();
	}
}

Test(exec, timeout_kills_the_child, .timeout = 30)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(1, flags);
		const char *sleeper[] = { "sleep", "10", NULL };
		br_exec_opts o = { .timeout_ms = 100 };
		int64_t start = br_now_ns();
		br_future *f = br_exec(rt, sleeper, &o);

		cr_assert_eq(br_await(f, NULL), -ETIMEDOUT);
		cr_assert_eq(br_future_state(f), BR_FAILED);
		cr_assert_geq(t_elapsed_ms(start), 100);
		cr_assert_lt(t_elapsed_ms(start), 3000);
		br_future_release(f);

		/* While capturing: the deadline covers the reads too. */
		o = (br_exec_opts){ .timeout_ms = 100,
				    .stdout_mode = BR_EXEC_CAPTURE };
		start = br_now_ns();
		f = br_exec(rt, sh("echo started; exec sleep 10"), &o);
		cr_assert_eq(br_await(f, NULL), -ETIMEDOUT);
		cr_assert_lt(t_elapsed_ms(start), 3000);
		br_future_release(f);

		/* Output complete (stdout closed), then the exit is late: the
		 * failed future has no bytes, but br_exec_output() keeps what
		 * was captured. */
		start = br_now_ns();
		f = br_exec(rt, sh("echo partial; exec >&-; exec sleep 10"),
			    &o);
		cr_assert_eq(br_await(f, NULL), -ETIMEDOUT);
		cr_assert_null(br_future_bytes(f, NULL));
		{
			size_t len;
			const char *out = br_exec_output(f, &len);

			cr_assert_eq(len, 8);
			cr_assert_arr_eq(out, "partial\n", 8);
		}
		cr_assert_lt(t_elapsed_ms(start), 3000);
		br_future_release(f);

		br_runtime_free(rt);
		assert_no_children();
	}
}

Test(exec, cancel_kills_and_reaps_the_child, .timeout = 30)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(2, flags);
		const char *sleeper[] = { "sleep", "10", NULL };
		br_exec_opts o = { .stdout_mode = BR_EXEC_CAPTURE };
		int64_t start = br_now_ns();
		br_future *f = br_exec(rt, sleeper, NULL);
		br_future *g = br_exec(rt, sh("exec sleep 10"), &o);

		cr_assert_eq(t_count_children(), 2);
		br_sleep_ms(50);
		cr_assert_eq(br_cancel(f), 0);
		cr_assert_eq(br_cancel(g), 0);
		cr_assert_eq(br_await(f, NULL), -ECANCELED);
		cr_assert_eq(br_await(g, NULL), -ECANCELED);
		cr_assert_eq(br_future_state(f), BR_CANCELLED);
		cr_assert_eq(br_future_state(g), BR_CANCELLED);
		cr_assert_lt(t_elapsed_ms(start), 3000);
		/* Reaped by the time the future completed. */
		assert_no_children();
		br_future_release(f);
		br_future_release(g);
		br_runtime_free(rt);
	}
}

Test(exec, closing_the_runtime_reaps_running_children, .timeout = 30)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(1, flags);
		const char *sleeper[] = { "sleep", "10", NULL };
		br_future *f = br_exec(rt, sleeper, NULL);
		int64_t start = br_now_ns();

		br_sleep_ms(20);
		br_runtime_free(rt);
		cr_assert_neq(br_future_state(f), BR_PENDING);
		cr_assert_neq(br_future_state(f), BR_DONE);
		cr_assert_lt(t_elapsed_ms(start), 3000);
		br_future_release(f);
		assert_no_children();
	}
}

/*
 * With SIGCHLD ignored the kernel reaps children itself, racing our
 * waitid: either we saw the real status, or the future says -ECHILD;
 * never an exit status nobody saw.
 */
Test(exec, a_child_reaped_elsewhere_never_reports_a_made_up_status,
     .timeout = 30)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(1, flags);
		br_future *f;
		int err;

		signal(SIGCHLD, SIG_IGN);
		f = br_exec(rt, sh("exit 7"), NULL);
		err = br_await(f, NULL);
		cr_assert(err == 0 || err == -ECHILD, "%d", err);
		cr_assert_eq(br_exec_exit_code(f), err ? -ECHILD : 7);
		br_future_release(f);
		signal(SIGCHLD, SIG_DFL);
		br_runtime_free(rt);
		assert_no_children();
	}
}

Test(exec, env_and_cwd_options_reach_the_child, .timeout = 30)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(1, flags);
		const char *env[] = { "FOO=bar baz", "PATH=/usr/bin:/bin",
				      NULL };
		br_exec_opts o = { .stdout_mode = BR_EXEC_CAPTURE,
				   .envp = env,
				   .cwd = "/" };
		br_future *f = br_exec(rt, sh("echo \"$FOO\"; pwd"), &o);

		assert_output(f, "bar baz\n/\n");
		br_future_release(f);

		/* A missing directory fails the spawn. */
		o.cwd = "/braid-no-such-dir";
		f = br_exec(rt, sh("pwd"), &o);
		cr_assert_eq(br_await(f, NULL), -ENOENT);
		br_future_release(f);

		br_runtime_free(rt);
		assert_no_children();
	}
}

Test(exec, pipe_mode_hands_the_parent_ends_to_the_caller, .timeout = 30)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(1, flags);
		const char *tr[] = { "tr", "a-z", "A-Z", NULL };
		br_exec_opts o = { .stdin_mode = BR_EXEC_PIPE,
				   .stdout_mode = BR_EXEC_PIPE,
				   .stderr_mode = BR_EXEC_NULL };
		int fds = t_count_fds();
		br_future *f = br_exec(rt, tr, &o);
		char buf[16];
		ssize_t n, got = 0;

		cr_assert_geq(o.stdin_fd, 0);
		cr_assert_geq(o.stdout_fd, 0);
		cr_assert_eq(o.stderr_fd, -1);
		cr_assert(fcntl(o.stdin_fd, F_GETFD) & FD_CLOEXEC);
		cr_assert(fcntl(o.stdout_fd, F_GETFD) & FD_CLOEXEC);
		cr_assert_eq(br_send_all(o.stdin_fd, "shout", 5, MSG_NOSIGNAL),
			     5);
		close(o.stdin_fd);
		while ((n = br_read(o.stdout_fd, buf + got,
				    sizeof(buf) - (size_t)got)) > 0)
			got += n;
		cr_assert_eq(got, 5);
		cr_assert_arr_eq(buf, "SHOUT", 5);
		close(o.stdout_fd);
		cr_assert_eq(exit_code(f), 0);
		br_future_release(f);
		t_assert_no_leaked_fds(fds);
		br_runtime_free(rt);
		assert_no_children();
	}
}

/*
 * Mark every fd from 3 on close-on-exec: the test harness leaves some of
 * its own inheritable, and they are not braid's to close.
 */
static void cloexec_harness_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	cr_assert_not_null(d);
	while ((e = readdir(d))) {
		int fd = atoi(e->d_name), fl;

		if (fd < 3 || fd == dirfd(d))
			continue;
		fl = fcntl(fd, F_GETFD);
		if (fl >= 0)
			fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
	}
	closedir(d);
}

Test(exec, the_child_inherits_only_its_stdio, .timeout = 30)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(2, flags);
		br_exec_opts o = { .stdout_mode = BR_EXEC_CAPTURE,
				   .stdin_data = "x",
				   .stdin_len = 1 };
		br_future *f;
		const char *out;
		size_t len;

		cloexec_harness_fds();
		/* ls lists its own fds: 0, 1, 2 and the directory's. */
		f = br_exec(rt, sh("ls /proc/self/fd | wc -l"), &o);
		cr_assert_eq(exit_code(f), 0);
		out = br_future_bytes(f, &len);
		cr_assert_geq(len, 2);
		cr_assert_eq(atoi(out), 4, "child fds: %.*s", (int)len, out);
		br_future_release(f);
		br_runtime_free(rt);
		assert_no_children();
	}
}

struct from_task {
	br_runtime *rt;
	int codes[8];
};

static void *exec_in_task(void *arg)
{
	struct from_task *ft = arg;
	br_future *fs[8];
	size_t i;

	for (i = 0; i < 8; i++) {
		char script[32];

		snprintf(script, sizeof(script), "exit %zu", i);
		fs[i] = br_exec(ft->rt, sh(script), NULL);
	}
	T_REQUIRE(br_gather(fs, 8, NULL) == 0);
	for (i = 0; i < 8; i++) {
		ft->codes[i] = br_exec_exit_code(fs[i]);
		br_future_release(fs[i]);
	}
	return NULL;
}

Test(exec, many_children_in_flight_are_gathered, .timeout = 60)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(2, flags);
		const char *tru[] = { "true", NULL };
		struct from_task ft = { .rt = rt };
		br_future *fs[50];
		size_t i;

		for (i = 0; i < 50; i++)
			fs[i] = br_exec(rt, tru, NULL);
		cr_assert_eq(br_gather(fs, 50, NULL), 0);
		for (i = 0; i < 50; i++) {
			cr_assert_eq(br_exec_exit_code(fs[i]), 0);
			br_future_release(fs[i]);
		}

		/* From a task as well: br_exec there, awaited there. */
		t_assert_task_ok(br_spawn(rt, exec_in_task, &ft));
		for (i = 0; i < 8; i++)
			cr_assert_eq(ft.codes[i], (int)i);

		br_runtime_free(rt);
		assert_no_children();
	}
}

/* ------------------------------------------------------------------ */
/* Process groups, kept output, max_output, pass_fds, clean env        */
/* ------------------------------------------------------------------ */

/* Both ways of starting a child (not under TSan, which has only one). */
static const int ways[] = { BR__SPAWN_BEST, BR__SPAWN_POSIX };

/*
 * Live processes (zombies left out) whose process group is pgid, and how
 * many of them are `sleep` with parent 1 (orphans); from procfs.
 */
static int count_group(pid_t pgid, int *orphan_sleeps)
{
	DIR *d = opendir("/proc");
	struct census_proc p;
	struct dirent *e;
	int n = 0;

	if (orphan_sleeps)
		*orphan_sleeps = 0;
	cr_assert_not_null(d);
	while ((e = readdir(d))) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9' ||
		    census_stat(e->d_name, &p) != 0 || p.pgrp != pgid ||
		    p.state == 'Z')
			continue;
		n++;
		if (orphan_sleeps && p.ppid == 1 && !strcmp(p.comm, "sleep"))
			(*orphan_sleeps)++;
	}
	closedir(d);
	return n;
}

/* Wait up to 5 s for the group to empty (SIGKILL takes a moment). */
static void assert_group_gone(pid_t pgid)
{
	int64_t end = br_now_ns() + 5000 * T_NS_PER_MS;
	int n, orphans;

	while ((n = count_group(pgid, &orphans)) > 0 && br_now_ns() < end)
		usleep(10000);
	cr_assert_eq(n, 0, "%d processes left in group %d", n, (int)pgid);
	cr_assert_eq(orphans, 0, "an orphaned sleep of group %d", (int)pgid);
}

/* Read a line from fd (a plain thread: it blocks); returns its length,
 * 0 at end of file. */
static ssize_t read_line(int fd, char *buf, size_t n)
{
	size_t got = 0;

	while (got + 1 < n) {
		ssize_t r = read(fd, buf + got, 1);

		if (r <= 0)
			break;
		if (buf[got++] == '\n')
			break;
	}
	buf[got] = '\0';
	return (ssize_t)got;
}

/*
 * A shell that starts two background sleeps in its group and says so on
 * a pipe; returns the future, the group's id in *pgid. Asserts that the
 * group then holds the shell and both sleeps.
 */
static br_future *start_job(br_runtime *rt, unsigned flags, int64_t timeout,
			    pid_t *pgid)
{
	br_exec_opts o = { .stdout_mode = BR_EXEC_PIPE,
			   .flags = flags,
			   .timeout_ms = timeout };
	br_future *f =
		br_exec(rt, sh("sleep 30 & sleep 30 & echo $$; wait"), &o);
	char line[32];

	cr_assert_neq(br_future_state(f), BR_FAILED, "%s",
		      br_future_message(f));
	cr_assert_gt(read_line(o.stdout_fd, line, sizeof(line)), 0);
	close(o.stdout_fd);
	*pgid = (pid_t)atoi(line);
	cr_assert_gt(*pgid, 0);
	/* The shell leads the group: its pid is the group's id. */
	cr_assert_eq(count_group(*pgid, NULL), 3, "the shell and two sleeps");
	return f;
}

Test(exec, a_time_limit_kills_the_whole_process_group, .timeout = 60)
{
	for (size_t w = 0; w < (sizeof(ways) / sizeof(ways[0])); w++) {
		br__spawn_way = ways[w];
		FOR_EACH_MODE(flags)
		{
			br_runtime *rt = t_runtime(1, flags);
			pid_t pgid;
			/* Long enough for the shell to start its sleeps on a
			 * loaded machine: it must say so before the limit. */
			br_future *f =
				start_job(rt, BR_EXEC_NEW_PGROUP, 3000, &pgid);

			cr_assert_eq(br_await(f, NULL), -ETIMEDOUT);
			cr_assert(strstr(br_future_message(f), "group"), "%s",
				  br_future_message(f));
			assert_group_gone(pgid);
			br_future_release(f);
			br_runtime_free(rt);
			assert_no_children();
		}
	}
}

Test(exec, cancel_kills_the_whole_session, .timeout = 60)
{
	for (size_t w = 0; w < (sizeof(ways) / sizeof(ways[0])); w++) {
		br__spawn_way = ways[w];
		FOR_EACH_MODE(flags)
		{
			br_runtime *rt = t_runtime(2, flags);
			pid_t pgid;
			br_future *f =
				start_job(rt, BR_EXEC_NEW_SESSION, 0, &pgid);

			/* In a session of its own, which it leads. */
			cr_assert_eq(getsid(pgid), pgid);
			cr_assert_eq(br_cancel(f), 0);
			cr_assert_eq(br_await(f, NULL), -ECANCELED);
			assert_group_gone(pgid);
			br_future_release(f);
			br_runtime_free(rt);
			assert_no_children();
		}
	}
}

Test(exec, a_child_that_exits_leaves_its_group_alone, .timeout = 30)
{
	br_runtime *rt = t_runtime(1, 0);
	br_exec_opts o = { .flags = BR_EXEC_NEW_PGROUP,
			   .stdout_mode = BR_EXEC_CAPTURE };
	/* The background job closes stdout, so the capture ends when the
	 * shell exits; it is ended by the test, not by braid. */
	br_future *f = br_exec(rt, sh("sleep 30 >&- & echo $!"), &o);
	const char *out;
	pid_t bg;

	cr_assert_eq(exit_code(f), 0);
	out = br_future_bytes(f, NULL);
	cr_assert_not_null(out);
	bg = (pid_t)atoi(out);
	cr_assert_gt(bg, 0);
	cr_assert_eq(kill(bg, 0), 0, "the background sleep still runs");
	kill(bg, SIGKILL);
	br_future_release(f);
	br_runtime_free(rt);
}

/*
 * A shell that writes "partial\n" to its stdout (captured), then a line
 * on a pipe passed to it, then sleeps: once that line is read from *said,
 * its output is out. timeout_ms as br_exec_opts'. NULL if no pipe.
 */
static br_future *partial_then_sleep(br_runtime *rt, int64_t timeout_ms,
				     int *said)
{
	char script[128];
	int p[2], pass[1];
	br_exec_opts o;
	br_future *f;

	if (pipe2(p, O_CLOEXEC) < 0)
		return NULL;
	pass[0] = p[1];
	snprintf(script, sizeof(script),
		 "echo partial; echo x >&%d; exec sleep 30", p[1]);
	o = (br_exec_opts){ .stdout_mode = BR_EXEC_CAPTURE,
			    .timeout_ms = timeout_ms,
			    .pass_fds = pass,
			    .npass_fds = 1 };
	f = br_exec(rt, bash(script), &o);
	close(p[1]);
	*said = p[0];
	return f;
}

/*
 * From a task that keeps its worker: the child writes, and the cancel
 * comes before the task that watches the child ever started. The watcher
 * was dropped unrun then, and what the child had written was lost; it
 * now starts anyway, finds itself cancelled and drains the pipe.
 */
static void *cancel_before_the_watcher_starts(void *arg)
{
	char line[8];
	br_future *f;
	const char *out;
	size_t len;
	int said;

	f = partial_then_sleep(br_current_runtime(), 0, &said);
	T_REQUIRE(f);
	/* A plain read: the worker stays here, so the watcher waits. */
	T_REQUIRE(read_line(said, line, sizeof(line)) > 0);
	T_REQUIRE(br_cancel(f) == 0);
	T_REQUIRE(br_await(f, NULL) == -ECANCELED);
	out = br_exec_output(f, &len);
	T_REQUIRE(len == 8);
	T_REQUIRE(memcmp(out, "partial\n", 8) == 0);
	br_future_release(f);
	close(said);
	return NULL;
}

Test(exec, output_written_before_a_cancel_that_beats_the_watcher_is_kept,
     .timeout = 60)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(1, flags);

		t_assert_task_ok(
			br_spawn(rt, cancel_before_the_watcher_starts, NULL));
		br_runtime_free(rt);
		assert_no_children();
	}
}

Test(exec, output_captured_before_a_cancel_or_time_limit_is_kept, .timeout = 60)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(2, flags);
		char line[8];
		br_exec_opts o;
		br_future *f;
		const char *out;
		size_t len;
		ssize_t said;
		int rfd;

		/* The shell says on a passed pipe when its output is out:
		 * then the cancellation comes after it, for sure. */
		f = partial_then_sleep(rt, 0, &rfd);
		cr_assert_not_null(f);
		cr_assert_gt(read_line(rfd, line, sizeof(line)), 0);
		cr_assert_eq(br_cancel(f), 0);
		cr_assert_eq(br_await(f, NULL), -ECANCELED);
		out = br_exec_output(f, &len);
		cr_assert_eq(len, 8, "%zu bytes", len);
		cr_assert_arr_eq(out, "partial\n", 8);
		cr_assert_null(br_future_bytes(f, NULL));
		br_future_release(f);
		close(rfd);

		/* The same up to a time limit. */
		f = partial_then_sleep(rt, 2000, &rfd);
		cr_assert_not_null(f);
		said = read_line(rfd, line, sizeof(line));
		cr_assert_eq(br_await(f, NULL), -ETIMEDOUT);
		out = br_exec_output(f, &len);
		/* Said before the limit (nearly always): its output is kept;
		 * a machine too loaded to start the shell in 2 s: none. */
		if (said > 0) {
			cr_assert_eq(len, 8, "%zu bytes", len);
			cr_assert_arr_eq(out, "partial\n", 8);
		} else {
			cr_assert_eq(len, 0);
		}
		br_future_release(f);
		close(rfd);

		/* A DONE future's output is its bytes; a child that never
		 * started has none. */
		o = (br_exec_opts){ .stdout_mode = BR_EXEC_CAPTURE };
		f = br_exec(rt, sh("echo done"), &o);
		cr_assert_eq(exit_code(f), 0);
		cr_assert_eq(br_exec_output(f, &len), br_future_bytes(f, NULL));
		cr_assert_eq(len, 5);
		br_future_release(f);
		{
			const char *missing[] = { "braid-no-such-program-xyz",
						  NULL };

			f = br_exec(rt, missing, &o);
			cr_assert_eq(br_await(f, NULL), -ENOENT);
			cr_assert_null(br_exec_output(f, &len));
			cr_assert_eq(len, 0);
			br_future_release(f);
		}
		cr_assert_null(br_exec_output(NULL, &len));
		br_runtime_free(rt);
		assert_no_children();
	}
}

Test(exec, max_output_fails_with_emsgsize_and_keeps_the_first_bytes,
     .timeout = 60)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(1, flags);
		const char *yes[] = { "yes", NULL };
		br_exec_opts o = { .stdout_mode = BR_EXEC_CAPTURE,
				   .max_output = 1001 };
		br_future *f = br_exec(rt, yes, &o); /* endless otherwise */
		const char *out;
		size_t len;

		cr_assert_eq(br_await(f, NULL), -EMSGSIZE);
		cr_assert(strstr(br_future_message(f), "max_output"));
		out = br_exec_output(f, &len);
		cr_assert_eq(len, 1001);
		for (size_t i = 0; i < len; i++)
			cr_assert_eq(out[i], i % 2 ? '\n' : 'y', "byte %zu", i);
		br_future_release(f);

		/* Exactly max_output bytes is within it. */
		o.max_output = 3;
		f = br_exec(rt, sh("printf abc"), &o);
		assert_output(f, "abc");
		br_future_release(f);
		f = br_exec(rt, sh("printf abcd"), &o);
		cr_assert_eq(br_await(f, NULL), -EMSGSIZE);
		out = br_exec_output(f, &len);
		cr_assert_eq(len, 3);
		cr_assert_arr_eq(out, "abc", 3);
		br_future_release(f);
		br_runtime_free(rt);
		assert_no_children();
	}
}

Test(exec, pass_fds_reach_the_child_and_nothing_else_does, .timeout = 60)
{
	for (size_t w = 0; w < (sizeof(ways) / sizeof(ways[0])); w++) {
		br_runtime *rt = t_runtime(1, 0);
		int p[2], other[2], pass[1], bad[1];
		char script[160], line[16];
		br_exec_opts o;
		br_future *f;

		br__spawn_way = ways[w];
		cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
		cr_assert_eq(pipe2(other, O_CLOEXEC), 0);
		pass[0] = p[1];
		snprintf(script, sizeof(script),
			 "echo hello >&%d; { echo no >&%d; } 2>/dev/null || "
			 "echo closed",
			 p[1], other[1]);
		o = (br_exec_opts){ .stdout_mode = BR_EXEC_CAPTURE,
				    .pass_fds = pass,
				    .npass_fds = 1 };
		f = br_exec(rt, bash(script), &o);
		assert_output(f, "closed\n");
		br_future_release(f);
		close(p[1]);
		cr_assert_gt(read_line(p[0], line, sizeof(line)), 0);
		cr_assert_str_eq(line, "hello\n");
		/* Still close-on-exec here: only the child's copy changed. */
		cr_assert_eq(fcntl(pass[0], F_GETFD), -1); /* closed above */
		cr_assert_eq(fcntl(other[1], F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);

		/* Refused: stdio numbers, a closed fd, a count alone. */
		bad[0] = 1;
		o = (br_exec_opts){ .pass_fds = bad, .npass_fds = 1 };
		f = br_exec(rt, sh("true"), &o);
		cr_assert_eq(br_await(f, NULL), -EINVAL);
		br_future_release(f);
		bad[0] = p[1]; /* closed */
		f = br_exec(rt, sh("true"), &o);
		cr_assert_eq(br_await(f, NULL), -EBADF);
		br_future_release(f);
		o = (br_exec_opts){ .npass_fds = 1 };
		f = br_exec(rt, sh("true"), &o);
		cr_assert_eq(br_await(f, NULL), -EINVAL);
		br_future_release(f);
		close(p[0]);
		close(other[0]);
		close(other[1]);
		br_runtime_free(rt);
		assert_no_children();
	}
}

Test(exec, a_clean_environment_has_only_the_allowlist_and_envp, .timeout = 30)
{
	br_runtime *rt = t_runtime(1, 0);
	const char *env[] = { "env", NULL };
	const char *keep[] = { "BRAID_TEST_KEEP", "BRAID_TEST_UNSET",
			       "BRAID_TEST_OVER", NULL };
	const char *add[] = { "EXTRA=1", "BRAID_TEST_OVER=new", NULL };
	br_exec_opts o = { .stdout_mode = BR_EXEC_CAPTURE,
			   .flags = BR_EXEC_CLEAN_ENV,
			   .env_keep = keep,
			   .envp = add };
	br_future *f;

	setenv("BRAID_TEST_KEEP", "kept", 1);
	setenv("BRAID_TEST_DROP", "dropped", 1);
	setenv("BRAID_TEST_OVER", "old", 1);
	unsetenv("BRAID_TEST_UNSET");
	/* env is found in this process's PATH, which the child lacks. */
	f = br_exec(rt, env, &o);
	assert_output(f,
		      "BRAID_TEST_KEEP=kept\nEXTRA=1\nBRAID_TEST_OVER=new\n");
	br_future_release(f);
	/* Nothing kept, nothing added: an empty environment. */
	o.env_keep = NULL;
	o.envp = NULL;
	f = br_exec(rt, env, &o);
	assert_output(f, "");
	br_future_release(f);
	/* Refused: an allowlist without the flag, unknown flags. */
	o = (br_exec_opts){ .env_keep = keep };
	f = br_exec(rt, env, &o);
	cr_assert_eq(br_await(f, NULL), -EINVAL);
	br_future_release(f);
	o = (br_exec_opts){ .flags = 0x100 };
	f = br_exec(rt, env, &o);
	cr_assert_eq(br_await(f, NULL), -EINVAL);
	br_future_release(f);
	br_runtime_free(rt);
	assert_no_children();
}
