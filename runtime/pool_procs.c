/* SPDX-License-Identifier: MIT */
/*
 * pool_procs.c - the process pool's worker processes, parent side:
 * starting them, watching them die, settling what they held, replacing
 * them, and killing those past a job's time limit.
 *
 * Design
 *   Workers are forked by the zygote (zygote.c), which is asked through
 *   the blocking pool: a fork takes about a millisecond, and the loops
 *   never wait for it.
 *
 *   One watcher task per worker polls the worker's pidfd through the
 *   loop. When the worker ends it reaps it (waitid P_PIDFD: workers are
 *   our children, see zygote.c), drains its results, and settles the job
 *   its slot still names: -ETIMEDOUT or CANCELLED if we killed it for
 *   that job, back to the queue if we killed it for a job it had already
 *   finished, BR_EWORKERDIED naming the signal otherwise. Then it asks
 *   for a replacement. A worker whose initializer fails INIT_FAILS_MAX
 *   times in a row is disabled; when every worker is, everything pending
 *   fails, since nothing could ever run it.
 *
 *   The timer task runs only while jobs with a time limit are pending:
 *   every eighth of the smallest limit (TIMER_MIN_NS to TIMER_MAX_NS), it
 *   kills the workers whose running job is past its deadline.
 *
 * Concurrency
 *   Workers' pids, pidfds, kill reasons and inflight under pool->lock
 *   (pool.h). A fork or a reap in flight is counted in inflight, so that
 *   br_pool_free waits for it.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
#include "clock.h"
#include "pool.h"
#include "runtime.h"
#include "stats.h"
#include "zygote.h"

/* Initializer failures in a row before a worker slot gives up. */
#define INIT_FAILS_MAX 3
/* A pause before retrying a failed initializer, so that one that fails
 * at once does not spin the zygote. */
#define INIT_RETRY_MS 100
/* Forks tried before the zygote counts as gone, FORK_RETRY_MS apart. */
#define FORK_TRIES 10
#define FORK_RETRY_MS 100
/* How long the braid/pool/register_late fault point holds a fork up. */
#define REGISTER_LATE_MS 300
/* The time-limit check's period: an eighth of the smallest limit, within
 * these bounds (a finer check costs wake-ups for nothing). */
#define TIMER_MIN_NS (1 * BR__NS_PER_MS)
#define TIMER_MAX_NS (100 * BR__NS_PER_MS)
/* A pause before a pool task asks its loop again after a shortage. */
#define SHORTAGE_RETRY_MS 1
/* Room for a death's description ("worker process N was killed by ..."). */
#define WHY_MAX 160

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
	else if (WEXITSTATUS(status) == BR__POOL_EXIT_LOST)
		snprintf(buf, n,
			 "worker process %d left: a job closed or replaced "
			 "the descriptor it reports through",
			 (int)pid);
	else
		snprintf(buf, n, "worker process %d exited with status %d",
			 (int)pid, WEXITSTATUS(status));
}

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
	atomic_store_explicit(&ws->owner, BR__PW_OWNER(++p->w[w].gen, 0),
			      memory_order_relaxed);
	atomic_store_explicit(&ws->state, BR__PW_STARTING,
			      memory_order_release);
	pthread_mutex_unlock(&p->drain);
}

/*
 * The zygote took the request for worker w and its answer was lost: the
 * worker it may have made takes its index within BR__POOL_ADOPT_NS of
 * starting. Its pid, or 0 after which no worker of that request can take
 * the index (a late one leaves at once).
 */
static pid_t adopt(struct br_pool *p, unsigned w)
{
	struct br__pool_wstate *ws = br__pool_ws(p->shm, w);
	uint32_t gen = p->w[w].gen;
	int64_t until = br_now_ns() + BR__POOL_ADOPT_NS;
	uint64_t o;

	do {
		o = atomic_load_explicit(&ws->owner, memory_order_acquire);
		if (BR__PW_OWNER_PID(o))
			return BR__PW_OWNER_PID(o);
		usleep(1000);
	} while (br_now_ns() < until);
	o = BR__PW_OWNER(gen, 0);
	if (atomic_compare_exchange_strong_explicit(
		    &ws->owner, &o, BR__PW_OWNER(gen + 1, 0),
		    memory_order_acq_rel, memory_order_acquire))
		return 0;
	return BR__PW_OWNER_PID(o); /* it came at the last moment */
}

/* The job in ring slot i if worker w claims it there, else NULL (and
 * the slot's state in *st). Caller holds p->lock. */
static struct pjob *held_job(struct br_pool *p, unsigned w, uint64_t i,
			     uint64_t *st)
{
	struct br__pool_slot *sl = br__pool_slot(p->shm, i);
	struct pjob *j;

	*st = atomic_load_explicit(&sl->state, memory_order_acquire);
	if (BR__JS_TAG(*st) != BR__JS_CLAIMED || BR__JS_OWNER(*st) != w)
		return NULL;
	j = br__pool_tab_find(p, sl->id);
	return j && j->where == W_RING && j->pos == BR__JS_POS(*st) ? j : NULL;
}

/* Settle the job a dead worker w held, if any: br__pool_drain what it
 * finished, then look for the slot it still claims. */
static void settle_dead(struct br_pool *p, unsigned w, const char *why)
{
	struct br__pool_shm *s = p->shm;
	struct pworker *pw = &p->w[w];

	br__pool_drain(p, w);
	for (uint64_t i = 0; i < BR__POOL_JOBS; i++) {
		struct br__pool_slot *sl = br__pool_slot(s, i);
		uint64_t st =
			atomic_load_explicit(&sl->state, memory_order_acquire);
		struct pjob *j;
		int mine = 0, kill = KILL_NONE;

		if (BR__JS_TAG(st) != BR__JS_CLAIMED || BR__JS_OWNER(st) != w)
			continue;
		pthread_mutex_lock(&p->lock);
		j = held_job(p, w, i, &st);
		if (j) {
			/* Why it was killed, as far as this job goes. */
			if (j->cancel)
				kill = KILL_CANCEL;
			else if (pw->kill_id == j->id &&
				 pw->kill != KILL_UNWATCHED)
				kill = pw->kill;
			/* Killed for a job it had finished, or for nothing
			 * it ran: this one goes round again. */
			if (pw->kill == KILL_NONE || kill != KILL_NONE ||
			    p->closing || br__pool_requeue(p, j, sl) < 0)
				mine = br__pool_claim_job(p, j);
		}
		pthread_mutex_unlock(&p->lock);
		br__pool_release(s, BR__JS_POS(st));
		if (!mine)
			continue;
		br__stats_proc_job(p->rt);
		if (kill == KILL_TIMEOUT)
			br__pool_fail_job(
				j, BR_FAILED, -ETIMEDOUT,
				"the job ran past its time limit; its worker "
				"was killed");
		else if (kill == KILL_CANCEL)
			br__pool_fail_job(j, BR_CANCELLED, -ECANCELED,
					  "cancelled: its worker was killed");
		else
			br__pool_fail_job(j, BR_FAILED, BR_EWORKERDIED, why);
		br__pool_settled(p, 1);
	}
	/* What the dead worker can no longer do, somebody must:
	 *   - it may have died asleep, counted among the sleepers, so that
	 *     every later submit would pay a futex wake for it;
	 *   - the slots it held are free now, and jobs may wait in overflow
	 *     for room, which only a refill moves into the ring;
	 *   - it may have died between taking the collector's flag down and
	 *     writing the eventfd, leaving the collector asleep with results
	 *     of other workers waiting. */
	br__pool_sleeper_gone(s, w);
	br__pool_refill(p, 1);
	br__pool_kick_collector(p);
}

/*
 * Worker w was just registered (its pidfd set, under lock): if a job it
 * claimed before that was cancelled meanwhile, nobody could kill it for
 * the cancel, so kill it now.
 */
static void kill_for_held_cancel(struct br_pool *p, unsigned w)
{
	struct pworker *pw = &p->w[w];

	for (uint64_t i = 0; i < BR__POOL_JOBS; i++) {
		uint64_t st;
		struct pjob *j = held_job(p, w, i, &st);

		if (j && j->cancel) {
			pw->kill = KILL_CANCEL;
			pw->kill_id = j->id;
			br__pool_kill_worker(pw->pid, pw->pidfd);
			return;
		}
	}
}

/* Kill and reap a new worker nobody will watch, with the processes its
 * jobs started: its group's id is still its own while it is a zombie. */
static void end_unwatched(pid_t pid, int pidfd)
{
	br__pool_kill_worker(pid, pidfd);
	kill(-pid, SIGKILL);
	br__child_reap(pid, pidfd, 0);
	if (pidfd >= 0)
		close(pidfd);
}

/* Fork worker w through the zygote (blocking). 0 or a negative errno.
 * If the pool closed meanwhile, the new worker is killed and reaped. */
static int fork_worker(struct br_pool *p, unsigned w)
{
	pid_t pid;
	int pidfd, r = 0;

	/* A lost answer with no worker to show for it is asked again, of
	 * the zygote's spare that took over. */
	for (int tries = 0; tries < 2; tries++) {
		reset_wstate(p, w);
		pid = br__zygote_fork(p->memfd, p->efd, w, p->w[w].gen);
		if (pid != -ENOLINK || (pid = adopt(p, w)) != 0)
			break;
		pid = BR_EWORKERDIED;
	}
	if (pid < 0)
		return pid;
	/* In a faults build, the thread that forked is held up here, as a
	 * preempted one would be: the worker runs jobs nobody watches yet. */
	if (BR__FAULT("braid/pool/register_late"))
		usleep(REGISTER_LATE_MS * 1000);
	pidfd = br__child_pidfd(pid);
	if (pidfd < 0) {
		r = -errno;
		end_unwatched(pid, -1);
		/* It may have claimed a job already: that goes round. */
		pthread_mutex_lock(&p->lock);
		p->w[w].kill = KILL_UNWATCHED;
		pthread_mutex_unlock(&p->lock);
		settle_dead(p, w, "its worker process could not be watched");
		return r;
	}
	pthread_mutex_lock(&p->lock);
	/* Nobody would watch it: the pool, or its runtime, is closing. */
	if (p->closing ||
	    atomic_load_explicit(&p->rt->closing, memory_order_seq_cst)) {
		pthread_mutex_unlock(&p->lock);
		end_unwatched(pid, pidfd);
		return BR_ECLOSED;
	}
	p->w[w].pid = pid;
	p->w[w].pidfd = pidfd;
	p->w[w].started_ns = br_now_ns();
	p->w[w].kill = KILL_NONE;
	kill_for_held_cancel(p, w);
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

static int all_disabled(struct br_pool *p)
{
	for (unsigned w = 0; w < p->nworkers; w++)
		if (!p->w[w].disabled)
			return 0;
	return 1;
}

/* After a shortage: a moment's nap, or a yield when even the nap's timer
 * cannot be had, so a task of the pool never holds its worker. Returns
 * -ECANCELED once the task is cancelled, else 0. */
static int shortage_pause(int64_t ns)
{
	int r = br_sleep_ns(ns);

	if (r == -ECANCELED || br_cancelled())
		return -ECANCELED;
	if (r < 0)
		br_yield();
	return 0;
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
			r = br_future_error(f);
			br_future_release(f);
			if (r == BR_ECLOSED)
				return r;
			v = (void *)(intptr_t)r; /* a shortage: try again */
		} else {
			r = br_await(f, &v);
			br_future_release(f);
			if (r < 0)
				return r; /* cancelled: fork_call cleans up */
		}
		if ((intptr_t)v == 0)
			return 0;
		if (++tries >= FORK_TRIES)
			return (int)(intptr_t)v; /* the zygote is gone */
		if (shortage_pause(br__ms_to_ns(FORK_RETRY_MS)) < 0)
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
	if (all && !p->broken) {
		p->broken = why;
		p->broken_err = BR_EWORKERDIED;
	}
	pthread_mutex_unlock(&p->lock);
	if (all)
		br__pool_fail_all(p, BR_FAILED, BR_EWORKERDIED, why);
}

/*
 * Wait (through the loop) for worker pw, whose pidfd is pidfd, to end.
 * While it is still in its initializer, wait at most until the pool's
 * init limit, then kill it and set *init_overrun. Returns 0, or < 0 if
 * the wait was cancelled (the pool or the runtime closes).
 */
static int wait_for_death(struct br_pool *p, struct pworker *pw, int pidfd,
			  int *init_overrun)
{
	_Atomic uint32_t *state = &br__pool_ws(p->shm, pw->idx)->state;

	while (atomic_load_explicit(state, memory_order_acquire) ==
	       BR__PW_STARTING) {
		int r = br__pool_poll(pidfd,
				      br__deadline_add(pw->started_ns,
						       p->init_limit_ns));

		if (r != -ETIMEDOUT)
			return r < 0 ? r : 0;
		if (atomic_load_explicit(state, memory_order_acquire) !=
		    BR__PW_STARTING)
			break;
		pthread_mutex_lock(&p->lock);
		br__pool_kill_worker(pw->pid, pidfd);
		pthread_mutex_unlock(&p->lock);
		*init_overrun = 1;
		break;
	}
	return br__pool_poll(pidfd, -1) < 0 ? -ECANCELED : 0;
}

int br__pool_poll(int fd, int64_t deadline_ns)
{
	for (;;) {
		int64_t left = deadline_ns < 0 ? -1 : deadline_ns - br_now_ns();
		int r;

		if (deadline_ns >= 0 && left <= 0)
			return -ETIMEDOUT;
		r = left < 0 ? br_poll(fd, POLLIN) :
			       br_poll_timeout(fd, POLLIN,
					       (left + BR__NS_PER_MS - 1) /
						       BR__NS_PER_MS);
		if (r >= 0)
			return 0;
		if (r == -ECANCELED || br_cancelled())
			return -ECANCELED;
		/* A shortage, or a failed poll(2): wait a moment, look
		 * without the loop, and ask the loop again. The fds are the
		 * pool's own, so no failure is for good while it lives. */
		if (shortage_pause(br__ms_to_ns(SHORTAGE_RETRY_MS)) < 0)
			return -ECANCELED;
		if (poll(&(struct pollfd){ .fd = fd, .events = POLLIN }, 1, 0) >
		    0)
			return 0;
	}
}

void *br__pool_watch(void *arg)
{
	struct pworker *pw = arg;
	struct br_pool *p = pw->pool;
	unsigned w = pw->idx;

	if (!br__pool_enter(p))
		return NULL;
	for (;;) {
		char why[WHY_MAX];
		int r, status, pidfd, init_overrun = 0;
		pid_t pid;
		uint32_t state;

		pthread_mutex_lock(&p->lock);
		pidfd = pw->pidfd;
		pthread_mutex_unlock(&p->lock);
		if (pidfd < 0)
			break;
		r = wait_for_death(p, pw, pidfd, &init_overrun);
		pthread_mutex_lock(&p->lock);
		if (p->closing) {
			pthread_mutex_unlock(&p->lock);
			break; /* br_pool_free kills and reaps */
		}
		if (r < 0)
			br__pool_kill_worker(pw->pid,
					     pidfd); /* the runtime closes */
		pid = pw->pid;
		pw->pid = 0;
		pw->pidfd = -1;
		p->inflight++; /* br_pool_free waits for this reap */
		pthread_mutex_unlock(&p->lock);
		/* Its children go with it: the group's id is still its own
		 * while it is a zombie. */
		kill(-pid, SIGKILL);
		status = br__child_reap(pid, pidfd, 0);
		close(pidfd);
		inflight_done(p);
		state = atomic_load_explicit(&br__pool_ws(p->shm, w)->state,
					     memory_order_acquire);
		if (init_overrun)
			snprintf(
				why, sizeof(why),
				"worker process %d was killed: its initializer "
				"ran past its time limit",
				(int)pid);
		else
			describe_death(why, sizeof(why), pid, status);
		/* A job may have taken the doorbell's mark away itself
		 * (pool_shm.h): without it every replacement would leave
		 * after its first job. */
		if (status >= 0 && WIFEXITED(status) &&
		    WEXITSTATUS(status) == BR__POOL_EXIT_LOST)
			(void)br__pool_mark_doorbell(p->shm, p->efd);
		settle_dead(p, w, why);
		if (r < 0)
			break;
		if (state == BR__PW_INIT_FAILED || init_overrun) {
			if (++pw->init_fails >= INIT_FAILS_MAX) {
				disable(p, pw,
					"every worker's initializer failed");
				break;
			}
			if (shortage_pause(br__ms_to_ns(INIT_RETRY_MS)) < 0)
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
	br__pool_leave(p);
	return NULL;
}

void *br__pool_timer(void *arg)
{
	struct br_pool *p = arg;

	if (!br__pool_enter(p))
		return NULL;
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
		if (iv < TIMER_MIN_NS)
			iv = TIMER_MIN_NS;
		if (iv > TIMER_MAX_NS)
			iv = TIMER_MAX_NS;
		if (shortage_pause(iv) < 0)
			break;
		now = br_now_ns(); /* after a shortage too: check anyway */
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
				br__pool_kill_worker(p->w[w].pid,
						     p->w[w].pidfd);
			}
		}
		pthread_mutex_unlock(&p->lock);
	}
	br__pool_leave(p);
	return NULL;
}

/* Kill every worker, wait for forks and reaps in flight, reap. Caller
 * set closing. */
void br__pool_stop_workers(struct br_pool *p)
{
	int fds[BR__POOL_MAX_WORKERS];
	pid_t pids[BR__POOL_MAX_WORKERS];
	unsigned n = 0;

	pthread_mutex_lock(&p->lock);
	for (unsigned w = 0; w < p->nworkers; w++) {
		if (p->w[w].pidfd < 0)
			continue;
		br__pool_kill_worker(p->w[w].pid, p->w[w].pidfd);
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
void *br__pool_start(void *arg)
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
			/* br_pool_free kills it with the others. */
			if (br_now_ns() - p->w[w].started_ns >
			    p->init_limit_ns) {
				err = -ETIMEDOUT;
				break;
			}
		}
	}
	return (void *)err;
}
