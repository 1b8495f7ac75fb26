/* SPDX-License-Identifier: MIT */
/*
 * blocking.c - the elastic blocking pool: br_spawn_blocking() runs a
 * function that may block its thread, on a thread that is not a worker,
 * and returns a future like any other.
 *
 * Design
 *   One pool per runtime, created empty: threads start on demand, up to
 *   max_threads, and a thread idle for idle_ms exits. Calls go, in this
 *   order of preference:
 *     1. to an idle thread, directly (the call is stored in its record
 *        and it alone is woken: no thundering herd). Idle threads form a
 *        LIFO, so the thread that idled last gets the next call and the
 *        others age out; with a shared condition variable every idle
 *        thread would get calls in turn and none would ever exit;
 *     2. to the FIFO queue, when some thread is between calls and will
 *        look at the queue before it idles (a "searcher"), or when the
 *        pool is at its maximum; the queue holds at most max_queue calls,
 *        and a call that finds it full fails with -EAGAIN at once;
 *     3. to a new thread, when every thread is inside a call.
 *   A thread that takes a call from the queue and leaves others behind
 *   starts another thread first if no other thread is searching. So
 *   whenever the queue is not empty, a thread that is not inside a call
 *   will come for it, or the pool is full: a queued call never waits
 *   behind calls that block while the pool could still grow (Tokio's
 *   rule). Yet a burst of short calls does not grow the pool: the
 *   threads are rarely all inside a call at once (Tokio's "spawn when
 *   none idle" would start one thread per call of such a burst).
 *
 *   The first thread to idle spins for about a wake-up's cost (20 us
 *   here) before it sleeps, so a stream of calls keeps one thread awake
 *   and costs no system call per call; it sleeps on a futex word in its
 *   record, which a submitter sets and wakes only if the thread sleeps.
 *
 *   Shutdown (br_runtime_free): close() refuses new calls and cancels
 *   the queued ones (their futures end CANCELLED); calls already running
 *   are waited for by free(), which then joins every thread. A running
 *   call cannot be interrupted: br_runtime_free() documents that it
 *   waits. The workers never wait for the pool, so a blocked call cannot
 *   stall a loop.
 *
 * Invariants
 *   - nthreads = threads started or being started, not yet exited;
 *     nbusy of them are inside a call, nidle are on the idle stack, the
 *     rest are searchers.
 *   - The queue is not empty => a searcher exists, or nthreads == max,
 *     or a thread could not be created.
 *   - An idle thread => the queue is empty.
 *   - A record is on the idle stack, on the zombie list, or owned by its
 *     running thread (or by a spawner for a moment).
 *
 * Concurrency
 *   Everything in struct br__blocking and the records' job, next, idle
 *   and joinable fields: under p->lock. A record's wake word: its thread
 *   and the submitter that handed it a call.
 *
 * Memory ordering
 *   - wake: the submitter's exchange to WOKEN (release) pairs with the
 *     thread's acquire load; the call itself is handed over under
 *     p->lock, which the thread takes after waking. The thread's CAS to
 *     SLEEPING and the exchange act on one word, so the submitter wakes
 *     the futex exactly when the thread sleeps on it.
 *   - A call's result reaches its awaiter through the future (future.c).
 *
 * Lifetime
 *   Records stay allocated until the pool is freed (they are reused for
 *   new threads), so a late futex wake-up always lands on a record.
 *   Calls are malloc'd by the submitter and freed by the thread that
 *   runs or cancels them; each holds one of its future's two references.
 */
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "blocking.h"
#include "future.h"
#include "task.h"
#include "worker.h"

/* How long the first idle thread spins before it sleeps. */
#define SPIN_NS 20000

/* wake word */
enum {
	T_IDLE,	    /* waiting for a call, awake */
	T_SLEEPING, /* waiting for a call on the futex */
	T_WOKEN,    /* handed a call, or told to look (closing) */
};

struct job {
	br_task_fn fn;
	void *arg;
	struct br_future *f; /* one of its two references */
	struct job *next;    /* queue link, under p->lock */
};

struct bthread {
	struct br__blocking *pool;
	pthread_t tid;	       /* under p->lock */
	int joinable;	       /* started and not joined; under p->lock */
	int idle;	       /* on the idle stack; under p->lock */
	struct job *job;       /* handed over; under p->lock */
	struct bthread *next;  /* idle stack or zombies; under p->lock */
	struct bthread *all;   /* every record, for free() */
	_Atomic uint32_t wake; /* T_*; see the header */
};

struct br__blocking {
	pthread_mutex_t lock;
	pthread_cond_t exited;		 /* nthreads fell to 0 */
	struct job *head, *tail;	 /* the queue; under lock */
	size_t queued;			 /* under lock */
	struct bthread *idle;		 /* idle stack; under lock */
	struct bthread *zombies;	 /* exited or unused; under lock */
	struct bthread *all;		 /* under lock */
	unsigned nthreads, nbusy, nidle; /* under lock */
	unsigned nspin;			 /* idle threads spinning; under lock */
	int closing;			 /* under lock */
	unsigned max;
	size_t max_queue;
	int64_t idle_ns;
};

static __thread const struct br__blocking *tls_pool;

struct br__blocking *br__blocking_new(unsigned max_threads, unsigned max_queue,
				      unsigned idle_ms)
{
	struct br__blocking *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->exited, NULL);
	p->max = max_threads;
	p->max_queue = max_queue;
	p->idle_ns = (int64_t)idle_ms * 1000000;
	return p;
}

int br__blocking_is_own_thread(const struct br__blocking *p)
{
	return p && tls_pool == p;
}

static void futex_wait(_Atomic uint32_t *word, uint32_t val, int64_t deadline)
{
	struct timespec ts;

	ts.tv_sec = deadline / 1000000000;
	ts.tv_nsec = deadline % 1000000000;
	syscall(SYS_futex, word, FUTEX_WAIT_BITSET_PRIVATE, val, &ts, NULL,
		FUTEX_BITSET_MATCH_ANY);
}

/* Wake t, which a caller holding p->lock took off the idle stack. */
static void kick(struct bthread *t)
{
	/* Release: pairs with the thread's acquire load of the word. */
	if (atomic_exchange_explicit(&t->wake, T_WOKEN, memory_order_release) ==
	    T_SLEEPING)
		syscall(SYS_futex, &t->wake, FUTEX_WAKE_PRIVATE, 1, NULL, NULL,
			0);
}

/* Run (or drop, if cancelled while queued) one call, and free it. */
static void run(struct job *j)
{
	if (br__future_state(j->f) == BR_PENDING) {
		void *v = j->fn(j->arg);

		/* BR_EDONE if cancelled meanwhile: the value is dropped. */
		br__future_complete(j->f, BR_DONE, v, NULL, 0, 0, NULL);
	}
	br_future_release(j->f);
	free(j);
}

static struct job *pop(struct br__blocking *p)
{
	struct job *j = p->head;

	if (j) {
		p->head = j->next;
		if (!p->head)
			p->tail = NULL;
		p->queued--;
	}
	return j;
}

static void *thread_main(void *arg);

/*
 * Start a thread that runs j first (j may be NULL). Caller holds
 * p->lock; it is dropped and retaken while an exited thread whose record
 * is reused is joined, and held across pthread_create, so the new thread
 * (which starts by taking the lock) finds its record complete. Returns 0,
 * or a negative errno with nothing started.
 */
static int spawn(struct br__blocking *p, struct job *j)
{
	struct bthread *t = p->zombies;
	sigset_t old;
	int r;

	p->nthreads++; /* reserved: free() waits for it */
	if (t) {
		p->zombies = t->next;
		if (t->joinable) {
			pthread_t tid = t->tid;

			t->joinable = 0;
			pthread_mutex_unlock(&p->lock);
			pthread_join(tid, NULL); /* it has exited (header) */
			pthread_mutex_lock(&p->lock);
		}
	} else {
		t = calloc(1, sizeof(*t));
		if (!t) {
			p->nthreads--;
			return -ENOMEM;
		}
		t->pool = p;
		t->all = p->all;
		p->all = t;
	}
	t->job = j;
	t->idle = 0;
	atomic_init(&t->wake, T_IDLE);
	br__signals_block(&old);
	r = pthread_create(&t->tid, NULL, thread_main, t);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r) {
		t->job = NULL;
		t->next = p->zombies;
		p->zombies = t;
		p->nthreads--;
		return -r;
	}
	t->joinable = 1;
	return 0;
}

/*
 * Idle: wait on the idle stack for a call, closing or the idle timeout.
 * Caller holds p->lock, and holds it again on return. Returns the call
 * handed over, or NULL (closing, timed out, or woken for nothing).
 */
static struct job *idle_wait(struct br__blocking *p, struct bthread *t,
			     int64_t deadline)
{
	int spin = p->nspin == 0;
	struct job *j;

	t->idle = 1;
	t->next = p->idle;
	p->idle = t;
	p->nidle++;
	p->nspin += spin;
	atomic_store_explicit(&t->wake, T_IDLE, memory_order_relaxed);
	pthread_mutex_unlock(&p->lock);
	if (spin) {
		int64_t until = br_now_ns() + SPIN_NS;
		unsigned i = 0;

		/* Acquire: pairs with kick()'s release. */
		while (atomic_load_explicit(&t->wake, memory_order_acquire) ==
		       T_IDLE) {
			br__cpu_relax();
			if ((++i & 15) == 0 && br_now_ns() >= until)
				break;
		}
	}
	for (;;) {
		uint32_t exp = T_IDLE;

		if (br_now_ns() >= deadline)
			break;
		/* Relaxed: the word orders it against kick() (header). */
		if (!atomic_compare_exchange_strong_explicit(
			    &t->wake, &exp, T_SLEEPING, memory_order_relaxed,
			    memory_order_relaxed))
			break; /* kicked */
		futex_wait(&t->wake, T_SLEEPING, deadline);
		exp = T_SLEEPING;
		atomic_compare_exchange_strong_explicit(&t->wake, &exp, T_IDLE,
							memory_order_relaxed,
							memory_order_relaxed);
	}
	pthread_mutex_lock(&p->lock);
	p->nspin -= spin;
	j = t->job;
	t->job = NULL;
	if (t->idle) {
		/* Not taken by a submitter: leave the stack ourselves. */
		struct bthread **pp = &p->idle;

		while (*pp != t)
			pp = &(*pp)->next;
		*pp = t->next;
		t->idle = 0;
		p->nidle--;
	}
	return j;
}

static void *thread_main(void *arg)
{
	struct bthread *t = arg;
	struct br__blocking *p = t->pool;
	struct job *j;

	tls_pool = p;
	pthread_mutex_lock(&p->lock);
	j = t->job;
	t->job = NULL;
	for (;;) {
		int64_t deadline;

		if (j) {
			p->nbusy++;
			/* Keep a searcher for what is still queued. */
			if (p->head && p->nthreads - p->nbusy - p->nidle == 0 &&
			    p->nthreads < p->max && !p->closing)
				spawn(p, NULL);
			pthread_mutex_unlock(&p->lock);
			run(j);
			pthread_mutex_lock(&p->lock);
			p->nbusy--;
		}
		j = pop(p);
		if (j)
			continue;
		if (p->closing)
			break;
		deadline = br_now_ns() + p->idle_ns;
		j = idle_wait(p, t, deadline);
		if (!j && !p->closing && br_now_ns() >= deadline)
			break;
	}
	p->nthreads--;
	t->next = p->zombies;
	p->zombies = t;
	if (p->nthreads == 0)
		pthread_cond_broadcast(&p->exited);
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

static br_future *fail(struct job *j, struct br_future *f, int code,
		       const char *msg)
{
	free(j);
	/* Both references were ours: keep one for the caller. */
	br_future_release(f);
	br__future_complete(f, BR_FAILED, NULL, NULL, 0, code, msg);
	return f;
}

br_future *br_spawn_blocking(br_runtime *rt, br_task_fn fn, void *arg)
{
	struct br__blocking *p;
	struct bthread *t;
	struct br_future *f;
	struct job *j;
	int r;

	if (!br__runtime_ok(rt))
		return br__future_failed(
			BR_EBADOBJ, "br_spawn_blocking: not a live runtime");
	if (!fn)
		return br__future_failed(-EINVAL,
					 "br_spawn_blocking: fn is NULL");
	if (atomic_load_explicit(&rt->closing, memory_order_relaxed))
		return br__future_failed(
			BR_ECLOSED,
			"br_spawn_blocking: the runtime is closing");
	p = rt->blocking;
	j = malloc(sizeof(*j));
	f = br__promise_alloc(2); /* the caller's and the call's */
	if (!j || !f) {
		free(j);
		if (f) {
			br_future_release(f);
			br_future_release(f);
		}
		return &br__future_enomem;
	}
	j->fn = fn;
	j->arg = arg;
	j->f = f;
	j->next = NULL;
	pthread_mutex_lock(&p->lock);
	if (p->closing) {
		pthread_mutex_unlock(&p->lock);
		return fail(j, f, BR_ECLOSED,
			    "br_spawn_blocking: the runtime is closing");
	}
	t = p->idle;
	if (t) {
		p->idle = t->next;
		t->idle = 0;
		p->nidle--;
		t->job = j;
		pthread_mutex_unlock(&p->lock);
		kick(t);
		return f;
	}
	if (p->nthreads < p->max && p->nthreads - p->nbusy - p->nidle == 0) {
		r = spawn(p, j);
		if (r == 0) {
			pthread_mutex_unlock(&p->lock);
			return f;
		}
		if (p->nthreads == 0) {
			pthread_mutex_unlock(&p->lock);
			return fail(j, f, -EAGAIN,
				    "br_spawn_blocking: no thread could be "
				    "started");
		}
		/* Others exist: queue it for them. */
	}
	if (p->queued >= p->max_queue) {
		pthread_mutex_unlock(&p->lock);
		return fail(j, f, -EAGAIN,
			    "br_spawn_blocking: the queue is full");
	}
	if (p->tail)
		p->tail->next = j;
	else
		p->head = j;
	p->tail = j;
	p->queued++;
	pthread_mutex_unlock(&p->lock);
	return f;
}

void br__blocking_close(struct br__blocking *p)
{
	struct job *q, *j;
	struct bthread *t;

	pthread_mutex_lock(&p->lock);
	p->closing = 1;
	q = p->head;
	p->head = p->tail = NULL;
	p->queued = 0;
	/* Kicked under the lock: a woken thread needs it to go on, so the
	 * stack cannot change under us. */
	while ((t = p->idle) != NULL) {
		p->idle = t->next;
		t->idle = 0;
		p->nidle--;
		kick(t);
	}
	pthread_mutex_unlock(&p->lock);
	while ((j = q) != NULL) {
		q = j->next;
		br__future_complete(j->f, BR_CANCELLED, NULL, NULL, 0,
				    -ECANCELED,
				    "cancelled: the runtime closed");
		br_future_release(j->f);
		free(j);
	}
}

void br__blocking_free(struct br__blocking *p)
{
	struct bthread *t;

	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	while (p->nthreads)
		pthread_cond_wait(&p->exited, &p->lock);
	pthread_mutex_unlock(&p->lock);
	while ((t = p->all) != NULL) {
		p->all = t->all;
		if (t->joinable)
			pthread_join(t->tid, NULL);
		free(t);
	}
	pthread_cond_destroy(&p->exited);
	pthread_mutex_destroy(&p->lock);
	free(p);
}
