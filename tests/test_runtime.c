/* SPDX-License-Identifier: MIT */
/*
 * test_runtime.c - runtimes (runtime.c, worker.c): several at once,
 * worker counts from the config and BRAID_WORKERS, the threads and file
 * descriptors a runtime holds and gives back, shutdown with live tasks,
 * br_run(), the io_uring and fallback features, wake-ups of parked
 * workers, and a mixed workload over the configuration matrix.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include "helpers.h"

/* Every test leaves no descriptor, thread or child behind (helpers.h). */
TestSuite(runtime, .init = t_leak_init, .fini = t_leak_fini);

struct where {
	br_runtime *rt;
	pthread_t thread;
};

static void *report_where(void *arg)
{
	struct where *w = arg;

	w->rt = br_current_runtime();
	w->thread = pthread_self();
	br_sleep_ms(1);
	return NULL;
}

#define N_RT 3
#define PER_RT 20

Test(runtime, several_runtimes_run_at_once_on_their_own_workers,
     .timeout = 20.0)
{
	br_runtime *rts[N_RT];
	struct where w[N_RT][PER_RT];
	br_future *fs[N_RT][PER_RT];

	for (int r = 0; r < N_RT; r++)
		rts[r] = t_runtime(1, 0);
	for (int i = 0; i < PER_RT; i++)
		for (int r = 0; r < N_RT; r++)
			fs[r][i] = br_spawn(rts[r], report_where, &w[r][i]);
	for (int r = 0; r < N_RT; r++) {
		for (int i = 0; i < PER_RT; i++) {
			t_await_value(fs[r][i]);
			br_future_release(fs[r][i]);
			cr_assert_eq(w[r][i].rt, rts[r], "runtime %d task %d",
				     r, i);
			/* One worker each, so every task ran on it. */
			cr_assert(
				pthread_equal(w[r][i].thread, w[r][0].thread));
		}
	}
	for (int r = 0; r < N_RT; r++)
		for (int q = r + 1; q < N_RT; q++)
			cr_assert(!pthread_equal(w[r][0].thread,
						 w[q][0].thread),
				  "runtimes %d and %d share a worker", r, q);
	for (int r = 0; r < N_RT; r++)
		br_runtime_free(rts[r]);
}

Test(runtime, workers_honours_the_config, .timeout = 10.0)
{
	br_runtime *rt;

	setenv("BRAID_WORKERS", "1", 1);
	rt = t_runtime(3, 0);
	cr_assert_eq(br_runtime_workers(rt), 3, "the config wins over env");
	br_runtime_free(rt);
}

Test(runtime, workers_honours_braid_workers, .timeout = 10.0)
{
	br_runtime *rt = NULL;

	setenv("BRAID_WORKERS", "3", 1);
	cr_assert_eq(br_runtime_new(&rt, NULL), 0);
	cr_assert_eq(br_runtime_workers(rt), 3);
	br_runtime_free(rt);
	rt = t_runtime(0, 0);
	cr_assert_eq(br_runtime_workers(rt), 3, "zero field uses the env");
	br_runtime_free(rt);
}

Test(runtime, workers_default_to_one_per_online_cpu, .timeout = 10.0)
{
	br_runtime *rt = NULL;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	unsetenv("BRAID_WORKERS");
	cr_assert_eq(br_runtime_new(&rt, NULL), 0);
	cr_assert_eq(br_runtime_workers(rt), (unsigned)cpus);
	br_runtime_free(rt);
}

Test(runtime, threads_grow_by_exactly_the_workers_and_come_back,
     .timeout = 20.0)
{
	int base = t_count_threads();

	cr_assert_gt(base, 0);
	for (unsigned workers = 1; workers <= 3; workers++) {
		br_config cfg = { .workers = workers, .stall_ms = -1 };
		br_runtime *rt = t_runtime_cfg(&cfg);

		cr_assert_eq(t_count_threads(), base + (int)workers,
			     "%u workers", workers);
		br_runtime_free(rt);
		t_assert_threads_return_to(base);
		/* With the stall detector (the default): its watchdog. */
		rt = t_runtime(workers, 0);
		cr_assert_eq(t_count_threads(), base + (int)workers + 1,
			     "%u workers and the watchdog", workers);
		br_runtime_free(rt);
		t_assert_threads_return_to(base);
	}
}

static void nothing(void *arg)
{
}

Test(runtime, free_gives_back_every_file_descriptor, .timeout = 20.0)
{
	int fds = t_count_fds();

	for (int i = 0; i < T_CONFIG_COUNT; i++) {
		const struct t_config *c = &t_config_matrix[i];
		br_runtime *rt = t_runtime(c->workers, c->flags);
		br_future *f = br_call_later(rt, 1, nothing, NULL);

		br_await(f, NULL);
		br_future_release(f);
		br_runtime_free(rt);
		t_assert_no_leaked_fds(fds);
	}
}

Test(runtime, an_idle_runtime_frees_promptly, .timeout = 10.0)
{
	br_runtime *rt = t_runtime(2, 0);
	int64_t t0;

	br_sleep_ms(50); /* let both workers park */
	t0 = br_now_ns();
	br_runtime_free(rt);
	cr_assert_lt(t_elapsed_ms(t0), 1000);
	br_runtime_free(NULL);
}

/* ------------------------------------------------------------------ */
/* Shutdown with live tasks                                            */
/* ------------------------------------------------------------------ */

#define N_SLEEPING 50
#define N_UNSTARTED 100

struct shutdown_state {
	atomic_int asleep;
	atomic_int blockers;
	atomic_int unstarted_ran;
	int sleep_ret[N_SLEEPING];
};

struct sleeper_arg {
	struct shutdown_state *s;
	int i;
};

static void *sleep_until_cancelled(void *arg)
{
	struct sleeper_arg *a = arg;

	atomic_fetch_add(&a->s->asleep, 1);
	a->s->sleep_ret[a->i] = br_sleep_ms(60000);
	return NULL;
}

/* Holds its worker, never suspending, until cancellation is requested. */
static void *block_until_cancel_requested(void *arg)
{
	struct shutdown_state *s = arg;
	int64_t end = br_now_ns() + 10000 * T_NS_PER_MS;

	atomic_fetch_add(&s->blockers, 1);
	while (!br_cancelled() && br_now_ns() < end)
		;
	return (void *)0xb10c;
}

static void *mark_ran(void *arg)
{
	atomic_fetch_add(&((struct shutdown_state *)arg)->unstarted_ran, 1);
	return NULL;
}

Test(runtime, free_cancels_sleeping_and_unstarted_tasks, .timeout = 30.0)
{
	br_runtime *rt = t_runtime(2, 0);
	static struct shutdown_state s;
	static struct sleeper_arg args[N_SLEEPING];
	static br_future *sleeping[N_SLEEPING], *unstarted[N_UNSTARTED];
	br_future *blk[2];
	int64_t t0;

	for (int i = 0; i < N_SLEEPING; i++) {
		args[i] = (struct sleeper_arg){ .s = &s, .i = i };
		sleeping[i] = br_spawn(rt, sleep_until_cancelled, &args[i]);
	}
	cr_assert_eq(t_spin_until(&s.asleep, N_SLEEPING, 10000 * T_NS_PER_MS),
		     0);
	for (unsigned w = 0; w < 2; w++)
		blk[w] = br_spawn_on(rt, w, block_until_cancel_requested, &s);
	cr_assert_eq(t_spin_until(&s.blockers, 2, 10000 * T_NS_PER_MS), 0);
	/* Both workers are held, so none of these can start. */
	for (int i = 0; i < N_UNSTARTED; i++)
		unstarted[i] = br_spawn(rt, mark_ran, &s);

	t0 = br_now_ns();
	br_runtime_free(rt);
	cr_assert_lt(t_elapsed_ms(t0), 3000, "shutdown was slow");

	/* Futures stay valid after the runtime is gone. */
	for (int i = 0; i < N_SLEEPING; i++) {
		cr_assert_eq(br_future_state(sleeping[i]), BR_CANCELLED,
			     "sleeper %d", i);
		cr_assert_eq(s.sleep_ret[i], -ECANCELED);
		br_future_release(sleeping[i]);
	}
	for (int i = 0; i < N_UNSTARTED; i++) {
		cr_assert_eq(br_future_state(unstarted[i]), BR_CANCELLED,
			     "unstarted %d", i);
		cr_assert_eq(br_await(unstarted[i], NULL), -ECANCELED);
		br_future_release(unstarted[i]);
	}
	cr_assert_eq(atomic_load(&s.unstarted_ran), 0);
	/* The blockers returned without suspending: they keep the value. */
	for (int w = 0; w < 2; w++) {
		cr_assert_eq(br_future_state(blk[w]), BR_DONE);
		cr_assert_eq((uintptr_t)t_await_value(blk[w]), 0xb10c);
		br_future_release(blk[w]);
	}
}

/* ------------------------------------------------------------------ */
/* br_run                                                              */
/* ------------------------------------------------------------------ */

static void *main_fn(void *arg)
{
	if (br_current_runtime() == NULL || br_current() == NULL)
		return NULL;
	br_sleep_ms(1);
	return (void *)((uintptr_t)arg * 2);
}

static void *main_fails(void *arg)
{
	return br_fail(-ENOTCONN, "main failed");
}

Test(runtime, run_returns_mains_value, .timeout = 10.0)
{
	br_config cfg = { .workers = 2, .flags = BR_CONFIG_QUIET };
	void *v = NULL;
	int base = t_count_threads();

	cr_assert_eq(br_run(&cfg, main_fn, (void *)21, &v), 0);
	cr_assert_eq((uintptr_t)v, 42);
	cr_assert_eq(br_run(&cfg, main_fn, (void *)1, NULL), 0);
	cr_assert_eq(br_run(NULL, main_fails, NULL, &v), -ENOTCONN);
	cr_assert_null(v);
	t_assert_threads_return_to(base);
}

/* ------------------------------------------------------------------ */
/* Features                                                            */
/* ------------------------------------------------------------------ */

static void assert_feature_bits_consistent(unsigned f)
{
	/* Ring features need a ring; DEFER_TASKRUN needs SINGLE_ISSUER. */
	if (!(f & BR_FEAT_URING))
		cr_assert_eq(f & (BR_FEAT_SINGLE_ISSUER |
				  BR_FEAT_DEFER_TASKRUN | BR_FEAT_MSG_RING |
				  BR_FEAT_SEND_MSG_RING | BR_FEAT_COOP_TASKRUN |
				  BR_FEAT_FIXED_FILES),
			     0, "ring features without a ring: %#x", f);
	if (f & BR_FEAT_DEFER_TASKRUN)
		cr_assert(f & BR_FEAT_SINGLE_ISSUER, "features %#x", f);
}

static void *small_workload(void *arg);

Test(runtime, no_uring_clears_the_uring_feature_and_still_works,
     .timeout = 20.0)
{
	br_runtime *rt = t_runtime(2, BR_CONFIG_NO_URING);
	unsigned f = br_runtime_features(rt);

	cr_assert_eq(f & BR_FEAT_URING, 0, "features %#x", f);
	assert_feature_bits_consistent(f);
	t_assert_task_ok(br_spawn(rt, small_workload, NULL));
	br_runtime_free(rt);
}

Test(runtime, braid_no_uring_env_forces_the_fallback, .timeout = 20.0)
{
	br_runtime *rt;
	unsigned f;

	setenv("BRAID_NO_URING", "1", 1);
	rt = t_runtime(1, 0);
	f = br_runtime_features(rt);
	cr_assert_eq(f & BR_FEAT_URING, 0, "features %#x", f);
	t_assert_task_ok(br_spawn(rt, small_workload, NULL));
	br_runtime_free(rt);
}

Test(runtime, uring_is_used_when_the_kernel_has_it, .timeout = 20.0)
{
	br_runtime *rt;
	unsigned f;

	if (!t_uring_available())
		cr_skip_test("kernel lacks io_uring");
	unsetenv("BRAID_NO_URING");
	rt = t_runtime(2, 0);
	f = br_runtime_features(rt);
	cr_assert(f & BR_FEAT_URING, "features %#x", f);
	assert_feature_bits_consistent(f);
	t_assert_task_ok(br_spawn(rt, small_workload, NULL));
	br_runtime_free(rt);
}

Test(runtime, a_dead_pointer_has_no_workers_or_features, .timeout = 10.0)
{
	cr_assert_eq(br_runtime_workers(NULL), 0);
	cr_assert_eq(br_runtime_features(NULL), 0);
	cr_assert_null(br_current_runtime());
	cr_assert_eq(br_worker_id(), -1);
}

Test(runtime, version_string_matches_the_macros, .timeout = 10.0)
{
	char want[32];

	snprintf(want, sizeof(want), "%d.%d.%d", BR_VERSION_MAJOR,
		 BR_VERSION_MINOR, BR_VERSION_PATCH);
	cr_assert_str_eq(br_version_string(), want);
}

/* A program compares versions in the preprocessor with BR_VERSION_HEX. */
#if BR_VERSION_HEX < 0x000100 || BR_VERSION_HEX > 0xffffff
#error "BR_VERSION_HEX is not usable in #if"
#endif

Test(runtime, version_hex_agrees_with_the_string_and_the_macros,
     .timeout = 10.0)
{
	unsigned major, minor, patch;

	cr_assert_eq(sscanf(br_version_string(), "%u.%u.%u", &major, &minor,
			    &patch),
		     3);
	cr_assert_eq(major, BR_VERSION_MAJOR);
	cr_assert_eq(minor, BR_VERSION_MINOR);
	cr_assert_eq(patch, BR_VERSION_PATCH);
	cr_assert_lt(minor, 256);
	cr_assert_lt(patch, 256);
	cr_assert_eq(BR_VERSION_HEX, (major << 16) | (minor << 8) | patch,
		     "BR_VERSION_HEX is %#x for version %s", BR_VERSION_HEX,
		     br_version_string());
	cr_assert_eq(BR_VERSION_HEX >> 16, BR_VERSION_MAJOR);
	cr_assert_eq((BR_VERSION_HEX >> 8) & 0xff, BR_VERSION_MINOR);
	cr_assert_eq(BR_VERSION_HEX & 0xff, BR_VERSION_PATCH);
}

/* ------------------------------------------------------------------ */
/* Wake-ups                                                            */
/* ------------------------------------------------------------------ */

static void *echo(void *arg)
{
	return arg;
}

Test(runtime, plain_thread_spawns_wake_parked_workers, .timeout = 60.0)
{
	for (int i = 0; i < T_CONFIG_COUNT; i++) {
		const struct t_config *c = &t_config_matrix[i];
		br_runtime *rt = t_runtime(c->workers, c->flags);
		uint64_t seed = 88172645463325252ull;

		/*
		 * Spawn-and-await with random gaps, so that the workers are
		 * sometimes parked, sometimes parking, sometimes spinning when
		 * the spawn arrives. A lost wake-up hangs here until the
		 * timeout fails the test.
		 */
		for (uintptr_t k = 0; k < 500; k++) {
			br_future *f = br_spawn(rt, echo, (void *)k);

			cr_assert_eq((uintptr_t)t_await_value(f), k);
			br_future_release(f);
			if (t_rand(&seed) % 4 == 0)
				br_sleep_ns((int64_t)(t_rand(&seed) % 200000));
		}
		br_runtime_free(rt);
	}
}

/* ------------------------------------------------------------------ */
/* Mixed workload over the configuration matrix                        */
/* ------------------------------------------------------------------ */

static void *fib(void *arg)
{
	uintptr_t n = (uintptr_t)arg;
	br_runtime *rt = br_current_runtime();
	br_future *a, *b;
	void *x = NULL, *y = NULL;

	if (n < 2)
		return arg;
	a = br_spawn(rt, fib, (void *)(n - 1));
	b = br_spawn(rt, fib, (void *)(n - 2));
	br_await(a, &x);
	br_await(b, &y);
	br_future_release(a);
	br_future_release(b);
	return (void *)((uintptr_t)x + (uintptr_t)y);
}

static void *nap_and_yield(void *arg)
{
	uintptr_t i = (uintptr_t)arg;

	if (br_sleep_ms((int64_t)(i % 5)) != 0 || br_yield() != 0)
		return NULL;
	return (void *)(i + 1);
}

static void *resolve_soon(void *arg)
{
	br_sleep_ms(5);
	br_promise_resolve(arg, (void *)0xabc);
	return NULL;
}

static void count_call(void *arg)
{
	atomic_fetch_add((atomic_int *)arg, 1);
}

static void *small_workload(void *arg)
{
	br_runtime *rt = br_current_runtime();
	br_future *fs[32], *p, *cs, *fibf;
	void *vals[32];
	atomic_int calls = 0;
	pthread_t th;
	void *v = NULL;
	int gret, pret, fret;

	T_REQUIRE(rt != NULL);
	p = br_promise_new();
	if (pthread_create(&th, NULL, resolve_soon, p) != 0)
		return (void *)"pthread_create failed";
	for (uintptr_t i = 0; i < 32; i++)
		fs[i] = br_spawn(rt, nap_and_yield, (void *)i);
	cs = br_call_soon(rt, count_call, &calls);
	fibf = br_spawn(rt, fib, (void *)12);
	gret = br_gather(fs, 32, vals);
	pret = br_await(p, &v);
	fret = br_await(cs, NULL);
	pthread_join(th, NULL);
	T_REQUIRE(gret == 0);
	for (uintptr_t i = 0; i < 32; i++) {
		T_REQUIRE((uintptr_t)vals[i] == i + 1);
		br_future_release(fs[i]);
	}
	T_REQUIRE(pret == 0 && (uintptr_t)v == 0xabc);
	T_REQUIRE(fret == 0 && atomic_load(&calls) == 1);
	T_REQUIRE(br_await(fibf, &v) == 0 && (uintptr_t)v == 144);
	br_future_release(p);
	br_future_release(cs);
	br_future_release(fibf);
	return NULL;
}

ParameterizedTestParameters(runtime, mixed_workload_in_every_configuration)
{
	return cr_make_param_array(struct t_config,
				   (struct t_config *)t_config_matrix,
				   T_CONFIG_COUNT);
}

ParameterizedTest(struct t_config *c, runtime,
		  mixed_workload_in_every_configuration, .timeout = 30.0)
{
	br_runtime *rt = t_runtime(c->workers, c->flags);
	br_future *fs[4];

	cr_assert_eq(br_runtime_workers(rt), c->workers);
	if (c->flags & BR_CONFIG_NO_URING)
		cr_assert_eq(br_runtime_features(rt) & BR_FEAT_URING, 0);
	for (int i = 0; i < 4; i++)
		fs[i] = br_spawn(rt, small_workload, NULL);
	for (int i = 0; i < 4; i++)
		t_assert_task_ok(fs[i]);
	/* And once from the test thread itself, outside any task. */
	for (int i = 0; i < 2; i++) {
		br_future *f = br_spawn(rt, fib, (void *)15);

		cr_assert_eq((uintptr_t)t_await_value(f), 610);
		br_future_release(f);
	}
	br_runtime_free(rt);
}
