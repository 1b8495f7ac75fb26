/* SPDX-License-Identifier: MIT */
/*
 * blocking.c - the elastic blocking pool: br_spawn_blocking() runs a
 * function that may block its thread, on a thread that is not a worker,
 * and returns a future like any other.
 *
 * Design
 *   One pool per runtime, created empty: threads start on demand up to
 *   max_threads and exit after idle_ms idle. Calls go into one FIFO of at
 *   most max_queue (a full queue fails the call with -EAGAIN at once).
 *   The rule (Tokio's): whenever the queue is not empty, some thread that
 *   is not inside a call (a "searcher") will come for it, or the pool is
 *   full, so a queued call never waits behind blocked calls while the pool
 *   could grow. A thread counts as a searcher from the moment its call
 *   returns, so threads taking turns on a burst of short calls keep each
 *   other counted and the pool does not grow a thread per call.
 *
 *   The queue is Vyukov's intrusive MPSC queue: a submitter links its
 *   call with one exchange and one store and takes no lock unless the
 *   queue was empty; threads pop under the pool's lock. A submitter thus
 *   writes no line the threads write while the queue is busy. The bound
 *   is a count of reservations (submitters) against a count of pops
 *   (threads), the latter read only when the cached copy says "full".
 *
 *   A thread that finds the queue empty searches for SPIN_NS before it
 *   idles, watching the tail without the lock (one searcher at a time),
 *   and lets calls that keep arriving gather (GATHER_NS) before it takes
 *   the lock. Idle threads form a LIFO, each asleep on a futex word of its
 *   own: the one that idled last is woken first and the others age out,
 *   one thread per wake-up.
 *
 *   A call is one allocation, its future first (call_ops frees it).
 *   Shutdown: close() refuses new calls and cancels queued ones; free()
 *   waits for running calls (which cannot be interrupted) and joins the
 *   threads. Workers never wait for the pool.
 *
 *   br__offload is how braid's own calls that may block (file-system
 *   calls without a ring, name lookups) run here for a task that may stop
 *   waiting: the record is shared by the task and the call with a count
 *   of two, awaited through a shield so that the call is never cancelled
 *   under its thread, and the last of the two frees it.
 *
 * No lost wake-ups
 *   A searcher decides to idle under the lock, after finding the queue
 *   empty. A submitter that found the queue empty (its exchange returned
 *   the stub) and no spinner takes the lock after its exchange and looks
 *   for a searcher: either the searcher looked first and is idle, and is
 *   woken, or the call was queued when it looked, and it takes it. A
 *   submitter that found the queue not empty relies on the rule above,
 *   which whoever takes the call before it keeps. One that saw a spinner
 *   relies on it: the spinner clears spinning (seq_cst) before its pop,
 *   after the submitter's seq_cst exchange of the tail.
 *
 * Invariants
 *   - nthreads = threads started or being started, not yet exited;
 *     nbusy of them are inside a call, nidle are on the idle stack, the
 *     rest are searchers.
 *   - The queue is not empty => a searcher exists, or nthreads == max, or
 *     no thread could be started (then queued calls fail with -EAGAIN if
 *     no thread is left).
 *   - pushed - popped = calls queued or being queued <= max_queue.
 *   - A record is on the idle stack, on the zombie list, owned by its
 *     running thread, or being started.
 *
 * Concurrency
 *   - tail, pushed, popped_seen: any submitter, atomically. spinning: set
 *     under p->lock, cleared by the spinner (seq_cst), read without it.
 *   - head, the stub, popped, nthreads, nidle, idle, zombies, all and the
 *     records' next, idle, joinable and join fields: under p->lock. nbusy:
 *     incremented under the lock, decremented without it.
 *   - A record's wake word: its thread and the thread that woke it.
 *   - p->lock is a leaf: nothing else is taken, and no call runs, under it.
 *
 * Memory ordering
 *   - Queue: the submitter's release store of prev->next pairs with the
 *     consumer's acquire load of it, publishing the call's fields.
 *   - closing: the closer stores it (seq_cst) then drains the queue; a
 *     submitter exchanges the tail (seq_cst) then loads closing (seq_cst)
 *     and drains the queue itself if set. One of the two drains the call.
 *   - wake: the waker's exchange to WOKEN (release) pairs with the
 *     thread's acquire; the CAS to SLEEPING and the exchange act on one
 *     word, so the waker calls FUTEX_WAKE exactly when the thread sleeps.
 *   - nbusy's decrement is relaxed: a reader may see a returned thread as
 *     busy and start one thread too many, never the reverse.
 *   - pushed, popped and popped_seen are relaxed counters: the bound errs
 *     towards refusing, and a refusal re-reads popped.
 *
 * Lifetime
 *   Thread records stay allocated until the pool is freed (they are
 *   reused), so a late futex wake-up always lands on a record. A call
 *   holds two references to its future: the caller's, and the pool's,
 *   which the thread that runs or cancels it drops.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "blocking.h"
#include "deadline.h"
#include "clock.h"
#include "futex.h"
#include "future.h"
#include "task.h"
#include "worker.h"

/* How long a thread searches for a call before it idles: a little more
 * than a round trip through a parked worker and back, so that serial
 * calls from one task find the thread still searching
 * (docs/ARCHITECTURE.md has the measurement). */
#define SPIN_NS (50 * BR__NS_PER_US)
/* A searcher that sees calls arrive lets them gather this long (while
 * they keep coming, up to GATHER_MAX_NS) before it takes the first. */
#define GATHER_NS 300
#define GATHER_MAX_NS 2000

/* wake word */
enum {
	T_IDLE,	    /* on the idle stack, awake */
	T_SLEEPING, /* on the idle stack, asleep on the futex */
	T_WOKEN,    /* told to look at the queue */
};

struct qnode {
	_Atomic(struct qnode *) next;
};

struct call {
	struct br_future fut; /* first: its last release frees the call */
	br_task_fn fn;
	void *arg;
	struct qnode q;
};

static void call_free(struct br_future *f)
{
	br__future_destroy(f);
	free(br__container_of(f, struct call, fut));
}

/* br_cancel() cannot stop a running call: the future ends CANCELLED at
 * once, and the call's result is dropped when it returns. */
static const struct br__future_ops call_ops = {
	.name = "blocking call",
	.free = call_free,
};

struct bthread {
	struct br__blocking *pool;
	pthread_t tid;	       /* set by pthread_create before it starts */
	int joinable;	       /* started and not joined; under p->lock */
	int idle;	       /* on the idle stack; under p->lock */
	int join;	       /* old_tid must be joined before reuse */
	pthread_t old_tid;     /* the record's previous thread */
	struct bthread *next;  /* idle stack or zombies; under p->lock */
	struct bthread *all;   /* every record, for free(); under p->lock */
	_Atomic uint32_t wake; /* T_*; see the header */
};

struct br__blocking {
	/* ---- written by submitters ---- */
	BR__CACHE_ALIGNED _Atomic(struct qnode *) tail;
	_Atomic uint64_t pushed;      /* reservations */
	_Atomic uint64_t popped_seen; /* a recent value of popped */
	_Atomic int closing;
	size_t max_queue;
	/* ---- written by the pool's threads, under lock ---- */
	BR__CACHE_ALIGNED _Atomic uint32_t lock; /* spin lock (waitq.h) */
	_Atomic int spinning; /* a thread searches; set under lock */
	unsigned nthreads, nidle;
	_Atomic unsigned nbusy; /* see Concurrency */
	_Atomic uint64_t popped;
	struct qnode *head;
	struct bthread *idle; /* the idle stack */
	/* ---- the rest ---- */
	BR__CACHE_ALIGNED struct qnode stub;
	struct bthread *zombies; /* exited, or never started; under lock */
	struct bthread *all;	 /* under lock */
	unsigned max;
	int64_t idle_ns;
};

static __thread const struct br__blocking *tls_pool;

struct br__blocking *br__blocking_new(unsigned max_threads, unsigned max_queue,
				      unsigned idle_ms)
{
	struct br__blocking *p = aligned_alloc(BR__CACHE_LINE, sizeof(*p));

	if (!p)
		return NULL;
	memset(p, 0, sizeof(*p));
	atomic_init(&p->stub.next, NULL);
	atomic_init(&p->tail, &p->stub);
	p->head = &p->stub;
	atomic_init(&p->pushed, 0);
	atomic_init(&p->popped, 0);
	atomic_init(&p->popped_seen, 0);
	atomic_init(&p->closing, 0);
	atomic_init(&p->lock, 0);
	atomic_init(&p->nbusy, 0);
	p->max = max_threads;
	p->max_queue = max_queue;
	p->idle_ns = br__ms_to_ns(idle_ms);
	return p;
}

BR__NOINLINE int br__blocking_is_own_thread(const struct br__blocking *p)
{
	return p && tls_pool == p;
}

/* ---- the queue ---- */

/* Link n at the tail; returns the node it was linked after. */
static struct qnode *push(struct br__blocking *p, struct qnode *n)
{
	struct qnode *prev;

	atomic_store_explicit(&n->next, NULL, memory_order_relaxed);
	/* seq_cst: before the load of closing (Memory ordering). */
	prev = atomic_exchange_explicit(&p->tail, n, memory_order_seq_cst);
	/* Release: pairs with pop()'s acquire loads of next. */
	atomic_store_explicit(&prev->next, n, memory_order_release);
	return prev;
}

/* Take the oldest call, or NULL if there is none. Caller holds p->lock. */
static struct call *pop(struct br__blocking *p)
{
	unsigned spins = 0;

	BR__ASSERT_SPIN_HELD(&p->lock);
	for (;;) {
		struct qnode *head = p->head, *next;

		/* Acquire: pairs with push()'s release of next. */
		next = atomic_load_explicit(&head->next, memory_order_acquire);
		if (head == &p->stub) {
			if (!next)
				return NULL;
			p->head = head = next;
			next = atomic_load_explicit(&head->next,
						    memory_order_acquire);
		}
		if (!next && head == atomic_load_explicit(
					     &p->tail, memory_order_acquire)) {
			/* The last one: link the stub behind it, so the
			 * queue never points at a call it gave away. */
			push(p, &p->stub);
			next = atomic_load_explicit(&head->next,
						    memory_order_acquire);
		}
		if (next) {
			p->head = next;
			atomic_store_explicit(
				&p->popped,
				atomic_load_explicit(&p->popped,
						     memory_order_relaxed) +
					1,
				memory_order_relaxed);
			return br__container_of(head, struct call, q);
		}
		/* A submitter is between its exchange and its link. */
		br__backoff(&spins);
	}
}

/* Is anything queued (or being queued)? Caller holds p->lock. */
static int queued(struct br__blocking *p)
{
	return p->head != &p->stub ||
	       atomic_load_explicit(&p->tail, memory_order_acquire) != &p->stub;
}

/* Take every queued call, chained through q.next. Caller holds
 * p->lock. */
static struct call *pop_all(struct br__blocking *p)
{
	struct call *first = NULL, **last = &first, *c;

	BR__ASSERT_SPIN_HELD(&p->lock);
	while ((c = pop(p)) != NULL) {
		*last = c;
		last = (struct call **)(void *)&c->q.next;
		atomic_store_explicit(&c->q.next, NULL, memory_order_relaxed);
	}
	return first;
}

/* Complete every call of a pop_all() chain as state with code and msg,
 * and drop the pool's references. */
static void end_all(struct call *c, br_state state, int code, const char *msg)
{
	while (c) {
		struct call *next = (struct call *)(void *)atomic_load_explicit(
			&c->q.next, memory_order_relaxed);

		br__future_complete(&c->fut, state, NULL, NULL, 0, code, msg);
		br_future_release(&c->fut);
		c = next;
	}
}

/* ---- threads ---- */

/* Wake t, which a caller holding p->lock took off the idle stack. */
static void kick(struct bthread *t)
{
	/* Release: pairs with the thread's acquire of the word. */
	if (atomic_exchange_explicit(&t->wake, T_WOKEN, memory_order_release) ==
	    T_SLEEPING)
		br__futex_wake(&t->wake);
}

static int searchers(struct br__blocking *p)
{
	/* Relaxed: see the header. */
	unsigned busy = atomic_load_explicit(&p->nbusy, memory_order_relaxed);

	return p->nthreads > busy + p->nidle;
}

/* What a holder of p->lock leaves to do once it has dropped it. */
struct todo {
	struct bthread *kick;  /* wake this idle thread */
	struct bthread *start; /* start a thread on this record */
	struct call *orphans;  /* fail these: no thread, none to come */
};

/*
 * Reserve a record for a new thread (it counts in nthreads from now on,
 * so free() waits for it). NULL if out of memory. Caller holds p->lock.
 */
static struct bthread *reserve(struct br__blocking *p)
{
	struct bthread *t = p->zombies;

	BR__ASSERT_SPIN_HELD(&p->lock);
	if (t) {
		p->zombies = t->next;
		t->join = t->joinable;
		t->old_tid = t->tid;
	} else {
		t = BR__FAULT("braid/blocking/alloc") ? NULL :
							calloc(1, sizeof(*t));
		if (!t)
			return NULL;
		t->pool = p;
		t->all = p->all;
		p->all = t;
	}
	/* Joinable from now: the thread may run and exit before
	 * pthread_create returns, and its reuser must join it. */
	t->joinable = 1;
	t->idle = 0;
	p->nthreads++;
	return t;
}

static void *thread_main(void *arg);

/* Start the thread reserved on t. Context: no lock held. */
static void start(struct br__blocking *p, struct bthread *t)
{
	struct call *orphans = NULL;
	sigset_t old;
	int r;

	if (t->join)
		pthread_join(t->old_tid, NULL); /* it has exited */
	t->join = 0;
	atomic_init(&t->wake, T_IDLE);
	br__signals_block(&old);
	r = BR__FAULT("braid/blocking/thread") ?
		    EAGAIN :
		    pthread_create(&t->tid, NULL, thread_main, t);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r == 0)
		return;
	br__spin_lock(&p->lock);
	t->joinable = 0;
	t->next = p->zombies;
	p->zombies = t;
	p->nthreads--;
	/* No thread at all to run what is queued: fail it, not hang. */
	if (p->nthreads == 0)
		orphans = pop_all(p);
	br__spin_unlock(&p->lock);
	end_all(orphans, BR_FAILED, -EAGAIN,
		"br_spawn_blocking: no thread could be started");
}

static void act(struct br__blocking *p, struct todo *td)
{
	if (td->kick)
		kick(td->kick);
	if (td->start)
		start(p, td->start);
	end_all(td->orphans, BR_FAILED, -ENOMEM,
		"br_spawn_blocking: no memory to start a thread");
}

/*
 * Keep the rule (header): if calls are queued and no thread is between
 * calls, wake the idle thread that idled last, or start one. Caller
 * holds p->lock, and calls act(td) once it has dropped it.
 */
static void want_searcher(struct br__blocking *p, struct todo *td)
{
	struct bthread *t;

	td->kick = td->start = NULL;
	td->orphans = NULL;
	if (!queued(p) || searchers(p) ||
	    atomic_load_explicit(&p->closing, memory_order_relaxed))
		return;
	t = p->idle;
	if (t) {
		p->idle = t->next;
		t->idle = 0;
		p->nidle--;
		td->kick = t;
	} else if (p->nthreads < p->max) {
		td->start = reserve(p);
		/* No memory for the record: with no thread at all, nothing
		 * would ever run what is queued. Fail it, as start() does
		 * when the thread itself cannot be made. */
		if (!td->start && p->nthreads == 0)
			td->orphans = pop_all(p);
	}
}

/* Run (or drop, if cancelled while queued) one call, and drop the
 * pool's reference to it. */
static void run(struct call *c)
{
	if (br__future_state(&c->fut) == BR_PENDING) {
		void *v = c->fn(c->arg);

		/* A deadline scope the call entered and never left ends
		 * with it, not in the next call on this thread. */
		br__deadline_thread_reset();
		/* BR_EDONE if cancelled meanwhile: the value is dropped. */
		br__future_complete(&c->fut, BR_DONE, v, NULL, 0, 0, NULL);
	}
	br_future_release(&c->fut);
}

/*
 * Search: with the lock dropped, watch the tail for up to SPIN_NS. Calls
 * that arrive are left to gather for a moment while more keep coming, so
 * that the submitter can queue them without meeting the searcher on the
 * lock. The caller holds p->lock and holds it again on return; it must
 * pop.
 */
static void search(struct br__blocking *p)
{
	int64_t now = br_now_ns(), until = now + SPIN_NS, quiet = 0, stop = 0;
	struct qnode *seen = &p->stub, *t;
	unsigned i = 0;

	atomic_store_explicit(&p->spinning, 1, memory_order_relaxed);
	br__spin_unlock(&p->lock);
	for (;;) {
		/* Relaxed: a hint; the pop under the lock decides. */
		t = atomic_load_explicit(&p->tail, memory_order_relaxed);
		if (t != seen) {
			if (!stop)
				stop = br_now_ns() + GATHER_MAX_NS;
			quiet = br_now_ns() + GATHER_NS;
			seen = t;
		}
		br__cpu_relax();
		if ((++i & 7) != 0)
			continue;
		now = br_now_ns();
		if (stop ? (now >= quiet || now >= stop) : now >= until)
			break;
	}
	br__spin_lock(&p->lock);
	/* seq_cst: a submitter that still saw us spinning pushed before
	 * this store, so the caller's pop finds its call (header). */
	atomic_store_explicit(&p->spinning, 0, memory_order_seq_cst);
}

/*
 * Idle: sleep on the idle stack until woken, closing, or deadline.
 * Caller holds p->lock, and holds it again on return.
 */
static void idle_wait(struct br__blocking *p, struct bthread *t,
		      int64_t deadline)
{
	BR__ASSERT_SPIN_HELD(&p->lock);
	t->idle = 1;
	t->next = p->idle;
	p->idle = t;
	p->nidle++;
	atomic_store_explicit(&t->wake, T_IDLE, memory_order_relaxed);
	br__spin_unlock(&p->lock);
	for (;;) {
		uint32_t exp = T_IDLE;

		if (br_now_ns() >= deadline)
			break;
		/* Acquire: pairs with kick()'s release when it fails; the
		 * word orders the CAS against kick() (header). */
		if (!atomic_compare_exchange_strong_explicit(
			    &t->wake, &exp, T_SLEEPING, memory_order_acquire,
			    memory_order_acquire))
			break; /* woken */
		br__futex_wait(&t->wake, T_SLEEPING, deadline);
		exp = T_SLEEPING;
		atomic_compare_exchange_strong_explicit(&t->wake, &exp, T_IDLE,
							memory_order_relaxed,
							memory_order_relaxed);
	}
	br__spin_lock(&p->lock);
	if (t->idle) {
		/* Nobody woke us: leave the stack ourselves. */
		struct bthread **pp = &p->idle;

		while (*pp != t)
			pp = &(*pp)->next;
		*pp = t->next;
		t->idle = 0;
		p->nidle--;
	}
}

static void *thread_main(void *arg)
{
	struct bthread *t = arg;
	struct br__blocking *p = t->pool;
	int searched = 0;

	tls_pool = p;
	br__spin_lock(&p->lock);
	for (;;) {
		struct todo td;
		struct call *c = pop(p);
		int64_t deadline;

		if (c) {
			atomic_fetch_add_explicit(&p->nbusy, 1,
						  memory_order_relaxed);
			/* Others still queued: keep a searcher for them. */
			want_searcher(p, &td);
			br__spin_unlock(&p->lock);
			act(p, &td);
			run(c);
			/* A searcher again from here (header). */
			atomic_fetch_sub_explicit(&p->nbusy, 1,
						  memory_order_relaxed);
			searched = 0;
			br__spin_lock(&p->lock);
			continue;
		}
		if (atomic_load_explicit(&p->closing, memory_order_relaxed))
			break;
		if (!searched &&
		    !atomic_load_explicit(&p->spinning, memory_order_relaxed)) {
			searched = 1;
			search(p);
			continue;
		}
		searched = 0;
		deadline = br_now_ns() + p->idle_ns;
		idle_wait(p, t, deadline);
		if (!queued(p) &&
		    !atomic_load_explicit(&p->closing, memory_order_relaxed) &&
		    br_now_ns() >= deadline)
			break;
	}
	p->nthreads--;
	t->next = p->zombies;
	p->zombies = t;
	br__spin_unlock(&p->lock);
	return NULL;
}

/* ---- submitting ---- */

/* Reserve a place in the queue: 0, or -EAGAIN if it is full. */
static int reserve_place(struct br__blocking *p)
{
	uint64_t r =
		atomic_fetch_add_explicit(&p->pushed, 1, memory_order_relaxed);
	uint64_t seen =
		atomic_load_explicit(&p->popped_seen, memory_order_relaxed);

	if (r - seen < p->max_queue)
		return 0;
	seen = atomic_load_explicit(&p->popped, memory_order_relaxed);
	atomic_store_explicit(&p->popped_seen, seen, memory_order_relaxed);
	if (r - seen < p->max_queue)
		return 0;
	atomic_fetch_sub_explicit(&p->pushed, 1, memory_order_relaxed);
	return -EAGAIN;
}

/* Cancel whatever is queued (closing). */
static void drain(struct br__blocking *p)
{
	struct call *q;

	br__spin_lock(&p->lock);
	q = pop_all(p);
	br__spin_unlock(&p->lock);
	end_all(q, BR_CANCELLED, -ECANCELED, "cancelled: the runtime closed");
}

static br_future *spawn_blocking(br_runtime *rt, br_task_fn fn, void *arg);

br_future *br_spawn_blocking(br_runtime *rt, br_task_fn fn, void *arg)
{
	br_future *f;
	int in;

	if (!br__runtime_ok(rt))
		return br__future_failed(
			BR_EBADOBJ, "br_spawn_blocking: not a live runtime");
	if (!fn)
		return br__future_failed(-EINVAL,
					 "br_spawn_blocking: fn is NULL");
	/* From outside, counted, so that br_runtime_free() does not free
	 * the pool under the call (task.c). */
	in = br__outside_enter(br__worker_current(), rt);
	if (in < 0)
		return br__future_failed(
			BR_ECLOSED,
			"br_spawn_blocking: the runtime is closing");
	f = spawn_blocking(rt, fn, arg);
	br__outside_leave(rt, in);
	return f;
}

static br_future *spawn_blocking(br_runtime *rt, br_task_fn fn, void *arg)
{
	struct br__blocking *p = rt->blocking;
	struct call *c;
	struct todo td;
	int r;

	if (atomic_load_explicit(&rt->closing, memory_order_relaxed) ||
	    atomic_load_explicit(&p->closing, memory_order_relaxed))
		return br__future_failed(
			BR_ECLOSED,
			"br_spawn_blocking: the runtime is closing");
	r = reserve_place(p);
	if (r < 0)
		return br__future_failed(
			r, "br_spawn_blocking: the queue is full");
	c = malloc(sizeof(*c));
	if (!c) {
		atomic_fetch_sub_explicit(&p->pushed, 1, memory_order_relaxed);
		return &br__future_enomem;
	}
	br__future_init(&c->fut, &call_ops, 2); /* caller's, pool's */
	c->fn = fn;
	c->arg = arg;
	br__stats_count(rt, BR__ST_BLOCKING_CALLS);
	/* The queue was empty: nobody may be coming, unless a thread
	 * spins on the tail (seq_cst: after the exchange, Memory
	 * ordering). */
	if (push(p, &c->q) == &p->stub &&
	    !atomic_load_explicit(&p->spinning, memory_order_seq_cst)) {
		br__spin_lock(&p->lock);
		want_searcher(p, &td);
		br__spin_unlock(&p->lock);
		act(p, &td);
	}
	/* seq_cst: after push()'s exchange (Memory ordering). */
	if (atomic_load_explicit(&p->closing, memory_order_seq_cst))
		drain(p);
	return &c->fut;
}

void br__blocking_close(struct br__blocking *p)
{
	struct bthread *t;

	/* seq_cst: before the drain (Memory ordering). */
	atomic_store_explicit(&p->closing, 1, memory_order_seq_cst);
	drain(p);
	/* Woken under the lock: a woken thread needs it to go on, so the
	 * stack cannot change under us. */
	br__spin_lock(&p->lock);
	while ((t = p->idle) != NULL) {
		p->idle = t->next;
		t->idle = 0;
		p->nidle--;
		kick(t);
	}
	br__spin_unlock(&p->lock);
}

void br__blocking_free(struct br__blocking *p)
{
	unsigned nap = 0;
	struct bthread *t;

	if (!p)
		return;
	/* Running calls may take long: poll with a growing nap, as
	 * br_runtime_free does for tasks. */
	for (;;) {
		unsigned n;

		br__spin_lock(&p->lock);
		n = p->nthreads;
		br__spin_unlock(&p->lock);
		if (!n)
			break;
		br__nap(&nap);
	}
	drain(p); /* a submitter racing close() may have left one */
	while ((t = p->all) != NULL) {
		p->all = t->all;
		if (t->joinable)
			pthread_join(t->tid, NULL);
		free(t);
	}
	free(p);
}

/* ---- calls a task may stop waiting for ---- */

int br__offload_where(void)
{
	if (br__task_current())
		return 1;
	return br__worker_current() ? BR_ENOTTASK : 0;
}

void br__offload_put(struct br__offload *c)
{
	if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
		c->drop(c);
}

static void *offload_run(void *arg)
{
	struct br__offload *c = arg;

	c->run(c);
	br__offload_put(c);
	return NULL;
}

/* The call's reference, when it never ran (the pool refused it, or the
 * runtime cancelled it while it was queued). */
static void offload_unrun(br_future *f, void *arg)
{
	if (br_future_state(f) != BR_DONE)
		br__offload_put(arg);
}

int br__offload(struct br__offload *c)
{
	br_future *f;
	int r;

	atomic_init(&c->refs, 2);
	f = br_spawn_blocking(br_current_runtime(), offload_run, c);
	/* Out of memory for the callback: settle it now if the call is
	 * over; else the record is left to leak rather than risk a double
	 * drop. */
	if (br_future_on_done(f, offload_unrun, c) < 0 &&
	    br_future_state(f) != BR_PENDING)
		offload_unrun(f, c);
	/* Through a shield: the task stops waiting, but the call is not
	 * cancelled with it. Had it been, its future would end CANCELLED
	 * while run() still ran, and offload_unrun and offload_run would
	 * both drop the call's reference. Cancelled, it completes only if
	 * it never ran (the runtime closed while it was queued). */
	r = br__await_shielded(f);
	br_future_release(f);
	return r;
}
