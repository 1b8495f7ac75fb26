/* SPDX-License-Identifier: MIT */
/*
 * pool.h - the process pool's parent side, shared by its four files:
 *
 *   pool.c        the pool's life (br_pool_new/free), submitting, and the
 *                 operations of a job's future (cancel, free)
 *   pool_queue.c  the job table, the input arena, the overflow list, the
 *                 job ring's producer side, completion and the collector
 *   pool_procs.c  worker processes: fork, watch, replace, time limits
 *   pool_map.c    br_map, br_map_result and br_imap
 *
 * pool_shm.h is the memory shared with the workers, pool_worker.c the
 * worker process's side, and zygote.c the process that forks workers.
 *
 * A job's life (struct pjob.where, changed under pool->lock only)
 *
 *   W_NEW ---------> W_RING ----------------------------> W_DONE
 *     |   ring_push   ^   |  result drained; worker died;      ^
 *     |               |   |  cancelled; the pool closed         |
 *     |        refill |   |                                     |
 *     +--> W_OVERFLOW-+   +--> W_OVERFLOW (front): its worker   |
 *              |               was killed for another job's     |
 *              |               sake, and it goes round again    |
 *              +------------------------------------------------+
 *              |     cancelled while queued; the pool closed    |
 *              +--> W_REMOTE --------------------------------->-+
 *         taken by the transport   its result came back; its rank
 *         for another rank         died; cancelled; the pool closed
 *
 * Invariants
 *   - A W_OVERFLOW or W_RING job is in the table (tab_find(j->id) == j);
 *     W_NEW is not there yet, and W_DONE is out of it for good.
 *   - br__pool_claim_job() is the only way into W_DONE from the table,
 *     and it takes the job out of the table, the overflow list and the
 *     arena under the lock: whoever claims a job completes its future,
 *     exactly once, outside the lock, and then says so with
 *     br__pool_settled(); pool->settling counts the claimed jobs not yet
 *     completed, so that br_pool_free() returns only once every job's
 *     future has completed.
 *   - W_OVERFLOW <=> j->link is on pool->overflow (FIFO, but a requeued
 *     job goes to the front); ov_n counts them.
 *   - W_REMOTE: j->rank is the rank it was shipped to; its input stays
 *     with it (own, or the caller's items) until it is settled.
 *   - W_RING: j->pos is the ring position of its slot, whose state is
 *     FULL(pos) or CLAIMED(pos, owner) while the job is there; arena_g is
 *     its input's first arena granule, or SIZE_MAX when the input is in
 *     the slot.
 *   - The table holds one reference to a job from br__pool_enqueue() until
 *     its claimer has completed it; the submitter holds the other.
 *   - pool->timed counts the jobs with a time limit (j->timed) that are
 *     not yet settled.
 *   - A worker's pid and pidfd are 0 and -1 exactly while it is being
 *     replaced; kill names why we signalled it (KILL_*) and kill_id the
 *     job it ran then.
 *
 * Concurrency
 *   - pool->lock (a pthread mutex, short sections): the job table, the
 *     overflow list, the arena map, ring production, workers' pids, kill
 *     reasons, inflight and closing. Futures are completed outside it
 *     (callbacks may submit).
 *   - pool->drain: one thread drains a given result ring at a time (the
 *     collector, or a watcher after a death). Lock order: drain, then
 *     lock.
 *   - The tasks of a pool (collector, timer, one watcher per worker) run
 *     on the runtime's workers; forks and reaps run on its blocking pool.
 *
 * Memory ordering
 *   As pool_shm.h says for the rings and doorbells. refs: acq_rel.
 *
 * Lifetime
 *   struct br_pool is reference counted: the caller's reference, one per
 *   task of the pool (dropped when the task's future completes, whether
 *   it ran or was cancelled before it started) and one per job, so a
 *   late br_cancel or a task finishing never touches freed memory.
 *   The heavy parts (the shared mapping, the memfd, the eventfd) have a
 *   count of their own, users: the pool until br_pool_free, and each of
 *   its tasks while it runs (br__pool_enter/leave). The last user
 *   releases them, so a pool freed while its runtime's workers are busy
 *   gives them back at once, not when its tasks are finally dropped.
 */
#ifndef BR_POOL_H
#define BR_POOL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "braid.h"
#include "future.h"
#include "internal.h"
#include "list.h"
#include "pool_shm.h"

/* The initializer's argument is copied into the shared mapping. */
#define BR__POOL_MAX_INIT (64u << 10)
#define BR__POOL_DEFAULT_PAYLOAD ((size_t)64 << 20)
#define BR__POOL_MAX_PAYLOAD ((size_t)1 << 30)
/* The input arena's allocation unit: big inputs are rare, and a byte
 * map over 64 KiB granules is small and quick to scan. */
#define BR__POOL_GRANULE ((size_t)64 << 10)
/* Freed arena and big-area runs at least this long are punched out of
 * the memfd, so a burst of big jobs leaves no resident pages behind. */
#define BR__POOL_PUNCH_MIN ((size_t)1 << 20)
/* A job's message is copied out of the worker's result into this much
 * room (BR__POOL item messages are capped likewise in pool_worker.c). */
#define BR__POOL_MSG_MAX 1024
/* A worker whose zygote's answer was lost is looked for this long: it
 * takes its index first thing, within microseconds of its clone unless
 * the machine is starved. */
#define BR__POOL_ADOPT_NS (1000 * BR__NS_PER_MS)

enum {
	JOB_SUBMIT, /* br_submit: one item, its output is the future's bytes */
	JOB_CHUNK,  /* a chunk of br_map or br_imap: encoded items */
};

enum {
	W_NEW,
	W_OVERFLOW,
	W_RING,
	W_REMOTE, /* shipped to another rank (pool_remote.c) */
	W_DONE
};

enum {
	KILL_NONE,
	KILL_TIMEOUT,
	KILL_CANCEL,
	KILL_UNWATCHED /* it could not be watched: what it held goes round */
};

struct pmap;

struct pjob {
	struct br_future fut; /* first: the job's future (job_ops) */
	struct br_pool *pool;
	uint8_t type;	/* JOB_SUBMIT or JOB_CHUNK */
	uint8_t where;	/* W_*, under lock */
	uint8_t timed;	/* counted in pool->timed */
	uint8_t cancel; /* br_cancel() came while a worker held it; lock */
	uint64_t id;	/* table index | generation << 32 */
	br_job_fn fn;
	const char *in; /* input: the caller's items, or own */
	void *own;	/* a private copy of a submit's input */
	size_t len;
	uint32_t nitems;
	int64_t timeout_ns;
	uint64_t pos;	/* W_RING: its slot's position */
	size_t arena_g; /* W_RING, big: first granule, else SIZE_MAX */
	size_t arena_n; /* granules */
	struct br__list_node link; /* W_OVERFLOW: on pool->overflow */
	/* When it joined the overflow list on submission, if the pool
	 * spans ranks (br__remote_take: how long it has waited); 0 for a
	 * job that comes back to it, which may go at once. */
	int64_t queued_ns;
	struct pmap *map; /* JOB_CHUNK of a br_map, else NULL */
	size_t first;	  /* JOB_CHUNK: index of its first item */
	int rank;	  /* W_REMOTE: where it went */
};
_Static_assert(offsetof(struct pjob, fut) == 0,
	       "a job is its future: future.c frees it through job_ops");

struct pmap {
	struct br_future fut; /* first: the map's future (map_ops) */
	struct br_pool *pool;
	size_t n, nchunks;
	struct pjob **chunks;
	_Atomic size_t left;  /* chunks not yet settled, + 1 while queueing */
	unsigned flags;	      /* BR_MAP_*, fixed at creation */
	atomic_int cancelled; /* br_cancel() was called on it */
};
_Static_assert(offsetof(struct pmap, fut) == 0,
	       "a map is its future: future.c frees it through map_ops");

struct pworker {
	pid_t pid; /* 0 while being replaced */
	int pidfd; /* -1 while being replaced */
	int kill;  /* KILL_*: why we killed it, under lock */
	uint64_t kill_id;
	unsigned init_fails;
	int64_t started_ns; /* when it was forked: its initializer's clock */
	int disabled;	    /* its initializer failed INIT_FAILS_MAX times */
	uint32_t gen;	    /* of its last fork request (BR__PW_OWNER) */
	br_future *watch;
	struct br__waiter watch_ended; /* drops the watcher's reference */
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
	int64_t init_limit_ns; /* how long an initializer may run */
	size_t max_payload;
	struct pworker *w;
	br_future *collector, *timer;
	struct br__waiter collector_ended, timer_ended;
	unsigned users; /* the pool and its running tasks; under lock */
	pthread_mutex_t lock, drain;
	pthread_cond_t quiet; /* inflight reached 0 */
	unsigned inflight;    /* forks and reaps under way */
	unsigned settling;    /* jobs claimed and not yet completed */
	int closing;
	const char *broken; /* no job can ever run: why */
	int broken_err;	    /* and the error jobs fail with */
	/* job table: id = gen << 32 | index */
	struct pjob **tab;
	uint32_t tabcap, tabn, *freeidx, nfree;
	uint32_t gen;
	struct br__list overflow; /* W_OVERFLOW jobs, oldest first */
	/* Another transport takes jobs too (pool_remote.c): then at most
	 * ring_limit jobs sit in the local ring, so that the rest wait where
	 * every rank can take them. remote is the transport's state. */
	void *remote;
	unsigned remote_workers;
	unsigned ring_jobs, ring_limit; /* W_RING jobs; under lock */
	int64_t run_ns; /* with remote: jobs' recent run time; under lock */
	_Atomic size_t ov_n;
	/* arena: one byte per granule, 1 = used */
	unsigned char *amap;
	size_t agranules;
	/* time limits */
	_Atomic int64_t timed; /* pending jobs with a limit */
	_Atomic int64_t min_timeout_ns;
	br_event timed_ev;
};

/*
 * br__pool_kill_worker - SIGKILL worker pid (through pidfd when >= 0) and
 * every process of its group: the worker made the group its own as it
 * started (zygote.c), so this reaches the children its jobs left behind.
 * Call it before the worker is reaped: a zombie keeps its pid, so the
 * group's id cannot have been reused. Context: any thread.
 */
void br__pool_kill_worker(pid_t pid, int pidfd);

/* ---- pool.c ---- */

/* Take and drop a reference to p; the last drop frees it. */
struct br_pool *br__pool_get(struct br_pool *p);
void br__pool_put(struct br_pool *p);

/*
 * br__pool_enter - a task of p starts to use the shared memory and the
 * eventfd: returns 1, or 0 if the pool is closing, and then the task must
 * not touch them and returns at once. br__pool_leave - it has stopped;
 * the last user releases them. Context: the pool's tasks.
 */
int br__pool_enter(struct br_pool *p);
void br__pool_leave(struct br_pool *p);

/* 0 if p is a live pool, else -EINVAL (NULL) or BR_EBADOBJ. */
int br__pool_check(struct br_pool *p);

/* A new job of p (W_NEW, two references: the caller's and the table's),
 * or NULL if out of memory. */
struct pjob *br__pool_job_new(struct br_pool *p, uint8_t type, br_job_fn fn,
			      const void *in, size_t len, uint32_t nitems,
			      int64_t timeout_ns);

/* br_cancel() of one job: 0, or BR_EDONE if it has already finished. */
int br__pool_job_cancel(struct pjob *j);

/* ---- pool_queue.c ---- */

/* What a job refused by br__pool_enqueue with err fails with: why the
 * pool takes no more jobs. */
const char *br__pool_refusal(const struct br_pool *p, int err);

/*
 * br__pool_enqueue - put j in the table, then the ring, or the overflow
 * list behind the jobs already there. copy: give j a private copy of its
 * input if it has to wait in overflow. Returns 0; 1 if j waits in
 * overflow and no job did before (a transport that takes jobs from there
 * looks again by itself while any wait: this is when to tell it); or
 * BR_ECLOSED, BR_EWORKERDIED (no worker can ever run it) or -ENOMEM with
 * j untouched.
 */
int br__pool_enqueue(struct br_pool *p, struct pjob *j, int copy);

/* Wake up to n workers sleeping on the job bell; none if none sleeps. */
void br__pool_wake_workers(struct br_pool *p, int n);

/* The pending job with this id, or NULL. Caller holds p->lock. */
struct pjob *br__pool_tab_find(struct br_pool *p, uint64_t id);

/*
 * br__pool_claim_job - move j to W_DONE, taking it out of the table, the
 * overflow list and the arena, so nothing else settles it. Returns 1 if
 * the caller now owns its completion, 0 if j is NULL or already done.
 * Caller holds p->lock; it calls br__pool_settled() once it has
 * completed what it claimed.
 */
int br__pool_claim_job(struct br_pool *p, struct pjob *j);

/* n jobs claimed by the caller have been completed. Takes p->lock. */
void br__pool_settled(struct br_pool *p, unsigned n);

/*
 * br__pool_requeue - give j, whose worker died for another job's sake,
 * back to the front of the overflow list; a submit's input is copied back
 * out of its slot sl first. Returns 0, or -ENOMEM (j untouched). Caller
 * holds p->lock.
 */
int br__pool_requeue(struct br_pool *p, struct pjob *j,
		     const struct br__pool_slot *sl);

/* Complete j, which the caller claimed, from its encoded items at data
 * (len bytes, pool_shm.h's format), and drop the table's reference. */
void br__pool_settle_items(struct pjob *j, const void *data, size_t len);

/* Fail (or cancel) j, which the caller claimed, and drop the table's
 * reference. */
void br__pool_fail_job(struct pjob *j, br_state st, int err, const char *msg);

/* Claim and fail every pending job: the pool closes, or every worker's
 * initializer keeps failing and nothing queued can ever run. */
void br__pool_fail_all(struct br_pool *p, br_state st, int err,
		       const char *msg);

/* The same for the jobs shipped to rank only (rank < 0: every job). */
void br__pool_fail_where(struct br_pool *p, int rank, br_state st, int err,
			 const char *msg);

/* Drain worker w's result ring and complete what it holds. Returns how
 * many results it took. */
int br__pool_drain(struct br_pool *p, unsigned w);

/* Move what overflow holds into the ring and wake workers for it; force:
 * look under the lock even if the unlocked count says there is nothing.
 * Returns how many jobs moved. */
int br__pool_refill(struct br_pool *p, int force);

/* Wake the collector wherever it is: it drains every result ring and
 * refills the ring. Context: any thread. */
void br__pool_kick_collector(struct br_pool *p);

/* The collector task (br_spawn's fn; arg is the pool). */
void *br__pool_collector(void *arg);

/* ---- pool_procs.c ---- */

/* Blocking-pool call: fork every worker, wait until each has run its
 * initializer. Returns 0 or a negative error as the call's value. */
void *br__pool_start(void *arg);

/* The watcher task of worker arg (a struct pworker), and the time-limit
 * task of pool arg. */
void *br__pool_watch(void *arg);
void *br__pool_timer(void *arg);

/* Kill every worker, wait for forks and reaps in flight, reap. Caller set
 * closing. */
void br__pool_stop_workers(struct br_pool *p);

/*
 * br__pool_poll - how the pool's tasks wait for fd to be readable: 0, or
 * -ETIMEDOUT at deadline_ns (CLOCK_MONOTONIC; < 0: none), or -ECANCELED
 * once the task is cancelled (the pool or the runtime closes). Any other
 * failure of br_poll() (no SQE, no memory, an interrupted poll(2)) is not
 * an end: the task waits a moment, looks with a plain poll(2), and asks
 * the loop again, so the pool never loses its collector or a watcher to
 * one. Context: a task of the pool.
 */
int br__pool_poll(int fd, int64_t deadline_ns);

/* ---- pool_remote.c ---- */

/* A pool with br_pool_config.mpi set: hand it to the registered
 * transport, if any. 0 (also without one: the pool stays local), or a
 * negative error. */
int br__pool_remote_start(struct br_pool *p, const br_pool_config *cfg);

/* Jobs wait in p's overflow list: tell the transport. */
void br__pool_remote_kick(struct br_pool *p);

/* p closes: its remote jobs have been failed; the transport lets go. */
void br__pool_remote_stop(struct br_pool *p);

/* With remote: a local worker ran a job for ns, which the ring's depth
 * follows. Under lock. */
void br__pool_remote_ran(struct br_pool *p, int64_t ns);

/* A W_REMOTE job was cancelled: the transport tells its rank. */
void br__pool_remote_cancel(struct br_pool *p, struct pjob *j);

/* ---- pool_map.c ---- */

/* A chunk of m settled; the last one completes m. */
void br__pool_map_chunk_done(struct pmap *m);

#endif /* BR_POOL_H */
