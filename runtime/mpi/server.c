/* SPDX-License-Identifier: MIT */
/*
 * server.c - a rank other than 0: run the jobs rank 0 ships on pools of
 * this rank's own worker processes, and send back what they gave.
 *
 * Design
 *   br_mpi_serve() never returns on these ranks: the main thread makes a
 *   runtime (one loop, for the pools' own tasks) and serves. Each pool
 *   rank 0 starts gets a local twin here, with the same configuration
 *   (the initializer found by name); each job shipped runs there through
 *   br__remote_run(), so a crash or a time limit fails that job alone and
 *   the worker is replaced here, as on any local pool. A job's future
 *   completes on one of the runtime's threads, whose callback queues it
 *   under a leaf lock and rings the serving thread, which sends the
 *   results back in batches.
 *
 *   The serving thread is the only one that calls MPI. It never blocks in
 *   it: it probes, tests its sends, and naps on a futex (serve.c) while
 *   there is nothing to do; it says it is alive every BR__MPI_BEAT_NS, so
 *   that rank 0 can tell a dead rank from a quiet one.
 *
 *   A function this binary cannot find (the ranks run different
 *   binaries) fails each of its jobs with -ENOENT and a message naming
 *   it; so does an initializer, which fails this rank's part of the pool.
 *
 * Concurrency
 *   - S.lock: the queue of completed jobs. A leaf.
 *   - Everything else: the serving thread only.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "remote.h"
#include "wire.h"

/* Naps while jobs run here or ran lately, and while none have for
 * WARM_NS. MPI cannot ring the bell, so a job that arrives waits out the
 * nap: the busy one is short, because rank 0 ships the next jobs as soon
 * as results come back, and a rank that naps long between them makes
 * every job it gets wait. The naps grow to the idle one from 20 us, so
 * only a rank idle for WARM_NS and more is that slow to answer. The idle
 * nap is how often an idle rank wakes, which is what an idle pool costs. */
#define NAP_BUSY_NS (50 * BR__NS_PER_US)
#define NAP_IDLE_NS (20 * BR__NS_PER_MS)
#define WARM_NS (20 * BR__NS_PER_MS)
/* Results per message, at most. */
#define MAX_RESULTS 512
#define MSG_MAX 1024

struct spool {
	uint32_t id;
	br_pool *p;
	struct spool *next;
};

struct sjob {
	uint64_t id;
	uint32_t pool;
	br_future *f;
	struct sjob *next, *prev; /* running: S.running */
	struct sjob *done_next;	  /* completed: S.done, under S.lock */
};

struct sfn {
	void *fn; /* NULL: not found here */
	char *name;
	uint64_t offset;
};

static struct {
	br_runtime *rt;
	struct spool *pools;
	struct sjob *running;
	struct sfn *fns; /* by id */
	size_t nfns;
	struct br__mpi_out *sends;
	pthread_mutex_t lock;
	struct sjob *done, **done_tail; /* under lock */
	_Atomic uint32_t bell, sleeping;
	int bye;
} S = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void send_to_0(const void *msg, size_t len, int tag)
{
	br__mpi_send_copy(&S.sends, 0, tag, msg, len);
}

static int test_sends(void)
{
	return br__mpi_test(&S.sends, NULL);
}

/* ---- pools ---- */

static struct spool *spool_of(uint32_t id)
{
	for (struct spool *sp = S.pools; sp; sp = sp->next)
		if (sp->id == id)
			return sp;
	return NULL;
}

static void on_pool_new(const struct mw_head *h, const char *body, size_t len)
{
	struct mw_ready ready = { 0 };
	struct mw_head rh = { MW_POOL_READY, h->pool, 0, 0 };
	struct mw_pool_new m;
	br_pool_config cfg = { 0 };
	struct spool *sp = NULL;
	char name[4096], reply[sizeof(rh) + sizeof(ready)];
	int r = 0;

	memcpy(ready.host, br__mpi_host, sizeof(ready.host));
	memcpy(ready.cpus, br__mpi_cpus, sizeof(ready.cpus));
	ready.node = br__mpi_node;
	if (len < sizeof(m)) {
		r = -EPROTO;
		goto out;
	}
	memcpy(&m, body, sizeof(m));
	if (m.name_len >= sizeof(name) ||
	    len < sizeof(m) + m.name_len + m.init_len) {
		r = -EPROTO;
		goto out;
	}
	memcpy(name, body + sizeof(m), m.name_len);
	name[m.name_len] = '\0';
	cfg.workers = m.workers;
	cfg.max_jobs = m.max_jobs;
	cfg.timeout_ms = m.timeout_ms;
	cfg.init_timeout_ms = m.init_timeout_ms;
	cfg.max_payload = m.max_payload;
	cfg.init_len = m.init_len;
	cfg.init_arg = m.init_len ? body + sizeof(m) + m.name_len : NULL;
	if (m.init_offset != UINT64_MAX) {
		cfg.init =
			(br_pool_init_fn)br__mpi_resolve(name, m.init_offset);
		if (!cfg.init) {
			r = -ENOENT;
			goto out;
		}
	}
	sp = calloc(1, sizeof(*sp));
	if (!sp) {
		r = -ENOMEM;
		goto out;
	}
	r = br_pool_new(&sp->p, S.rt, &cfg);
	if (r < 0) {
		free(sp);
		goto out;
	}
	sp->id = h->pool;
	sp->next = S.pools;
	S.pools = sp;
	r = (int)br__remote_local_workers(sp->p);
out:
	ready.workers = r;
	memcpy(reply, &rh, sizeof(rh));
	memcpy(reply + sizeof(rh), &ready, sizeof(ready));
	send_to_0(reply, sizeof(reply), MW_POOL_READY);
}

static void on_pool_free(const struct mw_head *h)
{
	struct spool **pp;

	for (pp = &S.pools; *pp; pp = &(*pp)->next) {
		struct spool *sp = *pp;

		if (sp->id != h->pool)
			continue;
		*pp = sp->next;
		/* Its running jobs end CANCELLED and are sent back, to a
		 * rank 0 that drops them. */
		br_pool_free(sp->p);
		free(sp);
		return;
	}
}

/* ---- functions ---- */

static void on_fn(const struct mw_head *h, const char *body, size_t len)
{
	uint32_t id = h->count;
	struct mw_fn m;
	char *name;

	if (len < sizeof(m))
		return;
	memcpy(&m, body, sizeof(m));
	if (len < sizeof(m) + m.name_len || id == 0 || id > 1u << 24)
		return;
	if (id >= S.nfns) {
		size_t n = 2 * (size_t)id + 16;
		struct sfn *f = realloc(S.fns, n * sizeof(*f));

		if (!f)
			return;
		memset(f + S.nfns, 0, (n - S.nfns) * sizeof(*f));
		S.fns = f;
		S.nfns = n;
	}
	name = malloc(m.name_len + 1);
	if (!name)
		return;
	memcpy(name, body + sizeof(m), m.name_len);
	name[m.name_len] = '\0';
	free(S.fns[id].name);
	S.fns[id].name = name;
	S.fns[id].offset = m.offset;
	S.fns[id].fn = br__mpi_resolve(name, m.offset);
}

/* ---- jobs ---- */

static void job_done(br_future *f, void *arg)
{
	struct sjob *j = arg;

	pthread_mutex_lock(&S.lock);
	j->done_next = NULL;
	*S.done_tail = j;
	S.done_tail = &j->done_next;
	pthread_mutex_unlock(&S.lock);
	br__mpi_ring(&S.bell, &S.sleeping);
}

/* A job that cannot run here: its result says why, at once. */
static void job_refused(struct sjob *j, int err, const char *msg)
{
	br_future *f = br_promise_new();

	br_promise_reject(f, err, msg);
	j->f = f;
	job_done(f, j);
}

static void on_jobs(const struct mw_head *h, const char *body, size_t len)
{
	struct spool *sp = spool_of(h->pool);
	size_t at = (size_t)h->count * sizeof(struct mw_job);

	if (len < at)
		return;
	for (uint32_t i = 0; i < h->count; i++) {
		struct mw_job m;
		struct sjob *j = calloc(1, sizeof(*j));
		const struct sfn *fn;
		char msg[256];

		memcpy(&m, body + i * sizeof(m), sizeof(m));
		if (len - at < m.len) {
			free(j);
			return;
		}
		if (!j) {
			at += mw_pad8(m.len);
			continue; /* rank 0 sees it never come back */
		}
		j->id = m.id;
		j->pool = h->pool;
		fn = m.fn < S.nfns ? &S.fns[m.fn] : NULL;
		if (!sp) {
			job_refused(j, BR_ECLOSED, "the pool is gone");
		} else if (!fn || !fn->fn) {
			snprintf(msg, sizeof(msg),
				 "the job function %s+0x%llx is not in this "
				 "rank's program",
				 fn && fn->name ?
					 (*fn->name ? fn->name :
						      "(the main program)") :
					 "(unnamed)",
				 fn ? (unsigned long long)fn->offset : 0ULL);
			job_refused(j, -ENOENT, msg);
		} else {
			j->f = br__remote_run(sp->p, (br_job_fn)fn->fn,
					      body + at, m.len, m.nitems,
					      m.timeout_ns);
			j->next = S.running;
			j->prev = NULL;
			if (S.running)
				S.running->prev = j;
			S.running = j;
			if (br_future_on_done(j->f, job_done, j) < 0)
				job_done(j->f, j);
		}
		at += mw_pad8(m.len);
	}
}

static void on_cancel(const struct mw_head *h, const char *body, size_t len)
{
	for (uint32_t i = 0; i < h->count && (i + 1) * 8 <= len; i++) {
		uint64_t id;

		memcpy(&id, body + i * 8, 8);
		for (struct sjob *j = S.running; j; j = j->next)
			if (j->id == id && j->pool == h->pool) {
				br_cancel(j->f);
				break;
			}
	}
}

/* Take every completed job off the queue, in order. */
static struct sjob *take_done(void)
{
	struct sjob *done;

	pthread_mutex_lock(&S.lock);
	done = S.done;
	S.done = NULL;
	S.done_tail = &S.done;
	pthread_mutex_unlock(&S.lock);
	return done;
}

/* Send back what completed, in batches. Returns how many. */
static int send_results(void)
{
	struct sjob *done = take_done();
	int sent = 0;

	while (done) {
		struct mw_head h = { MW_RESULTS, done->pool, 0, 0 };
		size_t len = sizeof(h), n = 0;
		struct sjob *j;
		char *buf, *at;

		/* One message per pool and batch. */
		for (j = done; j && j->pool == h.pool && n < MAX_RESULTS;
		     j = j->done_next, n++) {
			size_t bl = 0;

			if (br_future_state(j->f) == BR_DONE)
				br_future_bytes(j->f, &bl);
			else
				bl = strnlen(br_future_message(j->f), MSG_MAX);
			len += sizeof(struct mw_result) + mw_pad8(bl);
		}
		buf = malloc(len);
		h.count = (uint32_t)n;
		if (buf)
			memcpy(buf, &h, sizeof(h));
		at = buf ? buf + sizeof(h) : NULL;
		for (size_t k = 0; k < n; k++) {
			struct mw_result m = { done->id, 0, 0 };
			const void *data;
			size_t bl = 0;

			if (br_future_state(done->f) == BR_DONE) {
				data = br_future_bytes(done->f, &bl);
			} else {
				data = br_future_message(done->f);
				bl = strnlen(data, MSG_MAX);
				m.error = br_future_error(done->f);
				if (m.error >= 0)
					m.error = BR_EWORKERDIED;
			}
			m.len = (uint32_t)bl;
			if (at) {
				memcpy(at, &m, sizeof(m));
				if (bl)
					memcpy(at + sizeof(m), data, bl);
				memset(at + sizeof(m) + bl, 0,
				       mw_pad8(bl) - bl);
				at += sizeof(m) + mw_pad8(bl);
			}
			j = done->done_next;
			if (done->prev)
				done->prev->next = done->next;
			else if (S.running == done)
				S.running = done->next;
			if (done->next)
				done->next->prev = done->prev;
			br_future_release(done->f);
			free(done);
			done = j;
		}
		if (buf) {
			send_to_0(buf, len, MW_RESULTS);
			free(buf);
		}
		sent += (int)n;
	}
	return sent;
}

/* Forget what completed, sending nothing. */
static void drop_results(void)
{
	struct sjob *done = take_done();

	while (done) {
		struct sjob *next = done->done_next;

		br_future_release(done->f);
		free(done);
		done = next;
	}
}

/* ---- the loop ---- */

static int receive(void)
{
	int n = 0, src, tag;
	size_t len;
	char *buf;

	while (!S.bye && (buf = br__mpi_recv(0, &src, &tag, &len))) {
		struct mw_head h;

		n++;
		if (len >= sizeof(h)) {
			const char *body = buf + sizeof(h);
			size_t blen = len - sizeof(h);

			memcpy(&h, buf, sizeof(h));
			switch (h.type) {
			case MW_POOL_NEW:
				on_pool_new(&h, body, blen);
				break;
			case MW_POOL_FREE:
				on_pool_free(&h);
				break;
			case MW_FN:
				on_fn(&h, body, blen);
				break;
			case MW_JOBS:
				on_jobs(&h, body, blen);
				break;
			case MW_CANCEL:
				on_cancel(&h, body, blen);
				break;
			case MW_BYE:
				S.bye = 1;
				break;
			}
		}
		free(buf);
	}
	return n;
}

void br__mpi_serve_forever(void)
{
	struct mw_head beat = { MW_BEAT, 0, 0, 0 };
	int64_t last_beat = 0, last_work = 0;
	unsigned idle = 0;

	S.done_tail = &S.done;
	if (br_runtime_new(&S.rt, &(br_config){ .workers = 1,
						.flags = BR_CONFIG_QUIET }) < 0)
		S.rt = NULL; /* every pool start then fails, and says so */
	while (!S.bye) {
		int64_t now = br_now_ns();
		int n = receive();

		/* Progress is jobs in and results out: a beat, or a send that
		 * completed, is not a reason to keep polling. */
		n += send_results();
		test_sends();
		if (now - last_beat >= BR__MPI_BEAT_NS) {
			send_to_0(&beat, sizeof(beat), MW_BEAT);
			last_beat = now;
		}
		if (n) {
			idle = 0;
			last_work = now;
			continue;
		}
		br__mpi_nap(&S.bell, &S.sleeping, &idle,
			    S.running || S.sends || now - last_work < WARM_NS ?
				    NAP_BUSY_NS :
				    NAP_IDLE_NS);
	}
	/* Rank 0 is done: what still runs is cancelled, and what comes back
	 * from it is dropped here. Then say goodbye, and let the last
	 * messages go: rank 0 receives until every rank has said it. */
	while (S.pools) {
		struct spool *sp = S.pools;

		S.pools = sp->next;
		br_pool_free(sp->p);
		free(sp);
	}
	drop_results();
	send_to_0(&(struct mw_head){ MW_BYE, 0, 0, 0 }, sizeof(beat), MW_BYE);
	while (S.sends)
		if (!test_sends())
			sched_yield();
	br_runtime_free(S.rt);
	MPI_Finalize();
	exit(0);
}
