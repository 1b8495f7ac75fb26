/* SPDX-License-Identifier: MIT */
/*
 * http_parse.h - the HTTP/1.1 side of http_server.c with no I/O in it:
 * request heads parsed, bodies framed and skipped, answers formatted.
 * The server feeds it what each receive brings; the fuzz target in
 * tests/fuzz/ feeds it arbitrary bytes cut at arbitrary places. Static
 * functions only, so that the server's copy inlines as one file would.
 *
 * Design
 *   http_parse() reads one request head in a single pass, left to right,
 *   and answers as soon as the bytes it has decide: a status, or
 *   HTTP_MORE when the head is not all in yet. It never looks past the
 *   first HTTP_HEAD_MAX bytes, and every check is made on bytes already
 *   seen in the order they come, so parsing a head in pieces gives
 *   HTTP_MORE and then the same answer as parsing it whole (the fuzz
 *   target checks this).
 *
 *   What it refuses, with the connection closed after the answer:
 *   - 400: a request line other than `token SP /target SP HTTP/1.0|1.1
 *     CRLF` (targets are visible ASCII, origin form only); a field line
 *     without a colon, with an empty or non-token name, with white space
 *     before the colon, or starting with white space (obs-fold, RFC 9112
 *     5.2); a control character, a bare CR or a bare LF anywhere in a
 *     line; a Content-Length that is empty, not all digits or above
 *     2^64 - 1; two Content-Length lines with different values (request
 *     smuggling: the last one must not win); Content-Length together
 *     with Transfer-Encoding; two Host lines; an HTTP/1.1 request
 *     without Host (RFC 9112 3.2).
 *   - 413: a Content-Length over HTTP_BODY_MAX.
 *   - 431: a head not complete within HTTP_HEAD_MAX bytes.
 *   - 501: Transfer-Encoding (any coding; this server reads no chunked
 *     bodies), so a body is never framed two ways.
 *   Several Content-Length lines with the same value are accepted as one
 *   (RFC 9110 8.6 allows that; Go's net/http does the same); a
 *   comma-separated list ("5, 5") is not all digits and is refused.
 *
 *   http_serve() walks the requests in a buffer: it answers each head,
 *   then discards its body (Content-Length bytes, however they are cut
 *   across receives). http_input() is the server's receive step: a head
 *   cut off at the end of a receive is kept in struct http_in until the
 *   rest arrives; everything else is parsed where the receive left it.
 *
 * Invariants
 *   - After http_input() returns HTTP_READ, in->have < HTTP_HEAD_MAX: a
 *     kept head plus one receive (at most HTTP_RECV_MAX) fits in in->buf.
 *   - http_parse() reads only p[0..min(n, HTTP_HEAD_MAX)); a head it
 *     accepts has 0 < head_len <= min(n, HTTP_HEAD_MAX).
 *   - An answer is at most HTTP_ANSWER_MAX bytes, and http_serve() stops
 *     (HTTP_FLUSH) before less than that is left in the output buffer.
 *
 * Concurrency: none; the tables are built once by http_init() before any
 * connection, then only read. Each connection has its own http_in and
 * http_out.
 */
#ifndef HTTP_PARSE_H
#define HTTP_PARSE_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define HTTP_HEAD_MAX 8192	    /* bytes a request head may take */
#define HTTP_RECV_MAX 4096	    /* bytes br_reader_recv() gives at most */
#define HTTP_BODY_MAX (1024 * 1024) /* Content-Length accepted at most */
#define HTTP_ANSWER_MAX 256	    /* bytes one answer takes at most */
#ifndef HTTP_OUT_MAX
#define HTTP_OUT_MAX 65536 /* answers gathered before they are sent */
#endif
/* Called by http_input() with the bytes of in->buf about to be parsed;
 * the fuzz target makes the rest of the buffer unreadable with it. */
#ifndef HTTP_INPUT_BOUNDS
#define HTTP_INPUT_BOUNDS(buf, n, cap) ((void)0)
#endif

#define HTTP_MORE (-1) /* http_parse(): the head is not all in yet */

/* http_input() and http_serve() verdicts. */
enum {
	HTTP_CLOSE = -1,
	HTTP_FLUSH = 0,
	HTTP_READ = 1
};

/* What http_parse() found in one head. */
struct http_req {
	size_t head_len; /* bytes of the head, its empty line included */
	uint64_t body;	 /* Content-Length: body bytes after the head */
	int close;	 /* close the connection after the answer */
	int head_only;	 /* HEAD: the answer has no body */
};

/* Answers gathered for one send. */
struct http_out {
	char buf[HTTP_OUT_MAX];
	size_t len;
};

/* A connection's input state across receives. */
struct http_in {
	char buf[HTTP_HEAD_MAX + HTTP_RECV_MAX]; /* a head cut off, then more */
	size_t have;				 /* bytes of buf in use */
	uint64_t skip; /* body bytes still to discard */
};

/* Character classes (RFC 9110 5.6.2 tchar, 5.5 field-vchar, and the
 * visible ASCII a request target may use), filled by http_init(). */
#define HTTP_CT 1 /* tchar: a token's character */
#define HTTP_CV 2 /* field-vchar, SP or HTAB: a field value's character */
#define HTTP_CU 4 /* VCHAR: a request target's character */
static unsigned char http_cc[256];

static int http_is(char c, unsigned cls)
{
	return http_cc[(unsigned char)c] & cls;
}

/* ---- answers ---- */

enum {
	HTTP_R_OK,
	HTTP_R_BAD_REQUEST,
	HTTP_R_NOT_FOUND,
	HTTP_R_NOT_ALLOWED,
	HTTP_R_TOO_LARGE,
	HTTP_R_FIELDS_TOO_LARGE,
	HTTP_R_NOT_IMPLEMENTED,
	HTTP_R_COUNT
};
static const int http_statuses[HTTP_R_COUNT] = { 200, 400, 404, 405,
						 413, 431, 501 };
static const char *const http_reasons[HTTP_R_COUNT] = {
	"OK",
	"Bad Request",
	"Not Found",
	"Method Not Allowed",
	"Content Too Large",
	"Request Header Fields Too Large",
	"Not Implemented",
};
static const char http_ok_body[] = "hello";

/* Whole answers, made once by http_init(): [kind][close][head only]. */
static char http_answers[HTTP_R_COUNT][2][2][HTTP_ANSWER_MAX];
static size_t http_answer_len[HTTP_R_COUNT][2][2];

static int http_kind(int status)
{
	int r;

	for (r = 0; r < HTTP_R_COUNT; r++)
		if (http_statuses[r] == status)
			return r;
	return HTTP_R_BAD_REQUEST;
}

/* Build the tables; call once before any other function here. */
static void http_init(void)
{
	static const char tchar[] = "!#$%&'*+-.^_`|~0123456789"
				    "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				    "abcdefghijklmnopqrstuvwxyz";
	const char *t;
	int r, c, h;

	http_cc['\t'] = http_cc[' '] = HTTP_CV;
	for (c = 0x21; c < 0x7f; c++)
		http_cc[c] = HTTP_CV | HTTP_CU;
	for (c = 0x80; c < 0x100; c++)
		http_cc[c] = HTTP_CV; /* obs-text, allowed in values */
	for (t = tchar; *t; t++)
		http_cc[(unsigned char)*t] |= HTTP_CT;

	for (r = 0; r < HTTP_R_COUNT; r++) {
		const char *body = r == HTTP_R_OK ? http_ok_body :
						    http_reasons[r];

		for (c = 0; c < 2; c++)
			for (h = 0; h < 2; h++)
				http_answer_len[r][c][h] = (size_t)snprintf(
					http_answers[r][c][h], HTTP_ANSWER_MAX,
					"HTTP/1.1 %d %s\r\n"
					"Content-Type: text/plain\r\n"
					"Content-Length: %zu\r\n%s%s\r\n%s",
					http_statuses[r], http_reasons[r],
					strlen(body),
					r == HTTP_R_NOT_ALLOWED ?
						"Allow: GET, HEAD\r\n" :
						"",
					c ? "Connection: close\r\n" : "",
					h ? "" : body);
	}
}

static void http_answer(struct http_out *o, int status, int head_only,
			int close)
{
	int r = status == 200 ? HTTP_R_OK : http_kind(status);
	size_t n = http_answer_len[r][!!close][!!head_only];

	/* Room is kept by http_serve(): it stops at HTTP_ANSWER_MAX left. */
	if (o->len + n <= sizeof(o->buf)) {
		memcpy(o->buf + o->len, http_answers[r][!!close][!!head_only],
		       n);
		o->len += n;
	}
}

/* ---- parsing ---- */

/* Connection: a comma-separated list of options; sets *close on "close"
 * and *keep on "keep-alive". */
static void http_connection(const char *v, size_t n, int *close, int *keep)
{
	const char *end = v + n;

	while (v < end) {
		const char *t = v;
		size_t len;

		while (v < end && *v != ',')
			v++;
		len = (size_t)(v - t);
		while (len && (*t == ' ' || *t == '\t'))
			t++, len--;
		while (len && (t[len - 1] == ' ' || t[len - 1] == '\t'))
			len--;
		if (len == 5 && !strncasecmp(t, "close", 5))
			*close = 1;
		else if (len == 10 && !strncasecmp(t, "keep-alive", 10))
			*keep = 1;
		v += v < end; /* the comma */
	}
}

/* Whether field name p[0..n) is lower (lower case letters and '-'),
 * ignoring case. The name is all tchar, and for those, c | 0x20 folds
 * only the upper case letters onto what lower holds. */
static int http_name_is(const char *p, size_t n, const char *lower, size_t len)
{
	size_t i;

	if (n != len)
		return 0;
	for (i = 0; i < n; i++)
		if ((p[i] | 0x20) != lower[i])
			return 0;
	return 1;
}

/* Content-Length's value: 1*DIGIT, at most 2^64 - 1. 0 or -1. */
static int http_length(const char *v, size_t n, uint64_t *out)
{
	uint64_t len = 0;
	size_t i;

	if (!n)
		return -1;
	for (i = 0; i < n; i++) {
		unsigned d = (unsigned char)v[i] - '0';

		if (d > 9 || len > (UINT64_MAX - d) / 10)
			return -1;
		len = len * 10 + d;
	}
	*out = len;
	return 0;
}

/*
 * http_parse - parse the request head at the front of p[0..n). Returns
 * the status to answer, or HTTP_MORE if the head is not all in yet (and
 * the bytes so far are not wrong). With 200, 404 or 405, *rq describes
 * the request; with an error status (400, 413, 431, 501) rq->close is
 * set, rq->head_only is not (an error answer has its body) and the rest
 * of *rq is meaningless.
 */
static int http_parse(const char *p, size_t n, struct http_req *rq)
{
	/* Past the end of the window: the head is not all in, and it is
	 * too long if the window is full. */
#define HTTP_END (n == HTTP_HEAD_MAX ? 431 : HTTP_MORE)
	const char *q = p, *e, *target;
	int keep = 0, close = 0, has_len = 0, te = 0, hosts = 0, status;
	uint64_t len = 0;
	size_t mlen, tlen;
	unsigned minor;
	int i;

	rq->close = 1;
	rq->head_only = 0;
	if (n > HTTP_HEAD_MAX)
		n = HTTP_HEAD_MAX;
	e = p + n;

	/* The request line: method SP target SP HTTP/1.x CRLF. */
	while (q < e && http_is(*q, HTTP_CT))
		q++;
	if (q == e)
		return HTTP_END;
	if (*q != ' ' || q == p)
		return 400;
	mlen = (size_t)(q++ - p);
	target = q;
	if (q == e)
		return HTTP_END;
	if (*q != '/') /* origin form only */
		return 400;
	while (q < e && http_is(*q, HTTP_CU))
		q++;
	if (q == e)
		return HTTP_END;
	if (*q != ' ')
		return 400;
	tlen = (size_t)(q++ - target);
	for (i = 0; i < 10; i++, q++) {
		if (q == e)
			return HTTP_END;
		if (i == 7 ? (*q != '0' && *q != '1') : *q != "HTTP/1.x\r\n"[i])
			return 400;
	}
	minor = (unsigned)(q[-3] - '0');

	/* Field lines, up to the empty line. */
	for (;;) {
		const char *name = q, *v;
		size_t nlen, vlen;

		if (q == e)
			return HTTP_END;
		if (*q == '\r') {
			if (++q == e)
				return HTTP_END;
			if (*q++ != '\n')
				return 400;
			break;
		}
		/* A line starting with SP or HTAB (obs-fold), white space
		 * before the colon or no colon at all stops the name at a
		 * character other than ':'. */
		while (q < e && http_is(*q, HTTP_CT))
			q++;
		if (q == e)
			return HTTP_END;
		if (*q != ':' || q == name)
			return 400;
		nlen = (size_t)(q++ - name);
		while (q < e && (*q == ' ' || *q == '\t'))
			q++;
		v = q;
		while (q < e && http_is(*q, HTTP_CV))
			q++;
		if (q == e)
			return HTTP_END;
		if (*q != '\r') /* a control character or a bare LF */
			return 400;
		vlen = (size_t)(q - v);
		while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
			vlen--;
		if (++q == e)
			return HTTP_END;
		if (*q++ != '\n')
			return 400;

		if (http_name_is(name, nlen, "host", 4)) {
			if (++hosts > 1)
				return 400;
		} else if (http_name_is(name, nlen, "connection", 10)) {
			http_connection(v, vlen, &close, &keep);
		} else if (http_name_is(name, nlen, "content-length", 14)) {
			uint64_t l;

			if (http_length(v, vlen, &l) < 0 ||
			    (has_len && l != len))
				return 400;
			len = l;
			has_len = 1;
		} else if (http_name_is(name, nlen, "transfer-encoding", 17)) {
			te = 1;
		}
	}
#undef HTTP_END

	/* The whole head is in: decide what needs all of it. */
	if (te)
		return has_len ? 400 : 501;
	if (minor == 1 && !hosts)
		return 400;
	if (len > HTTP_BODY_MAX)
		return 413;
	rq->head_len = (size_t)(q - p);
	rq->body = len;
	rq->close = close || (minor == 0 && !keep);
	rq->head_only = mlen == 4 && !memcmp(p, "HEAD", 4);
	if (!rq->head_only && !(mlen == 3 && !memcmp(p, "GET", 3)))
		status = 405;
	else
		status = tlen == 1 ? 200 : 404;
	return status;
}

/*
 * http_serve - answer the requests at the front of buf[0..n) into o,
 * discarding their bodies (*skip: body bytes still to come). Returns the
 * bytes taken, and in *verdict HTTP_READ (all taken but a head not all
 * in yet: read more), HTTP_FLUSH (o is nearly full: send it and call
 * again with the rest) or HTTP_CLOSE (send o and close).
 */
static size_t http_serve(const char *buf, size_t n, uint64_t *skip,
			 struct http_out *o, int *verdict)
{
	size_t used = 0;

	*verdict = HTTP_READ;
	while (used < n) {
		struct http_req rq;
		int status;

		if (*skip) { /* the rest of a request body */
			size_t k = *skip < n - used ? (size_t)*skip : n - used;

			used += k;
			*skip -= k;
			continue;
		}
		status = http_parse(buf + used, n - used, &rq);
		if (status == HTTP_MORE)
			break;
		http_answer(o, status, rq.head_only, rq.close);
		if (rq.close) {
			*verdict = HTTP_CLOSE;
			break;
		}
		used += rq.head_len;
		*skip = rq.body;
		if (o->len > sizeof(o->buf) - HTTP_ANSWER_MAX) {
			*verdict = HTTP_FLUSH;
			break;
		}
	}
	return used;
}

/*
 * http_input - one receive's k bytes at got (k <= HTTP_RECV_MAX; k = 0
 * after HTTP_FLUSH, to go on with what is kept): answer what is complete
 * into o and keep a head cut off at the end. Returns http_serve()'s
 * verdict.
 */
static int http_input(struct http_in *in, const char *got, size_t k,
		      struct http_out *o)
{
	const char *data = got;
	size_t n = k, used;
	int verdict;

	if (in->have) {
		if (k > sizeof(in->buf) - in->have)
			return HTTP_CLOSE; /* not reached: see Invariants */
		if (k)
			memcpy(in->buf + in->have, got, k);
		data = in->buf;
		n = in->have += k;
		HTTP_INPUT_BOUNDS(in->buf, n, sizeof(in->buf));
	}
	used = http_serve(data, n, &in->skip, o, &verdict);
	in->have = n - used;
	if (in->have && data + used != in->buf)
		memmove(in->buf, data + used, in->have);
	return verdict;
}

#endif /* HTTP_PARSE_H */
