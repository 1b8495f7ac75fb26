/* SPDX-License-Identifier: MIT */
/*
 * pool.c - the process pool's parent side: br_pool_new/free, br_submit,
 * br_map, br_imap, and the tasks that collect results, watch workers and
 * enforce time limits.
 *
 * Design
 *   Shared memory (pool_shm.h) is one memfd made here and handed to each
 *   worker by the zygote (zygote.c), so every worker, replacements
 *   included, maps the same rings. A job is a struct pjob whose first
 *   member is its future (kind BR__F_JOB, so br_cancel and the last
 *   release come here). Jobs get an id (table index and generation), the
 *   only thing that crosses into shared memory: a worker can write
 *   nonsense there, and an id that names no pending job is ignored.
 *
 *   Submitting copies the input into the next ring slot (or the arena,
 *   for inputs over a slot) and publishes it; when the ring is full, or
 *   jobs already wait in the parent, the job joins a FIFO overflow list
 *   (with a private copy of a br_submit input; br_map chunks point into
 *   the caller's items) that the collector moves into the ring as slots
 *   free up. A worker is woken only if one sleeps.
 *
 *   Tasks of the runtime, one set per pool:
 *     - collector: drains every worker's result ring, completes futures,
 *       refills the ring from the overflow list, then sleeps in a read of
 *       the eventfd (through the loop) after raising collector_waiting.
 *     - one watcher per worker: br_poll on the worker's pidfd. When the
 *       worker ends it reaps it (waitid P_PIDFD: workers are our children,
 *       see zygote.c), drains its results, and settles the job its slot
 *       still names: -ETIMEDOUT or CANCELLED if we killed it for that job,
 *       back to the queue if we killed it for a job it had already
 *       finished, BR_EWORKERDIED naming the signal otherwise. Then it asks
 *       the zygote for a replacement, on the blocking pool (a fork takes a
 *       millisecond; loops never wait for it).
 *     - timer (only while jobs with a time limit are pending): every
 *       eighth of the smallest limit (1 to 100 ms), kills workers whose
 *       running job is past its deadline.
 *
 *   br_pool_free: closing is set under the lock, every pending job ends
 *   CANCELLED, every worker is killed (pidfd_send_signal) and reaped by
 *   the caller, forks in flight are waited for (they kill and reap what
 *   they made once they see closing), and the tasks are cancelled. The
 *   struct itself is reference counted (the caller, each task, each job)
 *   so a late br_cancel or a task finishing never touches freed memory.
 *
 * Concurrency
 *   - lock (pthread mutex, short sections): the job table, the overflow
 *     list, the arena map, ring production, the workers' pids and kill
 *     reasons, closing.
 *   - drain (pthread mutex): one thread drains a given result ring at a
 *     time (the collector, or a watcher after a death).
 *   - Futures are completed outside lock (callbacks may submit).
 *
 * Memory ordering
 *   As pool_shm.h says for the rings and doorbells. refs: acq_rel.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
#include "future.h"
#include "pool.h"
#include "pool_shm.h"
#include "stats.h"
#include "task.h"
#include "waitq.h"
#include "worker.h"
#include "zygote.h"

#define MAX_WORKERS 256
#define MAX_INIT (64u << 10)
#define DEFAULT_PAYLOAD ((size_t)64 << 20)
#define MAX_PAYLOAD ((size_t)1 << 30)
#define GRANULE ((size_t)64 << 10) /* arena allocation unit */
#define PUNCH_MIN ((size_t)1 << 20)
#define INIT_FAILS_MAX 3
#define FORK_TRIES 10 /* 100 ms apart */

enum {
	JOB_SUBMIT,
	JOB_CHUNK,
	JOB_MAP
};
enum {
	W_NEW,
	W_OVERFLOW,
	W_RING,
	W_DONE
};
enum {
	KILL_NONE,
	KILL_TIMEOUT,
	KILL_CANCEL
};

struct pmap;

struct pjob {
	struct br_future fut; /* first: the job's future */
	uint8_t type;	      /* JOB_SUBMIT or JOB_CHUNK */
	struct br_pool *pool; /* same place as in struct pmap */
	uint8_t where;	      /* W_*, under lock */
	uint8_t timed;	      /* counted in pool->timed */
	uint64_t id;
	br_job_fn fn;
	const char *in; /* input: the caller's items, or own */
	void *own;	/* a private copy of a submit's input */
	size_t len;
	uint32_t nitems;
	int64_t timeout_ns;
	uint64_t pos;	/* W_RING: its slot */
	size_t arena_g; /* W_RING, big: first granule, else SIZE_MAX */
	size_t arena_n; /* granules */
	struct pjob *next, *prev; /* W_OVERFLOW */
	struct pmap *map;	  /* JOB_CHUNK of a br_map */
	size_t first;		  /* JOB_CHUNK: index of its first item */
};

struct pmap {
	struct br_future fut; /* first: the map's future (kind JOB) */
	uint8_t type;	      /* JOB_MAP */
	struct br_pool *pool;
	size_t n, nchunks;
	struct pjob **chunks;
	_Atomic size_t left;
};

struct pworker {
	pid_t pid; /* 0 while being replaced */
	int pidfd; /* -1 while being replaced */
	int kill;  /* KILL_*: why we killed it, under lock */
	uint64_t kill_id;
	unsigned init_fails;
	int disabled; /* its initializer failed INIT_FAILS_MAX times */
	br_future *watch;
	struct br_pool *pool;
	unsigned idx;
};

struct br_pool {
	uint32_t magic;
	_Atomic uint32_t refs;
	br_runtime *rt;
	struct br__pool_shm *shm;
	size_t shm_size;
	int memfd, efd;
	unsigned nworkers;
	int64_t timeout_ns;
	size_t max_payload;
	struct pworker *w;
	br_future *collector, *timer;
	pthread_mutex_t lock, drain;
	pthread_cond_t quiet; /* inflight reached 0 */
	unsigned inflight;    /* forks and reaps under way */
	int closing;
	const char *broken; /* no worker can ever run: why */
	/* job table: id = gen << 32 | index */
	struct pjob **tab;
	uint32_t tabcap, tabn, *freeidx, nfree;
	uint32_t gen;
	/* overflow FIFO */
	struct pjob *ov_head, *ov_tail;
	_Atomic size_t ov_n;
	/* arena: one byte per granule, 1 = used */
	unsigned char *amap;
	size_t agranules;
	/* time limits */
	_Atomic int64_t timed; /* pending jobs with a limit */
	_Atomic int64_t min_timeout_ns;
	br_event timed_ev;
};

static void pool_put(struct br_pool *p);
static void fail_job(struct pjob *j, br_state st, int err, const char *msg);

/* ---------------------------------------------------------------- */
/* Small helpers                                                     */
/* ---------------------------------------------------------------- */

static void describe_death(char *buf, size_t n, pid_t pid, int status)
{
	if (status < 0)
		snprintf(buf, n,
			 "worker process %d died (its exit status was reaped "
			 "elsewhere)",
			 (int)pid);
	else if (WIFSIGNALED(status))
		snprintf(buf, n,
			 "worker process %d was killed by signal %d (%s)",
			 (int)pid, WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	else
		snprintf(buf, n, "worker process %d exited with status %d",
			 (int)pid, WEXITSTATUS(status));
}

static void wake_workers(struct br_pool *p, int n)
{
	struct br__pool_shm *s = p->shm;

	/* A seq_cst read-modify-write orders the slot's publication before
	 * the read of sleepers (pool_shm.h, Doorbells). */
	if (atomic_fetch_add_explicit(&s->sleepers, 0, memory_order_seq_cst)) {
		atomic_fetch_add_explicit(&s->job_bell, 1,
					  memory_order_release);
		br__futex_wake_shared(&s->job_bell, n);
	}
}

static struct br_pool *pool_get(struct br_pool *p)
{
	atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
	return p;
}

/* ---------------------------------------------------------------- */
/* Job table, arena, overflow (under lock)                           */
/* ---------------------------------------------------------------- */

static int tab_insert(struct br_pool *p, struct pjob *j)
{
	uint32_t i;

	if (p->nfree) {
		i = p->freeidx[--p->nfree];
	} else {
		if (p->tabn == p->tabcap) {
			uint32_t cap = p->tabcap ? p->tabcap * 2 : 256;
			struct pjob **t = realloc(p->tab, cap * sizeof(*t));
			uint32_t *f;

			if (!t)
				return -ENOMEM;
			p->tab = t;
			f = realloc(p->freeidx, cap * sizeof(*f));
			if (!f)
				return -ENOMEM;
			p->freeidx = f;
			p->tabcap = cap;
		}
		i = p->tabn++;
	}
	p->gen++;
	j->id = ((uint64_t)(p->gen | 1u) << 32) | i;
	p->tab[i] = j;
	return 0;
}

static struct pjob *tab_find(struct br_pool *p, uint64_t id)
{
	uint32_t i = (uint32_t)id;

	if (i >= p->tabn || !p->tab[i] || p->tab[i]->id != id)
		return NULL;
	return p->tab[i];
}

static void tab_remove(struct br_pool *p, struct pjob *j)
{
	uint32_t i = (uint32_t)j->id;

	p->tab[i] = NULL;
	p->freeidx[p->nfree++] = i;
}

static size_t arena_alloc(struct br_pool *p, size_t len)
{
	size_t need = (len + GRANULE - 1) / GRANULE, run = 0;

	for (size_t g = 0; g < p->agranules; g++) {
		run = p->amap[g] ? 0 : run + 1;
		if (run == need) {
			size_t first = g + 1 - need;

			memset(p->amap + first, 1, need);
			return first;
		}
	}
	return SIZE_MAX;
}

static void arena_free(struct br_pool *p, struct pjob *j)
{
	if (j->arena_g == SIZE_MAX)
		return;
	memset(p->amap + j->arena_g, 0, j->arena_n);
	if (j->arena_n * GRANULE >= PUNCH_MIN)
		fallocate(p->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			  (off_t)(p->shm->arena_off + j->arena_g * GRANULE),
			  (off_t)(j->arena_n * GRANULE));
	j->arena_g = SIZE_MAX;
}

/* Publish j in the next ring slot. 0, or -EAGAIN if there is no room. */
static int ring_push(struct br_pool *p, struct pjob *j)
{
	struct br__pool_shm *s = p->shm;
	uint64_t pos = atomic_load_explicit(&s->tail, memory_order_relaxed);
	struct br__pool_slot *sl = br__pool_slot(s, pos);

	if (atomic_load_explicit(&sl->state, memory_order_acquire) !=
	    BR__JS(pos, BR__JS_EMPTY, 0))
		return -EAGAIN;
	sl->flags = 0;
	if (j->len > BR__POOL_SLOT_ROOM) {
		size_t g = arena_alloc(p, j->len);

		if (g == SIZE_MAX)
			return -EAGAIN;
		j->arena_g = g;
		j->arena_n = (j->len + GRANULE - 1) / GRANULE;
		sl->arena_off = s->arena_off + g * GRANULE;
		sl->flags = BR__JOB_BIG;
		memcpy((char *)s + sl->arena_off, j->in, j->len);
	} else if (j->len) {
		memcpy(sl->data, j->in, j->len);
	}
	sl->id = j->id;
	sl->fn = (uint64_t)(uintptr_t)j->fn;
	sl->len = j->len;
	sl->nitems = j->nitems;
	sl->timeout_ns = j->timeout_ns;
	atomic_store_explicit(&s->tail, pos + 1, memory_order_relaxed);
	atomic_store_explicit(&sl->state, BR__JS(pos, BR__JS_FULL, 0),
			      memory_order_release);
	j->where = W_RING;
	j->pos = pos;
	free(j->own);
	j->own = NULL;
	return 0;
}

static void ov_push(struct br_pool *p, struct pjob *j)
{
	j->where = W_OVERFLOW;
	j->next = NULL;
	j->prev = p->ov_tail;
	if (p->ov_tail)
		p->ov_tail->next = j;
	else
		p->ov_head = j;
	p->ov_tail = j;
	atomic_fetch_add_explicit(&p->ov_n, 1, memory_order_relaxed);
}

static void ov_push_front(struct br_pool *p, struct pjob *j)
{
	j->where = W_OVERFLOW;
	j->prev = NULL;
	j->next = p->ov_head;
	if (p->ov_head)
		p->ov_head->prev = j;
	else
		p->ov_tail = j;
	p->ov_head = j;
	atomic_fetch_add_explicit(&p->ov_n, 1, memory_order_relaxed);
}

/* Take j out of the overflow list, wherever it is: O(1), since cancels
 * may pick any of a million queued jobs. */
static void ov_unlink(struct br_pool *p, struct pjob *j)
{
	if (j->prev)
		j->prev->next = j->next;
	else
		p->ov_head = j->next;
	if (j->next)
		j->next->prev = j->prev;
	else
		p->ov_tail = j->prev;
	j->next = j->prev = NULL;
	atomic_fetch_sub_explicit(&p->ov_n, 1, memory_order_relaxed);
}

/* Move overflow jobs into the ring while it has room. Returns how many. */
static int refill(struct br_pool *p)
{
	int moved = 0;

	while (p->ov_head) {
		struct pjob *j = p->ov_head;

		ov_unlink(p, j);
		if (ring_push(p, j) < 0) {
			ov_push_front(p, j);
			break;
		}
		moved++;
	}
	return moved;
}

/* ---------------------------------------------------------------- */
/* Completion                                                        */
/* ---------------------------------------------------------------- */

static void job_settled(struct pjob *j)
{
	struct br_pool *p = j->pool;

	if (j->timed)
		atomic_fetch_sub_explicit(&p->timed, 1, memory_order_relaxed);
}

static void map_chunk_done(struct pmap *m);
static void settle_bytes(struct pjob *j, const char *data, size_t len);
static int next_item(const char *buf, size_t len, size_t *pos,
		     struct br__pool_item *it, const char **data);

/* Complete j from its encoded items at data (len bytes), then drop the
 * table's reference. Context: the party that claimed j. */
static void complete_job(struct pjob *j, const char *data, size_t len)
{
	settle_bytes(j, data, len);
	br_future_release(&j->fut);
}

static void settle_bytes(struct pjob *j, const char *data, size_t len)
{
	job_settled(j);
	if (j->type == JOB_SUBMIT) {
		struct br__pool_item it;
		const char *out;
		size_t pos = 0;
		char msg[1024];
		void *b;

		if (!next_item(data, len, &pos, &it, &out)) {
			br__future_complete(&j->fut, BR_FAILED, NULL, NULL, 0,
					    -EMSGSIZE,
					    "the job's output is over the "
					    "pool's max_payload");
			return;
		}
		if (it.error < 0) {
			snprintf(msg, sizeof(msg), "%.*s",
				 (int)(it.len < 1023 ? it.len : 1023), out);
			br__future_complete(&j->fut, BR_FAILED, NULL, NULL, 0,
					    it.error, msg);
			return;
		}
		b = malloc(it.len ? it.len : 1);
		if (!b) {
			br__future_complete(&j->fut, BR_FAILED, NULL, NULL, 0,
					    -ENOMEM, "out of memory");
			return;
		}
		memcpy(b, out, it.len);
		br__future_complete(&j->fut, BR_DONE, NULL, b, it.len, 0, NULL);
		return;
	}
	/* A chunk: its raw encoded items become its bytes. */
	{
		void *b = malloc(len ? len : 1);
		struct pmap *m = j->map;

		if (!b)
			br__future_complete(&j->fut, BR_FAILED, NULL, NULL, 0,
					    -ENOMEM, "out of memory");
		else {
			memcpy(b, data, len);
			br__future_complete(&j->fut, BR_DONE, NULL, b, len, 0,
					    NULL);
		}
		if (m)
			map_chunk_done(m);
	}
}

/* Fail (or cancel) j, then drop the table's reference. Context: the
 * party that claimed j. */
static void fail_job(struct pjob *j, br_state st, int err, const char *msg)
{
	struct pmap *m = j->map;

	job_settled(j);
	br__future_complete(&j->fut, st, NULL, NULL, 0, err, msg);
	if (m)
		map_chunk_done(m);
	br_future_release(&j->fut); /* the table's */
}

/* Take j out of the table (and the arena) so nothing else settles it.
 * Returns 1 if the caller now owns its completion. Under lock. */
static int claim_pending(struct br_pool *p, struct pjob *j)
{
	if (!j || j->where == W_DONE)
		return 0;
	if (j->where == W_OVERFLOW)
		ov_unlink(p, j);
	tab_remove(p, j);
	arena_free(p, j);
	j->where = W_DONE;
	return 1;
}

/* Drain worker w's result ring; completes what it finds. One hold of
 * the lock claims the whole batch, and head moves once per batch. */
static int drain(struct br_pool *p, unsigned w)
{
	struct br__pool_shm *s = p->shm;
	struct br__pool_wstate *ws = br__pool_ws(s, w);
	struct pjob *got[BR__POOL_RESULTS];
	int mine[BR__POOL_RESULTS];
	uint64_t head, tail;
	unsigned n;

	pthread_mutex_lock(&p->drain);
	head = atomic_load_explicit(&ws->res_head, memory_order_relaxed);
	tail = atomic_load_explicit(&ws->res_tail, memory_order_acquire);
	if (tail - head > BR__POOL_RESULTS)
		tail = head + BR__POOL_RESULTS; /* a worker wrote nonsense */
	n = (unsigned)(tail - head);
	pthread_mutex_lock(&p->lock);
	for (unsigned i = 0; i < n; i++) {
		struct br__pool_result *r = br__pool_res(s, w, head + i);

		got[i] = tab_find(p, r->id);
		mine[i] = claim_pending(p, got[i]);
		if (mine[i] && got[i]->nitems != r->nitems)
			mine[i] = 2; /* not what we sent: treat as a death */
	}
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < n; i++) {
		struct br__pool_result *r = br__pool_res(s, w, head + i);
		const char *data = r->data;
		size_t len = r->len, cap = BR__POOL_RESULT_ROOM;

		if (r->flags & BR__RES_BIG) {
			data = br__pool_big(s, w);
			cap = s->big_size;
		}
		if (len > cap)
			len = cap;
		if (mine[i]) {
			br__trace_proc_job(p->rt, r->pid, r->id, r->start_ns,
					   r->end_ns);
			br__stats_proc_job(p->rt);
		}
		if (mine[i] == 1)
			complete_job(got[i], data, len);
		else if (mine[i] == 2)
			fail_job(got[i], BR_FAILED, BR_EWORKERDIED,
				 "the worker returned a malformed result");
		if (r->flags & BR__RES_BIG) {
			if (len >= PUNCH_MIN)
				fallocate(p->memfd,
					  FALLOC_FL_PUNCH_HOLE |
						  FALLOC_FL_KEEP_SIZE,
					  (off_t)(s->big_off + w * s->big_size),
					  (off_t)len);
			atomic_store_explicit(&ws->big_busy, 0,
					      memory_order_release);
			br__futex_wake_shared(&ws->big_busy, 1);
		}
	}
	if (n)
		atomic_store_explicit(&ws->res_head, tail,
				      memory_order_seq_cst);
	pthread_mutex_unlock(&p->drain);
	if (atomic_load_explicit(&ws->res_wait, memory_order_seq_cst)) {
		atomic_store_explicit(&ws->res_wait, 0, memory_order_relaxed);
		atomic_fetch_add_explicit(&ws->res_bell, 1,
					  memory_order_release);
		br__futex_wake_shared(&ws->res_bell, 1);
	}
	return (int)n;
}

static int results_waiting(struct br_pool *p)
{
	for (unsigned w = 0; w < p->nworkers; w++) {
		struct br__pool_wstate *ws = br__pool_ws(p->shm, w);

		if (atomic_load_explicit(&ws->res_tail, memory_order_seq_cst) !=
		    atomic_load_explicit(&ws->res_head, memory_order_relaxed))
			return 1;
	}
	return 0;
}

/* Move what overflow holds into the ring and wake workers for it; force:
 * look under the lock even if the unlocked count says there is nothing.
 * Returns how many jobs moved. */
static int refill_and_wake(struct br_pool *p, int force)
{
	int moved = 0;

	if (!force && !atomic_load_explicit(&p->ov_n, memory_order_relaxed))
		return 0;
	pthread_mutex_lock(&p->lock);
	if (!p->closing)
		moved = refill(p);
	pthread_mutex_unlock(&p->lock);
	if (moved)
		wake_workers(p, moved < (int)p->nworkers ? moved :
							   (int)p->nworkers);
	return moved;
}

static void *collector_task(void *arg)
{
	struct br_pool *p = arg;
	struct br__pool_shm *s = p->shm;

	for (;;) {
		uint64_t v;
		int n = 0;

		for (unsigned w = 0; w < p->nworkers; w++)
			n += drain(p, w);
		n += refill_and_wake(p, 0);
		if (n)
			continue;
		/* A worker frees a ring slot after pushing its result, so
		 * a slot may free up after the drain above: the check after
		 * raising the flag covers results and free slots alike. */
		atomic_store_explicit(&s->collector_waiting, 1,
				      memory_order_seq_cst);
		if (results_waiting(p) || refill_and_wake(p, 1)) {
			atomic_store_explicit(&s->collector_waiting, 0,
					      memory_order_relaxed);
			continue;
		}
		if (br_poll(p->efd, POLLIN) < 0)
			break; /* cancelled: the pool or the runtime closes */
		(void)!read(p->efd, &v, sizeof(v));
	}
	pool_put(p);
	return NULL;
}

/* ---------------------------------------------------------------- */
/* Workers: start, watch, replace                                    */
/* ---------------------------------------------------------------- */

static void reset_wstate(struct br_pool *p, unsigned w)
{
	struct br__pool_wstate *ws = br__pool_ws(p->shm, w);

	pthread_mutex_lock(&p->drain);
	atomic_store_explicit(&ws->res_head, 0, memory_order_relaxed);
	atomic_store_explicit(&ws->res_tail, 0, memory_order_relaxed);
	atomic_store_explicit(&ws->res_wait, 0, memory_order_relaxed);
	atomic_store_explicit(&ws->big_busy, 0, memory_order_relaxed);
	atomic_store_explicit(&ws->cur_id, 0, memory_order_relaxed);
	atomic_store_explicit(&ws->deadline, 0, memory_order_relaxed);
	atomic_store_explicit(&ws->init_err, 0, memory_order_relaxed);
	atomic_store_explicit(&ws->state, BR__PW_STARTING,
			      memory_order_release);
	pthread_mutex_unlock(&p->drain);
}

/* Fork worker w through the zygote (blocking). 0 or a negative errno.
 * If the pool closed meanwhile, the new worker is killed and reaped. */
static int fork_worker(struct br_pool *p, unsigned w)
{
	pid_t pid;
	int pidfd, r = 0;

	reset_wstate(p, w);
	pid = br__zygote_fork(p->memfd, p->efd, w);
	if (pid < 0)
		return pid;
	pidfd = br__child_pidfd(pid);
	if (pidfd < 0) {
		r = -errno;
		br__child_reap(pid, -1, 1);
		return r;
	}
	pthread_mutex_lock(&p->lock);
	/* Nobody would watch it: the pool, or its runtime, is closing. */
	if (p->closing ||
	    atomic_load_explicit(&p->rt->closing, memory_order_seq_cst)) {
		pthread_mutex_unlock(&p->lock);
		br__child_reap(pid, pidfd, 1);
		close(pidfd);
		return BR_ECLOSED;
	}
	p->w[w].pid = pid;
	p->w[w].pidfd = pidfd;
	p->w[w].kill = KILL_NONE;
	pthread_mutex_unlock(&p->lock);
	return 0;
}

static void inflight_done(struct br_pool *p)
{
	pthread_mutex_lock(&p->lock);
	if (--p->inflight == 0)
		pthread_cond_broadcast(&p->quiet);
	pthread_mutex_unlock(&p->lock);
}

static void *fork_call(void *arg)
{
	struct pworker *pw = arg;
	struct br_pool *p = pw->pool;
	int r = fork_worker(p, pw->idx);

	inflight_done(p);
	return (void *)(intptr_t)r;
}

/* Give a job back to the queue after its worker died for another job's
 * sake; a submit's input is copied back out of shared memory first.
 * Returns 0, or -ENOMEM. Under lock. */
static int requeue(struct br_pool *p, struct pjob *j,
		   const struct br__pool_slot *sl)
{
	if (j->type == JOB_SUBMIT && j->len) {
		const char *src = (sl->flags & BR__JOB_BIG) ?
					  (const char *)p->shm + sl->arena_off :
					  sl->data;

		j->own = malloc(j->len);
		if (!j->own)
			return -ENOMEM;
		memcpy(j->own, src, j->len);
		j->in = j->own;
	}
	arena_free(p, j);
	ov_push_front(p, j);
	return 0;
}

/* Settle the job a dead worker w held, if any: drain what it finished,
 * then look for the slot it still claims. */
static void settle_dead(struct br_pool *p, unsigned w, const char *why)
{
	struct br__pool_shm *s = p->shm;
	struct pworker *pw = &p->w[w];
	int requeued = 0;

	drain(p, w);
	for (uint64_t i = 0; i < BR__POOL_JOBS; i++) {
		struct br__pool_slot *sl = br__pool_slot(s, i);
		uint64_t st =
			atomic_load_explicit(&sl->state, memory_order_acquire);
		struct pjob *j;
		int mine = 0, kill = KILL_NONE;

		if (BR__JS_TAG(st) != BR__JS_CLAIMED || BR__JS_OWNER(st) != w)
			continue;
		pthread_mutex_lock(&p->lock);
		j = tab_find(p, sl->id);
		if (j && j->where == W_RING && j->pos == BR__JS_POS(st)) {
			kill = pw->kill_id == j->id ? pw->kill : KILL_NONE;
			if (pw->kill != KILL_NONE && kill == KILL_NONE &&
			    !p->closing && requeue(p, j, sl) == 0)
				requeued = 1; /* killed for a job it finished */
			else
				mine = claim_pending(p, j);
		}
		pthread_mutex_unlock(&p->lock);
		br__pool_release(s, BR__JS_POS(st));
		if (!mine)
			continue;
		br__stats_proc_job(p->rt);
		if (kill == KILL_TIMEOUT)
			fail_job(j, BR_FAILED, -ETIMEDOUT,
				 "the job ran past its time limit; its worker "
				 "was killed");
		else if (kill == KILL_CANCEL)
			fail_job(j, BR_CANCELLED, -ECANCELED,
				 "cancelled: its worker was killed");
		else
			fail_job(j, BR_FAILED, BR_EWORKERDIED, why);
	}
	if (requeued)
		refill_and_wake(p, 0);
}

/* Every worker's initializer keeps failing: nothing queued can run. */
static void fail_all(struct br_pool *p, br_state st, int err, const char *msg)
{
	struct pjob **v;
	size_t n = 0;

	pthread_mutex_lock(&p->lock);
	v = calloc(p->tabn ? p->tabn : 1, sizeof(*v));
	for (uint32_t i = 0; v && i < p->tabn; i++) {
		struct pjob *j = p->tab[i];

		if (j && claim_pending(p, j))
			v[n++] = j;
	}
	pthread_mutex_unlock(&p->lock);
	for (size_t i = 0; i < n; i++)
		fail_job(v[i], st, err, msg);
	free(v);
}

static int all_disabled(struct br_pool *p)
{
	for (unsigned w = 0; w < p->nworkers; w++)
		if (!p->w[w].disabled)
			return 0;
	return 1;
}

/* Replace worker pw through the blocking pool; 0, or < 0 to give up (the
 * pool or the runtime is closing). */
static int replace(struct br_pool *p, struct pworker *pw)
{
	int tries = 0;

	for (;;) {
		void *v = NULL;
		br_future *f;
		int r;

		pthread_mutex_lock(&p->lock);
		if (p->closing) {
			pthread_mutex_unlock(&p->lock);
			return BR_ECLOSED;
		}
		p->inflight++;
		pthread_mutex_unlock(&p->lock);
		f = br_spawn_blocking(p->rt, fork_call, pw);
		if (br_future_state(f) == BR_FAILED) {
			inflight_done(p); /* it never ran */
			br_future_release(f);
			return BR_ECLOSED;
		}
		r = br_await(f, &v);
		br_future_release(f);
		if (r < 0)
			return r; /* cancelled: fork_call cleans up */
		if ((intptr_t)v == 0)
			return 0;
		if (++tries >= FORK_TRIES)
			return (int)(intptr_t)v; /* the zygote is gone */
		if (br_sleep_ms(100) < 0)
			return -ECANCELED;
	}
}

/* Worker pw can never be started again. If no worker can, fail what
 * waits and what comes: nothing would ever run it. */
static void disable(struct br_pool *p, struct pworker *pw, const char *why)
{
	int all;

	pthread_mutex_lock(&p->lock);
	pw->disabled = 1;
	all = all_disabled(p);
	if (all)
		p->broken = why;
	pthread_mutex_unlock(&p->lock);
	if (all)
		fail_all(p, BR_FAILED, BR_EWORKERDIED, why);
}

static void *watch_task(void *arg)
{
	struct pworker *pw = arg;
	struct br_pool *p = pw->pool;
	unsigned w = pw->idx;

	for (;;) {
		char why[160];
		int r, status, pidfd;
		pid_t pid;
		uint32_t state;

		pthread_mutex_lock(&p->lock);
		pidfd = pw->pidfd;
		pthread_mutex_unlock(&p->lock);
		if (pidfd < 0)
			break;
		r = br_poll(pidfd, POLLIN);
		pthread_mutex_lock(&p->lock);
		if (p->closing) {
			pthread_mutex_unlock(&p->lock);
			break; /* br_pool_free kills and reaps */
		}
		if (r < 0)
			br__child_kill(pw->pid, pidfd); /* the runtime closes */
		pid = pw->pid;
		pw->pid = 0;
		pw->pidfd = -1;
		p->inflight++; /* br_pool_free waits for this reap */
		pthread_mutex_unlock(&p->lock);
		status = br__child_reap(pid, pidfd, 0);
		close(pidfd);
		inflight_done(p);
		state = atomic_load_explicit(&br__pool_ws(p->shm, w)->state,
					     memory_order_acquire);
		describe_death(why, sizeof(why), pid, status);
		settle_dead(p, w, why);
		if (r < 0)
			break;
		if (state == BR__PW_INIT_FAILED) {
			if (++pw->init_fails >= INIT_FAILS_MAX) {
				disable(p, pw,
					"every worker's initializer failed");
				break;
			}
			if (br_sleep_ms(100) < 0)
				break;
		} else {
			pw->init_fails = 0;
		}
		r = replace(p, pw);
		if (r < 0) {
			if (r != -ECANCELED && r != BR_ECLOSED)
				disable(p, pw,
					"no worker can be started: the zygote "
					"is gone");
			break;
		}
	}
	pool_put(p);
	return NULL;
}

/* ---------------------------------------------------------------- */
/* Time limits                                                       */
/* ---------------------------------------------------------------- */

static void *timer_task(void *arg)
{
	struct br_pool *p = arg;

	for (;;) {
		int64_t iv, now;

		if (!atomic_load_explicit(&p->timed, memory_order_acquire)) {
			br_event_clear(&p->timed_ev);
			if (!atomic_load_explicit(&p->timed,
						  memory_order_seq_cst) &&
			    br_event_wait(&p->timed_ev) < 0)
				break;
			continue;
		}
		iv = atomic_load_explicit(&p->min_timeout_ns,
					  memory_order_relaxed) /
		     8;
		if (iv < 1000000)
			iv = 1000000;
		if (iv > 100000000)
			iv = 100000000;
		if (br_sleep_ns(iv) < 0)
			break;
		now = br_now_ns();
		pthread_mutex_lock(&p->lock);
		for (unsigned w = 0; w < p->nworkers && !p->closing; w++) {
			struct br__pool_wstate *ws = br__pool_ws(p->shm, w);
			int64_t d = atomic_load_explicit(&ws->deadline,
							 memory_order_acquire);
			uint64_t id = atomic_load_explicit(
				&ws->cur_id, memory_order_relaxed);

			if (d && now >= d && p->w[w].kill == KILL_NONE &&
			    p->w[w].pidfd >= 0) {
				p->w[w].kill = KILL_TIMEOUT;
				p->w[w].kill_id = id;
				br__child_kill(p->w[w].pid, p->w[w].pidfd);
			}
		}
		pthread_mutex_unlock(&p->lock);
	}
	pool_put(p);
	return NULL;
}

/* ---------------------------------------------------------------- */
/* Cancel and free (future.c calls these for BR__F_JOB)              */
/* ---------------------------------------------------------------- */

static int cancel_one(struct pjob *j)
{
	struct br_pool *p = j->pool;
	struct br__pool_shm *s = p->shm;
	int mine = 0, killed = 0;

	pthread_mutex_lock(&p->lock);
	if (j->where == W_OVERFLOW || j->where == W_NEW) {
		mine = claim_pending(p, j);
	} else if (j->where == W_RING && s) {
		struct br__pool_slot *sl = br__pool_slot(s, j->pos);
		uint64_t st = BR__JS(j->pos, BR__JS_FULL, 0);

		if (atomic_compare_exchange_strong_explicit(
			    &sl->state, &st,
			    BR__JS(j->pos, BR__JS_CLAIMED,
				   BR__POOL_OWNER_PARENT),
			    memory_order_acq_rel, memory_order_acquire)) {
			uint64_t h = j->pos;

			atomic_compare_exchange_strong_explicit(
				&s->head, &h, h + 1, memory_order_release,
				memory_order_relaxed);
			mine = claim_pending(p, j);
			br__pool_release(s, j->pos);
		} else if (BR__JS_TAG(st) == BR__JS_CLAIMED &&
			   BR__JS_POS(st) == j->pos &&
			   BR__JS_OWNER(st) < p->nworkers) {
			struct pworker *pw = &p->w[BR__JS_OWNER(st)];

			if (pw->kill == KILL_NONE && pw->pidfd >= 0) {
				pw->kill = KILL_CANCEL;
				pw->kill_id = j->id;
				br__child_kill(pw->pid, pw->pidfd);
				killed = 1;
			}
		}
	}
	pthread_mutex_unlock(&p->lock);
	if (mine) {
		fail_job(j, BR_CANCELLED, -ECANCELED, "cancelled");
		refill_and_wake(p, 0);
		return 0;
	}
	return killed ? 0 : BR_EDONE;
}

int br__job_cancel(struct br_future *f)
{
	struct pjob *j = (struct pjob *)f;

	if (j->type == JOB_MAP) {
		struct pmap *m = (struct pmap *)f;

		for (size_t i = 0; i < m->nchunks; i++)
			if (br__future_state(&m->chunks[i]->fut) == BR_PENDING)
				cancel_one(m->chunks[i]);
		return 0;
	}
	return cancel_one(j);
}

void br__job_free(struct br_future *f)
{
	struct pjob *j = (struct pjob *)f;
	struct br_pool *p = j->pool;

	if (j->type == JOB_MAP) {
		struct pmap *m = (struct pmap *)f;

		for (size_t i = 0; i < m->nchunks; i++)
			br_future_release(&m->chunks[i]->fut);
		free(m->chunks);
	} else {
		free(j->own);
	}
	br__future_destroy(f);
	free(f);
	pool_put(p);
}

/* ---------------------------------------------------------------- */
/* Submitting                                                        */
/* ---------------------------------------------------------------- */

static int pool_check(struct br_pool *p)
{
	if (!p)
		return -EINVAL;
	if (p->magic != BR__MAGIC_POOL)
		return BR_EBADOBJ;
	return 0;
}

static struct pjob *job_new(struct br_pool *p, uint8_t type, br_job_fn fn,
			    const void *in, size_t len, uint32_t nitems,
			    int64_t timeout_ns)
{
	struct pjob *j = calloc(1, sizeof(*j));

	if (!j)
		return NULL;
	/* The caller's reference, and the table's (dropped at the end). */
	br__future_init(&j->fut, BR__F_JOB, 2);
	j->type = type;
	j->where = W_NEW;
	j->pool = pool_get(p);
	j->fn = fn;
	j->in = in;
	j->len = len;
	j->nitems = nitems;
	j->timeout_ns = timeout_ns;
	j->arena_g = SIZE_MAX;
	return j;
}

static void note_timeout(struct br_pool *p, int64_t ns)
{
	int64_t cur =
		atomic_load_explicit(&p->min_timeout_ns, memory_order_relaxed);

	while ((cur == 0 || ns < cur) &&
	       !atomic_compare_exchange_weak_explicit(&p->min_timeout_ns, &cur,
						      ns, memory_order_relaxed,
						      memory_order_relaxed))
		;
	if (atomic_fetch_add_explicit(&p->timed, 1, memory_order_seq_cst) == 0)
		br_event_set(&p->timed_ev);
}

/* Queue j (ring, else overflow). copy: make a private copy of the input
 * if it has to wait in overflow. 0, or a negative error (j untouched). */
static int enqueue(struct br_pool *p, struct pjob *j, int copy)
{
	int r;

	pthread_mutex_lock(&p->lock);
	if (p->closing || p->broken) {
		pthread_mutex_unlock(&p->lock);
		return p->closing ? BR_ECLOSED : BR_EWORKERDIED;
	}
	r = tab_insert(p, j);
	if (r < 0) {
		pthread_mutex_unlock(&p->lock);
		return r;
	}
	if (p->ov_head || ring_push(p, j) < 0) {
		if (copy && j->len) {
			j->own = malloc(j->len);
			if (!j->own) {
				tab_remove(p, j);
				pthread_mutex_unlock(&p->lock);
				return -ENOMEM;
			}
			memcpy(j->own, j->in, j->len);
			j->in = j->own;
		}
		ov_push(p, j);
	}
	/* Counted before the lock publishes j: the collector may settle it
	 * as soon as it is released, and reads timed under the lock. */
	if (j->timeout_ns) {
		j->timed = 1;
		note_timeout(p, j->timeout_ns);
	}
	pthread_mutex_unlock(&p->lock);
	return 0;
}

static br_future *submit(br_pool *pool, br_job_fn fn, const void *in,
			 size_t len, int64_t timeout_ns)
{
	struct pjob *j;
	int r = pool_check(pool);

	if (r < 0)
		return br__future_failed(r, "br_submit: not a pool");
	if (!fn || (!in && len))
		return br__future_failed(-EINVAL,
					 "br_submit: fn NULL, or in NULL "
					 "with len > 0");
	if (len > pool->max_payload)
		return br__future_failed(-EMSGSIZE,
					 "br_submit: input over the pool's "
					 "max_payload");
	j = job_new(pool, JOB_SUBMIT, fn, in, len, 1, timeout_ns);
	if (!j)
		return &br__future_enomem;
	r = enqueue(pool, j, 1);
	if (r < 0) {
		j->where = W_DONE;
		br__future_complete(
			&j->fut, BR_FAILED, NULL, NULL, 0, r,
			r == BR_ECLOSED	    ? "br_submit: the pool is closing" :
			r == BR_EWORKERDIED ? "br_submit: no worker can be "
					      "started" :
					      br_strerror(r));
		br_future_release(&j->fut); /* the table's */
		return &j->fut;
	}
	wake_workers(pool, 1);
	return &j->fut;
}

br_future *br_submit(br_pool *pool, br_job_fn fn, const void *in, size_t len)
{
	return submit(pool, fn, in, len,
		      pool && !pool_check(pool) ? pool->timeout_ns : 0);
}

br_future *br_submit_timeout(br_pool *pool, br_job_fn fn, const void *in,
			     size_t len, int64_t timeout_ms)
{
	if (timeout_ms < 0)
		return br__future_failed(-EINVAL,
					 "br_submit_timeout: negative limit");
	return submit(pool, fn, in, len, timeout_ms * 1000000);
}

/* ---------------------------------------------------------------- */
/* br_map and br_imap                                                */
/* ---------------------------------------------------------------- */

/* Walk the encoded items of a chunk: *pos advances. Returns 1 with the
 * item in *it and its bytes at *data, 0 at the end or on nonsense. */
static int next_item(const char *buf, size_t len, size_t *pos,
		     struct br__pool_item *it, const char **data)
{
	size_t at = *pos;

	if (len < sizeof(*it) || at > len - sizeof(*it))
		return 0;
	memcpy(it, buf + at, sizeof(*it));
	at += sizeof(*it);
	if (it->len > len - at)
		return 0;
	*data = buf + at;
	at += it->len;
	at = (at + 7) & ~(size_t)7;
	*pos = at < len ? at : len;
	return 1;
}

static size_t auto_chunk(struct br_pool *p, size_t item_size, size_t n,
			 size_t chunk)
{
	/* As many as fit a slot; output that outgrows a result entry goes
	 * through the worker's big area, which costs a hand-off. */
	size_t fit = BR__POOL_SLOT_ROOM / item_size;

	if (!chunk) {
		chunk = (n + 4 * p->nworkers - 1) / (4 * p->nworkers);
		if (chunk > fit)
			chunk = fit;
	}
	if (chunk > n)
		chunk = n;
	if (chunk == 0)
		chunk = 1;
	if (chunk > UINT32_MAX)
		chunk = UINT32_MAX;
	return chunk;
}

static void map_finish(struct pmap *m)
{
	size_t total = 0, bad = SIZE_MAX;
	int err = 0;
	char msg[1200] = "";
	uint64_t *hdr;
	char *out, *d;

	/* Pass 1: sizes, and the first failure by item number. */
	for (size_t c = 0; c < m->nchunks; c++) {
		struct pjob *j = m->chunks[c];
		size_t pos = 0, len;
		const char *b = br_future_bytes(&j->fut, &len), *data = NULL;
		struct br__pool_item it;

		if (br__future_state(&j->fut) != BR_DONE) {
			if (bad == SIZE_MAX) {
				bad = j->first;
				err = j->fut.error;
				snprintf(msg, sizeof(msg), "item %zu: %s", bad,
					 j->fut.message ? j->fut.message : "");
			}
			continue;
		}
		for (uint32_t i = 0; i < j->nitems; i++) {
			if (!next_item(b, len, &pos, &it, &data)) {
				if (bad == SIZE_MAX || j->first + i < bad) {
					bad = j->first + i;
					err = -EMSGSIZE;
					snprintf(msg, sizeof(msg),
						 "item %zu: the chunk's output "
						 "is over max_payload",
						 bad);
				}
				break;
			}
			if (it.error < 0) {
				if (bad == SIZE_MAX || j->first + i < bad) {
					bad = j->first + i;
					err = it.error;
					snprintf(msg, sizeof(msg),
						 "item %zu: %.*s", bad,
						 (int)(it.len < 1024 ? it.len :
								       1024),
						 data);
				}
				continue;
			}
			total += it.len;
		}
	}
	if (bad != SIZE_MAX) {
		br__future_complete(&m->fut, BR_FAILED, NULL, NULL, 0, err,
				    msg);
		return;
	}
	/* Pass 2: [n][offsets n + 1][data]. */
	out = malloc((m->n + 2) * sizeof(uint64_t) + total + 1);
	if (!out) {
		br__future_complete(&m->fut, BR_FAILED, NULL, NULL, 0, -ENOMEM,
				    "out of memory");
		return;
	}
	hdr = (uint64_t *)out;
	hdr[0] = m->n;
	d = out + (m->n + 2) * sizeof(uint64_t);
	total = 0;
	for (size_t c = 0; c < m->nchunks; c++) {
		struct pjob *j = m->chunks[c];
		size_t pos = 0, len;
		const char *b = br_future_bytes(&j->fut, &len), *data = NULL;
		struct br__pool_item it;

		for (uint32_t i = 0; i < j->nitems; i++) {
			next_item(b, len, &pos, &it, &data);
			hdr[1 + j->first + i] = total;
			memcpy(d + total, data, it.len);
			total += it.len;
		}
	}
	hdr[1 + m->n] = total;
	br__future_complete(&m->fut, BR_DONE, NULL, out,
			    (m->n + 2) * sizeof(uint64_t) + total, 0, NULL);
}

/* A chunk of m settled; the last one completes m and drops the
 * reference the chunks shared. */
static void map_chunk_done(struct pmap *m)
{
	if (atomic_fetch_sub_explicit(&m->left, 1, memory_order_acq_rel) == 1) {
		map_finish(m);
		br_future_release(&m->fut);
	}
}

/* Make the chunk jobs of a map over items; queues them. Returns 0 or a
 * negative error (then nothing is queued). */
static int make_chunks(struct br_pool *p, br_job_fn fn, const char *items,
		       size_t item_size, size_t n, size_t chunk, struct pmap *m,
		       struct pjob ***out, size_t *nout)
{
	size_t nchunks = (n + chunk - 1) / chunk, made = 0;
	struct pjob **cs = calloc(nchunks ? nchunks : 1, sizeof(*cs));
	int r = 0;

	if (!cs)
		return -ENOMEM;
	for (size_t c = 0; c < nchunks; c++) {
		size_t first = c * chunk,
		       k = n - first < chunk ? n - first : chunk;

		cs[c] = job_new(p, JOB_CHUNK, fn, items + first * item_size,
				k * item_size, (uint32_t)k, p->timeout_ns);
		if (!cs[c]) {
			r = -ENOMEM;
			break;
		}
		cs[c]->first = first;
		cs[c]->map = m;
		made++;
	}
	if (r == 0) {
		/* Visible before any chunk can complete; one extra count
		 * keeps the map pending until every chunk is queued. */
		*out = cs;
		*nout = nchunks;
		if (m)
			atomic_store_explicit(&m->left, nchunks + 1,
					      memory_order_release);
	}
	for (size_t c = 0; r == 0 && c < nchunks; c++) {
		r = enqueue(p, cs[c], 0);
		if (r < 0) {
			/* Chunks queued so far are cancelled by the caller
			 * through the map; the rest end here. */
			for (size_t d = c; d < nchunks; d++) {
				cs[d]->where = W_DONE;
				fail_job(cs[d], BR_FAILED, r, br_strerror(r));
			}
			break;
		}
	}
	if (r == -ENOMEM && made < nchunks) {
		for (size_t c = 0; c < made; c++) {
			br_future_release(&cs[c]->fut);
			br_future_release(&cs[c]->fut);
		}
		free(cs);
		return r;
	}
	wake_workers(p, (int)p->nworkers);
	if (m)
		map_chunk_done(m); /* the extra count */
	return r < 0 ? 1 : 0;
}

static int map_args(struct br_pool *p, br_job_fn fn, const void *items,
		    size_t item_size, size_t n)
{
	int r = pool_check(p);

	if (r < 0)
		return r;
	if (!fn || (!items && n) || !item_size)
		return -EINVAL;
	if (item_size > p->max_payload)
		return -EMSGSIZE;
	return 0;
}

br_future *br_map(br_pool *pool, br_job_fn fn, const void *items,
		  size_t item_size, size_t n, size_t chunk)
{
	struct pmap *m;
	int r = map_args(pool, fn, items, item_size, n);

	if (r < 0)
		return br__future_failed(r, "br_map: bad arguments");
	if (chunk && chunk * item_size > pool->max_payload)
		return br__future_failed(-EMSGSIZE,
					 "br_map: a chunk is over max_payload");
	m = calloc(1, sizeof(*m));
	if (!m)
		return &br__future_enomem;
	br__future_init(&m->fut, BR__F_JOB, 1);
	m->type = JOB_MAP;
	m->pool = pool_get(pool);
	m->n = n;
	if (n == 0) {
		uint64_t *b = calloc(2, sizeof(uint64_t));

		if (!b) {
			br_future_release(&m->fut);
			return &br__future_enomem;
		}
		br__future_complete(&m->fut, BR_DONE, NULL, b,
				    2 * sizeof(uint64_t), 0, NULL);
		return &m->fut;
	}
	chunk = auto_chunk(pool, item_size, n, chunk);
	/* The map's future stays pending until every chunk has settled,
	 * and the chunks hold no reference to it: keep one for them. */
	atomic_fetch_add_explicit(&m->fut.refs, 1, memory_order_relaxed);
	r = make_chunks(pool, fn, items, item_size, n, chunk, m, &m->chunks,
			&m->nchunks);
	if (r < 0) {
		br_future_release(&m->fut);
		br_future_release(&m->fut);
		return br__future_failed(r, "br_map: out of memory");
	}
	if (r > 0)
		br__job_cancel(&m->fut);
	return &m->fut;
}

const void *br_map_result(const br_future *f, size_t i, size_t *len)
{
	const struct pjob *j = (const struct pjob *)f;
	const uint64_t *hdr;
	size_t blen;

	if (len)
		*len = 0;
	if (!br__future_ok(f) || f->kind != BR__F_JOB || j->type != JOB_MAP ||
	    br__future_state(f) != BR_DONE)
		return NULL;
	hdr = br_future_bytes(f, &blen);
	if (!hdr || i >= hdr[0])
		return NULL;
	if (len)
		*len = hdr[2 + i] - hdr[1 + i];
	return (const char *)hdr + (hdr[0] + 2) * sizeof(uint64_t) + hdr[1 + i];
}

struct br_imap {
	uint32_t magic;
	unsigned flags;
	struct pjob **chunks;
	size_t nchunks, next;
	br_as_completed *ac;
	br_future *cur; /* the chunk being read */
	size_t pos, item;
	atomic_int busy; /* a br_imap_next() call is in progress */
	char msg[1200];
};

int br_imap_new(br_imap **out, br_pool *pool, br_job_fn fn, const void *items,
		size_t item_size, size_t n, size_t chunk, unsigned flags)
{
	struct br_imap *it;
	int r;

	if (!out)
		return -EINVAL;
	r = map_args(pool, fn, items, item_size, n);
	if (r < 0)
		return r;
	if (flags & ~BR_IMAP_UNORDERED)
		return -EINVAL;
	it = calloc(1, sizeof(*it));
	if (!it)
		return -ENOMEM;
	it->magic = BR__MAGIC_IMAP;
	it->flags = flags;
	if (n) {
		chunk = auto_chunk(pool, item_size, n, chunk);
		r = make_chunks(pool, fn, items, item_size, n, chunk, NULL,
				&it->chunks, &it->nchunks);
		if (r < 0) {
			free(it);
			return r;
		}
		if (flags & BR_IMAP_UNORDERED) {
			it->ac = br_as_completed_new(
				(br_future *const *)it->chunks, it->nchunks);
			if (!it->ac) {
				br_imap_free(it);
				return -ENOMEM;
			}
		}
	}
	*out = it;
	return 0;
}

static int imap_next(br_imap *it, size_t *index, const void **out, size_t *len)
{
	struct br__pool_item item;
	const char *data, *b;
	struct pjob *j;
	size_t blen;

	it->msg[0] = '\0';
	while (!it->cur || it->item == ((struct pjob *)it->cur)->nitems) {
		br_future *f;
		int r;

		if (it->ac) {
			f = br_as_completed_next(it->ac);
			if (!f)
				return it->next < it->nchunks ? -ECANCELED :
								BR_EDONE;
			it->next++;
		} else {
			if (it->next == it->nchunks)
				return BR_EDONE;
			f = &it->chunks[it->next]->fut;
			r = br_await(f, NULL);
			if (r == -ECANCELED &&
			    br__future_state(f) == BR_PENDING)
				return r; /* the caller was cancelled */
			it->next++;
		}
		it->cur = f;
		it->pos = 0;
		it->item = 0;
	}
	j = (struct pjob *)it->cur;
	if (index)
		*index = j->first + it->item;
	if (out)
		*out = NULL;
	if (len)
		*len = 0;
	it->item++;
	if (br__future_state(&j->fut) != BR_DONE) {
		snprintf(it->msg, sizeof(it->msg), "%s",
			 br_future_message(&j->fut));
		return br_future_error(&j->fut);
	}
	b = br_future_bytes(&j->fut, &blen);
	if (!next_item(b, blen, &it->pos, &item, &data)) {
		snprintf(it->msg, sizeof(it->msg),
			 "the chunk's output is over max_payload");
		it->pos = blen;
		return -EMSGSIZE;
	}
	if (item.error < 0) {
		snprintf(it->msg, sizeof(it->msg), "%.*s",
			 (int)(item.len < 1024 ? item.len : 1024), data);
		return item.error;
	}
	if (out)
		*out = data;
	if (len)
		*len = item.len;
	return 0;
}

int br_imap_next(br_imap *it, size_t *index, const void **out, size_t *len)
{
	int r;

	if (!it)
		return -EINVAL;
	if (it->magic != BR__MAGIC_IMAP || !it->chunks)
		return it->magic == BR__MAGIC_IMAP ? BR_EDONE : BR_EBADOBJ;
	/* One caller at a time; acquire/release order one call's updates of
	 * the cursor before the next call, whatever thread makes it. */
	if (atomic_exchange_explicit(&it->busy, 1, memory_order_acquire))
		return -EBUSY;
	r = imap_next(it, index, out, len);
	atomic_store_explicit(&it->busy, 0, memory_order_release);
	return r;
}

const char *br_imap_message(const br_imap *it)
{
	if (!it || it->magic != BR__MAGIC_IMAP)
		return "";
	return it->msg;
}

void br_imap_free(br_imap *it)
{
	if (!it || it->magic != BR__MAGIC_IMAP)
		return;
	for (size_t c = 0; c < it->nchunks; c++) {
		br_cancel(&it->chunks[c]->fut);
		br_future_release(&it->chunks[c]->fut);
	}
	br_as_completed_free(it->ac);
	free(it->chunks);
	it->magic = BR__MAGIC_DEAD;
	free(it);
}

/* ---------------------------------------------------------------- */
/* Pool life                                                         */
/* ---------------------------------------------------------------- */

static void pool_put(struct br_pool *p)
{
	if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1)
		return;
	if (p->shm)
		munmap(p->shm, p->shm_size);
	if (p->memfd >= 0)
		close(p->memfd);
	if (p->efd >= 0)
		close(p->efd);
	pthread_mutex_destroy(&p->lock);
	pthread_mutex_destroy(&p->drain);
	pthread_cond_destroy(&p->quiet);
	br_event_destroy(&p->timed_ev);
	free(p->tab);
	free(p->freeidx);
	free(p->amap);
	free(p->w);
	p->magic = BR__MAGIC_DEAD;
	free(p);
}

static int make_shm(struct br_pool *p, const br_pool_config *cfg)
{
	struct br__pool_shm *s;
	size_t stride = (size_t)BR__POOL_SLOT * (1 + BR__POOL_RESULTS);
	size_t big = (p->max_payload + 2 * BR__POOL_SLOT + 4095) &
		     ~(size_t)4095;
	size_t arena = (2 * p->max_payload + GRANULE - 1) / GRANULE * GRANULE;
	size_t off = 0, init_off, jobs_off, workers_off, big_off, arena_off;

	off = (sizeof(*s) + 4095) & ~(size_t)4095;
	init_off = off;
	off += (cfg->init_len + 4095) & ~(size_t)4095;
	jobs_off = off;
	off += (size_t)BR__POOL_JOBS * BR__POOL_SLOT;
	workers_off = off;
	off += stride * p->nworkers;
	big_off = off;
	off += big * p->nworkers;
	arena_off = off;
	off += arena;

	p->memfd = memfd_create("braid-pool", MFD_CLOEXEC);
	if (p->memfd < 0)
		return -errno;
	if (ftruncate(p->memfd, (off_t)off) < 0)
		return -errno;
	s = mmap(NULL, off, PROT_READ | PROT_WRITE, MAP_SHARED, p->memfd, 0);
	if (s == MAP_FAILED)
		return -errno;
	p->shm = s;
	p->shm_size = off;
	s->magic = BR__POOL_MAGIC;
	s->nworkers = p->nworkers;
	s->size = off;
	s->init_off = init_off;
	s->init_len = cfg->init_len;
	s->init_fn = (uint64_t)(uintptr_t)cfg->init;
	if (cfg->init_len)
		memcpy((char *)s + init_off, cfg->init_arg, cfg->init_len);
	s->jobs_off = jobs_off;
	s->workers_off = workers_off;
	s->worker_stride = stride;
	s->big_off = big_off;
	s->big_size = big;
	s->arena_off = arena_off;
	s->arena_size = arena;
	s->max_payload = p->max_payload;
	s->max_jobs = cfg->max_jobs;
	s->parent_pid = getpid();
	for (uint64_t i = 0; i < BR__POOL_JOBS; i++)
		atomic_init(&br__pool_slot(s, i)->state,
			    BR__JS(i, BR__JS_EMPTY, 0));
	/* Fresh pages cost about 10 us each to touch on these VMs: give the
	 * rings theirs now rather than to the first jobs. The big areas and
	 * the arena stay sparse. */
	br__pool_populate(s, 0);
	p->agranules = arena / GRANULE;
	p->amap = calloc(p->agranules, 1);
	return p->amap ? 0 : -ENOMEM;
}

static unsigned online_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 0 ? (unsigned)(n > MAX_WORKERS ? MAX_WORKERS : n) : 1;
}

/* Kill every worker, wait for forks and reaps in flight, reap. Caller
 * set closing. */
static void stop_workers(struct br_pool *p)
{
	int fds[MAX_WORKERS];
	pid_t pids[MAX_WORKERS];
	unsigned n = 0;

	pthread_mutex_lock(&p->lock);
	for (unsigned w = 0; w < p->nworkers; w++) {
		if (p->w[w].pidfd < 0)
			continue;
		br__child_kill(p->w[w].pid, p->w[w].pidfd);
		pids[n] = p->w[w].pid;
		fds[n++] = p->w[w].pidfd;
		p->w[w].pidfd = -1;
		p->w[w].pid = 0;
	}
	while (p->inflight)
		pthread_cond_wait(&p->quiet, &p->lock);
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < n; i++) {
		br__child_reap(pids[i], fds[i], 0);
		close(fds[i]);
	}
}

/* Start the workers and wait until each has run its initializer. */
static void *start_call(void *arg)
{
	struct br_pool *p = arg;
	intptr_t err = 0;

	for (unsigned w = 0; w < p->nworkers && !err; w++)
		err = fork_worker(p, w);
	for (unsigned w = 0; w < p->nworkers && !err; w++) {
		struct br__pool_wstate *ws = br__pool_ws(p->shm, w);

		for (;;) {
			uint32_t st = atomic_load_explicit(
				&ws->state, memory_order_acquire);
			struct pollfd pfd = { p->w[w].pidfd, POLLIN, 0 };

			if (st == BR__PW_READY)
				break;
			if (st == BR__PW_INIT_FAILED) {
				err = atomic_load_explicit(
					&ws->init_err, memory_order_relaxed);
				break;
			}
			if (poll(&pfd, 1, 1) == 1 &&
			    atomic_load_explicit(&ws->state,
						 memory_order_acquire) ==
				    BR__PW_STARTING) {
				err = BR_EWORKERDIED;
				break;
			}
		}
	}
	return (void *)err;
}

/* Spawn one of the pool's tasks, which holds a reference to p until it
 * returns; a spawn that fails gives the reference back and sets *err. */
static br_future *pool_task(struct br_pool *p, br_task_fn fn, void *arg,
			    int *err)
{
	br_future *f;

	pool_get(p);
	f = br_spawn(p->rt, fn, arg);
	if (br_future_state(f) == BR_FAILED) {
		pool_put(p);
		if (*err == 0)
			*err = br_future_error(f);
	}
	return f;
}

int br_pool_new(br_pool **out, br_runtime *rt, const br_pool_config *cfg)
{
	br_pool_config def = { 0 };
	struct br_pool *p;
	br_future *f;
	void *v = NULL;
	int r;

	if (!out || !rt)
		return -EINVAL;
	if (rt->magic != BR__MAGIC_RUNTIME)
		return BR_EBADOBJ;
	if (atomic_load_explicit(&rt->closing, memory_order_relaxed))
		return BR_ECLOSED;
	if (!cfg)
		cfg = &def;
	if (cfg->workers > MAX_WORKERS || cfg->init_len > MAX_INIT ||
	    (cfg->init_len && !cfg->init_arg) || cfg->timeout_ms < 0 ||
	    cfg->max_payload > MAX_PAYLOAD)
		return -EINVAL;
	if (!rt->zygote || !br__zygote_get())
		return -ENOTSUP;
	p = calloc(1, sizeof(*p));
	if (!p) {
		br__zygote_put();
		return -ENOMEM;
	}
	p->magic = BR__MAGIC_POOL;
	atomic_init(&p->refs, 1);
	p->rt = rt;
	p->memfd = p->efd = -1;
	p->nworkers = cfg->workers ? cfg->workers : online_cpus();
	p->timeout_ns = cfg->timeout_ms * 1000000;
	p->max_payload = cfg->max_payload ? cfg->max_payload : DEFAULT_PAYLOAD;
	pthread_mutex_init(&p->lock, NULL);
	pthread_mutex_init(&p->drain, NULL);
	pthread_cond_init(&p->quiet, NULL);
	br_event_init(&p->timed_ev);
	p->w = calloc(p->nworkers, sizeof(*p->w));
	r = p->w ? make_shm(p, cfg) : -ENOMEM;
	if (r == 0) {
		p->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (p->efd < 0)
			r = -errno;
	}
	for (unsigned w = 0; p->w && w < p->nworkers; w++) {
		p->w[w].pidfd = -1;
		p->w[w].pool = p;
		p->w[w].idx = w;
	}
	if (r == 0) {
		f = br_spawn_blocking(rt, start_call, p);
		r = br_await(f, &v);
		if (r == 0)
			r = (int)(intptr_t)v;
		br_future_release(f);
	}
	if (r == 0) {
		p->collector = pool_task(p, collector_task, p, &r);
		p->timer = pool_task(p, timer_task, p, &r);
		for (unsigned w = 0; w < p->nworkers; w++)
			p->w[w].watch = pool_task(p, watch_task, &p->w[w], &r);
	}
	if (r < 0) {
		br_pool_free(p);
		return r;
	}
	*out = p;
	return 0;
}

static void end_task(br_future *f)
{
	if (!f)
		return;
	br_cancel(f);
	br_future_release(f);
}

void br_pool_free(br_pool *p)
{
	int started;

	if (!p || p->magic != BR__MAGIC_POOL)
		return;
	pthread_mutex_lock(&p->lock);
	p->closing = 1;
	started = p->collector != NULL;
	pthread_mutex_unlock(&p->lock);
	if (p->shm) {
		atomic_store_explicit(&p->shm->closing, 1,
				      memory_order_seq_cst);
		atomic_fetch_add_explicit(&p->shm->job_bell, 1,
					  memory_order_release);
		br__futex_wake_shared(&p->shm->job_bell, INT32_MAX);
	}
	stop_workers(p);
	fail_all(p, BR_CANCELLED, -ECANCELED, "cancelled: the pool was freed");
	if (started) {
		end_task(p->collector);
		end_task(p->timer);
		for (unsigned w = 0; w < p->nworkers; w++)
			end_task(p->w[w].watch);
	}
	p->magic = BR__MAGIC_DEAD;
	br__zygote_put();
	pool_put(p);
}

int br_pool_pids(br_pool *p, pid_t *pids, size_t n)
{
	int r = pool_check(p);

	if (r < 0)
		return r;
	if (!pids && n)
		return -EINVAL;
	pthread_mutex_lock(&p->lock);
	for (size_t i = 0; i < n && i < p->nworkers; i++)
		pids[i] = p->w[i].pid;
	pthread_mutex_unlock(&p->lock);
	return (int)p->nworkers;
}
