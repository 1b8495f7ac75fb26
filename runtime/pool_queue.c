/* SPDX-License-Identifier: MIT */
/*
 * pool_queue.c - the process pool's queue, parent side: the job table,
 * the input arena, the overflow list, publishing jobs in the shared ring,
 * and completing them from the workers' results (the collector).
 *
 * Design
 *   A job gets an id (table index and generation), the only thing about
 *   it that crosses into shared memory: a worker can write nonsense there,
 *   and an id that names no pending job is ignored.
 *
 *   Submitting copies the input into the next ring slot (or the arena,
 *   for inputs over a slot) and publishes it; when the ring is full, or
 *   jobs already wait in the parent, the job joins the overflow list (with
 *   a private copy of a br_submit input; br_map chunks point into the
 *   caller's items) that the collector moves into the ring as slots free
 *   up. A worker is woken only if one sleeps.
 *
 *   The collector task drains every worker's result ring, completes the
 *   futures, refills the ring from the overflow list, and then sleeps in
 *   a read of the pool's eventfd through the loop, after raising
 *   collector_waiting (pool_shm.h, Doorbells). A big map keeps it busy
 *   from start to end: once per COLLECTOR_SLICE_NS of work it yields,
 *   and lets its worker's timers and I/O run too (br__yield_to_loop).
 *
 *   Before it sleeps, it watches the result rings for a while, yielding
 *   between looks so that its worker's other tasks run: a result it sees
 *   there costs the worker process no eventfd write and the collector's
 *   worker no wake-up through the kernel, which quick jobs otherwise pay
 *   every few results (docs/ARCHITECTURE.md, "The process pool"). How long
 *   it watches adapts as a worker's spin does (futex.h): a watch that
 *   saw a result keeps the next at COLLECTOR_SPIN_NS or more; one that
 *   did not is judged by how soon the eventfd rang, so that results that
 *   come seldom (one job now and then, an idle pool) shrink it to
 *   COLLECTOR_SPIN_MIN_NS.
 *
 *   The job state machine and the invariants the functions here keep are
 *   in pool.h.
 *
 * Concurrency
 *   Table, arena, overflow and ring production under pool->lock; a result
 *   ring under pool->drain (pool.h). Futures are completed outside both.
 *
 * Memory ordering
 *   As pool_shm.h says for the ring, the result rings and the doorbells.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "futex.h"
#include "pool.h"
#include "stats.h"
#include "task.h"

void br__pool_wake_workers(struct br_pool *p, int n)
{
	struct br__pool_shm *s = p->shm;
	uint64_t any = 0;

	/* A seq_cst read-modify-write orders the slot's publication before
	 * the read of sleepers (pool_shm.h, Doorbells). */
	for (unsigned i = 0; i * 64 < p->nworkers; i++)
		any |= atomic_fetch_or_explicit(&s->sleepers[i], 0,
						memory_order_seq_cst);
	if (any) {
		atomic_fetch_add_explicit(&s->job_bell, 1,
					  memory_order_release);
		br__futex_wake_shared(&s->job_bell, n);
	}
}

static int tab_insert(struct br_pool *p, struct pjob *j)
{
	uint32_t i;

	BR__ASSERT_MUTEX_HELD(&p->lock);
	BR_DEBUG_ASSERT(j->where == W_NEW);
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

struct pjob *br__pool_tab_find(struct br_pool *p, uint64_t id)
{
	uint32_t i = (uint32_t)id;

	BR__ASSERT_MUTEX_HELD(&p->lock);
	if (i >= p->tabn || !p->tab[i] || p->tab[i]->id != id)
		return NULL;
	return p->tab[i];
}

static void tab_remove(struct br_pool *p, struct pjob *j)
{
	uint32_t i = (uint32_t)j->id;

	BR_DEBUG_ASSERT(i < p->tabn && p->tab[i] == j);
	p->tab[i] = NULL;
	p->freeidx[p->nfree++] = i;
}

static size_t arena_alloc(struct br_pool *p, size_t len)
{
	size_t need = (len + BR__POOL_GRANULE - 1) / BR__POOL_GRANULE, run = 0;

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
	if (j->arena_n * BR__POOL_GRANULE >= BR__POOL_PUNCH_MIN)
		fallocate(p->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			  (off_t)(p->shm->arena_off +
				  j->arena_g * BR__POOL_GRANULE),
			  (off_t)(j->arena_n * BR__POOL_GRANULE));
	j->arena_g = SIZE_MAX;
}

/* Publish j in the next ring slot. 0, or -EAGAIN if there is no room. */
static int ring_push(struct br_pool *p, struct pjob *j)
{
	struct br__pool_shm *s = p->shm;
	uint64_t pos = atomic_load_explicit(&s->tail, memory_order_relaxed);

	BR__ASSERT_MUTEX_HELD(&p->lock);
	BR_DEBUG_ASSERT(j->where == W_NEW || j->where == W_OVERFLOW);
	if (p->ring_jobs >= p->ring_limit)
		return -EAGAIN;
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
		j->arena_n = (j->len + BR__POOL_GRANULE - 1) / BR__POOL_GRANULE;
		sl->arena_off = s->arena_off + g * BR__POOL_GRANULE;
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
	p->ring_jobs++;
	free(j->own);
	j->own = NULL;
	return 0;
}

/* Overflow: a FIFO, but a job that goes round again goes first. */
static void ov_push(struct br_pool *p, struct pjob *j, int front)
{
	BR__ASSERT_MUTEX_HELD(&p->lock);
	BR_DEBUG_ASSERT(j->where == W_NEW || j->where == W_OVERFLOW ||
			j->where == W_RING || j->where == W_REMOTE);
	if (j->where == W_NEW)
		j->queued_ns = p->remote ? br_now_ns() : 0;
	else if (j->where != W_OVERFLOW)
		j->queued_ns = 0;
	j->where = W_OVERFLOW;
	if (front)
		br__list_push_front(&p->overflow, &j->link);
	else
		br__list_push_back(&p->overflow, &j->link);
	atomic_fetch_add_explicit(&p->ov_n, 1, memory_order_relaxed);
}

/* Take j out of the overflow list, wherever it is: O(1), since cancels
 * may pick any of a million queued jobs. */
static void ov_unlink(struct br_pool *p, struct pjob *j)
{
	BR_DEBUG_ASSERT(j->where == W_OVERFLOW);
	br__list_remove(&p->overflow, &j->link);
	atomic_fetch_sub_explicit(&p->ov_n, 1, memory_order_relaxed);
}

/* Move overflow jobs into the ring while it has room. Returns how many. */
static int refill(struct br_pool *p)
{
	struct br__list_node *n;
	int moved = 0;

	while ((n = br__list_pop_front(&p->overflow))) {
		struct pjob *j = br__list_entry(n, struct pjob, link);

		atomic_fetch_sub_explicit(&p->ov_n, 1, memory_order_relaxed);
		if (ring_push(p, j) < 0) {
			ov_push(p, j, 1);
			break;
		}
		moved++;
	}
	return moved;
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

const char *br__pool_refusal(const struct br_pool *p, int err)
{
	if (err == BR_ECLOSED)
		return "the pool is closing";
	/* Set once under the lock that br__pool_enqueue's refusal took. */
	if (p->broken && err == p->broken_err)
		return p->broken;
	return br_strerror(err);
}

/* Queue j (ring, else overflow). copy: make a private copy of the input
 * if it has to wait in overflow. 0, 1 (j waits alone in overflow), or a
 * negative error (j untouched). */
int br__pool_enqueue(struct br_pool *p, struct pjob *j, int copy)
{
	int r, alone = 0;

	pthread_mutex_lock(&p->lock);
	if (p->closing || p->broken) {
		r = p->closing ? BR_ECLOSED : p->broken_err;
		pthread_mutex_unlock(&p->lock);
		return r;
	}
	r = tab_insert(p, j);
	if (r < 0) {
		pthread_mutex_unlock(&p->lock);
		return r;
	}
	if (!br__list_empty(&p->overflow) || ring_push(p, j) < 0) {
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
		alone = br__list_empty(&p->overflow);
		ov_push(p, j, 0);
	}
	/* Counted before the lock publishes j: the collector may settle it
	 * as soon as it is released, and reads timed under the lock. */
	if (j->timeout_ns) {
		j->timed = 1;
		note_timeout(p, j->timeout_ns);
	}
	pthread_mutex_unlock(&p->lock);
	return alone;
}

/* Give a job back to the queue after its worker died for another job's
 * sake; a submit's input is copied back out of shared memory first.
 * Returns 0, or -ENOMEM. Under lock. */
int br__pool_requeue(struct br_pool *p, struct pjob *j,
		     const struct br__pool_slot *sl)
{
	BR__ASSERT_MUTEX_HELD(&p->lock);
	BR_DEBUG_ASSERT(j->where == W_RING);
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
	p->ring_jobs--;
	ov_push(p, j, 1);
	return 0;
}

static void job_settled(struct pjob *j)
{
	struct br_pool *p = j->pool;

	if (j->timed)
		atomic_fetch_sub_explicit(&p->timed, 1, memory_order_relaxed);
}

static void settle_bytes(struct pjob *j, const char *data, size_t len)
{
	job_settled(j);
	if (j->type == JOB_SUBMIT) {
		struct br__pool_item it;
		const char *out;
		size_t pos = 0;
		char msg[BR__POOL_MSG_MAX];
		void *b;

		if (!br__pool_next_item(data, len, &pos, &it, &out)) {
			br__future_complete(&j->fut, BR_FAILED, NULL, NULL, 0,
					    -EMSGSIZE,
					    "the job's output is over the "
					    "pool's max_payload");
			return;
		}
		if (it.error < 0) {
			snprintf(msg, sizeof(msg), "%.*s",
				 (int)(it.len < sizeof(msg) - 1 ?
					       it.len :
					       sizeof(msg) - 1),
				 out);
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
			br__pool_map_chunk_done(m);
	}
}

void br__pool_settle_items(struct pjob *j, const void *data, size_t len)
{
	settle_bytes(j, data, len);
	br_future_release(&j->fut);
}

/* Fail (or cancel) j, then drop the table's reference. Context: the
 * party that claimed j. */
void br__pool_fail_job(struct pjob *j, br_state st, int err, const char *msg)
{
	struct pmap *m = j->map;

	job_settled(j);
	br__future_complete(&j->fut, st, NULL, NULL, 0, err, msg);
	if (m)
		br__pool_map_chunk_done(m);
	br_future_release(&j->fut); /* the table's */
}

int br__pool_claim_job(struct br_pool *p, struct pjob *j)
{
	BR__ASSERT_MUTEX_HELD(&p->lock);
	if (!j || j->where == W_DONE)
		return 0;
	if (j->where == W_OVERFLOW)
		ov_unlink(p, j);
	if (j->where == W_RING)
		p->ring_jobs--;
	if (j->where != W_NEW)
		tab_remove(p, j);
	arena_free(p, j);
	j->where = W_DONE;
	p->settling++;
	return 1;
}

void br__pool_settled(struct br_pool *p, unsigned n)
{
	if (!n)
		return;
	pthread_mutex_lock(&p->lock);
	p->settling -= n;
	if (!p->settling && p->closing)
		pthread_cond_broadcast(&p->quiet);
	pthread_mutex_unlock(&p->lock);
}

void br__pool_fail_all(struct br_pool *p, br_state st, int err, const char *msg)
{
	br__pool_fail_where(p, -1, st, err, msg);
}

void br__pool_fail_where(struct br_pool *p, int rank, br_state st, int err,
			 const char *msg)
{
	struct pjob **v;
	size_t n = 0;

	pthread_mutex_lock(&p->lock);
	v = calloc(p->tabn ? p->tabn : 1, sizeof(*v));
	for (uint32_t i = 0; v && i < p->tabn; i++) {
		struct pjob *j = p->tab[i];

		if (j &&
		    (rank < 0 || (j->where == W_REMOTE && j->rank == rank)) &&
		    br__pool_claim_job(p, j))
			v[n++] = j;
	}
	pthread_mutex_unlock(&p->lock);
	for (size_t i = 0; i < n; i++)
		br__pool_fail_job(v[i], st, err, msg);
	free(v);
	br__pool_settled(p, (unsigned)n);
}

/* Drain worker w's result ring; completes what it finds. One hold of
 * the lock claims the whole batch, and head moves once per batch. */
int br__pool_drain(struct br_pool *p, unsigned w)
{
	struct br__pool_shm *s = p->shm;
	struct br__pool_wstate *ws = br__pool_ws(s, w);
	struct pjob *got[BR__POOL_RESULTS];
	int mine[BR__POOL_RESULTS];
	uint64_t head, tail;
	unsigned n, claimed = 0;

	/* Nothing there: no lock, for the collector looks often while it
	 * watches. A result pushed after this look is found by the next one,
	 * or by the collector's check after it raises collector_waiting. A
	 * worker waits for room only in a full ring, never in an empty one. */
	if (atomic_load_explicit(&ws->res_tail, memory_order_acquire) ==
	    atomic_load_explicit(&ws->res_head, memory_order_relaxed))
		return 0;
	pthread_mutex_lock(&p->drain);
	head = atomic_load_explicit(&ws->res_head, memory_order_relaxed);
	tail = atomic_load_explicit(&ws->res_tail, memory_order_acquire);
	if (tail - head > BR__POOL_RESULTS)
		tail = head + BR__POOL_RESULTS; /* a worker wrote nonsense */
	n = (unsigned)(tail - head);
	pthread_mutex_lock(&p->lock);
	for (unsigned i = 0; i < n; i++) {
		struct br__pool_result *r = br__pool_res(s, w, head + i);

		got[i] = br__pool_tab_find(p, r->id);
		mine[i] = br__pool_claim_job(p, got[i]);
		if (mine[i] && got[i]->nitems != r->nitems)
			mine[i] = 2; /* not what we sent: treat as a death */
		if (mine[i] == 1 && p->remote)
			br__pool_remote_ran(p, r->end_ns - r->start_ns);
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
		claimed += mine[i] != 0;
		if (mine[i] == 1)
			br__pool_settle_items(got[i], data, len);
		else if (mine[i] == 2)
			br__pool_fail_job(
				got[i], BR_FAILED, BR_EWORKERDIED,
				"the worker returned a malformed result");
		if (r->flags & BR__RES_BIG) {
			if (len >= BR__POOL_PUNCH_MIN)
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
	br__pool_settled(p, claimed);
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
int br__pool_refill(struct br_pool *p, int force)
{
	int moved = 0;

	if (!force && !atomic_load_explicit(&p->ov_n, memory_order_relaxed))
		return 0;
	pthread_mutex_lock(&p->lock);
	if (!p->closing)
		moved = refill(p);
	pthread_mutex_unlock(&p->lock);
	if (moved)
		br__pool_wake_workers(
			p, moved < (int)p->nworkers ? moved : (int)p->nworkers);
	return moved;
}

void br__pool_kick_collector(struct br_pool *p)
{
	uint64_t one = 1;

	atomic_store_explicit(&p->shm->collector_waiting, 0,
			      memory_order_relaxed);
	(void)!write(p->efd, &one, sizeof(one));
}

/* How long the collector works on before it lets its worker's timers
 * and I/O run. */
#define COLLECTOR_SLICE_NS (1 * BR__NS_PER_MS)
/* How long it watches the result rings before it sleeps (header): at
 * least COLLECTOR_SPIN_NS after a watch that saw a result, never less
 * than COLLECTOR_SPIN_MIN_NS or more than COLLECTOR_SPIN_MAX_NS. */
#define COLLECTOR_SPIN_NS (32 * BR__NS_PER_US)
#define COLLECTOR_SPIN_MIN_NS (1 * BR__NS_PER_US)
#define COLLECTOR_SPIN_MAX_NS (128 * BR__NS_PER_US)

void *br__pool_collector(void *arg)
{
	struct br_pool *p = arg;
	struct br__pool_shm *s;
	int64_t slice = br_now_ns(); /* when it last let the loop run */
	int64_t idle = 0; /* when the rounds last found nothing, or 0 */
	struct br__spin_budget watch = { COLLECTOR_SPIN_NS, 0 };

	if (!br__pool_enter(p))
		return NULL;
	s = p->shm;
	for (;;) {
		uint64_t v;
		int64_t now, slept;
		int n = 0;

		for (unsigned w = 0; w < p->nworkers; w++)
			n += br__pool_drain(p, w);
		n += br__pool_refill(p, 0);
		if (n) {
			/* A map of quick items keeps this busy from its
			 * first chunk to its last: once per slice, however
			 * long the rounds (a chunk's first copy can take a
			 * fault per page), the worker's other tasks, timers
			 * and I/O get their turn. */
			now = br_now_ns();
			if (idle)
				br__spin_paid(&watch, COLLECTOR_SPIN_NS);
			idle = 0;
			if (now - slice >= COLLECTOR_SLICE_NS) {
				if (br__yield_to_loop() == -ECANCELED)
					break;
				slice = now;
			}
			continue;
		}
		now = br_now_ns();
		if (!idle)
			idle = now;
		if (now - idle < watch.ns) {
			if (br_yield() == -ECANCELED)
				break;
			continue;
		}
		/* A worker frees a ring slot after pushing its result, so
		 * a slot may free up after the br__pool_drain above: the check after
		 * raising the flag covers results and free slots alike. */
		atomic_store_explicit(&s->collector_waiting, 1,
				      memory_order_seq_cst);
		if (results_waiting(p) || br__pool_refill(p, 1)) {
			atomic_store_explicit(&s->collector_waiting, 0,
					      memory_order_relaxed);
			/* The watch just missed it: a miss by a hair. */
			br__spin_missed(&watch, 0, COLLECTOR_SPIN_NS,
					COLLECTOR_SPIN_MIN_NS,
					COLLECTOR_SPIN_MAX_NS);
			idle = 0;
			continue;
		}
		slept = br_now_ns();
		if (br__pool_poll(p->efd, -1) < 0)
			break; /* cancelled: the pool or the runtime closes */
		(void)!read(p->efd, &v, sizeof(v));
		br__spin_missed(&watch, br_now_ns() - slept, COLLECTOR_SPIN_NS,
				COLLECTOR_SPIN_MIN_NS, COLLECTOR_SPIN_MAX_NS);
		idle = 0;
		/* The slice runs on: without a ring the poll returns at
		 * once when the eventfd is readable, and lets nothing run. */
	}
	br__pool_leave(p);
	return NULL;
}
