/* SPDX-License-Identifier: MIT */
/*
 * helpers.c - shared helpers for braid's Criterion tests; see helpers.h
 * for which of them may run off the test thread.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "census.h"
#include "helpers.h"

const struct t_config t_config_matrix[T_CONFIG_COUNT] = {
	{ .workers = 1, .flags = 0 },
	{ .workers = 2, .flags = 0 },
	{ .workers = 1, .flags = BR_CONFIG_NO_URING },
	{ .workers = 2, .flags = BR_CONFIG_NO_URING },
};

br_runtime *t_runtime_cfg(const br_config *cfg)
{
	br_config c = *cfg;
	br_runtime *rt = NULL;
	int ret;

	c.flags |= BR_CONFIG_QUIET;
	ret = br_runtime_new(&rt, &c);
	cr_assert_eq(ret, 0, "br_runtime_new: %s (%d)", br_strerror(ret), ret);
	cr_assert_not_null(rt);
	return rt;
}

br_runtime *t_runtime(unsigned workers, unsigned flags)
{
	br_config cfg = { .workers = workers, .flags = flags };

	return t_runtime_cfg(&cfg);
}

/* The number of live or zombie children of this process, from procfs. */
int t_count_children(void)
{
	return census_children(0, NULL);
}

int t_count_threads(void)
{
	return census_threads();
}

int t_count_fds(void)
{
	return census_fds();
}

void t_assert_threads_return_to(int baseline)
{
	int64_t start = br_now_ns();
	int n;

	while ((n = t_count_threads()) != baseline &&
	       br_now_ns() - start < 2000 * T_NS_PER_MS) {
		struct timespec ts = { 0, 1000000 };

		nanosleep(&ts, NULL);
	}
	cr_assert_eq(n, baseline, "%d threads left, %d before the runtime", n,
		     baseline);
}

void t_assert_no_leaked_fds(int before)
{
	int now = t_count_fds();

	cr_assert_eq(now, before, "%d fds open, %d before", now, before);
}

/* ---- leak accounting ---- */

static struct {
	int on;
	int fds, threads, children;
	struct census_fdset open; /* which were open at init */
} leak;

void t_leak_init(void)
{
	/* The fault sweep runs tests where failed assertions leave things
	 * behind by design; it looks for crashes and hangs only. */
	if (getenv("T_NO_LEAK_CHECK"))
		return;
	leak.fds = t_count_fds();
	leak.threads = t_count_threads();
	leak.children = census_children(1, NULL);
	cr_assert_geq(leak.children, 0, "cannot count this process's children");
	census_fds_note(&leak.open);
	leak.on = 1;
}

void t_leak_expect(int fds, int threads, int children_left)
{
	leak.fds += fds;
	leak.threads += threads;
	leak.children += children_left;
}

/* What is open now and was not at init, and every thread's name. */
static void leak_report(int fds, int threads, int kids)
{
	char path[64];
	DIR *d;
	struct dirent *e;

	fprintf(stderr,
		"leak: %d descriptors (%d before the test), %d threads "
		"(%d before), %d children (%d before) after %d ms\n",
		fds, leak.fds, threads, leak.threads, kids, leak.children,
		T_LEAK_WAIT_MS);
	census_fds_say(&leak.open, stderr, "  ");
	d = opendir("/proc/self/task");
	while (d && (e = readdir(d))) {
		char comm[300];
		FILE *f;

		if (e->d_name[0] == '.')
			continue;

		snprintf(comm, sizeof(comm), "/proc/self/task/%.32s/comm",
			 e->d_name);
		f = fopen(comm, "r");
		if (f && fgets(path, sizeof(path), f))
			fprintf(stderr, "  thread %s %s", e->d_name, path);
		if (f)
			fclose(f);
	}
	if (d)
		closedir(d);
	census_children(1, stderr);
}

void t_leak_fini(void)
{
	int64_t start = br_now_ns();
	int fds, threads, kids;

	if (!leak.on)
		return;
	for (;;) {
		fds = t_count_fds();
		threads = t_count_threads();
		kids = census_children(1, NULL);
		if ((fds == leak.fds && threads == leak.threads &&
		     kids == leak.children) ||
		    br_now_ns() - start > T_LEAK_WAIT_MS * T_NS_PER_MS)
			break;
		nanosleep(&(struct timespec){ 0, 2000000 }, NULL);
	}
	if (fds == leak.fds && threads == leak.threads && kids == leak.children)
		return;
	leak_report(fds, threads, kids);
	fflush(stderr);
	abort();
}

void t_busy_ns(int64_t ns)
{
	int64_t end = br_now_ns() + ns;

	while (br_now_ns() < end)
		;
}

int t_spin_until(atomic_int *v, int want, int64_t timeout_ns)
{
	int64_t end = br_now_ns() + timeout_ns;

	while (atomic_load(v) < want) {
		if (br_now_ns() > end)
			return -1;
	}
	return 0;
}

int t_wait_until(atomic_int *v, int want, int64_t timeout_ns)
{
	int64_t end = br_now_ns() + timeout_ns;

	while (atomic_load(v) < want) {
		if (br_now_ns() > end)
			return -1;
		br_sleep_ms(1);
	}
	return 0;
}

int64_t t_elapsed_ms(int64_t start_ns)
{
	return (br_now_ns() - start_ns) / T_NS_PER_MS;
}

uint64_t t_rand(uint64_t *state)
{
	uint64_t x = *state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * UINT64_C(2685821657736338717);
}

int t_kill_pool_worker(br_pool *pool, uint64_t *rng)
{
	pid_t pids[64], victim;
	int n = br_pool_pids(pool, pids, 64);

	if (n <= 0)
		return 0;
	victim = pids[t_rand(rng) % (uint64_t)(n < 64 ? n : 64)];
	return victim > 0 && kill(victim, SIGKILL) == 0;
}

unsigned t_stress_scale(void)
{
	const char *s = getenv("BRAID_STRESS_SCALE");
	char *end;
	unsigned long v;

	if (!s || !*s)
		return 1;
	v = strtoul(s, &end, 10);
	if (*end || v == 0 || v > 1000)
		return 1;
	return (unsigned)v;
}

void t_kill_zygote(void)
{
	pid_t z = census_child_named("braid-zygote");
	pid_t s = census_child_named("braid-spare");

	cr_assert_gt(z, 0, "no zygote");
	cr_assert_gt(s, 0, "no spare");
	cr_assert_eq(kill(s, SIGKILL), 0);
	cr_assert_eq(waitpid(s, NULL, 0), s);
	cr_assert_eq(kill(z, SIGKILL), 0);
	cr_assert_eq(waitpid(z, NULL, 0), z);
}

const unsigned t_modes[2] = { 0, BR_CONFIG_NO_URING };

int t_uring_available(void)
{
	struct io_uring ring;

	if (io_uring_queue_init(4, &ring, 0) < 0)
		return 0;
	io_uring_queue_exit(&ring);
	return 1;
}

void t_thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
	int ret = pthread_create(t, NULL, fn, arg);

	cr_assert_eq(ret, 0, "pthread_create: %s", strerror(ret));
}

void *t_thread_join(pthread_t t)
{
	void *ret = NULL;
	int err = pthread_join(t, &ret);

	cr_assert_eq(err, 0, "pthread_join: %s", strerror(err));
	return ret;
}

void *t_await_value(br_future *f)
{
	void *v = NULL;
	int ret = br_await(f, &v);

	cr_assert_eq(ret, 0, "br_await: %s (%d), message \"%s\"",
		     br_strerror(ret), ret, br_future_message(f));
	cr_assert_eq(br_future_state(f), BR_DONE);
	return v;
}

void t_assert_task_ok(br_future *f)
{
	const char *msg = t_await_value(f);

	cr_assert_null(msg, "%s", msg);
	br_future_release(f);
}

struct t_on_failure {
	void (*fn)(void *);
	void *arg;
};

static void on_failure_cb(br_future *f, void *arg)
{
	struct t_on_failure *of = arg;

	if (br_future_state(f) == BR_FAILED)
		of->fn(of->arg);
	free(of);
}

void t_on_failure(br_future *f, void (*fn)(void *), void *arg)
{
	struct t_on_failure *of = malloc(sizeof(*of));
	int ret;

	cr_assert_not_null(of);
	of->fn = fn;
	of->arg = arg;
	ret = br_future_on_done(f, on_failure_cb, of);
	if (ret < 0)
		free(of);
	cr_assert_eq(ret, 0, "br_future_on_done: %s", br_strerror(ret));
}

char *t_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long n;

	cr_assert_not_null(f, "cannot open %s", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	cr_assert_geq(n, 0, "cannot size %s", path);
	buf = malloc((size_t)n + 1);
	cr_assert_not_null(buf);
	cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n, "short read of %s",
		     path);
	buf[n] = '\0';
	fclose(f);
	if (len)
		*len = (size_t)n;
	return buf;
}

/* A task that yields a few times, then sleeps 50 ms: it returns how long
 * the sleep took, in ms. */
static void *sleep_50(void *arg)
{
	int64_t t0;

	for (int i = 0; i < 10; i++)
		br_yield();
	t0 = br_now_ns();
	br_sleep_ms(50);
	return (void *)(intptr_t)t_elapsed_ms(t0);
}

void t_assert_worker_runs(br_runtime *rt, unsigned flags)
{
	br_future *s = br_spawn(rt, sleep_50, NULL);
	void *v = NULL;

	cr_assert_eq(br_wait_for(s, 3000, &v), 0,
		     "flags %#x: the worker stalled", flags);
	cr_assert_geq((intptr_t)v, 50);
	cr_assert_lt((intptr_t)v, 1000, "flags %#x: the sleep took %d ms",
		     flags, (int)(intptr_t)v);
	br_future_release(s);
}
