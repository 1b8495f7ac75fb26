/* SPDX-License-Identifier: MIT */
/*
 * io_ops.c - the public I/O calls: each prepares one SQE for its
 * operation, or makes the plain syscall (see io.c for which, and for the
 * wait).
 *
 * Every call has the same shape:
 *
 *     m = br__io_start(&io, fd, readiness, timeout);
 *     if (m == BR__IO_RING)   prepare io.sqe, return br__io_wait(&io)
 *     if (m != BR__IO_SYS)    return m            (error before starting)
 *     return the syscall's result as -errno or the count
 *
 * Socket calls without a ring loop on -EAGAIN with MSG_DONTWAIT, so a
 * readiness that another task consumed first never blocks the loop.
 *
 * A receive right after the task's send on the same socket is the
 * request/response pattern: the answer cannot have arrived yet, so the
 * recv asks the kernel to wait for readiness before its first attempt
 * (IORING_RECVSEND_POLL_FIRST), which saves a failed receive per
 * exchange (docs/ARCHITECTURE.md measures what it is worth to a server).
 *
 * Concurrency: each call touches only its arguments and its own
 * br__io; any thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "braid.h"
#include "io.h"
#include "task.h"

#define NONE (-1) /* no timeout of the call's own: the task's */

/* The kernel rejected IORING_RECVSEND_POLL_FIRST once: never ask again.
 * A property of the kernel, so one flag for the process. */
static _Atomic int no_poll_first;

/* SQE lengths are 32-bit: clamp, the result is a short transfer. */
static size_t clamp_len(size_t len)
{
	return len > 0x7ffff000u ? 0x7ffff000u : len;
}

static int is_socket_op(int op)
{
	return op == IORING_OP_RECV || op == IORING_OP_SEND ||
	       op == IORING_OP_RECVMSG || op == IORING_OP_SENDMSG;
}

/* The plain syscall for op; off < 0 means the fd's own position. */
static long sys_transfer(int op, int fd, void *addr, size_t len, int64_t off,
			 int flags)
{
	switch (op) {
	case IORING_OP_READ:
		return off < 0 ? read(fd, addr, len) :
				 pread(fd, addr, len, off);
	case IORING_OP_WRITE:
		return off < 0 ? write(fd, addr, len) :
				 pwrite(fd, addr, len, off);
	case IORING_OP_READV:
		return readv(fd, addr, (int)len);
	case IORING_OP_WRITEV:
		return writev(fd, addr, (int)len);
	case IORING_OP_RECV:
		return recv(fd, addr, len, flags);
	case IORING_OP_SEND:
		return send(fd, addr, len, flags);
	case IORING_OP_RECVMSG:
		return recvmsg(fd, addr, flags);
	default:
		return sendmsg(fd, addr, flags);
	}
}

/*
 * transfer - one read, write, vector or socket transfer (op): through the
 * ring, or as the plain syscall (after waiting for readiness ev on a loop
 * without a ring; ev 0 for files at an offset). len is the iovec count
 * for vectors and 1 for messages; off is -1 for the fd's own position;
 * flags are MSG_* for socket ops.
 */
static ssize_t transfer(int op, int fd, void *addr, size_t len, int64_t off,
			int flags, short ev, int64_t tmo)
{
	int sock = is_socket_op(op), first;
	struct br__io io;
	ssize_t r;
	int m;

	if (op == IORING_OP_SEND || op == IORING_OP_SENDMSG)
		flags |= MSG_NOSIGNAL;
	for (;;) {
		m = br__io_start(&io, fd, ev, tmo);
		if (m == BR__IO_RING) {
			first = op == IORING_OP_RECV &&
				io.task->last_send_fd == fd &&
				!(flags & MSG_DONTWAIT) &&
				!atomic_load_explicit(&no_poll_first,
						      memory_order_relaxed);
			if (sock)
				io.task->last_send_fd =
					op == IORING_OP_SEND ||
							op == IORING_OP_SENDMSG ?
						fd :
						-1;
			io_uring_prep_rw(op, io.sqe, fd, addr, (unsigned)len,
					 (uint64_t)off);
			if (sock)
				io.sqe->msg_flags = (uint32_t)flags;
			if (first)
				io.sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
			r = br__io_wait(&io);
			if (r != -EINVAL || !first)
				return r;
			/* A kernel before 5.19: no such flag. */
			atomic_store_explicit(&no_poll_first, 1,
					      memory_order_relaxed);
			continue;
		}
		if (m != BR__IO_SYS)
			return m;
		r = BR__SYS(sys_transfer(op, fd, addr, len, off,
					 flags | (sock ? io.dontwait : 0)));
		if (r != -EAGAIN || !sock || !io.dontwait ||
		    (flags & MSG_DONTWAIT))
			return r;
	}
}

ssize_t br_read(int fd, void *buf, size_t len)
{
	return transfer(IORING_OP_READ, fd, buf, clamp_len(len), -1, 0, POLLIN,
			NONE);
}

ssize_t br_read_timeout(int fd, void *buf, size_t len, int64_t timeout_ms)
{
	return transfer(IORING_OP_READ, fd, buf, clamp_len(len), -1, 0, POLLIN,
			timeout_ms);
}

ssize_t br_write(int fd, const void *buf, size_t len)
{
	return transfer(IORING_OP_WRITE, fd, (void *)buf, clamp_len(len), -1, 0,
			POLLOUT, NONE);
}

ssize_t br_write_timeout(int fd, const void *buf, size_t len,
			 int64_t timeout_ms)
{
	return transfer(IORING_OP_WRITE, fd, (void *)buf, clamp_len(len), -1, 0,
			POLLOUT, timeout_ms);
}

ssize_t br_pread(int fd, void *buf, size_t len, off_t offset)
{
	if (offset < 0)
		return -EINVAL;
	return transfer(IORING_OP_READ, fd, buf, clamp_len(len), offset, 0, 0,
			NONE);
}

ssize_t br_pwrite(int fd, const void *buf, size_t len, off_t offset)
{
	if (offset < 0)
		return -EINVAL;
	return transfer(IORING_OP_WRITE, fd, (void *)buf, clamp_len(len),
			offset, 0, 0, NONE);
}

ssize_t br_readv(int fd, const struct iovec *iov, int iovcnt)
{
	if (iovcnt < 0 || (iovcnt > 0 && !iov))
		return -EINVAL;
	return transfer(IORING_OP_READV, fd, (void *)iov, (size_t)iovcnt, -1, 0,
			POLLIN, NONE);
}

ssize_t br_writev(int fd, const struct iovec *iov, int iovcnt)
{
	if (iovcnt < 0 || (iovcnt > 0 && !iov))
		return -EINVAL;
	return transfer(IORING_OP_WRITEV, fd, (void *)iov, (size_t)iovcnt, -1,
			0, POLLOUT, NONE);
}

ssize_t br_recv(int fd, void *buf, size_t len, int flags)
{
	return transfer(IORING_OP_RECV, fd, buf, clamp_len(len), 0, flags,
			POLLIN, NONE);
}

ssize_t br_recv_timeout(int fd, void *buf, size_t len, int flags,
			int64_t timeout_ms)
{
	return transfer(IORING_OP_RECV, fd, buf, clamp_len(len), 0, flags,
			POLLIN, timeout_ms);
}

ssize_t br_send(int fd, const void *buf, size_t len, int flags)
{
	return transfer(IORING_OP_SEND, fd, (void *)buf, clamp_len(len), 0,
			flags, POLLOUT, NONE);
}

ssize_t br_send_timeout(int fd, const void *buf, size_t len, int flags,
			int64_t timeout_ms)
{
	return transfer(IORING_OP_SEND, fd, (void *)buf, clamp_len(len), 0,
			flags, POLLOUT, timeout_ms);
}

ssize_t br_recvmsg(int fd, struct msghdr *msg, int flags)
{
	if (!msg)
		return -EFAULT;
	return transfer(IORING_OP_RECVMSG, fd, msg, 1, 0, flags, POLLIN, NONE);
}

ssize_t br_sendmsg(int fd, const struct msghdr *msg, int flags)
{
	if (!msg)
		return -EFAULT;
	return transfer(IORING_OP_SENDMSG, fd, (void *)msg, 1, 0, flags,
			POLLOUT, NONE);
}

ssize_t br_recvfrom(int fd, void *buf, size_t len, int flags,
		    struct sockaddr *addr, socklen_t *addrlen)
{
	struct iovec iov = { .iov_base = buf, .iov_len = clamp_len(len) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t r;

	if (addr && !addrlen)
		return -EFAULT;
	msg.msg_name = addr;
	msg.msg_namelen = addr ? *addrlen : 0;
	r = br_recvmsg(fd, &msg, flags);
	if (r >= 0 && addr)
		*addrlen = msg.msg_namelen;
	return r;
}

ssize_t br_sendto(int fd, const void *buf, size_t len, int flags,
		  const struct sockaddr *addr, socklen_t addrlen)
{
	struct iovec iov = { .iov_base = (void *)buf,
			     .iov_len = clamp_len(len) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };

	msg.msg_name = (void *)addr;
	msg.msg_namelen = addr ? addrlen : 0;
	return br_sendmsg(fd, &msg, flags);
}

static int do_accept(int fd, struct sockaddr *addr, socklen_t *addrlen,
		     int flags, int64_t tmo)
{
	struct br__io io;
	int m, r;

	if (addr && !addrlen)
		return -EFAULT;
	flags |= SOCK_CLOEXEC;
	for (;;) {
		m = br__io_start(&io, fd, POLLIN, tmo);
		if (m == BR__IO_RING) {
			io_uring_prep_accept(io.sqe, fd, addr, addrlen, flags);
			return br__io_wait(&io);
		}
		if (m != BR__IO_SYS)
			return m;
		if (!io.dontwait)
			return (int)BR__SYS(accept4(fd, addr, addrlen, flags));
		/* Another task may have taken the connection that made the
		 * listener readable: never block the loop on it. */
		r = (int)BR__SYS(
			accept4(fd, addr, addrlen, flags | SOCK_NONBLOCK));
		if (r >= 0 && !(flags & SOCK_NONBLOCK)) {
			int fl = fcntl(r, F_GETFL);

			if (fl >= 0)
				fcntl(r, F_SETFL, fl & ~O_NONBLOCK);
		}
		if (r != -EAGAIN)
			return r;
	}
}

int br_accept(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags)
{
	return do_accept(fd, addr, addrlen, flags, NONE);
}

int br_accept_timeout(int fd, struct sockaddr *addr, socklen_t *addrlen,
		      int flags, int64_t timeout_ms)
{
	return do_accept(fd, addr, addrlen, flags, timeout_ms);
}

static int do_connect(int fd, const struct sockaddr *addr, socklen_t len,
		      int64_t tmo)
{
	struct br__io io;
	int m;

	if (!addr)
		return -EFAULT;
	m = br__io_start(&io, fd, 0, tmo);
	if (m == BR__IO_RING) {
		io_uring_prep_connect(io.sqe, fd, addr, len);
		return br__io_wait(&io);
	}
	if (m != BR__IO_SYS)
		return m;
	if (io.dontwait) {
		/* Without a ring: start it non-blocking, then wait for
		 * writability and read the outcome. */
		int fl = fcntl(fd, F_GETFL), err = 0;
		socklen_t elen = sizeof(err);

		if (fl < 0)
			return -errno;
		if (!(fl & O_NONBLOCK))
			fcntl(fd, F_SETFL, fl | O_NONBLOCK);
		m = connect(fd, addr, len) < 0 ? -errno : 0;
		if (!(fl & O_NONBLOCK))
			fcntl(fd, F_SETFL, fl);
		if (m != -EINPROGRESS)
			return m;
		m = br_poll_timeout(fd, POLLOUT, tmo);
		if (m < 0)
			return m;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
			return -errno;
		return -err;
	}
	return (int)BR__SYS(connect(fd, addr, len));
}

int br_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	return do_connect(fd, addr, len, NONE);
}

int br_connect_timeout(int fd, const struct sockaddr *addr, socklen_t len,
		       int64_t timeout_ms)
{
	return do_connect(fd, addr, len, timeout_ms);
}

int br_close(int fd)
{
	struct br__io io;
	int m = br__io_start(&io, fd, 0, NONE), r;

	if (m == BR__IO_RING) {
		io_uring_prep_close(io.sqe, fd);
		r = br__io_wait(&io);
		/* Cancelled, or timed out, before it ran: still open. */
		if (r != -ECANCELED && r != -ETIMEDOUT)
			return r;
	} else if (m == BR_ENOTTASK) {
		return m;
	}
	/* No SQE, a cancelled task, or a ring's close that never ran: a
	 * descriptor must not outlive its close, and close(2) never waits
	 * for a peer. */
	return (int)BR__SYS(close(fd));
}

int br_shutdown(int fd, int how)
{
	struct br__io io;
	int m = br__io_start(&io, fd, 0, NONE);

	if (m == BR__IO_RING) {
		io_uring_prep_shutdown(io.sqe, fd, how);
		return br__io_wait(&io);
	}
	if (m != BR__IO_SYS)
		return m;
	return (int)BR__SYS(shutdown(fd, how));
}

int br_openat(int dirfd, const char *path, int flags, mode_t mode)
{
	struct br__io io;
	int m;

	if (!path)
		return -EFAULT;
	flags |= O_CLOEXEC;
	m = br__io_start(&io, -1, 0, NONE);
	if (m == BR__IO_RING) {
		io_uring_prep_openat(io.sqe, dirfd, path, flags, mode);
		return br__io_wait(&io);
	}
	if (m != BR__IO_SYS)
		return m;
	return (int)BR__SYS(openat(dirfd, path, flags, mode));
}

int br_fsync(int fd, int datasync)
{
	struct br__io io;
	int m = br__io_start(&io, fd, 0, NONE);

	if (m == BR__IO_RING) {
		io_uring_prep_fsync(io.sqe, fd,
				    datasync ? IORING_FSYNC_DATASYNC : 0);
		return br__io_wait(&io);
	}
	if (m != BR__IO_SYS)
		return m;
	return (int)BR__SYS(datasync ? fdatasync(fd) : fsync(fd));
}

int br_statx(int dirfd, const char *path, int flags, unsigned mask,
	     struct statx *out)
{
	struct br__io io;
	int m;

	if (!path || !out)
		return -EFAULT;
	m = br__io_start(&io, -1, 0, NONE);
	if (m == BR__IO_RING) {
		io_uring_prep_statx(io.sqe, dirfd, path, flags, mask, out);
		return br__io_wait(&io);
	}
	if (m != BR__IO_SYS)
		return m;
	return (int)BR__SYS(statx(dirfd, path, flags, mask, out));
}

ssize_t br_splice(int fd_in, int64_t off_in, int fd_out, int64_t off_out,
		  size_t len, unsigned flags)
{
	struct br__io io;
	loff_t oi = off_in, oo = off_out;
	int m;

	len = clamp_len(len);
	m = br__io_start(&io, fd_in, POLLIN, NONE);
	if (m == BR__IO_RING) {
		io_uring_prep_splice(io.sqe, fd_in, off_in, fd_out, off_out,
				     (unsigned)len, flags);
		return br__io_wait(&io);
	}
	if (m != BR__IO_SYS)
		return m;
	return BR__SYS(splice(fd_in, off_in < 0 ? NULL : &oi, fd_out,
			      off_out < 0 ? NULL : &oo, len, flags));
}

static int do_poll(int fd, short events, int64_t tmo)
{
	struct br__io io;
	struct pollfd p = { .fd = fd, .events = events };
	int m;

	if (fd < 0)
		return -EBADF;
	m = br__io_start(&io, fd, events, tmo);
	if (m == BR__IO_RING) {
		io_uring_prep_poll_add(io.sqe, fd, (unsigned)(uint16_t)events);
		return br__io_wait(&io);
	}
	if (m != BR__IO_SYS)
		return m;
	/* The task waited for readiness already; a plain thread blocks. */
	m = poll(&p, 1, io.dontwait ? 0 : -1);
	if (m < 0)
		return -errno;
	if (p.revents & POLLNVAL)
		return -EBADF;
	return p.revents;
}

int br_poll(int fd, short events)
{
	return do_poll(fd, events, NONE);
}

int br_poll_timeout(int fd, short events, int64_t timeout_ms)
{
	return do_poll(fd, events, timeout_ms);
}

/* Write or send (a send with flags when send is set) until all of buf
 * is out: br_write_all and br_send_all. */
static ssize_t put_all(int fd, const void *buf, size_t len, int send, int flags)
{
	size_t done = 0;

	while (done < len) {
		const char *at = (const char *)buf + done;
		ssize_t r = send ? br_send(fd, at, len - done, flags) :
				   br_write(fd, at, len - done);

		if (r < 0)
			return r;
		if (r == 0)
			return -EIO;
		done += (size_t)r;
	}
	return (ssize_t)len;
}

ssize_t br_write_all(int fd, const void *buf, size_t len)
{
	return put_all(fd, buf, len, 0, 0);
}

ssize_t br_send_all(int fd, const void *buf, size_t len, int flags)
{
	return put_all(fd, buf, len, 1, flags);
}
