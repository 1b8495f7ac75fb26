/* SPDX-License-Identifier: MIT */
/*
 * pool_worker.c - the life of a process-pool worker: take a job from the
 * shared ring, run it, push its result, repeat.
 *
 * Design
 *   The worker is a fresh clone of the zygote with the pool's memfd and
 *   eventfd (see zygote.c). It maps the shared memory, runs the pool's
 *   initializer, says READY, and loops. A job's input is read in place
 *   (in its ring slot, or the arena for a large one), and its output is
 *   written straight into the next free result entry; output that
 *   outgrows the entry moves to this worker's big area, which the parent
 *   copies out. The ring slot is freed only after the result is pushed,
 *   so at every instant the shared memory names the job this worker
 *   holds (pool_shm.h): if it dies, the parent knows what it lost.
 *
 *   With nothing to do it spins a few microseconds, then sleeps on the
 *   job bell; with a full result ring it sleeps on its result bell. It
 *   leaves with _exit(): after max_jobs jobs, when the pool closes, or
 *   when the program is gone.
 *
 * Concurrency
 *   One thread. Everything shared is in pool_shm.h, with its orderings.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "braid.h"
#include "futex.h"
#include "pool_shm.h"

#define IDLE_SPINS 2000
#define MSG_MAX 1024

struct br_job {
	struct br__pool_shm *s;
	struct br__pool_wstate *ws;
	unsigned idx;
	char *out;	/* the result entry's data, or the big area */
	size_t cap;	/* room at out */
	size_t len;	/* bytes written at out */
	size_t item;	/* offset of the current item's header */
	int big;	/* out is the big area */
	int failed_msg; /* br_job_fail gave a message */
	char msg[MSG_MAX];
};

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

void br__pool_populate(struct br__pool_shm *s, unsigned w)
{
	char *jobs = (char *)s + s->jobs_off;

	madvise(jobs, (size_t)BR__POOL_JOBS * BR__POOL_SLOT,
		MADV_POPULATE_WRITE);
	if (w)
		madvise(br__pool_ws(s, w - 1), s->worker_stride,
			MADV_POPULATE_WRITE);
	else
		madvise((char *)s + s->workers_off,
			s->worker_stride * s->nworkers, MADV_POPULATE_WRITE);
}

/* Make room for n more bytes at job->out, moving to the big area once
 * the result entry is full. 0 or -EMSGSIZE. */
static int room(struct br_job *job, size_t n)
{
	struct br__pool_wstate *ws = job->ws;
	char *big;

	if (job->len + n <= job->cap)
		return 0;
	if (job->big || job->len + n > job->s->big_size)
		return -EMSGSIZE;
	/* The parent may still be copying the last big output. */
	for (;;) {
		uint32_t b = atomic_load_explicit(&ws->big_busy,
						  memory_order_acquire);
		if (!b)
			break;
		br__futex_wait_shared(&ws->big_busy, b);
	}
	big = br__pool_big(job->s, job->idx);
	memcpy(big, job->out, job->len);
	job->out = big;
	job->cap = job->s->big_size;
	job->big = 1;
	return 0;
}

int br_job_write(br_job *job, const void *data, size_t len)
{
	size_t so_far;
	int r;

	if (!job || (!data && len))
		return -EINVAL;
	/* The item's output so far, and this: the running total counts,
	 * not one call's length. */
	so_far = job->len - job->item - sizeof(struct br__pool_item);
	if (len > job->s->max_payload - so_far)
		return -EMSGSIZE;
	r = room(job, len);
	if (r < 0)
		return r;
	if (len)
		memcpy(job->out + job->len, data, len);
	job->len += len;
	return 0;
}

int br_job_fail(br_job *job, int error, const char *message)
{
	if (error >= 0)
		error = -EINVAL;
	if (!job)
		return error;
	if (message) {
		size_t n = strnlen(message, MSG_MAX - 1);

		memcpy(job->msg, message, n);
		job->msg[n] = '\0';
		job->failed_msg = 1;
	}
	return error;
}

/* Run item i of the claimed job into the output, encoded. */
static void run_item(struct br_job *job, br_job_fn fn, const char *in,
		     size_t len)
{
	struct br__pool_item it = { 0, 0 };
	size_t start, pad;
	int r;

	if (room(job, sizeof(it)) < 0) {
		/* Not even a header fits: the chunk's output is over the
		 * limit. Rewrite from this item's start as a failure. */
		return;
	}
	job->item = job->len;
	job->len += sizeof(it);
	start = job->len;
	job->failed_msg = 0;
	r = fn(job, in, len);
	if (r < 0) {
		const char *m = job->failed_msg ? job->msg : br_strerror(r);
		size_t n = strlen(m);

		job->len = start;
		if (room(job, n) < 0)
			n = 0;
		memcpy(job->out + job->len, m, n);
		job->len += n;
		it.error = r;
	}
	it.len = (uint32_t)(job->len - start);
	memcpy(job->out + job->item, &it, sizeof(it));
	pad = (8 - (job->len & 7)) & 7;
	if (pad && room(job, pad) == 0) {
		memset(job->out + job->len, 0, pad);
		job->len += pad;
	}
}

/* Wait until the result ring has a free entry. */
static void wait_result_room(struct br__pool_wstate *ws)
{
	for (;;) {
		uint64_t tail = atomic_load_explicit(&ws->res_tail,
						     memory_order_relaxed);
		uint32_t bell = atomic_load_explicit(&ws->res_bell,
						     memory_order_acquire);

		if (tail - atomic_load_explicit(&ws->res_head,
						memory_order_acquire) <
		    BR__POOL_RESULTS)
			return;
		atomic_store_explicit(&ws->res_wait, 1, memory_order_seq_cst);
		if (tail - atomic_load_explicit(&ws->res_head,
						memory_order_seq_cst) <
		    BR__POOL_RESULTS) {
			atomic_store_explicit(&ws->res_wait, 0,
					      memory_order_relaxed);
			return;
		}
		br__futex_wait_shared(&ws->res_bell, bell);
	}
}

static void ring_collector(struct br__pool_shm *s, int efd)
{
	uint64_t one = 1;

	/* A seq_cst read-modify-write: ordered after the release of the
	 * slot and the push of the result (pool_shm.h, Doorbells). */
	if (!atomic_exchange_explicit(&s->collector_waiting, 0,
				      memory_order_seq_cst))
		return;
	/* A worker that can no longer wake the collector can no longer
	 * report: it leaves, and the parent, seeing it die, drains what it
	 * pushed, kicks the collector and replaces it (pool_procs.c). */
	if (!br__pool_is_doorbell(s, efd) || write(efd, &one, sizeof(one)) < 0)
		_exit(BR__POOL_EXIT_LOST);
}

static struct br__pool_slot *next_job(struct br__pool_shm *s, unsigned idx,
				      uint64_t *pos)
{
	struct br__pool_slot *sl;

	for (;;) {
		uint32_t bell;

		for (int i = 0; i < IDLE_SPINS; i++) {
			sl = br__pool_claim(s, idx, pos);
			if (sl)
				return sl;
			if (atomic_load_explicit(&s->closing,
						 memory_order_relaxed))
				_exit(0);
#if defined(__x86_64__)
			__builtin_ia32_pause();
#endif
		}
		bell = atomic_load_explicit(&s->job_bell, memory_order_acquire);
		atomic_fetch_or_explicit(br__pool_sleeper_word(s, idx),
					 br__pool_sleeper_bit(idx),
					 memory_order_seq_cst);
		sl = br__pool_claim(s, idx, pos);
		if (!sl &&
		    !atomic_load_explicit(&s->closing, memory_order_relaxed))
			br__futex_wait_shared(&s->job_bell, bell);
		br__pool_sleeper_gone(s, idx);
		if (sl)
			return sl;
		if (getppid() != s->parent_pid)
			_exit(0);
	}
}

__attribute__((noreturn)) void br__pool_worker_main(int memfd, int efd,
						    unsigned idx, uint32_t gen)
{
	struct br__pool_shm *s;
	struct br__pool_wstate *ws;
	struct br_job job;
	struct stat st;
	uint32_t done = 0;
	pid_t pid = getpid();

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* A group of its own: a job that signals its group reaches this
	 * worker and its own children only (zygote.c). */
	setpgid(0, 0);
	if (fstat(memfd, &st) < 0)
		_exit(1);
	s = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		 memfd, 0);
	if (s == MAP_FAILED || s->magic != BR__POOL_MAGIC || idx >= s->nworkers)
		_exit(1);
	close(memfd);
	if (getppid() != s->parent_pid)
		_exit(0); /* the program died before PDEATHSIG was set */
	prctl(PR_SET_NAME, "braid-pool");
	ws = br__pool_ws(s, idx);
	{
		uint64_t mine = BR__PW_OWNER(gen, 0);

		if (!atomic_compare_exchange_strong_explicit(
			    &ws->owner, &mine, BR__PW_OWNER(gen, pid),
			    memory_order_acq_rel, memory_order_acquire))
			_exit(0); /* the parent gave up on this request */
	}
	br__pool_populate(s, idx + 1);
	if (s->init_fn) {
		br_pool_init_fn init = (br_pool_init_fn)(uintptr_t)s->init_fn;
		int r = init((char *)s + s->init_off, (size_t)s->init_len);

		if (r < 0) {
			atomic_store_explicit(&ws->init_err, r,
					      memory_order_relaxed);
			atomic_store_explicit(&ws->state, BR__PW_INIT_FAILED,
					      memory_order_release);
			_exit(0);
		}
	}
	atomic_store_explicit(&ws->state, BR__PW_READY, memory_order_release);

	memset(&job, 0, sizeof(job));
	job.s = s;
	job.ws = ws;
	job.idx = idx;
	for (;;) {
		struct br__pool_result *res;
		struct br__pool_slot *sl;
		uint64_t pos, tail;
		br_job_fn fn;
		const char *in;
		size_t each;

		sl = next_job(s, idx, &pos);
		wait_result_room(ws);
		tail = atomic_load_explicit(&ws->res_tail,
					    memory_order_relaxed);
		res = br__pool_res(s, idx, tail);
		atomic_store_explicit(&ws->cur_id, sl->id,
				      memory_order_relaxed);
		res->start_ns = br_now_ns();
		atomic_store_explicit(
			&ws->deadline,
			sl->timeout_ns ? res->start_ns + sl->timeout_ns : 0,
			memory_order_release);
		job.out = res->data;
		job.cap = BR__POOL_RESULT_ROOM;
		job.len = 0;
		job.big = 0;
		fn = (br_job_fn)(uintptr_t)sl->fn;
		in = (sl->flags & BR__JOB_BIG) ? (char *)s + sl->arena_off :
						 sl->data;
		each = sl->nitems ? (size_t)(sl->len / sl->nitems) : 0;
		for (uint32_t i = 0; i < sl->nitems; i++)
			run_item(&job, fn, in + i * each, each);
		atomic_store_explicit(&ws->deadline, 0, memory_order_relaxed);
		res->end_ns = br_now_ns();
		res->pid = pid;
		res->id = sl->id;
		res->nitems = sl->nitems;
		res->len = job.len;
		res->flags = 0;
		if (job.big) {
			res->flags = BR__RES_BIG;
			atomic_store_explicit(&ws->big_busy, 1,
					      memory_order_relaxed);
		}
		atomic_store_explicit(&ws->res_tail, tail + 1,
				      memory_order_release);
		atomic_store_explicit(&ws->cur_id, 0, memory_order_relaxed);
		br__pool_release(s, pos);
		ring_collector(s, efd);
		if (s->max_jobs && ++done >= s->max_jobs) {
			atomic_store_explicit(&ws->state, BR__PW_RETIRED,
					      memory_order_release);
			_exit(0);
		}
	}
}
