/* SPDX-License-Identifier: MIT */
/*
 * http_server.c - a minimal HTTP/1.1 server: "hello" on /, 404 elsewhere.
 *
 *   http_server [--port N] [--workers N] [--host H]
 *
 * One task per connection, keep-alive, pipelining: every complete request
 * in what one receive brought is answered, and the answers are written
 * together. GET and HEAD are served; a malformed request (a bad request line,
 * a header without a colon, a request head over 8 KiB, a body we cannot
 * frame) gets 400 and the connection is closed. Request bodies with a
 * Content-Length are read and discarded; chunked bodies get 400 here.
 */
#include <ctype.h>
#include <strings.h>

#include "serve.h"

#define HEAD_MAX 8192

static const char ok_body[] = "hello";

struct out {
	char buf[65536];
	size_t len;
};

static void put(struct out *o, const char *s, size_t n)
{
	if (o->len + n <= sizeof(o->buf)) {
		memcpy(o->buf + o->len, s, n);
		o->len += n;
	}
}

/* Response heads, made once: status x (keep-alive, close). */
enum {
	RESP_OK,
	RESP_NOT_FOUND,
	RESP_NOT_ALLOWED,
	RESP_BAD,
	RESP_COUNT
};
static const int statuses[RESP_COUNT] = { 200, 404, 405, 400 };
static const char *const reasons[RESP_COUNT] = { "OK", "Not Found",
						 "Method Not Allowed",
						 "Bad Request" };
static char heads[RESP_COUNT][2][160];
static size_t head_len[RESP_COUNT][2];

static const char *body_of(int r)
{
	return r == RESP_OK ? ok_body : reasons[r];
}

static void make_heads(void)
{
	int r, c;

	for (r = 0; r < RESP_COUNT; r++)
		for (c = 0; c < 2; c++)
			head_len[r][c] = (size_t)snprintf(
				heads[r][c], sizeof(heads[r][c]),
				"HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\n"
				"Content-Length: %zu\r\n%s\r\n",
				statuses[r], reasons[r], strlen(body_of(r)),
				c ? "Connection: close\r\n" : "");
}

static void respond(struct out *o, int status, int head_only, int close)
{
	int r = status == 200 ? RESP_OK :
		status == 404 ? RESP_NOT_FOUND :
		status == 405 ? RESP_NOT_ALLOWED :
				RESP_BAD;

	put(o, heads[r][!!close], head_len[r][!!close]);
	if (!head_only)
		put(o, body_of(r), strlen(body_of(r)));
}

static int is_token(const char *s, size_t n)
{
	size_t i;

	if (!n)
		return 0;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) &&
		    !strchr("!#$%&'*+-.^_`|~", s[i]))
			return 0;
	return 1;
}

/*
 * Parse the request head at the front of p[0..n), in one pass. Returns
 * the status to answer (0 for a bad request, as soon as the bad line is
 * in), or -1 if the head has not all arrived. With a status, *used is the
 * head's length and *close, *head_only and *body (Content-Length to skip)
 * are filled.
 */
static int parse(const char *p, size_t n, size_t *used, int *close,
		 int *head_only, size_t *body)
{
	const char *end = p + n, *sp1, *sp2, *eol, *line;
	int minor, status;

	eol = memchr(p, '\r', n);
	if (!eol || eol + 1 >= end)
		return -1;
	if (eol[1] != '\n')
		return 0;
	sp1 = memchr(p, ' ', (size_t)(eol - p));
	if (!sp1)
		return 0;
	sp2 = memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1));
	if (!sp2 || !is_token(p, (size_t)(sp1 - p)) || sp2 == sp1 + 1 ||
	    sp1[1] != '/' || eol - sp2 != 9 || memcmp(sp2 + 1, "HTTP/1.", 7) ||
	    (sp2[8] != '0' && sp2[8] != '1'))
		return 0;
	minor = sp2[8] - '0';
	*close = minor == 0;
	*head_only = sp1 - p == 4 && !memcmp(p, "HEAD", 4);
	*body = 0;
	if ((sp1 - p == 3 && !memcmp(p, "GET", 3)) || *head_only)
		status = sp2 - sp1 == 2 ? 200 : 404;
	else
		status = 405;
	for (line = eol + 2;; line = eol + 2) {
		const char *colon, *v;
		size_t vlen;

		if (line + 1 >= end)
			return -1;
		if (line[0] == '\r') { /* the empty line: the end */
			if (line[1] != '\n')
				return 0;
			*used = (size_t)(line + 2 - p);
			return status;
		}
		eol = memchr(line, '\r', (size_t)(end - line));
		if (!eol || eol + 1 >= end)
			return -1;
		if (eol[1] != '\n')
			return 0;
		colon = memchr(line, ':', (size_t)(eol - line));
		if (!colon || !is_token(line, (size_t)(colon - line)))
			return 0;
		for (v = colon + 1; v < eol && (*v == ' ' || *v == '\t'); v++)
			;
		vlen = (size_t)(eol - v);
		while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
			vlen--;
		if (colon - line == 10 &&
		    !strncasecmp(line, "connection", 10)) {
			if (vlen == 5 && !strncasecmp(v, "close", 5))
				*close = 1;
			else if (vlen == 10 &&
				 !strncasecmp(v, "keep-alive", 10))
				*close = 0;
		} else if (colon - line == 14 &&
			   !strncasecmp(line, "content-length", 14)) {
			size_t i, len = 0;

			if (!vlen || vlen > 12)
				return 0;
			for (i = 0; i < vlen; i++) {
				if (!isdigit((unsigned char)v[i]))
					return 0;
				len = len * 10 + (size_t)(v[i] - '0');
			}
			*body = len;
		} else if (colon - line == 17 &&
			   !strncasecmp(line, "transfer-encoding", 17)) {
			return 0;
		}
	}
}

/*
 * Answer the complete requests at the front of buf[0..n) into o. Returns
 * how many bytes they took; *verdict is 1 to read more, 0 to send and
 * come back (o is full), -1 to send and close.
 */
static size_t serve(const char *buf, size_t n, size_t *skip, struct out *o,
		    int *verdict)
{
	size_t used = 0;

	*verdict = 1;
	while (used < n) {
		int status, close, head_only;
		size_t head, body;

		if (*skip) { /* the rest of a request body */
			size_t k = *skip < n - used ? *skip : n - used;

			used += k;
			*skip -= k;
			continue;
		}
		status = parse(buf + used, n - used, &head, &close, &head_only,
			       &body);
		if (status < 0) {
			if (n - used >= HEAD_MAX) {
				respond(o, 400, 0, 1);
				*verdict = -1;
			}
			break;
		}
		if (!status) {
			respond(o, 400, 0, 1);
			*verdict = -1;
			break;
		}
		used += head;
		respond(o, status, head_only, close);
		*skip = body;
		if (close) {
			*verdict = -1;
			break;
		}
		if (o->len > sizeof(o->buf) - 512) {
			*verdict = 0; /* answer these first */
			break;
		}
	}
	return used;
}

struct conn {
	char in[HEAD_MAX * 2]; /* a request head not all received yet */
	struct out out;
};

/*
 * One connection. Bytes come from a br_reader (multishot receive into the
 * worker's provided buffers): the requests in them are answered in place,
 * and only a head cut off at a buffer's end is copied, to c->in, until
 * the rest arrives. Answers go out through a br_writer, which copies them
 * and sends them while the task waits for the next request.
 */
static void *http_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	struct conn *c = malloc(sizeof(*c));
	br_reader *r = NULL;
	br_writer *wr = NULL;
	size_t have = 0, skip = 0;
	int verdict = 1;

	/* r and wr stay NULL if they fail */
	if (c && br_writer_new(&wr, fd) == 0)
		(void)br_reader_new(&r, fd);
	while (r) {
		const char *data = c->in;
		size_t n = have, used;

		if (verdict > 0) {
			const void *got;
			ssize_t k = br_reader_recv(r, &got);

			if (k <= 0)
				break;
			if (have) {
				if ((size_t)k > sizeof(c->in) - have)
					break; /* not reached: have < HEAD_MAX */
				memcpy(c->in + have, got, (size_t)k);
				n = have += (size_t)k;
			} else {
				data = got;
				n = (size_t)k;
			}
		}
		c->out.len = 0;
		used = serve(data, n, &skip, &c->out, &verdict);
		have = n - used;
		if (have)
			memmove(c->in, data + used, have);
		if (c->out.len &&
		    br_writer_write(wr, c->out.buf, c->out.len) < 0)
			break;
		if (verdict < 0)
			break;
	}
	br_reader_free(r);
	(void)br_writer_drain(wr); /* a 400 goes out before the close */
	br_writer_free(wr);
	free(c);
	br_close(fd);
	return NULL;
}

int main(int argc, char **argv)
{
	struct serve s = { .name = "http_server", .conn = http_conn };

	make_heads();
	return serve_main(argc, argv, &s);
}
