/* SPDX-License-Identifier: MIT */
/*
 * test_stack.c - task stacks (stack.c): a task may use most of its stack,
 * sizes are rounded up and have a floor, and an overflow is reported on
 * stderr (naming the overflow and the stack size) and aborts, rather than
 * corrupting memory.
 *
 * The overflow tests fork a child that overflows, capture its stderr
 * through a pipe and check how it died. The child never returns into
 * Criterion: it leaves with _exit() whatever happens.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "helpers.h"

/* Every test leaves no descriptor, thread or child behind (helpers.h). */
TestSuite(stack, .init = t_leak_init, .fini = t_leak_fini);

#define FRAME_BYTES 1024

/* Read through a volatile so the recursion cannot be bounded or folded. */
static volatile unsigned max_depth = 100000000;

/* Uses about depth * FRAME_BYTES of stack. */
__attribute__((noinline)) static unsigned long use_stack(unsigned depth)
{
	volatile unsigned char buf[FRAME_BYTES];
	unsigned long sum;

	for (unsigned i = 0; i < sizeof(buf); i += 256)
		buf[i] = (unsigned char)(depth + i);
	if (depth == 0 || depth > max_depth)
		return buf[0];
	sum = use_stack(depth - 1);
	return sum + buf[FRAME_BYTES - 256];
}

static void *use_stack_task(void *arg)
{
	return (void *)use_stack((unsigned)(uintptr_t)arg);
}

Test(stack, a_task_can_use_48_kib_of_its_default_stack, .timeout = 20.0)
{
	br_runtime *rt;
	br_future *f;

	unsetenv("BRAID_STACK_SIZE");
	rt = t_runtime(1, 0);
	f = br_spawn(rt, use_stack_task, (void *)48);
	cr_assert_eq((uintptr_t)t_await_value(f), use_stack(48));
	br_future_release(f);
	br_runtime_free(rt);
}

Test(stack, odd_stack_sizes_are_rounded_up, .timeout = 20.0)
{
	br_runtime *rt = t_runtime(1, 0);
	/* 100000 bytes is not a whole number of pages. */
	br_spawn_opts o = { .stack_size = 100000 };
	br_future *f = br_spawn_ex(rt, use_stack_task, (void *)64, &o);

	cr_assert_eq((uintptr_t)t_await_value(f), use_stack(64));
	br_future_release(f);
	br_runtime_free(rt);
}

Test(stack, tiny_stack_sizes_get_the_16_kib_floor, .timeout = 20.0)
{
	br_config cfg = { .workers = 1, .stack_size = 1 };
	br_runtime *rt = t_runtime_cfg(&cfg);
	br_spawn_opts o = { .stack_size = 1 };
	br_future *a = br_spawn(rt, use_stack_task, (void *)8);
	br_future *b = br_spawn_ex(rt, use_stack_task, (void *)8, &o);

	cr_assert_eq((uintptr_t)t_await_value(a), use_stack(8));
	cr_assert_eq((uintptr_t)t_await_value(b), use_stack(8));
	br_future_release(a);
	br_future_release(b);
	br_runtime_free(rt);
}

Test(stack, braid_stack_size_sets_the_runtime_default, .timeout = 20.0)
{
	br_runtime *rt;
	br_future *f;

	setenv("BRAID_STACK_SIZE", "524288", 1);
	rt = t_runtime(1, 0);
	f = br_spawn(rt, use_stack_task, (void *)200);
	cr_assert_eq((uintptr_t)t_await_value(f), use_stack(200));
	br_future_release(f);
	br_runtime_free(rt);
}

/* ------------------------------------------------------------------ */
/* Overflow                                                            */
/* ------------------------------------------------------------------ */

#define SMALL_STACK (16 * 1024)

enum how {
	VIA_SPAWN_EX,
	VIA_CONFIG
};

static void overflow_child(enum how how)
{
	br_config cfg = { .workers = 1, .flags = BR_CONFIG_QUIET };
	br_spawn_opts o = { .stack_size = SMALL_STACK };
	br_runtime *rt = NULL;
	br_future *f;

	if (how == VIA_CONFIG)
		cfg.stack_size = SMALL_STACK;
	if (br_runtime_new(&rt, &cfg) != 0)
		_exit(3);
	if (how == VIA_CONFIG)
		f = br_spawn(rt, use_stack_task, (void *)100000);
	else
		f = br_spawn_ex(rt, use_stack_task, (void *)100000, &o);
	br_await(f, NULL);
	/* Reaching this line means the overflow went unnoticed. */
	_exit(4);
}

struct child_result {
	int status;
	char err[8192];
};

/* Run overflow_child(how) in a child; collect its stderr and status. */
static void run_overflow_child(enum how how, struct child_result *r)
{
	int pfd[2];
	pid_t pid;
	size_t got = 0;
	int64_t deadline = br_now_ns() + 20000 * T_NS_PER_MS;

	memset(r, 0, sizeof(*r));
	cr_assert_eq(pipe(pfd), 0);
	fflush(NULL);
	pid = fork();
	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		close(pfd[0]);
		if (dup2(pfd[1], STDERR_FILENO) < 0)
			_exit(2);
		close(pfd[1]);
		overflow_child(how);
		_exit(5);
	}
	close(pfd[1]);
	for (;;) {
		struct pollfd p = { .fd = pfd[0], .events = POLLIN };
		int64_t left = (deadline - br_now_ns()) / T_NS_PER_MS;
		ssize_t n;

		if (left <= 0 || poll(&p, 1, (int)left) <= 0) {
			kill(pid, SIGKILL);
			break;
		}
		if (got >= sizeof(r->err) - 1) {
			char sink[512];

			n = read(pfd[0], sink, sizeof(sink));
		} else {
			n = read(pfd[0], r->err + got,
				 sizeof(r->err) - 1 - got);
			if (n > 0)
				got += (size_t)n;
		}
		if (n <= 0)
			break;
	}
	close(pfd[0]);
	cr_assert_eq(waitpid(pid, &r->status, 0), pid);
}

static int mentions_size(const char *s)
{
	static const char *const forms[] = { "16384", "16 KiB", "16KiB",
					     "16 kB", "16K",	"16 k" };

	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++)
		if (strstr(s, forms[i]))
			return 1;
	return 0;
}

static void assert_overflow_reported(enum how how)
{
	static struct child_result r;

	run_overflow_child(how, &r);
	cr_assert(WIFSIGNALED(r.status),
		  "the child was not killed by a signal (status %#x); "
		  "stderr: %s",
		  r.status, r.err);
	cr_assert_eq(WTERMSIG(r.status), SIGABRT,
		     "killed by signal %d, not SIGABRT; stderr: %s",
		     WTERMSIG(r.status), r.err);
	cr_assert(strstr(r.err, "overflow") != NULL,
		  "stderr does not mention the overflow: %s", r.err);
	cr_assert(mentions_size(r.err),
		  "stderr does not name the 16 KiB stack size: %s", r.err);
}

Test(stack, overflow_is_reported, .timeout = 30.0)
{
	assert_overflow_reported(VIA_SPAWN_EX);
}

Test(stack, overflow_of_a_runtime_default_stack_is_reported, .timeout = 30.0)
{
	assert_overflow_reported(VIA_CONFIG);
}
