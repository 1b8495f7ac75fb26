/* SPDX-License-Identifier: MIT */
/*
 * models_run.c - one measurement of bench/models: a workload's jobs run
 * under one model, timed, in a process of its own.
 *
 * Design
 *   Each measurement runs in a fresh process (the driver starts this
 *   program with --child) so that peak RSS is the model's own and the
 *   process pool finds the process single-threaded for its zygote. What
 *   is timed is the model from start to finish: its threads, runtime or
 *   worker processes created, every job run, everything torn down. CPU
 *   time is user + system of the process and of its reaped children, so
 *   the process pool's workers count (they are reaped by br_pool_free);
 *   peak RSS adds each worker's own peak (VmHWM) read just before the
 *   pool is freed.
 *
 *   A job is the same function under every model (run_job); only the
 *   I/O calls differ: the braid task models use br_* calls on the loops,
 *   the others the plain blocking calls (sockets, open/write, nanosleep).
 *
 *   The models:
 *     thread-per-job  a pthread per job, at most TPJ_ALIVE alive at once
 *                     (the oldest is joined before another starts).
 *     thread-pool     `workers` pthreads taking the jobs the main thread
 *                     submits one by one from a shared queue (a mutex and
 *                     a condition variable).
 *     tasks-1/-n      a root task spawns a task per job (in groups of
 *                     GROUP, each group a task, above GROUP jobs) on a
 *                     runtime of 1 or `workers` workers.
 *     process-pool    br_map over the job indices on a pool of `workers`
 *                     processes (chunks of 1 job for the coarse
 *                     workloads, the pool's own chunking for the fine).
 *                     Its runtime has one worker, which only collects.
 *     blocking-pool   br_spawn_blocking per job from the main thread; the
 *                     pool grows to its default 64 threads.
 *
 * Concurrency
 *   - ctx is written before any thread or worker process starts, then
 *     only read (pool workers get a copy through br_pool_config.init).
 *   - thread-pool: the queue q is under q.lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "braid.h"
#include "models.h"

#define TPJ_ALIVE 1024
#define TPJ_STACK (256u << 10)
#define GROUP 1000

struct ctx {
	int w; /* enum models_workload */
	long jobs;
	long k;	  /* round trips per job (MW_NET) */
	int port; /* the echo server (MW_NET) */
	char dir[256];
};

static struct ctx ctx;

static __attribute__((noreturn)) void die(const char *what, int err)
{
	fprintf(stderr, "models: %s: %s\n", what, br_strerror(err));
	_exit(2);
}

/* ---- the jobs ---- */

static uint32_t mix32(uint32_t x)
{
	x ^= x >> 16;
	x *= 0x7feb352du;
	x ^= x >> 15;
	x *= 0x846ca68bu;
	x ^= x >> 16;
	return x;
}

static uint64_t cpu_job(long i)
{
	uint32_t lo = CPU_BASE + (uint32_t)(i % 16) * CPU_WIDTH;
	uint32_t hi = lo + CPU_WIDTH;
	uint64_t count = 0;

	for (uint32_t x = lo | 1; x < hi; x += 2) {
		uint32_t d = 3;

		while (d * d <= x && x % d)
			d += 2;
		count += d * d > x;
	}
	return count;
}

static void sleep_plain(void)
{
	struct timespec ts = { 0, SLEEP_MS * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static int connect_plain(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		int err = -errno;

		close(fd);
		return err;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

/* Move exactly len bytes; plain or braid calls. */
static ssize_t xfer(int fd, char *buf, size_t len, int braid_io, int out)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n;

		if (braid_io)
			n = out ? br_send(fd, buf + done, len - done,
					  MSG_NOSIGNAL) :
				  br_recv(fd, buf + done, len - done, 0);
		else
			n = out ? send(fd, buf + done, len - done,
				       MSG_NOSIGNAL) :
				  recv(fd, buf + done, len - done, 0);
		if (!braid_io && n < 0)
			n = -errno;
		if (n == -EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? n : -EPIPE;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

static uint64_t net_job(long i, int braid_io)
{
	char buf[NET_MSG];
	int fd = braid_io ? br_tcp_connect("127.0.0.1", (uint16_t)ctx.port) :
			    connect_plain(ctx.port);
	ssize_t n;

	if (fd < 0)
		die("connect to the echo server", fd);
	for (long r = 0; r < ctx.k; r++) {
		memset(buf, (int)((i + r) & 0xff), sizeof(buf));
		n = xfer(fd, buf, sizeof(buf), braid_io, 1);
		if (n >= 0)
			n = xfer(fd, buf, sizeof(buf), braid_io, 0);
		if (n < 0)
			die("echo round trip", (int)n);
		if (buf[NET_MSG - 1] != (char)((i + r) & 0xff))
			die("echo round trip", -EBADMSG);
	}
	if (braid_io)
		br_close(fd);
	else
		close(fd);
	return (uint64_t)ctx.k;
}

static uint64_t mixed_job(long i, int braid_io)
{
	char rec[MIXED_MAX], path[sizeof(ctx.dir) + 32], *p;
	uint32_t x = mix32((uint32_t)i) | 1;
	uint64_t sum = 0, h = 0xcbf29ce484222325u;
	size_t len = 0;
	ssize_t n;
	int fd;

	for (int j = 0; j < MIXED_NUMS; j++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		len += (size_t)snprintf(rec + len, sizeof(rec) - len, "%u,", x);
	}
	for (p = rec; p < rec + len; p++) /* parse it back */
		sum += strtoul(p, &p, 10);
	for (int r = 0; r < MIXED_ROUNDS; r++)
		for (size_t j = 0; j < len; j++) {
			h ^= (unsigned char)rec[j];
			h *= 0x100000001b3u;
		}
	h ^= sum;
	len += (size_t)snprintf(rec + len, sizeof(rec) - len, "\n%016llx\n",
				(unsigned long long)h);
	snprintf(path, sizeof(path), "%s/item-%ld", ctx.dir, i);
	if (braid_io) {
		fd = br_openat(AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC,
			       0644);
		if (fd < 0)
			die("open", fd);
		n = br_write_all(fd, rec, len);
		br_close(fd);
	} else {
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0)
			die("open", -errno);
		n = write(fd, rec, len); /* a regular file: all or an error */
		if (n < 0)
			n = -errno;
		close(fd);
	}
	if (n != (ssize_t)len)
		die("write", n < 0 ? (int)n : -EIO);
	return h;
}

static uint64_t run_job(long i, int braid_io)
{
	switch (ctx.w) {
	case MW_CPU:
		return cpu_job(i);
	case MW_SLEEP:
		if (braid_io)
			br_sleep_ms(SLEEP_MS);
		else
			sleep_plain();
		return 1;
	case MW_NET:
		return net_job(i, braid_io);
	case MW_MIXED:
		return mixed_job(i, braid_io);
	default:
		return mix32((uint32_t)i) & 0xffff;
	}
}

/* ---- pthreads ---- */

struct tpj {
	pthread_t t;
	long i;
	uint64_t v;
};

static void *tpj_main(void *arg)
{
	struct tpj *j = arg;

	j->v = run_job(j->i, 0);
	return NULL;
}

static uint64_t run_thread_per_job(void)
{
	struct tpj *slot = calloc(TPJ_ALIVE, sizeof(*slot));
	pthread_attr_t attr;
	uint64_t sum = 0;
	int err;

	if (!slot)
		die("calloc", -ENOMEM);
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, TPJ_STACK);
	for (long i = 0; i < ctx.jobs + TPJ_ALIVE; i++) {
		struct tpj *j = &slot[i % TPJ_ALIVE];

		if (i >= TPJ_ALIVE && i - TPJ_ALIVE < ctx.jobs) {
			pthread_join(j->t, NULL);
			sum += j->v;
		}
		if (i >= ctx.jobs)
			continue;
		j->i = i;
		err = pthread_create(&j->t, &attr, tpj_main, j);
		if (err)
			die("pthread_create", -err);
	}
	pthread_attr_destroy(&attr);
	free(slot);
	return sum;
}

/*
 * The thread pool: the main thread submits the jobs one by one into a
 * queue (a mutex and a condition variable, as a typical C thread pool or
 * Python's ThreadPoolExecutor has), and `workers` threads take them. The
 * queue holds job indices, so it is a counter of submitted jobs (tail)
 * and of taken ones (head).
 */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t more;
	long head, tail; /* taken, submitted; under lock */
	int idle;	 /* workers waiting on more; under lock */
	int closed;	 /* no more jobs; under lock */
	uint64_t total;	 /* the workers' sums; under lock */
} q = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, 0 };

static void *pool_thread(void *arg)
{
	uint64_t sum = 0;

	pthread_mutex_lock(&q.lock);
	for (;;) {
		long i;

		while (q.head == q.tail && !q.closed) {
			q.idle++;
			pthread_cond_wait(&q.more, &q.lock);
			q.idle--;
		}
		if (q.head == q.tail)
			break;
		i = q.head++;
		pthread_mutex_unlock(&q.lock);
		sum += run_job(i, 0);
		pthread_mutex_lock(&q.lock);
	}
	q.total += sum;
	pthread_mutex_unlock(&q.lock);
	return NULL;
}

static uint64_t run_thread_pool(unsigned workers)
{
	pthread_t *t = calloc(workers, sizeof(*t));
	int err;

	if (!t)
		die("calloc", -ENOMEM);
	for (unsigned i = 0; i < workers; i++) {
		err = pthread_create(&t[i], NULL, pool_thread, NULL);
		if (err)
			die("pthread_create", -err);
	}
	for (long i = 0; i < ctx.jobs; i++) {
		pthread_mutex_lock(&q.lock);
		q.tail++;
		if (q.idle)
			pthread_cond_signal(&q.more);
		pthread_mutex_unlock(&q.lock);
	}
	pthread_mutex_lock(&q.lock);
	q.closed = 1;
	pthread_cond_broadcast(&q.more);
	pthread_mutex_unlock(&q.lock);
	for (unsigned i = 0; i < workers; i++)
		pthread_join(t[i], NULL);
	free(t);
	return q.total;
}

/* ---- braid tasks ---- */

static void *task_job(void *arg)
{
	return (void *)(uintptr_t)run_job((long)(intptr_t)arg, 1);
}

/* Spawn fn(first + j) for j < count, await them all, return the sum. */
static uint64_t spawn_sum(br_task_fn fn, long first, long count, long step)
{
	br_runtime *rt = br_current_runtime();
	br_future **fs = malloc((size_t)count * sizeof(*fs));
	uint64_t sum = 0;
	void *v;
	int err;

	if (!fs)
		die("malloc", -ENOMEM);
	for (long j = 0; j < count; j++)
		fs[j] = br_spawn(rt, fn, (void *)(intptr_t)(first + j * step));
	for (long j = 0; j < count; j++) {
		err = br_await(fs[j], &v);
		if (err < 0)
			die("await a task", err);
		sum += (uintptr_t)v;
		br_future_release(fs[j]);
	}
	free(fs);
	return sum;
}

static void *task_group(void *arg)
{
	long first = (long)(intptr_t)arg;
	long count = ctx.jobs - first < GROUP ? ctx.jobs - first : GROUP;

	return (void *)(uintptr_t)spawn_sum(task_job, first, count, 1);
}

static void *task_root(void *arg)
{
	if (ctx.jobs <= GROUP)
		return (void *)(uintptr_t)spawn_sum(task_job, 0, ctx.jobs, 1);
	return (void *)(uintptr_t)spawn_sum(
		task_group, 0, (ctx.jobs + GROUP - 1) / GROUP, GROUP);
}

static uint64_t run_tasks(unsigned workers)
{
	br_config cfg = { .workers = workers,
			  .flags = BR_CONFIG_NO_ZYGOTE | BR_CONFIG_QUIET };
	br_runtime *rt;
	br_future *f;
	void *v;
	int err;

	err = br_runtime_new(&rt, &cfg);
	if (err < 0)
		die("br_runtime_new", err);
	f = br_spawn(rt, task_root, NULL);
	err = br_await(f, &v);
	if (err < 0)
		die("the root task", err);
	br_future_release(f);
	br_runtime_free(rt);
	return (uintptr_t)v;
}

/* ---- the process pool ---- */

static int pool_init(const void *arg, size_t len)
{
	if (len != sizeof(ctx))
		return -EINVAL;
	memcpy(&ctx, arg, sizeof(ctx));
	return 0;
}

static int pool_job(br_job *job, const void *in, size_t len)
{
	uint32_t i;
	uint64_t v;

	if (len != sizeof(i))
		return br_job_fail(job, -EINVAL, "an item is 4 bytes");
	memcpy(&i, in, sizeof(i));
	v = run_job(i, 0);
	return br_job_write(job, &v, sizeof(v));
}

/* A process's peak RSS from /proc/<pid>/status, in KiB; 0 if unknown. */
static long vm_hwm_kb(pid_t pid)
{
	char path[64], line[256];
	long kb = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

static uint64_t run_process_pool(unsigned workers, long *extra_rss)
{
	br_config cfg = { .workers = 1, .flags = BR_CONFIG_QUIET };
	br_pool_config pc = { .workers = workers,
			      .init = pool_init,
			      .init_arg = &ctx,
			      .init_len = sizeof(ctx) };
	/* Coarse jobs go one at a time so that the workers share them out
	 * evenly; fine ones in the pool's own chunks. */
	size_t chunk = ctx.w == MW_MIXED || ctx.w == MW_TINY ? 0 : 1;
	uint32_t *idx = malloc((size_t)ctx.jobs * sizeof(*idx));
	pid_t pids[256];
	uint64_t sum = 0;
	br_runtime *rt;
	br_pool *pool;
	br_future *f;
	int err, np;

	if (!idx)
		die("malloc", -ENOMEM);
	for (long i = 0; i < ctx.jobs; i++)
		idx[i] = (uint32_t)i;
	err = br_runtime_new(&rt, &cfg);
	if (err < 0)
		die("br_runtime_new", err);
	err = br_pool_new(&pool, rt, &pc);
	if (err < 0)
		die("br_pool_new", err);
	f = br_map(pool, pool_job, idx, sizeof(*idx), (size_t)ctx.jobs, chunk);
	err = br_await(f, NULL);
	if (err < 0) {
		fprintf(stderr, "models: %s\n", br_future_message(f));
		die("br_map", err);
	}
	for (long i = 0; i < ctx.jobs; i++) {
		size_t len;
		const void *out = br_map_result(f, (size_t)i, &len);
		uint64_t v;

		if (!out || len != sizeof(v))
			die("br_map_result", -EBADMSG);
		memcpy(&v, out, sizeof(v));
		sum += v;
	}
	br_future_release(f);
	np = br_pool_pids(pool, pids, sizeof(pids) / sizeof(pids[0]));
	for (int i = 0; i < np && i < 256; i++)
		if (pids[i] > 0)
			*extra_rss += vm_hwm_kb(pids[i]);
	br_pool_free(pool);
	br_runtime_free(rt);
	free(idx);
	return sum;
}

/* ---- the blocking pool ---- */

static void *blocking_job(void *arg)
{
	return (void *)(uintptr_t)run_job((long)(intptr_t)arg, 0);
}

static uint64_t run_blocking_pool(void)
{
	br_config cfg = { .workers = 1,
			  .flags = BR_CONFIG_NO_ZYGOTE | BR_CONFIG_QUIET,
			  .blocking_queue =
				  ctx.jobs > 65536 ? (unsigned)ctx.jobs : 0 };
	br_future **fs = malloc((size_t)ctx.jobs * sizeof(*fs));
	uint64_t sum = 0;
	br_runtime *rt;
	void *v;
	int err;

	if (!fs)
		die("malloc", -ENOMEM);
	err = br_runtime_new(&rt, &cfg);
	if (err < 0)
		die("br_runtime_new", err);
	for (long i = 0; i < ctx.jobs; i++)
		fs[i] = br_spawn_blocking(rt, blocking_job,
					  (void *)(intptr_t)i);
	for (long i = 0; i < ctx.jobs; i++) {
		err = br_await(fs[i], &v);
		if (err < 0)
			die("await a blocking call", err);
		sum += (uintptr_t)v;
		br_future_release(fs[i]);
	}
	br_runtime_free(rt);
	free(fs);
	return sum;
}

/* ---- one measurement ---- */

static double tv_s(struct timeval tv)
{
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static double cpu_now(void)
{
	struct rusage self, kids;

	getrusage(RUSAGE_SELF, &self);
	getrusage(RUSAGE_CHILDREN, &kids);
	return tv_s(self.ru_utime) + tv_s(self.ru_stime) + tv_s(kids.ru_utime) +
	       tv_s(kids.ru_stime);
}

/* Remove the files mixed_job wrote, then the directory. */
static void remove_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[sizeof(ctx.dir) + 300];

	if (d) {
		while ((e = readdir(d)))
			if (e->d_name[0] != '.') {
				snprintf(path, sizeof(path), "%s/%s", dir,
					 e->d_name);
				unlink(path);
			}
		closedir(d);
	}
	rmdir(dir);
}

int models_run(enum models_workload w, enum models_model m, long jobs, long k,
	       unsigned workers, int port, struct models_result *r)
{
	struct rusage ru;
	long extra_rss = 0;
	double c0;
	int64_t t0;

	if ((unsigned)w >= MW_COUNT || (unsigned)m >= MM_COUNT ||
	    models_models[m].python || jobs <= 0 || workers == 0 ||
	    workers > 256 || (w == MW_NET && (k <= 0 || port <= 0))) {
		fprintf(stderr, "models: bad measurement arguments\n");
		return -1;
	}
	ctx.w = (int)w;
	ctx.jobs = jobs;
	ctx.k = k;
	ctx.port = port;
	if (w == MW_MIXED) {
		const char *tmp = getenv("TMPDIR");

		snprintf(ctx.dir, sizeof(ctx.dir), "%s/braid-models-XXXXXX",
			 tmp && *tmp ? tmp : "/tmp");
		if (!mkdtemp(ctx.dir)) {
			perror("models: mkdtemp");
			return -1;
		}
	}
	t0 = br_now_ns();
	c0 = cpu_now();
	switch (m) {
	case MM_THREAD_PER_JOB:
		r->check = run_thread_per_job();
		break;
	case MM_THREAD_POOL:
		r->check = run_thread_pool(workers);
		break;
	case MM_TASKS_1:
		r->check = run_tasks(1);
		break;
	case MM_TASKS_N:
		r->check = run_tasks(workers);
		break;
	case MM_PROCESS_POOL:
		r->check = run_process_pool(workers, &extra_rss);
		break;
	default:
		r->check = run_blocking_pool();
		break;
	}
	r->wall_s = (double)(br_now_ns() - t0) / 1e9;
	r->cpu_s = cpu_now() - c0;
	getrusage(RUSAGE_SELF, &ru);
	r->rss_kb = ru.ru_maxrss + extra_rss;
	r->items = w == MW_NET ? jobs * k : jobs;
	if (w == MW_MIXED)
		remove_dir(ctx.dir);
	return 0;
}
