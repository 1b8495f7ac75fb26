/* SPDX-License-Identifier: MIT */
/*
 * test_time_limits.c - every time argument of the public API, swept over
 * 0, 1, INT64_MAX / 1000, INT64_MAX, 2^44 and negatives: sleeps, loop
 * callbacks, br_wait_for/br_wait_any, the _for and _until variants of
 * every synchronisation object and channel, the I/O deadlines, br_exec's
 * timeout and the process pool's limits.
 *
 * A limit too long to matter must never fire early (a product or a sum
 * that overflowed used to make it fire at once): each such call is still
 * waiting after PENDING_MS, and then ends cleanly when it is cancelled or
 * what it waits for arrives. Zero and one millisecond time out; negative
 * values mean what braid.h says (no limit, or return at once for a
 * sleep). Tasks run with io_uring (when the kernel has it) and with the
 * readiness fallback; the asan variant also catches the overflow itself
 * (UBSan).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "helpers.h"

TestSuite(time_limits, .init = t_leak_init, .fini = t_leak_fini);

/* How long a call with a huge limit must still be waiting. */
#define PENDING_MS 200

#define HUGE_44 (INT64_C(1) << 44)

/* Relative limits (ms or ns) that must never pass during a test: huge,
 * and negative (no limit, for the calls below that take one). */
static const int64_t no_end[] = { INT64_MAX, INT64_MAX / 1000, HUGE_44, -1,
				  INT64_MIN };
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
#define N_NO_END COUNT(no_end)

/* Criterion starts a thread in each test process before the test runs:
 * fork the process pool's zygote while the process still has one. */
__attribute__((constructor)) static void start_zygote(void)
{
	br_zygote_start();
}

/* An absolute deadline far enough away to stay pending, or none. */
static int far_deadline(int64_t d)
{
	return d < 0 || d > br_now_ns() + 3600 * INT64_C(1000000000);
}

/* ------------------------------------------------------------------ */
/* One timed call, run by a task or a plain thread                     */
/* ------------------------------------------------------------------ */

enum kind {
	K_SLEEP_MS,
	K_SLEEP_NS,
	K_SLEEP_UNTIL,
	K_WAIT_FOR,
	K_WAIT_ANY,
	K_MUTEX,
	K_RDLOCK,
	K_WRLOCK,
	K_SEM,
	K_EVENT,
	K_WAITGROUP,
	K_COND,
	K_SEND,
	K_RECV,
	K_SELECT,
	K_READ,
	K_WRITE,
	K_RECVSOCK,
	K_SENDSOCK,
	K_ACCEPT,
	K_POLL,
	K_IO_TIMEOUT,
};

static const char *const kind_name[] = {
	"br_sleep_ms",		 "br_sleep_ns",	      "br_sleep_until",
	"br_wait_for",		 "br_wait_any",	      "br_mutex_lock",
	"br_rwlock_rdlock",	 "br_rwlock_wrlock",  "br_sem_wait",
	"br_event_wait",	 "br_waitgroup_wait", "br_cond_wait",
	"br_chan_send",		 "br_chan_recv",      "br_chan_select",
	"br_read_timeout",	 "br_write_timeout",  "br_recv_timeout",
	"br_send_timeout",	 "br_accept_timeout", "br_poll_timeout",
	"br_io_timeout+br_read",
};

/* What the calls wait on: nothing here ever becomes ready by itself. */
struct objs {
	br_future *promise; /* never resolved (br_wait_for) */
	br_future *any;	    /* never resolved (br_wait_any) */
	br_mutex m;	    /* held by the test */
	br_rwlock l;	    /* write-held by the test */
	br_sem s;	    /* no units */
	br_event e;	    /* clear */
	br_waitgroup g;	    /* count 1 */
	br_mutex cm;	    /* the condition's mutex */
	br_cond c;	    /* never signalled until released */
	br_chan *full;	    /* capacity 1, holding one element */
	br_chan *empty;	    /* capacity 1, empty */
	int rd[2];	    /* a pipe with nothing to read */
	int wr[2];	    /* a pipe whose buffer is full */
	int sk[2];	    /* a socket pair: sk[0] has nothing to read */
	int full_sk[2];	    /* a socket pair whose send buffer is full */
	int lfd;	    /* a listener nobody connects to */
};

struct call {
	enum kind kind;
	int until; /* the _until variant (the argument is absolute) */
	int64_t t;
	struct objs *o;
	int fd; /* the fd to read, when not the shared one */
	int ret;
	atomic_int done;
};

static int do_call(struct call *c)
{
	struct objs *o = c->o;
	int64_t t = c->t;
	int u = c->until, r, v = 7;
	char b[16] = { 0 };
	br_chan_case cs = { .op = BR_CHAN_RECV, .elem = &v };

	switch (c->kind) {
	case K_SLEEP_MS:
		return br_sleep_ms(t);
	case K_SLEEP_NS:
		return br_sleep_ns(t);
	case K_SLEEP_UNTIL:
		return br_sleep_until(t);
	case K_WAIT_FOR:
		return br_wait_for(o->promise, t, NULL);
	case K_WAIT_ANY:
		return br_wait_any(&o->any, 1, t);
	case K_MUTEX:
		r = u ? br_mutex_lock_until(&o->m, t) :
			br_mutex_lock_for(&o->m, t);
		if (r == 0)
			br_mutex_unlock(&o->m);
		return r;
	case K_RDLOCK:
		r = u ? br_rwlock_rdlock_until(&o->l, t) :
			br_rwlock_rdlock_for(&o->l, t);
		if (r == 0)
			br_rwlock_unlock(&o->l);
		return r;
	case K_WRLOCK:
		r = u ? br_rwlock_wrlock_until(&o->l, t) :
			br_rwlock_wrlock_for(&o->l, t);
		if (r == 0)
			br_rwlock_unlock(&o->l);
		return r;
	case K_SEM:
		r = u ? br_sem_wait_until(&o->s, t) : br_sem_wait_for(&o->s, t);
		if (r == 0)
			br_sem_post(&o->s); /* pass it on */
		return r;
	case K_EVENT:
		return u ? br_event_wait_until(&o->e, t) :
			   br_event_wait_for(&o->e, t);
	case K_WAITGROUP:
		return u ? br_waitgroup_wait_until(&o->g, t) :
			   br_waitgroup_wait_for(&o->g, t);
	case K_COND:
		r = br_mutex_lock(&o->cm);
		if (r < 0)
			return r;
		r = u ? br_cond_wait_until(&o->c, &o->cm, t) :
			br_cond_wait_for(&o->c, &o->cm, t);
		br_mutex_unlock(&o->cm);
		return r;
	case K_SEND:
		return u ? br_chan_send_until(o->full, &v, t) :
			   br_chan_send_for(o->full, &v, t);
	case K_RECV:
		return u ? br_chan_recv_until(o->empty, &v, t) :
			   br_chan_recv_for(o->empty, &v, t);
	case K_SELECT:
		cs.chan = o->empty;
		r = u ? br_chan_select_until(&cs, 1, t) :
			br_chan_select_for(&cs, 1, t);
		return r == 0 ? cs.result : r;
	case K_READ:
		return (int)br_read_timeout(c->fd >= 0 ? c->fd : o->rd[0], b, 1,
					    t);
	case K_WRITE:
		return (int)br_write_timeout(o->wr[1], b, sizeof(b), t);
	case K_RECVSOCK:
		return (int)br_recv_timeout(o->sk[0], b, 1, 0, t);
	case K_SENDSOCK:
		return (int)br_send_timeout(o->full_sk[0], b, sizeof(b), 0, t);
	case K_ACCEPT:
		return br_accept_timeout(o->lfd, NULL, NULL, 0, t);
	case K_POLL:
		return br_poll_timeout(c->fd >= 0 ? c->fd : o->rd[0], POLLIN,
				       t);
	case K_IO_TIMEOUT:
		br_io_timeout(t);
		return (int)br_read(c->fd >= 0 ? c->fd : o->rd[0], b, 1);
	}
	return -ENOSYS;
}

/* Calls that have begun: a task cancelled before it ever ran would
 * leave its call's ret at 0, and a slow machine (TSan) may not have run
 * every task by the time PENDING_MS has passed. */
static atomic_int calls_started;

static void *run_call(void *arg)
{
	struct call *c = arg;

	atomic_fetch_add(&calls_started, 1);
	c->ret = do_call(c);
	atomic_store(&c->done, 1);
	return NULL;
}

static void fill_nonblocking(int fd, int sock)
{
	static char junk[4096];
	int fl = fcntl(fd, F_GETFL);

	cr_assert_eq(fcntl(fd, F_SETFL, fl | O_NONBLOCK), 0);
	while ((sock ? send(fd, junk, sizeof(junk), MSG_DONTWAIT) :
		       write(fd, junk, sizeof(junk))) > 0)
		;
	/* io_uring answers -EAGAIN for an O_NONBLOCK file: block again. */
	cr_assert_eq(fcntl(fd, F_SETFL, fl), 0);
}

static void objs_init(struct objs *o)
{
	int one = 1;

	memset(o, 0, sizeof(*o));
	o->promise = br_promise_new();
	o->any = br_promise_new();
	cr_assert_eq(br_mutex_init(&o->m), 0);
	cr_assert_eq(br_mutex_lock(&o->m), 0);
	cr_assert_eq(br_rwlock_init(&o->l), 0);
	cr_assert_eq(br_rwlock_wrlock(&o->l), 0);
	cr_assert_eq(br_sem_init(&o->s, 0), 0);
	cr_assert_eq(br_event_init(&o->e), 0);
	cr_assert_eq(br_waitgroup_init(&o->g), 0);
	cr_assert_eq(br_waitgroup_add(&o->g, 1), 0);
	cr_assert_eq(br_mutex_init(&o->cm), 0);
	cr_assert_eq(br_cond_init(&o->c), 0);
	cr_assert_eq(br_chan_new(&o->full, sizeof(int), 1), 0);
	cr_assert_eq(br_chan_try_send(o->full, &one), 0);
	cr_assert_eq(br_chan_new(&o->empty, sizeof(int), 1), 0);
	cr_assert_eq(pipe2(o->rd, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(o->wr, O_CLOEXEC), 0);
	fill_nonblocking(o->wr[1], 0);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, o->sk),
		     0);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
				o->full_sk),
		     0);
	fill_nonblocking(o->full_sk[0], 1);
	o->lfd = br_tcp_listen("127.0.0.1", 0, 0);
	cr_assert_geq(o->lfd, 0);
}

/* Nothing is left waiting on any object: each can be destroyed. The
 * test's holds are released here unless objs_release() did (then these
 * calls fail harmlessly). */
static void objs_free(struct objs *o)
{
	int fds[] = { o->rd[0], o->rd[1], o->wr[0],	 o->wr[1],     o->sk[0],
		      o->sk[1], o->lfd,	  o->full_sk[0], o->full_sk[1] };

	br_future_release(o->promise);
	br_future_release(o->any);
	br_mutex_unlock(&o->m);
	cr_assert_eq(br_mutex_destroy(&o->m), 0, "a waiter is left");
	br_rwlock_unlock(&o->l);
	cr_assert_eq(br_rwlock_destroy(&o->l), 0, "a waiter is left");
	cr_assert_eq(br_sem_destroy(&o->s), 0, "a waiter is left");
	cr_assert_eq(br_event_destroy(&o->e), 0, "a waiter is left");
	br_waitgroup_done(&o->g);
	cr_assert_eq(br_waitgroup_destroy(&o->g), 0, "a waiter is left");
	cr_assert_eq(br_cond_destroy(&o->c), 0, "a waiter is left");
	cr_assert_eq(br_mutex_destroy(&o->cm), 0);
	br_chan_free(o->full);
	br_chan_free(o->empty);
	for (size_t i = 0; i < COUNT(fds); i++)
		close(fds[i]);
}

/* Release everything a plain thread may wait on; each waiter that gets
 * the mutex, the lock or the unit passes it on. */
static void objs_release(struct objs *o)
{
	br_promise_resolve(o->promise, NULL);
	br_promise_resolve(o->any, NULL);
	br_mutex_unlock(&o->m);
	br_rwlock_unlock(&o->l);
	br_sem_post(&o->s);
	br_event_set(&o->e);
	br_waitgroup_done(&o->g);
	br_mutex_lock(&o->cm);
	br_cond_broadcast(&o->c);
	br_mutex_unlock(&o->cm);
	br_chan_close(o->full);
	br_chan_close(o->empty);
}

static const enum kind sync_kinds[] = { K_WAIT_FOR, K_WAIT_ANY,	 K_MUTEX,
					K_RDLOCK,   K_WRLOCK,	 K_SEM,
					K_EVENT,    K_WAITGROUP, K_COND,
					K_SEND,	    K_RECV,	 K_SELECT };
static const enum kind io_kinds[] = { K_READ,	   K_WRITE,  K_RECVSOCK,
				      K_SENDSOCK,  K_ACCEPT, K_POLL,
				      K_IO_TIMEOUT };
static const enum kind sleep_kinds[] = { K_SLEEP_MS, K_SLEEP_NS };

/* Has an _until variant. */
static int has_until(enum kind k)
{
	return k >= K_MUTEX && k <= K_SELECT;
}

/* Build the calls that must stay pending: each kind with each of
 * no_end, and the _until variants with far absolute deadlines. */
static size_t pending_calls(struct call *cs, size_t cap, const enum kind *ks,
			    size_t nk, struct objs *o)
{
	static const int64_t far[] = { INT64_MAX, INT64_MAX / 1000, -1,
				       INT64_MIN };
	size_t n = 0;

	for (size_t k = 0; k < nk; k++) {
		for (size_t i = 0; i < N_NO_END; i++) {
			cr_assert_lt(n, cap);
			cs[n++] = (struct call){
				.kind = ks[k], .t = no_end[i], .o = o, .fd = -1
			};
		}
		for (size_t i = 0; has_until(ks[k]) && i < COUNT(far); i++) {
			if (!far_deadline(far[i]))
				continue;
			cr_assert_lt(n, cap);
			cs[n++] = (struct call){ .kind = ks[k],
						 .until = 1,
						 .t = far[i],
						 .o = o,
						 .fd = -1 };
		}
	}
	return n;
}

static void assert_still_waiting(struct call *cs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(
			atomic_load(&cs[i].done), 0,
			"%s%s(%lld) returned %d (%s) after less than %d ms",
			kind_name[cs[i].kind], cs[i].until ? "_until" : "",
			(long long)cs[i].t, cs[i].ret, br_strerror(cs[i].ret),
			PENDING_MS);
}

/*
 * Run calls cs[0..n) as tasks of a fresh runtime (flags), check that
 * every one is still waiting after PENDING_MS, cancel them and check
 * that each ends with -ECANCELED and leaves its object consistent.
 */
static void tasks_stay_pending(unsigned flags, struct call *cs, size_t n)
{
	br_runtime *rt = t_runtime(2, flags);
	br_future **fs = calloc(n, sizeof(*fs));

	cr_assert_not_null(fs);
	atomic_store(&calls_started, 0);
	for (size_t i = 0; i < n; i++)
		fs[i] = br_spawn(rt, run_call, &cs[i]);
	cr_assert_eq(t_wait_until(&calls_started, (int)n, 10000 * T_NS_PER_MS),
		     0, "%d of %zu calls started", atomic_load(&calls_started),
		     n);
	br_sleep_ms(PENDING_MS);
	assert_still_waiting(cs, n);
	for (size_t i = 0; i < n; i++)
		br_cancel(fs[i]);
	for (size_t i = 0; i < n; i++) {
		br_await(fs[i], NULL);
		cr_assert_eq(cs[i].ret, -ECANCELED,
			     "%s%s(%lld) ended with %d (%s), not cancelled",
			     kind_name[cs[i].kind], cs[i].until ? "_until" : "",
			     (long long)cs[i].t, cs[i].ret,
			     br_strerror(cs[i].ret));
		br_future_release(fs[i]);
	}
	free(fs);
	br_runtime_free(rt);
}

/* Calls with a limit of 0 or 1 ms, or a deadline already past, that
 * time out. From the calling task or thread. */
static void *short_limits_time_out(void *arg)
{
	struct objs *o = arg;
	static const int64_t rel[] = { 0, 1 };
	int64_t abs_[] = { 0, 1, br_now_ns() - 1 };

	for (size_t k = 0; k < COUNT(sync_kinds); k++) {
		/* br_wait_for would cancel the promise: see below. */
		for (size_t i = 0;
		     sync_kinds[k] != K_WAIT_FOR && i < COUNT(rel); i++) {
			struct call c = { .kind = sync_kinds[k],
					  .t = rel[i],
					  .o = o,
					  .fd = -1 };

			T_REQUIRE(do_call(&c) == -ETIMEDOUT);
		}
		for (size_t i = 0; has_until(sync_kinds[k]) && i < COUNT(abs_);
		     i++) {
			struct call c = { .kind = sync_kinds[k],
					  .until = 1,
					  .t = abs_[i],
					  .o = o,
					  .fd = -1 };

			T_REQUIRE(do_call(&c) == -ETIMEDOUT);
		}
	}
	for (size_t k = 0; k < COUNT(io_kinds); k++) {
		for (size_t i = 0; i < COUNT(rel); i++) {
			struct call c = { .kind = io_kinds[k],
					  .t = rel[i],
					  .o = o,
					  .fd = -1 };
			int r = do_call(&c);

			T_REQUIRE(r == -ETIMEDOUT);
		}
	}
	br_io_timeout(-1);
	return NULL;
}

/* br_wait_for with 0 and 1 ms times out and cancels what it waited on. */
static void *wait_for_short_limits(void *arg)
{
	for (int64_t t = 0; t <= 1; t++) {
		br_future *p = br_promise_new();

		T_REQUIRE(br_wait_for(p, t, NULL) == -ETIMEDOUT);
		T_REQUIRE(br_future_state(p) == BR_CANCELLED);
		br_future_release(p);
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Sleeps and loop callbacks                                           */
/* ------------------------------------------------------------------ */

Test(time_limits, huge_sleeps_stay_asleep_until_cancelled, .timeout = 30.0)
{
	FOR_EACH_MODE(flags)
	{
		struct call cs[COUNT(sleep_kinds) * N_NO_END + 2];
		size_t n = 0;

		for (size_t k = 0; k < COUNT(sleep_kinds); k++)
			for (size_t i = 0; i < N_NO_END; i++)
				if (no_end[i] > 0)
					cs[n++] = (struct call){
						.kind = sleep_kinds[k],
						.t = no_end[i],
						.fd = -1,
					};
		cs[n++] = (struct call){ .kind = K_SLEEP_UNTIL,
					 .t = INT64_MAX,
					 .fd = -1 };
		if (far_deadline(INT64_MAX / 1000))
			cs[n++] = (struct call){ .kind = K_SLEEP_UNTIL,
						 .t = INT64_MAX / 1000,
						 .fd = -1 };
		tasks_stay_pending(flags, cs, n);
	}
}

static void *negative_and_short_sleeps(void *arg)
{
	static const int64_t neg[] = { -1, -1000, INT64_MIN / 1000, INT64_MIN,
				       -INT64_MAX };
	int64_t t0 = br_now_ns();

	for (size_t i = 0; i < COUNT(neg); i++) {
		T_REQUIRE(br_sleep_ms(neg[i]) == 0);
		T_REQUIRE(br_sleep_ns(neg[i]) == 0);
		T_REQUIRE(br_sleep_until(neg[i]) == 0);
	}
	T_REQUIRE(br_sleep_ms(0) == 0);
	T_REQUIRE(br_sleep_ns(0) == 0);
	T_REQUIRE(br_sleep_until(0) == 0);
	T_REQUIRE(br_sleep_until(1) == 0);
	T_REQUIRE(br_now_ns() - t0 < 1000 * T_NS_PER_MS);
	t0 = br_now_ns();
	T_REQUIRE(br_sleep_ms(1) == 0);
	T_REQUIRE(br_now_ns() - t0 >= T_NS_PER_MS);
	t0 = br_now_ns();
	T_REQUIRE(br_sleep_ns(1) == 0);
	T_REQUIRE(br_now_ns() - t0 >= 1);
	return NULL;
}

Test(time_limits, negative_sleeps_return_at_once_and_short_ones_sleep,
     .timeout = 30.0)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(1, flags);

		t_assert_task_ok(br_spawn(rt, negative_and_short_sleeps, NULL));
		br_runtime_free(rt);
	}
	cr_assert_null(negative_and_short_sleeps(NULL));
}

Test(time_limits, a_plain_threads_huge_sleep_does_not_end_early,
     .timeout = 30.0)
{
	static const int64_t huge[] = { INT64_MAX, INT64_MAX / 1000, HUGE_44 };
	struct call cs[2 * COUNT(huge) + 1];
	pthread_t th[COUNT(cs)];
	size_t n = 0;

	for (size_t i = 0; i < COUNT(huge); i++) {
		cs[n++] = (struct call){ .kind = K_SLEEP_MS, .t = huge[i] };
		cs[n++] = (struct call){ .kind = K_SLEEP_NS, .t = huge[i] };
	}
	cs[n++] = (struct call){ .kind = K_SLEEP_UNTIL, .t = INT64_MAX };
	for (size_t i = 0; i < n; i++)
		t_thread_start(&th[i], run_call, &cs[i]);
	br_sleep_ms(PENDING_MS);
	assert_still_waiting(cs, n);
	/* A plain thread's sleep cannot be cancelled through braid; the
	 * sleep is a cancellation point of the thread. */
	for (size_t i = 0; i < n; i++) {
		void *v = NULL;

		cr_assert_eq(pthread_cancel(th[i]), 0);
		cr_assert_eq(pthread_join(th[i], &v), 0);
		cr_assert_eq(v, PTHREAD_CANCELED);
	}
}

struct cb_count {
	atomic_int calls;
};

static void count_call(void *arg)
{
	atomic_fetch_add(&((struct cb_count *)arg)->calls, 1);
}

Test(time_limits, huge_call_later_delays_never_fire_and_cancel_cleanly,
     .timeout = 30.0)
{
	FOR_EACH_MODE(flags)
	{
		static const int64_t huge[] = { INT64_MAX, INT64_MAX / 1000,
						HUGE_44 };
		static const int64_t soon[] = { 0, 1, -1, INT64_MIN };
		br_runtime *rt = t_runtime(2, flags);
		struct cb_count late = { 0 }, early = { 0 };
		br_future *fs[COUNT(huge)], *gs[COUNT(soon)];
		int64_t t0 = br_now_ns();

		for (size_t i = 0; i < COUNT(huge); i++)
			fs[i] = br_call_later(rt, huge[i], count_call, &late);
		for (size_t i = 0; i < COUNT(soon); i++)
			gs[i] = br_call_later(rt, soon[i], count_call, &early);
		for (size_t i = 0; i < COUNT(soon); i++) {
			t_await_value(gs[i]);
			br_future_release(gs[i]);
		}
		cr_assert_eq(atomic_load(&early.calls), (int)COUNT(soon));
		br_sleep_ms(PENDING_MS);
		for (size_t i = 0; i < COUNT(huge); i++)
			cr_assert_eq(br_future_state(fs[i]), BR_PENDING,
				     "br_call_later(%lld) completed after %lld "
				     "ms",
				     (long long)huge[i],
				     (long long)t_elapsed_ms(t0));
		cr_assert_eq(atomic_load(&late.calls), 0);
		for (size_t i = 0; i < COUNT(huge); i++) {
			cr_assert_eq(br_cancel(fs[i]), 0);
			cr_assert_eq(br_await(fs[i], NULL), -ECANCELED);
			br_future_release(fs[i]);
		}
		br_runtime_free(rt);
		cr_assert_eq(atomic_load(&late.calls), 0);
	}
}

/* ------------------------------------------------------------------ */
/* Waits on futures, synchronisation objects and channels              */
/* ------------------------------------------------------------------ */

Test(time_limits, huge_and_negative_sync_limits_wait_until_cancelled,
     .timeout = 60.0)
{
	FOR_EACH_MODE(flags)
	{
		struct call cs[COUNT(sync_kinds) * (N_NO_END + 4)];
		struct objs o;
		size_t n;

		objs_init(&o);
		n = pending_calls(cs, COUNT(cs), sync_kinds, COUNT(sync_kinds),
				  &o);
		tasks_stay_pending(flags, cs, n);
		cr_assert_eq(br_future_state(o.promise), BR_CANCELLED,
			     "br_wait_for passes its cancellation on");
		cr_assert_eq(br_chan_len(o.full), 1);
		objs_free(&o);
	}
}

Test(time_limits, huge_and_negative_sync_limits_wait_in_plain_threads,
     .timeout = 60.0)
{
	static const int64_t vals[] = { INT64_MAX, INT64_MIN };
	struct call cs[COUNT(sync_kinds) * COUNT(vals) * 2];
	pthread_t th[COUNT(cs)];
	struct objs o;
	size_t n = 0;

	objs_init(&o);
	for (size_t k = 0; k < COUNT(sync_kinds); k++)
		for (int u = 0; u <= has_until(sync_kinds[k]); u++)
			for (size_t i = 0; i < COUNT(vals); i++)
				cs[n++] = (struct call){ .kind = sync_kinds[k],
							 .until = u,
							 .t = vals[i],
							 .o = &o,
							 .fd = -1 };
	for (size_t i = 0; i < n; i++)
		t_thread_start(&th[i], run_call, &cs[i]);
	br_sleep_ms(PENDING_MS);
	assert_still_waiting(cs, n);
	objs_release(&o);
	for (size_t i = 0; i < n; i++) {
		int want = cs[i].kind == K_SEND || cs[i].kind == K_RECV ||
					   cs[i].kind == K_SELECT ?
				   BR_ECLOSED :
				   0;

		t_thread_join(th[i]);
		cr_assert_eq(cs[i].ret, want, "%s%s(%lld) gave %d (%s)",
			     kind_name[cs[i].kind], cs[i].until ? "_until" : "",
			     (long long)cs[i].t, cs[i].ret,
			     br_strerror(cs[i].ret));
	}
	objs_free(&o);
}

Test(time_limits, zero_and_one_ms_limits_time_out, .timeout = 30.0)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(1, flags);
		struct objs o;

		objs_init(&o);
		t_assert_task_ok(br_spawn(rt, short_limits_time_out, &o));
		t_assert_task_ok(br_spawn(rt, wait_for_short_limits, NULL));
		cr_assert_null(short_limits_time_out(&o));
		cr_assert_null(wait_for_short_limits(NULL));
		objs_free(&o);
		br_runtime_free(rt);
	}
}

/* ------------------------------------------------------------------ */
/* I/O deadlines                                                       */
/* ------------------------------------------------------------------ */

Test(time_limits, huge_and_negative_io_limits_wait_until_cancelled,
     .timeout = 60.0)
{
	FOR_EACH_MODE(flags)
	{
		struct call cs[COUNT(io_kinds) * N_NO_END];
		struct objs o;
		size_t n;

		objs_init(&o);
		n = pending_calls(cs, COUNT(cs), io_kinds, COUNT(io_kinds), &o);
		tasks_stay_pending(flags, cs, n);
		objs_free(&o);
	}
}

Test(time_limits, huge_and_negative_io_limits_wait_in_plain_threads,
     .timeout = 30.0)
{
	static const enum kind ks[] = { K_READ, K_POLL, K_IO_TIMEOUT };
	struct call cs[COUNT(ks) * N_NO_END];
	pthread_t th[COUNT(cs)];
	int fds[COUNT(cs)][2];
	size_t n = 0;

	for (size_t k = 0; k < COUNT(ks); k++)
		for (size_t i = 0; i < N_NO_END; i++) {
			cr_assert_eq(pipe2(fds[n], O_CLOEXEC), 0);
			cs[n] = (struct call){ .kind = ks[k],
					       .t = no_end[i],
					       .fd = fds[n][0] };
			n++;
		}
	for (size_t i = 0; i < n; i++)
		t_thread_start(&th[i], run_call, &cs[i]);
	br_sleep_ms(PENDING_MS);
	assert_still_waiting(cs, n);
	for (size_t i = 0; i < n; i++) {
		cr_assert_eq(write(fds[i][1], "x", 1), 1);
		t_thread_join(th[i]);
		cr_assert_eq(cs[i].ret, cs[i].kind == K_POLL ? POLLIN : 1,
			     "%s(%lld) gave %d (%s)", kind_name[cs[i].kind],
			     (long long)cs[i].t, cs[i].ret,
			     br_strerror(cs[i].ret));
		close(fds[i][0]);
		close(fds[i][1]);
	}
}

/* ------------------------------------------------------------------ */
/* Subprocesses and the process pool                                   */
/* ------------------------------------------------------------------ */

Test(time_limits, exec_timeouts_that_never_pass_leave_the_child_running,
     .timeout = 60.0)
{
	FOR_EACH_MODE(flags)
	{
		static const int64_t vals[] = { INT64_MAX, INT64_MAX / 1000,
						HUGE_44,   0,
						-1,	   INT64_MIN };
		static const char *const argv[] = { "sleep", "30", NULL };
		br_runtime *rt = t_runtime(2, flags);
		br_future *fs[COUNT(vals)], *f;
		br_exec_opts o;
		int64_t t0 = br_now_ns();
		int kids = t_count_children(); /* the zygote */

		for (size_t i = 0; i < COUNT(vals); i++) {
			o = (br_exec_opts){ .timeout_ms = vals[i] };
			fs[i] = br_exec(rt, argv, &o);
		}
		br_sleep_ms(PENDING_MS);
		for (size_t i = 0; i < COUNT(vals); i++)
			cr_assert_eq(br_future_state(fs[i]), BR_PENDING,
				     "timeout_ms %lld: ended (%s) after %lld "
				     "ms",
				     (long long)vals[i],
				     br_future_message(fs[i]),
				     (long long)t_elapsed_ms(t0));
		for (size_t i = 0; i < COUNT(vals); i++) {
			cr_assert_eq(br_cancel(fs[i]), 0);
			cr_assert_eq(br_await(fs[i], NULL), -ECANCELED);
			br_future_release(fs[i]);
		}
		o = (br_exec_opts){ .timeout_ms = 1 };
		f = br_exec(rt, argv, &o);
		cr_assert_eq(br_await(f, NULL), -ETIMEDOUT);
		br_future_release(f);
		br_runtime_free(rt);
		cr_assert_eq(t_count_children(), kids);
	}
}

/* Sleeps the number of milliseconds in its input. */
static int nap_job(br_job *job, const void *in, size_t len)
{
	uint32_t ms;

	memcpy(&ms, in, sizeof(ms));
	usleep(ms * 1000);
	return br_job_write(job, &ms, sizeof(ms));
}

static const uint32_t nap_ms = 300;

Test(time_limits, pool_limits_that_never_pass_let_jobs_finish, .timeout = 120.0)
{
	static const int64_t vals[] = { INT64_MAX, INT64_MAX / 1000, HUGE_44,
					0 };
	br_runtime *rt = t_runtime(2, 0);
	br_future *fs[COUNT(vals)], *f;
	br_pool *p;

	/* Per job. */
	cr_assert_eq(br_pool_new(&p, rt, &(br_pool_config){ .workers = 2 }), 0);
	for (size_t i = 0; i < COUNT(vals); i++)
		fs[i] = br_submit_timeout(p, nap_job, &nap_ms, sizeof(nap_ms),
					  vals[i]);
	for (size_t i = 0; i < COUNT(vals); i++) {
		int r = br_await(fs[i], NULL);

		cr_assert_eq(r, 0, "br_submit_timeout(%lld): %s (%s)",
			     (long long)vals[i], br_strerror(r),
			     br_future_message(fs[i]));
		br_future_release(fs[i]);
	}
	f = br_submit_timeout(p, nap_job, &nap_ms, sizeof(nap_ms), 1);
	cr_assert_eq(br_await(f, NULL), -ETIMEDOUT);
	br_future_release(f);
	f = br_submit_timeout(p, nap_job, &nap_ms, sizeof(nap_ms), -1);
	cr_assert_eq(br_await(f, NULL), -EINVAL);
	br_future_release(f);
	f = br_submit_timeout(p, nap_job, &nap_ms, sizeof(nap_ms), INT64_MIN);
	cr_assert_eq(br_await(f, NULL), -EINVAL);
	br_future_release(f);
	br_pool_free(p);

	/* The pool's default. */
	for (size_t i = 0; i < COUNT(vals); i++) {
		br_pool_config cfg = { .workers = 1, .timeout_ms = vals[i] };
		int r;

		cr_assert_eq(br_pool_new(&p, rt, &cfg), 0);
		f = br_submit(p, nap_job, &nap_ms, sizeof(nap_ms));
		r = br_await(f, NULL);
		cr_assert_eq(r, 0, "timeout_ms %lld: %s (%s)",
			     (long long)vals[i], br_strerror(r),
			     br_future_message(f));
		br_future_release(f);
		br_pool_free(p);
	}
	cr_assert_eq(br_pool_new(&p, rt,
				 &(br_pool_config){ .timeout_ms = INT64_MIN }),
		     -EINVAL);
	br_runtime_free(rt);
}
