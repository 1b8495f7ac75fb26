/* SPDX-License-Identifier: MIT */
/*
 * helpers.h - shared helpers for braid's Criterion tests (t_ prefix).
 *
 * Two kinds of helper live here:
 *   - Helpers that assert (t_runtime(), t_assert_*, t_thread_*) use
 *     Criterion's cr_assert and so may only run on the test's own thread.
 *     A failed cr_assert ends the test with a longjmp, which must never
 *     happen on a worker thread or inside a task's fiber.
 *   - Helpers that only measure or wait (t_count_*, t_busy_ns(),
 *     t_spin_until(), T_REQUIRE) are safe on any thread and inside tasks.
 *
 * Code that runs inside a task or on a helper thread records what it saw
 * into memory the test owns, or returns a failure string with T_REQUIRE;
 * the test thread then asserts on it after awaiting or joining.
 */
#ifndef T_HELPERS_H
#define T_HELPERS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "braid.h"
#include "census.h" /* procfs counts, census_stat(), for every test */

#define T_NS_PER_MS INT64_C(1000000)

/*
 * T_REQUIRE - for task and thread bodies that return void *: return a
 * static string naming the failed condition and its line. A body that
 * reaches its end returns NULL, so the test asserts that the value it
 * awaited or joined is NULL and prints the string otherwise.
 */
#define T_STR2(x) #x
#define T_STR(x) T_STR2(x)
#define T_REQUIRE(cond)                                                  \
	do {                                                             \
		if (!(cond))                                             \
			return (void *)(__FILE__                         \
					":" T_STR(__LINE__) ": " #cond); \
	} while (0)

/* One point of the configuration matrix: worker count and config flags. */
struct t_config {
	unsigned workers;
	unsigned flags;
};

/* {1, 2 workers} x {io_uring as probed, BR_CONFIG_NO_URING}. */
#define T_CONFIG_COUNT 4
extern const struct t_config t_config_matrix[T_CONFIG_COUNT];

/*
 * t_runtime - create a runtime with the given worker count and config
 * flags (BR_CONFIG_QUIET is always added) and assert that it worked.
 * Test thread only.
 */
br_runtime *t_runtime(unsigned workers, unsigned flags);

/* t_runtime_cfg - as t_runtime() with a whole config. Test thread only. */
br_runtime *t_runtime_cfg(const br_config *cfg);

/* t_count_threads - the number of threads of this process, from procfs. */
int t_count_threads(void);

/* Live or zombie children of this process, from procfs; -1 without
 * /proc. Safe on any thread. */
int t_count_children(void);

/* t_count_fds - the number of open file descriptors of this process. */
int t_count_fds(void);

/*
 * t_assert_threads_return_to - wait up to two seconds for the thread count
 * to fall back to baseline (exited threads leave procfs shortly after
 * pthread_join() returns), then assert it did. Test thread only.
 */
void t_assert_threads_return_to(int baseline);

/* t_assert_no_leaked_fds - assert that no fd is open beyond before. */
void t_assert_no_leaked_fds(int before);

/*
 * t_leak_init, t_leak_fini - the leak accounting every test file puts on
 * each of its suites:
 *
 *   TestSuite(name, .init = t_leak_init, .fini = t_leak_fini);
 *
 * init counts the process's descriptors, threads and children before
 * the test (after the suite's own init, before the test's); fini, after
 * the test's own fini, waits up to T_LEAK_WAIT_MS for them to come back
 * (exited threads leave procfs a moment after their join; a blocking
 * pool's threads exit after an idle period) and, if they do not, prints
 * what is left (each new descriptor and what it names, each thread's
 * and child's name) and aborts: Criterion reports the test as crashed in
 * its teardown and the run fails. The zygote and its spare
 * ("braid-zygote", "braid-spare") are not counted: they legitimately
 * outlive tests, started by a constructor or replaced by a test.
 * A test that must leave something behind on purpose calls
 * t_leak_expect(fds, threads, children) with what it leaves.
 * T_NO_LEAK_CHECK in the environment turns the check off (the fault
 * sweep sets it: under a fault, failed assertions leave things behind).
 */
#define T_LEAK_WAIT_MS 5000
void t_leak_init(void);
void t_leak_fini(void);
void t_leak_expect(int fds, int threads, int children);

/* t_busy_ns - spin on the CPU for ns nanoseconds without suspending. */
void t_busy_ns(int64_t ns);

/*
 * t_spin_until - spin (never suspending, never sleeping) until *v >= want
 * or timeout_ns passes. Returns 0, or -1 on timeout. Any thread, and
 * inside a task that must not reach a suspension point.
 */
int t_spin_until(atomic_int *v, int want, int64_t timeout_ns);

/*
 * t_wait_until - as t_spin_until() but sleeps 1 ms between checks with
 * br_sleep_ms(), so a task suspends and a plain thread sleeps.
 */
int t_wait_until(atomic_int *v, int want, int64_t timeout_ns);

/* t_elapsed_ms - milliseconds since start_ns (a br_now_ns() value). */
int64_t t_elapsed_ms(int64_t start_ns);

/* t_rand - xorshift64* step; *state must not be 0. */
uint64_t t_rand(uint64_t *state);

/*
 * t_kill_pool_worker - SIGKILL one of pool's workers, drawn with rng.
 * Returns 1 if it was sent, 0 if the drawn worker is being replaced (its
 * pid reads 0, and kill(0) would hit this whole process group).
 */
int t_kill_pool_worker(br_pool *pool, uint64_t *rng);

/* t_stress_scale - BRAID_STRESS_SCALE, 1 when unset or invalid. */
unsigned t_stress_scale(void);

/*
 * t_uring_available - 1 if this kernel lets the process set up an
 * io_uring, probed directly with liburing, else 0.
 */
int t_uring_available(void);

/* t_kill_zygote - kill and reap the zygote and its spare, which must be
 * this process's children: no pool worker can be started after it. */
void t_kill_zygote(void);

/* Both loop kinds, as flags for t_runtime(): the ring's (0) where the
 * kernel has io_uring, and always BR_CONFIG_NO_URING's. Every test of
 * I/O runs its body once for each. */
extern const unsigned t_modes[2];
#define FOR_EACH_MODE(flags)                                           \
	for (size_t mi_ = t_uring_available() ? 0 : 1; mi_ < 2; mi_++) \
		for (unsigned flags = t_modes[mi_], once_ = 1; once_; once_ = 0)

/* t_thread_start, t_thread_join - pthread wrappers that assert. */
void t_thread_start(pthread_t *t, void *(*fn)(void *), void *arg);
void *t_thread_join(pthread_t t);

/*
 * t_await_value - await f from the test thread, assert that it ended DONE
 * and return its value. Does not release f.
 */
void *t_await_value(br_future *f);

/*
 * t_assert_task_ok - await a task whose body uses T_REQUIRE, assert that it
 * ended DONE with NULL (printing the failed condition otherwise), and
 * release it.
 */
void t_assert_task_ok(br_future *f);

/*
 * t_on_failure - call fn(arg) when f fails, on the thread that fails it
 * (or at once if it already has). A task's spawn fails when a worker
 * finds no stack for it, after br_spawn() has returned (the fault sweep
 * makes that happen): a test whose thread waits for what the task would
 * have done (a channel partner, a wait group's done) passes fn to undo
 * that wait, so that it fails its assertions instead of waiting for
 * good. fn must not block. Asserts that the callback could be set. Test
 * thread only.
 */
void t_on_failure(br_future *f, void (*fn)(void *), void *arg);

/*
 * t_read_file - the whole file at path, NUL-terminated and malloc'd; its
 * length in *len if len is not NULL. Asserts that it could be read.
 */
char *t_read_file(const char *path, size_t *len);

/*
 * t_assert_worker_runs - assert that rt's worker still runs other tasks
 * and fires their deadlines: a task's 50 ms sleep ends within a (loose)
 * second. flags is printed with a failure (the runtime's flags).
 */
void t_assert_worker_runs(br_runtime *rt, unsigned flags);

#endif /* T_HELPERS_H */
