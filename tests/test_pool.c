/* SPDX-License-Identifier: MIT */
/*
 * test_pool.c - the process pool: payload round trips (0 bytes to 64 MiB),
 * map order, imap in order and unordered, failures that stay with their
 * job (abort, SIGKILL from inside and outside, time limits) while the
 * pool keeps serving, recycling after max_jobs, initializers, cancel,
 * freeing with jobs in flight, mixing with task futures, bad input, and
 * that no process outlives the runtime.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"
#include "pool.h"

/* Every test leaves no descriptor, thread or child behind (helpers.h). */
TestSuite(pool, .init = t_leak_init, .fini = t_leak_fini);

/* ---- jobs (they run in worker processes) ---- */

static int echo_job(br_job *job, const void *in, size_t len)
{
	return br_job_write(job, in, len);
}

static int sum_job(br_job *job, const void *in, size_t len)
{
	const int32_t *v = in;
	int64_t s = 0;

	for (size_t i = 0; i < len / sizeof(*v); i++)
		s += v[i];
	return br_job_write(job, &s, sizeof(s));
}

/* Output: the input item repeated (item[0] % 5) times, so outputs vary. */
static int vary_job(br_job *job, const void *in, size_t len)
{
	uint32_t k;
	int r = 0;

	memcpy(&k, in, sizeof(k));
	for (uint32_t i = 0; i < k % 5 && r == 0; i++)
		r = br_job_write(job, in, len);
	return r;
}

static int fail_odd_job(br_job *job, const void *in, size_t len)
{
	uint32_t k;

	memcpy(&k, in, sizeof(k));
	if (k % 2)
		return br_job_fail(job, -EDOM, "odd item");
	return br_job_write(job, &k, sizeof(k));
}

static int abort_job(br_job *job, const void *in, size_t len)
{
	abort();
}

static int self_kill_job(br_job *job, const void *in, size_t len)
{
	raise(SIGKILL);
	return 0;
}

static int forever_job(br_job *job, const void *in, size_t len)
{
	for (;;)
		pause();
	return 0;
}

static int pid_job(br_job *job, const void *in, size_t len)
{
	pid_t p = getpid();

	return br_job_write(job, &p, sizeof(p));
}

/* Sleeps the number of milliseconds in its input, then answers its pid. */
static int nap_job(br_job *job, const void *in, size_t len)
{
	uint32_t ms;

	memcpy(&ms, in, sizeof(ms));
	usleep(ms * 1000);
	return pid_job(job, in, len);
}

static int init_seen;

static int init_fn(const void *arg, size_t len)
{
	memcpy(&init_seen, arg, sizeof(init_seen));
	return 0;
}

static int init_fail_fn(const void *arg, size_t len)
{
	return -EPERM;
}

static int init_job(br_job *job, const void *in, size_t len)
{
	return br_job_write(job, &init_seen, sizeof(init_seen));
}

/* ---- helpers (test thread) ---- */

/* Criterion starts a thread in each test process before the test runs:
 * fork the zygote while the process still has one. */
__attribute__((constructor)) static void start_zygote(void)
{
	br_zygote_start();
}

/* This process's children but the zygote and its spare, which live as
 * long as the process: workers, zombies. */
static int count_stray(void)
{
	return census_children(1, NULL);
}

static br_pool *pool_of(br_runtime *rt, const br_pool_config *cfg)
{
	br_pool *p = NULL;
	int r = br_pool_new(&p, rt, cfg);

	cr_assert_eq(r, 0, "br_pool_new: %s (%d)", br_strerror(r), r);
	return p;
}

/* Awaits f for at most ms; the result, or -ETIMEDOUT (f still pending). */
static int await_within(br_future *f, int64_t ms)
{
	int r = br_wait_for(f, ms, NULL);

	return r == -ETIMEDOUT && br_future_state(f) != BR_PENDING ?
		       br_await(f, NULL) :
		       r;
}

/* Frees pool and runtime, then checks no process is left. */
static void finish(br_pool *p, br_runtime *rt)
{
	br_pool_free(p);
	br_runtime_free(rt);
	cr_assert_eq(count_stray(), 0, "a process was left behind");
	cr_assert_eq(waitpid(-1, NULL, WNOHANG), 0,
		     "only the zygote is a child");
}

static void assert_sum(br_future *f, int64_t want)
{
	const int64_t *v;
	size_t len = 0;
	int r = br_await(f, NULL);

	cr_assert_eq(r, 0, "job failed: %d %s", r, br_future_message(f));
	v = br_future_bytes(f, &len);
	cr_assert_eq(len, sizeof(*v));
	cr_assert_eq(*v, want);
	br_future_release(f);
}

static int64_t run_sums(br_pool *p, int n)
{
	int32_t in[4] = { 1, 2, 3, 4 };
	br_future **fs = malloc(n * sizeof(*fs));
	int64_t ok = 0;

	for (int i = 0; i < n; i++) {
		in[0] = i;
		fs[i] = br_submit(p, sum_job, in, sizeof(in));
	}
	for (int i = 0; i < n; i++) {
		const int64_t *v = NULL;

		if (br_await(fs[i], NULL) == 0) {
			v = br_future_bytes(fs[i], NULL);
			ok += v && *v == i + 9;
		}
		br_future_release(fs[i]);
	}
	free(fs);
	return ok;
}

/* ---- tests ---- */

Test(pool, payloads_round_trip_from_empty_to_64_mib, .timeout = 120)
{
	static const size_t sizes[] = {
		0, 1, 100, 16 << 10, (16 << 10) + 1, 1 << 20, 5 << 20, 64 << 20
	};
	br_runtime *rt = t_runtime(2, 0);
	br_pool *p = pool_of(rt, &(br_pool_config){ .workers = 2 });
	unsigned char *buf = malloc(64 << 20);

	for (size_t i = 0; i < (64u << 20); i++)
		buf[i] = (unsigned char)(i * 131 + 7);
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		br_future *f = br_submit(p, echo_job, buf, sizes[k]);
		const void *out;
		size_t len = 1;
		int r = br_await(f, NULL);

		cr_assert_eq(r, 0, "%zu bytes: %s", sizes[k],
			     br_future_message(f));
		out = br_future_bytes(f, &len);
		cr_assert_eq(len, sizes[k]);
		cr_assert(sizes[k] == 0 || memcmp(out, buf, sizes[k]) == 0,
			  "%zu bytes came back changed", sizes[k]);
		br_future_release(f);
	}
	free(buf);
	finish(p, rt);
}

Test(pool, input_over_max_payload_is_emsgsize_at_submit, .timeout = 60)
{
	br_runtime *rt = t_runtime(1, 0);
	br_pool *p = pool_of(rt, &(br_pool_config){ .workers = 1,
						    .max_payload = 1 << 20 });
	char *big = calloc(1, (1 << 20) + 1);
	br_future *f = br_submit(p, echo_job, big, (1 << 20) + 1);

	cr_assert_eq(br_future_error(f), -EMSGSIZE);
	br_future_release(f);
	/* An output over the limit fails its job, not the pool. */
	f = br_submit(p, vary_job, (uint32_t[]){ 4 }, 4);
	cr_assert_eq(br_await(f, NULL), 0);
	br_future_release(f);
	free(big);
	finish(p, rt);
}

Test(pool, map_preserves_order_with_varied_outputs, .timeout = 60)
{
	enum {
		N = 5000
	};
	br_runtime *rt = t_runtime(2, 0);
	br_pool *p = pool_of(rt, &(br_pool_config){ .workers = 2 });
	uint32_t *items = malloc(N * sizeof(*items));
	br_future *f;

	for (uint32_t i = 0; i < N; i++)
		items[i] = i * 7;
	f = br_map(p, vary_job, items, sizeof(*items), N, 0);
	cr_assert_eq(br_await(f, NULL), 0, "%s", br_future_message(f));
	for (uint32_t i = 0; i < N; i++) {
		size_t len = 99;
		const uint32_t *o = br_map_result(f, i, &len);

		cr_assert_eq(len, (items[i] % 5) * sizeof(uint32_t), "item %u",
			     i);
		for (size_t k = 0; k < len / sizeof(uint32_t); k++)
			cr_assert_eq(o[k], items[i]);
	}
	cr_assert_null(br_map_result(f, N, NULL));
	br_future_release(f);
	/* An empty map is DONE at once; a small explicit chunk works. */
	f = br_map(p, vary_job, items, sizeof(*items), 0, 0);
	cr_assert_eq(br_future_state(f), BR_DONE);
	br_future_release(f);
	f = br_map(p, sum_job, items, sizeof(*items), 10, 3);
	cr_assert_eq(br_await(f, NULL), 0);
	for (uint32_t i = 0; i < 10; i++)
		cr_assert_eq(*(const int64_t *)br_map_result(f, i, NULL),
			     items[i]);
	br_future_release(f);
	free(items);
	finish(p, rt);
}

Test(pool, map_fails_with_the_lowest_failed_item, .timeout = 60)
{
	br_runtime *rt = t_runtime(2, 0);
	br_pool *p = pool_of(rt, &(br_pool_config){ .workers = 2 });
	uint32_t items[100];
	br_future *f;

	for (uint32_t i = 0; i < 100; i++)
		items[i] = i < 41 ? 2 * i : i;
	f = br_map(p, fail_odd_job, items, sizeof(items[0]), 100, 4);
	cr_assert_eq(br_await(f, NULL), -EDOM);
	cr_assert(strstr(br_future_message(f), "item 41") != NULL, "%s",
		  br_future_message(f));
	cr_assert(strstr(br_future_message(f), "odd item") != NULL);
	br_future_release(f);
	finish(p, rt);
}

/* Its item back, except item 7, whose worker dies. */
static int die_on_7_job(br_job *job, const void *in, size_t len)
{
	uint32_t k;

	memcpy(&k, in, sizeof(k));
	if (k == 7)
		raise(SIGKILL);
	return br_job_write(job, &k, sizeof(k));
}

Test(pool, map_item_errors_keeps_every_other_items_result, .timeout = 60)
{
	br_runtime *rt = t_runtime(2, 0);
	br_pool *p = pool_of(rt, &(br_pool_config){ .workers = 2 });
	uint32_t items[100];
	size_t len;
	int err;
	br_future *f;

	for (uint32_t i = 0; i < 100; i++)
		items[i] = i;
	f = br_map_ex(p, fail_odd_job, items, sizeof(items[0]), 100, 4,
		      BR_MAP_ITEM_ERRORS);
	cr_assert_eq(br_await(f, NULL), 0, "%s", br_future_message(f));
	for (uint32_t i = 0; i < 100; i++) {
		const void *o = br_map_item(f, i, &len, &err);
		uint32_t v;

		if (i % 2) {
			cr_assert_null(o);
			cr_assert_eq(err, -EDOM, "item %u", i);
			cr_assert_eq(len, 0);
			cr_assert_str_eq(br_map_item_message(f, i), "odd item");
			cr_assert_null(br_map_result(f, i, &len));
		} else {
			cr_assert_not_null(o, "item %u", i);
			cr_assert_eq(err, 0);
			cr_assert_eq(len, sizeof(v));
			/* br_map_result() promises no alignment. */
			memcpy(&v, o, sizeof(v));
			cr_assert_eq(v, i);
			cr_assert_str_eq(br_map_item_message(f, i), "");
			cr_assert_eq(br_map_result(f, i, NULL), o);
		}
	}
	cr_assert_null(br_map_item(f, 100, &len, &err));
	cr_assert_eq(err, -EINVAL);
	br_future_release(f);

	/* By default the first failure fails the map, as br_map. */
	f = br_map_ex(p, fail_odd_job, items, sizeof(items[0]), 100, 4, 0);
	cr_assert_eq(br_await(f, NULL), -EDOM);
	cr_assert_null(br_map_item(f, 0, &len, &err));
	cr_assert_eq(err, -EDOM, "the map's own error");
	br_future_release(f);
	f = br_map_ex(p, fail_odd_job, items, sizeof(items[0]), 100, 4, 0x10);
	cr_assert_eq(br_await(f, NULL), -EINVAL);
	br_future_release(f);
	cr_assert_null(br_map_item(NULL, 0, NULL, &err));
	cr_assert_eq(err, BR_EBADOBJ);
	finish(p, rt);
}

Test(pool, map_item_errors_a_dead_chunk_fails_only_its_items, .timeout = 60)
{
	br_runtime *rt = t_runtime(2, 0);
	br_pool *p = pool_of(rt, &(br_pool_config){ .workers = 2 });
	uint32_t items[20];
	size_t len;
	int err;
	br_future *f;

	for (uint32_t i = 0; i < 20; i++)
		items[i] = i;
	/* Chunks of 4: items 4..7 share the job whose worker dies. */
	f = br_map_ex(p, die_on_7_job, items, sizeof(items[0]), 20, 4,
		      BR_MAP_ITEM_ERRORS);
	cr_assert_eq(br_await(f, NULL), 0, "%s", br_future_message(f));
	for (uint32_t i = 0; i < 20; i++) {
		const uint32_t *o = br_map_item(f, i, &len, &err);

		if (i >= 4 && i <= 7) {
			cr_assert_null(o);
			cr_assert_eq(err, BR_EWORKERDIED, "item %u: %d", i,
				     err);
			cr_assert_str_neq(br_map_item_message(f, i), "");
		} else {
			cr_assert_eq(err, 0, "item %u", i);
			cr_assert_eq(*o, i);
		}
	}
	br_future_release(f);

	/* A cancelled map still ends CANCELLED. */
	f = br_map_ex(p, forever_job, items, sizeof(items[0]), 4, 1,
		      BR_MAP_ITEM_ERRORS);
	cr_assert_eq(br_cancel(f), 0);
	cr_assert_eq(br_await(f, NULL), -ECANCELED);
	cr_assert_eq(br_future_state(f), BR_CANCELLED);
	cr_assert_null(br_map_item(f, 0, &len, &err));
	cr_assert_eq(err, -ECANCELED);
	br_future_release(f);
	finish(p, rt);
}

/* 200 KiB of its item's first byte. */
static int fill_job(br_job *job, const void *in, size_t len)
{
	static char buf[200 << 10];

	memset(buf, *(const uint8_t *)in, sizeof(buf));
	return br_job_write(job, buf, sizeof(buf));
}

/* As many bytes as its item says, each the size's low byte. */
static int sized_job(br_job *job, const void *in, size_t len)
{
	static char buf[1 << 20];
	uint32_t n;

	memcpy(&n, in, sizeof(n));
	memset(buf, (uint8_t)n, n);
	return br_job_write(job, buf, n);
}

/* With a max_payload of 1 MiB a chunk's output has 1 MiB + 128 KiB
 * (pool.c, make_shm): these two items fill it to the byte. */
static const uint32_t sizes[4] = { 1 << 20, (128 << 10) - 16, 8, 8 };

/* Items of one chunk whose outputs together pass max_payload: those that
 * fit keep their outputs, each one after fails with -EMSGSIZE. */
Test(pool, map_items_past_max_payload_fail_alone, .timeout = 60)
{
	br_runtime *rt = t_runtime(1, 0);
	br_pool *p = pool_of(rt, &(br_pool_config){ .workers = 1,
						    .max_payload = 1 << 20 });
	uint8_t items[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	size_t len;
	int err;
	br_future *f =
		br_map_ex(p, fill_job, items, 1, 8, 8, BR_MAP_ITEM_ERRORS);

	cr_assert_eq(await_within(f, 10000), 0, "%s", br_future_message(f));
	for (unsigned i = 0; i < 8; i++) {
		const uint8_t *o = br_map_item(f, i, &len, &err);

		if (i < 5) {
			cr_assert_eq(err, 0, "item %u: %d", i, err);
			cr_assert_eq(len, 200 << 10);
			cr_assert_eq(o[0], items[i]);
			cr_assert_eq(o[len - 1], items[i]);
		} else {
			cr_assert_null(o);
			cr_assert_eq(err, -EMSGSIZE, "item %u: %d", i, err);
		}
	}
	br_future_release(f);
	/* By default the first of them fails the map. */
	f = br_map(p, fill_job, items, 1, 8, 8);
	cr_assert_eq(await_within(f, 10000), -EMSGSIZE);
	cr_assert(strstr(br_future_message(f), "item 5") != NULL, "%s",
		  br_future_message(f));
	br_future_release(f);
	/* Outputs that leave no room for the next item's header: the
	 * chunk's output ends there, and so does every item after. */
	f = br_map_ex(p, sized_job, sizes, sizeof(sizes[0]), 4, 4,
		      BR_MAP_ITEM_ERRORS);
	cr_assert_eq(await_within(f, 10000), 0, "%s", br_future_message(f));
	for (unsigned i = 0; i < 4; i++) {
		const uint8_t *o = br_map_item(f, i, &len, &err);

		if (i < 2) {
			cr_assert_eq(err, 0, "item %u: %d", i, err);
			cr_assert_eq(len, sizes[i]);
			cr_assert_eq(o[len - 1], (uint8_t)sizes[i]);
		} else {
			cr_assert_eq(err, -EMSGSIZE, "item %u: %d", i, err);
			cr_assert_str_neq(br_map_item_message(f, i), "");
		}
	}
	br_future_release(f);
	finish(p, rt);
}

struct ticker {
	atomic_int stop;
	int64_t longest_ns; /* the longest gap between two wake-ups */
	long ticks;
};

/* Sleeps 1 ms at a time until stopped, timing the gaps. */
static void *tick_task(void *arg)
{
	struct ticker *tk = arg;
	int64_t last = br_now_ns(), now;

	while (!atomic_load(&tk->stop)) {
		br_sleep_ms(1);
		now = br_now_ns();
		if (now - last > tk->longest_ns)
			tk->longest_ns = now - last;
		last = now;
		tk->ticks++;
	}
	return NULL;
}

/* The pool's collector, a task, drained results and refilled the ring
 * for as long as there was any to move: through a long map of items as
 * quick to run as to copy it held its worker, and a task that shared it
 * waited for most of the map. Once per slice of work it now lets the
 * worker's timers, I/O and other tasks run. The bound grows with the
 * maps' time, which sanitizers stretch. */
Test(pool, a_long_map_leaves_room_for_the_collectors_other_tasks,
     .timeout = 120)
{
	enum {
		N = 100000,
		INTS = 100
	};
	int32_t *items = calloc(N, INTS * sizeof(int32_t));

	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(1, flags);
		br_pool *p = pool_of(rt, &(br_pool_config){ .workers = 1 });
		struct ticker tk = { .longest_ns = 0 };
		br_future *t, *f;
		int64_t t0, map_ns;

		t = br_spawn(rt, tick_task, &tk);
		br_sleep_ms(20);
		t0 = br_now_ns();
		for (int rep = 0; rep < 3; rep++) {
			f = br_map(p, sum_job, items, INTS * sizeof(int32_t), N,
				   0);
			cr_assert_eq(await_within(f, 60000), 0, "%s",
				     br_future_message(f));
			br_future_release(f);
		}
		map_ns = br_now_ns() - t0;
		atomic_store(&tk.stop, 1);
		cr_assert_eq(br_wait_for(t, 10000, NULL), 0);
		br_future_release(t);
		cr_assert_lt(tk.longest_ns, 50 * T_NS_PER_MS + map_ns / 16,
			     "the sleeper waited %.1f ms in maps of %.1f ms "
			     "(%ld ticks)",
			     tk.longest_ns / 1e6, map_ns / 1e6, tk.ticks);
		finish(p, rt);
	}
	free(items);
}

/* CPU time of this process's threads so far, in ns. */
static int64_t self_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/*
 * The collector watches the result rings for a while after results
 * stop coming, and then sleeps: a pool whose jobs have all come back
 * costs its parent nothing while it is left alone, after a burst of
 * jobs as after a single one.
 */
Test(pool, a_pool_left_alone_goes_quiet, .timeout = 60)
{
	int32_t in[100] = { 1 };

	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(2, flags);
		br_pool *p = pool_of(rt, &(br_pool_config){ .workers = 2 });

		for (int burst = 0; burst < 2; burst++) {
			int n = burst ? 1 : 2000;
			br_future **fs = calloc((size_t)n, sizeof(*fs));
			int64_t cpu;

			for (int i = 0; i < n; i++)
				fs[i] = br_submit(p, sum_job, in, sizeof(in));
			cr_assert_eq(br_gather(fs, (size_t)n, NULL), 0);
			for (int i = 0; i < n; i++)
				br_future_release(fs[i]);
			free(fs);
			br_sleep_ms(20); /* the watch's longest is far less */
			cpu = self_cpu_ns();
			br_sleep_ms(300);
			cpu = self_cpu_ns() - cpu;
			cr_assert_lt(cpu, 30 * T_NS_PER_MS,
				     "%.1f ms of CPU in 300 ms alone, after "
				     "%d jobs",
				     cpu / 1e6, n);
		}
		finish(p, rt);
	}
}

static void check_imap(unsigned flags)
{
	enum {
		N = 3000
	};
	br_runtime *rt = t_runtime(2, 0);
	br_pool *p = pool_of(rt, &(br_pool_config){ .workers = 2 });
	uint32_t *items = malloc(N * sizeof(*items));
	char *seen = calloc(N, 1);
	size_t idx, len, count = 0, last = 0;
	const void *out;
	br_imap *it;
	int r;

	for (uint32_t i = 0; i < N; i++)
		items[i] = i;
	cr_assert_eq(br_imap_new(&it, p, fail_odd_job, items, sizeof(*items), N,
				 7, flags),
		     0);
	while ((r = br_imap_next(it, &idx, &out, &len)) != BR_EDONE) {
		cr_assert(idx < N);
		cr_assert_eq(seen[idx], 0, "item %zu twice", idx);
		seen[idx] = 1;
		if (!(flags & BR_IMAP_UNORDERED))
			cr_assert(count == 0 || idx == last + 1);
		last = idx;
		count++;
		if (idx % 2) {
			cr_assert_eq(r, -EDOM);
			cr_assert_str_eq(br_imap_message(it), "odd item");
		} else {
			cr_assert_eq(r, 0);
			cr_assert_eq(len, 4);
			cr_assert_eq(*(const uint32_t *)out, idx);
		}
	}
	cr_assert_eq(count, N);
	cr_assert_eq(br_imap_next(it, &idx, &out, &len), BR_EDONE);
	br_imap_free(it);
	free(items);
	free(seen);
	finish(p, rt);
}

Test(pool, imap_in_input_order, .timeout = 60)
{
	check_imap(0);
}

Test(pool, imap_unordered_returns_every_item_once, .timeout = 60)
{
	check_imap(BR_IMAP_UNORDERED);
}

static atomic_int imap_calling;

static void *imap_next_task(void *arg)
{
	size_t idx = 99;
	int r;

	atomic_store(&imap_calling, 1);
	r = br_imap_next(arg, &idx, NULL, NULL);

	return r == 0 && idx == 0 ? NULL :
				    (void *)"first call did not get item 0";
}

Test(pool, imap_refuses_a_second_caller_while_one_waits, .timeout = 60)
{
	br_runtime *rt = t_runtime(2, 0);
	br_pool *p = pool_of(rt, &(br_pool_config){ .workers = 2 });
	uint32_t naps[2] = { 300, 300 };
	size_t idx = 99;
	br_future *f;
	br_imap *it;
	void *v;

	cr_assert_eq(br_imap_new(&it, p, nap_job, naps, sizeof(naps[0]), 2, 1,
				 0),
		     0);
	f = br_spawn(rt, imap_next_task, it);
	/* Started (a fixed pause proves nothing on a loaded machine), and a
	 * moment to get into the call. */
	cr_assert_eq(t_wait_until(&imap_calling, 1, 10000 * T_NS_PER_MS), 0);
	br_sleep_ms(50);
	cr_assert_eq(br_future_state(f), BR_PENDING);
	cr_assert_eq(br_imap_next(it, &idx, NULL, NULL), -EBUSY);
	cr_assert_eq(idx, 99, "a refused call wrote its index");
	cr_assert_eq(br_await(f, &v), 0);
	cr_assert_null(v, "%s", (const char *)v);
	br_future_release(f);
	/* The cursor moved on exactly once. */
	cr_assert_eq(br_imap_next(it, &idx, NULL, NULL), 0);
	cr_assert_eq(idx, 1);
	cr_assert_eq(br_imap_next(it, &idx, NULL, NULL), BR_EDONE);
	br_imap_free(it);
	finish(p, rt);
}

Test(pool, job_error_and_message_reach_the_future, .timeout = 60)
{
	br_runtime *rt = t_runtime(1, 0);
	br_pool *p = pool_of(rt, &(br_pool_config){ .workers = 1 });
	br_future *f = br_submit(p, fail_odd_job, (uint32_t[]){ 3 }, 4);

	cr_assert_eq(br_await(f, NULL), -EDOM);
	cr_assert_eq(br_future_state(f), BR_FAILED);
	cr_assert_str_eq(br_future_message(f), "odd item");
	br_future_release(f);
	finish(p, rt);
}

/* Each fault fails its own job with the right error, and the pool then
 * serves 10,000 more jobs. */
Test(pool, faults_fail_alone_and_the_pool_keeps_serving, .timeout = 120)
{
	br_runtime *rt = t_runtime(2, 0);
	br_pool *p = pool_of(rt, &(br_pool_config){ .workers = 2 });
	br_future *f;
	pid_t pids[2];
	uint32_t ms = 5000;
	int64_t t0;

	f = br_submit(p, abort_job, NULL, 0);
	cr_assert_eq(br_await(f, NULL), BR_EWORKERDIED);
	cr_assert(strstr(br_future_message(f), "signal 6") != NULL, "%s",
		  br_future_message(f));
	br_future_release(f);
	cr_assert_eq(run_sums(p, 10000), 10000);

	f = br_submit(p, self_kill_job, NULL, 0);
	cr_assert_eq(br_await(f, NULL), BR_EWORKERDIED);
	cr_assert(strstr(br_future_message(f), "signal 9") != NULL);
	br_future_release(f);
	cr_assert_eq(run_sums(p, 10000), 10000);

	/* Killed from outside while running. */
	f = br_submit(p, nap_job, &ms, sizeof(ms));
	cr_assert_eq(br_pool_pids(p, pids, 2), 2);
	cr_assert(pids[0] > 0 && pids[1] > 0); /* kill(0) is the group */
	usleep(100 * 1000);
	kill(pids[0], SIGKILL);
	kill(pids[1], SIGKILL);
	cr_assert_eq(br_await(f, NULL), BR_EWORKERDIED);
	br_future_release(f);
	cr_assert_eq(run_sums(p, 10000), 10000);

	t0 = br_now_ns();
	f = br_submit_timeout(p, forever_job, NULL, 0, 50);
	cr_assert_eq(br_await(f, NULL), -ETIMEDOUT);
	cr_assert_lt(t_elapsed_ms(t0), 2000);
	br_future_release(f);
	cr_assert_eq(run_sums(p, 10000), 10000);
	finish(p, rt);
}

Test(pool, default_timeout_applies_and_others_finish, .timeout = 60)
{
	br_runtime *rt = t_runtime(2, 0);
	br_pool *p = pool_of(rt, &(br_pool_config){ .workers = 2,
						    .timeout_ms = 100 });
	br_future *slow = br_submit(p, forever_job, NULL, 0);
	br_future *quick = br_submit(p, nap_job, (uint32_t[]){ 10 }, 4);

	cr_assert_eq(br_await(slow, NULL), -ETIMEDOUT);
	cr_assert_eq(br_await(quick, NULL), 0);
	br_future_release(slow);
	br_future_release(quick);
	finish(p, rt);
}

Test(pool, max_jobs_recycles_workers, .timeout = 60)
{
	br_runtime *rt = t_runtime(1, 0);
	br_pool *p =
		pool_of(rt, &(br_pool_config){ .workers = 1, .max_jobs = 3 });
	pid_t seen[12];
	int distinct = 0;

	for (int i = 0; i < 12; i++) {
		br_future *f = br_submit(p, pid_job, NULL, 0);

		cr_assert_eq(br_await(f, NULL), 0, "%s", br_future_message(f));
		seen[i] = *(const pid_t *)br_future_bytes(f, NULL);
		br_future_release(f);
	}
	for (int i = 0; i < 12; i++)
		distinct += i == 0 || seen[i] != seen[i - 1];
	cr_assert_eq(distinct, 4, "12 jobs, 3 per worker: 4 workers");
	finish(p, rt);
}

Test(pool, initializer_state_is_visible_to_jobs, .timeout = 60)
{
	int v = 4242;
	br_runtime *rt = t_runtime(2, 0);
	br_pool *p = pool_of(rt, &(br_pool_config){ .workers = 2,
						    .init = init_fn,
						    .init_arg = &v,
						    .init_len = sizeof(v) });

	for (int i = 0; i < 8; i++) {
		br_future *f = br_submit(p, init_job, NULL, 0);

		cr_assert_eq(br_await(f, NULL), 0);
		cr_assert_eq(*(const int *)br_future_bytes(f, NULL), 4242);
		br_future_release(f);
	}
	cr_assert_eq(init_seen, 0, "the parent never runs the initializer");
	finish(p, rt);
}

Test(pool, failing_initializer_fails_pool_new, .timeout = 60)
{
	br_runtime *rt = t_runtime(1, 0);
	br_pool *p = NULL;

	cr_assert_eq(br_pool_new(&p, rt,
				 &(br_pool_config){ .workers = 2,
						    .init = init_fail_fn }),
		     -EPERM);
	cr_assert_null(p);
	br_runtime_free(rt);
	cr_assert_eq(count_stray(), 0);
}

Test(pool, cancel_queued_and_running_jobs, .timeout = 60)
{
	br_runtime *rt = t_runtime(1, 0);
	br_pool *p = pool_of(rt, &(br_pool_config){ .workers = 1 });
	br_future *running = br_submit(p, forever_job, NULL, 0);
	br_future *queued = br_submit(p, sum_job, NULL, 0);
	pid_t before, after;

	usleep(50 * 1000);
	br_pool_pids(p, &before, 1);
	cr_assert_eq(br_cancel(queued), 0);
	cr_assert_eq(br_future_state(queued), BR_CANCELLED);
	cr_assert_eq(br_cancel(running), 0);
	cr_assert_eq(br_await(running, NULL), -ECANCELED);
	cr_assert_eq(br_future_state(running), BR_CANCELLED);
	assert_sum(br_submit(p, sum_job, (int32_t[]){ 5, 6 }, 8), 11);
	br_pool_pids(p, &after, 1);
	cr_assert_neq(before, after, "the running job's worker was replaced");
	br_future_release(running);
	br_future_release(queued);
	finish(p, rt);
}

Test(pool, free_with_jobs_in_flight_cancels_them, .timeout = 60)
{
	br_runtime *rt = t_runtime(2, 0);
	br_pool *p = pool_of(rt, &(br_pool_config){ .workers = 2 });
	br_future *fs[600];

	for (int i = 0; i < 600; i++)
		fs[i] = br_submit(p, nap_job, (uint32_t[]){ i < 2 ? 5000 : 1 },
				  4);
	br_pool_free(p);
	for (int i = 0; i < 600; i++) {
		br_state st = br_future_state(fs[i]);

		cr_assert(st == BR_CANCELLED || st == BR_DONE, "job %d: %d", i,
			  st);
		br_future_release(fs[i]);
	}
	br_runtime_free(rt);
	cr_assert_eq(count_stray(), 0);
}

/* Leaves a file at the path it is given, and answers the path. */
static int mark_job(br_job *job, const void *in, size_t len)
{
	int fd = open(in, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);

	if (fd < 0)
		return br_job_fail(job, -errno, "cannot mark");
	close(fd);
	return br_job_write(job, in, len);
}

/* Holds its worker until the file at path arg exists. */
static void *hold_until_marked(void *arg)
{
	int64_t end = br_now_ns() + 10000 * T_NS_PER_MS;

	while (access(arg, F_OK) && br_now_ns() < end)
		usleep(1000);
	return NULL;
}

static void slow_callback(br_future *f, void *arg)
{
	(void)f;
	atomic_store((atomic_int *)arg, 1);
	usleep(300 * 1000);
}

/* The collector claims a batch of results, then completes them one by
 * one: while the first one's done-callback ran, br_pool_free found the
 * second claimed, left it alone and returned with its future pending.
 * It now waits for what others claimed to be completed. */
Test(pool, free_returns_after_every_jobs_future_has_completed, .timeout = 60)
{
	br_runtime *rt = t_runtime(1, 0);
	br_pool *p = pool_of(rt, &(br_pool_config){ .workers = 1 });
	atomic_int in_callback = 0;
	char paths[3][64];
	br_future *a, *b, *c, *hold;
	size_t len;

	for (int i = 0; i < 3; i++) {
		snprintf(paths[i], sizeof(paths[i]), "/tmp/braid-free-%d-%d",
			 (int)getpid(), i);
		unlink(paths[i]);
	}
	/* The runtime's one worker is held until the pool's one worker has
	 * started c, so has returned from a and b, whose results the
	 * collector then finds together. */
	hold = br_spawn(rt, hold_until_marked, paths[2]);
	a = br_submit(p, mark_job, paths[0], strlen(paths[0]) + 1);
	b = br_submit(p, mark_job, paths[1], strlen(paths[1]) + 1);
	c = br_submit(p, mark_job, paths[2], strlen(paths[2]) + 1);
	cr_assert_eq(br_future_on_done(a, slow_callback, &in_callback), 0);
	t_await_value(hold);
	br_future_release(hold);
	cr_assert_eq(access(paths[2], F_OK), 0, "c never ran");
	while (!atomic_load(&in_callback))
		usleep(1000);
	br_pool_free(p);
	cr_assert_eq(br_future_state(b), BR_DONE,
		     "b in state %d (0: pending) after br_pool_free",
		     br_future_state(b));
	cr_assert_str_eq(br_future_bytes(b, &len), paths[1]);
	br_future_release(a);
	br_future_release(b);
	br_future_release(c);
	br_runtime_free(rt);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(unlink(paths[i]), 0);
}

struct mix {
	br_pool *p;
	int ok;
};

static void *answer_task(void *arg)
{
	return arg;
}

/* From a task: pool futures in gather, wait_any and as_completed along
 * with task futures. */
static void *mix_task(void *arg)
{
	struct mix *m = arg;
	br_future *fs[4];
	br_as_completed *ac;
	int n = 0;

	fs[0] = br_submit(m->p, sum_job, (int32_t[]){ 1, 2 }, 8);
	fs[1] = br_spawn(br_current_runtime(), answer_task, (void *)7);
	fs[2] = br_map(m->p, sum_job, (int32_t[]){ 1, 2, 3 }, 4, 3, 0);
	fs[3] = br_submit(m->p, nap_job, (uint32_t[]){ 20 }, 4);
	T_REQUIRE(br_wait_any(fs, 4, -1) >= 0);
	T_REQUIRE(br_gather(fs, 4, NULL) == 0);
	T_REQUIRE(*(const int64_t *)br_future_bytes(fs[0], NULL) == 3);
	T_REQUIRE(*(const int64_t *)br_map_result(fs[2], 2, NULL) == 3);
	ac = br_as_completed_new(fs, 4);
	while (br_as_completed_next(ac))
		n++;
	br_as_completed_free(ac);
	T_REQUIRE(n == 4);
	for (int i = 0; i < 4; i++)
		br_future_release(fs[i]);
	m->ok = 1;
	return NULL;
}

Test(pool, futures_mix_with_task_futures_from_a_task, .timeout = 60)
{
	br_runtime *rt = t_runtime(2, 0);
	struct mix m = { pool_of(rt, &(br_pool_config){ .workers = 2 }), 0 };
	br_future *t = br_spawn(rt, mix_task, &m);

	t_assert_task_ok(t);
	cr_assert_eq(m.ok, 1);
	finish(m.p, rt);
}

Test(pool, bad_input_gives_clear_errors, .timeout = 60)
{
	br_runtime *rt = t_runtime(1, 0);
	br_runtime *plain = t_runtime_cfg(
		&(br_config){ .workers = 1, .flags = BR_CONFIG_NO_ZYGOTE });
	br_pool *p = pool_of(rt, &(br_pool_config){ .workers = 1 });
	br_pool *q = NULL;
	br_imap *it = NULL;
	br_future *f;

	cr_assert_eq(br_pool_new(NULL, rt, NULL), -EINVAL);
	cr_assert_eq(br_pool_new(&q, NULL, NULL), -EINVAL);
	cr_assert_eq(br_pool_new(&q, plain, NULL), -ENOTSUP);
	cr_assert_eq(br_pool_new(&q, rt,
				 &(br_pool_config){ .workers = 100000 }),
		     -EINVAL);
	cr_assert_eq(br_pool_new(&q, rt, &(br_pool_config){ .timeout_ms = -1 }),
		     -EINVAL);
	cr_assert_eq(br_pool_new(&q, rt,
				 &(br_pool_config){ .init_timeout_ms = -1 }),
		     -EINVAL);
	f = br_submit(NULL, sum_job, NULL, 0);
	cr_assert_eq(br_future_error(f), -EINVAL);
	br_future_release(f);
	f = br_submit(p, NULL, NULL, 0);
	cr_assert_eq(br_future_error(f), -EINVAL);
	br_future_release(f);
	f = br_submit(p, sum_job, NULL, 5);
	cr_assert_eq(br_future_error(f), -EINVAL);
	br_future_release(f);
	f = br_submit_timeout(p, sum_job, NULL, 0, -1);
	cr_assert_eq(br_future_error(f), -EINVAL);
	br_future_release(f);
	f = br_map(p, sum_job, NULL, 4, 3, 0);
	cr_assert_eq(br_future_error(f), -EINVAL);
	br_future_release(f);
	f = br_map(p, sum_job, "abcd", 0, 1, 0);
	cr_assert_eq(br_future_error(f), -EINVAL);
	br_future_release(f);
	cr_assert_eq(br_imap_new(&it, p, sum_job, "abcd", 4, 1, 0, 0x80),
		     -EINVAL);
	cr_assert_eq(br_imap_new(NULL, p, sum_job, "abcd", 4, 1, 0, 0),
		     -EINVAL);
	cr_assert_eq(br_imap_next(NULL, NULL, NULL, NULL), -EINVAL);
	cr_assert_eq(br_job_write(NULL, "x", 1), -EINVAL);
	cr_assert_eq(br_job_fail(NULL, 3, NULL), -EINVAL);
	cr_assert_eq(br_pool_pids(NULL, NULL, 0), -EINVAL);
	br_pool_free(NULL);
	br_imap_free(NULL);
	/* A task future is not a map's. */
	f = br_spawn(rt, answer_task, NULL);
	br_await(f, NULL);
	cr_assert_null(br_map_result(f, 0, NULL));
	br_future_release(f);
	br_runtime_free(plain);
	finish(p, rt);
}

/* No job is lost while workers are SIGKILLed at random every 10 ms. */
Test(pool, no_job_lost_while_workers_are_killed, .timeout = 180)
{
	enum {
		N = 10000
	};
	br_runtime *rt = t_runtime(2, 0);
	br_pool *p = pool_of(rt, &(br_pool_config){ .workers = 2 });
	br_future **fs = malloc(N * sizeof(*fs));
	uint64_t rng = 12345;
	int done = 0, died = 0, kills = 0;

	for (int i = 0; i < N; i++)
		fs[i] = br_submit(p, nap_job, (uint32_t[]){ i % 10 == 0 }, 4);
	for (;;) {
		int pending = 0;

		for (int i = 0; i < N; i++)
			pending += br_future_state(fs[i]) == BR_PENDING;
		if (!pending)
			break;
		usleep(10 * 1000);
		kills += t_kill_pool_worker(p, &rng);
	}
	for (int i = 0; i < N; i++) {
		int r = br_await(fs[i], NULL);

		cr_assert(r == 0 || r == BR_EWORKERDIED, "job %d: %d %s", i, r,
			  br_future_message(fs[i]));
		done += r == 0;
		died += r == BR_EWORKERDIED;
		br_future_release(fs[i]);
	}
	cr_assert_eq(done + died, N);
	cr_assert_leq(died, kills, "more jobs failed than workers died");
	cr_assert_gt(kills, 0);
	free(fs);
	finish(p, rt);
}

/* A zygote that dies is replaced by its spare: workers are still
 * replaced, and new pools still start. */
Test(pool, a_dead_zygote_is_replaced, .timeout = 60)
{
	br_runtime *rt = t_runtime(1, 0);
	br_pool *p = pool_of(rt, &(br_pool_config){ .workers = 1 }), *q;
	pid_t z = census_child_named("braid-zygote"), w;
	br_future *f;
	int32_t v = 7;

	cr_assert_gt(z, 0);
	cr_assert_gt(census_child_named("braid-spare"), 0,
		     "the zygote has a spare");
	cr_assert_eq(kill(z, SIGKILL), 0);
	cr_assert_eq(waitpid(z, NULL, 0), z);
	f = br_submit(p, forever_job, NULL, 0);
	usleep(50 * 1000);
	br_pool_pids(p, &w, 1);
	cr_assert_gt(w, 0);
	cr_assert_eq(kill(w, SIGKILL), 0);
	cr_assert_eq(br_await(f, NULL), BR_EWORKERDIED);
	br_future_release(f);
	f = br_submit(p, sum_job, &v, sizeof(v));
	cr_assert_eq(await_within(f, 10000), 0, "%s", br_future_message(f));
	cr_assert_eq(*(const int64_t *)br_future_bytes(f, NULL), 7);
	br_future_release(f);
	cr_assert_eq(br_pool_new(&q, rt, &(br_pool_config){ .workers = 1 }), 0);
	f = br_submit(q, sum_job, &v, sizeof(v));
	cr_assert_eq(await_within(f, 10000), 0, "%s", br_future_message(f));
	br_future_release(f);
	br_pool_free(q);
	cr_assert_gt(census_child_named("braid-spare"), 0, "a new spare");
	finish(p, rt);
}

/* Without a zygote or a spare no worker can be replaced: waiting jobs and
 * new ones fail instead of waiting forever. */
Test(pool, jobs_fail_when_no_worker_can_be_started, .timeout = 60)
{
	br_runtime *rt = t_runtime(1, 0);
	br_pool *p = pool_of(rt, &(br_pool_config){ .workers = 1 });
	pid_t w;
	br_future *f, *g;

	t_kill_zygote();
	f = br_submit(p, forever_job, NULL, 0);
	g = br_submit(p, sum_job, NULL, 0);
	br_pool_pids(p, &w, 1);
	cr_assert_gt(w, 0);
	cr_assert_eq(kill(w, SIGKILL), 0);
	cr_assert_eq(br_await(f, NULL), BR_EWORKERDIED);
	cr_assert_eq(br_await(g, NULL), BR_EWORKERDIED);
	br_future_release(f);
	br_future_release(g);
	f = br_submit(p, sum_job, NULL, 0);
	cr_assert_eq(br_future_error(f), BR_EWORKERDIED);
	/* A job refused later says why the pool takes no more. */
	cr_assert(strstr(br_future_message(f), "the zygote is gone"), "%s",
		  br_future_message(f));
	br_future_release(f);
	br_pool_free(p);
	br_runtime_free(rt);
	cr_assert_eq(t_count_children(), 0);
	/* The zygote and its spare are gone for good, and with them the
	 * program's socket to the zygote. */
	t_leak_expect(-1, 0, 0);
}

/* Every job, done or failed, counts once in br_stats. */
Test(pool, jobs_are_counted_in_stats, .timeout = 60)
{
	br_runtime *rt = t_runtime(2, 0);
	br_pool *p = pool_of(rt, &(br_pool_config){ .workers = 2 });
	br_runtime_stats st = { 0 };
	br_future *f;

	cr_assert_eq(run_sums(p, 500), 500);
	f = br_submit(p, abort_job, NULL, 0);
	cr_assert_eq(br_await(f, NULL), BR_EWORKERDIED);
	br_future_release(f);
	cr_assert_eq(br_stats(rt, &st), 2);
	cr_assert_eq(st.total.proc_jobs, 501);
	finish(p, rt);
}

/* ---- reliability: what a hostile caller or job does to the pool ---- */

static atomic_int busy_release;

static void *busy_task(void *arg)
{
	t_spin_until(&busy_release, 1, 60000 * T_NS_PER_MS);
	return NULL;
}

/* Resident memory of this process in KiB, from procfs. */
static long rss_kib(void)
{
	char *s = t_read_file("/proc/self/statm", NULL);
	long pages = 0, resident = 0;

	sscanf(s, "%ld %ld", &pages, &resident);
	free(s);
	return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* A pool freed while its runtime's only worker is busy has its tasks
 * cancelled before they ever start: the pool must still be freed. */
Test(pool, free_while_the_worker_is_busy_leaks_nothing, .timeout = 120)
{
	br_runtime *rt = t_runtime(1, 0);
	br_future *busy = br_spawn(rt, busy_task, NULL);
	int fds = 0, fds_after;
	long rss = 0, rss_after;

	/* One cycle first: the blocking pool's threads and caches. */
	for (int i = 0; i < 51; i++) {
		br_pool *p = pool_of(rt, &(br_pool_config){ .workers = 1 });

		br_pool_free(p);
		if (i == 0) {
			fds = t_count_fds();
			rss = rss_kib();
		}
	}
	fds_after = t_count_fds();
	rss_after = rss_kib();
	atomic_store(&busy_release, 1);
	cr_assert_eq(br_await(busy, NULL), 0);
	br_future_release(busy);
	br_runtime_free(rt);
	cr_assert_eq(fds_after, fds, "descriptors %d -> %d over 50 pools", fds,
		     fds_after);
	cr_assert_lt(rss_after - rss, 16 * 1024, "RSS %ld -> %ld KiB", rss,
		     rss_after);
	cr_assert_eq(count_stray(), 0);
}

/* Every bit of the sleepers mask: how many workers count as asleep. */
static int sleepers_of(br_pool *p)
{
	int n = 0;

	for (unsigned i = 0; i < BR__POOL_SLEEPER_WORDS; i++)
		n += __builtin_popcountll(atomic_load(&p->shm->sleepers[i]));
	return n;
}

/* Spins for the milliseconds in its input. */
static int spin_ms_job(br_job *job, const void *in, size_t len)
{
	uint32_t ms;

	memcpy(&ms, in, sizeof(ms));
	t_busy_ns((int64_t)ms * T_NS_PER_MS);
	return 0;
}

/* A worker SIGKILLed while asleep is no longer counted among the
 * sleepers: every later submit would pay a futex wake for it. */
Test(pool, workers_killed_asleep_leave_no_sleeper_behind, .timeout = 60)
{
	br_runtime *rt = t_runtime(1, 0);
	br_pool *p = pool_of(rt, &(br_pool_config){ .workers = 2 });
	pid_t pids[2], now[2];
	uint32_t ms = 1500;
	br_future *f[2];
	int64_t t0;

	for (t0 = br_now_ns(); sleepers_of(p) < 2; usleep(1000))
		cr_assert_lt(t_elapsed_ms(t0), 10000, "workers never slept");
	cr_assert_eq(br_pool_pids(p, pids, 2), 2);
	cr_assert_eq(kill(pids[0], SIGKILL), 0);
	cr_assert_eq(kill(pids[1], SIGKILL), 0);
	/* Replaced, and asleep again. */
	for (t0 = br_now_ns();; usleep(1000)) {
		cr_assert_lt(t_elapsed_ms(t0), 10000, "never replaced");
		br_pool_pids(p, now, 2);
		if (now[0] > 0 && now[1] > 0 && now[0] != pids[0] &&
		    now[1] != pids[1] && sleepers_of(p) >= 2)
			break;
	}
	f[0] = br_submit(p, spin_ms_job, &ms, sizeof(ms));
	f[1] = br_submit(p, spin_ms_job, &ms, sizeof(ms));
	/* Both workers are busy now: nobody sleeps. */
	for (t0 = br_now_ns(); sleepers_of(p) != 0; usleep(1000))
		cr_assert_lt(t_elapsed_ms(t0), 1000,
			     "%d sleepers counted while both workers run a job",
			     sleepers_of(p));
	cr_assert_eq(br_await(f[0], NULL), 0);
	cr_assert_eq(br_await(f[1], NULL), 0);
	br_future_release(f[0]);
	br_future_release(f[1]);
	finish(p, rt);
}

static int close_fds_job(br_job *job, const void *in, size_t len)
{
	for (int fd = 3; fd < 1024; fd++)
		close(fd);
	return br_job_write(job, "closed", 6);
}

/* A job that closes every descriptor of its worker (as daemon-style
 * code does) cannot hang the pool: its result, already in shared memory,
 * is delivered, its worker is replaced, and later jobs complete. */
Test(pool, a_job_that_closes_its_descriptors_does_not_hang_the_pool,
     .timeout = 60)
{
	br_runtime *rt = t_runtime(2, 0);
	br_pool *p = pool_of(rt, &(br_pool_config){ .workers = 1 });
	br_future *f = br_submit(p, close_fds_job, NULL, 0);
	int r = await_within(f, 10000);

	cr_assert_eq(r, 0, "the job: %d (%s)", r, br_future_message(f));
	cr_assert_eq(memcmp(br_future_bytes(f, NULL), "closed", 6), 0);
	br_future_release(f);
	for (int32_t i = 0; i < 20; i++) {
		f = br_submit(p, sum_job, &i, sizeof(i));
		cr_assert_eq(await_within(f, 10000), 0, "job %d after: %s", i,
			     br_future_message(f));
		cr_assert_eq(*(const int64_t *)br_future_bytes(f, NULL), i);
		br_future_release(f);
	}
	finish(p, rt);
}

#define PLANTED 128
static int planted[PLANTED], nplanted;

/* Close every descriptor and open eventfds of the job's own in their
 * place, as a job that uses eventfds after daemon-style cleanup does:
 * one of them lands on the number of the pool's doorbell. */
static int plant_eventfds_job(br_job *job, const void *in, size_t len)
{
	for (int fd = 3; fd < 1024; fd++)
		close(fd);
	for (nplanted = 0; nplanted < PLANTED; nplanted++) {
		planted[nplanted] = eventfd(0, EFD_NONBLOCK);
		if (planted[nplanted] < 0)
			return br_job_fail(job, -errno, "eventfd failed");
	}
	usleep(20 * 1000); /* so that the collector is asleep when it ends */
	return br_job_write(job, "planted", 7);
}

/* What the eventfds planted by an earlier job in this process count. */
static int read_planted_job(br_job *job, const void *in, size_t len)
{
	int64_t total = 0;

	for (int i = 0; i < nplanted; i++) {
		uint64_t v = 0;

		if (read(planted[i], &v, sizeof(v)) == sizeof(v))
			total += (int64_t)v;
	}
	return br_job_write(job, &total, sizeof(total));
}

/* A worker never writes its wake-up into a file of the job's, even an
 * eventfd the job opened on the doorbell's number: it sees the doorbell
 * is gone and leaves, and the job's eventfds count nothing. */
Test(pool, a_job_that_reopens_the_doorbell_number_keeps_its_eventfds,
     .timeout = 60)
{
	br_runtime *rt = t_runtime(2, 0);
	br_pool *p = pool_of(rt, &(br_pool_config){ .workers = 1 });
	br_future *f = br_submit(p, plant_eventfds_job, NULL, 0);
	int64_t counted;

	cr_assert_eq(await_within(f, 10000), 0, "%s", br_future_message(f));
	cr_assert_eq(memcmp(br_future_bytes(f, NULL), "planted", 7), 0);
	br_future_release(f);
	f = br_submit(p, read_planted_job, NULL, 0);
	cr_assert_eq(await_within(f, 10000), 0, "%s", br_future_message(f));
	memcpy(&counted, br_future_bytes(f, NULL), sizeof(counted));
	cr_assert_eq(counted, 0, "the job's eventfds counted %lld wake-ups",
		     (long long)counted);
	br_future_release(f);
	finish(p, rt);
}

/* Make this process the owner of every open file it has, as code that
 * sets up SIGIO on all its descriptors does: the doorbell's too. */
static int own_every_file_job(br_job *job, const void *in, size_t len)
{
	for (int fd = 3; fd < 1024; fd++)
		(void)fcntl(fd, F_SETOWN, getpid());
	usleep(5 * 1000); /* the collector sleeps: the worker checks */
	return pid_job(job, in, len);
}

/* A job that re-owns the doorbell costs one worker: the parent marks
 * the doorbell again, and the next worker stays. The jobs after it nap,
 * so that the collector sleeps before each ends and the worker rings the
 * doorbell, and checks it, every time. The worker that ran the job may
 * run one more (if the collector was awake when the job ended, it did
 * not ring), so at most one change of worker. */
Test(pool, a_job_that_reowns_the_doorbell_costs_one_worker, .timeout = 60)
{
	br_runtime *rt = t_runtime(2, 0);
	br_pool *p = pool_of(rt, &(br_pool_config){ .workers = 1 });
	br_future *f = br_submit(p, own_every_file_job, NULL, 0);
	uint32_t ms = 5;
	pid_t last = 0, ran;
	int changes = 0;

	cr_assert_eq(await_within(f, 10000), 0, "%s", br_future_message(f));
	memcpy(&last, br_future_bytes(f, NULL), sizeof(last));
	br_future_release(f);
	for (int i = 0; i < 10; i++) {
		f = br_submit(p, nap_job, &ms, sizeof(ms));
		cr_assert_eq(await_within(f, 10000), 0, "job %d: %s", i,
			     br_future_message(f));
		memcpy(&ran, br_future_bytes(f, NULL), sizeof(ran));
		br_future_release(f);
		changes += ran != last;
		last = ran;
	}
	cr_assert_leq(changes, 1, "the worker changed %d times in 10 jobs",
		      changes);
	finish(p, rt);
}

static int kill_group_job(br_job *job, const void *in, size_t len)
{
	kill(0, SIGTERM);
	pause();
	return 0;
}

/* A job that signals its process group (as shell-like code does) kills
 * its own worker only: not the zygote, its spare, or another pool's
 * workers, and every pool goes on. */
Test(pool, a_job_that_signals_its_group_kills_only_its_worker, .timeout = 60)
{
	br_runtime *rt = t_runtime(2, 0);
	br_pool *p = pool_of(rt, &(br_pool_config){ .workers = 2 });
	br_pool *q = pool_of(rt, &(br_pool_config){ .workers = 2 }), *r;
	pid_t z = census_child_named("braid-zygote"), qpids[2], after[2];
	br_future *f = br_submit(p, kill_group_job, NULL, 0);
	int32_t v = 5;

	cr_assert_eq(br_pool_pids(q, qpids, 2), 2);
	cr_assert_eq(await_within(f, 10000), BR_EWORKERDIED);
	cr_assert(strstr(br_future_message(f), "signal 15"), "%s",
		  br_future_message(f));
	br_future_release(f);
	cr_assert_eq(census_child_named("braid-zygote"), z, "the zygote lives");
	br_pool_pids(q, after, 2);
	cr_assert(after[0] == qpids[0] && after[1] == qpids[1],
		  "the other pool's workers live");
	for (int i = 0; i < 2; i++) {
		f = br_submit(i ? q : p, sum_job, &v, sizeof(v));
		cr_assert_eq(await_within(f, 10000), 0, "%s",
			     br_future_message(f));
		br_future_release(f);
	}
	cr_assert_eq(br_pool_new(&r, rt, &(br_pool_config){ .workers = 1 }), 0);
	br_pool_free(r);
	br_pool_free(q);
	finish(p, rt);
}

static void *in_job_task(void *arg)
{
	return (void *)(intptr_t)41;
}

static int run_in_job(br_job *job, const void *in, size_t len)
{
	void *v = NULL;
	int r = br_run(&(br_config){ .workers = 1, .flags = BR_CONFIG_QUIET },
		       in_job_task, NULL, &v);
	int64_t out = r < 0 ? r : (intptr_t)v + 1;

	return br_job_write(job, &out, sizeof(out));
}

static int exec_in_job(br_job *job, const void *in, size_t len)
{
	br_runtime *rt = NULL;
	const char *argv[] = { "/bin/sh", "-c", "printf hello", NULL };
	br_exec_opts o = { .stdout_mode = BR_EXEC_CAPTURE };
	br_future *f;
	size_t n = 0;
	const void *b;
	int r = br_runtime_new(&rt, &(br_config){ .workers = 1,
						  .flags = BR_CONFIG_QUIET });

	if (r < 0)
		return r;
	f = br_exec(rt, argv, &o);
	r = br_await(f, NULL);
	b = br_future_bytes(f, &n);
	if (r == 0)
		r = br_job_write(job, b, n);
	br_future_release(f);
	br_runtime_free(rt);
	return r;
}

/* A job may start a runtime of its own, with its own subprocesses: the
 * zygote it was forked from held no lock of the program's. */
Test(pool, a_job_may_run_a_runtime_and_subprocesses, .timeout = 60)
{
	br_runtime *rt = t_runtime(1, 0);
	br_pool *p = pool_of(rt, &(br_pool_config){ .workers = 1 });
	br_future *f = br_submit(p, run_in_job, NULL, 0);
	size_t n;
	const char *b;

	cr_assert_eq(await_within(f, 10000), 0, "br_run: %s",
		     br_future_message(f));
	cr_assert_eq(*(const int64_t *)br_future_bytes(f, NULL), 42);
	br_future_release(f);
	f = br_submit(p, exec_in_job, NULL, 0);
	cr_assert_eq(await_within(f, 10000), 0, "br_exec: %s",
		     br_future_message(f));
	b = br_future_bytes(f, &n);
	cr_assert_eq(n, 5);
	cr_assert_eq(memcmp(b, "hello", 5), 0);
	br_future_release(f);
	finish(p, rt);
}

/* Forks a child that sleeps a minute, records its pid in the file named
 * by its input, and crashes. */
static int orphan_job(br_job *job, const void *in, size_t len)
{
	pid_t c = fork();
	FILE *f;

	if (c == 0) {
		sleep(60);
		_exit(0);
	}
	f = fopen(in, "w");
	if (f) {
		fprintf(f, "%d\n", (int)c);
		fclose(f);
	}
	abort();
	return 0;
}

/* The children a job leaves behind die with its worker. */
Test(pool, grandchildren_die_with_their_worker, .timeout = 60)
{
	br_runtime *rt = t_runtime(1, 0);
	char grandchild_file[64];
	br_pool *p;
	br_future *f;
	char *s;
	pid_t g;
	int64_t t0;

	snprintf(grandchild_file, sizeof(grandchild_file),
		 "/tmp/braid-grandchild.%d", (int)getpid());
	p = pool_of(rt, &(br_pool_config){ .workers = 1 });
	f = br_submit(p, orphan_job, grandchild_file,
		      strlen(grandchild_file) + 1);
	cr_assert_eq(await_within(f, 10000), BR_EWORKERDIED);
	br_future_release(f);
	s = t_read_file(grandchild_file, NULL);
	unlink(grandchild_file);
	g = (pid_t)atoi(s);
	free(s);
	cr_assert_gt(g, 0);
	for (t0 = br_now_ns(); kill(g, 0) == 0; usleep(1000))
		cr_assert_lt(t_elapsed_ms(t0), 5000,
			     "grandchild %d outlived its worker", (int)g);
	finish(p, rt);
}

/* Three writes of 360 KiB: the third passes a 1 MiB max_payload. */
static int three_writes_job(br_job *job, const void *in, size_t len)
{
	static char buf[360 << 10];
	int r = 0;

	for (int i = 0; i < 3 && r == 0; i++)
		r = br_job_write(job, buf, sizeof(buf));
	return r;
}

/* max_payload bounds a job's whole output, however many writes make it. */
Test(pool, output_written_in_pieces_is_held_to_max_payload, .timeout = 60)
{
	br_runtime *rt = t_runtime(1, 0);
	br_pool *p = pool_of(rt, &(br_pool_config){ .workers = 1,
						    .max_payload = 1 << 20 });
	br_future *f = br_submit(p, three_writes_job, NULL, 0);
	size_t n = 0;

	cr_assert_eq(await_within(f, 10000), -EMSGSIZE, "%zu bytes came back",
		     (br_future_bytes(f, &n), n));
	br_future_release(f);
	finish(p, rt);
}

/* Never returns when the file named by its argument exists. */
static int stuck_init_fn(const void *arg, size_t len)
{
	while (access(arg, F_OK) == 0)
		pause();
	return 0;
}

/* An initializer that never returns is held to the pool's limit:
 * br_pool_new fails with -ETIMEDOUT instead of hanging, and leaves no
 * process behind. */
Test(pool, an_initializer_that_never_returns_fails_pool_new, .timeout = 60)
{
	br_runtime *rt = t_runtime(1, 0);
	char path[64];
	br_pool *p = NULL;
	int64_t t0;
	int fd;

	snprintf(path, sizeof(path), "/tmp/braid-stuck.%d", (int)getpid());
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	cr_assert_geq(fd, 0);
	close(fd);
	t0 = br_now_ns();
	cr_assert_eq(
		br_pool_new(&p, rt,
			    &(br_pool_config){ .workers = 2,
					       .init = stuck_init_fn,
					       .init_arg = path,
					       .init_len = strlen(path) + 1,
					       .init_timeout_ms = 300 }),
		-ETIMEDOUT);
	cr_assert_lt(t_elapsed_ms(t0), 5000);
	unlink(path);
	br_runtime_free(rt);
	cr_assert_eq(count_stray(), 0);
}

/* A replacement whose initializer never returns is killed at the limit
 * and counts as a failed initializer: jobs fail instead of waiting. The
 * limit leaves the first worker time to start on a loaded machine. */
Test(pool, a_replacement_stuck_in_its_initializer_fails_jobs, .timeout = 60)
{
	br_runtime *rt = t_runtime(1, 0);
	char path[64];
	br_pool *p;
	br_future *f;
	pid_t w;
	int fd;

	snprintf(path, sizeof(path), "/tmp/braid-stuck.%d", (int)getpid());
	unlink(path);
	p = pool_of(rt, &(br_pool_config){ .workers = 1,
					   .init = stuck_init_fn,
					   .init_arg = path,
					   .init_len = strlen(path) + 1,
					   .init_timeout_ms = 2000 });
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	cr_assert_geq(fd, 0);
	close(fd);
	br_pool_pids(p, &w, 1);
	cr_assert_eq(kill(w, SIGKILL), 0);
	f = br_submit(p, sum_job, NULL, 0);
	cr_assert_eq(await_within(f, 20000), BR_EWORKERDIED, "%s",
		     br_future_message(f));
	br_future_release(f);
	unlink(path);
	finish(p, rt);
}
