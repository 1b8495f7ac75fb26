/* SPDX-License-Identifier: MIT */
/*
 * test_faults.c - regression tests for what the fault sweep found: each
 * test fails one of braid's fault points (runtime/internal.h) with
 * libfiu and checks that the failure ends as an error, never as a hang,
 * a crash or a leak. The points exist only in a faults build (make
 * FAULTS=1, run by make test-faults-short); elsewhere the tests skip.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "census.h"
#include "helpers.h"

/* Every test leaves no descriptor, thread or child behind (helpers.h).
 * The tests of faults_posix run a copy of this program under libfiu's
 * POSIX wrappers, which do not run under ASan: make test-faults runs
 * them in the debug variant. */
TestSuite(faults, .init = t_leak_init, .fini = t_leak_fini);
TestSuite(faults_posix, .init = t_leak_init, .fini = t_leak_fini);

#if defined(__SANITIZE_ADDRESS__)
#define NEED_POSIX_WRAPPERS()                                               \
	cr_skip_test("libfiu's POSIX wrappers do not run under ASan (make " \
		     "test-faults runs this in the debug variant)")
#else
#define NEED_POSIX_WRAPPERS() ((void)0)
#endif

#ifdef BR_FAULTS
#define FIU_ENABLE 1 /* else fiu.h makes fiu_init() a constant */
#include <fiu-control.h>
#include <fiu.h>

/* Make fault point name fail every time it is reached, or only the
 * next time (once). */
static void fail_point(const char *name, int once)
{
	cr_assert_eq(fiu_init(0), 0);
	cr_assert_eq(fiu_enable(name, 1, NULL, once ? FIU_ONETIME : 0), 0);
}
static void clear_point(const char *name)
{
	cr_assert_eq(fiu_disable(name), 0);
}
/* Make the delay point name hold the next thread that reaches it up for
 * ms milliseconds (its failinfo); that hold-up sets delay_reached. */
static atomic_int delay_reached;
static int note_delay(const char *name, int *failnum, void **failinfo,
		      unsigned int *flags)
{
	(void)name;
	(void)failnum;
	(void)failinfo;
	(void)flags;
	atomic_store(&delay_reached, 1);
	return 1;
}
static void delay_point_once(const char *name, unsigned ms)
{
	atomic_store(&delay_reached, 0);
	cr_assert_eq(fiu_init(0), 0);
	cr_assert_eq(fiu_enable_external(name, 1, (void *)(uintptr_t)ms,
					 FIU_ONETIME, note_delay),
		     0);
}
/* Done with the delay point: libfiu 1.1 keeps a one-time point that has
 * fired, and would leak its name if it were enabled again; libfiu before
 * 1.0 drops it when it fires, so whether there is one to disable is not
 * checked. */
static void clear_delay_point(const char *name)
{
	(void)fiu_disable(name);
}
#define NEED_FAULTS() ((void)0)
#else
static void clear_point(const char *name)
{
	(void)name;
}
static void fail_point(const char *name, int once)
{
	(void)name;
	(void)once;
}
static atomic_int delay_reached;
static void delay_point_once(const char *name, unsigned ms)
{
	(void)name;
	(void)ms;
}
static void clear_delay_point(const char *name)
{
	(void)name;
}
#define NEED_FAULTS() cr_skip_test("needs a faults build (make FAULTS=1)")
#endif

struct silent_read {
	int fd;
	atomic_int started;
};

static void *read_silent(void *arg)
{
	struct silent_read *sr = arg;
	char c;

	atomic_store(&sr->started, 1);
	return (void *)(intptr_t)br_read(sr->fd, &c, 1);
}

/* A cancel whose ASYNC_CANCEL found no SQE was taken as sent: the read
 * of a silent pipe went on in the kernel, and its task (and
 * br_runtime_free after it) waited for good. The cancel is now asked
 * again until an SQE carries it. */
Test(faults, cancel_without_an_sqe_is_asked_again, .timeout = 30)
{
	struct silent_read sr = { 0 };
	br_runtime *rt;
	br_future *f;
	int p[2], r;

	NEED_FAULTS();
	if (!t_uring_available())
		cr_skip_test("no io_uring: no SQEs to run out of");
	rt = t_runtime(1, 0);
	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	sr.fd = p[0];
	f = br_spawn(rt, read_silent, &sr);
	cr_assert_eq(t_wait_until(&sr.started, 1, 10000 * T_NS_PER_MS), 0);
	br_sleep_ms(50); /* the read is in the kernel */
	/* Every SQE fails while the cancel is first asked for. */
	fail_point("braid/ring/sqe", 0);
	cr_assert_eq(br_cancel(f), 0);
	br_sleep_ms(100);
	clear_point("braid/ring/sqe");
	r = br_wait_for(f, 10000, NULL);
	cr_assert_neq(r, -ETIMEDOUT, "the cancelled read never ended");
	cr_assert_eq(r, -ECANCELED, "%s", br_strerror(r));
	cr_assert_eq(br_future_state(f), BR_CANCELLED);
	br_future_release(f);
	close(p[0]);
	close(p[1]);
	br_runtime_free(rt);
}

static void *blocking_echo(void *arg)
{
	return arg;
}

/* With no memory for a blocking-pool thread's record and no thread yet,
 * a blocking call stayed queued for good: nothing would ever run it, and
 * its awaiter (and br_runtime_free) waited. It now fails with -ENOMEM. */
Test(faults, blocking_call_without_memory_for_a_thread_fails, .timeout = 30)
{
	br_runtime *rt;
	br_future *f;
	int r;

	NEED_FAULTS();
	rt = t_runtime(1, 0);
	fail_point("braid/blocking/alloc", 0);
	f = br_spawn_blocking(rt, blocking_echo, (void *)(intptr_t)7);
	r = br_wait_for(f, 10000, NULL);
	cr_assert_neq(r, -ETIMEDOUT, "the blocking call never ended");
	cr_assert_eq(r, -ENOMEM, "%s", br_strerror(r));
	cr_assert_eq(br_future_state(f), BR_FAILED);
	br_future_release(f);
	clear_point("braid/blocking/alloc");
	/* Memory is back: the next call runs. */
	f = br_spawn_blocking(rt, blocking_echo, (void *)(intptr_t)7);
	cr_assert_eq((intptr_t)t_await_value(f), 7);
	br_future_release(f);
	br_runtime_free(rt);
}

/* Set in the environment of a copy of this program that checks a
 * zygote's start by itself (zygote_hello_child). */
#define ZYGOTE_CHILD_ENV "T_FAULTS_ZYGOTE_HELLO"

/*
 * In a fresh process of one thread: start a zygote whose hello fails.
 * Exits 0 if the start failed with -EPIPE and left no child, 1 if it
 * returned anything else, 2 if a child was left.
 */
static __attribute__((noreturn)) void zygote_hello_child(void)
{
#ifdef BR_FAULTS
	int r;

	fiu_init(0);
	fiu_enable("braid/zygote/hello", 1, NULL, FIU_ONETIME);
	r = br_zygote_start();
	if (r != -EPIPE)
		_exit(1);
	_exit(t_count_children() == 0 ? 0 : 2);
#else
	_exit(3);
#endif
}

/* Set to a fault point in the environment of a copy of this program
 * that runs a pool with the zygote's answer lost (answer_lost_child). */
#define ANSWER_CHILD_ENV "T_FAULTS_ZYGOTE_ANSWER"

static int echo_job(br_job *job, const void *in, size_t len);
static int crash_job(br_job *job, const void *in, size_t len);

/* Naps 500 ms, then echoes. */
static int nap_echo_job(br_job *job, const void *in, size_t len)
{
	usleep(500 * 1000);
	return br_job_write(job, in, len);
}

/*
 * In a fresh process of one thread, with point failing once: a runtime
 * forks its zygote, a pool of one worker runs a job, and both are freed.
 * Exits 0 if the job ran and no child was left, 1 if the pool or the
 * job failed, 2 if a child was left.
 */
static __attribute__((noreturn)) void answer_lost_child(const char *point)
{
#ifdef BR_FAULTS
	br_config cfg = { .workers = 1 };
	br_pool_config pc = { .workers = 1 };
	br_runtime *rt = NULL;
	br_pool *pool = NULL;
	br_future *f;
	int ok;

	fiu_init(0);
	if (fiu_enable(point, 1, NULL, FIU_ONETIME) != 0)
		_exit(1);
	if (br_runtime_new(&rt, &cfg) < 0 || br_pool_new(&pool, rt, &pc) < 0)
		_exit(1);
	f = br_submit(pool, echo_job, "ok", 3);
	ok = br_await(f, NULL) == 0 && br_future_bytes(f, NULL) &&
	     strcmp(br_future_bytes(f, NULL), "ok") == 0;
	br_future_release(f);
	br_pool_free(pool);
	br_runtime_free(rt);
	if (!ok)
		_exit(1);
	_exit(t_count_children() == 0 ? 0 : 2);
#else
	(void)point;
	_exit(3);
#endif
}

/* Set in the environment of a copy of this program whose promoted
 * zygote cannot say hello (promoted_hello_child). */
#define PROMOTED_CHILD_ENV "T_FAULTS_PROMOTED_HELLO"

#ifdef BR_FAULTS
/* Where promoted_hello_child notes its first zygote's pid. */
static char first_zygote_path[64];

/* libfiu's say on braid/zygote/hello: fail in any zygote but the first
 * (its pid is in first_zygote_path once it has said hello). */
static int fail_if_promoted(const char *name, int *failnum, void **failinfo,
			    unsigned *flags)
{
	char buf[32] = "";
	int fd = open(first_zygote_path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	(void)name;
	(void)failnum;
	(void)failinfo;
	(void)flags;
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n > 0 && atoi(buf) != (int)getpid();
}
#endif

/*
 * In a fresh process of one thread: a runtime forks the zygote, which is
 * then killed; the pool's first fork promotes the spare, whose hello
 * fails after it made a spare of its own. Exits 0 if no child is left
 * once the runtime is freed, 2 if one is.
 */
static __attribute__((noreturn)) void promoted_hello_child(void)
{
#ifdef BR_FAULTS
	br_config cfg = { .workers = 1 };
	br_pool_config pc = { .workers = 1 };
	br_runtime *rt = NULL;
	br_pool *pool = NULL;
	char buf[32];
	siginfo_t si;
	pid_t z;
	int fd, n;

	snprintf(first_zygote_path, sizeof(first_zygote_path),
		 "/tmp/braid-zygote-%d", (int)getpid());
	fiu_init(0);
	fiu_enable_external("braid/zygote/hello", 1, NULL, 0, fail_if_promoted);
	if (br_runtime_new(&rt, &cfg) < 0)
		_exit(1);
	z = census_child_named("braid-zygote");
	fd = open(first_zygote_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
		  0600);
	n = snprintf(buf, sizeof(buf), "%d", (int)z);
	if (z <= 0 || fd < 0 || write(fd, buf, (size_t)n) != n)
		_exit(1);
	close(fd);
	/* Dead (a zombie the program reaps), so the request finds it
	 * gone. */
	kill(z, SIGKILL);
	waitid(P_PID, (id_t)z, &si, WEXITED | WNOWAIT);
	if (br_pool_new(&pool, rt, &pc) == 0)
		br_pool_free(pool);
	br_runtime_free(rt);
	unlink(first_zygote_path);
	_exit(t_count_children() == 0 ? 0 : 2);
#else
	_exit(3);
#endif
}

/* Set in the environment of a copy of this program run under libfiu's
 * POSIX wrappers, whose pool's poll(2) calls fail (poll_fails_child):
 * "collector" or "watcher", the pool's task they fail. */
#define POLL_CHILD_ENV "T_FAULTS_POLL"
#define POSIX_PRELOAD "/usr/lib/fiu/fiu_posix_preload.so"

/*
 * In a copy of this program under libfiu's POSIX wrappers: a pool of one
 * worker on a runtime of one worker without io_uring, whose loop asks
 * poll(2) what is ready. For "collector", every poll(2) fails while a
 * job's result comes in; for "watcher", the first look of the watcher
 * of a worker just replaced fails while it runs a job. Then a job runs.
 * Exits 0 if the results came, 1 if the last did not, 2 if the watcher
 * killed its live worker.
 */
static __attribute__((noreturn)) void poll_fails_child(const char *which)
{
#ifdef BR_FAULTS
	br_config cfg = { .workers = 1, .flags = BR_CONFIG_NO_URING };
	br_pool_config pc = { .workers = 1 };
	br_runtime *rt = NULL;
	br_pool *pool = NULL;
	br_future *f;
	int r;

	fiu_init(0);
	if (br_runtime_new(&rt, &cfg) < 0 || br_pool_new(&pool, rt, &pc) < 0)
		_exit(1);
	f = br_submit(pool, echo_job, "a", 2);
	if (br_wait_for(f, 10000, NULL) != 0)
		_exit(1);
	br_future_release(f);
	if (strcmp(which, "collector") == 0) {
		/* The collector wakes for this result, then waits again: its
		 * poll(2) fails, with any of the errors libfiu picks. */
		fiu_enable("posix/io/net/poll", 1, NULL, 0);
		f = br_submit(pool, echo_job, "b", 2);
		br_wait_for(f, 1000, NULL);
		br_future_release(f);
		usleep(100 * 1000);
		fiu_disable("posix/io/net/poll");
	} else {
		/* The replacement takes a job that naps 500 ms, and is
		 * registered 300 ms late: by then the collector waits again,
		 * and the next poll(2) is the new watcher's first look,
		 * while its worker lives. */
		br_future *nap;

		fiu_enable("braid/pool/register_late", 1, NULL, 0);
		f = br_submit(pool, crash_job, NULL, 0);
		r = br_wait_for(f, 10000, NULL);
		br_future_release(f);
		if (r != BR_EWORKERDIED)
			_exit(1);
		nap = br_submit(pool, nap_echo_job, "n", 2);
		usleep(100 * 1000);
		fiu_enable("posix/io/net/poll", 1, NULL, FIU_ONETIME);
		r = br_wait_for(nap, 10000, NULL);
		br_future_release(nap);
		fiu_disable("braid/pool/register_late");
		if (r != 0)
			_exit(2); /* its worker was killed */
	}
	f = br_submit(pool, echo_job, "c", 2);
	r = br_wait_for(f, 10000, NULL);
	br_future_release(f);
	br_pool_free(pool);
	br_runtime_free(rt);
	_exit(r == 0 ? 0 : 1);
#else
	(void)which;
	_exit(3);
#endif
}

/* Criterion's test processes have threads by the time a test runs: the
 * zygote for the pool tests must start before them. */
__attribute__((constructor)) static void start_zygote(void)
{
	if (getenv(ZYGOTE_CHILD_ENV))
		zygote_hello_child();
	if (getenv(ANSWER_CHILD_ENV))
		answer_lost_child(getenv(ANSWER_CHILD_ENV));
	if (getenv(PROMOTED_CHILD_ENV))
		promoted_hello_child();
	if (getenv(POLL_CHILD_ENV))
		poll_fails_child(getenv(POLL_CHILD_ENV));
	br_zygote_start();
}

/* Run a fresh copy of this program with name=value in its environment,
 * and preload (if not NULL) in LD_PRELOAD; its exit status (killed after
 * 20 s: a hang). What it and its children wrote on stderr goes to out
 * (cap bytes, NUL-terminated), if given. */
static int run_copy(const char *name, const char *value, const char *preload,
		    char *out, size_t cap)
{
	int errfd = memfd_create("copy-stderr", MFD_CLOEXEC);
	int64_t start;
	ssize_t n;
	pid_t pid;
	int st = 0;

	cr_assert_geq(errfd, 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		setenv(name, value, 1);
		if (preload)
			setenv("LD_PRELOAD", preload, 1);
		dup2(errfd, STDERR_FILENO);
		execl("/proc/self/exe", "test_faults", (char *)NULL);
		_exit(4);
	}
	start = br_now_ns();
	while (waitpid(pid, &st, WNOHANG) == 0) {
		if (br_now_ns() - start > 20000 * T_NS_PER_MS) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			cr_assert_fail("the copy hung");
		}
		usleep(10000);
	}
	if (out) {
		n = pread(errfd, out, cap - 1, 0);
		out[n > 0 ? n : 0] = '\0';
	}
	close(errfd);
	cr_assert(WIFEXITED(st), "status %d", st);
	return WEXITSTATUS(st);
}

static int echo_job(br_job *job, const void *in, size_t len)
{
	return br_job_write(job, in, len);
}

/* A worker thread that cannot start fails br_runtime_new with -EAGAIN;
 * the workers never started have no ring, and freeing them closed their
 * eventfd, which read 0 from the zeroed record: stdin. */
Test(faults, runtime_whose_thread_cannot_start_leaves_stdin_open, .timeout = 30)
{
	br_config cfg = { .workers = 2, .flags = BR_CONFIG_QUIET };
	br_runtime *rt = NULL;
	int fds, r;

	NEED_FAULTS();
	if (fcntl(0, F_GETFD) < 0) {
		cr_assert_eq(open("/dev/null", O_RDONLY), 0);
		t_leak_expect(1, 0, 0); /* stays open */
	}
	fds = t_count_fds();
	fail_point("braid/runtime/thread", 1);
	r = br_runtime_new(&rt, &cfg);
	cr_assert_eq(r, -EAGAIN, "br_runtime_new: %s", br_strerror(r));
	cr_assert_null(rt);
	cr_assert_geq(fcntl(0, F_GETFD), 0, "stdin was closed");
	t_assert_no_leaked_fds(fds);
}

struct hold {
	atomic_int started, release;
};

/* Hold the worker without suspending until released. */
static void *hold_worker(void *arg)
{
	struct hold *h = arg;

	atomic_store(&h->started, 1);
	t_spin_until(&h->release, 1, 30000 * T_NS_PER_MS);
	return NULL;
}

/* The pool's collector, timer and watchers are tasks: if they could not
 * get a stack, jobs waited for good. They fail instead. The one worker
 * is held (by a task on a stack of its own size, not from the slabs)
 * while the pool starts, so that the pool's tasks are still queued when
 * stacks run out. */
Test(faults, pool_whose_tasks_cannot_get_a_stack_fails_its_jobs, .timeout = 60)
{
	br_runtime *rt = t_runtime(1, 0);
	br_spawn_opts big = { .stack_size = 256 * 1024 };
	br_pool_config cfg = { .workers = 1 };
	struct hold h = { 0 };
	br_future *f, *held;
	br_pool *pool;
	int r;

	NEED_FAULTS();
	held = br_spawn_ex(rt, hold_worker, &h, &big);
	cr_assert_eq(t_spin_until(&h.started, 1, 10000 * T_NS_PER_MS), 0);
	fail_point("braid/stack/mmap", 0);
	r = br_pool_new(&pool, rt, &cfg);
	cr_assert_eq(r, 0, "br_pool_new: %s", br_strerror(r));
	f = br_submit(pool, echo_job, "x", 1);
	atomic_store(&h.release, 1);
	t_assert_task_ok(held);
	r = br_await(f, NULL);
	cr_assert_eq(r, -ENOMEM, "the job ended with %s", br_strerror(r));
	cr_assert_eq(br_future_state(f), BR_FAILED);
	br_future_release(f);
	f = br_submit(pool, echo_job, "y", 1);
	cr_assert_eq(br_await(f, NULL), -ENOMEM, "a later job fails too");
	br_future_release(f);
	br_pool_free(pool);
	br_runtime_free(rt);
}

/* Without SQEs a pool task's poll fails with -EBUSY. The collector and
 * the watchers took that for the end of the pool and stopped, so jobs
 * waited for good; they wait a moment and poll again instead. */
Test(faults, pool_keeps_serving_while_sqes_run_out, .timeout = 60)
{
	br_runtime *rt;
	br_pool_config cfg = { .workers = 1 };
	br_pool *pool;
	br_future *f;
	size_t len;
	int r, i;

	NEED_FAULTS();
	if (!t_uring_available())
		cr_skip_test("no io_uring: no SQEs to run out of");
	rt = t_runtime(1, 0);
	r = br_pool_new(&pool, rt, &cfg);
	cr_assert_eq(r, 0, "br_pool_new: %s", br_strerror(r));
	fail_point("braid/ring/sqe", 0);
	for (i = 0; i < 3; i++) {
		f = br_submit(pool, echo_job, "abc", 3);
		r = br_await(f, NULL);
		cr_assert_eq(r, 0, "job %d: %s", i, br_strerror(r));
		cr_assert_eq(br_future_bytes(f, &len) != NULL, 1);
		cr_assert_eq(len, 3);
		br_future_release(f);
	}
	br_pool_free(pool);
	br_runtime_free(rt);
}

static void *close_fd(void *arg)
{
	return (void *)(intptr_t)br_close((int)(intptr_t)arg);
}

/* Without an SQE br_close returned -EBUSY and left the descriptor open:
 * a close must release it whatever happens. */
Test(faults, close_without_an_sqe_still_releases_the_fd, .timeout = 30)
{
	br_runtime *rt;
	struct pollfd pfd;
	br_future *f;
	int p[2];

	NEED_FAULTS();
	if (!t_uring_available())
		cr_skip_test("no io_uring: no SQEs to run out of");
	rt = t_runtime(1, 0);
	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	fail_point("braid/ring/sqe", 0);
	f = br_spawn(rt, close_fd, (void *)(intptr_t)p[1]);
	cr_assert_eq((intptr_t)t_await_value(f), 0);
	pfd = (struct pollfd){ .fd = p[0], .events = POLLIN };
	cr_assert_eq(poll(&pfd, 1, 0), 1);
	cr_assert(pfd.revents & POLLHUP, "the write end is still open");
	br_future_release(f);
	close(p[0]);
	br_runtime_free(rt);
}

/* A zygote that could not send its hello served on, while the program
 * waited for that hello for good (holding the zygote lock, inside
 * br_runtime_new or br_zygote_start); and the spare it had made was a
 * child nobody knew of. It now exits, and the program reaps the spare.
 * Zygotes start only in a process of one thread, so a copy of this
 * program started afresh does the start (zygote_hello_child). */
Test(faults, zygote_that_cannot_say_hello_ends_and_leaves_no_child,
     .timeout = 60)
{
	int st;

	NEED_FAULTS();
	st = run_copy(ZYGOTE_CHILD_ENV, "1", NULL, NULL, 0);
	cr_assert_eq(st, 0,
		     "exit %d: 1 the start did not fail with -EPIPE, 2 a "
		     "child was left",
		     st);
}

/* A zygote whose answer (the new worker's pid) was lost, on its side or
 * the program's: the program asked again, and the first worker, which
 * nobody knew of, served the same index as the second and was left a
 * zombie; a lost answer read later was taken for the next worker's pid.
 * The program now finds that worker by what it writes in the pool's
 * memory, and asks a fresh zygote next time. */
Test(faults, a_worker_whose_zygote_answer_is_lost_is_found, .timeout = 60)
{
	static const char *points[] = { "braid/zygote/reply",
					"braid/zygote/answer" };

	NEED_FAULTS();
	for (size_t i = 0; i < sizeof(points) / sizeof(points[0]); i++) {
		char err[4096], fired[128];
		int st = run_copy(ANSWER_CHILD_ENV, points[i], NULL, err,
				  sizeof(err));

		cr_assert_eq(st, 0,
			     "%s: exit %d: 1 the pool or its job failed, 2 a "
			     "child was left",
			     points[i], st);
		/* The answer was lost indeed (runtime/error.c says so). */
		snprintf(fired, sizeof(fired), "braid: fault point %s failed",
			 points[i]);
		cr_assert_not_null(strstr(err, fired), "%s never fired: %s",
				   points[i], err);
	}
}

static void *await_promise(void *arg)
{
	return (void *)(intptr_t)br_await(arg, NULL);
}

/* The read kept pending on a ring's wake-up eventfd found no SQE when
 * the ring was set up, and the ring wrote through a NULL SQE. The park
 * now arms it, and waits only briefly until it has. The wake-up comes
 * through the eventfd here (no IORING_REGISTER_SEND_MSG_RING). */
Test(faults, a_wakeup_eventfd_armed_without_an_sqe_still_wakes, .timeout = 30)
{
	br_runtime *rt;
	br_future *p, *f;
	void *v = NULL;

	NEED_FAULTS();
	if (!t_uring_available())
		cr_skip_test("no io_uring: no SQEs to run out of");
	setenv("BRAID_NO_SEND_MSG_RING", "1", 1);
	fail_point("braid/ring/sqe", 1);
	rt = t_runtime(1, 0);
	p = br_promise_new();
	f = br_spawn(rt, await_promise, p);
	usleep(50 * 1000); /* the task waits, its worker parks */
	cr_assert_eq(br_promise_resolve(p, NULL), 0);
	cr_assert_eq(br_wait_for(f, 5000, &v), 0, "the task was not woken");
	cr_assert_eq((intptr_t)v, 0);
	/* And it was armed, not just woken by the short parks that stand in
	 * until it is: idle, the worker parks for good, not every 1 ms. */
	{
		br_worker_stats ws[1];
		br_runtime_stats st = { .workers = ws, .nworkers = 1 };
		uint64_t parks;

		usleep(20 * 1000);
		cr_assert_eq(br_stats(rt, &st), 1);
		parks = st.total.parks;
		usleep(200 * 1000);
		cr_assert_eq(br_stats(rt, &st), 1);
		cr_assert_lt(st.total.parks - parks, 20,
			     "%llu parks in 200 ms idle: the eventfd is not "
			     "armed",
			     (unsigned long long)(st.total.parks - parks));
	}
	br_future_release(f);
	br_future_release(p);
	br_runtime_free(rt);
	clear_point("braid/ring/sqe");
}

static int nap_job(br_job *job, const void *in, size_t len)
{
	usleep(2000 * 1000);
	return 0;
}

/* With no memory for a timer, the pool's time-limit task looped without
 * ever suspending (its sleep failed at once), and held the only worker:
 * the collector never ran and the job's future never completed. It now
 * yields when it cannot sleep, and the limit still holds. */
Test(faults, pool_time_limits_hold_without_memory_for_timers, .timeout = 30)
{
	br_runtime *rt;
	br_pool *pool;
	br_future *f;
	int r;

	NEED_FAULTS();
	rt = t_runtime(1, 0);
	r = br_pool_new(&pool, rt,
			&(br_pool_config){ .workers = 1, .timeout_ms = 100 });
	cr_assert_eq(r, 0, "br_pool_new: %s", br_strerror(r));
	fail_point("braid/timer/alloc", 0);
	f = br_submit(pool, nap_job, NULL, 0);
	for (int ms = 0; ms < 10000 && br_future_state(f) == BR_PENDING; ms++)
		usleep(1000);
	clear_point("braid/timer/alloc");
	cr_assert_eq(br_future_state(f), BR_FAILED, "the job did not end");
	cr_assert_eq(br_future_error(f), -ETIMEDOUT, "%s",
		     br_future_message(f));
	br_future_release(f);
	br_pool_free(pool);
	br_runtime_free(rt);
}

static int sleepy_job(br_job *job, const void *in, size_t len)
{
	(void)job;
	(void)in;
	(void)len;
	pause();
	return 0;
}

/* With no memory for a timer, the pool's watcher took its failed pause
 * between fork attempts for a cancel and stopped without failing what
 * waited: with the zygote and its spare gone, a queued job waited for
 * good. */
Test(faults, pool_without_a_zygote_fails_queued_jobs_without_timers,
     .timeout = 60)
{
	br_runtime *rt;
	br_pool *pool;
	br_future *f, *g;
	pid_t w = 0;
	int r;

	NEED_FAULTS();
	rt = t_runtime(1, 0);
	r = br_pool_new(&pool, rt, &(br_pool_config){ .workers = 1 });
	cr_assert_eq(r, 0, "br_pool_new: %s", br_strerror(r));
	t_kill_zygote();
	f = br_submit(pool, sleepy_job, NULL, 0);
	g = br_submit(pool, echo_job, NULL, 0);
	br_pool_pids(pool, &w, 1);
	cr_assert_gt(w, 0);
	fail_point("braid/timer/alloc", 0);
	cr_assert_eq(kill(w, SIGKILL), 0);
	r = br_wait_for(g, 10000, NULL);
	clear_point("braid/timer/alloc");
	cr_assert_eq(r, BR_EWORKERDIED, "the queued job: %s", br_strerror(r));
	cr_assert_eq(br_await(f, NULL), BR_EWORKERDIED);
	br_future_release(f);
	br_future_release(g);
	br_pool_free(pool);
	br_runtime_free(rt);
	t_leak_expect(-1, 0, 0);
}

/* Append a byte to the file named by the job's input (a path); 0 or a
 * negative errno. */
static int leave_mark(const void *in, size_t len)
{
	char path[256];
	int fd;

	if (len >= sizeof(path))
		return -EINVAL;
	memcpy(path, in, len);
	path[len] = '\0';
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	(void)!write(fd, "x", 1);
	close(fd);
	return 0;
}

/* Leaves its mark, then waits for good. */
static int mark_and_wait_job(br_job *job, const void *in, size_t len)
{
	int r = leave_mark(in, len);

	(void)job;
	if (r < 0)
		return r;
	pause();
	return 0;
}

/* Leaves its mark, naps 500 ms, and echoes. */
static int mark_nap_echo_job(br_job *job, const void *in, size_t len)
{
	int r = leave_mark(in, len);

	return r < 0 ? r : nap_echo_job(job, in, len);
}

static int crash_job(br_job *job, const void *in, size_t len)
{
	(void)job;
	(void)in;
	(void)len;
	abort();
}

/* A runtime of one worker (*rt) and a pool of one worker whose
 * replacements are registered 300 ms late (braid/pool/register_late);
 * path (cap bytes) gets a file name of this test's own, named by what. */
static br_pool *late_pool(br_runtime **rt, char *path, size_t cap,
			  const char *what)
{
	br_pool *pool;
	int r;

	snprintf(path, cap, "/tmp/braid-%s-%d", what, (int)getpid());
	unlink(path);
	*rt = t_runtime(1, 0);
	r = br_pool_new(&pool, *rt, &(br_pool_config){ .workers = 1 });
	cr_assert_eq(r, 0, "br_pool_new: %s", br_strerror(r));
	fail_point("braid/pool/register_late", 0);
	return pool;
}

/* Crash the pool's worker: its replacement is being forked on return. */
static void crash_worker(br_pool *pool)
{
	br_future *x = br_submit(pool, crash_job, NULL, 0);

	cr_assert_eq(br_wait_for(x, 10000, NULL), BR_EWORKERDIED);
	br_future_release(x);
}

static void late_pool_free(br_runtime *rt, br_pool *pool, const char *path)
{
	clear_point("braid/pool/register_late");
	unlink(path);
	br_pool_free(pool);
	br_runtime_free(rt);
}

/* A replacement worker runs jobs from its first moment, but the thread
 * that forked it registers it (its pid, the descriptor that can kill it)
 * a little later. A job it claimed in between and cancelled then was
 * never killed: br_cancel() answered BR_EDONE, and the job waited for
 * good. The registration now kills a worker whose job was cancelled. */
Test(faults, a_job_cancelled_before_its_worker_is_registered_ends,
     .timeout = 60)
{
	char path[64];
	br_runtime *rt;
	br_pool *pool;
	int in_window = 0;

	NEED_FAULTS();
	pool = late_pool(&rt, path, sizeof(path), "late");
	/* The window lasts 300 ms: a loaded machine may miss it, so try a
	 * few times. */
	for (int tries = 0; tries < 5 && !in_window; tries++) {
		br_future *b;
		pid_t w = -1;
		int c, r;

		unlink(path);
		crash_worker(pool);
		/* Its replacement takes b as soon as it starts. */
		b = br_submit(pool, mark_and_wait_job, path, strlen(path));
		for (int ms = 0; ms < 10000 && access(path, F_OK) != 0; ms++)
			usleep(1000);
		cr_assert_eq(access(path, F_OK), 0, "the job never started");
		c = br_cancel(b);
		br_pool_pids(pool, &w, 1);
		in_window = w == 0;
		cr_assert_eq(c, 0, "br_cancel: %s", br_strerror(c));
		r = br_wait_for(b, 10000, NULL);
		cr_assert_eq(r, -ECANCELED, "the cancelled job: %s",
			     br_strerror(r));
		cr_assert_eq(br_future_state(b), BR_CANCELLED);
		br_future_release(b);
	}
	late_pool_free(rt, pool, path);
	cr_assert(in_window, "no cancel came before the worker's registration");
}

/* A new worker whose pidfd could not be opened was killed, and the job
 * it had claimed meanwhile stayed claimed: its future never ended (or
 * ended BR_EWORKERDIED when the slot's next worker died). The job now
 * goes round to the next worker. */
Test(faults, a_job_held_by_a_worker_that_cannot_be_watched_goes_round,
     .timeout = 60)
{
	char path[64];
	br_runtime *rt;
	br_pool *pool;
	int runs = 0;

	NEED_FAULTS();
	pool = late_pool(&rt, path, sizeof(path), "unwatched");
	/* The unwatched worker must take the job within the 300 ms it is
	 * held up: a loaded machine may miss it, so try a few times. */
	for (int tries = 0; tries < 5 && runs < 2; tries++) {
		br_future *b;
		size_t n = 0;
		const void *out;
		struct stat st;
		int r;

		unlink(path);
		crash_worker(pool);
		fail_point("braid/child/pidfd", 1);
		b = br_submit(pool, mark_nap_echo_job, path, strlen(path));
		r = br_wait_for(b, 20000, NULL);
		cr_assert_eq(r, 0, "the job: %s: %s", br_strerror(r),
			     br_future_message(b));
		out = br_future_bytes(b, &n);
		cr_assert(n == strlen(path) && memcmp(out, path, n) == 0);
		br_future_release(b);
		runs = stat(path, &st) == 0 ? (int)st.st_size : 0;
		clear_point("braid/child/pidfd");
	}
	late_pool_free(rt, pool, path);
	cr_assert_eq(runs, 2, "the unwatched worker never took the job");
}

/* A failed poll(2) in a pool task's wait on the loop without io_uring
 * (an interruption, or any error but a shortage):
 *   - the collector took it for the pool closing and stopped, and every
 *     result after it waited for good;
 *   - br_poll() took a failed first look for "ready", looked again and
 *     returned 0, nothing ready; a watcher took that for its worker's
 *     death, and killed the live worker and the job it ran.
 * br_poll() now waits again until something is ready, and the pool's
 * tasks wait a moment and ask again after any failure. */
Test(faults_posix, a_failed_poll_does_not_stop_the_pool, .timeout = 60)
{
	static const char *const tasks[] = { "collector", "watcher" };

	NEED_FAULTS();
	NEED_POSIX_WRAPPERS();
	if (access(POSIX_PRELOAD, R_OK) != 0)
		cr_skip_test("no libfiu POSIX wrappers at " POSIX_PRELOAD);
	for (size_t i = 0; i < 2; i++) {
		int st = run_copy(POLL_CHILD_ENV, tasks[i], POSIX_PRELOAD, NULL,
				  0);

		cr_assert_eq(st, 0,
			     "%s: exit %d: 1 the job after the failed poll "
			     "never came back, 2 a live worker was killed",
			     tasks[i], st);
	}
}

/* A spare promoted to zygote makes a spare of its own before its hello;
 * when that hello was lost, the program reaped the promoted zygote but
 * not its spare, a child whose pid it never learnt: a zombie left for
 * good. The program now reaps the stray spares of a failed promotion
 * (workers, named braid-pool from their first instant, are spared). */
Test(faults, a_promoted_zygote_without_a_hello_leaves_no_child, .timeout = 60)
{
	char err[4096];
	int st;

	NEED_FAULTS();
	st = run_copy(PROMOTED_CHILD_ENV, "1", NULL, err, sizeof(err));
	cr_assert_eq(st, 0, "exit %d: 1 the set-up failed, 2 a child was left",
		     st);
	cr_assert_not_null(strstr(err, "fault point braid/zygote/hello failed"),
			   "the promoted zygote's hello never failed: %s", err);
}

/* How long the resolver is held up: ample for the task to end and the
 * test to reach br_runtime_free() first, even on a loaded machine. */
#define OUTSIDE_LATE_TEST_MS 200

struct late_wake {
	br_future *promise; /* what the waiting task awaits */
	atomic_int waiting; /* the task is about to await it */
	atomic_int stop;    /* the busy task may end */
	atomic_int woke;    /* the resolver is back from its wake-up */
};

static void *await_late_promise(void *arg)
{
	struct late_wake *lw = arg;

	atomic_store(&lw->waiting, 1);
	return (void *)(intptr_t)br_await(lw->promise, NULL);
}

/* Keeps its worker awake, yielding, so that a task made runnable there
 * runs without the wake-up its waker has not sent yet. */
static void *yield_until_stopped(void *arg)
{
	struct late_wake *lw = arg;

	while (!atomic_load(&lw->stop) && br_yield() == 0)
		;
	return NULL;
}

static void *resolve_late_promise(void *arg)
{
	struct late_wake *lw = arg;
	int r = br_promise_resolve(lw->promise, NULL);

	atomic_store(&lw->woke, 1);
	br_future_release(lw->promise);
	return (void *)(intptr_t)r;
}

/* A plain thread resolves the promise a task of rt awaits, and is held
 * up (braid/sched/outside_late) after making the task runnable, before it
 * wakes the worker; meanwhile the task runs on its busy worker and ends,
 * and rt is freed. pinned: the task is pinned to worker 1 (its mail
 * slot), else it goes through the injection queue. */
static void outside_late_then_free(unsigned workers, int pinned, unsigned flags)
{
	struct late_wake lw = { .promise = br_promise_new() };
	br_runtime *rt = t_runtime(workers, flags);
	unsigned w = workers - 1;
	br_future *busy, *t;
	pthread_t resolver;
	void *r;

	busy = br_spawn_on(rt, w, yield_until_stopped, &lw);
	t = pinned ? br_spawn_on(rt, w, await_late_promise, &lw) :
		     br_spawn(rt, await_late_promise, &lw);
	cr_assert_eq(t_wait_until(&lw.waiting, 1, 10000 * T_NS_PER_MS), 0);
	br_sleep_ms(50); /* the task waits on the promise */
	delay_point_once("braid/sched/outside_late", OUTSIDE_LATE_TEST_MS);
	br_future_retain(lw.promise); /* the resolver's */
	t_thread_start(&resolver, resolve_late_promise, &lw);
	cr_assert_eq(br_wait_for(t, 10000, &r), 0);
	cr_assert_eq((intptr_t)r, 0, "the task's await failed");
	atomic_store(&lw.stop, 1);
	cr_assert_eq(br_wait_for(busy, 10000, NULL), 0);
	br_future_release(t);
	br_future_release(busy);
	br_future_release(lw.promise);
	/* The resolver still sleeps in its wake-up: the runtime must not
	 * go before it has woken the worker. */
	cr_assert(!atomic_load(&lw.woke),
		  "the resolver woke the worker before the task ended");
	br_runtime_free(rt);
	cr_assert_eq((intptr_t)t_thread_join(resolver), 0);
	clear_delay_point("braid/sched/outside_late");
}

/* A plain thread that made a pinned task runnable (its worker's mail
 * slot) read the worker's park state only afterwards, by when the task
 * could have ended and br_runtime_free() freed the workers: a use after
 * free when the thread was preempted in between. br_runtime_free() now
 * waits for such wakers. */
Test(faults, a_runtime_freed_while_a_thread_wakes_a_pinned_task_waits,
     .timeout = 30)
{
	NEED_FAULTS();
	FOR_EACH_MODE(flags)
	outside_late_then_free(2, 1, flags);
}

/* The same through the injection queue: the waker read the runtime's
 * idle state after the task was in the queue. */
Test(faults, a_runtime_freed_while_a_thread_wakes_a_task_waits, .timeout = 30)
{
	NEED_FAULTS();
	FOR_EACH_MODE(flags)
	outside_late_then_free(1, 0, flags);
}

enum {
	LATE_SPAWN,
	LATE_CALLBACK,
	LATE_BLOCKING
};

struct late_call {
	br_runtime *rt;
	int kind;	 /* LATE_*: which call */
	br_future *f;	 /* what the call returned */
	atomic_int back; /* the call has returned */
};

static void *noop_task(void *arg)
{
	return arg;
}

static void noop_callback(void *arg)
{
	(void)arg;
}

static void *call_late(void *arg)
{
	struct late_call *lc = arg;

	lc->f = lc->kind == LATE_CALLBACK ?
			br_call_soon(lc->rt, noop_callback, NULL) :
		lc->kind == LATE_BLOCKING ?
			br_spawn_blocking(lc->rt, noop_task, NULL) :
			br_spawn(lc->rt, noop_task, NULL);
	atomic_store(&lc->back, 1);
	return NULL;
}

/* A plain thread spawns (or queues a callback, or a blocking call) and is
 * held up (braid/sched/outside_late) once it has seen the runtime open;
 * the runtime is freed meanwhile. */
static void call_late_then_free(int kind, unsigned flags)
{
	struct late_call lc = { .rt = t_runtime(1, flags), .kind = kind };
	pthread_t caller;
	br_state st;
	int err;

	delay_point_once("braid/sched/outside_late", OUTSIDE_LATE_TEST_MS);
	t_thread_start(&caller, call_late, &lc);
	cr_assert_eq(t_spin_until(&delay_reached, 1, 10000 * T_NS_PER_MS), 0,
		     "the call was never held up");
	cr_assert(!atomic_load(&lc.back),
		  "the call returned before the runtime was freed");
	br_runtime_free(lc.rt);
	t_thread_join(caller);
	clear_delay_point("braid/sched/outside_late");
	st = br_future_state(lc.f);
	err = br_future_error(lc.f);
	/* Refused (it saw closing), or queued and then dropped or run: never
	 * pending, never a touch of a freed runtime. */
	cr_assert(st != BR_PENDING, "the call's future never completed");
	if (st == BR_FAILED)
		cr_assert_eq(err, BR_ECLOSED, "%s", br_strerror(err));
	br_future_release(lc.f);
}

/* A spawn from a plain thread that had passed its check of closing when
 * br_runtime_free() began went on to count its task and queue it in the
 * freed runtime: br_runtime_free() saw no live task yet. A spawn from
 * outside now counts itself before it looks at closing, and
 * br_runtime_free() waits for it. */
Test(faults, a_spawn_racing_br_runtime_free_is_refused_or_dropped,
     .timeout = 30)
{
	NEED_FAULTS();
	FOR_EACH_MODE(flags)
	call_late_then_free(LATE_SPAWN, flags);
}

/* The same for br_call_soon(), whose callbacks are not in the live count
 * at all. */
Test(faults, a_callback_racing_br_runtime_free_is_refused_or_dropped,
     .timeout = 30)
{
	NEED_FAULTS();
	FOR_EACH_MODE(flags)
	call_late_then_free(LATE_CALLBACK, flags);
}

/* The same for br_spawn_blocking(), which went on to queue its call in a
 * blocking pool already freed. */
Test(faults, a_blocking_call_racing_br_runtime_free_is_refused_or_dropped,
     .timeout = 30)
{
	NEED_FAULTS();
	FOR_EACH_MODE(flags)
	call_late_then_free(LATE_BLOCKING, flags);
}
