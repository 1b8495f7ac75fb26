/* SPDX-License-Identifier: MIT */
/*
 * test_deadline.c - deadline scopes (deadline.c): every kind of wait ends
 * with -ETIMEDOUT once the scope's deadline passes, from a task on both
 * loop kinds and from a plain thread; waits that can complete at once
 * still do; scopes nest and restore what applied before them;
 * br_io_timeout() is the same rule for one call; a cancellation still
 * reads -ECANCELED; a scope belongs to its task alone.
 *
 * Waits are bounded below strictly (a wait never ends before its
 * deadline) and above only by the test's time limit: the machine may be
 * loaded.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "helpers.h"

/* Every test leaves no descriptor, thread or child behind (helpers.h). */
TestSuite(deadline, .init = t_leak_init, .fini = t_leak_fini);

/* Criterion starts a thread in each test process before the test runs:
 * fork the zygote (for the pool) while the process still has one. */
__attribute__((constructor)) static void start_zygote(void)
{
	br_zygote_start();
}

/* The scope of each timed wait below, in milliseconds. */
#define SCOPE_MS 30

/*
 * EXPECT_TIMEOUT - run expr inside a fresh scope of SCOPE_MS: it must
 * return -ETIMEDOUT no earlier than the deadline, and leaving the scope
 * must say its deadline passed. For task and thread bodies (T_REQUIRE).
 */
#define EXPECT_TIMEOUT(expr)                                              \
	do {                                                              \
		br_deadline d_;                                           \
		int64_t t0_ = br_now_ns();                                \
		long r_;                                                  \
		T_REQUIRE(br_deadline_enter(&d_, SCOPE_MS) == 0);         \
		r_ = (long)(expr);                                        \
		T_REQUIRE(r_ == -ETIMEDOUT && #expr);                     \
		T_REQUIRE(br_now_ns() - t0_ >= SCOPE_MS * T_NS_PER_MS &&  \
			  #expr);                                         \
		T_REQUIRE(br_deadline_leave(&d_) == -ETIMEDOUT && #expr); \
		T_REQUIRE(br_deadline_current() == -1);                   \
	} while (0)

static void *sleep_long(void *arg)
{
	int *ret = arg;
	int r = br_sleep_ms(10000);

	if (ret)
		*ret = r;
	return NULL;
}

static void *quick(void *arg)
{
	return arg;
}

/* A blocking call that holds its thread until *release is set. */
static void *hold_thread(void *arg)
{
	atomic_int *release = arg;
	int64_t end = br_now_ns() + 10000 * T_NS_PER_MS;

	while (!atomic_load(release) && br_now_ns() < end)
		usleep(1000);
	return NULL;
}

/* Everything the waits below wait on, made ready by the test thread. */
struct kinds {
	br_runtime *rt;
	int pipe_r, pipe_w; /* a pipe nobody writes to */
	int lfd;	    /* a listening socket nobody connects to */
	int sock, peer;	    /* a connected pair nobody writes to */
	br_mutex *mu;	    /* held by the test thread */
	br_rwlock *rw;	    /* held for reading by the test thread */
	atomic_int release;
	int group_task_ret;
};

static void *wait_every_kind(void *arg)
{
	struct kinds *k = arg;
	char buf[16];
	br_sem sem = BR_SEM_INIT(0);
	br_event ev = BR_EVENT_INIT;
	br_cond cv = BR_COND_INIT;
	br_mutex cm = BR_MUTEX_INIT;
	br_waitgroup wg = BR_WAITGROUP_INIT;
	br_chan *empty, *full;
	br_chan_case cs;
	br_as_completed *it;
	br_acceptor *acc;
	br_reader *rd;
	br_group *g;
	br_future *p, *f, *got;
	const void *data;
	int one = 1;

	/* I/O */
	EXPECT_TIMEOUT(br_read(k->pipe_r, buf, sizeof(buf)));
	EXPECT_TIMEOUT(br_read_timeout(k->pipe_r, buf, sizeof(buf), 10000));
	EXPECT_TIMEOUT(br_poll(k->pipe_r, POLLIN));
	EXPECT_TIMEOUT(br_accept(k->lfd, NULL, NULL, 0));
	EXPECT_TIMEOUT(br_recv(k->sock, buf, sizeof(buf), 0));
	T_REQUIRE(br_acceptor_new(&acc, k->lfd) == 0);
	EXPECT_TIMEOUT(br_acceptor_next(acc));
	br_acceptor_free(acc);
	T_REQUIRE(br_reader_new(&rd, k->sock) == 0);
	EXPECT_TIMEOUT(br_reader_recv(rd, &data));
	br_reader_free(rd);

	/* time */
	EXPECT_TIMEOUT(br_sleep_ms(10000));
	EXPECT_TIMEOUT(br_sleep_until(br_now_ns() + 10000 * T_NS_PER_MS));

	/* futures: awaiting passes the end on, as a cancellation */
	p = br_promise_new();
	EXPECT_TIMEOUT(br_await(p, NULL));
	T_REQUIRE(br_future_state(p) == BR_CANCELLED);
	br_future_release(p);
	p = br_promise_new();
	EXPECT_TIMEOUT(br_wait_for(p, 10000, NULL));
	T_REQUIRE(br_future_state(p) == BR_CANCELLED);
	br_future_release(p);
	p = br_promise_new();
	EXPECT_TIMEOUT(br_wait_any(&p, 1, -1));
	T_REQUIRE(br_future_state(p) == BR_PENDING); /* cancels nothing */
	EXPECT_TIMEOUT(br_gather(&p, 1, NULL));
	T_REQUIRE(br_future_state(p) == BR_CANCELLED);
	br_future_release(p);
	p = br_promise_new();
	it = br_as_completed_new(&p, 1);
	T_REQUIRE(it);
	EXPECT_TIMEOUT(br_as_completed_next_ex(it, &got));
	T_REQUIRE(got == NULL);
	T_REQUIRE(br_future_state(p) == BR_PENDING);
	br_as_completed_free(it);
	br_future_release(p);

	/* a task, a blocking call, a subprocess, a group */
	f = br_spawn(k->rt, sleep_long, NULL);
	EXPECT_TIMEOUT(br_await(f, NULL));
	T_REQUIRE(br_await(f, NULL) == -ECANCELED);
	br_future_release(f);
	f = br_spawn_blocking(k->rt, hold_thread, &k->release);
	EXPECT_TIMEOUT(br_await(f, NULL));
	T_REQUIRE(br_future_state(f) == BR_CANCELLED);
	br_future_release(f);
	atomic_store(&k->release, 1);
	{
		const char *argv[] = { "sleep", "10", NULL };

		f = br_exec(k->rt, argv, NULL);
		EXPECT_TIMEOUT(br_await(f, NULL));
		/* Cancelled: the child is killed and reaped. */
		T_REQUIRE(br_await(f, NULL) == -ECANCELED);
		br_future_release(f);
	}
	T_REQUIRE(br_group_new(&g, k->rt) == 0);
	br_future_release(br_group_spawn(g, sleep_long, &k->group_task_ret));
	EXPECT_TIMEOUT(br_group_wait(g));
	/* The group's task was cancelled, and waited for. */
	T_REQUIRE(k->group_task_ret == -ECANCELED);
	br_group_free(g);

	/* synchronisation objects and channels */
	EXPECT_TIMEOUT(br_mutex_lock(k->mu));
	EXPECT_TIMEOUT(br_rwlock_wrlock(k->rw));
	EXPECT_TIMEOUT(br_sem_wait(&sem));
	EXPECT_TIMEOUT(br_event_wait(&ev));
	T_REQUIRE(br_waitgroup_add(&wg, 1) == 0);
	EXPECT_TIMEOUT(br_waitgroup_wait(&wg));
	T_REQUIRE(br_mutex_lock(&cm) == 0);
	EXPECT_TIMEOUT(br_cond_wait(&cv, &cm));
	/* The mutex is held again after the wait, whatever its result. */
	T_REQUIRE(br_mutex_unlock(&cm) == 0);
	T_REQUIRE(br_chan_new(&empty, sizeof(int), 0) == 0);
	T_REQUIRE(br_chan_new(&full, sizeof(int), 1) == 0);
	T_REQUIRE(br_chan_send(full, &one) == 0);
	EXPECT_TIMEOUT(br_chan_recv(empty, NULL));
	EXPECT_TIMEOUT(br_chan_send(full, &one));
	EXPECT_TIMEOUT(br_chan_send_for(full, &one, 10000));
	cs = (br_chan_case){ .chan = empty, .op = BR_CHAN_RECV };
	EXPECT_TIMEOUT(br_chan_select(&cs, 1));
	br_chan_free(empty);
	br_chan_free(full);
	return NULL;
}

static void kinds_setup(struct kinds *k, br_runtime *rt, br_mutex *mu,
			br_rwlock *rw)
{
	int p[2], sp[2];

	memset(k, 0, sizeof(*k));
	k->rt = rt;
	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	k->pipe_r = p[0];
	k->pipe_w = p[1];
	k->lfd = br_tcp_listen("127.0.0.1", 0, 16);
	cr_assert_geq(k->lfd, 0);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
	k->sock = sp[0];
	k->peer = sp[1];
	k->mu = mu;
	k->rw = rw;
	k->group_task_ret = 1;
	atomic_init(&k->release, 0);
	cr_assert_eq(br_mutex_lock(mu), 0);
	cr_assert_eq(br_rwlock_rdlock(rw), 0);
}

static void kinds_teardown(struct kinds *k)
{
	cr_assert_eq(br_mutex_unlock(k->mu), 0);
	cr_assert_eq(br_rwlock_unlock(k->rw), 0);
	close(k->pipe_r);
	close(k->pipe_w);
	close(k->lfd);
	close(k->sock);
	close(k->peer);
}

Test(deadline, each_kind_of_wait_times_out_in_a_task, .timeout = 60.0)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(2, flags);
		br_mutex mu = BR_MUTEX_INIT;
		br_rwlock rw = BR_RWLOCK_INIT;
		struct kinds k;

		kinds_setup(&k, rt, &mu, &rw);
		t_assert_task_ok(br_spawn(rt, wait_every_kind, &k));
		kinds_teardown(&k);
		br_runtime_free(rt);
	}
}

Test(deadline, each_kind_of_wait_times_out_on_a_plain_thread, .timeout = 60.0)
{
	br_runtime *rt = t_runtime(2, 0);
	br_mutex mu = BR_MUTEX_INIT;
	br_rwlock rw = BR_RWLOCK_INIT;
	struct kinds k;
	pthread_t th;
	const char *msg;

	kinds_setup(&k, rt, &mu, &rw);
	t_thread_start(&th, wait_every_kind, &k);
	msg = t_thread_join(th);
	cr_assert_null(msg, "%s", msg);
	kinds_teardown(&k);
	br_runtime_free(rt);
}

/* ------------------------------------------------------------------ */
/* Line reads, writers, signals, pool jobs                             */
/* ------------------------------------------------------------------ */

/* What the waits below use: a socket with half a line in it, a pipe
 * whose buffer is full, a signal that never comes, a pool. */
struct streams {
	br_pool *pool;
	int sock, peer;
	int pipe_r, pipe_w;
};

static int forever_job(br_job *job, const void *in, size_t len)
{
	(void)job;
	(void)in;
	(void)len;
	for (;;)
		pause();
	return 0;
}

/* A write queued behind a full pipe, then its drain: whichever waits. */
static int write_then_drain(br_writer *w)
{
	ssize_t n = br_writer_write(w, "x", 1);

	return n < 0 ? (int)n : br_writer_drain(w);
}

static void *wait_on_streams(void *arg)
{
	struct streams *st = arg;
	char line[64];
	br_reader *rd;
	br_writer *wr;
	br_signal *sig;
	br_future *f;
	sigset_t set;

	/* Half a line: each verb times out, and nothing is lost. */
	T_REQUIRE(write(st->peer, "half", 4) == 4);
	T_REQUIRE(br_reader_new(&rd, st->sock) == 0);
	EXPECT_TIMEOUT(br_reader_readline(rd, line, sizeof(line)));
	EXPECT_TIMEOUT(br_reader_readuntil(rd, "\r\n", 2, line, sizeof(line)));
	EXPECT_TIMEOUT(br_reader_readexactly(rd, line, 10));
	T_REQUIRE(write(st->peer, " a line\n", 8) == 8);
	T_REQUIRE(br_reader_readline(rd, line, sizeof(line)) == 12);
	T_REQUIRE(memcmp(line, "half a line\n", 12) == 0);
	br_reader_free(rd);

	T_REQUIRE(br_writer_new(&wr, st->pipe_w) == 0);
	EXPECT_TIMEOUT(write_then_drain(wr));
	br_writer_free(wr);

	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	T_REQUIRE(br_signal_new(&sig, &set) == 0);
	EXPECT_TIMEOUT(br_signal_next(sig));
	br_signal_free(sig);

	/* A job awaited in a scope is cancelled: its worker is killed. */
	f = br_submit(st->pool, forever_job, NULL, 0);
	EXPECT_TIMEOUT(br_await(f, NULL));
	T_REQUIRE(br_await(f, NULL) == -ECANCELED);
	br_future_release(f);
	return NULL;
}

Test(deadline, line_reads_writers_signals_and_jobs_time_out, .timeout = 60.0)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(2, flags);
		struct streams st;
		int sp[2], p[2];
		char fill[4096];
		const char *msg;
		pthread_t th;

		memset(fill, 'f', sizeof(fill));
		cr_assert_eq(br_pool_new(&st.pool, rt,
					 &(br_pool_config){ .workers = 1 }),
			     0);
		for (int from_thread = 0; from_thread < 2; from_thread++) {
			cr_assert_eq(socketpair(AF_UNIX,
						SOCK_STREAM | SOCK_CLOEXEC, 0,
						sp),
				     0);
			cr_assert_eq(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
			while (write(p[1], fill, sizeof(fill)) > 0)
				;
			/* The writer wants it as any program leaves it. */
			cr_assert_eq(fcntl(p[1], F_SETFL, 0), 0);
			st.sock = sp[0];
			st.peer = sp[1];
			st.pipe_r = p[0];
			st.pipe_w = p[1];
			if (from_thread) {
				t_thread_start(&th, wait_on_streams, &st);
				msg = t_thread_join(th);
				cr_assert_null(msg, "%s", msg);
			} else {
				t_assert_task_ok(
					br_spawn(rt, wait_on_streams, &st));
			}
			close(sp[0]);
			close(sp[1]);
			close(p[0]);
			close(p[1]);
		}
		br_pool_free(st.pool);
		br_runtime_free(rt);
	}
}

/* The blocking pool's one thread is held: a name lookup and a directory
 * listing queue behind it, and their waits end with the scope. */
static void *lookups_and_listings(void *arg)
{
	atomic_int *release = arg;
	struct addrinfo *res = (struct addrinfo *)1;
	char **names = (char **)1;
	br_future *hold;

	hold = br_spawn_blocking(br_current_runtime(), hold_thread, release);
	EXPECT_TIMEOUT(br_getaddrinfo("localhost", "80", NULL, &res));
	T_REQUIRE(res == NULL);
	EXPECT_TIMEOUT(br_listdir(".", &names));
	T_REQUIRE(names == NULL);
	atomic_store(release, 1);
	T_REQUIRE(br_await(hold, NULL) == 0);
	br_future_release(hold);
	/* Out of the scopes, the same calls work. */
	T_REQUIRE(br_listdir(".", &names) >= 0);
	free(names);
	return NULL;
}

/* body, a task on both loops, with a blocking pool of one thread and a
 * release flag for hold_thread, which holds that thread. */
static void with_one_pool_thread(br_task_fn body)
{
	FOR_EACH_MODE(flags)
	{
		br_config cfg = { .workers = 1,
				  .flags = flags,
				  .blocking_threads = 1 };
		br_runtime *rt = t_runtime_cfg(&cfg);
		atomic_int release;

		atomic_init(&release, 0);
		t_assert_task_ok(br_spawn(rt, body, &release));
		br_runtime_free(rt);
	}
}

Test(deadline, lookups_and_listings_on_the_blocking_pool_time_out,
     .timeout = 30.0)
{
	with_one_pool_thread(lookups_and_listings);
}

/* The blocking pool's one thread is held: without a ring, an open that
 * needs the pool (O_CREAT) and an fsync wait for it, and each wait ends
 * with its own scope; the open, finished on its own later, closes the fd
 * nobody took (the leak check sees to it). With a ring they need no pool
 * and answer in time. */
static void *opens_and_syncs(void *arg)
{
	atomic_int *release = arg;
	int ring = br_runtime_features(br_current_runtime()) & BR_FEAT_URING;
	char path[] = "/tmp/braid-dl-open-XXXXXX";
	int fd = mkstemp(path), r;
	br_future *hold;

	T_REQUIRE(fd >= 0);
	hold = br_spawn_blocking(br_current_runtime(), hold_thread, release);
	if (ring) {
		br_deadline d;

		T_REQUIRE(br_deadline_enter(&d, 5000) == 0);
		r = br_openat(AT_FDCWD, path, O_RDWR | O_CREAT, 0600);
		T_REQUIRE(r >= 0 && br_close(r) == 0);
		T_REQUIRE(br_fsync(fd, 0) == 0);
		T_REQUIRE(br_deadline_leave(&d) == 0);
	} else {
		EXPECT_TIMEOUT(
			br_openat(AT_FDCWD, path, O_RDWR | O_CREAT, 0600));
		EXPECT_TIMEOUT(br_fsync(fd, 0));
	}
	atomic_store(release, 1);
	T_REQUIRE(br_await(hold, NULL) == 0);
	br_future_release(hold);
	/* Out of the scopes, the same calls work. */
	r = br_openat(AT_FDCWD, path, O_RDWR | O_CREAT, 0600);
	T_REQUIRE(r >= 0 && br_close(r) == 0);
	T_REQUIRE(br_fsync(fd, 0) == 0);
	T_REQUIRE(br_close(fd) == 0);
	T_REQUIRE(unlink(path) == 0);
	return NULL;
}

Test(deadline, opens_and_syncs_on_the_blocking_pool_time_out, .timeout = 60.0)
{
	with_one_pool_thread(opens_and_syncs);
}

/* ------------------------------------------------------------------ */
/* Waits that need not wait                                            */
/* ------------------------------------------------------------------ */

struct ready {
	int pipe_r, pipe_w;
	br_runtime *rt;
};

static void *waits_in_time(void *arg)
{
	struct ready *r = arg;
	br_deadline d;
	br_mutex mu = BR_MUTEX_INIT;
	br_sem sem = BR_SEM_INIT(1);
	br_chan *ch;
	br_future *f;
	char buf[8];
	void *v;
	int x = 7, y = 0;

	T_REQUIRE(br_chan_new(&ch, sizeof(int), 1) == 0);
	/* A deadline far away: everything completes as usual. */
	T_REQUIRE(br_deadline_enter(&d, 10000) == 0);
	T_REQUIRE(br_deadline_current() > br_now_ns());
	T_REQUIRE(br_write(r->pipe_w, "ab", 2) == 2);
	T_REQUIRE(br_read(r->pipe_r, buf, sizeof(buf)) == 2);
	T_REQUIRE(br_sleep_ms(5) == 0);
	f = br_spawn(r->rt, quick, (void *)42);
	T_REQUIRE(br_await(f, &v) == 0 && (intptr_t)v == 42);
	br_future_release(f);
	T_REQUIRE(br_mutex_lock(&mu) == 0 && br_mutex_unlock(&mu) == 0);
	T_REQUIRE(br_chan_send(ch, &x) == 0);
	T_REQUIRE(br_chan_recv(ch, &y) == 0 && y == 7);
	T_REQUIRE(br_deadline_leave(&d) == 0);

	/* A deadline passed already: what is there is still taken. */
	T_REQUIRE(br_deadline_enter(&d, 0) == 0);
	T_REQUIRE(br_write(r->pipe_w, "cd", 2) == 2);
	T_REQUIRE(br_read(r->pipe_r, buf, sizeof(buf)) == 2);
	T_REQUIRE(br_mutex_lock(&mu) == 0 && br_mutex_unlock(&mu) == 0);
	T_REQUIRE(br_sem_wait(&sem) == 0);
	T_REQUIRE(br_chan_send(ch, &x) == 0);
	T_REQUIRE(br_chan_recv(ch, &y) == 0);
	f = br_spawn(r->rt, quick, NULL);
	while (br_future_state(f) == BR_PENDING)
		br_yield();
	T_REQUIRE(br_await(f, NULL) == 0);
	br_future_release(f);
	T_REQUIRE(br_sleep_ms(0) == 0); /* a yield waits for nothing */
	/* ... and anything that would wait ends at once. */
	T_REQUIRE(br_sem_wait(&sem) == -ETIMEDOUT);
	T_REQUIRE(br_read(r->pipe_r, buf, sizeof(buf)) == -ETIMEDOUT);
	T_REQUIRE(br_sleep_ms(1) == -ETIMEDOUT);
	T_REQUIRE(br_deadline_leave(&d) == -ETIMEDOUT);
	br_chan_free(ch);
	return NULL;
}

Test(deadline, waits_that_need_not_wait_complete_as_usual, .timeout = 30.0)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(2, flags);
		struct ready r = { .rt = rt };
		int p[2];
		pthread_t th;
		const char *msg;

		cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
		r.pipe_r = p[0];
		r.pipe_w = p[1];
		t_assert_task_ok(br_spawn(rt, waits_in_time, &r));
		/* And the same from a plain thread. */
		t_thread_start(&th, waits_in_time, &r);
		msg = t_thread_join(th);
		cr_assert_null(msg, "%s", msg);
		close(p[0]);
		close(p[1]);
		br_runtime_free(rt);
	}
}

/* ------------------------------------------------------------------ */
/* Nesting                                                             */
/* ------------------------------------------------------------------ */

static void *nested(void *arg)
{
	br_deadline outer, inner;
	int64_t t0, dl;

	T_REQUIRE(br_deadline_current() == -1);
	/* The inner scope is nearer: it wins, and its end is its own. */
	t0 = br_now_ns();
	T_REQUIRE(br_deadline_enter(&outer, 10000) == 0);
	dl = br_deadline_current();
	T_REQUIRE(dl >= t0 + 10000 * T_NS_PER_MS);
	T_REQUIRE(br_deadline_enter(&inner, 40) == 0);
	T_REQUIRE(br_deadline_current() < dl);
	T_REQUIRE(br_sleep_ms(10000) == -ETIMEDOUT);
	T_REQUIRE(br_now_ns() - t0 >= 40 * T_NS_PER_MS);
	T_REQUIRE(br_deadline_leave(&inner) == -ETIMEDOUT);
	/* Leaving restores the outer deadline: waits work again. */
	T_REQUIRE(br_deadline_current() == dl);
	T_REQUIRE(br_sleep_ms(5) == 0);
	T_REQUIRE(br_deadline_leave(&outer) == 0);
	T_REQUIRE(br_deadline_current() == -1);

	/* The outer scope is nearer: the inner one cannot extend it. */
	t0 = br_now_ns();
	T_REQUIRE(br_deadline_enter(&outer, 40) == 0);
	dl = br_deadline_current();
	T_REQUIRE(br_deadline_enter(&inner, 10000) == 0);
	T_REQUIRE(br_deadline_current() == dl);
	T_REQUIRE(br_sleep_ms(10000) == -ETIMEDOUT);
	T_REQUIRE(br_now_ns() - t0 >= 40 * T_NS_PER_MS);
	T_REQUIRE(br_deadline_leave(&inner) == 0); /* not its own */
	T_REQUIRE(br_deadline_current() == dl);
	T_REQUIRE(br_deadline_leave(&outer) == -ETIMEDOUT);

	/* A scope without a deadline of its own keeps the outer one. */
	T_REQUIRE(br_deadline_enter(&outer, 10000) == 0);
	dl = br_deadline_current();
	T_REQUIRE(br_deadline_enter(&inner, -1) == 0);
	T_REQUIRE(br_deadline_current() == dl);
	T_REQUIRE(br_deadline_leave(&inner) == 0);

	/* Leaving an outer scope leaves the inner ones not left. */
	T_REQUIRE(br_deadline_enter(&inner, 20) == 0);
	T_REQUIRE(br_deadline_leave(&outer) == 0);
	T_REQUIRE(br_deadline_current() == -1);
	T_REQUIRE(br_deadline_leave(&inner) == -EINVAL);
	T_REQUIRE(br_sleep_ms(30) == 0);
	return arg;
}

Test(deadline, scopes_nest_and_leaving_restores_the_outer_deadline,
     .timeout = 30.0)
{
	br_runtime *rt = t_runtime(2, 0);
	pthread_t th;
	const char *msg;

	t_assert_task_ok(br_spawn(rt, nested, NULL));
	t_thread_start(&th, nested, NULL);
	msg = t_thread_join(th);
	cr_assert_null(msg, "%s", msg);
	br_runtime_free(rt);
}

/* ------------------------------------------------------------------ */
/* br_io_timeout, the per-call case                                    */
/* ------------------------------------------------------------------ */

static void *io_timeout_and_scope(void *arg)
{
	int *p = arg;
	br_deadline d;
	char c;
	int64_t t0;

	/* The call's own timeout is nearer. */
	T_REQUIRE(br_deadline_enter(&d, 10000) == 0);
	t0 = br_now_ns();
	T_REQUIRE(br_read_timeout(p[0], &c, 1, 30) == -ETIMEDOUT);
	T_REQUIRE(br_now_ns() - t0 >= 30 * T_NS_PER_MS);
	T_REQUIRE(br_io_timeout(30) == -1);
	T_REQUIRE(br_read(p[0], &c, 1) == -ETIMEDOUT);
	T_REQUIRE(br_deadline_leave(&d) == 0);
	/* The scope's is nearer than br_io_timeout's. */
	T_REQUIRE(br_io_timeout(10000) == 30);
	T_REQUIRE(br_deadline_enter(&d, 30) == 0);
	t0 = br_now_ns();
	T_REQUIRE(br_read(p[0], &c, 1) == -ETIMEDOUT);
	T_REQUIRE(br_now_ns() - t0 >= 30 * T_NS_PER_MS);
	T_REQUIRE(br_deadline_leave(&d) == -ETIMEDOUT);
	T_REQUIRE(br_io_timeout(-1) == 10000);
	return NULL;
}

Test(deadline, io_timeout_and_the_scope_take_the_nearer, .timeout = 30.0)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(1, flags);
		int p[2];
		pthread_t th;
		const char *msg;

		cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
		t_assert_task_ok(br_spawn(rt, io_timeout_and_scope, p));
		t_thread_start(&th, io_timeout_and_scope, p);
		msg = t_thread_join(th);
		cr_assert_null(msg, "%s", msg);
		close(p[0]);
		close(p[1]);
		br_runtime_free(rt);
	}
}

/* ------------------------------------------------------------------ */
/* Cancellation, ownership, arguments                                  */
/* ------------------------------------------------------------------ */

struct cancelled {
	int pipe_r;
	atomic_int started;
	int read_ret, sleep_ret, leave_ret;
};

static void *read_in_a_scope(void *arg)
{
	struct cancelled *c = arg;
	br_deadline d;
	char b;

	br_deadline_enter(&d, 10000);
	atomic_store(&c->started, 1);
	c->read_ret = (int)br_read(c->pipe_r, &b, 1);
	c->sleep_ret = br_sleep_ms(10000);
	c->leave_ret = br_deadline_leave(&d);
	return NULL;
}

static void *past_scope_cancelled(void *arg)
{
	struct cancelled *c = arg;
	br_deadline d;
	char b;

	/* Cancelled, and past the scope's deadline: the cancellation is
	 * the answer. */
	atomic_store(&c->started, 1);
	while (!br_cancelled())
		br_yield();
	br_deadline_enter(&d, 0);
	c->read_ret = (int)br_read(c->pipe_r, &b, 1);
	c->sleep_ret = br_sleep_ms(100);
	c->leave_ret = br_deadline_leave(&d);
	return NULL;
}

Test(deadline, a_cancelled_task_inside_a_scope_sees_ecanceled, .timeout = 30.0)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(2, flags);
		struct cancelled c = { .read_ret = 1 }, c2 = { .read_ret = 1 };
		int p[2];
		br_future *f;

		cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
		c.pipe_r = c2.pipe_r = p[0];
		f = br_spawn(rt, read_in_a_scope, &c);
		cr_assert_eq(t_spin_until(&c.started, 1, 5000 * T_NS_PER_MS),
			     0);
		br_sleep_ms(20); /* most likely in its read */
		br_cancel(f);
		cr_assert_eq(br_await(f, NULL), -ECANCELED);
		cr_assert_eq(c.read_ret, -ECANCELED);
		cr_assert_eq(c.sleep_ret, -ECANCELED);
		cr_assert_eq(c.leave_ret, 0);
		br_future_release(f);

		f = br_spawn(rt, past_scope_cancelled, &c2);
		cr_assert_eq(t_spin_until(&c2.started, 1, 5000 * T_NS_PER_MS),
			     0);
		br_cancel(f);
		cr_assert_eq(br_await(f, NULL), -ECANCELED);
		cr_assert_eq(c2.read_ret, -ECANCELED);
		cr_assert_eq(c2.sleep_ret, -ECANCELED);
		cr_assert_eq(c2.leave_ret, -ETIMEDOUT);
		br_future_release(f);
		close(p[0]);
		close(p[1]);
		br_runtime_free(rt);
	}
}

struct owner {
	br_runtime *rt;
	int64_t child_saw;
	int child_sleep, await_ret;
};

static void *report_deadline(void *arg)
{
	struct owner *o = arg;

	o->child_saw = br_deadline_current();
	o->child_sleep = br_sleep_ms(200);
	return NULL;
}

static void *await_child_in_a_scope(void *arg)
{
	struct owner *o = arg;
	br_deadline d;
	br_future *f;

	T_REQUIRE(br_deadline_enter(&d, 30) == 0);
	/* Spawned and awaited at once: without the scope it would run
	 * inline on this stack, and its sleep would hold the await. */
	f = br_spawn(o->rt, report_deadline, o);
	o->await_ret = br_await(f, NULL);
	T_REQUIRE(br_deadline_leave(&d) == -ETIMEDOUT);
	T_REQUIRE(br_await(f, NULL) == -ECANCELED);
	br_future_release(f);
	return NULL;
}

Test(deadline, a_scope_belongs_to_the_task_that_entered_it, .timeout = 30.0)
{
	br_runtime *rt = t_runtime(1, 0);
	struct owner o = { .rt = rt, .child_saw = 5, .child_sleep = 5 };

	t_assert_task_ok(br_spawn(rt, await_child_in_a_scope, &o));
	cr_assert_eq(o.await_ret, -ETIMEDOUT);
	cr_assert_eq(o.child_saw, -1, "the child inherited the scope");
	cr_assert_eq(o.child_sleep, -ECANCELED);
	br_runtime_free(rt);
}

static void *bad_arguments(void *arg)
{
	br_deadline d, never;
	int64_t now;

	memset(&never, 0, sizeof(never));
	T_REQUIRE(br_deadline_enter(NULL, 10) == -EINVAL);
	T_REQUIRE(br_deadline_enter_at(NULL, 10) == -EINVAL);
	T_REQUIRE(br_deadline_leave(NULL) == -EINVAL);
	T_REQUIRE(br_deadline_leave(&never) == -EINVAL);
	T_REQUIRE(br_deadline_enter(&d, 1000) == 0);
	T_REQUIRE(br_deadline_enter(&d, 1000) == -EBUSY);
	T_REQUIRE(br_deadline_leave(&d) == 0);
	T_REQUIRE(br_deadline_leave(&d) == -EINVAL);
	/* Times saturate: a timeout too long to pass is no deadline. */
	T_REQUIRE(br_deadline_enter(&d, INT64_MAX) == 0);
	T_REQUIRE(br_deadline_current() == -1);
	T_REQUIRE(br_sleep_ms(1) == 0);
	T_REQUIRE(br_deadline_leave(&d) == 0);
	T_REQUIRE(br_deadline_enter_at(&d, INT64_MAX) == 0);
	T_REQUIRE(br_deadline_current() == -1);
	T_REQUIRE(br_deadline_leave(&d) == 0);
	T_REQUIRE(br_deadline_enter_at(&d, INT64_MIN) == 0);
	T_REQUIRE(br_deadline_current() == -1);
	T_REQUIRE(br_deadline_leave(&d) == 0);
	now = br_now_ns();
	T_REQUIRE(br_deadline_enter_at(&d, now + 1000 * T_NS_PER_MS) == 0);
	T_REQUIRE(br_deadline_current() == now + 1000 * T_NS_PER_MS);
	T_REQUIRE(br_deadline_leave(&d) == 0);
	return arg;
}

Test(deadline, bad_arguments_and_huge_times_are_handled, .timeout = 20.0)
{
	br_runtime *rt = t_runtime(1, 0);
	const char *msg;
	pthread_t th;

	t_assert_task_ok(br_spawn(rt, bad_arguments, NULL));
	t_thread_start(&th, bad_arguments, NULL);
	msg = t_thread_join(th);
	cr_assert_null(msg, "%s", msg);
	br_runtime_free(rt);
}
