/* SPDX-License-Identifier: MIT */
/*
 * pool_map.c - br_map, br_map_result and br_imap: a map over many items
 * as chunk jobs of the process pool.
 *
 * Design
 *   A map cuts its items into chunks (by default about four per worker,
 *   no bigger than a ring slot holds), each a JOB_CHUNK job whose output
 *   is its items' encoded results back to back (pool_shm.h). br_map's
 *   future (struct pmap) completes when the last chunk settles: it then
 *   gathers every item's output into one buffer, [n][n + 1 offsets][data],
 *   which br_map_result() indexes. By default the first failed item (by
 *   item number) fails the whole map; with BR_MAP_ITEM_ERRORS the map
 *   ends DONE and each item keeps its output or its error and message
 *   (a chunk that failed whole, its worker dead or its time up, gives
 *   each of its items its error). br_imap hands items out as chunks
 *   complete, in order or (BR_IMAP_UNORDERED) as they come, through
 *   br_as_completed.
 *
 * Concurrency
 *   Chunks are queued and completed as any job (pool_queue.c); m->left,
 *   decremented by whoever settles a chunk, decides who finishes the map.
 *   One br_imap_next() call at a time per iterator (busy).
 *
 * Lifetime
 *   The map's future holds a reference to each chunk; the chunks hold
 *   one shared reference to the map, dropped by the last to settle.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool.h"
#include "wait.h"

/* A map's failure message: the item number, and the item's own message
 * (BR__POOL_MSG_MAX) after it. */
#define MAP_MSG_MAX (BR__POOL_MSG_MAX + 176)

static void map_free(struct br_future *f)
{
	struct pmap *m = br__container_of(f, struct pmap, fut);
	struct br_pool *p = m->pool;

	for (size_t i = 0; i < m->nchunks; i++)
		br_future_release(&m->chunks[i]->fut);
	free(m->chunks);
	br__future_destroy(f);
	free(m);
	br__pool_put(p);
}

static void cancel_chunks(struct pmap *m)
{
	for (size_t i = 0; i < m->nchunks; i++)
		if (br__future_state(&m->chunks[i]->fut) == BR_PENDING)
			br__pool_job_cancel(m->chunks[i]);
}

/* Cancelling a map cancels its pending chunks; the last to settle
 * completes the map. */
static int map_cancel(struct br_future *f)
{
	struct pmap *m = br__container_of(f, struct pmap, fut);

	/* Relaxed: read by whoever finishes the map, after the chunks'
	 * settling, which the acq_rel count of left orders after this. */
	atomic_store_explicit(&m->cancelled, 1, memory_order_relaxed);
	cancel_chunks(m);
	return 0;
}

static const struct br__future_ops map_ops = {
	.name = "map",
	.free = map_free,
	.cancel = map_cancel,
};

static struct pjob *chunk_of(br_future *f)
{
	return br__container_of(f, struct pjob, fut);
}

static size_t auto_chunk(struct br_pool *p, size_t item_size, size_t n,
			 size_t chunk)
{
	/* As many as fit a slot; output that outgrows a result entry goes
	 * through the worker's big area, which costs a hand-off. */
	size_t fit = BR__POOL_SLOT_ROOM / item_size;
	size_t workers = (size_t)p->nworkers + p->remote_workers;

	if (!chunk) {
		chunk = (n + 4 * workers - 1) / (4 * workers);
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

/* One item's outcome, read from its chunk. */
struct item {
	int err;	  /* 0, or the item's error */
	const char *data; /* its output, or its message (not terminated) */
	size_t len;
};

/* Walks the items of one chunk in order. */
struct cursor {
	struct pjob *j;
	const char *b; /* the chunk's encoded outputs (DONE chunks) */
	size_t blen, pos;
	int broken; /* an item's output ran past max_payload */
};

static const char over_msg[] = "the chunk's output is over max_payload";

static void cursor_init(struct cursor *c, struct pjob *j)
{
	c->j = j;
	c->b = br_future_bytes(&j->fut, &c->blen);
	c->pos = 0;
	c->broken = 0;
}

static void cursor_next(struct cursor *c, struct item *it)
{
	struct br__pool_item pi;
	const char *data = NULL;

	if (br__future_state(&c->j->fut) != BR_DONE) {
		/* The whole chunk failed (its worker died, its time ran
		 * out, it was cancelled): so did each of its items. */
		it->err = c->j->fut.error;
		it->data = c->j->fut.message ? c->j->fut.message : "";
		it->len = strlen(it->data);
		return;
	}
	if (c->broken ||
	    !br__pool_next_item(c->b, c->blen, &c->pos, &pi, &data)) {
		c->broken = 1;
		it->err = -EMSGSIZE;
		it->data = over_msg;
		it->len = sizeof(over_msg) - 1;
		return;
	}
	it->err = pi.error < 0 ? pi.error : 0;
	it->data = data;
	it->len = pi.len;
	if (it->err && it->len > BR__POOL_MSG_MAX)
		it->len = BR__POOL_MSG_MAX;
}

/*
 * The result buffer, which br_map_result() and br_map_item() index:
 *
 *   uint64_t n | uint64_t off[n + 1] | int32_t err[n], padded to 8 | data
 *
 * Item i's bytes are data[off[i] .. off[i + 1]): its output when err[i]
 * is 0, else its message and a NUL (BR_MAP_ITEM_ERRORS only).
 */
static size_t errs_size(size_t n)
{
	return (n * sizeof(int32_t) + 7) & ~(size_t)7;
}

static size_t data_at(size_t n)
{
	return (n + 2) * sizeof(uint64_t) + errs_size(n);
}

static void map_finish(struct pmap *m)
{
	int keep = !!(m->flags & BR_MAP_ITEM_ERRORS);
	size_t total = 0, bad = SIZE_MAX, k;
	struct cursor c;
	struct item it;
	uint64_t *hdr;
	int32_t *errs;
	char *out, *d;

	if (keep && atomic_load_explicit(&m->cancelled, memory_order_relaxed)) {
		br__future_complete(&m->fut, BR_CANCELLED, NULL, NULL, 0,
				    -ECANCELED, "cancelled");
		return;
	}
	/* Pass 1: sizes, and (by default) the first failure by number. */
	for (size_t ch = 0; ch < m->nchunks && bad == SIZE_MAX; ch++) {
		cursor_init(&c, m->chunks[ch]);
		for (uint32_t i = 0; i < c.j->nitems; i++) {
			cursor_next(&c, &it);
			if (it.err && !keep) {
				char msg[MAP_MSG_MAX];

				bad = c.j->first + i;
				snprintf(msg, sizeof(msg), "item %zu: %.*s",
					 bad, (int)it.len, it.data);
				br__future_complete(&m->fut, BR_FAILED, NULL,
						    NULL, 0, it.err, msg);
				return;
			}
			total += it.len + (it.err ? 1 : 0);
		}
	}
	/* Pass 2: the buffer above. */
	out = malloc(data_at(m->n) + total + 1);
	if (!out) {
		br__future_complete(&m->fut, BR_FAILED, NULL, NULL, 0, -ENOMEM,
				    "out of memory");
		return;
	}
	hdr = (uint64_t *)out;
	hdr[0] = m->n;
	errs = (int32_t *)(out + (m->n + 2) * sizeof(uint64_t));
	memset(errs, 0, errs_size(m->n));
	d = out + data_at(m->n);
	total = 0;
	for (size_t ch = 0; ch < m->nchunks; ch++) {
		cursor_init(&c, m->chunks[ch]);
		for (uint32_t i = 0; i < c.j->nitems; i++) {
			k = c.j->first + i;
			cursor_next(&c, &it);
			hdr[1 + k] = total;
			errs[k] = it.err;
			memcpy(d + total, it.data, it.len);
			total += it.len;
			if (it.err)
				d[total++] = '\0';
		}
	}
	hdr[1 + m->n] = total;
	br__future_complete(&m->fut, BR_DONE, NULL, out, data_at(m->n) + total,
			    0, NULL);
}

/* A chunk of m settled; the last one completes m and drops the
 * reference the chunks shared. */
void br__pool_map_chunk_done(struct pmap *m)
{
	if (atomic_fetch_sub_explicit(&m->left, 1, memory_order_acq_rel) == 1) {
		map_finish(m);
		br_future_release(&m->fut);
	}
}

/*
 * Make the chunk jobs of a map over items (chunk items each) and queue
 * them; *out and *nout get the array of chunks. Returns 0 if every chunk
 * is queued; 1 if the pool refused some (the pool closed, or no worker
 * can start): those have failed with its error, and the caller decides
 * what becomes of the queued ones; or a negative error (-ENOMEM) with
 * nothing made and nothing queued.
 */
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

		cs[c] = br__pool_job_new(p, JOB_CHUNK, fn,
					 items + first * item_size,
					 k * item_size, (uint32_t)k,
					 p->timeout_ns);
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
		r = br__pool_enqueue(p, cs[c], 0);
		if (r > 0)
			r = 0; /* the transport is told below */
		if (r < 0) {
			/* Chunks queued so far are cancelled by the caller
			 * through the map; the rest end here. */
			for (size_t d = c; d < nchunks; d++) {
				cs[d]->where = W_DONE;
				br__pool_fail_job(cs[d], BR_FAILED, r,
						  br__pool_refusal(p, r));
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
	br__pool_wake_workers(p, (int)p->nworkers);
	if (p->remote)
		br__pool_remote_kick(p);
	if (m)
		br__pool_map_chunk_done(m); /* the extra count */
	return r < 0 ? 1 : 0;
}

static int map_args(struct br_pool *p, br_job_fn fn, const void *items,
		    size_t item_size, size_t n)
{
	int r = br__pool_check(p);

	if (r < 0)
		return r;
	if (!fn || (!items && n) || !item_size)
		return -EINVAL;
	if (item_size > p->max_payload)
		return -EMSGSIZE;
	return 0;
}

br_future *br_map_ex(br_pool *pool, br_job_fn fn, const void *items,
		     size_t item_size, size_t n, size_t chunk, unsigned flags)
{
	struct pmap *m;
	int r = map_args(pool, fn, items, item_size, n);

	if (r < 0)
		return br__future_failed(r, "br_map: bad arguments");
	if (flags & ~BR_MAP_ITEM_ERRORS)
		return br__future_failed(-EINVAL, "br_map: unknown flags");
	if (chunk && chunk * item_size > pool->max_payload)
		return br__future_failed(-EMSGSIZE,
					 "br_map: a chunk is over max_payload");
	m = calloc(1, sizeof(*m));
	if (!m)
		return &br__future_enomem;
	br__future_init(&m->fut, &map_ops, 1);
	m->pool = br__pool_get(pool);
	m->n = n;
	m->flags = flags;
	atomic_init(&m->cancelled, 0);
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
		cancel_chunks(m); /* the pool refused some: see make_chunks */
	return &m->fut;
}

br_future *br_map(br_pool *pool, br_job_fn fn, const void *items,
		  size_t item_size, size_t n, size_t chunk)
{
	return br_map_ex(pool, fn, items, item_size, n, chunk, 0);
}

/*
 * Item i of a DONE map's buffer (see map_finish): its bytes, their
 * length in *len and its error in *err. Returns NULL with *err < 0
 * when f is not a DONE map or i is out of range.
 */
static const char *item_at(const br_future *f, size_t i, size_t *len, int *err)
{
	const uint64_t *hdr;
	const int32_t *errs;

	*len = 0;
	if (!br__future_ok(f) || f->ops != &map_ops) {
		*err = br__future_ok(f) ? -EINVAL : BR_EBADOBJ;
		return NULL;
	}
	if (br__future_state(f) != BR_DONE) {
		*err = br__future_state(f) == BR_PENDING ? -EAGAIN :
							   br_future_error(f);
		return NULL;
	}
	hdr = br_future_bytes(f, NULL);
	if (!hdr || i >= hdr[0]) {
		*err = -EINVAL;
		return NULL;
	}
	errs = (const int32_t *)(hdr + hdr[0] + 2);
	*err = errs[i];
	*len = hdr[2 + i] - hdr[1 + i];
	return (const char *)hdr + data_at(hdr[0]) + hdr[1 + i];
}

const void *br_map_result(const br_future *f, size_t i, size_t *len)
{
	size_t l;
	int err;
	const char *p = item_at(f, i, &l, &err);

	if (err)
		p = NULL, l = 0;
	if (len)
		*len = l;
	return p;
}

const void *br_map_item(const br_future *f, size_t i, size_t *len, int *err)
{
	size_t l;
	int e;
	const char *p = item_at(f, i, &l, &e);

	if (e)
		p = NULL, l = 0;
	if (len)
		*len = l;
	if (err)
		*err = e;
	return p;
}

const char *br_map_item_message(const br_future *f, size_t i)
{
	size_t l;
	int e;
	const char *p = item_at(f, i, &l, &e);

	/* A failed item's bytes are its message and a NUL. */
	return p && e < 0 ? p : "";
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
	char msg[MAP_MSG_MAX];
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
	while (!it->cur || it->item == chunk_of(it->cur)->nitems) {
		br_future *f;
		int r;

		if (it->ac) {
			r = br_as_completed_next_ex(it->ac, &f);
			if (r < 0)
				return r;
			it->next++;
		} else {
			if (it->next == it->nchunks)
				return BR_EDONE;
			f = &it->chunks[it->next]->fut;
			/* The wait itself failing (the caller was cancelled,
			 * or its deadline scope passed) is told from the
			 * chunk's own failure; the chunk is cancelled then,
			 * as br_await() would. */
			r = br__wait_any(&f, 1, -1, 0);
			if (r < 0) {
				br_cancel(f);
				return r;
			}
			it->next++;
		}
		it->cur = f;
		it->pos = 0;
		it->item = 0;
	}
	j = chunk_of(it->cur);
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
	if (!br__pool_next_item(b, blen, &it->pos, &item, &data)) {
		snprintf(it->msg, sizeof(it->msg),
			 "the chunk's output is over max_payload");
		it->pos = blen;
		return -EMSGSIZE;
	}
	if (item.error < 0) {
		snprintf(it->msg, sizeof(it->msg), "%.*s",
			 (int)(item.len < BR__POOL_MSG_MAX ? item.len :
							     BR__POOL_MSG_MAX),
			 data);
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
