/* SPDX-License-Identifier: MIT */
/*
 * pool.c - the process pool's life and its front door: br_pool_new and
 * br_pool_free, br_submit, and the operations of a job's future (cancel
 * and free), which future.c calls through job_ops.
 *
 * Design
 *   Shared memory (pool_shm.h) is one memfd made here and handed to each
 *   worker by the zygote (zygote.c), so every worker, replacements
 *   included, maps the same rings. A job is a struct pjob whose first
 *   member is its future (pool.h). br_pool_new forks the workers on the
 *   blocking pool, waits until each has run its initializer, then starts
 *   the pool's tasks: the collector (pool_queue.c), the timer and one
 *   watcher per worker (pool_procs.c).
 *
 *   br_pool_free: closing is set under the lock, every worker is killed
 *   (pidfd_send_signal) and reaped by the caller, forks in flight are
 *   waited for (they kill and reap what they made once they see closing),
 *   every pending job ends CANCELLED, and the tasks are cancelled.
 *
 *   Cancelling a job takes it back if no worker has claimed it; a running
 *   job is cancelled by killing its worker (which is then replaced).
 *
 * Concurrency
 *   As pool.h says.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "child.h"
#include "clock.h"
#include "futex.h"
#include "pool.h"
#include "runtime.h"
#include "wait.h"
#include "zygote.h"

struct br_pool *br__pool_get(struct br_pool *p)
{
	atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
	return p;
}

int br__pool_check(struct br_pool *p)
{
	if (!p)
		return -EINVAL;
	if (p->magic != BR__MAGIC_POOL)
		return BR_EBADOBJ;
	return 0;
}

static void job_free(struct br_future *f);
static int job_cancel(struct br_future *f);

static const struct br__future_ops job_ops = {
	.name = "process job",
	.free = job_free,
	.cancel = job_cancel,
};

struct pjob *br__pool_job_new(struct br_pool *p, uint8_t type, br_job_fn fn,
			      const void *in, size_t len, uint32_t nitems,
			      int64_t timeout_ns)
{
	struct pjob *j = calloc(1, sizeof(*j));

	if (!j)
		return NULL;
	/* The caller's reference, and the table's (dropped at the end). */
	br__future_init(&j->fut, &job_ops, 2);
	j->type = type;
	j->where = W_NEW;
	j->pool = br__pool_get(p);
	j->fn = fn;
	j->in = in;
	j->len = len;
	j->nitems = nitems;
	j->timeout_ns = timeout_ns;
	j->arena_g = SIZE_MAX;
	return j;
}

int br__pool_job_cancel(struct pjob *j)
{
	struct br_pool *p = j->pool;
	struct br__pool_shm *s = p->shm;
	int mine = 0, killed = 0;

	pthread_mutex_lock(&p->lock);
	if (j->where == W_OVERFLOW || j->where == W_NEW) {
		mine = br__pool_claim_job(p, j);
	} else if (j->where == W_REMOTE) {
		/* Its result, if it comes, finds no job and is dropped. */
		br__pool_remote_cancel(p, j);
		mine = br__pool_claim_job(p, j);
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
			mine = br__pool_claim_job(p, j);
			br__pool_release(s, j->pos);
		} else if (BR__JS_TAG(st) == BR__JS_CLAIMED &&
			   BR__JS_POS(st) == j->pos &&
			   BR__JS_OWNER(st) < p->nworkers) {
			struct pworker *pw = &p->w[BR__JS_OWNER(st)];

			/* A worker already dying for another job, or not
			 * yet watched (its fork has not returned), is killed
			 * for this one by whoever settles or registers it:
			 * j->cancel tells them. */
			j->cancel = 1;
			killed = 1;
			if (pw->kill == KILL_NONE && pw->pidfd >= 0) {
				pw->kill = KILL_CANCEL;
				pw->kill_id = j->id;
				br__pool_kill_worker(pw->pid, pw->pidfd);
			}
		}
	}
	pthread_mutex_unlock(&p->lock);
	if (mine) {
		br__pool_fail_job(j, BR_CANCELLED, -ECANCELED, "cancelled");
		br__pool_settled(p, 1);
		br__pool_refill(p, 0);
		return 0;
	}
	return killed ? 0 : BR_EDONE;
}

static void job_free(struct br_future *f)
{
	struct pjob *j = br__container_of(f, struct pjob, fut);
	struct br_pool *p = j->pool;

	free(j->own);
	br__future_destroy(f);
	free(j);
	br__pool_put(p);
}

static int job_cancel(struct br_future *f)
{
	return br__pool_job_cancel(br__container_of(f, struct pjob, fut));
}

static br_future *submit(br_pool *pool, br_job_fn fn, const void *in,
			 size_t len, int64_t timeout_ns)
{
	struct pjob *j;
	int r = br__pool_check(pool);

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
	j = br__pool_job_new(pool, JOB_SUBMIT, fn, in, len, 1, timeout_ns);
	if (!j)
		return &br__future_enomem;
	r = br__pool_enqueue(pool, j, 1);
	if (r < 0) {
		j->where = W_DONE;
		br__future_complete(&j->fut, BR_FAILED, NULL, NULL, 0, r,
				    br__pool_refusal(pool, r));
		br_future_release(&j->fut); /* the table's */
		return &j->fut;
	}
	br__pool_wake_workers(pool, 1);
	/* Only when the first job waits: the driver looks again by itself
	 * while any do, and a kick on every submission woke it, a futex
	 * wake-up and a thread on rank 0's CPUs, once per job. */
	if (r > 0 && pool->remote)
		br__pool_remote_kick(pool);
	return &j->fut;
}

br_future *br_submit(br_pool *pool, br_job_fn fn, const void *in, size_t len)
{
	return submit(pool, fn, in, len,
		      pool && !br__pool_check(pool) ? pool->timeout_ns : 0);
}

br_future *br_submit_timeout(br_pool *pool, br_job_fn fn, const void *in,
			     size_t len, int64_t timeout_ms)
{
	if (timeout_ms < 0)
		return br__future_failed(-EINVAL,
					 "br_submit_timeout: negative limit");
	return submit(pool, fn, in, len, br__ms_to_ns(timeout_ms));
}

/* The shared mapping, the memfd and the eventfd go, and the job table
 * and arena map with them: once the pool closed and its tasks are done,
 * every job is W_DONE and nothing looks there again. */
static void release_shared(struct br_pool *p)
{
	if (p->shm)
		munmap(p->shm, p->shm_size);
	if (p->memfd >= 0)
		close(p->memfd);
	if (p->efd >= 0)
		close(p->efd);
	p->shm = NULL;
	p->memfd = p->efd = -1;
	free(p->tab);
	free(p->freeidx);
	free(p->amap);
	p->tab = NULL;
	p->freeidx = NULL;
	p->amap = NULL;
	p->tabn = p->tabcap = p->nfree = 0;
	p->agranules = 0;
}

void br__pool_kill_worker(pid_t pid, int pidfd)
{
	br__child_kill(pid, pidfd);
	if (pid > 0)
		kill(-pid, SIGKILL);
}

int br__pool_enter(struct br_pool *p)
{
	int ok;

	pthread_mutex_lock(&p->lock);
	ok = !p->closing;
	if (ok)
		p->users++;
	pthread_mutex_unlock(&p->lock);
	return ok;
}

void br__pool_leave(struct br_pool *p)
{
	pthread_mutex_lock(&p->lock);
	BR_DEBUG_ASSERT(p->users > 0);
	if (--p->users == 0)
		release_shared(p);
	pthread_mutex_unlock(&p->lock);
}

void br__pool_put(struct br_pool *p)
{
	if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1)
		return;
	release_shared(p);
	pthread_mutex_destroy(&p->lock);
	pthread_mutex_destroy(&p->drain);
	pthread_cond_destroy(&p->quiet);
	br_event_destroy(&p->timed_ev);
	free(p->w);
	p->magic = BR__MAGIC_DEAD;
	free(p);
}

static int make_shm(struct br_pool *p, const br_pool_config *cfg)
{
	struct br__pool_shm *s;
	size_t stride = (size_t)BR__POOL_SLOT * (1 + BR__POOL_RESULTS);
	size_t big = br__page_round(p->max_payload + 2 * BR__POOL_SLOT);
	size_t arena = (2 * p->max_payload + BR__POOL_GRANULE - 1) /
		       BR__POOL_GRANULE * BR__POOL_GRANULE;
	size_t off = 0, init_off, jobs_off, workers_off, big_off, arena_off;

	off = br__page_round(sizeof(*s));
	init_off = off;
	off += br__page_round(cfg->init_len);
	jobs_off = off;
	off += (size_t)BR__POOL_JOBS * BR__POOL_SLOT;
	workers_off = off;
	off += stride * p->nworkers;
	big_off = off;
	off += big * p->nworkers;
	arena_off = off;
	off += arena;

	p->memfd = BR__FAULT_ERRNO("braid/pool/memfd", EMFILE) ?
			   -1 :
			   memfd_create("braid-pool", MFD_CLOEXEC);
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
	/* A first touch of a page costs a fault, more than a batched
	 * populate does: give the rings their pages now rather than to the
	 * first jobs. The big areas and the arena stay sparse. */
	br__pool_populate(s, 0);
	p->agranules = arena / BR__POOL_GRANULE;
	p->amap = calloc(p->agranules, 1);
	return p->amap ? 0 : -ENOMEM;
}

static unsigned online_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 0 ? (unsigned)(n > BR__POOL_MAX_WORKERS ?
					  BR__POOL_MAX_WORKERS :
					  n) :
		       1;
}

/* A task of the pool that fails never ran (no stack for it): then
 * nothing collects results, watches a worker or times jobs out, and what
 * waits would wait for good. Fail it, and what comes. */
static void task_failed(struct br_pool *p, int error)
{
	int err = 0;

	pthread_mutex_lock(&p->lock);
	if (!p->closing && !p->broken) {
		err = error;
		p->broken = "the pool could not run one of its tasks";
		p->broken_err = err;
	}
	pthread_mutex_unlock(&p->lock);
	if (err)
		br__pool_fail_all(p, BR_FAILED, err, p->broken);
}

static void task_ended(struct br__waiter *w, struct br_future *f)
{
	struct br_pool *p = w->u.obj;

	if (br_future_state(f) == BR_FAILED)
		task_failed(p, br_future_error(f));
	/* The reference pool_task took for us: br_pool_free may drop the
	 * pool's own while this runs. */
	br_future_release(f);

	/* Release: the last touch of w (future.h); p may go with the put. */
	atomic_store_explicit(&w->st, BR__W_DONE, memory_order_release);
	br__pool_put(p);
}

/*
 * Spawn one of the pool's tasks. It holds a reference to p until its
 * future completes, whether it ran or was cancelled before it started
 * (then it never runs, and nothing of its own could drop the reference):
 * ended, a waiter in p, drops it. A spawn that fails gives the reference
 * back and sets *err.
 */
static br_future *pool_task(struct br_pool *p, br_task_fn fn, void *arg,
			    struct br__waiter *ended, int *err)
{
	br_future *f;

	br__pool_get(p);
	f = br_spawn(p->rt, fn, arg);
	if (br_future_state(f) == BR_FAILED) {
		br__pool_put(p);
		if (*err == 0)
			*err = br_future_error(f);
		return f;
	}
	ended->fire = task_ended;
	ended->u.obj = p;
	br_future_retain(f); /* task_ended's, to read f */
	if (!br__future_wait_on(f, ended))
		task_ended(ended, f); /* it has ended already */
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
	if (cfg->workers > BR__POOL_MAX_WORKERS ||
	    cfg->init_len > BR__POOL_MAX_INIT ||
	    (cfg->init_len && !cfg->init_arg) || cfg->timeout_ms < 0 ||
	    cfg->init_timeout_ms < 0 || cfg->max_payload > BR__POOL_MAX_PAYLOAD)
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
	p->users = 1;
	p->ring_limit = BR__POOL_JOBS;
	p->rt = rt;
	p->memfd = p->efd = -1;
	p->nworkers = cfg->workers ? cfg->workers : online_cpus();
	p->timeout_ns = br__ms_to_ns(cfg->timeout_ms);
	p->init_limit_ns = br__ms_to_ns(cfg->init_timeout_ms ?
						cfg->init_timeout_ms :
						BR_POOL_INIT_TIMEOUT_MS);
	p->max_payload = cfg->max_payload ? cfg->max_payload :
					    BR__POOL_DEFAULT_PAYLOAD;
	pthread_mutex_init(&p->lock, NULL);
	pthread_mutex_init(&p->drain, NULL);
	pthread_cond_init(&p->quiet, NULL);
	br_event_init(&p->timed_ev);
	p->w = calloc(p->nworkers, sizeof(*p->w));
	r = p->w ? make_shm(p, cfg) : -ENOMEM;
	if (r == 0) {
		p->efd = BR__FAULT_ERRNO("braid/pool/eventfd", EMFILE) ?
				 -1 :
				 eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (p->efd < 0 || br__pool_mark_doorbell(p->shm, p->efd) < 0)
			r = -errno;
	}
	for (unsigned w = 0; p->w && w < p->nworkers; w++) {
		p->w[w].pidfd = -1;
		p->w[w].pool = p;
		p->w[w].idx = w;
	}
	if (r == 0) {
		f = br_spawn_blocking(rt, br__pool_start, p);
		/* Not ended by a cancellation or a deadline scope: the call
		 * uses p until it returns, and its initializers are
		 * bounded by their own time limit. */
		r = br__wait_any(&f, 1, -1, BR__WAIT_NOCANCEL);
		if (r >= 0)
			r = br__future_result(f, &v);
		if (r == 0)
			r = (int)(intptr_t)v;
		br_future_release(f);
	}
	if (r == 0) {
		p->collector = pool_task(p, br__pool_collector, p,
					 &p->collector_ended, &r);
		p->timer = pool_task(p, br__pool_timer, p, &p->timer_ended, &r);
		for (unsigned w = 0; w < p->nworkers; w++)
			p->w[w].watch = pool_task(p, br__pool_watch, &p->w[w],
						  &p->w[w].watch_ended, &r);
	}
	if (r == 0 && cfg->mpi)
		r = br__pool_remote_start(p, cfg);
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
	br__pool_stop_workers(p);
	br__pool_fail_all(p, BR_CANCELLED, -ECANCELED,
			  "cancelled: the pool was freed");
	br__pool_remote_stop(p);
	/* A job another thread claimed (a result, a death, a cancel) is
	 * being completed there: it is done when this returns. */
	pthread_mutex_lock(&p->lock);
	while (p->settling)
		pthread_cond_wait(&p->quiet, &p->lock);
	pthread_mutex_unlock(&p->lock);
	if (started) {
		end_task(p->collector);
		end_task(p->timer);
		for (unsigned w = 0; w < p->nworkers; w++)
			end_task(p->w[w].watch);
	}
	p->magic = BR__MAGIC_DEAD;
	br__zygote_put();
	br__pool_leave(p); /* the pool's use of the shared parts */
	br__pool_put(p);
}

int br_pool_pids(br_pool *p, pid_t *pids, size_t n)
{
	int r = br__pool_check(p);

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
