/* SPDX-License-Identifier: MIT */
/*
 * driver.c - rank 0's side of a pool that spans an MPI job: one thread
 * that ships waiting jobs to the other ranks and settles what comes back.
 *
 * Design
 *   The driver thread is the only thread of rank 0 that calls MPI (after
 *   br_mpi_serve). Pools talk to it through a command queue under a leaf
 *   lock (start a pool, free it, cancel a job) and a bell; it never holds
 *   that lock while it calls into a pool, whose own lock may be held by a
 *   thread queueing a command.
 *
 *   Each round it receives what has arrived (MPI_Iprobe, then a receive
 *   that cannot block), fills every live rank's window from the pools'
 *   overflow lists (br__remote_take, oldest jobs first), tests its sends,
 *   and looks for ranks that stopped answering. A rank's window for a
 *   pool is WINDOW_PER_WORKER jobs per worker it has there: enough to
 *   keep them busy across the message latency, and bounded, so that a
 *   million submitted jobs wait in the pool (where they are anyway) and
 *   not in MPI's buffers or a rank's memory. A rank that is slow returns
 *   results slowly and is given less; jobs go out in batches of up to
 *   BATCH_BYTES per message. A rank on rank 0's machine that runs on
 *   rank 0's CPUs (mpirun --oversubscribe, or ranks per node with more
 *   workers than CPUs) adds workers but no CPU: such ranks share what
 *   rank 0 and its own workers leave of those CPUs (set_windows). When
 *   that is nothing, each may hold one job, and only one that has waited
 *   SHARED_WAIT_NS: a job shipped there takes CPU from rank 0's own
 *   workers and adds two processes to wake, so it goes only when those
 *   workers do not keep up (their jobs block, or run long), not because
 *   a burst of tiny jobs waits a few microseconds. The driver sleeps
 *   until the oldest held-back job is due, and is kicked only when a
 *   job comes to wait where none did (br__pool_enqueue): a kick per
 *   submission woke it for every tiny job.
 *
 *   A rank that dies under mpirun --enable-recovery never answers again,
 *   and a receive from it never returns: nothing here waits for one rank.
 *   Servers send a beat every BR__MPI_BEAT_NS; a rank silent for DEAD_NS
 *   is dead, and the jobs it held fail with BR_EWORKERDIED naming the rank and its
 *   host. Without --enable-recovery, MPI ends the whole job instead.
 *
 * Concurrency
 *   - D.lock: the command queue. A leaf.
 *   - Everything else: the driver thread only, but for bell/sleeping.
 *
 * Lifetime
 *   A dpool holds a reference to its pool (taken by the pool when it
 *   hands itself over), dropped with br__remote_put() once the driver has
 *   told the ranks the pool is gone.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "remote.h"
#include "wire.h"

#define WINDOW_PER_WORKER 4
#define MAX_BATCH 256
#define BATCH_BYTES ((size_t)1 << 20)
#define DEAD_NS (15 * BR__MPI_BEAT_NS)
#define SHARED_WAIT_NS BR__NS_PER_MS
/* Naps while jobs are out or were lately, and while none have been for
 * WARM_NS. A result that arrives waits out the nap (MPI cannot ring the
 * bell), and so does the task that waits for it: the busy nap is short. */
#define NAP_BUSY_NS (50 * BR__NS_PER_US)
#define NAP_IDLE_NS (50 * BR__NS_PER_MS)
#define WARM_NS (20 * BR__NS_PER_MS)

enum {
	CMD_NEW,
	CMD_FREE,
	CMD_CANCEL
};

struct prank {
	int workers;	 /* > 0 once it said ready */
	int answered;	 /* it said ready, or why not */
	unsigned window; /* jobs it may hold (set_windows) */
	unsigned inflight;
	int64_t wait_ns; /* how long a job waits before it may go there */
};

struct dpool {
	uint32_t id;
	br_pool *p;
	br_future *ready; /* resolved once every rank has answered */
	br_pool_config cfg;
	void *init_arg;
	unsigned answered, total;
	/* Until then a rank that has not answered may be busy starting its
	 * workers, and silent: its serving thread is in br_pool_new. */
	int64_t start_by;
	struct prank *r; /* by rank */
	struct dpool *next;
};

struct cmd {
	int op;
	struct dpool *dp;
	int rank;
	uint64_t id;
	struct cmd *next;
};

struct drank {
	int64_t heard;
	int node;		     /* its machine's lowest rank */
	uint64_t cpus[MW_CPU_WORDS]; /* those it may run on */
	char host[72];
	uint8_t *known; /* fn ids named to it, a byte each */
	size_t known_n;
};

struct fnent {
	const void *fn;
	char *name;
	uint64_t offset;
};

static struct {
	pthread_t th;
	int started;
	_Atomic int stop;
	_Atomic uint32_t bell, sleeping;
	pthread_mutex_t lock;
	struct cmd *cmds, **cmds_tail; /* under lock */
	struct dpool *pools;
	struct drank *ranks;
	struct br__mpi_out *sends;
	uint8_t *dead;	   /* by rank: it stopped answering */
	struct fnent *fns; /* id i + 1 is fns[i] */
	size_t nfns, fncap;
	uint32_t next_id;
	unsigned next_rank; /* where the next filling round starts */
	int any_dead;
} D = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* ---- sending ---- */

static void send_small(int rank, int tag, const void *msg, size_t len)
{
	br__mpi_send_copy(&D.sends, rank, tag, msg, len);
}

static int test_sends(void)
{
	return br__mpi_test(&D.sends, D.dead);
}

/* ---- job functions' names ---- */

/* The id of fn (1...), naming it first; 0 if it has no name. */
static uint32_t fn_id(const void *fn)
{
	const char *name;
	uint64_t off;

	for (size_t i = 0; i < D.nfns; i++)
		if (D.fns[i].fn == fn)
			return (uint32_t)i + 1;
	if (br__mpi_name_of(fn, &name, &off) < 0)
		return 0;
	if (D.nfns == D.fncap) {
		size_t cap = D.fncap ? 2 * D.fncap : 16;
		struct fnent *f = realloc(D.fns, cap * sizeof(*f));

		if (!f)
			return 0;
		D.fns = f;
		D.fncap = cap;
	}
	D.fns[D.nfns].fn = fn;
	D.fns[D.nfns].name = strdup(name);
	D.fns[D.nfns].offset = off;
	if (!D.fns[D.nfns].name)
		return 0;
	return (uint32_t)++D.nfns;
}

/* Make sure rank knows fn id's name before a job uses it. */
static void name_fn(int rank, uint32_t id)
{
	struct drank *r = &D.ranks[rank];
	const struct fnent *f = &D.fns[id - 1];
	size_t nl = strlen(f->name);
	struct br__mpi_out *b;
	struct mw_head h = { MW_FN, 0, id, 0 };
	struct mw_fn m = { f->offset, (uint32_t)nl, 0 };

	if (id < r->known_n && r->known[id])
		return;
	if (id >= r->known_n) {
		size_t n = 2 * id + 16;
		uint8_t *k = realloc(r->known, n);

		if (!k)
			return;
		memset(k + r->known_n, 0, n - r->known_n);
		r->known = k;
		r->known_n = n;
	}
	b = br__mpi_out_new(sizeof(h) + sizeof(m) + nl);
	if (!b)
		return;
	memcpy(b->data, &h, sizeof(h));
	memcpy(b->data + sizeof(h), &m, sizeof(m));
	memcpy(b->data + sizeof(h) + sizeof(m), f->name, nl);
	br__mpi_send(&D.sends, b, sizeof(h) + sizeof(m) + nl, rank, MW_FN);
	r->known[id] = 1;
}

/* ---- pools ---- */

/* Whether rank r runs on some of the CPUs rank 0 runs on. */
static int shares_cpus(int r)
{
	int any = 0;

	if (D.ranks[r].node != br__mpi_node)
		return 0;
	for (int k = 0; k < MW_CPU_WORDS; k++)
		any |= (D.ranks[r].cpus[k] & br__mpi_cpus[k]) != 0;
	return any;
}

/*
 * Each rank's window for dp: WINDOW_PER_WORKER jobs per worker it has,
 * but a rank that shares rank 0's CPUs adds workers, not CPUs. The CPUs
 * they contend for are those any of them, or rank 0, may use. Such ranks
 * share what rank 0's own workers and rank 0 itself (which copies every
 * job in and every result out) leave free of those CPUs, by their worker
 * counts; whatever that leaves them, each may hold one job, so that work
 * still reaches it. Set once, when every rank has answered: a rank that
 * dies later leaves the others' windows as they were.
 */
static void set_windows(struct dpool *dp)
{
	uint64_t cpus[MW_CPU_WORDS];
	unsigned ncpus = 0, mine = br__remote_local_workers(dp->p) + 1;
	unsigned others = 0, left;

	memcpy(cpus, br__mpi_cpus, sizeof(cpus));
	for (int r = 1; r < br__mpi_size; r++) {
		dp->r[r].wait_ns = 0;
		/* No workers (dead, or it refused): fill() skips it. */
		dp->r[r].window =
			dp->r[r].workers > 0 ?
				WINDOW_PER_WORKER * (unsigned)dp->r[r].workers :
				0;
		if (dp->r[r].workers > 0 && shares_cpus(r)) {
			others += (unsigned)dp->r[r].workers;
			for (int k = 0; k < MW_CPU_WORDS; k++)
				cpus[k] |= D.ranks[r].cpus[k];
		}
	}
	for (int k = 0; k < MW_CPU_WORDS; k++)
		ncpus += (unsigned)__builtin_popcountll(cpus[k]);
	left = ncpus > mine ? ncpus - mine : 0;
	for (int r = 1; r < br__mpi_size; r++) {
		struct prank *pr = &dp->r[r];

		if (others > left && pr->workers > 0 && shares_cpus(r)) {
			pr->window = (unsigned)((uint64_t)WINDOW_PER_WORKER *
						(unsigned)pr->workers * left /
						others);
			if (pr->window == 0) {
				pr->window = 1;
				pr->wait_ns = SHARED_WAIT_NS;
			}
		}
	}
}

/* Every rank has answered dp's start: tell the pool what it has. */
static void maybe_ready(struct dpool *dp)
{
	if (dp->answered + 1 < (unsigned)br__mpi_size || !dp->ready)
		return;
	set_windows(dp);
	br_promise_resolve(dp->ready, (void *)(intptr_t)dp->total);
	br_future_release(dp->ready);
	dp->ready = NULL;
}

/* Rank r has answered dp's start, or never will (dead, or not asked). */
static void mark_answered(struct dpool *dp, int r)
{
	if (dp->r[r].answered)
		return;
	dp->r[r].answered = 1;
	dp->answered++;
	maybe_ready(dp);
}

static void announce(struct dpool *dp)
{
	const char *iname = "";
	uint64_t ioff = UINT64_MAX;
	size_t nl, len;
	struct br__mpi_out *b;
	struct mw_head h = { MW_POOL_NEW, dp->id, 0, 0 };
	struct mw_pool_new m;

	if (dp->cfg.init &&
	    br__mpi_name_of((const void *)dp->cfg.init, &iname, &ioff) < 0) {
		br_promise_reject(dp->ready, -ENOENT,
				  "br_pool_new: the initializer has no name "
				  "another rank could find");
		dp->answered = (unsigned)br__mpi_size - 1;
		return;
	}
	nl = ioff == UINT64_MAX ? 0 : strlen(iname);
	dp->start_by = br__deadline_add(
		br__deadline_in(br__ms_to_ns(dp->cfg.init_timeout_ms ?
						     dp->cfg.init_timeout_ms :
						     BR_POOL_INIT_TIMEOUT_MS)),
		DEAD_NS);
	m = (struct mw_pool_new){
		.workers = dp->cfg.workers,
		.max_jobs = dp->cfg.max_jobs,
		.timeout_ms = dp->cfg.timeout_ms,
		.init_timeout_ms = dp->cfg.init_timeout_ms,
		.max_payload = dp->cfg.max_payload,
		.init_offset = ioff,
		.name_len = (uint32_t)nl,
		.init_len = (uint32_t)dp->cfg.init_len,
	};
	len = sizeof(h) + sizeof(m) + nl + dp->cfg.init_len;
	for (int r = 1; r < br__mpi_size; r++) {
		if (D.dead[r]) {
			mark_answered(dp, r);
			continue;
		}
		b = br__mpi_out_new(len);
		if (!b) {
			mark_answered(dp, r);
			continue;
		}
		memcpy(b->data, &h, sizeof(h));
		memcpy(b->data + sizeof(h), &m, sizeof(m));
		memcpy(b->data + sizeof(h) + sizeof(m), iname, nl);
		if (dp->cfg.init_len)
			memcpy(b->data + sizeof(h) + sizeof(m) + nl,
			       dp->init_arg, dp->cfg.init_len);
		br__mpi_send(&D.sends, b, len, r, MW_POOL_NEW);
	}
}

static void dpool_free(struct dpool *dp)
{
	struct mw_head h = { MW_POOL_FREE, dp->id, 0, 0 };
	struct dpool **pp;

	for (int r = 1; r < br__mpi_size; r++)
		if (!D.dead[r])
			send_small(r, MW_POOL_FREE, &h, sizeof(h));
	for (pp = &D.pools; *pp; pp = &(*pp)->next)
		if (*pp == dp) {
			*pp = dp->next;
			break;
		}
	if (dp->ready) {
		br_promise_reject(dp->ready, BR_ECLOSED, "the pool was freed");
		br_future_release(dp->ready);
	}
	br__remote_put(dp->p);
	free(dp->init_arg);
	free(dp->r);
	free(dp);
}

static struct dpool *dpool_of(uint32_t id)
{
	for (struct dpool *dp = D.pools; dp; dp = dp->next)
		if (dp->id == id)
			return dp;
	return NULL;
}

/* ---- filling windows ---- */

/* Ship what fits in rank's window of dp. Returns how many jobs went; a
 * job held back by the rank's wait_ns lowers *due to when it may go. */
static int fill(struct dpool *dp, int rank, int64_t *due)
{
	struct prank *pr = &dp->r[rank];
	unsigned window = pr->window;
	/* The driver thread's only: too big for its stack frame. */
	static struct br__remote_job jobs[MAX_BATCH];
	static uint32_t ids[MAX_BATCH];
	struct mw_head h = { MW_JOBS, dp->id, 0, 0 };
	size_t n, room, len;
	int64_t when = INT64_MAX;
	struct br__mpi_out *b;
	char *at;

	if (D.dead[rank] || pr->workers <= 0 || pr->inflight >= window)
		return 0;
	room = window - pr->inflight;
	if (room > MAX_BATCH)
		room = MAX_BATCH;
	n = br__remote_take(dp->p, rank, jobs, room, BATCH_BYTES, pr->wait_ns,
			    &when);
	if (when < *due)
		*due = when;
	if (!n)
		return 0;
	len = sizeof(h) + n * sizeof(struct mw_job);
	for (size_t i = 0; i < n; i++) {
		ids[i] = fn_id((const void *)jobs[i].fn);
		if (ids[i])
			name_fn(rank, ids[i]);
		len += mw_pad8(jobs[i].len);
	}
	b = br__mpi_out_new(len);
	if (!b) {
		for (size_t i = 0; i < n; i++)
			br__remote_fail(dp->p, jobs[i].id, -ENOMEM,
					"out of memory shipping the job");
		return (int)n;
	}
	h.count = (uint32_t)n;
	memcpy(b->data, &h, sizeof(h));
	at = b->data + sizeof(h);
	for (size_t i = 0; i < n; i++) {
		struct mw_job m = { jobs[i].id, ids[i], jobs[i].nitems,
				    jobs[i].timeout_ns, jobs[i].len };

		memcpy(at, &m, sizeof(m));
		at += sizeof(m);
	}
	for (size_t i = 0; i < n; i++) {
		if (jobs[i].len)
			memcpy(at, jobs[i].in, jobs[i].len);
		at += mw_pad8(jobs[i].len);
	}
	br__mpi_send(&D.sends, b, len, rank, MW_JOBS);
	pr->inflight += (unsigned)n;
	return (int)n;
}

/* Fill every rank's windows; *due: when a job held back may go
 * (INT64_MAX: none is). */
static int fill_all(int64_t *due)
{
	int n = 0;

	*due = INT64_MAX;
	for (struct dpool *dp = D.pools; dp; dp = dp->next) {
		if (dp->ready || !br__remote_waiting(dp->p))
			continue;
		/* Round robin over the ranks, from a start that moves, so
		 * that no rank is always served first. */
		for (int k = 0; k < br__mpi_size - 1; k++) {
			int r = 1 + (int)((D.next_rank + (unsigned)k) %
					  (unsigned)(br__mpi_size - 1));

			n += fill(dp, r, due);
		}
		D.next_rank++;
	}
	return n;
}

/* ---- receiving ---- */

static void on_ready(int src, const struct mw_head *h, const char *body,
		     size_t len)
{
	struct dpool *dp = dpool_of(h->pool);
	struct mw_ready m;

	if (!dp || len < sizeof(m))
		return;
	memcpy(&m, body, sizeof(m));
	m.host[sizeof(m.host) - 1] = '\0';
	memcpy(D.ranks[src].host, m.host, sizeof(m.host));
	memcpy(D.ranks[src].cpus, m.cpus, sizeof(m.cpus));
	D.ranks[src].node = m.node;
	if (dp->r[src].answered)
		return;
	if (m.workers > 0) {
		dp->r[src].workers = m.workers;
		dp->total += (unsigned)m.workers;
	}
	mark_answered(dp, src);
}

static void on_results(int src, const struct mw_head *h, const char *body,
		       size_t len)
{
	struct dpool *dp = dpool_of(h->pool);
	size_t at = 0;

	for (uint32_t i = 0; i < h->count; i++) {
		struct mw_result m;
		const char *data;
		char msg[1100];

		if (len - at < sizeof(m))
			break;
		memcpy(&m, body + at, sizeof(m));
		at += sizeof(m);
		if (len - at < m.len)
			break;
		data = body + at;
		at += mw_pad8(m.len);
		if (at > len)
			at = len;
		if (!dp)
			continue;
		if (dp->r[src].inflight)
			dp->r[src].inflight--;
		if (m.error == 0) {
			br__remote_done(dp->p, m.id, data, m.len);
			continue;
		}
		snprintf(msg, sizeof(msg), "rank %d (%s): %.*s", src,
			 D.ranks[src].host, (int)(m.len < 1024 ? m.len : 1024),
			 data);
		br__remote_fail(dp->p, m.id, m.error, msg);
	}
}

static int receive(void)
{
	int n = 0, src, tag;
	size_t len;
	char *buf;

	while ((buf = br__mpi_recv(MPI_ANY_SOURCE, &src, &tag, &len))) {
		if (src > 0 && src < br__mpi_size &&
		    len >= sizeof(struct mw_head)) {
			struct mw_head h;
			const char *body = buf + sizeof(h);
			size_t blen = len - sizeof(h);

			memcpy(&h, buf, sizeof(h));
			D.ranks[src].heard = br_now_ns();
			/* A beat says a rank lives; it is not work to poll
			 * for, or an idle driver would never nap long. */
			if (h.type != MW_BEAT)
				n++;
			if (h.type == MW_POOL_READY)
				on_ready(src, &h, body, blen);
			else if (h.type == MW_RESULTS)
				on_results(src, &h, body, blen);
		}
		free(buf);
	}
	return n;
}

/* ---- ranks that stopped answering ---- */

/* Whether rank r may be silent because it is starting a pool's workers,
 * which its initializer may make take up to the pool's init limit. */
static int starting(int r, int64_t now)
{
	for (struct dpool *dp = D.pools; dp; dp = dp->next)
		if (dp->ready && !dp->r[r].answered && now < dp->start_by)
			return 1;
	return 0;
}

static void check_deaths(int64_t now)
{
	for (int r = 1; r < br__mpi_size; r++) {
		struct drank *dr = &D.ranks[r];
		char why[200];

		if (D.dead[r] || now - dr->heard < DEAD_NS || starting(r, now))
			continue;
		D.dead[r] = 1;
		D.any_dead = 1;
		snprintf(why, sizeof(why),
			 "rank %d on host %s died: no word from it for %lld "
			 "ms",
			 r, dr->host[0] ? dr->host : "?",
			 (long long)(DEAD_NS / BR__NS_PER_MS));
		for (struct dpool *dp = D.pools; dp; dp = dp->next) {
			if (dp->r[r].workers > 0)
				dp->total -= (unsigned)dp->r[r].workers;
			dp->r[r].workers = -1;
			dp->r[r].inflight = 0;
			br__remote_lost(dp->p, r, why);
			if (dp->ready)
				mark_answered(dp, r);
		}
	}
}

/* ---- commands from the pools ---- */

static int run_commands(void)
{
	struct cmd *c, *next;
	int n = 0;

	pthread_mutex_lock(&D.lock);
	c = D.cmds;
	D.cmds = NULL;
	D.cmds_tail = &D.cmds;
	pthread_mutex_unlock(&D.lock);
	/* Cancels to one rank in one message. */
	for (; c; c = next, n++) {
		next = c->next;
		if (c->op == CMD_NEW) {
			c->dp->id = ++D.next_id;
			c->dp->next = D.pools;
			D.pools = c->dp;
			announce(c->dp);
			maybe_ready(c->dp);
		} else if (c->op == CMD_FREE) {
			dpool_free(c->dp);
		} else if (!D.dead[c->rank]) {
			struct {
				struct mw_head h;
				uint64_t id;
			} m = { { MW_CANCEL, c->dp->id, 1, 0 }, c->id };

			send_small(c->rank, MW_CANCEL, &m, sizeof(m));
		}
		free(c);
	}
	return n;
}

static void post(int op, struct dpool *dp, int rank, uint64_t id)
{
	struct cmd *c = calloc(1, sizeof(*c));

	if (!c)
		return; /* a cancel lost: its result is dropped anyway */
	c->op = op;
	c->dp = dp;
	c->rank = rank;
	c->id = id;
	pthread_mutex_lock(&D.lock);
	*D.cmds_tail = c;
	D.cmds_tail = &c->next;
	pthread_mutex_unlock(&D.lock);
	br__mpi_ring(&D.bell, &D.sleeping);
}

/* ---- the thread ---- */

static int jobs_out(void)
{
	for (struct dpool *dp = D.pools; dp; dp = dp->next)
		for (int r = 1; r < br__mpi_size; r++)
			if (dp->r[r].inflight)
				return 1;
	return D.sends != NULL;
}

static void *driver_main(void *arg)
{
	unsigned idle = 0;
	int64_t last_check = 0, last_work = 0;

	while (!atomic_load_explicit(&D.stop, memory_order_acquire)) {
		int64_t now, due, nap;
		int n = run_commands(), out;

		n += receive();
		n += fill_all(&due);
		test_sends();
		now = br_now_ns();
		if (now - last_check > BR__MPI_BEAT_NS / 2) {
			check_deaths(now);
			last_check = now;
		}
		if (n) {
			idle = 0;
			last_work = now;
			continue;
		}
		out = jobs_out();
		nap = out || now - last_work < WARM_NS ? NAP_BUSY_NS :
							 NAP_IDLE_NS;
		if (due == INT64_MAX || out) {
			if (due - now < nap)
				nap = due > now ? due - now : 0;
			br__mpi_nap(&D.bell, &D.sleeping, &idle, nap);
			continue;
		}
		/* Nothing is out, only jobs held back for ranks that share
		 * rank 0's CPUs wait: nothing to spin for before the first
		 * may go. */
		idle = 0;
		if (due > now)
			br__mpi_sleep(&D.bell, &D.sleeping,
				      due - now < nap ? due - now : nap);
	}
	return NULL;
}

/* ---- the transport's operations ---- */

static br_future *failed(int err)
{
	br_future *f = br_promise_new();

	br_promise_reject(f, err, NULL); /* EDONE on the static ENOMEM one */
	return f;
}

static br_future *op_pool_new(br_pool *p, const br_pool_config *cfg,
			      void **state)
{
	struct dpool *dp = calloc(1, sizeof(*dp));
	br_future *f;

	if (!dp)
		return failed(-ENOMEM);
	dp->p = p;
	dp->cfg = *cfg;
	dp->r = calloc((size_t)br__mpi_size, sizeof(*dp->r));
	dp->ready = br_promise_new();
	if (cfg->init_len) {
		dp->init_arg = malloc(cfg->init_len);
		if (dp->init_arg)
			memcpy(dp->init_arg, cfg->init_arg, cfg->init_len);
	}
	if (!dp->r || br_future_state(dp->ready) != BR_PENDING ||
	    (cfg->init_len && !dp->init_arg)) {
		br_future_release(dp->ready);
		free(dp->r);
		free(dp->init_arg);
		free(dp);
		return failed(-ENOMEM);
	}
	f = br_future_retain(dp->ready);
	*state = dp;
	post(CMD_NEW, dp, 0, 0);
	return f;
}

static void op_kick(void *state)
{
	br__mpi_ring(&D.bell, &D.sleeping);
}

static void op_pool_free(void *state)
{
	post(CMD_FREE, state, 0, 0);
}

static void op_cancel(void *state, int rank, uint64_t id)
{
	post(CMD_CANCEL, state, rank, id);
}

/* Sends to live ranks still under way. */
static int live_sends(void)
{
	for (struct br__mpi_out *b = D.sends; b; b = b->next)
		if (!D.dead[b->rank])
			return 1;
	return 0;
}

/*
 * After the goodbyes: receive (and drop) until every live rank has said
 * goodbye back, so that no rank is left with a send nobody receives, and
 * let rank 0's own sends go. A rank silent for DEAD_NS counts as dead.
 */
static void farewell(void)
{
	int left = 0;
	int64_t heard = br_now_ns();
	uint8_t *gone = calloc((size_t)br__mpi_size, 1);

	for (int r = 1; r < br__mpi_size; r++)
		left += !D.dead[r];
	while ((left || live_sends()) && gone) {
		int src, tag;
		size_t len;
		char *buf;

		test_sends();
		buf = br__mpi_recv(MPI_ANY_SOURCE, &src, &tag, &len);
		if (buf) {
			free(buf);
			heard = br_now_ns();
			if (tag == MW_BYE && src > 0 && src < br__mpi_size &&
			    !gone[src]) {
				gone[src] = 1;
				left--;
			}
			continue;
		}
		if (br_now_ns() - heard > DEAD_NS) {
			D.any_dead = 1;
			break;
		}
		sched_yield();
	}
	free(gone);
}

static const struct br__remote_ops ops = {
	.pool_new = op_pool_new,
	.kick = op_kick,
	.pool_free = op_pool_free,
	.cancel = op_cancel,
};

int br__mpi_driver_start(void)
{
	int64_t now = br_now_ns();
	int r;

	D.cmds_tail = &D.cmds;
	D.ranks = calloc((size_t)br__mpi_size, sizeof(*D.ranks));
	D.dead = calloc((size_t)br__mpi_size, 1);
	if (!D.ranks || !D.dead)
		return -ENOMEM;
	for (int i = 0; i < br__mpi_size; i++)
		D.ranks[i].heard = now;
	r = pthread_create(&D.th, NULL, driver_main, NULL);
	if (r)
		return -r;
	D.started = 1;
	return br__remote_register(&ops);
}

void br__mpi_driver_stop(void)
{
	struct mw_head bye = { MW_BYE, 0, 0, 0 };
	int finalized = 0;

	if (D.started) {
		atomic_store_explicit(&D.stop, 1, memory_order_release);
		br__mpi_ring(&D.bell, &D.sleeping);
		pthread_join(D.th, NULL);
		D.started = 0;
	}
	MPI_Finalized(&finalized);
	if (finalized || br__mpi_comm == MPI_COMM_NULL ||
	    (br__mpi_size > 1 && !D.ranks))
		return;
	/* A job of one rank has no driver, and nobody to say goodbye to;
	 * it must still finalize, or its launcher takes it for a crash. */
	if (br__mpi_size > 1) {
		for (int r = 1; r < br__mpi_size; r++)
			if (!D.dead[r])
				send_small(r, MW_BYE, &bye, sizeof(bye));
		farewell();
	}
	/* With a rank dead, MPI_Finalize would wait for it for ever. */
	if (!D.any_dead)
		MPI_Finalize();
}
