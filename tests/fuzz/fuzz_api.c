/* SPDX-License-Identifier: MIT */
/*
 * fuzz_api.c - libFuzzer target: input bytes drive a scenario over
 * braid's public API, and every future must end in a state that agrees
 * with what was done to it, with nothing left behind.
 *
 * Design
 *   An input is a program: each op is one byte (op % OP_COUNT) followed
 *   by the bytes its arguments take, read from the input as needed (0
 *   once it is used up). It runs on a runtime of two workers, made once
 *   for the process (a runtime per input costs more than most inputs:
 *   its threads and rings), from the fuzzer's thread, which acts as a
 *   plain thread of the program:
 *   - spawns (plain and pinned) of small task bodies: return a value,
 *     fail, sleep, yield, send to or receive from a channel (with a
 *     timeout), select over both channels, take the mutex or the
 *     semaphore with a timeout and hold it across a sleep, await or
 *     gather or iterate as_completed over other futures, spawn and await
 *     a child;
 *   - awaits with a deadline (br_wait_for), br_wait_any, cancels and
 *     releases of any future held;
 *   - promises, resolved or rejected from this thread or from a helper
 *     thread after a moment, cancelled;
 *   - channel sends, receives (timed) and closes, mutex and semaphore
 *     waits with timeouts from this thread;
 *   - process-pool submits of jobs that echo, crash (abort, SIGKILL),
 *     run past their time limit, write past the pool's max_payload, or
 *     fail with an error; a br_map; cancels of jobs.
 *   Every wait is bounded (at most WAIT_MAX_MS), so an input never waits
 *   for good on what it set up itself.
 *
 *   Each input is a scenario of its own: at its end every task it made
 *   (even one whose future it let go) is cancelled and awaited, so none
 *   runs on into the next input; the pool is freed (which cancels what
 *   still runs), helper threads are joined, and then every future the
 *   input made is checked:
 *   - a task's or a job's future is no longer PENDING; a promise is
 *     PENDING only if nothing completed it, and otherwise in the state
 *     its first successful resolve, reject or cancel gave it;
 *   - br_await returns at once what br_future_error says: 0 for DONE,
 *     -ECANCELED for CANCELLED, < 0 for FAILED, with a message;
 *   - what is known of the outcome holds: a task that returns v ends
 *     DONE with v (or CANCELLED); one that fails with e ends FAILED
 *     with e (or CANCELLED); an
 *     echo job's bytes are its input; a crashing job ends FAILED with
 *     BR_EWORKERDIED, a job past its limit with -ETIMEDOUT, one writing
 *     too much with -EMSGSIZE (or any of them CANCELLED, if cancelled or
 *     cut short by the pool's end);
 *   - a task's future that ended CANCELLED was cancelled: by the input,
 *     by a wait that timed out on it (the input's or a task's), or at
 *     the end while it still ran;
 *   and the process's descriptors, threads and children are those it had
 *   before the input (the zygote and its spare, started once, aside).
 *   A failed check prints what it saw and aborts: libFuzzer saves the
 *   input as a crash.
 *
 * Concurrency
 *   The fuzzer's thread drives; tasks run on the runtime's workers,
 *   helper threads resolve promises, jobs run in pool workers. What
 *   tasks record for the checks is written before their future
 *   completes and read after it has.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "braid.h"
#include "../census.h"

#define SLOTS 16	  /* futures held at once */
#define OPS_MAX 64	  /* ops run per input */
#define WAIT_MAX_MS 10	  /* the longest any wait of the input takes */
#define SLEEP_MAX_MS 3	  /* the longest sleep */
#define JOBS_MAX 6	  /* pool jobs per input: each may cost a fork */
#define THREADS_MAX 4	  /* helper threads per input */
#define PAYLOAD_MAX 65536 /* the pool's max_payload */
#define JOB_LIMIT_MS 20	  /* the time limit of a job that sleeps */
#define SETTLE_MS 5000	  /* how long leftovers may take to go */

/* ---- the input ---- */

struct in {
	const uint8_t *p;
	size_t n;
};

static unsigned byte(struct in *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

/* ---- what the input made, and what is known of it ---- */

enum kind {
	K_NONE,
	K_TASK,	   /* a task; want_value/want_error if it returns/fails */
	K_PROMISE, /* a promise; first successful completion in settled */
	K_JOB,	   /* a pool job; job says which */
	K_MAP,	   /* a br_map */
	K_OTHER,   /* a future whose outcome is not predicted */
};

enum job {
	J_ECHO,
	J_ABORT,
	J_KILL,
	J_SLOW,
	J_BIG,
	J_FAIL,
	J_COUNT
};

struct fut {
	br_future *f;
	enum kind kind;
	int has_value;
	intptr_t value; /* a task's return value, if has_value */
	int has_error;
	int error; /* a task's br_fail() code, if has_error */
	enum job job;
	uint8_t job_in[8];
	/* A promise: the call that completed it (the one that returned 0),
	 * if it was one of ours. Any future: whether something may have
	 * cancelled it (a cancel of the input's, br_wait_for's timeout, a
	 * task awaiting it, the end's cancel of a task still running). */
	br_state settled;
	int settled_error;
	intptr_t settled_value;
	int maybe_cancelled;
	/* A task's own reference, kept to cancel and await it at the end
	 * even after the input has let go of f. */
	br_future *task;
};

/* Every future made, for the checks at the end (slots are a window on
 * them that ops address). */
#define ALL_MAX (OPS_MAX * 4)
static struct fut all[ALL_MAX];
static int nall;
static int slot[SLOTS]; /* index into all[], or -1 */

static br_runtime *rt;
static br_pool *pool;
static int pool_tried;
static br_chan *chans[2];
static br_mutex mu;
static br_sem sem;
static int mu_held; /* by the fuzzer's thread */
static int jobs;
static pthread_t threads[THREADS_MAX];
static int nthreads;

/* Task arguments: freed after the runtime, whether the task ran or not. */
struct targ {
	int kind;
	int a, b, c;
	br_future *deps[3];
	int ndeps;
};
static struct targ targs[ALL_MAX];
static int ntargs;
static struct census_fdset base_fdset; /* which ones, for a leak's report */

static __attribute__((noreturn)) void fail(const char *what, int i, long got)
{
	fprintf(stderr,
		"fuzz_api: CHECK FAILED: %s (future %d, kind %d, job %d, "
		"got %ld)\n",
		what, i, i >= 0 ? all[i].kind : -1,
		i >= 0 ? (int)all[i].job : -1, got);
	abort();
}

static int add(br_future *f, enum kind kind)
{
	struct fut *x;

	if (nall == ALL_MAX) {
		br_future_release(f);
		return -1;
	}
	x = &all[nall];
	memset(x, 0, sizeof(*x));
	x->f = f;
	x->kind = kind;
	x->settled = BR_PENDING;
	return nall++;
}

static void put_slot(struct in *in, int i)
{
	if (i >= 0)
		slot[byte(in) % SLOTS] = i;
}

static struct fut *get_slot(struct in *in)
{
	int i = slot[byte(in) % SLOTS];

	return i >= 0 && all[i].f ? &all[i] : NULL;
}

/* ---- task bodies ---- */

enum tkind {
	T_RETURN,
	T_FAIL,
	T_SLEEP,
	T_YIELD,
	T_SEND,
	T_RECV,
	T_SELECT,
	T_MUTEX,
	T_SEM,
	T_AWAIT,
	T_GATHER,
	T_AS_COMPLETED,
	T_CHILD,
	T_COUNT
};

static void *task(void *arg);

static void *child(void *arg)
{
	br_sleep_ms((intptr_t)arg);
	return arg;
}

static void *task(void *arg)
{
	struct targ *t = arg;
	br_future *f;
	void *v;
	int x = t->a, r;

	switch (t->kind) {
	case T_RETURN:
		return (void *)(intptr_t)t->a;
	case T_FAIL:
		return br_fail(-1 - t->a, "failed on purpose");
	case T_SLEEP:
		br_sleep_ms(t->a % (SLEEP_MAX_MS + 1));
		return (void *)(intptr_t)t->a;
	case T_YIELD:
		for (int i = 0; i < t->a % 8; i++)
			br_yield();
		return (void *)(intptr_t)t->a;
	case T_SEND:
		for (int i = 0; i < t->b % 4 + 1; i++)
			if (br_chan_send_for(chans[t->a & 1], &x,
					     t->c % WAIT_MAX_MS) < 0)
				break;
		return NULL;
	case T_RECV:
		for (int i = 0; i < t->b % 4 + 1; i++)
			if (br_chan_recv_for(chans[t->a & 1], &x,
					     t->c % WAIT_MAX_MS) < 0)
				break;
		return NULL;
	case T_SELECT: {
		int y = t->b;
		br_chan_case cs[3] = {
			{ .chan = chans[0], .op = BR_CHAN_RECV, .elem = &x },
			{ .chan = chans[1], .op = BR_CHAN_SEND, .elem = &y },
			{ .chan = t->a & 1 ? chans[1] : NULL,
			  .op = BR_CHAN_RECV,
			  .elem = NULL },
		};

		r = br_chan_select_for(cs, 3, t->c % WAIT_MAX_MS);
		if (r >= 3)
			return br_fail(-EPROTO, "select: no such case");
		return NULL;
	}
	case T_MUTEX:
		if (br_mutex_lock_for(&mu, t->c % WAIT_MAX_MS) == 0) {
			br_sleep_ms(t->a % (SLEEP_MAX_MS + 1));
			if (br_mutex_unlock(&mu) != 0)
				return br_fail(-EPROTO, "unlock failed");
		}
		return NULL;
	case T_SEM:
		if (br_sem_wait_for(&sem, t->c % WAIT_MAX_MS) == 0) {
			br_sleep_ms(t->a % (SLEEP_MAX_MS + 1));
			br_sem_post(&sem);
		}
		return NULL;
	case T_AWAIT:
		if (t->ndeps)
			br_wait_for(t->deps[0], t->c % WAIT_MAX_MS, NULL);
		return NULL;
	case T_GATHER:
		if (t->ndeps)
			br_gather(t->deps, (size_t)t->ndeps, NULL);
		return NULL;
	case T_AS_COMPLETED: {
		br_as_completed *it;

		if (!t->ndeps)
			return NULL;
		it = br_as_completed_new(t->deps, (size_t)t->ndeps);
		if (!it)
			return NULL;
		while (br_as_completed_next(it))
			;
		br_as_completed_free(it);
		return NULL;
	}
	case T_CHILD:
		f = br_spawn(br_current_runtime(), child,
			     (void *)(intptr_t)(t->a % (SLEEP_MAX_MS + 1)));
		r = br_await(f, &v);
		if (r == 0 && (intptr_t)v != t->a % (SLEEP_MAX_MS + 1))
			return br_fail(-EPROTO, "child's value");
		/* Cancelled while awaiting it: the child ends soon (it only
		 * sleeps) and must not outlive the input. */
		while (br_future_state(f) == BR_PENDING)
			br_yield();
		br_future_release(f);
		return NULL;
	}
	return NULL;
}

/* ---- pool jobs ---- */

static int job_echo(br_job *job, const void *in, size_t len)
{
	return br_job_write(job, in, len);
}

static int job_abort(br_job *job, const void *in, size_t len)
{
	abort();
}

static int job_kill(br_job *job, const void *in, size_t len)
{
	raise(SIGKILL);
	return 0;
}

static int job_slow(br_job *job, const void *in, size_t len)
{
	struct timespec ts = { 5, 0 };

	nanosleep(&ts, NULL);
	return 0;
}

static int job_big(br_job *job, const void *in, size_t len)
{
	static char chunk[16384];
	int r = 0;

	for (int i = 0; i < PAYLOAD_MAX / (int)sizeof(chunk) + 2 && !r; i++)
		r = br_job_write(job, chunk, sizeof(chunk));
	return r;
}

static int job_fail(br_job *job, const void *in, size_t len)
{
	return br_job_fail(job, -EDOM, "failed on purpose");
}

static br_job_fn job_fns[J_COUNT] = { job_echo, job_abort, job_kill,
				      job_slow, job_big,   job_fail };

static int get_pool(void)
{
	br_pool_config cfg = { .workers = 1, .max_payload = PAYLOAD_MAX };

	if (!pool && !pool_tried) {
		pool_tried = 1;
		if (br_pool_new(&pool, rt, &cfg) < 0)
			pool = NULL;
	}
	return pool != NULL;
}

/* ---- promises resolved from threads ---- */

struct resolve {
	br_future *p; /* a reference of its own */
	int reject;
	int delay_ms;
	intptr_t value;
	int first; /* the call's result */
};
static struct resolve resolves[THREADS_MAX];

static void *resolver(void *arg)
{
	struct resolve *r = arg;
	struct timespec ts = { 0, (long)r->delay_ms * 1000000 };

	nanosleep(&ts, NULL);
	r->first = r->reject ? br_promise_reject(r->p, -EIO, "from a thread") :
			       br_promise_resolve(r->p, (void *)r->value);
	return NULL;
}

/* Record a completion of promise x that returned r. */
static void settle(struct fut *x, int r, br_state st, int err, intptr_t v)
{
	if (r == 0 && x->settled == BR_PENDING) {
		x->settled = st;
		x->settled_error = err;
		x->settled_value = v;
	}
}

/* ---- ops ---- */

enum op {
	O_SPAWN,
	O_SPAWN_ON,
	O_WAIT_FOR,
	O_WAIT_ANY,
	O_CANCEL,
	O_RELEASE,
	O_PROMISE,
	O_RESOLVE,
	O_REJECT,
	O_RESOLVE_LATER,
	O_SEND,
	O_RECV,
	O_CLOSE,
	O_MUTEX,
	O_SEM,
	O_SLEEP,
	O_SUBMIT,
	O_MAP,
	O_COUNT
};

static void spawn_task(struct in *in, int pinned)
{
	struct targ *t;
	br_future *f;
	unsigned worker = byte(in) % 2;
	int i;

	if (ntargs == ALL_MAX)
		return;
	t = &targs[ntargs++];
	memset(t, 0, sizeof(*t));
	t->kind = (int)(byte(in) % T_COUNT);
	t->a = (int)byte(in);
	t->b = (int)byte(in);
	t->c = (int)byte(in);
	if (t->kind == T_AWAIT || t->kind == T_GATHER ||
	    t->kind == T_AS_COMPLETED) {
		int n = t->kind == T_AWAIT ? 1 : (int)(byte(in) % 3) + 1;

		for (int k = 0; k < n; k++) {
			struct fut *d = get_slot(in);

			if (d) {
				d->maybe_cancelled = 1;
				t->deps[t->ndeps++] = br_future_retain(d->f);
			}
		}
	}
	f = pinned ? br_spawn_on(rt, worker, task, t) : br_spawn(rt, task, t);
	i = add(f, K_TASK);
	if (i < 0) {
		/* No room to track it: it must still end with the input. */
		br_cancel(f);
		br_await(f, NULL);
		br_future_release(f);
		return;
	}
	all[i].task = br_future_retain(f);
	if (t->kind == T_RETURN || t->kind == T_SLEEP || t->kind == T_YIELD) {
		all[i].has_value = 1;
		all[i].value = t->a;
	} else if (t->kind == T_FAIL) {
		all[i].has_error = 1;
		all[i].error = -1 - t->a;
	}
	put_slot(in, i);
}

static void run_op(struct in *in)
{
	struct fut *x;
	br_future *fs[3];
	enum op o = (enum op)(byte(in) % O_COUNT);
	int r, n, v;

	switch (o) {
	case O_SPAWN:
		spawn_task(in, 0);
		break;
	case O_SPAWN_ON:
		spawn_task(in, 1);
		break;
	case O_WAIT_FOR:
		x = get_slot(in);
		if (x) {
			x->maybe_cancelled = 1; /* on a timeout */
			br_wait_for(x->f, byte(in) % WAIT_MAX_MS, NULL);
		}
		break;
	case O_WAIT_ANY:
		n = 0;
		for (int k = 0; k < 3; k++)
			if ((x = get_slot(in)))
				fs[n++] = x->f;
		if (n) {
			r = br_wait_any(fs, (size_t)n, byte(in) % WAIT_MAX_MS);
			if (r >= n || (r < 0 && r != -ETIMEDOUT))
				fail("br_wait_any's result", -1, r);
			if (r >= 0 && br_future_state(fs[r]) == BR_PENDING)
				fail("br_wait_any named a pending future", -1,
				     r);
		}
		break;
	case O_CANCEL:
		x = get_slot(in);
		if (x) {
			x->maybe_cancelled = 1;
			r = br_cancel(x->f);
			if (x->kind == K_PROMISE)
				settle(x, r, BR_CANCELLED, -ECANCELED, 0);
		}
		break;
	case O_RELEASE:
		/* Let go early: the future lives on for whoever runs it. */
		x = get_slot(in);
		if (x && x->kind != K_PROMISE) {
			br_future_release(x->f);
			x->f = NULL;
		}
		break;
	case O_PROMISE:
		put_slot(in, add(br_promise_new(), K_PROMISE));
		break;
	case O_RESOLVE:
	case O_REJECT:
		x = get_slot(in);
		if (!x || x->kind != K_PROMISE)
			break;
		v = (int)byte(in);
		if (o == O_REJECT) {
			r = br_promise_reject(x->f, -EIO, "from the fuzzer");
			settle(x, r, BR_FAILED, -EIO, 0);
		} else {
			r = br_promise_resolve(x->f, (void *)(intptr_t)v);
			settle(x, r, BR_DONE, 0, v);
		}
		if (r != 0 && r != BR_EDONE)
			fail("resolve or reject of a promise", -1, r);
		break;
	case O_RESOLVE_LATER:
		x = get_slot(in);
		if (!x || x->kind != K_PROMISE || nthreads == THREADS_MAX)
			break;
		resolves[nthreads] = (struct resolve){
			.p = br_future_retain(x->f),
			.reject = byte(in) & 1,
			.delay_ms = (int)(byte(in) % (SLEEP_MAX_MS + 1)),
			.value = (intptr_t)byte(in),
		};
		if (pthread_create(&threads[nthreads], NULL, resolver,
				   &resolves[nthreads]) != 0) {
			br_future_release(resolves[nthreads].p);
			break;
		}
		nthreads++;
		break;
	case O_SEND:
		v = (int)byte(in);
		br_chan_send_for(chans[byte(in) & 1], &v,
				 byte(in) % WAIT_MAX_MS);
		break;
	case O_RECV:
		br_chan_recv_for(chans[byte(in) & 1], &v,
				 byte(in) % WAIT_MAX_MS);
		break;
	case O_CLOSE:
		br_chan_close(chans[byte(in) & 1]);
		break;
	case O_MUTEX:
		if (mu_held) {
			if (br_mutex_unlock(&mu) != 0)
				fail("unlock of a held mutex", -1, 0);
			mu_held = 0;
		} else {
			mu_held = br_mutex_lock_for(
					  &mu, byte(in) % WAIT_MAX_MS) == 0;
		}
		break;
	case O_SEM:
		if (byte(in) & 1)
			br_sem_post(&sem);
		else
			br_sem_wait_for(&sem, byte(in) % WAIT_MAX_MS);
		break;
	case O_SLEEP:
		br_sleep_ms(byte(in) % (SLEEP_MAX_MS + 1));
		break;
	case O_SUBMIT: {
		enum job j = (enum job)(byte(in) % J_COUNT);
		int i;

		if (jobs >= JOBS_MAX || !get_pool())
			break;
		jobs++;
		i = add(NULL, K_JOB);
		if (i < 0)
			break;
		for (size_t k = 0; k < sizeof(all[i].job_in); k++)
			all[i].job_in[k] = (uint8_t)byte(in);
		all[i].job = j;
		all[i].f = j == J_SLOW ?
				   br_submit_timeout(pool, job_fns[j],
						     all[i].job_in,
						     sizeof(all[i].job_in),
						     JOB_LIMIT_MS) :
				   br_submit(pool, job_fns[j], all[i].job_in,
					     sizeof(all[i].job_in));
		put_slot(in, i);
		break;
	}
	case O_MAP: {
		static const int64_t items[4] = { 1, 2, 3, 4 };

		if (jobs >= JOBS_MAX || !get_pool())
			break;
		jobs++;
		put_slot(in, add(br_map(pool, job_echo, items, sizeof(items[0]),
					4, byte(in) % 3),
				 K_MAP));
		break;
	}
	case O_COUNT:
		break;
	}
}

/* ---- the checks ---- */

static void check(int i)
{
	struct fut *x = &all[i];
	br_state st = br_future_state(x->f);
	int err = br_future_error(x->f);
	void *v = NULL;
	size_t len;
	const void *b;
	int r;

	if (st == BR_PENDING) {
		if (x->kind != K_PROMISE || x->settled != BR_PENDING)
			fail("still pending after the end", i, 0);
		return;
	}
	/* A promise nobody of ours completed: only a cancel we cannot see. */
	if (x->kind == K_PROMISE && x->settled == BR_PENDING &&
	    (st != BR_CANCELLED || !x->maybe_cancelled))
		fail("a promise completed by nobody", i, st);
	r = br_await(x->f, &v);
	if (r != err)
		fail("br_await disagrees with br_future_error", i, r);
	if ((st == BR_DONE) != (err == 0) || (st == BR_FAILED && err >= 0) ||
	    (st == BR_CANCELLED && err != -ECANCELED))
		fail("the state and the error disagree", i, err);
	if (st != BR_DONE && !br_future_message(x->f))
		fail("no message", i, err);
	switch (x->kind) {
	case K_TASK:
		if (st == BR_CANCELLED && !x->maybe_cancelled)
			fail("a task cancelled by nobody", i, err);
		if (x->has_value && st == BR_FAILED)
			fail("a task that returns ended FAILED", i, err);
		if (x->has_error && st == BR_DONE)
			fail("a task that fails ended DONE", i, 0);
		if (st == BR_DONE && x->has_value && (intptr_t)v != x->value)
			fail("a task's value", i, (long)(intptr_t)v);
		if (st == BR_FAILED && x->has_error && err != x->error)
			fail("a task's error", i, err);
		break;
	case K_PROMISE:
		if (x->settled != BR_PENDING &&
		    (st != x->settled || err != x->settled_error ||
		     (st == BR_DONE && (intptr_t)v != x->settled_value)))
			fail("a promise's outcome", i, st);
		break;
	case K_JOB:
		if (st == BR_CANCELLED)
			break;
		switch (x->job) {
		case J_ECHO:
			b = br_future_bytes(x->f, &len);
			if (st != BR_DONE || len != sizeof(x->job_in) ||
			    memcmp(b, x->job_in, len) != 0)
				fail("an echo job's end or bytes", i, err);
			break;
		case J_ABORT:
		case J_KILL:
			if (err != BR_EWORKERDIED)
				fail("a crashing job's end", i, err);
			break;
		case J_SLOW:
			if (err != -ETIMEDOUT)
				fail("a job past its limit", i, err);
			break;
		case J_BIG:
			if (err != -EMSGSIZE)
				fail("a job writing too much", i, err);
			break;
		case J_FAIL:
			if (err != -EDOM)
				fail("a failing job's error", i, err);
			break;
		case J_COUNT:
			break;
		}
		break;
	case K_MAP:
		if (st == BR_DONE) {
			for (size_t k = 0; k < 4; k++) {
				const int64_t *o = br_map_result(x->f, k, &len);

				if (!o || len != sizeof(*o) ||
				    *o != (int64_t)k + 1)
					fail("a map's item", i, (long)k);
			}
		}
		break;
	case K_NONE:
	case K_OTHER:
		break;
	}
}

/* ---- what is left behind ---- */

static int base_fds, base_threads, base_children;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	/* Blocking-pool threads, if anything starts one, go soon after
	 * their last call, so that the thread count settles. */
	br_config cfg = { .workers = 2,
			  .blocking_idle_ms = 20,
			  .flags = BR_CONFIG_QUIET };
	int r;

	/* Before libFuzzer's threads, if any: pools need a zygote. */
	br_zygote_start();
	signal(SIGPIPE, SIG_IGN);
	r = br_runtime_new(&rt, &cfg);
	if (r < 0)
		fail("br_runtime_new", -1, r);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct in in = { data, size };
	struct timespec ms = { 0, 1000000 };
	int fds, thr, kids;
	int64_t t0;

	/* What the process has between inputs. */
	base_fds = census_fds();
	census_fds_note(&base_fdset);
	base_threads = census_threads();
	base_children = census_children(1, NULL);
	if (base_children < 0)
		fail("cannot count this process's children", -1, base_children);
	nall = ntargs = nthreads = jobs = pool_tried = mu_held = 0;
	pool = NULL;
	memset(slot, 0xff, sizeof(slot));
	br_mutex_init(&mu);
	br_sem_init(&sem, byte(&in) % 3);
	if (br_chan_new(&chans[0], sizeof(int), byte(&in) % 3) < 0 ||
	    br_chan_new(&chans[1], sizeof(int), byte(&in) % 3) < 0)
		fail("br_chan_new", -1, 0);
	for (int k = 0; k < OPS_MAX && in.n; k++)
		run_op(&in);

	/* The end: every task is cancelled and awaited (each wait of theirs
	 * is bounded or cancellable), then the pool is freed, which cancels
	 * its jobs. */
	if (mu_held)
		br_mutex_unlock(&mu);
	br_chan_close(chans[0]);
	br_chan_close(chans[1]);
	for (int i = 0; i < nall; i++) {
		if (!all[i].task)
			continue;
		/* Only a task still running can end CANCELLED by this. */
		if (br_future_state(all[i].task) == BR_PENDING)
			all[i].maybe_cancelled = 1;
		br_cancel(all[i].task);
	}
	for (int i = 0; i < nall; i++)
		if (all[i].task)
			br_await(all[i].task, NULL);
	br_pool_free(pool);
	for (int k = 0; k < nthreads; k++)
		pthread_join(threads[k], NULL);
	/* The helper threads' resolves are settled in the order they ran:
	 * only a first success counts, and the threads are done now. */
	for (int k = 0; k < nthreads; k++) {
		struct resolve *rs = &resolves[k];

		for (int i = 0; i < nall; i++)
			if (all[i].f == rs->p && all[i].kind == K_PROMISE &&
			    all[i].settled == BR_PENDING && rs->first == 0) {
				all[i].settled = rs->reject ? BR_FAILED :
							      BR_DONE;
				all[i].settled_error = rs->reject ? -EIO : 0;
				all[i].settled_value = rs->value;
			}
		br_future_release(rs->p);
	}
	for (int i = 0; i < nall; i++)
		if (all[i].f)
			check(i);
	for (int i = 0; i < nall; i++) {
		br_future_release(all[i].f);
		br_future_release(all[i].task);
	}
	for (int k = 0; k < ntargs; k++)
		for (int d = 0; d < targs[k].ndeps; d++)
			br_future_release(targs[k].deps[d]);
	br_chan_free(chans[0]);
	br_chan_free(chans[1]);

	/* Exited threads leave procfs a moment after their join. Fewer
	 * than at the start is no leak: a blocking-pool thread of an
	 * earlier input may have ended meanwhile. */
	t0 = br_now_ns();
	for (;;) {
		fds = census_fds();
		thr = census_threads();
		kids = census_children(1, NULL);
		if ((fds <= base_fds && thr <= base_threads &&
		     kids <= base_children) ||
		    br_now_ns() - t0 > SETTLE_MS * INT64_C(1000000))
			break;
		nanosleep(&ms, NULL);
	}
	if (fds > base_fds) {
		census_fds_say(&base_fdset, stderr, "fuzz_api: ");
		fail("descriptors left", -1, fds - base_fds);
	}
	if (thr > base_threads)
		fail("threads left", -1, thr - base_threads);
	if (kids > base_children)
		fail("children left", -1, kids - base_children);
	return 0;
}
