/* SPDX-License-Identifier: MIT */
/*
 * stress_pool.c - the process pool under load: a million tiny jobs
 * submitted at once from tasks on two workers and from plain threads,
 * with a random one in fifty cancelled while it is queued, running or
 * done, and every job's future must end exactly once with its own answer
 * or CANCELLED; and maps and submits mixed while workers die at random.
 *
 * Sizes scale with BRAID_STRESS_SCALE (default 1: a few seconds in the
 * release build; 10 for `make stress`), and shrink under the sanitizers.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include "helpers.h"

/* Every test leaves no descriptor, thread or child behind (helpers.h). */
TestSuite(stress_pool, .init = t_leak_init, .fini = t_leak_fini);

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define SLOW 10
#else
#define SLOW 1
#endif

__attribute__((constructor)) static void start_zygote(void)
{
	br_zygote_start();
}

/* Answers its input + 1. */
static int inc_job(br_job *job, const void *in, size_t len)
{
	uint64_t v;

	memcpy(&v, in, sizeof(v));
	v++;
	return br_job_write(job, &v, sizeof(v));
}

struct submitter {
	br_pool *pool;
	uint64_t first, n, seed;
	atomic_long *bad;
	atomic_long *cancelled;
};

static void *submit_body(void *arg)
{
	struct submitter *s = arg;
	br_future **fs = malloc(s->n * sizeof(*fs));

	T_REQUIRE(fs);
	for (uint64_t i = 0; i < s->n; i++) {
		uint64_t v = s->first + i;

		fs[i] = br_submit(s->pool, inc_job, &v, sizeof(v));
		if (t_rand(&s->seed) % 50 == 0)
			br_cancel(fs[i - (i ? t_rand(&s->seed) % (i + 1) : 0)]);
	}
	for (uint64_t i = 0; i < s->n; i++) {
		const uint64_t *out;
		int r = br_await(fs[i], NULL);

		if (r == -ECANCELED && br_future_state(fs[i]) == BR_CANCELLED) {
			atomic_fetch_add(s->cancelled, 1);
		} else if (r != 0 || !(out = br_future_bytes(fs[i], NULL)) ||
			   *out != s->first + i + 1) {
			atomic_fetch_add(s->bad, 1);
		}
		br_future_release(fs[i]);
	}
	free(fs);
	return NULL;
}

Test(stress_pool, a_million_jobs_from_tasks_and_threads_each_end_once,
     .timeout = 300.0)
{
	enum {
		TASKS = 4,
		THREADS = 2
	};
	uint64_t per = 1000000 / (TASKS + THREADS) / SLOW * t_stress_scale();
	br_runtime *rt = t_runtime(2, 0);
	br_pool *pool = NULL;
	struct submitter s[TASKS + THREADS];
	br_future *tasks[TASKS];
	pthread_t th[THREADS];
	atomic_long bad = 0, cancelled = 0;

	cr_assert_eq(br_pool_new(&pool, rt, &(br_pool_config){ .workers = 2 }),
		     0);
	for (int i = 0; i < TASKS + THREADS; i++)
		s[i] = (struct submitter){ pool,  i * per, per,
					   7 + i, &bad,	   &cancelled };
	for (int i = 0; i < TASKS; i++)
		tasks[i] = br_spawn(rt, submit_body, &s[i]);
	for (int i = 0; i < THREADS; i++)
		t_thread_start(&th[i], submit_body, &s[TASKS + i]);
	for (int i = 0; i < TASKS; i++)
		t_assert_task_ok(tasks[i]);
	for (int i = 0; i < THREADS; i++)
		cr_assert_null(t_thread_join(th[i]));
	cr_assert_eq(atomic_load(&bad), 0, "%ld jobs ended wrong",
		     atomic_load(&bad));
	cr_assert_gt(atomic_load(&cancelled), 0);
	br_pool_free(pool);
	br_runtime_free(rt);
}

static void *map_body(void *arg)
{
	br_pool *pool = arg;
	uint64_t *items = malloc(1000 * sizeof(*items));

	T_REQUIRE(items);
	for (int round = 0; round < 20; round++) {
		br_future *f;
		int r;

		for (int i = 0; i < 1000; i++)
			items[i] = (uint64_t)round * 1000 + i;
		f = br_map(pool, inc_job, items, sizeof(*items), 1000, 0);
		r = br_await(f, NULL);
		/* A chunk on a worker that was killed fails the map. */
		T_REQUIRE(r == 0 || r == BR_EWORKERDIED);
		for (int i = 0; r == 0 && i < 1000; i++)
			T_REQUIRE(*(const uint64_t *)br_map_result(
					  f, i, NULL) == items[i] + 1);
		br_future_release(f);
	}
	free(items);
	return NULL;
}

Test(stress_pool, maps_and_submits_survive_random_worker_deaths,
     .timeout = 300.0)
{
	br_runtime *rt = t_runtime(2, 0);
	br_pool *pool = NULL;
	br_future *maps[2];
	uint64_t rng = 99;
	int kills = 0;

	cr_assert_eq(br_pool_new(&pool, rt, &(br_pool_config){ .workers = 2 }),
		     0);
	maps[0] = br_spawn(rt, map_body, pool);
	maps[1] = br_spawn(rt, map_body, pool);
	while (br_future_state(maps[0]) == BR_PENDING ||
	       br_future_state(maps[1]) == BR_PENDING) {
		usleep(3000);
		if (t_rand(&rng) % 4 == 0)
			kills += t_kill_pool_worker(pool, &rng);
	}
	t_assert_task_ok(maps[0]);
	t_assert_task_ok(maps[1]);
	/* The pool still answers every job after all that. */
	for (uint64_t v = 0; v < 100; v++) {
		br_future *f = br_submit(pool, inc_job, &v, sizeof(v));

		cr_assert_eq(br_await(f, NULL), 0, "%s", br_future_message(f));
		cr_assert_eq(*(const uint64_t *)br_future_bytes(f, NULL),
			     v + 1);
		br_future_release(f);
	}
	br_pool_free(pool);
	br_runtime_free(rt);
}

/* ---- a killer at 1 ms and 5 ms ---- */

/* Spins for the microseconds in its input. */
static int spin_job(br_job *job, const void *in, size_t len)
{
	uint32_t us;

	memcpy(&us, in, sizeof(us));
	t_busy_ns((int64_t)us * 1000);
	return br_job_write(job, &us, sizeof(us));
}

struct killer_case {
	uint32_t job_us;
	int kill_every_us;
};

/*
 * N jobs of job_us each on 4 workers while a random worker is SIGKILLed
 * every kill_every_us, for at most a few seconds; then the killing stops
 * and every job must end (DONE, or BR_EWORKERDIED for at most one job per
 * kill) within HANG_S: a lost wake-up leaves jobs pending for ever.
 */
static void killer_run(const struct killer_case *c)
{
	enum {
		HANG_S = 20
	};
	const int n = 10000 * (int)t_stress_scale() / SLOW;
	br_runtime *rt = t_runtime(2, 0);
	br_pool *pool = NULL;
	br_future **fs = malloc((size_t)n * sizeof(*fs));
	uint64_t rng = 7 + (uint64_t)c->kill_every_us;
	int64_t start = br_now_ns(), stop_killing = start + 4000 * T_NS_PER_MS;
	int kills = 0, done = 0, died = 0, pending = n;

	cr_assert_not_null(fs);
	cr_assert_eq(br_pool_new(&pool, rt, &(br_pool_config){ .workers = 4 }),
		     0);
	for (int i = 0; i < n; i++)
		fs[i] = br_submit(pool, spin_job, &c->job_us,
				  sizeof(c->job_us));
	while (pending && br_now_ns() < stop_killing) {
		usleep((useconds_t)c->kill_every_us);
		kills += t_kill_pool_worker(pool, &rng);
		pending = 0;
		for (int i = 0; i < n; i++)
			pending += br_future_state(fs[i]) == BR_PENDING;
	}
	for (int64_t t = br_now_ns(); pending; usleep(10000)) {
		pending = 0;
		for (int i = 0; i < n; i++)
			pending += br_future_state(fs[i]) == BR_PENDING;
		cr_assert(
			t_elapsed_ms(t) < HANG_S * 1000,
			"%d of %d jobs still pending %d s after the last kill "
			"(%d kills, %d us jobs, a kill every %d us)",
			pending, n, HANG_S, kills, c->job_us, c->kill_every_us);
	}
	for (int i = 0; i < n; i++) {
		int r = br_await(fs[i], NULL);

		cr_assert(r == 0 || r == BR_EWORKERDIED, "job %d: %s", i,
			  br_future_message(fs[i]));
		done += r == 0;
		died += r == BR_EWORKERDIED;
		br_future_release(fs[i]);
	}
	cr_assert_eq(done + died, n);
	cr_assert_leq(died, kills, "more jobs failed than workers died");
	/* The pool still answers. */
	for (uint64_t v = 0; v < 100; v++) {
		br_future *f = br_submit(pool, inc_job, &v, sizeof(v));

		cr_assert_eq(br_await(f, NULL), 0, "%s", br_future_message(f));
		br_future_release(f);
	}
	free(fs);
	br_pool_free(pool);
	br_runtime_free(rt);
}

static struct killer_case killer_cases[] = {
	{ 50, 1000 },
	{ 200, 1000 },
	{ 50, 5000 },
	{ 200, 5000 },
};

ParameterizedTestParameters(stress_pool, no_hang_while_a_killer_runs)
{
	return cr_make_param_array(struct killer_case, killer_cases,
				   sizeof(killer_cases) /
					   sizeof(killer_cases[0]));
}

/* 50 and 200 us jobs, a kill every 1 and 5 ms. */
ParameterizedTest(struct killer_case *c, stress_pool,
		  no_hang_while_a_killer_runs, .timeout = 120.0)
{
	killer_run(c);
}
