/* SPDX-License-Identifier: MIT */
/*
 * fuzz_http_parse.c - libFuzzer target for examples/http_parse.h, the
 * HTTP example's request parser and request-stream logic.
 *
 * Design
 *   An input is what a client might send on one connection, optionally
 *   followed by a cut list: after the last "\xffCUT", each two bytes
 *   (little endian) give the length of one receive, 1 + value % 4096
 *   (for CUTS_MAX receives at most). Without the list, or past its end,
 *   the lengths come from a generator seeded by the stream's hash, on a
 *   scale from single bytes to 4 KiB.
 *   The stream is then served several ways, which must agree:
 *   - whole: http_serve() over the stream as one buffer;
 *   - cut: http_input() as the server calls it, one receive per piece,
 *     each piece in a buffer of its exact size (ASan sees a read past a
 *     receive's end), and the bytes kept across receives made unreadable
 *     past their end (HTTP_INPUT_BOUNDS), so a read past them shows too;
 *   - one byte per receive, for streams up to 256 bytes.
 *   They must write the same answers byte for byte, close after the same
 *   request or not at all, and if open keep the same head bytes and the
 *   same body bytes to skip. Answers are gathered in a small buffer
 *   (HTTP_OUT_MAX 1024), so the HTTP_FLUSH path runs often.
 *
 *   Each of the first heads of the stream is also parsed on its own, in a
 *   buffer of its exact size:
 *   - the status is one http_parse() may give; HTTP_MORE only for a
 *     window under HTTP_HEAD_MAX with no CRLF CRLF in it;
 *   - a head accepted lies inside the buffer, ends with CRLF CRLF, is at
 *     most HTTP_HEAD_MAX, has no CR or LF outside its line ends and no
 *     control character but HTAB;
 *   - Content-Length, checked by a second, plain parser of the accepted
 *     head: accepted only if every Content-Length line is 1*DIGIT within
 *     64 bits, all agree, the value is at most HTTP_BODY_MAX and there is
 *     no Transfer-Encoding; the body length taken is that value (0 with
 *     none). 413 only for a framing that is valid but too long; 501 only
 *     with Transfer-Encoding and no Content-Length;
 *   - every prefix (all up to 64 bytes, then a sample) gives HTTP_MORE
 *     or the same answer, and HTTP_MORE before an accepted head's end.
 *
 *   The answers of the whole run are read back as a client reads them:
 *   one per request, with its status, framed by their Content-Length (no
 *   body for HEAD), Connection: close exactly on the last one when the
 *   server closes.
 *
 *   A failed check prints what it saw and aborts, which libFuzzer
 *   reports as a crash with the input saved.
 *
 * Concurrency: libFuzzer's one thread; no state across inputs but the
 * tables http_init() builds once.
 */
#include <sanitizer/asan_interface.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void bounds(char *buf, size_t n, size_t cap);
#define HTTP_OUT_MAX 1024
#define HTTP_INPUT_BOUNDS(buf, n, cap) bounds(buf, n, cap)
#include "http_parse.h"

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, \
				__LINE__, #cond);                              \
			abort();                                               \
		}                                                              \
	} while (0)

#define STREAM_CUTS \
	"\xff"      \
	"CUT"
#define PREFIX_ALL 64	 /* prefixes of a head all checked up to this */
#define PREFIX_SAMPLE 8	 /* and this many beyond */
#define HEADS_CHECKED 4	 /* heads per input checked on their own */
#define BYTEWISE_MAX 256 /* streams served one byte per receive */
/* Each receive parses the head kept so far again, so a long stream cut
 * small costs the square of its length: cut lists are read up to this
 * many receives, and generated cuts make at most about this many. */
#define CUTS_MAX 256

static void bounds(char *buf, size_t n, size_t cap)
{
	ASAN_POISON_MEMORY_REGION(buf + n, cap - n);
}

/* ---- a stream's receive lengths ---- */

struct cuts {
	const uint8_t *list; /* two bytes per receive */
	size_t left;	     /* receives left in list */
	size_t min;	     /* generated lengths are at least this */
	uint64_t rng;
};

static uint64_t next_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static size_t next_cut(struct cuts *c)
{
	uint64_t r;

	if (c->left) {
		unsigned v = c->list[0] | (unsigned)c->list[1] << 8;

		c->list += 2;
		c->left--;
		return 1 + v % HTTP_RECV_MAX;
	}
	r = next_rand(&c->rng);
	r = 1 + (r >> 8) % ((uint64_t)1 << (r % 13));
	return r < c->min ? c->min : (size_t)r;
}

/* ---- what a way of serving produced ---- */

struct transcript {
	char *buf;
	size_t len, cap;
	int closed;
	size_t kept;   /* head bytes kept, if open */
	uint64_t skip; /* body bytes to skip, if open */
};

static void add(struct transcript *t, const struct http_out *o)
{
	CHECK(o->len <= sizeof(o->buf));
	if (!o->len)
		return;
	if (t->len + o->len > t->cap) {
		t->cap = 2 * (t->len + o->len);
		t->buf = realloc(t->buf, t->cap);
		CHECK(t->buf);
	}
	memcpy(t->buf + t->len, o->buf, o->len);
	t->len += o->len;
}

static void serve_whole(const char *s, size_t n, struct transcript *t)
{
	struct http_out *o = malloc(sizeof(*o));
	char *copy = malloc(n ? n : 1);
	uint64_t skip = 0;
	size_t used = 0;
	int v;

	CHECK(o && copy);
	memcpy(copy, s, n);
	do {
		o->len = 0;
		used += http_serve(copy + used, n - used, &skip, o, &v);
		CHECK(used <= n);
		add(t, o);
	} while (v == HTTP_FLUSH);
	t->closed = v == HTTP_CLOSE;
	t->kept = n - used;
	t->skip = skip;
	free(copy);
	free(o);
}

static void serve_cut(const char *s, size_t n, struct cuts *c,
		      struct transcript *t)
{
	struct http_in *in = calloc(1, sizeof(*in));
	struct http_out *o = malloc(sizeof(*o));
	size_t off = 0;
	int v = HTTP_READ;

	CHECK(in && o);
	while (off < n && v != HTTP_CLOSE) {
		size_t k = next_cut(c);
		char *piece;

		if (k > n - off)
			k = n - off;
		piece = malloc(k);
		CHECK(piece);
		memcpy(piece, s + off, k);
		off += k;
		ASAN_UNPOISON_MEMORY_REGION(in->buf, sizeof(in->buf));
		o->len = 0;
		v = http_input(in, piece, k, o);
		add(t, o);
		while (v == HTTP_FLUSH) {
			ASAN_UNPOISON_MEMORY_REGION(in->buf, sizeof(in->buf));
			o->len = 0;
			v = http_input(in, NULL, 0, o);
			add(t, o);
		}
		free(piece);
		CHECK(v == HTTP_CLOSE || in->have < HTTP_HEAD_MAX);
	}
	t->closed = v == HTTP_CLOSE;
	t->kept = in->have;
	t->skip = in->skip;
	ASAN_UNPOISON_MEMORY_REGION(in->buf, sizeof(in->buf));
	free(in);
	free(o);
}

static void same(const struct transcript *a, const struct transcript *b)
{
	if (a->len != b->len || (a->len && memcmp(a->buf, b->buf, a->len)) ||
	    a->closed != b->closed ||
	    (!a->closed && (a->kept != b->kept || a->skip != b->skip))) {
		fprintf(stderr,
			"whole: %zu answer bytes, closed %d, kept %zu, skip "
			"%llu\n%.*s\ncut: %zu answer bytes, closed %d, kept "
			"%zu, skip %llu\n%.*s\n",
			a->len, a->closed, a->kept, (unsigned long long)a->skip,
			(int)a->len, a->buf, b->len, b->closed, b->kept,
			(unsigned long long)b->skip, (int)b->len, b->buf);
		CHECK(!"the ways of serving agree");
	}
}

/* ---- the answers ---- */

static int is_error(int status)
{
	return status == 400 || status >= 413;
}

/*
 * The answers in t, read as a client reads them, must be one per request
 * of s[0..n) as http_parse() sees them, in order: its status, a body as
 * long as the answer's Content-Length unless it asked with HEAD, and
 * Connection: close on the last one when the server closes.
 */
static void check_answers(const char *s, size_t n, const struct transcript *t)
{
	const char *start = t->len ? t->buf : "", *a = start, *end = a + t->len;
	uint64_t skip = 0;
	size_t used = 0;

	for (;;) {
		const char *he, *cl;
		struct http_req rq;
		char *num_end;
		unsigned long len;
		int status;

		if (skip) {
			size_t k = skip < n - used ? (size_t)skip : n - used;

			used += k;
			skip -= k;
		}
		if (used == n)
			break;
		status = http_parse(s + used, n - used, &rq);
		if (status == HTTP_MORE)
			break;
		CHECK(end - a > 12 && !memcmp(a, "HTTP/1.1 ", 9));
		CHECK(strtol(a + 9, NULL, 10) == status);
		he = memmem(a, (size_t)(end - a), "\r\n\r\n", 4);
		CHECK(he);
		cl = memmem(a, (size_t)(he - a), "\r\nContent-Length: ", 18);
		CHECK(cl);
		len = strtoul(cl + 18, &num_end, 10);
		CHECK(num_end[0] == '\r');
		CHECK(!!memmem(a, (size_t)(he + 4 - a),
			       "\r\nConnection: close\r\n", 21) == rq.close);
		CHECK(!rq.head_only || status == 200 || status == 404);
		a = he + 4 + (rq.head_only ? 0 : len);
		CHECK(a <= end);
		if (rq.close)
			break;
		used += rq.head_len;
		skip = rq.body;
	}
	CHECK(a == end);
	CHECK(t->closed ==
	      (memmem(start, t->len, "\r\nConnection: close\r\n", 21) != NULL));
}

/* ---- one head on its own ---- */

/* What a plain reading of a complete head's field lines finds. */
struct framing {
	int lengths; /* Content-Length lines */
	int valid;   /* all 1*DIGIT within 64 bits, all the same */
	int te;	     /* a Transfer-Encoding line */
	uint64_t value;
};

static int name_is(const char *line, size_t n, const char *name)
{
	size_t k = strlen(name);

	return n > k && line[k] == ':' && !strncasecmp(line, name, k);
}

static struct framing read_framing(const char *h, size_t len)
{
	struct framing f = { .valid = 1 };
	const char *line = memmem(h, len, "\r\n", 2) + 2, *end = h + len;

	for (;;) {
		const char *eol = memmem(line, (size_t)(end - line), "\r\n", 2);
		size_t n = (size_t)(eol - line);

		if (!n)
			break;
		if (name_is(line, n, "transfer-encoding")) {
			f.te = 1;
		} else if (name_is(line, n, "content-length")) {
			const char *v = line + 15, *ve = eol;
			uint64_t x = 0;

			while (v < ve && (*v == ' ' || *v == '\t'))
				v++;
			while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
				ve--;
			if (v == ve)
				f.valid = 0;
			for (; v < ve; v++)
				if (*v < '0' || *v > '9' ||
				    __builtin_mul_overflow(x, 10, &x) ||
				    __builtin_add_overflow(x, *v - '0', &x))
					f.valid = 0;
			if (f.lengths++ && x != f.value)
				f.valid = 0;
			f.value = x;
		}
		line = eol + 2;
	}
	return f;
}

static int parse_copy(const char *p, size_t n, struct http_req *rq)
{
	char *copy = malloc(n ? n : 1);
	int status;

	CHECK(copy);
	memcpy(copy, p, n);
	status = http_parse(copy, n, rq);
	free(copy);
	return status;
}

/* Check http_parse() on the head at the front of p[0..n); returns its
 * status and fills *rq. */
static int check_head(const char *p, size_t n, uint64_t *rng)
{
	size_t w = n < HTTP_HEAD_MAX ? n : HTTP_HEAD_MAX, i, m;
	const char *end;
	struct http_req rq, rq2;
	int status;

	/* Only the window counts. */
	status = parse_copy(p, w, &rq);
	CHECK(http_parse(p, n, &rq2) == status);
	end = memmem(p, w, "\r\n\r\n", 4);
	switch (status) {
	case HTTP_MORE:
		CHECK(w < HTTP_HEAD_MAX && !end);
		return status;
	case 200:
	case 404:
	case 405: {
		struct framing f;

		/* "A / HTTP/1.0" CRLF CRLF is the shortest. */
		CHECK(rq.head_len >= 16 && rq.head_len <= w);
		CHECK(!memcmp(p + rq.head_len - 4, "\r\n\r\n", 4));
		CHECK(end == p + rq.head_len - 4);
		for (i = 0; i < rq.head_len; i++) {
			unsigned char c = (unsigned char)p[i];

			if (c == '\r')
				CHECK(p[i + 1] == '\n');
			else if (c == '\n')
				CHECK(i && p[i - 1] == '\r');
			else
				CHECK(c == '\t' || (c >= 0x20 && c != 0x7f));
		}
		f = read_framing(p, rq.head_len);
		CHECK(f.valid && !f.te);
		CHECK(rq.body == (f.lengths ? f.value : 0));
		CHECK(rq.body <= HTTP_BODY_MAX);
		CHECK(rq2.head_len == rq.head_len && rq2.body == rq.body &&
		      rq2.close == rq.close && rq2.head_only == rq.head_only);
		break;
	}
	case 413:
	case 501: {
		struct framing f;

		CHECK(end);
		f = read_framing(p, (size_t)(end + 4 - p));
		if (status == 413)
			CHECK(f.valid && f.lengths && !f.te &&
			      f.value > HTTP_BODY_MAX);
		else
			CHECK(f.te && !f.lengths);
		break;
	}
	case 400:
		break;
	case 431:
		CHECK(w == HTTP_HEAD_MAX && !end);
		break;
	default:
		CHECK(!"a status http_parse() may give");
	}
	CHECK(rq.close || !is_error(status));
	/* Prefixes: undecided, or decided the same way. */
	for (i = 0; i < PREFIX_ALL + PREFIX_SAMPLE; i++) {
		struct http_req rp;
		int sp;

		if (i < PREFIX_ALL)
			m = i;
		else
			m = (size_t)(next_rand(rng) % (w + 1));
		if (m >= w)
			continue;
		sp = parse_copy(p, m, &rp);
		if (!is_error(status))
			CHECK(m < rq.head_len ? sp == HTTP_MORE : sp == status);
		else
			CHECK(sp == HTTP_MORE || sp == status);
		if (sp == status && !is_error(status))
			CHECK(rp.head_len == rq.head_len && rp.body == rq.body);
	}
	return status;
}

/* ---- the target ---- */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	http_init();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data, *mark = NULL, *p;
	struct transcript whole = { 0 }, cut = { 0 }, bytes = { 0 };
	struct cuts c = { 0 };
	uint64_t hash = 14695981039346656037u, skip = 0, rng;
	size_t n = size, used = 0, i;
	int heads = 0;

	/* The stream, and the cut list after the last marker. */
	for (p = s; p && p < s + size;) {
		p = memmem(p, (size_t)(s + size - p), STREAM_CUTS, 4);
		if (p)
			mark = p++;
	}
	if (mark) {
		n = (size_t)(mark - s);
		c.list = (const uint8_t *)mark + 4;
		c.left = (size - n - 4) / 2;
		if (c.left > CUTS_MAX)
			c.left = CUTS_MAX;
	}
	c.min = n / CUTS_MAX;
	for (i = 0; i < n; i++)
		hash = (hash ^ (uint8_t)s[i]) * 1099511628211u;
	c.rng = hash | 1;
	rng = hash ^ 0x9e3779b97f4a7c15u;

	serve_whole(s, n, &whole);
	check_answers(s, n, &whole);
	serve_cut(s, n, &c, &cut);
	same(&whole, &cut);
	if (n <= BYTEWISE_MAX) {
		/* A cut list of zeros: one byte per receive. */
		static const uint8_t zeros[2 * BYTEWISE_MAX];
		struct cuts one = { .list = zeros, .left = n };

		serve_cut(s, n, &one, &bytes);
		same(&whole, &bytes);
	}

	/* The heads, walked as the server walks them. */
	while (used < n && heads < HEADS_CHECKED) {
		struct http_req rq;
		int status;

		if (skip) {
			size_t k = skip < n - used ? (size_t)skip : n - used;

			used += k;
			skip -= k;
			continue;
		}
		status = check_head(s + used, n - used, &rng);
		heads++;
		if (status == HTTP_MORE || is_error(status))
			break;
		CHECK(http_parse(s + used, n - used, &rq) == status);
		used += rq.head_len;
		skip = rq.body;
	}
	free(whole.buf);
	free(cut.buf);
	free(bytes.buf);
	return 0;
}
