/* SPDX-License-Identifier: MIT */
/*
 * signal.c - signals read by tasks: br_signal_new/next/free (a signalfd
 * read through the worker's ring), and asyncio's add_signal_handler as a
 * callback on the loop (br_signal_handler).
 *
 * Design
 *   A signal sent to the process goes to a thread that does not block
 *   it; a signalfd sees only signals blocked in every thread. braid's own
 *   threads block every asynchronous signal from birth (runtime.c), so
 *   what remains is the program's: br_signal_new blocks the set in the
 *   calling thread, and the program calls it from its main thread before
 *   it starts threads of its own (or blocks the set in them). The
 *   signalfd is non-blocking: a task reads it with br_read, which
 *   suspends through the ring (or the readiness loop without one), so a
 *   task waiting for SIGTERM costs nothing until it comes. A plain
 *   thread's br_read is the plain call: on EAGAIN it blocks in br_poll
 *   (which honours its deadline scope) and reads again.
 *
 *   br_signal_handler is a task that loops on br_signal_next and calls
 *   the function each time, on the loop, as asyncio calls a handler from
 *   its event loop: the handler runs as ordinary task code, not in a
 *   signal handler, and may do anything a task may. Cancelling the
 *   returned future removes it; the object is freed when the task's
 *   future completes, whether it ran or was cancelled before it started.
 *
 * Concurrency
 *   A br_signal is read by one caller at a time (a second gets -EBUSY);
 *   its fields are written once, at creation.
 *
 * Lifetime
 *   br_signal_free closes the signalfd. Signals stay blocked in the
 *   thread that made the object: unblocking them would let them kill the
 *   process by default at once.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "braid.h"
#include "future.h"
#include "internal.h"

#define BR__MAGIC_SIGNAL 0x62725347u /* "brSG" */

struct br_signal {
	uint32_t magic;
	int fd;
	_Atomic int busy; /* a br_signal_next() call is in progress */
};

int br_signal_new(br_signal **out, const sigset_t *set)
{
	struct br_signal *s;
	int err;

	if (!out || !set)
		return -EINVAL;
	for (int sig = 1; sig < NSIG; sig++)
		if (sigismember(set, sig) == 1 &&
		    (sig == SIGKILL || sig == SIGSTOP || sig == SIGSEGV ||
		     sig == SIGBUS || sig == SIGFPE || sig == SIGILL))
			return -EINVAL; /* cannot be caught, or a fault */
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	err = -pthread_sigmask(SIG_BLOCK, set, NULL);
	if (err == 0) {
		s->fd = signalfd(-1, set, SFD_NONBLOCK | SFD_CLOEXEC);
		if (s->fd < 0)
			err = -errno;
	}
	if (err < 0) {
		free(s);
		return err;
	}
	s->magic = BR__MAGIC_SIGNAL;
	*out = s;
	return 0;
}

int br_signal_next(br_signal *s)
{
	struct signalfd_siginfo si;
	ssize_t n;

	if (!s)
		return -EINVAL;
	if (s->magic != BR__MAGIC_SIGNAL)
		return BR_EBADOBJ;
	/* Acquire/release: one call's reads after the last one's. */
	if (atomic_exchange_explicit(&s->busy, 1, memory_order_acquire))
		return -EBUSY;
	do {
		n = br_read(s->fd, &si, sizeof(si));
		/* A plain thread reads with the plain call, and the signalfd
		 * is non-blocking: it waits for the fd, then reads again. */
		if (n == -EAGAIN) {
			int r = br_poll(s->fd, POLLIN);

			n = r < 0 ? r : -EINTR;
		}
	} while (n == -EINTR);
	atomic_store_explicit(&s->busy, 0, memory_order_release);
	if (n < 0)
		return (int)n;
	return n == sizeof(si) ? (int)si.ssi_signo : -EIO;
}

void br_signal_free(br_signal *s)
{
	if (!s || s->magic != BR__MAGIC_SIGNAL)
		return;
	s->magic = BR__MAGIC_DEAD;
	close(s->fd);
	free(s);
}

/* ---- handlers on the loop ---- */

struct handler {
	br_signal *s;
	br_signal_fn fn;
	void *arg;
};

static void *handler_task(void *arg)
{
	struct handler *h = arg;
	int sig;

	while ((sig = br_signal_next(h->s)) > 0)
		h->fn(sig, h->arg);
	return NULL;
}

/* The task ended, or was cancelled before it ever ran: either way its
 * future completes, and only then is h let go. */
static void handler_ended(br_future *f, void *arg)
{
	struct handler *h = arg;

	br_signal_free(h->s);
	free(h);
}

br_future *br_signal_handler(br_runtime *rt, int signo, br_signal_fn fn,
			     void *arg)
{
	struct handler *h;
	sigset_t set;
	br_future *f;
	int err;

	if (!fn || signo <= 0 || signo >= NSIG)
		return br__future_failed(-EINVAL,
					 "br_signal_handler: bad arguments");
	h = calloc(1, sizeof(*h));
	if (!h)
		return br__future_failed(-ENOMEM, NULL);
	sigemptyset(&set);
	sigaddset(&set, signo);
	err = br_signal_new(&h->s, &set);
	if (err < 0) {
		free(h);
		return br__future_failed(err, "br_signal_handler: the signal "
					      "cannot be read");
	}
	h->fn = fn;
	h->arg = arg;
	f = br_spawn(rt, handler_task, h);
	if (br_future_on_done(f, handler_ended, h) < 0) {
		/* No memory to watch it: stop it, and keep h (a leak, never
		 * a use after free). */
		br_cancel(f);
	}
	return f;
}
