/* SPDX-License-Identifier: MIT */
/*
 * echo_epoll.c - the echo peer on plain epoll: one thread, non-blocking
 * sockets, level-triggered.
 *
 * Design
 *   The shape a careful C programmer writes without a library. Each
 *   readiness event for a connection costs one read() into a shared
 *   buffer and one write() of what was read, which on loopback almost
 *   always completes at once; only when it does not is the rest copied
 *   aside and EPOLLOUT watched instead of EPOLLIN until it is flushed.
 *   Level-triggered rather than edge-triggered: with one message in flight
 *   per connection, edge-triggered would need a read until EAGAIN, one
 *   extra system call per message, to be correct. Accepts are drained
 *   until EAGAIN, since a burst of connections arrives together.
 *
 *   Options, ready line and signals: see echo_peer.h.
 *
 * Invariants
 *   - conns[fd].left > 0 exactly when fd is watched for EPOLLOUT and not
 *     EPOLLIN; the bytes still to write are conns[fd].data[off, off+left).
 *
 * Concurrency
 *   - One thread; no shared state.
 */
#include <sys/epoll.h>

#include "echo_peer.h"

#define MAX_EVENTS 1024

/* The part of an echo that write() could not take yet. */
struct conn {
	char *data;
	size_t off, left;
};

static struct conn *conns;
static size_t nconns;
static char buf[65536];

static void watch(int ep, int op, int fd, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.fd = fd };

	if (epoll_ctl(ep, op, fd, &ev) < 0)
		peer_die("epoll_ctl: %s", strerror(errno));
}

static void drop(int fd)
{
	free(conns[fd].data);
	conns[fd] = (struct conn){ 0 };
	close(fd); /* Closing also removes fd from the epoll set. */
}

static void accept_all(int ep, int lfd)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EAGAIN || errno == EINTR ||
			    errno == ECONNABORTED)
				return;
			if (errno == EMFILE || errno == ENFILE) {
				fprintf(stderr, "accept: %s\n",
					strerror(errno));
				return;
			}
			peer_die("accept: %s", strerror(errno));
		}
		if ((size_t)fd >= nconns) {
			/* Above the descriptor limit we were started with. */
			close(fd);
			continue;
		}
		peer_nodelay(fd);
		watch(ep, EPOLL_CTL_ADD, fd, EPOLLIN);
	}
}

/* Write what is left of fd's echo; back to reading once it is all gone. */
static void flush(int ep, int fd)
{
	struct conn *c = &conns[fd];
	ssize_t n = write(fd, c->data + c->off, c->left);

	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR)
			drop(fd);
		return;
	}
	c->off += (size_t)n;
	c->left -= (size_t)n;
	if (!c->left) {
		free(c->data);
		c->data = NULL;
		watch(ep, EPOLL_CTL_MOD, fd, EPOLLIN);
	}
}

static void echo(int ep, int fd)
{
	ssize_t n = read(fd, buf, sizeof(buf)), w;

	if (n <= 0) {
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			drop(fd);
		return;
	}
	w = write(fd, buf, (size_t)n);
	if (w < 0) {
		if (errno != EAGAIN && errno != EINTR) {
			drop(fd);
			return;
		}
		w = 0;
	}
	if (w == n)
		return;
	conns[fd].left = (size_t)(n - w);
	conns[fd].off = 0;
	conns[fd].data = malloc(conns[fd].left);
	if (!conns[fd].data)
		peer_die("out of memory");
	memcpy(conns[fd].data, buf + w, conns[fd].left);
	watch(ep, EPOLL_CTL_MOD, fd, EPOLLOUT);
}

int main(int argc, char **argv)
{
	static struct epoll_event evs[MAX_EVENTS];
	struct peer_opts o;
	struct rlimit rl;
	int ep, lfd, sfd, i, n;

	peer_parse(&o, argc, argv);
	peer_raise_nofile();
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		peer_die("getrlimit: %s", strerror(errno));
	nconns = rl.rlim_cur;
	conns = calloc(nconns, sizeof(*conns));
	if (!conns)
		peer_die("out of memory");
	sfd = peer_signalfd(o.max_seconds);
	lfd = peer_listen(o.port);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		peer_die("epoll_create1: %s", strerror(errno));
	watch(ep, EPOLL_CTL_ADD, lfd, EPOLLIN);
	watch(ep, EPOLL_CTL_ADD, sfd, EPOLLIN);
	peer_ready(lfd);

	for (;;) {
		n = epoll_wait(ep, evs, MAX_EVENTS, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			peer_die("epoll_wait: %s", strerror(errno));
		}
		for (i = 0; i < n; i++) {
			int fd = evs[i].data.fd;

			if (fd == lfd) {
				accept_all(ep, lfd);
			} else if (fd == sfd) {
				struct signalfd_siginfo si;

				if (read(sfd, &si, sizeof(si)) == sizeof(si)) {
					peer_stopping(&si);
					goto out;
				}
			} else if (conns[fd].left) {
				flush(ep, fd);
			} else {
				echo(ep, fd);
			}
		}
	}
out:
	close(lfd);
	close(ep);
	return 0;
}
