/* SPDX-License-Identifier: MIT */
/*
 * test_signal.c - signals through the loop (signal.c): a task reads the
 * signals sent to the process, on both backends, and a plain thread waits
 * for them; a handler on the loop runs for each; a cancelled reader and a
 * removed handler let go.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "helpers.h"

TestSuite(signal, .init = t_leak_init, .fini = t_leak_fini);

static void *next_two(void *arg)
{
	br_signal *s = arg;

	T_REQUIRE(br_signal_next(s) == SIGUSR1);
	T_REQUIRE(br_signal_next(s) == SIGUSR2);
	return NULL;
}

Test(signal, a_task_reads_the_signals_sent_to_the_process, .timeout = 30.0)
{
	FOR_EACH_MODE(flags)
	{
		sigset_t set;
		br_signal *s = NULL;
		br_runtime *rt;
		br_future *f;

		sigemptyset(&set);
		sigaddset(&set, SIGUSR1);
		sigaddset(&set, SIGUSR2);
		/* Before the runtime's threads: they inherit the mask. */
		cr_assert_eq(br_signal_new(&s, &set), 0);
		rt = t_runtime(2, flags);
		f = br_spawn(rt, next_two, s);
		usleep(20 * 1000);
		cr_assert_eq(kill(getpid(), SIGUSR1), 0);
		usleep(20 * 1000);
		cr_assert_eq(kill(getpid(), SIGUSR2), 0);
		t_assert_task_ok(f);
		br_runtime_free(rt);
		br_signal_free(s);
	}
}

/* From a thread of its own, after a while: the main thread must be
 * blocked in br_signal_next by then, or about to be. */
static void *send_usr1_later(void *arg)
{
	usleep(50 * 1000);
	T_REQUIRE(kill(getpid(), SIGUSR1) == 0);
	return arg;
}

Test(signal, a_plain_thread_blocks_until_the_signal_comes, .timeout = 30.0)
{
	sigset_t set;
	br_signal *s = NULL;
	pthread_t th;
	const char *msg;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	cr_assert_eq(br_signal_new(&s, &set), 0);
	/* Twice: the first wait may find the signal there, not the second
	 * if the sender is late (it blocks the set too: its thread
	 * inherits the mask). */
	for (int i = 0; i < 2; i++) {
		t_thread_start(&th, send_usr1_later, NULL);
		cr_assert_eq(br_signal_next(s), SIGUSR1);
		msg = t_thread_join(th);
		cr_assert_null(msg, "%s", msg);
	}
	br_signal_free(s);
}

static atomic_int handled;

static void on_hup(int signo, void *arg)
{
	if (signo == SIGHUP && arg == &handled)
		atomic_fetch_add(&handled, 1);
}

Test(signal, a_handler_on_the_loop_runs_for_each_signal_until_removed,
     .timeout = 30.0)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(1, flags);
		br_future *h = br_signal_handler(rt, SIGHUP, on_hup, &handled);

		atomic_store(&handled, 0);
		cr_assert_eq(br_future_state(h), BR_PENDING);
		for (int i = 1; i <= 3; i++) {
			cr_assert_eq(kill(getpid(), SIGHUP), 0);
			cr_assert_eq(t_wait_until(&handled, i,
						  10000 * T_NS_PER_MS),
				     0, "handled %d of %d",
				     atomic_load(&handled), i);
		}
		cr_assert_eq(br_cancel(h), 0);
		cr_assert_eq(br_await(h, NULL), -ECANCELED);
		br_future_release(h);
		br_runtime_free(rt);
	}
}

static void *next_one(void *arg)
{
	return (void *)(intptr_t)br_signal_next(arg);
}

Test(signal, a_waiting_reader_is_cancelled_and_a_second_caller_is_refused,
     .timeout = 30.0)
{
	sigset_t set;
	br_signal *s = NULL;
	br_runtime *rt;
	br_future *f;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	cr_assert_eq(br_signal_new(&s, &set), 0);
	FOR_EACH_MODE(flags)
	{
		rt = t_runtime(1, flags);
		f = br_spawn(rt, next_one, s);
		usleep(50 * 1000);
		cr_assert_eq(br_signal_next(s), -EBUSY, "flags %#x", flags);
		cr_assert_eq(br_cancel(f), 0);
		cr_assert_eq(br_await(f, NULL), -ECANCELED, "flags %#x", flags);
		br_future_release(f);
		br_runtime_free(rt);
	}
	br_signal_free(s);
}

Test(signal, bad_arguments_give_einval, .timeout = 10.0)
{
	sigset_t set;
	br_signal *s = NULL;
	br_future *f;

	sigemptyset(&set);
	cr_assert_eq(br_signal_new(NULL, &set), -EINVAL);
	cr_assert_eq(br_signal_new(&s, NULL), -EINVAL);
	sigemptyset(&set);
	sigaddset(&set, SIGKILL);
	cr_assert_eq(br_signal_new(&s, &set), -EINVAL);
	cr_assert_eq(br_signal_next(NULL), -EINVAL);
	br_signal_free(NULL);
	f = br_signal_handler(NULL, SIGHUP, NULL, NULL);
	cr_assert_eq(br_future_error(f), -EINVAL);
	br_future_release(f);
}
