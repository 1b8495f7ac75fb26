/* SPDX-License-Identifier: MIT */
/*
 * test_chan.c - channels (chan.c): rendezvous and buffered sends, order
 * per sender with many senders and receivers (tasks and threads), close
 * semantics, timeouts, cancellation, and select (readiness, waiting,
 * closed channels, fairness).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "helpers.h"

/* Every test leaves no descriptor, thread or child behind (helpers.h). */
TestSuite(chan, .init = t_leak_init, .fini = t_leak_fini);

static br_chan *new_chan(size_t esize, size_t cap)
{
	br_chan *ch = NULL;

	cr_assert_eq(br_chan_new(&ch, esize, cap), 0);
	cr_assert_not_null(ch);
	return ch;
}

/* An operation run by a task or a thread; results land here. */
struct op {
	br_chan *ch;
	long value;
	int64_t timeout_ms;
	atomic_int started;
	atomic_int done;
	atomic_int result;
};

static void op_init(struct op *o, br_chan *ch, long value)
{
	memset(o, 0, sizeof(*o));
	o->ch = ch;
	o->value = value;
	o->timeout_ms = -1;
	atomic_init(&o->result, 1);
}

static void *send_op(void *arg)
{
	struct op *o = arg;

	atomic_store(&o->started, 1);
	atomic_store(&o->result,
		     br_chan_send_for(o->ch, &o->value, o->timeout_ms));
	atomic_store(&o->done, 1);
	return NULL;
}

static void *recv_op(void *arg)
{
	struct op *o = arg;
	long v = -1;

	atomic_store(&o->started, 1);
	atomic_store(&o->result, br_chan_recv_for(o->ch, &v, o->timeout_ms));
	o->value = v;
	atomic_store(&o->done, 1);
	return NULL;
}

static void wait_started(struct op *o)
{
	cr_assert_eq(t_spin_until(&o->started, 1, 5000 * T_NS_PER_MS), 0);
	br_sleep_ms(20);
}

static int wait_done(struct op *o)
{
	cr_assert_eq(t_spin_until(&o->done, 1, 5000 * T_NS_PER_MS), 0,
		     "the operation never finished");
	return atomic_load(&o->result);
}

Test(chan, new_validates_its_arguments, .timeout = 10.0)
{
	br_chan *ch = NULL;
	long v = 1;

	cr_assert_eq(br_chan_new(NULL, 8, 1), -EINVAL);
	cr_assert_eq(br_chan_new(&ch, 0, 1), -EINVAL);
	cr_assert_eq(br_chan_new(&ch, BR_CHAN_ELEM_MAX + 1, 1), -EINVAL);
	cr_assert_eq(br_chan_new(&ch, 8, (size_t)BR_CHAN_CAP_MAX + 1), -EINVAL);
	cr_assert_null(ch);
	cr_assert_eq(br_chan_send(NULL, &v), -EINVAL);
	cr_assert_eq(br_chan_recv(NULL, &v), -EINVAL);
	cr_assert_eq(br_chan_close(NULL), -EINVAL);
	cr_assert_eq(br_chan_len(NULL), -EINVAL);
	ch = new_chan(sizeof(long), 1);
	cr_assert_eq(br_chan_send(ch, NULL), -EINVAL);
	cr_assert_eq(br_chan_try_send(ch, NULL), -EINVAL);
	cr_assert_eq(br_chan_cap(ch), 1);
	br_chan_free(ch);
	br_chan_free(NULL);
}

Test(chan, buffered_channel_holds_its_capacity_in_order, .timeout = 10.0)
{
	br_chan *ch = new_chan(sizeof(long), 3);
	long v;

	for (long i = 0; i < 3; i++)
		cr_assert_eq(br_chan_try_send(ch, &i), 0);
	v = 99;
	cr_assert_eq(br_chan_try_send(ch, &v), -EAGAIN);
	cr_assert_eq(br_chan_send_for(ch, &v, 20), -ETIMEDOUT);
	cr_assert_eq(br_chan_len(ch), 3);
	for (long i = 0; i < 3; i++) {
		cr_assert_eq(br_chan_recv(ch, &v), 0);
		cr_assert_eq(v, i);
	}
	cr_assert_eq(br_chan_try_recv(ch, &v), -EAGAIN);
	cr_assert_eq(br_chan_recv_for(ch, &v, 20), -ETIMEDOUT);
	br_chan_free(ch);
}

Test(chan, unbuffered_send_waits_for_a_receiver, .timeout = 20.0)
{
	br_runtime *rt = t_runtime(1, 0);
	br_chan *ch = new_chan(sizeof(long), 0);
	struct op s;
	br_future *f;
	long v = 0;

	cr_assert_eq(br_chan_try_send(ch, &v), -EAGAIN, "nobody receives");
	op_init(&s, ch, 42);
	f = br_spawn(rt, send_op, &s);
	wait_started(&s);
	cr_assert_eq(atomic_load(&s.done), 0, "a rendezvous did not wait");
	cr_assert_eq(br_chan_len(ch), 0);
	cr_assert_eq(br_chan_recv(ch, &v), 0);
	cr_assert_eq(v, 42);
	cr_assert_eq(wait_done(&s), 0);
	t_await_value(f);
	br_future_release(f);
	br_chan_free(ch);
	br_runtime_free(rt);
}

/*
 * Many senders (tasks on two workers and threads) each send a sequence
 * of (sender, i) through one channel to several receivers; every
 * receiver must see each sender's numbers in increasing order, and all
 * of them together must see every message exactly once.
 */
#define ORD_TASK_SENDERS 6
#define ORD_THREAD_SENDERS 2
#define ORD_SENDERS (ORD_TASK_SENDERS + ORD_THREAD_SENDERS)
#define ORD_MSGS 3000
#define ORD_RECEIVERS 4

struct msg {
	int sender;
	int seq;
};

struct ord {
	br_chan *ch;
	atomic_int seen[ORD_SENDERS];
	atomic_int bad;
	atomic_int received;
};

struct sender {
	struct ord *o;
	int id;
};

static void *ord_send(void *arg)
{
	struct sender *s = arg;

	for (int i = 0; i < ORD_MSGS; i++) {
		struct msg m = { s->id, i };

		if (br_chan_send(s->o->ch, &m) != 0)
			atomic_fetch_add(&s->o->bad, 1000);
	}
	return NULL;
}

static void *ord_recv(void *arg)
{
	struct ord *o = arg;
	int last[ORD_SENDERS];
	struct msg m;

	for (int i = 0; i < ORD_SENDERS; i++)
		last[i] = -1;
	while (br_chan_recv(o->ch, &m) == 0) {
		if (m.sender < 0 || m.sender >= ORD_SENDERS ||
		    m.seq <= last[m.sender])
			atomic_fetch_add(&o->bad, 1);
		else
			last[m.sender] = m.seq;
		atomic_fetch_add(&o->seen[m.sender], 1);
		atomic_fetch_add(&o->received, 1);
	}
	return NULL;
}

static void order_test(size_t cap)
{
	br_runtime *rt = t_runtime(2, 0);
	struct ord o = { 0 };
	struct sender ss[ORD_SENDERS];
	br_future *sf[ORD_TASK_SENDERS], *rf[ORD_RECEIVERS - 1];
	pthread_t st[ORD_THREAD_SENDERS], rt_thread;
	int failed = 0, closed;

	o.ch = new_chan(sizeof(struct msg), cap);
	for (int i = 0; i < ORD_RECEIVERS - 1; i++)
		rf[i] = br_spawn(rt, ord_recv, &o);
	t_thread_start(&rt_thread, ord_recv, &o);
	for (int i = 0; i < ORD_SENDERS; i++) {
		ss[i] = (struct sender){ &o, i };
		if (i < ORD_TASK_SENDERS)
			sf[i] = br_spawn(rt, ord_send, &ss[i]);
		else
			t_thread_start(&st[i - ORD_TASK_SENDERS], ord_send,
				       &ss[i]);
	}
	/* The threads use o and ss, on this stack: no assertion may end
	 * the test before they are joined. */
	for (int i = 0; i < ORD_TASK_SENDERS; i++)
		failed += br_await(sf[i], NULL) != 0;
	for (int i = 0; i < ORD_THREAD_SENDERS; i++)
		t_thread_join(st[i]);
	closed = br_chan_close(o.ch);
	for (int i = 0; i < ORD_RECEIVERS - 1; i++)
		failed += br_await(rf[i], NULL) != 0;
	t_thread_join(rt_thread);
	cr_assert_eq(failed, 0, "%d tasks failed", failed);
	cr_assert_eq(closed, 0);
	for (int i = 0; i < ORD_TASK_SENDERS; i++)
		br_future_release(sf[i]);
	for (int i = 0; i < ORD_RECEIVERS - 1; i++)
		br_future_release(rf[i]);
	cr_assert_eq(atomic_load(&o.bad), 0, "%d out of order",
		     atomic_load(&o.bad));
	cr_assert_eq(atomic_load(&o.received), ORD_SENDERS * ORD_MSGS);
	for (int i = 0; i < ORD_SENDERS; i++)
		cr_assert_eq(atomic_load(&o.seen[i]), ORD_MSGS);
	br_chan_free(o.ch);
	br_runtime_free(rt);
}

Test(chan, order_per_sender_holds_on_an_unbuffered_channel, .timeout = 60.0)
{
	order_test(0);
}

Test(chan, order_per_sender_holds_on_a_buffered_channel, .timeout = 60.0)
{
	order_test(4);
}

Test(chan, close_drains_then_reports_closed, .timeout = 10.0)
{
	br_chan *ch = new_chan(sizeof(long), 4);
	long v;

	for (long i = 0; i < 3; i++)
		cr_assert_eq(br_chan_send(ch, &i), 0);
	cr_assert_eq(br_chan_close(ch), 0);
	cr_assert_eq(br_chan_close(ch), BR_ECLOSED);
	v = 7;
	cr_assert_eq(br_chan_send(ch, &v), BR_ECLOSED);
	cr_assert_eq(br_chan_try_send(ch, &v), BR_ECLOSED);
	for (long i = 0; i < 3; i++) {
		cr_assert_eq(br_chan_recv(ch, &v), 0);
		cr_assert_eq(v, i);
	}
	cr_assert_eq(br_chan_recv(ch, &v), BR_ECLOSED);
	cr_assert_eq(br_chan_try_recv(ch, &v), BR_ECLOSED);
	cr_assert_eq(br_chan_recv_for(ch, &v, 1000), BR_ECLOSED,
		     "waited on a closed channel");
	br_chan_free(ch);
}

Test(chan, close_wakes_waiting_senders_and_receivers, .timeout = 20.0)
{
	br_runtime *rt = t_runtime(2, 0);
	br_chan *full = new_chan(sizeof(long), 1);
	br_chan *empty = new_chan(sizeof(long), 0);
	struct op s[2], r[2];
	br_future *fs, *fr;
	pthread_t ts, tr;
	long v = 5;

	cr_assert_eq(br_chan_send(full, &v), 0);
	op_init(&s[0], full, 1);
	op_init(&s[1], full, 2);
	op_init(&r[0], empty, 0);
	op_init(&r[1], empty, 0);
	fs = br_spawn(rt, send_op, &s[0]);
	t_thread_start(&ts, send_op, &s[1]);
	fr = br_spawn(rt, recv_op, &r[0]);
	t_thread_start(&tr, recv_op, &r[1]);
	for (int i = 0; i < 2; i++) {
		wait_started(&s[i]);
		wait_started(&r[i]);
	}
	cr_assert_eq(br_chan_close(full), 0);
	cr_assert_eq(br_chan_close(empty), 0);
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(wait_done(&s[i]), BR_ECLOSED);
		cr_assert_eq(wait_done(&r[i]), BR_ECLOSED);
		cr_assert_eq(r[i].value, -1, "a refused receive wrote %ld",
			     r[i].value);
	}
	/* The buffered element is still there; the refused ones are not. */
	cr_assert_eq(br_chan_recv(full, &v), 0);
	cr_assert_eq(v, 5);
	cr_assert_eq(br_chan_recv(full, &v), BR_ECLOSED);
	t_thread_join(ts);
	t_thread_join(tr);
	t_await_value(fs);
	t_await_value(fr);
	br_future_release(fs);
	br_future_release(fr);
	br_chan_free(full);
	br_chan_free(empty);
	br_runtime_free(rt);
}

/* One send or receive of a whole element of size bytes, by whichever
 * party waits for the other. */
struct sized_op {
	br_chan *ch;
	unsigned char *buf;
	atomic_int started;
	atomic_int result;
};

static void *sized_send(void *arg)
{
	struct sized_op *o = arg;

	atomic_store(&o->started, 1);
	atomic_store(&o->result, br_chan_send(o->ch, o->buf));
	return NULL;
}

static void *sized_recv(void *arg)
{
	struct sized_op *o = arg;

	atomic_store(&o->started, 1);
	atomic_store(&o->result, br_chan_recv(o->ch, o->buf));
	return NULL;
}

static unsigned char pattern_byte(unsigned seed, size_t i)
{
	return (unsigned char)(seed * 31u + i * 7u + 1u);
}

static void fill_pattern(unsigned char *b, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		b[i] = pattern_byte(seed, i);
}

/* 0 if b holds seed's pattern, else the first wrong byte's index + 1. */
static size_t pattern_differs(const unsigned char *b, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		if (b[i] != pattern_byte(seed, i))
			return i + 1;
	return 0;
}

/*
 * Elements of every size, around the size that travels inside a waiter
 * and up to the largest, pass whole and alone (nothing past the element
 * is written) whichever party waits: a receiving task or thread that a
 * sender finds waiting, and a sending task or thread that a receiver
 * finds waiting, on an unbuffered channel and on a full one of one slot
 * (where the waiting sender's element moves into the slot the receiver
 * frees, behind the element that was there).
 */
Test(chan, elements_of_every_size_pass_intact_to_and_from_a_waiting_party,
     .timeout = 60.0)
{
	static const size_t sizes[] = { 1,  7,	8,  15,	  16,
					17, 24, 64, 4096, BR_CHAN_ELEM_MAX };
	br_runtime *rt = t_runtime(2, 0);
	const size_t guard = 64;

	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		size_t n = sizes[k];

		for (int how = 0; how < 8; how++) {
			int waiter_sends = how & 1, waiter_is_thread = how & 2;
			size_t cap = how & 4 ? 1 : 0;
			unsigned char *mine = malloc(n + guard);
			unsigned char *theirs = malloc(n + guard);
			br_chan *ch = new_chan(n, cap);
			struct sized_op o = { .ch = ch, .buf = theirs };
			unsigned seed = (unsigned)(k * 8 + (size_t)how);
			void *(*fn)(void *) = waiter_sends ? sized_send :
							     sized_recv;
			br_future *f = NULL;
			pthread_t th;

			cr_assert(mine && theirs);
			memset(mine, 0xA5, n + guard);
			memset(theirs, 0xA5, n + guard);
			fill_pattern(waiter_sends ? theirs : mine, n, seed);
			atomic_init(&o.result, 1);
			if (cap && waiter_sends) {
				/* Fill the slot, so that the sender waits. */
				fill_pattern(mine, n, seed + 1000);
				cr_assert_eq(br_chan_send(ch, mine), 0);
				memset(mine, 0xA5, n + guard);
			}
			if (waiter_is_thread)
				t_thread_start(&th, fn, &o);
			else
				f = br_spawn(rt, fn, &o);
			cr_assert_eq(t_spin_until(&o.started, 1,
						  5000 * T_NS_PER_MS),
				     0);
			br_sleep_ms(20); /* let it link its waiter */
			if (cap && waiter_sends) {
				cr_assert_eq(br_chan_recv(ch, mine), 0);
				cr_assert_eq(
					pattern_differs(mine, n, seed + 1000),
					0, "size %zu: the slot's element", n);
				memset(mine, 0xA5, n + guard);
			}
			cr_assert_eq(waiter_sends ? br_chan_recv(ch, mine) :
						    br_chan_send(ch, mine),
				     0, "size %zu, case %d", n, how);
			if (waiter_is_thread)
				t_thread_join(th);
			else
				t_await_value(f);
			cr_assert_eq(atomic_load(&o.result), 0);
			/* Both buffers now hold the element, and nothing
			 * past it was written. */
			cr_assert_eq(pattern_differs(mine, n, seed), 0,
				     "size %zu, case %d: byte %zu", n, how,
				     pattern_differs(mine, n, seed));
			cr_assert_eq(pattern_differs(theirs, n, seed), 0,
				     "size %zu, case %d: byte %zu", n, how,
				     pattern_differs(theirs, n, seed));
			for (size_t i = n; i < n + guard; i++) {
				cr_assert_eq(mine[i], 0xA5);
				cr_assert_eq(theirs[i], 0xA5);
			}
			br_future_release(f);
			br_chan_free(ch);
			free(mine);
			free(theirs);
		}
	}
	br_runtime_free(rt);
}

Test(chan, a_cancelled_receiver_leaves_the_element_for_the_next,
     .timeout = 20.0)
{
	br_runtime *rt = t_runtime(1, 0);
	br_chan *ch = new_chan(sizeof(long), 0);
	struct op a, b;
	br_future *fa, *fb;
	long v = 11;

	op_init(&a, ch, 0);
	op_init(&b, ch, 0);
	fa = br_spawn(rt, recv_op, &a);
	wait_started(&a);
	fb = br_spawn(rt, recv_op, &b);
	wait_started(&b);
	cr_assert_eq(br_cancel(fa), 0);
	cr_assert_eq(wait_done(&a), -ECANCELED);
	cr_assert_eq(a.value, -1, "a cancelled receive wrote %ld", a.value);
	cr_assert_eq(br_chan_send(ch, &v), 0);
	cr_assert_eq(wait_done(&b), 0);
	cr_assert_eq(b.value, 11);
	cr_assert_eq(br_await(fa, NULL), -ECANCELED);
	t_await_value(fb);
	br_future_release(fa);
	br_future_release(fb);
	br_chan_free(ch);
	br_runtime_free(rt);
}

/* A receive that times out, in a task and in a thread, leaves its
 * destination as it was. */
Test(chan, a_receive_that_times_out_leaves_its_destination_alone,
     .timeout = 20.0)
{
	br_runtime *rt = t_runtime(2, 0);
	br_chan *ch = new_chan(sizeof(long), 0);
	struct op r[2];
	br_future *f;
	pthread_t th;

	for (int i = 0; i < 2; i++) {
		op_init(&r[i], ch, 0);
		r[i].timeout_ms = 20;
	}
	f = br_spawn(rt, recv_op, &r[0]);
	t_thread_start(&th, recv_op, &r[1]);
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(wait_done(&r[i]), -ETIMEDOUT);
		cr_assert_eq(r[i].value, -1, "a timed-out receive wrote %ld",
			     r[i].value);
	}
	t_thread_join(th);
	t_await_value(f);
	br_future_release(f);
	br_chan_free(ch);
	br_runtime_free(rt);
}

Test(chan, a_sender_that_times_out_does_not_deliver, .timeout = 20.0)
{
	br_chan *ch = new_chan(sizeof(long), 0);
	struct op s;
	long v = -1;
	int64_t t0 = br_now_ns();

	op_init(&s, ch, 3);
	s.timeout_ms = 40;
	send_op(&s);
	cr_assert_eq(atomic_load(&s.result), -ETIMEDOUT);
	cr_assert_geq(t_elapsed_ms(t0), 40);
	cr_assert_eq(br_chan_try_recv(ch, &v), -EAGAIN);
	br_chan_free(ch);
}

/* ------------------------------------------------------------------ */
/* Select                                                              */
/* ------------------------------------------------------------------ */

Test(chan, select_takes_a_ready_case_and_leaves_the_others, .timeout = 10.0)
{
	br_chan *a = new_chan(sizeof(long), 1), *b = new_chan(sizeof(long), 1);
	long va = -1, vb = -1, x = 8;
	br_chan_case cs[3] = {
		{ .chan = a, .op = BR_CHAN_RECV, .elem = &va },
		{ .chan = NULL, .op = BR_CHAN_RECV, .elem = NULL },
		{ .chan = b, .op = BR_CHAN_RECV, .elem = &vb },
	};

	cr_assert_eq(br_chan_select_for(cs, 3, 0), -ETIMEDOUT, "nothing ready");
	cr_assert_eq(br_chan_send(b, &x), 0);
	cr_assert_eq(br_chan_select(cs, 3), 2);
	cr_assert_eq(cs[2].result, 0);
	cr_assert_eq(vb, 8);
	cr_assert_eq(va, -1);
	/* A send case fires when there is room. */
	cs[0] = (br_chan_case){ .chan = a, .op = BR_CHAN_SEND, .elem = &x };
	cr_assert_eq(br_chan_select(cs, 3), 0);
	cr_assert_eq(br_chan_len(a), 1);
	cr_assert_eq(br_chan_select_for(cs, 1, 10), -ETIMEDOUT, "a is full");
	br_chan_free(a);
	br_chan_free(b);
}

Test(chan, select_validates_its_cases, .timeout = 10.0)
{
	br_chan *a = new_chan(sizeof(long), 1);
	br_chan_case cs[2] = {
		{ .chan = NULL, .op = BR_CHAN_RECV },
		{ .chan = a, .op = 7 },
	};

	cr_assert_eq(br_chan_select(NULL, 1), -EINVAL);
	cr_assert_eq(br_chan_select(cs, 0), -EINVAL);
	cr_assert_eq(br_chan_select(cs, 1), -EINVAL, "no channel at all");
	cr_assert_eq(br_chan_select(cs, 2), -EINVAL, "bad op");
	cs[1].op = BR_CHAN_SEND;
	cr_assert_eq(br_chan_select(cs, 2), -EINVAL, "send without elem");
	br_chan_free(a);
}

Test(chan, select_reports_a_closed_channel_as_ready, .timeout = 10.0)
{
	br_chan *a = new_chan(sizeof(long), 0), *b = new_chan(sizeof(long), 0);
	long v;
	br_chan_case cs[2] = {
		{ .chan = a, .op = BR_CHAN_RECV, .elem = &v },
		{ .chan = b, .op = BR_CHAN_SEND, .elem = &v },
	};

	cr_assert_eq(br_chan_close(a), 0);
	cr_assert_eq(br_chan_select(cs, 1), 0);
	cr_assert_eq(cs[0].result, BR_ECLOSED);
	cr_assert_eq(br_chan_close(b), 0);
	cr_assert_eq(br_chan_select(&cs[1], 1), 0);
	cr_assert_eq(cs[1].result, BR_ECLOSED);
	br_chan_free(a);
	br_chan_free(b);
}

/*
 * A task waits in a select over three unbuffered channels; a send on the
 * middle one wakes it, and it takes exactly that element: senders on the
 * other two stay blocked until they time out.
 */
struct sel3 {
	br_chan *ch[3];
	long got[3];
	atomic_int started;
	atomic_int fired;
};

static void *select3(void *arg)
{
	struct sel3 *s = arg;
	br_chan_case cs[3];

	for (int i = 0; i < 3; i++)
		cs[i] = (br_chan_case){ .chan = s->ch[i],
					.op = BR_CHAN_RECV,
					.elem = &s->got[i] };
	atomic_store(&s->started, 1);
	atomic_store(&s->fired, br_chan_select(cs, 3));
	return NULL;
}

Test(chan, a_waiting_select_fires_exactly_one_case, .timeout = 20.0)
{
	br_runtime *rt = t_runtime(2, 0);
	struct sel3 s = { 0 };
	struct op late;
	br_future *f;
	long v = 77;

	for (int i = 0; i < 3; i++) {
		s.ch[i] = new_chan(sizeof(long), 0);
		s.got[i] = -1;
	}
	atomic_init(&s.fired, -100);
	f = br_spawn(rt, select3, &s);
	cr_assert_eq(t_spin_until(&s.started, 1, 5000 * T_NS_PER_MS), 0);
	br_sleep_ms(20);
	cr_assert_eq(br_chan_send(s.ch[1], &v), 0);
	t_await_value(f);
	cr_assert_eq(atomic_load(&s.fired), 1);
	cr_assert_eq(s.got[1], 77);
	cr_assert_eq(s.got[0], -1);
	cr_assert_eq(s.got[2], -1);
	/* Its other waiters are gone: a send elsewhere finds nobody. */
	op_init(&late, s.ch[0], 5);
	late.timeout_ms = 20;
	send_op(&late);
	cr_assert_eq(atomic_load(&late.result), -ETIMEDOUT);
	br_future_release(f);
	for (int i = 0; i < 3; i++)
		br_chan_free(s.ch[i]);
	br_runtime_free(rt);
}

static void *select_timeout(void *arg)
{
	br_chan *ch = arg;
	long v;
	br_chan_case c = { .chan = ch, .op = BR_CHAN_RECV, .elem = &v };
	int r = br_chan_select_for(&c, 1, 30);

	T_REQUIRE(r == -ETIMEDOUT);
	return NULL;
}

Test(chan, select_times_out_in_a_task_and_a_thread, .timeout = 20.0)
{
	br_runtime *rt = t_runtime(1, 0);
	br_chan *ch = new_chan(sizeof(long), 0);
	br_future *f = br_spawn(rt, select_timeout, ch);
	pthread_t th;

	t_thread_start(&th, select_timeout, ch);
	cr_assert_null(t_thread_join(th));
	t_assert_task_ok(f);
	br_chan_free(ch);
	br_runtime_free(rt);
}

Test(chan, select_is_fair_between_always_ready_channels, .timeout = 20.0)
{
	enum {
		N = 4,
		ROUNDS = 8000
	};
	br_chan *ch[N];
	long v = 1, out;
	int hits[N] = { 0 };
	br_chan_case cs[N];

	for (int i = 0; i < N; i++) {
		ch[i] = new_chan(sizeof(long), 1);
		cs[i] = (br_chan_case){ .chan = ch[i],
					.op = BR_CHAN_RECV,
					.elem = &out };
		cr_assert_eq(br_chan_send(ch[i], &v), 0);
	}
	for (int r = 0; r < ROUNDS; r++) {
		int k = br_chan_select(cs, N);

		cr_assert(k >= 0 && k < N);
		hits[k]++;
		cr_assert_eq(br_chan_send(ch[k], &v), 0); /* ready again */
	}
	/* Each should get a quarter; none may be starved. */
	for (int i = 0; i < N; i++)
		cr_assert_gt(hits[i], ROUNDS / N / 2, "case %d: %d of %d", i,
			     hits[i], ROUNDS);
	for (int i = 0; i < N; i++)
		br_chan_free(ch[i]);
}

/* Select with a send case and a receive case on the same channel: a
 * partner completes one of them, never both, and never the select with
 * itself. */
static void *select_both(void *arg)
{
	br_chan *ch = arg;
	long out = -1, in = 123;
	br_chan_case cs[2] = {
		{ .chan = ch, .op = BR_CHAN_SEND, .elem = &in },
		{ .chan = ch, .op = BR_CHAN_RECV, .elem = &out },
	};
	int k = br_chan_select(cs, 2);

	T_REQUIRE(k == 0 || k == 1);
	T_REQUIRE(k == 0 || out == 456);
	return (void *)(intptr_t)(k + 1);
}

Test(chan, select_never_matches_itself, .timeout = 20.0)
{
	br_runtime *rt = t_runtime(1, 0);
	br_chan *ch = new_chan(sizeof(long), 0);
	br_future *f = br_spawn(rt, select_both, ch);
	long v = 0;

	br_sleep_ms(20);
	cr_assert_eq(br_future_state(f), BR_PENDING, "matched itself");
	cr_assert_eq(br_chan_recv(ch, &v), 0);
	cr_assert_eq(v, 123);
	cr_assert_eq((intptr_t)t_await_value(f), 1);
	br_future_release(f);
	br_chan_free(ch);
	br_runtime_free(rt);
}

/* A thread and a task hand elements over on one channel both ways. */
static void *echo(void *arg)
{
	br_chan **ch = arg;
	long v;

	while (br_chan_recv(ch[0], &v) == 0)
		if (br_chan_send(ch[1], &v) != 0)
			break;
	return NULL;
}

static void close_both(void *arg)
{
	br_chan **ch = arg;

	br_chan_close(ch[0]);
	br_chan_close(ch[1]);
}

Test(chan, tasks_and_threads_share_channels, .timeout = 20.0)
{
	br_runtime *rt = t_runtime(2, 0);
	br_chan *ch[2] = { new_chan(sizeof(long), 0),
			   new_chan(sizeof(long), 0) };
	br_future *f = br_spawn(rt, echo, ch);
	long v;

	/* Without its partner this thread's first send would wait for
	 * good: closed channels make it fail instead. */
	t_on_failure(f, close_both, ch);
	for (long i = 0; i < 2000; i++) {
		cr_assert_eq(br_chan_send(ch[0], &i), 0);
		cr_assert_eq(br_chan_recv(ch[1], &v), 0);
		cr_assert_eq(v, i);
	}
	br_chan_close(ch[0]);
	t_await_value(f);
	br_future_release(f);
	br_chan_free(ch[0]);
	br_chan_free(ch[1]);
	br_runtime_free(rt);
}

/* braid.h: BR_EBADOBJ for a freed channel; under ASan this also proves
 * the check reads no freed memory. */
Test(chan, calls_on_a_freed_channel_give_ebadobj, .timeout = 20.0)
{
	br_chan *ch = new_chan(sizeof(long), 4), *ch2;
	long v = 1;
	br_chan_case cs = { .op = BR_CHAN_RECV, .elem = &v };

	cr_assert_eq(br_chan_send(ch, &v), 0);
	br_chan_free(ch);
	/* A new channel does not bring the old one back. */
	ch2 = new_chan(sizeof(long), 4);
	cr_assert_eq(br_chan_send(ch, &v), BR_EBADOBJ);
	cr_assert_eq(br_chan_send_for(ch, &v, 10), BR_EBADOBJ);
	cr_assert_eq(br_chan_try_send(ch, &v), BR_EBADOBJ);
	cr_assert_eq(br_chan_recv(ch, &v), BR_EBADOBJ);
	cr_assert_eq(br_chan_recv_until(ch, &v, -1), BR_EBADOBJ);
	cr_assert_eq(br_chan_try_recv(ch, &v), BR_EBADOBJ);
	cr_assert_eq(br_chan_close(ch), BR_EBADOBJ);
	cr_assert_eq(br_chan_len(ch), BR_EBADOBJ);
	cr_assert_eq(br_chan_cap(ch), BR_EBADOBJ);
	cs.chan = ch;
	cr_assert_eq(br_chan_select(&cs, 1), BR_EBADOBJ);
	br_chan_free(ch); /* freeing again is a no-op */
	cr_assert_eq(br_chan_try_recv(ch2, &v), -EAGAIN);
	br_chan_free(ch2);
}

struct closer {
	br_chan *ch;
	atomic_int started;
	int waited;
	int closed;
};

static void *close_when_cancelled(void *arg)
{
	struct closer *c = arg;

	atomic_store(&c->started, 1);
	c->waited = br_sleep_ms(20000);
	c->closed = br_chan_close(c->ch);
	return NULL;
}

/* Closing releases the channel's waiters: a cancelled task may do it. */
Test(chan, a_cancelled_task_closes_a_channel, .timeout = 20.0)
{
	br_runtime *rt = t_runtime(1, 0);
	struct closer c = { .ch = new_chan(sizeof(long), 0) };
	br_future *f = br_spawn(rt, close_when_cancelled, &c);
	long v;

	cr_assert_eq(t_spin_until(&c.started, 1, 5000 * T_NS_PER_MS), 0);
	br_sleep_ms(20);
	cr_assert_eq(br_cancel(f), 0);
	br_await(f, NULL);
	cr_assert_eq(c.waited, -ECANCELED);
	cr_assert_eq(c.closed, 0);
	cr_assert_eq(br_chan_recv(c.ch, &v), BR_ECLOSED);
	br_future_release(f);
	br_chan_free(c.ch);
	br_runtime_free(rt);
}
