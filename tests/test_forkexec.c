/* SPDX-License-Identifier: MIT */
/*
 * test_forkexec.c - starting children: errors of the child's set-up and
 * exec reach the caller, the PATH search, the child's signal state, stdio
 * sources that sit on fds 0-2, and the same through br_exec from a task
 * (whose child runs on the worker's alternate stack). Each test runs the
 * clone3 path, the clone() path and the posix_spawnp fallback (under
 * ThreadSanitizer every run takes the fallback).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
#include "forkexec.h"
#include "helpers.h"

/* Every test leaves no descriptor, thread or child behind (helpers.h). */
TestSuite(forkexec, .init = t_leak_init, .fini = t_leak_fini);

/* Each way: clone3 (where built), clone() with the per-signal loop, and
 * posix_spawnp(). */
#define FOR_EACH_WAY(way)                 \
	for (int way = 0; way < 3; way++) \
		for (int once_ = (br__spawn_way = way, 1); once_; once_ = 0)

extern char **environ;

static void assert_no_children(void)
{
	cr_assert_eq(t_count_children(), 0, "a child process was left behind");
	cr_assert_eq(waitpid(-1, NULL, WNOHANG), -1);
	cr_assert_eq(errno, ECHILD);
}

/* br__spawn argv with all stdio inherited, from cwd; 0 or -errno. On
 * success the child is reaped and its wait status is in *status. */
static int run(const char *const *argv, const char *cwd, int *status)
{
	struct br__spawn_plan p = {
		.argv = argv,
		.envp = environ,
		.cwd = cwd,
		.stdio = { BR__STDIO_INHERIT, BR__STDIO_NULL, BR__STDIO_NULL },
	};
	pid_t pid = -1;
	int pidfd = -1, r = br__spawn(&p, &pid, &pidfd);

	if (r < 0) {
		cr_assert_eq(pidfd, -1);
		return r;
	}
	cr_assert_gt(pid, 0);
	*status = br__child_reap(pid, pidfd, 0);
	if (pidfd >= 0)
		close(pidfd);
	return 0;
}

/* A directory with an executable script `yes-prog` (exit 0) and a file
 * `no-prog` without execute permission; path gets its name. */
static void make_progs(char *dir, size_t len)
{
	char f[256];
	int fd;

	snprintf(dir, len, "/tmp/braid-forkexec-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(f, sizeof(f), "%s/yes-prog", dir);
	fd = open(f, O_WRONLY | O_CREAT | O_CLOEXEC, 0755);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, "#!/bin/sh\nexit 0\n", 17), 17);
	close(fd);
	snprintf(f, sizeof(f), "%s/no-prog", dir);
	fd = open(f, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, "#!/bin/sh\nexit 0\n", 17), 17);
	close(fd);
}

static void remove_progs(const char *dir)
{
	char f[256];

	snprintf(f, sizeof(f), "%s/yes-prog", dir);
	unlink(f);
	snprintf(f, sizeof(f), "%s/no-prog", dir);
	unlink(f);
	rmdir(dir);
}

Test(forkexec, exec_and_setup_failures_reach_the_caller, .timeout = 30)
{
	FOR_EACH_WAY(way)
	{
		const char *missing[] = { "/nonexistent/braid-prog", NULL };
		const char *dir[] = { "/", NULL };
		const char *tru[] = { "/bin/true", NULL };
		const char *fals[] = { "/bin/false", NULL };
		int fds = t_count_fds(), st = -1;

		cr_assert_eq(run(missing, NULL, &st), -ENOENT, "way %d", way);
		cr_assert_eq(run(dir, NULL, &st), -EACCES);
		cr_assert_eq(run(tru, "/nonexistent-braid-dir", &st), -ENOENT);
		cr_assert_eq(run(tru, "/", &st), 0);
		cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
		/* An exit of 127 by the program itself is not an exec error. */
		cr_assert_eq(run(fals, NULL, &st), 0);
		cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1);
		t_assert_no_leaked_fds(fds);
		assert_no_children();
	}
}

Test(forkexec, path_search_skips_missing_entries_and_reports_eacces,
     .timeout = 30)
{
	char dir[64], path[256];
	const char *yes[] = { "yes-prog", NULL };
	const char *no[] = { "no-prog", NULL };
	const char *none[] = { "braid-no-such-prog", NULL };
	int st;

	make_progs(dir, sizeof(dir));
	FOR_EACH_WAY(way)
	{
		snprintf(path, sizeof(path), "/nonexistent::/etc/passwd:%s",
			 dir);
		cr_assert_eq(setenv("PATH", path, 1), 0);
		st = -1;
		cr_assert_eq(run(yes, NULL, &st), 0, "way %d", way);
		cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
		/* Found but not executable, and nowhere else: EACCES. */
		cr_assert_eq(run(no, NULL, &st), -EACCES);
		cr_assert_eq(run(none, NULL, &st), -ENOENT);
		/* An empty entry is the working directory. */
		cr_assert_eq(setenv("PATH", "/nonexistent:", 1), 0);
		cr_assert_eq(run(yes, dir, &st), 0);
		cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	remove_progs(dir);
	assert_no_children();
}

static volatile sig_atomic_t handled;

static void on_usr1(int sig)
{
	handled = sig;
}

/* The mask of `field` (SigBlk, SigIgn, SigCgt) in the status text s. */
static unsigned long long status_mask(const char *s, const char *field)
{
	const char *p = strstr(s, field);

	cr_assert_not_null(p, "no %s in:\n%s", field, s);
	return strtoull(p + strlen(field) + 1, NULL, 16);
}

static unsigned long long bit(int sig)
{
	return 1ull << (sig - 1);
}

Test(forkexec, the_child_starts_with_exec_signal_state, .timeout = 30)
{
	struct sigaction sa = { .sa_handler = on_usr1 };
	sigset_t block;
	br_runtime *rt = t_runtime(1, 0);

	/* Caught, ignored, blocked: the child's view of each must be what
	 * exec gives, plus SIGPIPE at its default. */
	sigemptyset(&sa.sa_mask);
	cr_assert_eq(sigaction(SIGUSR1, &sa, NULL), 0);
	signal(SIGUSR2, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	cr_assert_eq(pthread_sigmask(SIG_BLOCK, &block, NULL), 0);
	FOR_EACH_WAY(way)
	{
		const char *cat[] = { "cat", "/proc/self/status", NULL };
		br_exec_opts o = { .stdout_mode = BR_EXEC_CAPTURE };
		br_future *f = br_exec(rt, cat, &o);
		unsigned long long blk, ign, cgt;
		char *s;
		size_t len;
		const char *out;

		t_await_value(f);
		cr_assert_eq(br_exec_exit_code(f), 0);
		out = br_future_bytes(f, &len);
		s = strndup(out, len);
		blk = status_mask(s, "SigBlk:");
		ign = status_mask(s, "SigIgn:");
		cgt = status_mask(s, "SigCgt:");
		cr_assert_eq(blk, 0, "way %d: blocked %llx", way, blk);
		cr_assert(ign & bit(SIGUSR2), "way %d: %llx", way, ign);
		cr_assert_not(ign & bit(SIGPIPE), "way %d: %llx", way, ign);
		cr_assert_not(cgt & bit(SIGUSR1), "way %d: %llx", way, cgt);
		free(s);
		br_future_release(f);
	}
	/* Our own state is as we left it. */
	cr_assert_eq(sigaction(SIGUSR1, NULL, &sa), 0);
	cr_assert_eq(sa.sa_handler, on_usr1);
	cr_assert_eq(raise(SIGUSR1), 0);
	cr_assert_eq(handled, SIGUSR1);
	br_runtime_free(rt);
	assert_no_children();
}

/* Await f and assert the child exited 0 having printed want. */
static void assert_output(br_future *f, const char *want)
{
	size_t len;
	const char *out;

	t_await_value(f);
	cr_assert_eq(br_exec_exit_code(f), 0);
	out = br_future_bytes(f, &len);
	cr_assert_eq(len, strlen(want), "output: %.*s", (int)len, out);
	cr_assert_arr_eq(out, want, len);
}

Test(forkexec, stdio_sources_on_low_fds_reach_the_right_fd, .timeout = 30)
{
	int keep0 = fcntl(0, F_DUPFD_CLOEXEC, 10);
	int keep1 = fcntl(1, F_DUPFD_CLOEXEC, 10);
	br_runtime *rt = t_runtime(1, 0);

	cr_assert_geq(keep0, 0);
	cr_assert_geq(keep1, 0);
	FOR_EACH_WAY(way)
	{
		const char *cat[] = { "cat", NULL };
		const char *echo[] = { "echo", "hi", NULL };
		br_exec_opts o = { .stdout_mode = BR_EXEC_CAPTURE,
				   .stdin_data = "abc",
				   .stdin_len = 3 };
		br_exec_opts e = { .stdout_mode = BR_EXEC_CAPTURE };
		const char *sh_err[] = { "sh", "-c", "echo err >&2", NULL };
		br_exec_opts n = { .stdout_mode = BR_EXEC_NULL,
				   .stderr_mode = BR_EXEC_PIPE };
		char buf[16];
		br_future *f;

		/* stdin's socketpair takes fds 0 and 1: the child's end (1)
		 * must become its 0 before the capture pipe becomes its 1. */
		close(0);
		close(1);
		f = br_exec(rt, cat, &o);
		assert_output(f, "abc");
		br_future_release(f);
		/* The capture pipe takes 0 and 1: its write end already is
		 * the child's 1 and must survive the exec. */
		close(0);
		close(1);
		f = br_exec(rt, echo, &e);
		assert_output(f, "hi\n");
		br_future_release(f);
		/* stderr's pipe takes 0 and 1, and stdout's /dev/null goes
		 * onto 1 first: the source must move out of its way. */
		close(0);
		close(1);
		f = br_exec(rt, sh_err, &n);
		t_await_value(f);
		cr_assert_eq(br_exec_exit_code(f), 0);
		cr_assert_geq(n.stderr_fd, 0);
		memset(buf, 0, sizeof(buf));
		cr_assert_eq(read(n.stderr_fd, buf, sizeof(buf) - 1), 4,
			     "way %d: %s", way, buf);
		cr_assert_str_eq(buf, "err\n");
		close(n.stderr_fd);
		br_future_release(f);
	}
	cr_assert_eq(dup2(keep0, 0), 0);
	cr_assert_eq(dup2(keep1, 1), 1);
	close(keep0);
	close(keep1);
	br_runtime_free(rt);
	assert_no_children();
}

struct in_task {
	br_runtime *rt;
	int missing_err, cwd_err, code;
	char out[64];
};

static void *exec_in_task(void *arg)
{
	struct in_task *t = arg;
	const char *missing[] = { "braid-no-such-program-xyz", NULL };
	const char *pwd[] = { "pwd", NULL };
	br_exec_opts bad = { .cwd = "/nonexistent-braid-dir" };
	br_exec_opts o = { .stdout_mode = BR_EXEC_CAPTURE, .cwd = "/" };
	br_future *f;
	const char *out;
	size_t len;

	f = br_exec(t->rt, missing, NULL);
	t->missing_err = br_await(f, NULL);
	br_future_release(f);
	f = br_exec(t->rt, pwd, &bad);
	t->cwd_err = br_await(f, NULL);
	br_future_release(f);
	f = br_exec(t->rt, pwd, &o);
	T_REQUIRE(br_await(f, NULL) == 0);
	t->code = br_exec_exit_code(f);
	out = br_future_bytes(f, &len);
	if (len >= sizeof(t->out))
		len = sizeof(t->out) - 1;
	memcpy(t->out, out, len);
	br_future_release(f);
	return NULL;
}

Test(forkexec, a_task_gets_exec_errors_and_output, .timeout = 30)
{
	FOR_EACH_WAY(way)
	{
		br_runtime *rt = t_runtime(2, 0);
		struct in_task t = { .rt = rt };

		t_assert_task_ok(br_spawn(rt, exec_in_task, &t));
		cr_assert_eq(t.missing_err, -ENOENT, "way %d", way);
		cr_assert_eq(t.cwd_err, -ENOENT);
		cr_assert_eq(t.code, 0);
		cr_assert_str_eq(t.out, "/\n");
		br_runtime_free(rt);
		assert_no_children();
	}
}
