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
#include <stdatomic.h>
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
#include "stack_frames.h"

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

#if defined(__SANITIZE_THREAD__)
#define T_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define T_TSAN 1
#endif
#endif

struct child_result {
	int status;
	char err[8192];
};

/* Run body(arg) in a child with stderr captured; collect its stderr and
 * how it ended. The child never returns into Criterion: it leaves with
 * _exit() whatever happens. */
static void run_child(void (*body)(void *), void *arg, struct child_result *r)
{
	int pfd[2];
	pid_t pid;
	size_t got = 0;
	int64_t deadline = br_now_ns() + 20000 * T_NS_PER_MS;

#ifdef T_TSAN
	cr_skip_test("TSan does not start threads in a child forked from a "
		     "multi-threaded process, and the overflow runs in one");
#endif
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
		body(arg);
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

static void overflow_child(void *arg)
{
	enum how how = (enum how)(uintptr_t)arg;
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

static void run_overflow_child(enum how how, struct child_result *r)
{
	run_child(overflow_child, (void *)(uintptr_t)how, r);
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

/* ------------------------------------------------------------------ */
/* Large frames                                                        */
/* ------------------------------------------------------------------ */

/*
 * Two tasks on default (64 KiB) stacks of one slab, each with a pattern in
 * its frame, wait on promises. The one whose stack is higher in memory
 * (the overflower) then calls a function with one large frame, which
 * reaches below its stack towards the other (the neighbour). The overflow
 * must be reported and the process must abort before any byte of the
 * neighbour's stack changes: a SIGABRT handler checks the neighbour's
 * pattern before the process dies, and a run that goes on past the
 * overflow fails too.
 */
#define PATTERN_BYTES 2048

struct frames {
	void *(*fn)(void *); /* the large frame */
	br_future *go_overflow, *go_check;
	_Atomic uintptr_t at[2]; /* each task's pattern address */
	_Atomic int role[2];	 /* 1: overflower, 2: neighbour */
};

/* Exported (not static), so that the report can name it. */
void *frames_task(void *arg);
void *frames_task(void *arg)
{
	struct frames *c = (struct frames *)((uintptr_t)arg & ~(uintptr_t)1);
	unsigned me = (unsigned)((uintptr_t)arg & 1);
	volatile unsigned char pat[PATTERN_BYTES];

	for (unsigned i = 0; i < sizeof(pat); i++)
		pat[i] = (unsigned char)(i * 7 + 1);
	atomic_store(&c->at[me], (uintptr_t)pat);
	while (!atomic_load(&c->role[me]))
		br_sleep_ms(1);
	if (atomic_load(&c->role[me]) == 1) {
		br_await(c->go_overflow, NULL);
		return c->fn(NULL);
	}
	br_await(c->go_check, NULL);
	for (unsigned i = 0; i < sizeof(pat); i++)
		if (pat[i] != (unsigned char)(i * 7 + 1))
			_exit(6); /* the neighbour's frame was overwritten */
	return NULL;
}

static struct frames c;

/* Runs when the overflow report aborts: the neighbour must be intact. */
static void frames_on_abort(int sig)
{
	const volatile unsigned char *pat;
	static const char bad[] = "test: the neighbour's stack changed\n";

	for (unsigned k = 0; k < 2; k++) {
		if (atomic_load(&c.role[k]) != 2)
			continue;
		pat = (const volatile unsigned char *)atomic_load(&c.at[k]);
		for (unsigned i = 0; i < PATTERN_BYTES; i++)
			if (pat[i] != (unsigned char)(i * 7 + 1)) {
				if (write(STDERR_FILENO, bad, sizeof(bad) - 1))
					(void)0;
				_exit(6);
			}
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

static void frames_child(void *arg)
{
	br_config cfg = { .workers = 1, .flags = BR_CONFIG_QUIET };
	br_runtime *rt = NULL;
	br_future *t[2];
	uintptr_t lo, hi;

	memset(&c, 0, sizeof(c));
	c.fn = (void *(*)(void *))arg;
	signal(SIGABRT, frames_on_abort);
	unsetenv("BRAID_STACK_SIZE");
	if (br_runtime_new(&rt, &cfg) != 0)
		_exit(3);
	c.go_overflow = br_promise_new();
	c.go_check = br_promise_new();
	for (unsigned i = 0; i < 2; i++)
		t[i] = br_spawn(rt, frames_task, (void *)((uintptr_t)&c | i));
	while (!atomic_load(&c.at[0]) || !atomic_load(&c.at[1]))
		usleep(1000);
	lo = atomic_load(&c.at[0]);
	hi = atomic_load(&c.at[1]);
	/* Adjacent stacks of one slab: one stack and one guard apart. */
	if (hi - lo > 512 * 1024 && lo - hi > 512 * 1024)
		_exit(7);
	atomic_store(&c.role[hi > lo], 1);
	atomic_store(&c.role[hi < lo], 2);
	br_promise_resolve(c.go_overflow, NULL);
	br_await(t[hi > lo], NULL);
	br_promise_resolve(c.go_check, NULL);
	br_await(t[hi < lo], NULL);
	/* Reaching this line means the overflow went unnoticed. */
	_exit(4);
}

#if defined(__SANITIZE_ADDRESS__)
#define T_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define T_ASAN 1
#endif
#endif
#ifdef T_ASAN
void *__asan_get_current_fake_stack(void);
#endif

/* The report names the task's function, frames_task (the program is
 * linked with -rdynamic), whichever function overflowed in it. */
static void assert_frame_reported(void *(*fn)(void *))
{
	static struct child_result r;

#ifdef T_ASAN
	/* With detect_stack_use_after_return, ASan puts frames on a heap
	 * "fake stack" of its own: no frame is ever on the task's stack. */
	if (__asan_get_current_fake_stack())
		cr_skip_test("ASan's fake stacks keep frames off task stacks "
			     "(detect_stack_use_after_return)");
#endif

	run_child(frames_child, (void *)fn, &r);
	cr_assert(WIFSIGNALED(r.status),
		  "the child was not killed by a signal (%s; status %#x); "
		  "stderr: %s",
		  WIFEXITED(r.status) && WEXITSTATUS(r.status) == 6 ?
			  "the neighbour's stack was overwritten" :
		  WIFEXITED(r.status) && WEXITSTATUS(r.status) == 4 ?
			  "the overflow went unnoticed" :
		  WIFEXITED(r.status) && WEXITSTATUS(r.status) == 7 ?
			  "the two stacks were not neighbours" :
			  "other",
		  r.status, r.err);
	cr_assert_eq(WTERMSIG(r.status), SIGABRT,
		     "killed by signal %d, not SIGABRT; stderr: %s",
		     WTERMSIG(r.status), r.err);
	cr_assert(strstr(r.err, "stack overflow") != NULL,
		  "stderr does not report the overflow: %s", r.err);
	cr_assert(strstr(r.err, "frames_task") != NULL,
		  "stderr does not name the task's function: %s", r.err);
	cr_assert(strstr(r.err, "65536") != NULL,
		  "stderr does not give the 64 KiB stack size: %s", r.err);
	cr_assert(strstr(r.err, "BRAID_STACK_SIZE") != NULL,
		  "stderr does not point to BRAID_STACK_SIZE: %s", r.err);
}

/* A function built with stack-clash protection probes each page of its
 * frame from the top down, so its first touch below the stack is in the
 * guard, however large the frame. */
Test(stack, probed_72_kib_frame_on_a_64_kib_stack_is_reported, .timeout = 30.0)
{
	assert_frame_reported(t_frame_72k_probed);
}

Test(stack, probed_200_kib_frame_on_a_64_kib_stack_is_reported, .timeout = 30.0)
{
	assert_frame_reported(t_frame_200k_probed);
}

/* Without probing, a frame may store first at its lowest byte. One that
 * ends no further below the stack than the guard is long still faults in
 * the guard, before it reaches the neighbour. */
Test(stack, unprobed_72_kib_frame_stops_at_the_guard_not_the_neighbour,
     .timeout = 30.0)
{
	assert_frame_reported(t_frame_72k_plain);
}

/* An unprobed frame larger than the guard may jump it. This one's lowest
 * byte lands in the guard below the neighbour's stack, away from the
 * overflower's own guard: the report comes from the stack pointer being
 * below the stack. (A frame whose first store lands in a neighbour's
 * usable stack cannot be caught: that is what probing is for.) */
Test(stack, unprobed_200_kib_frame_that_faults_elsewhere_is_reported,
     .timeout = 30.0)
{
	assert_frame_reported(t_frame_200k_plain);
}
