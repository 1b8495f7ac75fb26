/* SPDX-License-Identifier: MIT */
/*
 * net.c - socket helpers: TCP listen/connect by host name or number,
 * Unix-domain stream sockets, UDP, and name resolution off the loops.
 *
 * Design
 *   Numeric addresses and ports are parsed on the spot (getaddrinfo
 *   with AI_NUMERICHOST | AI_NUMERICSERV never blocks). A host or
 *   service name needs a resolver that may block for seconds, which must
 *   never happen on a loop: a task runs the lookup on the runtime's
 *   blocking pool and awaits it (br__offload); a plain thread just calls
 *   getaddrinfo; a loop callback, which cannot wait, gets BR_ENOTTASK. If
 *   the task stops waiting (cancelled, or past its deadline scope), the
 *   lookup finishes on its pool thread and whoever of the two is last
 *   frees it.
 *
 *   Every socket is made close-on-exec. Connecting goes through br_connect,
 *   so it suspends a task and honours its br_io_timeout.
 *
 * Concurrency: a lookup record is shared by the task and the pool
 * thread (br__offload); nothing else is shared.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "blocking.h"
#include "braid.h"
#include "internal.h"

struct lookup {
	struct br__offload oc;
	char *host;
	char *service;
	struct addrinfo hints;
	struct addrinfo *res;
	int err; /* getaddrinfo's EAI_* */
};

static void lookup_run(struct br__offload *o)
{
	struct lookup *l = (struct lookup *)o;

	l->err = getaddrinfo(l->host, l->service, &l->hints, &l->res);
}

/* The record, and the list nobody took. */
static void lookup_drop(struct br__offload *o)
{
	struct lookup *l = (struct lookup *)o;

	if (l->res)
		freeaddrinfo(l->res);
	free(l->host);
	free(l->service);
	free(l);
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

/* Whether service needs no resolver: none, or a port number. */
static int numeric_service(const char *service)
{
	if (!service)
		return 1;
	if (!*service)
		return 0;
	for (; *service; service++)
		if (*service < '0' || *service > '9')
			return 0;
	return 1;
}

/* getaddrinfo off the loops: on the blocking pool from a task, at once
 * from a plain thread (or for what needs no resolver: numbers), and
 * BR_ENOTTASK from a loop callback. */
static int lookup(const char *host, const char *service,
		  const struct addrinfo *given, struct addrinfo **res)
{
	struct addrinfo hints = *given;
	struct lookup *l;
	int eai, err;

	/* Numbers need no resolver: a numeric host and a numeric service
	 * (a service name like "http" is looked up through NSS, which may
	 * read files or ask a server). AI_ADDRCONFIG is for names: with no
	 * address but loopback's configured, it would refuse 127.0.0.1. */
	hints.ai_flags = (hints.ai_flags | AI_NUMERICHOST | AI_NUMERICSERV) &
			 ~AI_ADDRCONFIG;
	eai = getaddrinfo(host, service, &hints, res);
	if (eai != EAI_NONAME ||
	    ((!host || (given->ai_flags & AI_NUMERICHOST)) &&
	     (numeric_service(service) || (given->ai_flags & AI_NUMERICSERV))))
		return eai_to_errno(eai, errno);
	hints.ai_flags = given->ai_flags;
	err = br__offload_where();
	if (err <= 0) {
		if (err < 0)
			return err;
		eai = getaddrinfo(host, service, &hints, res);
		return eai_to_errno(eai, errno);
	}
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->oc.run = lookup_run;
	l->oc.drop = lookup_drop;
	l->host = host ? br__strdup(host) : NULL;
	l->service = service ? br__strdup(service) : NULL;
	if ((host && !l->host) || (service && !l->service)) {
		lookup_drop(&l->oc);
		return -ENOMEM;
	}
	l->hints = hints;
	err = br__offload(&l->oc);
	if (err == 0) {
		err = eai_to_errno(l->err, 0);
		*res = l->res;
		l->res = NULL;
	}
	br__offload_put(&l->oc);
	return err;
}

/* Resolve host:port into *res (freeaddrinfo it). 0 or a negative errno. */
static int resolve(const char *host, uint16_t port, int socktype, int passive,
		   struct addrinfo **res)
{
	struct addrinfo hints = { 0 };
	char ps[8];

	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = socktype;
	hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG |
			 (passive ? AI_PASSIVE : 0);
	snprintf(ps, sizeof(ps), "%u", (unsigned)port);
	return lookup(host, ps, &hints, res);
}

int br_getaddrinfo(const char *host, const char *service,
		   const struct addrinfo *hints, struct addrinfo **res)
{
	struct addrinfo def = { .ai_family = AF_UNSPEC,
				.ai_flags = AI_ADDRCONFIG };

	if (!res || (!host && !service))
		return -EINVAL;
	*res = NULL;
	return lookup(host, service, hints ? hints : &def, res);
}

static int new_socket(int family, int type)
{
	int fd = socket(family, type | SOCK_CLOEXEC, 0);

	return fd < 0 ? -errno : fd;
}

/* A socket of type bound to host:port, listening with backlog if it is
 * > 0: the first address that works, else the last one's error. */
static int bound_socket(const char *host, uint16_t port, int type, int backlog)
{
	struct addrinfo *res = NULL, *ai;
	int fd = -EADDRNOTAVAIL, one = 1, err;

	err = resolve(host, port, type, 1, &res);
	if (err < 0)
		return err;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = new_socket(ai->ai_family, type);
		if (fd < 0)
			continue;
		if (backlog > 0)
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one,
				   sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
		    (backlog <= 0 || listen(fd, backlog) == 0))
			break;
		err = -errno;
		close(fd);
		fd = err;
	}
	freeaddrinfo(res);
	return fd;
}

int br_tcp_listen(const char *host, uint16_t port, int backlog)
{
	return bound_socket(host, port, SOCK_STREAM,
			    backlog > 0 ? backlog : SOMAXCONN);
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
	return bound_socket(host, port, SOCK_DGRAM, 0);
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
