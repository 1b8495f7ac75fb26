/* SPDX-License-Identifier: MIT */
/*
 * log.c - where braid's own messages go.
 *
 * Design
 *   Every message braid itself writes (the warning that io_uring is
 *   missing, stall reports, misuse such as br_runtime_free from a worker,
 *   a trace file that cannot be written, the BRAID_STATS table) goes
 *   through br__log(), which formats it once and gives it to the
 *   runtime's hook, or writes it to stderr with one write(2), so that
 *   lines of several threads never interleave. Two messages stay on
 *   stderr whatever the hook: the stack-overflow report, written from
 *   the SIGSEGV handler where a hook could not safely run, and a failed
 *   assertion, written as the process aborts.
 *
 *   A message is formatted into a buffer on the caller's stack; one that
 *   does not fit (the stats table of many workers) into a malloc'd one.
 *
 * Concurrency
 *   Any thread: nothing shared is written. The hook is the user's, and
 *   may be called from several threads at once (the stall detector's
 *   thread and a caller of br_runtime_free, say).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

#define PREFIX "braid: "
#define LINE_MAX_STACK 512

static void to_stderr(const char *msg, size_t len)
{
	char line[LINE_MAX_STACK + sizeof(PREFIX) + 1], *p = line;
	size_t n = sizeof(PREFIX) - 1 + len + 1;

	if (n > sizeof(line)) {
		p = malloc(n);
		if (!p) {
			/* Out of memory: the message still goes out, in
			 * three writes. */
			if (write(STDERR_FILENO, PREFIX, sizeof(PREFIX) - 1) <
				    0 ||
			    write(STDERR_FILENO, msg, len) < 0 ||
			    write(STDERR_FILENO, "\n", 1) < 0)
				(void)0; /* nowhere left to say so */
			return;
		}
	}
	memcpy(p, PREFIX, sizeof(PREFIX) - 1);
	memcpy(p + sizeof(PREFIX) - 1, msg, len);
	p[n - 1] = '\n';
	if (write(STDERR_FILENO, p, n) < 0)
		(void)0; /* nowhere left to say so */
	if (p != line)
		free(p);
}

void br__log(const struct br__log_sink *to, int level, const char *fmt, ...)
{
	char buf[LINE_MAX_STACK], *msg = buf;
	va_list ap;
	int len;

	va_start(ap, fmt);
	len = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (len < 0)
		return;
	if ((size_t)len >= sizeof(buf)) {
		msg = malloc((size_t)len + 1);
		if (msg) {
			va_start(ap, fmt);
			vsnprintf(msg, (size_t)len + 1, fmt, ap);
			va_end(ap);
		} else {
			msg = buf; /* cut, rather than lost */
			len = (int)sizeof(buf) - 1;
		}
	}
	while (len > 0 && msg[len - 1] == '\n')
		msg[--len] = '\0';
	if (to && to->fn)
		to->fn(level, msg, to->arg);
	else
		to_stderr(msg, (size_t)len);
	if (msg != buf)
		free(msg);
}
