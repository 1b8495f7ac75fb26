/* SPDX-License-Identifier: MIT */
/*
 * net.c - socket helpers: TCP listen/connect by host name or number,
 * Unix-domain stream sockets, UDP, and name resolution off the loops.
 *
 * Design
 *   Numeric addresses are parsed on the spot (getaddrinfo with
 *   AI_NUMERICHOST never blocks). A name needs a resolver that may block
 *   for seconds, which must never happen on a loop: a task hands the
 *   lookup to a short-lived thread and awaits a promise; a plain thread
 *   just calls getaddrinfo. If the task stops waiting (cancelled), the
 *   lookup finishes on its thread and whoever of the two is last frees
 *   it (a reference count of two).
 *
 *   Every socket is made close-on-exec. Connecting goes through br_connect,
 *   so it suspends a task and honours its br_io_timeout.
 *
 * Concurrency: a lookup record is shared by the task and the resolver
 * thread through its atomic count and the promise; nothing else is
 * shared.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "braid.h"
#include "internal.h"

struct lookup {
	_Atomic int refs;
	char *host;
	char port[8];
	struct addrinfo hints;
	struct addrinfo *res;
	int err; /* getaddrinfo's EAI_* */
	br_future *done;
};

static void lookup_put(struct lookup *l)
{
	if (atomic_fetch_sub_explicit(&l->refs, 1, memory_order_acq_rel) != 1)
		return;
	if (l->res)
		freeaddrinfo(l->res);
	br_future_release(l->done);
	free(l->host);
	free(l);
}

static void *lookup_thread(void *arg)
{
	struct lookup *l = arg;

	l->err = getaddrinfo(l->host, l->port, &l->hints, &l->res);
	br_promise_resolve(l->done, NULL);
	lookup_put(l);
	return NULL;
}

static int eai_to_errno(int eai, int sys_errno)
{
	switch (eai) {
	case 0:
		return 0;
	case EAI_NONAME:
#ifdef EAI_NODATA
	case EAI_NODATA:
#endif
	case EAI_SERVICE:
		return -ENOENT;
	case EAI_AGAIN:
		return -EAGAIN;
	case EAI_MEMORY:
		return -ENOMEM;
	case EAI_FAMILY:
		return -EAFNOSUPPORT;
	case EAI_SYSTEM:
		return sys_errno ? -sys_errno : -EIO;
	default:
		return -EINVAL;
	}
}

/* Resolve host:port into *res (freeaddrinfo it). 0 or a negative errno. */
static int resolve(const char *host, uint16_t port, int socktype, int passive,
		   struct addrinfo **res)
{
	struct addrinfo hints = { 0 };
	char ps[8];
	struct lookup *l;
	pthread_attr_t attr;
	pthread_t th;
	int eai, err;

	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = socktype;
	hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
	snprintf(ps, sizeof(ps), "%u", (unsigned)port);
	hints.ai_flags |= AI_NUMERICHOST;
	eai = getaddrinfo(host, ps, &hints, res);
	if (eai != EAI_NONAME || !host)
		return eai_to_errno(eai, errno);
	hints.ai_flags &= ~AI_NUMERICHOST;
	hints.ai_flags |= AI_ADDRCONFIG;
	if (!br_current()) {
		eai = getaddrinfo(host, ps, &hints, res);
		return eai_to_errno(eai, errno);
	}
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->host = br__strdup(host);
	l->done = br_promise_new();
	if (!l->host || br_future_state(l->done) == BR_FAILED) {
		free(l->host);
		br_future_release(l->done);
		free(l);
		return -ENOMEM;
	}
	memcpy(l->port, ps, sizeof(ps));
	l->hints = hints;
	atomic_init(&l->refs, 2);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	err = pthread_create(&th, &attr, lookup_thread, l);
	pthread_attr_destroy(&attr);
	if (err) {
		atomic_store(&l->refs, 1);
		lookup_put(l);
		return -err;
	}
	err = br_await(l->done, NULL);
	if (err == 0) {
		err = eai_to_errno(l->err, 0);
		*res = l->res;
		l->res = NULL;
	}
	lookup_put(l);
	return err;
}

static int new_socket(int family, int type)
{
	int fd = socket(family, type | SOCK_CLOEXEC, 0);

	return fd < 0 ? -errno : fd;
}

int br_tcp_listen(const char *host, uint16_t port, int backlog)
{
	struct addrinfo *res = NULL, *ai;
	int fd = -EADDRNOTAVAIL, one = 1, err;

	err = resolve(host, port, SOCK_STREAM, 1, &res);
	if (err < 0)
		return err;
	if (backlog <= 0)
		backlog = SOMAXCONN;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = new_socket(ai->ai_family, SOCK_STREAM);
		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
		    listen(fd, backlog) == 0)
			break;
		err = -errno;
		close(fd);
		fd = err;
	}
	freeaddrinfo(res);
	return fd;
}

int br_tcp_connect(const char *host, uint16_t port)
{
	struct addrinfo *res = NULL, *ai;
	int fd = -EADDRNOTAVAIL, one = 1, err;

	if (!host)
		return -EINVAL;
	err = resolve(host, port, SOCK_STREAM, 0, &res);
	if (err < 0)
		return err;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = new_socket(ai->ai_family, SOCK_STREAM);
		if (fd < 0)
			continue;
		err = br_connect(fd, ai->ai_addr, ai->ai_addrlen);
		if (err == 0) {
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
				   sizeof(one));
			break;
		}
		close(fd);
		fd = err;
		if (err == -ECANCELED)
			break;
	}
	freeaddrinfo(res);
	return fd;
}

int br_udp_bind(const char *host, uint16_t port)
{
	struct addrinfo *res = NULL, *ai;
	int fd = -EADDRNOTAVAIL, err;

	err = resolve(host, port, SOCK_DGRAM, 1, &res);
	if (err < 0)
		return err;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = new_socket(ai->ai_family, SOCK_DGRAM);
		if (fd < 0)
			continue;
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		err = -errno;
		close(fd);
		fd = err;
	}
	freeaddrinfo(res);
	return fd;
}

/* Fill *sun for path; '@' names an abstract socket. Returns its length
 * or -EINVAL / -ENAMETOOLONG. */
static int unix_addr(const char *path, struct sockaddr_un *sun)
{
	size_t n;

	if (!path || !*path)
		return -EINVAL;
	n = strlen(path);
	if (n >= sizeof(sun->sun_path))
		return -ENAMETOOLONG;
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	memcpy(sun->sun_path, path, n);
	if (path[0] == '@')
		sun->sun_path[0] = '\0';
	return (int)(offsetof(struct sockaddr_un, sun_path) + n +
		     (path[0] == '@' ? 0 : 1));
}

int br_unix_listen(const char *path, int backlog)
{
	struct sockaddr_un sun;
	struct stat st;
	int len = unix_addr(path, &sun), fd, err;

	if (len < 0)
		return len;
	/* A socket file left by an earlier run would make bind fail. */
	if (path[0] != '@' && lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path);
	fd = new_socket(AF_UNIX, SOCK_STREAM);
	if (fd < 0)
		return fd;
	if (bind(fd, (struct sockaddr *)&sun, (socklen_t)len) < 0 ||
	    listen(fd, backlog <= 0 ? SOMAXCONN : backlog) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

int br_unix_connect(const char *path)
{
	struct sockaddr_un sun;
	int len = unix_addr(path, &sun), fd, err;

	if (len < 0)
		return len;
	fd = new_socket(AF_UNIX, SOCK_STREAM);
	if (fd < 0)
		return fd;
	err = br_connect(fd, (struct sockaddr *)&sun, (socklen_t)len);
	if (err < 0) {
		close(fd);
		return err;
	}
	return fd;
}

int br_local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return -errno;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return -EAFNOSUPPORT;
}
