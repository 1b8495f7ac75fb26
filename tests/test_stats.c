/* SPDX-License-Identifier: MIT */
/*
 * test_stats.c - seeing inside the runtime (stats.c, trace.c): br_stats()
 * counters that add up in closed runs, its bad input, the BRAID_STATS
 * table, the stall detector (fires for a spinning task, stays silent for
 * a yielding one, can be turned off), and the BRAID_TRACE file (valid
 * JSON with balanced events, bounded by BRAID_TRACE_EVENTS), and the
 * br_config.log hook that takes those messages instead of stderr.
 *
 * What the runtime prints goes to stderr, so the tests that read it point
 * fd 2 at a temporary file for the runtime's lifetime. The trace file is
 * checked by a small JSON parser below, so the test needs no Python.
 */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "helpers.h"
#include "stats.h"

/* Every test leaves no descriptor, thread or child behind (helpers.h). */
TestSuite(stats, .init = t_leak_init, .fini = t_leak_fini);
TestSuite(stall, .init = t_leak_init, .fini = t_leak_fini);
TestSuite(trace, .init = t_leak_init, .fini = t_leak_fini);
TestSuite(log, .init = t_leak_init, .fini = t_leak_fini);

/* ------------------------------------------------------------------ */
/* Capturing stderr                                                    */
/* ------------------------------------------------------------------ */

struct capture {
	int fd;	   /* the temporary file */
	int saved; /* the real stderr */
	char *text;
};

static void capture_start(struct capture *c)
{
	char path[] = "/tmp/braid-test-stderr-XXXXXX";

	c->fd = mkstemp(path);
	cr_assert_geq(c->fd, 0);
	unlink(path);
	fflush(stderr);
	c->saved = dup(STDERR_FILENO);
	cr_assert_geq(c->saved, 0);
	cr_assert_geq(dup2(c->fd, STDERR_FILENO), 0);
	c->text = NULL;
}

/* Restore stderr and return what was written meanwhile (owned by c). */
static const char *capture_end(struct capture *c)
{
	off_t len;

	fflush(stderr);
	dup2(c->saved, STDERR_FILENO);
	close(c->saved);
	len = lseek(c->fd, 0, SEEK_END);
	cr_assert_geq(len, 0);
	c->text = calloc(1, (size_t)len + 1);
	cr_assert_not_null(c->text);
	cr_assert_eq(pread(c->fd, c->text, (size_t)len, 0), len);
	close(c->fd);
	return c->text;
}

static unsigned count_of(const char *text, const char *what)
{
	unsigned n = 0;

	for (const char *p = text; (p = strstr(p, what)); p += strlen(what))
		n++;
	return n;
}

/* ------------------------------------------------------------------ */
/* Counters                                                            */
/* ------------------------------------------------------------------ */

#define CHILDREN 2000

static void *leaf(void *arg)
{
	if ((intptr_t)arg % 3 == 0)
		br_yield();
	return arg;
}

static void *fan_out(void *arg)
{
	br_future **fs = malloc(CHILDREN * sizeof(*fs));

	T_REQUIRE(fs);
	for (intptr_t i = 0; i < CHILDREN; i++)
		fs[i] = br_spawn(br_current_runtime(), leaf, (void *)i);
	for (int i = CHILDREN - 1; i >= 0; i--) {
		void *v;

		T_REQUIRE(br_await(fs[i], &v) == 0);
		T_REQUIRE((intptr_t)v == i);
		br_future_release(fs[i]);
	}
	free(fs);
	return NULL;
}

/* stats: with BRAID_STATS=1 (run slices counted too), else the default
 * (the stall detector: tasks counted, switches not). */
static void check_closed_run(unsigned workers, int stats)
{
	struct capture c;
	br_runtime *rt;
	br_worker_stats ws[4];
	br_runtime_stats st = { .workers = ws, .nworkers = 4 };
	uint64_t sum = 0;

	if (stats)
		setenv("BRAID_STATS", "1", 1);
	/* A stall threshold a loaded machine cannot reach by preempting a
	 * worker: this run counts tasks, and must count no stall. */
	rt = t_runtime_cfg(
		&(br_config){ .workers = workers, .stall_ms = 60000 });
	unsetenv("BRAID_STATS");
	t_assert_task_ok(br_spawn(rt, fan_out, NULL));
	cr_assert_eq(br_stats(rt, &st), (int)workers);
	cr_assert_eq(st.nworkers, workers);
	/* Every task spawned ran exactly once: the children and fan_out. */
	cr_assert_eq(st.total.tasks_run, CHILDREN + 1, "%llu tasks ran",
		     (unsigned long long)st.total.tasks_run);
	for (unsigned i = 0; i < workers; i++) {
		cr_assert_leq(ws[i].steals_won, ws[i].steals_tried, "worker %u",
			      i);
		sum += ws[i].tasks_run;
	}
	cr_assert_eq(sum, st.total.tasks_run);
	if (stats) /* fan_out ran on a fiber of its own at least once */
		cr_assert_geq(st.total.slices, 1);
	else
		cr_assert_eq(st.total.slices, 0, "a default switch counted");
	if (workers == 1)
		cr_assert_eq(st.total.steals_tried, 0);
	cr_assert_eq(st.total.stalls, 0);
	if (!stats) {
		br_runtime_free(rt);
		return;
	}
	capture_start(&c); /* the table BRAID_STATS prints at free */
	br_runtime_free(rt);
	cr_assert(strstr(capture_end(&c), "braid: stats:"));
	free(c.text);
}

Test(stats, tasks_run_equals_tasks_spawned_in_a_closed_run, .timeout = 120.0)
{
	check_closed_run(1, 0);
	check_closed_run(2, 0);
	check_closed_run(1, 1);
	check_closed_run(2, 1);
}

/* With nothing watching task switches (no stall detector, BRAID_STATS or
 * BRAID_TRACE), the switch counters stay 0 and the rest still count. */
Test(stats, switch_counters_rest_when_nothing_watches, .timeout = 30.0)
{
	br_runtime *rt =
		t_runtime_cfg(&(br_config){ .workers = 2, .stall_ms = -1 });
	br_runtime_stats st = { 0 };

	t_assert_task_ok(br_spawn(rt, fan_out, NULL));
	t_assert_task_ok(br_spawn_blocking(rt, leaf, NULL));
	cr_assert_eq(br_stats(rt, &st), 2);
	cr_assert_eq(st.total.tasks_run, 0);
	cr_assert_eq(st.total.slices, 0);
	cr_assert_eq(st.total.blocking_calls, 1);
	br_runtime_free(rt);
}

#define IO_ROUNDS 50

struct pipe_pair {
	int fd[2];
};

static void *echo_reader(void *arg)
{
	struct pipe_pair *p = arg;
	char c;

	for (int i = 0; i < IO_ROUNDS; i++) {
		T_REQUIRE(br_read(p->fd[0], &c, 1) == 1);
		T_REQUIRE(c == (char)i);
	}
	return NULL;
}

static void *echo_writer(void *arg)
{
	struct pipe_pair *p = arg;

	/* Let the reader wait in the ring first. */
	br_sleep_ms(5);
	for (int i = 0; i < IO_ROUNDS; i++) {
		char c = (char)i;

		T_REQUIRE(br_write(p->fd[1], &c, 1) == 1);
		if (i % 10 == 0)
			br_sleep_ms(1);
	}
	return NULL;
}

Test(stats, io_completed_equals_io_submitted_once_quiet, .timeout = 30.0)
{
	br_runtime *rt;
	br_runtime_stats st = { 0 };
	struct pipe_pair p;
	br_future *r, *w;

	if (!t_uring_available())
		cr_skip_test("no io_uring: I/O runs as plain syscalls");
	rt = t_runtime(2, 0);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p.fd),
		     0);
	r = br_spawn(rt, echo_reader, &p);
	w = br_spawn(rt, echo_writer, &p);
	t_assert_task_ok(r);
	t_assert_task_ok(w);
	cr_assert_eq(br_stats(rt, &st), 2);
	cr_assert_geq(st.total.io_submitted, 2 * IO_ROUNDS, "%llu",
		      (unsigned long long)st.total.io_submitted);
	cr_assert_eq(st.total.io_completed, st.total.io_submitted);
	/* The writer's sleeps. */
	cr_assert_geq(st.total.timers_fired, 1 + IO_ROUNDS / 10);
	br_runtime_free(rt);
	close(p.fd[0]);
	close(p.fd[1]);
}

static void *nothing(void *arg)
{
	return arg;
}

static void *blocking_and_jobs_from_a_task(void *arg)
{
	br_runtime *rt = br_current_runtime();

	for (int i = 0; i < 2; i++) {
		br_future *f = br_spawn_blocking(rt, nothing, NULL);

		T_REQUIRE(br_await(f, NULL) == 0);
		br_future_release(f);
	}
	br__stats_proc_job(rt);
	return NULL;
}

Test(stats, blocking_calls_and_process_jobs_count_where_they_come_from,
     .timeout = 30.0)
{
	br_runtime *rt = t_runtime(2, 0);
	br_worker_stats ws[2];
	br_runtime_stats st = { .workers = ws, .nworkers = 2 };
	br_future *f;

	for (int i = 0; i < 3; i++) {
		f = br_spawn_blocking(rt, nothing, NULL);
		t_await_value(f);
		br_future_release(f);
	}
	br__stats_proc_job(rt);
	br__stats_proc_job(rt);
	br__stats_proc_job(NULL); /* ignored */
	t_assert_task_ok(br_spawn(rt, blocking_and_jobs_from_a_task, NULL));
	cr_assert_eq(br_stats(rt, &st), 2);
	cr_assert_eq(st.total.blocking_calls, 5);
	cr_assert_eq(ws[0].blocking_calls + ws[1].blocking_calls, 2);
	cr_assert_eq(st.total.proc_jobs, 3);
	cr_assert_eq(ws[0].proc_jobs + ws[1].proc_jobs, 1);
	br_runtime_free(rt);
}

static void *three_naps(void *arg)
{
	for (int i = 0; i < 3; i++)
		T_REQUIRE(br_sleep_ms(1) == 0);
	return NULL;
}

Test(stats, every_sleep_is_a_timer_fired, .timeout = 30.0)
{
	br_runtime *rt = t_runtime(1, 0);
	br_runtime_stats st = { 0 };

	t_assert_task_ok(br_spawn(rt, three_naps, NULL));
	cr_assert_eq(br_stats(rt, &st), 1);
	cr_assert_eq(st.total.timers_fired, 3);
	br_runtime_free(rt);
}

Test(stats, bad_input_gives_clear_errors, .timeout = 10.0)
{
	br_runtime *rt = t_runtime(2, 0);
	br_worker_stats ws[2];
	br_runtime_stats st = { 0 };
	static _Alignas(64) uint64_t fake[1024]; /* no runtime's magic */

	cr_assert_eq(br_stats(NULL, &st), BR_EBADOBJ);
	cr_assert_eq(br_stats((br_runtime *)fake, &st), BR_EBADOBJ);
	cr_assert_eq(br_stats(rt, NULL), -EINVAL);
	st.nworkers = 2;
	cr_assert_eq(br_stats(rt, &st), -EINVAL, "workers NULL, nworkers 2");
	/* Room for one worker: one is filled, the count says two. */
	memset(ws, 0xab, sizeof(ws));
	st.workers = ws;
	st.nworkers = 1;
	cr_assert_eq(br_stats(rt, &st), 2);
	cr_assert_eq(st.nworkers, 2);
	cr_assert_eq(ws[0].reserved[0], 0);
	cr_assert_eq(ws[1].tasks_run, 0xababababababababull);
	/* Totals only. */
	st.workers = NULL;
	st.nworkers = 0;
	cr_assert_eq(br_stats(rt, &st), 2);
	br_runtime_free(rt);
}

Test(stats, braid_stats_prints_a_table_at_free, .timeout = 10.0)
{
	struct capture c;
	const char *out;
	br_runtime *rt;

	setenv("BRAID_STATS", "1", 1);
	capture_start(&c);
	rt = t_runtime(2, 0);
	t_assert_task_ok(br_spawn(rt, fan_out, NULL));
	br_runtime_free(rt);
	out = capture_end(&c);
	cr_assert(strstr(out, "braid: stats: 2 workers"), "%s", out);
	cr_assert(strstr(out, "worker 1"), "%s", out);
	cr_assert(strstr(out, "total"), "%s", out);
	free(c.text);
}

static void *noop_task(void *arg)
{
	return arg;
}

/* Spawns a task onto its own worker's queue, then keeps the worker for
 * 20 ms before it yields: on one worker the child waits at least that
 * long to run. */
static void *hold_worker(void *arg)
{
	br_future *child = br_spawn(br_current_runtime(), noop_task, NULL);

	T_REQUIRE(child);
	t_busy_ns(20 * T_NS_PER_MS);
	br_yield();
	T_REQUIRE(br_await(child, NULL) == 0);
	br_future_release(child);
	return NULL;
}

Test(stats, braid_stats_reports_how_long_runnable_tasks_waited, .timeout = 20.0)
{
	struct capture c;
	const char *out, *line;
	unsigned long long n = 0;
	double med, p99, p999, max;
	br_runtime *rt;

	setenv("BRAID_STATS", "1", 1);
	setenv("BRAID_STALL_MS", "0", 1);
	capture_start(&c);
	rt = t_runtime(1, 0);
	t_assert_task_ok(br_spawn(rt, hold_worker, NULL));
	br_runtime_free(rt);
	out = capture_end(&c);
	unsetenv("BRAID_STALL_MS");
	line = strstr(out, "runnable waits: ");
	cr_assert_not_null(line, "%s", out);
	cr_assert_eq(sscanf(line,
			    "runnable waits: %llu, median %lf us, p99 %lf us, "
			    "p99.9 %lf us, max %lf us",
			    &n, &med, &p99, &p999, &max),
		     5, "%s", line);
	/* The parent, from the injection queue, and its child (a yield is
	 * not counted). */
	cr_assert_eq(n, 2, "%s", line);
	cr_assert_geq(max, 20000.0, "%s", line);
	cr_assert(med <= p99 && p99 <= p999 && p999 <= max, "%s", line);
	free(c.text);
}

/* ------------------------------------------------------------------ */
/* The stall detector                                                  */
/* ------------------------------------------------------------------ */

/* Not static: the test links with -rdynamic, so dladdr() names it. */
void *stall_spinner(void *arg);
void *stall_spinner(void *arg)
{
	br_runtime_stats st = { 0 };
	int64_t end = br_now_ns() + 10000 * T_NS_PER_MS;

	/* At least 50 ms, and on until the watchdog has seen the stall: on
	 * a loaded machine it may not run in the first 50. */
	t_busy_ns(50 * T_NS_PER_MS);
	while (br_stats(br_current_runtime(), &st) >= 0 && !st.total.stalls &&
	       br_now_ns() < end)
		t_busy_ns(T_NS_PER_MS);
	return arg;
}

/* 50 ms of work, however the watchdog is set. */
static void *busy_50ms(void *arg)
{
	t_busy_ns(50 * T_NS_PER_MS);
	return arg;
}

/* Yields for 500 ms: twice the threshold below, which is long enough
 * that a loaded machine's preemption between two yields does not pass
 * it. */
static void *stall_yielder(void *arg)
{
	int64_t end = br_now_ns() + 500 * T_NS_PER_MS;

	while (br_now_ns() < end)
		br_yield();
	return arg;
}

/* Run fn as a task on a one-worker runtime with cfg; return its stderr
 * and, in *stalls, the stalls counted. */
static const char *run_watched(struct capture *c, br_config *cfg, br_task_fn fn,
			       uint64_t *stalls)
{
	br_runtime_stats st = { 0 };
	br_runtime *rt;
	br_future *f;

	capture_start(c);
	cfg->workers = 1;
	rt = t_runtime_cfg(cfg);
	f = br_spawn(rt, fn, NULL);
	t_await_value(f);
	br_future_release(f);
	cr_assert_eq(br_stats(rt, &st), 1);
	*stalls = st.total.stalls;
	br_runtime_free(rt);
	return capture_end(c);
}

Test(stall, a_task_spinning_50_ms_is_reported_once, .timeout = 20.0)
{
	/* 20 ms, not the default 25: the report must come while the task
	 * still runs, and a loaded machine may be slow to run the
	 * watchdog. */
	br_config cfg = { .stall_ms = 20 };
	struct capture c;
	uint64_t stalls;
	const char *out = run_watched(&c, &cfg, stall_spinner, &stalls);

	cr_assert_eq(count_of(out, "braid: stall: task 0."), 1, "%s", out);
	cr_assert(strstr(out, "(stall_spinner)"), "%s", out);
	cr_assert(strstr(out, "has held worker 0 for"), "%s", out);
	cr_assert(strstr(out, "(threshold 20 ms)"), "%s", out);
	cr_assert_eq(stalls, 1);
	free(c.text);
}

static void *named_spinner(void *arg)
{
	br_task_set_name("cruncher #2");
	/* Long, so that a loaded machine still runs the watchdog in it:
	 * this test is about the name. */
	t_busy_ns(200 * T_NS_PER_MS);
	return arg;
}

Test(stall, a_named_task_is_reported_by_its_name, .timeout = 20.0)
{
	br_config cfg = { .stall_ms = 20 };
	struct capture c;
	uint64_t stalls;
	const char *out = run_watched(&c, &cfg, named_spinner, &stalls);

	cr_assert_eq(count_of(out, "braid: stall: task 0."), 1, "%s", out);
	cr_assert(strstr(out, "(cruncher #2) has held worker 0"), "%s", out);
	cr_assert_null(strstr(out, "named_spinner"), "%s", out);
	free(c.text);
}

Test(stall, a_task_yielding_for_twice_the_threshold_is_not_reported,
     .timeout = 20.0)
{
	br_config cfg = { .stall_ms = 250 };
	struct capture c;
	uint64_t stalls;
	const char *out = run_watched(&c, &cfg, stall_yielder, &stalls);

	cr_assert_null(strstr(out, "braid: stall"), "%s", out);
	cr_assert_eq(stalls, 0);
	free(c.text);
}

Test(stall, the_threshold_comes_from_braid_stall_ms, .timeout = 20.0)
{
	br_config cfg = { 0 };
	struct capture c;
	uint64_t stalls;
	const char *out;

	setenv("BRAID_STALL_MS", "10", 1);
	out = run_watched(&c, &cfg, stall_spinner, &stalls);
	cr_assert(strstr(out, "(threshold 10 ms)"), "%s", out);
	cr_assert_eq(stalls, 1);
	free(c.text);
}

Test(stall, braid_stall_ms_0_and_a_negative_config_turn_it_off, .timeout = 20.0)
{
	br_config cfg = { 0 };
	struct capture c;
	uint64_t stalls;
	const char *out;

	setenv("BRAID_STALL_MS", "0", 1);
	out = run_watched(&c, &cfg, busy_50ms, &stalls);
	cr_assert_null(strstr(out, "braid: stall"), "%s", out);
	cr_assert_eq(stalls, 0);
	free(c.text);
	unsetenv("BRAID_STALL_MS");
	cfg.stall_ms = -1;
	out = run_watched(&c, &cfg, busy_50ms, &stalls);
	cr_assert_null(strstr(out, "braid: stall"), "%s", out);
	cr_assert_eq(stalls, 0);
	free(c.text);
}

Test(stall, a_threshold_over_an_hour_is_refused, .timeout = 10.0)
{
	br_config cfg = { .stall_ms = 3600001 };
	br_runtime *rt = NULL;

	cr_assert_eq(br_runtime_new(&rt, &cfg), -EINVAL);
	cr_assert_null(rt);
}

/* ------------------------------------------------------------------ */
/* The trace file                                                      */
/* ------------------------------------------------------------------ */

/* A JSON parser that checks the whole syntax and collects, for each
 * object of the top-level "traceEvents" array, the fields the checks
 * need. */

#define MAX_EVENTS 20000

struct ev {
	char ph;
	char cat[16];
	char name[40];
	char id[32];
	int pid, tid;
	double ts, dur;
	int has_ts, has_dur;
};

struct jp {
	const char *s, *end;
	int err;
	struct ev *evs;
	unsigned nev;
	uint64_t dropped;
};

static void ws_skip(struct jp *p)
{
	while (p->s < p->end && strchr(" \t\r\n", *p->s))
		p->s++;
}

static int peek(struct jp *p)
{
	ws_skip(p);
	return p->s < p->end ? *p->s : -1;
}

static void expect(struct jp *p, char c)
{
	if (peek(p) != c)
		p->err = 1;
	else
		p->s++;
}

/* A string: its raw contents (escapes kept) into out, if out. */
static void j_string(struct jp *p, char *out, size_t n)
{
	size_t k = 0;

	expect(p, '"');
	while (!p->err && p->s < p->end && *p->s != '"') {
		char c = *p->s++;

		if ((unsigned char)c < 0x20) {
			p->err = 1;
			return;
		}
		if (c == '\\') {
			if (p->s >= p->end || !strchr("\"\\/bfnrtu", *p->s)) {
				p->err = 1;
				return;
			}
			if (*p->s == 'u') {
				for (int i = 1; i <= 4; i++)
					if (p->s + i >= p->end ||
					    !strchr("0123456789abcdefABCDEF",
						    p->s[i]))
						p->err = 1;
				p->s += 4;
			} else {
				c = *p->s; /* \" gives ", \\ gives \ */
			}
			p->s++;
		}
		if (out && k + 1 < n)
			out[k++] = c;
	}
	if (out)
		out[k] = 0;
	expect(p, '"');
}

static double j_number(struct jp *p)
{
	char *e;
	double v;

	ws_skip(p);
	if (p->s >= p->end || !strchr("-0123456789", *p->s)) {
		p->err = 1;
		return 0;
	}
	v = strtod(p->s, &e);
	if (e == p->s || e > p->end)
		p->err = 1;
	p->s = e;
	return v;
}

static void j_value(struct jp *p, int depth);

static void j_literal(struct jp *p, const char *lit)
{
	size_t n = strlen(lit);

	ws_skip(p);
	if ((size_t)(p->end - p->s) < n || strncmp(p->s, lit, n))
		p->err = 1;
	else
		p->s += n;
}

/* An object; ev (may be NULL) collects an event's fields. */
static void j_object(struct jp *p, int depth, struct ev *ev, int top)
{
	char key[32];

	expect(p, '{');
	if (peek(p) == '}') {
		p->s++;
		return;
	}
	while (!p->err) {
		j_string(p, key, sizeof(key));
		expect(p, ':');
		if (p->err)
			return;
		if (ev && !strcmp(key, "ph") && peek(p) == '"') {
			char ph[4];

			j_string(p, ph, sizeof(ph));
			ev->ph = ph[0];
		} else if (ev && !strcmp(key, "name") && peek(p) == '"') {
			j_string(p, ev->name, sizeof(ev->name));
		} else if (ev && !strcmp(key, "cat") && peek(p) == '"') {
			j_string(p, ev->cat, sizeof(ev->cat));
		} else if (ev && !strcmp(key, "id") && peek(p) == '"') {
			j_string(p, ev->id, sizeof(ev->id));
		} else if (ev && !strcmp(key, "pid")) {
			ev->pid = (int)j_number(p);
		} else if (ev && !strcmp(key, "tid")) {
			ev->tid = (int)j_number(p);
		} else if (ev && !strcmp(key, "ts")) {
			ev->ts = j_number(p);
			ev->has_ts = 1;
		} else if (ev && !strcmp(key, "dur")) {
			ev->dur = j_number(p);
			ev->has_dur = 1;
		} else if (top && !strcmp(key, "traceEvents")) {
			expect(p, '[');
			if (peek(p) == ']') {
				p->s++;
			} else {
				while (!p->err) {
					struct ev *e =
						p->nev < MAX_EVENTS ?
							&p->evs[p->nev++] :
							NULL;

					if (!e)
						p->err = 1;
					else
						j_object(p, depth + 1, e, 0);
					if (peek(p) != ',')
						break;
					p->s++;
				}
				expect(p, ']');
			}
		} else if (top && !strcmp(key, "otherData")) {
			const char *at = p->s;
			const char *d = strstr(at, "\"dropped_events\":");

			j_value(p, depth + 1);
			if (d && d < p->s)
				p->dropped = strtoull(d + 17, NULL, 10);
		} else {
			j_value(p, depth + 1);
		}
		if (peek(p) != ',')
			break;
		p->s++;
	}
	expect(p, '}');
}

static void j_value(struct jp *p, int depth)
{
	int c = peek(p);

	if (depth > 64) {
		p->err = 1;
		return;
	}
	if (c == '{') {
		j_object(p, depth, NULL, 0);
	} else if (c == '[') {
		p->s++;
		if (peek(p) == ']') {
			p->s++;
			return;
		}
		while (!p->err) {
			j_value(p, depth + 1);
			if (peek(p) != ',')
				break;
			p->s++;
		}
		expect(p, ']');
	} else if (c == '"') {
		j_string(p, NULL, 0);
	} else if (c == 't') {
		j_literal(p, "true");
	} else if (c == 'f') {
		j_literal(p, "false");
	} else if (c == 'n') {
		j_literal(p, "null");
	} else {
		j_number(p);
	}
}

/* Parse the file at path into p (events malloc'd). Asserts it is JSON. */
static void parse_trace(const char *path, struct jp *p)
{
	size_t len;
	char *text = t_read_file(path, &len);

	memset(p, 0, sizeof(*p));
	p->evs = calloc(MAX_EVENTS, sizeof(struct ev));
	cr_assert_not_null(p->evs);
	p->s = text;
	p->end = text + len;
	j_object(p, 0, NULL, 1);
	ws_skip(p);
	cr_assert_eq(p->err, 0, "not JSON near byte %ld", (long)(p->s - text));
	cr_assert_eq(p->s, p->end, "trailing bytes after the JSON value");
	free(text);
}

/* Every async "b" has one "e" with its id, not before it; "B"/"E" nest
 * per thread; every "X" has a duration >= 0. */
static void assert_balanced(const struct jp *p)
{
	int depth[64] = { 0 };

	for (unsigned i = 0; i < p->nev; i++) {
		const struct ev *e = &p->evs[i];
		unsigned ends = 0;

		cr_assert(e->ph != 0, "event %u has no ph", i);
		if (e->ph != 'M')
			cr_assert(e->has_ts, "event %u has no ts", i);
		if (e->ph == 'X')
			cr_assert(e->has_dur && e->dur >= 0,
				  "event %u: X without a duration", i);
		if (e->ph == 'B' || e->ph == 'E') {
			cr_assert(e->tid >= 0 && e->tid < 64);
			depth[e->tid] += e->ph == 'B' ? 1 : -1;
			cr_assert_geq(depth[e->tid], 0, "E before B");
		}
		if (e->ph != 'b')
			continue;
		cr_assert(e->id[0], "b without an id");
		for (unsigned j = 0; j < p->nev; j++) {
			const struct ev *x = &p->evs[j];

			if (x->ph == 'e' && !strcmp(x->id, e->id)) {
				ends++;
				cr_assert_geq(x->ts, e->ts, "e before b");
			}
		}
		cr_assert_eq(ends, 1, "b %s has %u ends", e->id, ends);
	}
	for (unsigned i = 0; i < p->nev; i++)
		if (p->evs[i].ph == 'e') {
			unsigned begins = 0;

			for (unsigned j = 0; j < p->nev; j++)
				begins += p->evs[j].ph == 'b' &&
					  !strcmp(p->evs[j].id, p->evs[i].id);
			cr_assert_eq(begins, 1, "e %s has %u begins",
				     p->evs[i].id, begins);
		}
	for (int t = 0; t < 64; t++)
		cr_assert_eq(depth[t], 0, "tid %d: B without E", t);
}

static unsigned count_events(const struct jp *p, char ph, const char *cat)
{
	unsigned n = 0;

	for (unsigned i = 0; i < p->nev; i++)
		n += p->evs[i].ph == ph &&
		     (!cat || !strcmp(p->evs[i].cat, cat));
	return n;
}

static void *busy_child(void *arg)
{
	for (int i = 0; i < 3; i++)
		br_yield();
	br_sleep_ms(1);
	return arg;
}

static void *traced_work(void *arg)
{
	br_runtime *rt = br_current_runtime();
	br_future *fs[64];
	struct pipe_pair p;
	br_future *r, *w;

	for (int i = 0; i < 64; i++)
		fs[i] = br_spawn(rt, busy_child, NULL);
	T_REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p.fd) ==
		  0);
	r = br_spawn(rt, echo_reader, &p);
	w = br_spawn(rt, echo_writer, &p);
	T_REQUIRE(br_await(r, NULL) == 0 && br_await(w, NULL) == 0);
	br_future_release(r);
	br_future_release(w);
	close(p.fd[0]);
	close(p.fd[1]);
	for (int i = 0; i < 64; i++) {
		T_REQUIRE(br_await(fs[i], NULL) == 0);
		br_future_release(fs[i]);
	}
	return NULL;
}

static char *trace_path(void)
{
	static char path[] = "/tmp/braid-test-trace-XXXXXX";
	int fd = mkstemp(path);

	cr_assert_geq(fd, 0);
	close(fd);
	setenv("BRAID_TRACE", path, 1);
	return path;
}

Test(trace, the_file_is_json_with_balanced_events, .timeout = 30.0)
{
	char *path = trace_path();
	br_runtime *rt = t_runtime(2, 0);
	int64_t t0 = br_now_ns();
	struct jp p;
	unsigned jobs = 0;

	t_assert_task_ok(br_spawn(rt, traced_work, NULL));
	/* A process-pool job, as the pool reports one. */
	br__trace_proc_job(rt, 4242, 7, t0, br_now_ns());
	br_runtime_free(rt);
	parse_trace(path, &p);
	unlink(path);
	assert_balanced(&p);
	cr_assert_geq(count_events(&p, 'X', "task"), 64, "slices");
	cr_assert_geq(count_events(&p, 'M', NULL), 3, "names");
	if (t_uring_available())
		cr_assert_geq(count_events(&p, 'b', "io"), 2 * IO_ROUNDS,
			      "I/O waits");
	for (unsigned i = 0; i < p.nev; i++)
		if (p.evs[i].ph == 'X' && !strcmp(p.evs[i].cat, "pool")) {
			cr_assert_eq(p.evs[i].pid, 4242);
			jobs++;
		}
	cr_assert_eq(jobs, 1);
	cr_assert_eq(p.dropped, 0);
	free(p.evs);
}

static void *named_sleeper(void *arg)
{
	br_sleep_ms(1); /* ends the first slice */
	T_REQUIRE(br_task_set_name("renamed-task") == 0);
	br_sleep_ms(1);
	return arg;
}

Test(trace, a_named_tasks_slices_carry_its_name, .timeout = 30.0)
{
	char *path = trace_path();
	br_runtime *rt = t_runtime(1, 0);
	br_spawn_opts o = { .name = "traced \"one\"" };
	unsigned first = 0, second = 0;
	struct jp p;

	t_assert_task_ok(br_spawn_ex(rt, named_sleeper, NULL, &o));
	br_runtime_free(rt);
	parse_trace(path, &p);
	unlink(path);
	assert_balanced(&p);
	for (unsigned i = 0; i < p.nev; i++) {
		if (p.evs[i].ph != 'X' || strcmp(p.evs[i].cat, "task"))
			continue;
		first += !strcmp(p.evs[i].name, "traced \"one\"");
		second += !strcmp(p.evs[i].name, "renamed-task");
	}
	/* The slice before the rename under the first name (its quotes
	 * escaped in the file); the one it happens in, and the next,
	 * under the second. */
	cr_assert_geq(first, 1);
	cr_assert_geq(second, 1);
	free(p.evs);
}

Test(trace, each_worker_keeps_only_its_last_events, .timeout = 30.0)
{
	char *path = trace_path();
	br_runtime *rt;
	struct jp p;

	setenv("BRAID_TRACE_EVENTS", "16", 1);
	rt = t_runtime(1, 0);
	t_assert_task_ok(br_spawn(rt, fan_out, NULL));
	br_runtime_free(rt);
	parse_trace(path, &p);
	unlink(path);
	assert_balanced(&p);
	/* 16 records, an I/O wait being two events, plus the names. */
	cr_assert_leq(p.nev, 2 * 16 + 2, "%u events", p.nev);
	cr_assert_gt(p.dropped, 0);
	free(p.evs);
}

Test(trace, an_unwritable_path_is_reported_not_fatal, .timeout = 30.0)
{
	struct capture c;
	const char *out;
	br_runtime *rt;

	setenv("BRAID_TRACE", "/nonexistent-dir/trace.json", 1);
	capture_start(&c);
	rt = t_runtime(1, 0);
	t_assert_task_ok(br_spawn(rt, fan_out, NULL));
	br_runtime_free(rt);
	out = capture_end(&c);
	cr_assert(strstr(out, "braid: BRAID_TRACE: cannot write"), "%s", out);
	free(c.text);
}

/* ------------------------------------------------------------------ */
/* The logging hook                                                    */
/* ------------------------------------------------------------------ */

/* What a hook received; the hook runs on braid's threads. */
struct logged {
	pthread_mutex_t lock;
	unsigned n;
	int levels[8];
	char text[4096]; /* every message, one per line */
};

static void log_hook(int level, const char *msg, void *arg)
{
	struct logged *l = arg;
	size_t used;

	pthread_mutex_lock(&l->lock);
	if (l->n < 8)
		l->levels[l->n] = level;
	l->n++;
	used = strlen(l->text);
	snprintf(l->text + used, sizeof(l->text) - used, "%s|\n", msg);
	pthread_mutex_unlock(&l->lock);
}

/* Not static: named by dladdr(). Long, so that a loaded machine still
 * runs the watchdog while it spins. */
void *long_spinner(void *arg);
void *long_spinner(void *arg)
{
	t_busy_ns(200 * T_NS_PER_MS);
	return arg;
}

static void *free_own_runtime(void *arg)
{
	br_runtime_free(br_current_runtime()); /* refused: logged */
	return arg;
}

Test(log, stalls_and_misuse_go_to_the_hook_not_stderr, .timeout = 20.0)
{
	struct logged l = { .lock = PTHREAD_MUTEX_INITIALIZER };
	br_config cfg = {
		.workers = 1, .stall_ms = 20, .log = log_hook, .log_arg = &l
	};
	struct capture c;
	const char *out;
	br_runtime *rt;
	br_future *f;
	unsigned i, errs;

	capture_start(&c);
	rt = t_runtime_cfg(&cfg);
	f = br_spawn(rt, long_spinner, NULL);
	t_await_value(f);
	br_future_release(f);
	f = br_spawn(rt, free_own_runtime, NULL);
	t_await_value(f);
	br_future_release(f);
	br_runtime_free(rt);
	out = capture_end(&c);
	cr_assert_null(strstr(out, "braid"), "stderr: %s", out);
	/* The spinner's stall first; one error, the misuse. A slow machine
	 * may add stall warnings, before or after it. */
	cr_assert(l.n >= 2 && l.n <= 8, "%s", l.text);
	cr_assert_eq(l.levels[0], BR_LOG_WARNING);
	errs = 0;
	for (i = 0; i < l.n; i++) {
		cr_assert(l.levels[i] == BR_LOG_WARNING ||
				  l.levels[i] == BR_LOG_ERR,
			  "%s", l.text);
		errs += l.levels[i] == BR_LOG_ERR;
	}
	cr_assert_eq(errs, 1, "%s", l.text);
	/* No prefix and no newline of braid's own in the messages. */
	cr_assert_eq(strncmp(l.text, "stall: task 0.", 14), 0, "%s", l.text);
	cr_assert(strstr(l.text, "(long_spinner)"), "%s", l.text);
	cr_assert(strstr(l.text, "(threshold 20 ms)|\n"), "%s", l.text);
	cr_assert(strstr(l.text, "\nbr_runtime_free called from one of its "
				 "own workers; ignored|\n"),
		  "%s", l.text);
	free(c.text);
}

Test(log, the_stats_table_is_one_info_message, .timeout = 20.0)
{
	struct logged l = { .lock = PTHREAD_MUTEX_INITIALIZER };
	/* No stall detector: a slow build must not add a report. */
	br_config cfg = {
		.workers = 2, .stall_ms = -1, .log = log_hook, .log_arg = &l
	};
	br_runtime *rt;

	setenv("BRAID_STATS", "1", 1);
	rt = t_runtime_cfg(&cfg);
	t_assert_task_ok(br_spawn(rt, fan_out, NULL));
	br_runtime_free(rt);
	cr_assert_eq(l.n, 1, "%s", l.text);
	cr_assert_eq(l.levels[0], BR_LOG_INFO);
	cr_assert_eq(strncmp(l.text, "stats: 2 workers\n", 17), 0, "%s",
		     l.text);
	cr_assert(strstr(l.text, "\ntotal "), "%s", l.text);
	/* The table's last newline is dropped, as for any message. */
	cr_assert_eq(strstr(l.text, "|\n") - l.text + 2, (long)strlen(l.text),
		     "%s", l.text);
}
