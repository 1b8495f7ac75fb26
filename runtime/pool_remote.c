/* SPDX-License-Identifier: MIT */
/*
 * pool_remote.c - the process pool's side of running jobs on other ranks:
 * the transport registry, and the calls a transport makes on a pool
 * (remote.h).
 *
 * Design
 *   The pool knows nothing of MPI. A transport (libbraid-mpi) registers
 *   its operations; a pool made with br_pool_config.mpi asks it to join,
 *   and learns how many workers the other ranks add. From then on the
 *   local ring holds at most ring_limit jobs, so that the jobs beyond
 *   wait in the overflow list, where the local refill and the transport
 *   both take the oldest first: whoever has room takes work, and a slow
 *   rank, which returns results slowly, is given less (pull, not push,
 *   across ranks as within one).
 *
 *   How deep the local ring is follows how long jobs run (run_ns, an
 *   average over the last few): a few per local worker, or, for short
 *   jobs, enough to keep each busy for RING_COVER_NS, the time the
 *   collector may take to wake and refill the ring once it sleeps. With
 *   four per worker, a pool of tiny jobs flipped between two steady
 *   speeds, several times apart: its workers ran dry between refills,
 *   the collector, finding no results for a while, slept, and the next
 *   refill waited for its wake-up. Tiny jobs are not worth shipping
 *   anyway; long ones still wait where every rank can take them.
 *
 *   A shipped job is W_REMOTE: it stays in the job table, so its future,
 *   br_cancel, br_map's chunk accounting and br_pool_free treat it as
 *   any other; what comes back settles it through the same code as a
 *   local result (br__pool_settle_items), and an id that names no job
 *   (it was cancelled meanwhile) is dropped.
 *
 * Concurrency
 *   The registry is written once, before any pool uses it. Everything
 *   else under the pool's lock, as pool.h says; the transport's
 *   operations are called without it.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "clock.h"
#include "pool.h"
#include "remote.h"

/* Jobs in the local ring per local worker when other ranks take jobs
 * too: at least enough that a worker finishing one finds the next at
 * once, and as many as it runs in RING_COVER_NS (header). */
#define RING_PER_WORKER 4
#define RING_COVER_NS (200 * BR__NS_PER_US)

static _Atomic(const struct br__remote_ops *) transport;

int br__remote_register(const struct br__remote_ops *ops)
{
	const struct br__remote_ops *none = NULL;

	/* acq_rel: publishes the table to pools that load it (acquire). */
	return atomic_compare_exchange_strong_explicit(&transport, &none, ops,
						       memory_order_acq_rel,
						       memory_order_acquire) ?
		       0 :
		       -EBUSY;
}

static const struct br__remote_ops *ops_of(void)
{
	/* Acquire: pairs with br__remote_register(). */
	return atomic_load_explicit(&transport, memory_order_acquire);
}

int br__pool_remote_start(struct br_pool *p, const br_pool_config *cfg)
{
	const struct br__remote_ops *ops = ops_of();
	void *state = NULL, *v = NULL;
	br_future *f;
	int r;

	if (!ops)
		return 0;
	br__pool_get(p); /* the transport's */
	f = ops->pool_new(p, cfg, &state);
	r = br_await(f, &v);
	br_future_release(f);
	if (r < 0 || !state || !v) {
		/* Failed, or no other rank: the pool stays local. */
		if (state)
			ops->pool_free(state);
		else
			br__pool_put(p);
		return r < 0 ? r : 0;
	}
	pthread_mutex_lock(&p->lock);
	p->remote = state;
	p->remote_workers = (unsigned)(intptr_t)v;
	p->ring_limit = RING_PER_WORKER * p->nworkers;
	p->run_ns = RING_COVER_NS; /* unknown: long */
	pthread_mutex_unlock(&p->lock);
	return 0;
}

void br__pool_remote_ran(struct br_pool *p, int64_t ns)
{
	int64_t per;

	BR__ASSERT_MUTEX_HELD(&p->lock);
	/* The worker's clock readings: anything. Past RING_COVER_NS it
	 * makes no difference, and one long job moves the average only so
	 * far. */
	if (ns < 0)
		ns = 0;
	if (ns > RING_COVER_NS)
		ns = RING_COVER_NS;
	p->run_ns += (ns - p->run_ns) / 8;
	per = RING_COVER_NS / (p->run_ns + 1);
	if (per > BR__POOL_JOBS / p->nworkers)
		per = BR__POOL_JOBS / p->nworkers; /* the ring holds no more */
	if (per < RING_PER_WORKER)
		per = RING_PER_WORKER;
	p->ring_limit = (unsigned)per * p->nworkers;
}

void br__remote_put(br_pool *p)
{
	br__pool_put(p);
}

void br__pool_remote_kick(struct br_pool *p)
{
	ops_of()->kick(p->remote);
}

void br__pool_remote_stop(struct br_pool *p)
{
	void *state;

	pthread_mutex_lock(&p->lock);
	state = p->remote;
	p->remote = NULL;
	pthread_mutex_unlock(&p->lock);
	if (state)
		ops_of()->pool_free(state);
}

void br__pool_remote_cancel(struct br_pool *p, struct pjob *j)
{
	BR__ASSERT_MUTEX_HELD(&p->lock);
	if (p->remote)
		ops_of()->cancel(p->remote, j->rank, j->id);
}

size_t br__remote_take(br_pool *p, int rank, struct br__remote_job *out,
		       size_t max, size_t max_bytes, int64_t min_wait_ns,
		       int64_t *due_ns)
{
	int64_t since = min_wait_ns > 0 ? br_now_ns() - min_wait_ns : 0;
	size_t n = 0, bytes = 0;

	pthread_mutex_lock(&p->lock);
	while (n < max && !p->closing) {
		struct br__list_node *head = p->overflow.head;
		struct pjob *j;

		if (!head)
			break;
		j = br__list_entry(head, struct pjob, link);
		if (n && bytes + j->len > max_bytes)
			break;
		if (min_wait_ns > 0 && j->queued_ns > since) {
			/* Oldest first: the jobs behind it are younger. */
			*due_ns = j->queued_ns + min_wait_ns;
			break;
		}
		br__list_remove(&p->overflow, head);
		atomic_fetch_sub_explicit(&p->ov_n, 1, memory_order_relaxed);
		j->where = W_REMOTE;
		j->rank = rank;
		out[n++] = (struct br__remote_job){
			.id = j->id,
			.fn = j->fn,
			.in = j->in,
			.len = j->len,
			.nitems = j->nitems,
			.timeout_ns = j->timeout_ns,
		};
		bytes += j->len;
	}
	pthread_mutex_unlock(&p->lock);
	return n;
}

/* Claim the W_REMOTE job id of p, or NULL if it is no longer one. */
static struct pjob *claim_remote(br_pool *p, uint64_t id)
{
	struct pjob *j;

	pthread_mutex_lock(&p->lock);
	j = br__pool_tab_find(p, id);
	if (j && (j->where != W_REMOTE || !br__pool_claim_job(p, j)))
		j = NULL;
	pthread_mutex_unlock(&p->lock);
	return j;
}

void br__remote_done(br_pool *p, uint64_t id, const void *items, size_t len)
{
	struct pjob *j = claim_remote(p, id);

	if (j) {
		br__pool_settle_items(j, items, len);
		br__pool_settled(p, 1);
	}
}

void br__remote_fail(br_pool *p, uint64_t id, int err, const char *msg)
{
	struct pjob *j = claim_remote(p, id);

	if (j) {
		br__pool_fail_job(j, BR_FAILED, err < 0 ? err : BR_EWORKERDIED,
				  msg);
		br__pool_settled(p, 1);
	}
}

void br__remote_lost(br_pool *p, int rank, const char *why)
{
	if (rank >= 0)
		br__pool_fail_where(p, rank, BR_FAILED, BR_EWORKERDIED, why);
}

br_future *br__remote_run(br_pool *p, br_job_fn fn, const void *in, size_t len,
			  uint32_t nitems, int64_t timeout_ns)
{
	struct pjob *j;
	int r = br__pool_check(p);

	if (r < 0)
		return br__future_failed(r, "not a pool");
	if (!fn || !nitems || (!in && len) || len > p->max_payload)
		return br__future_failed(-EINVAL, "a malformed remote job");
	j = br__pool_job_new(p, JOB_CHUNK, fn, in, len, nitems, timeout_ns);
	if (!j)
		return &br__future_enomem;
	r = br__pool_enqueue(p, j, 1);
	if (r < 0) {
		j->where = W_DONE;
		br__pool_fail_job(j, BR_FAILED, r, br__pool_refusal(p, r));
		return &j->fut;
	}
	br__pool_wake_workers(p, 1);
	return &j->fut;
}

size_t br__remote_waiting(br_pool *p)
{
	return atomic_load_explicit(&p->ov_n, memory_order_relaxed);
}

unsigned br__remote_local_workers(br_pool *p)
{
	return br__pool_check(p) < 0 ? 0 : p->nworkers;
}
