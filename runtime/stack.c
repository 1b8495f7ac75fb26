/* SPDX-License-Identifier: MIT */
/*
 * stack.c - task stacks: mmap'd, lazily committed, guarded, and the
 * SIGSEGV handler that names the task whose stack overflowed.
 *
 * Design
 *   Each stack is an anonymous MAP_NORESERVE mapping, so only the pages a
 *   task touches cost memory (a sleeping task with a shallow stack holds
 *   one page). Below its usable part lies a guard region of GUARD_SIZE:
 *     - MADV_GUARD_INSTALL (Linux 6.13+, value 102, not yet in glibc's
 *       headers) when the kernel has it: the guard costs no memory and no
 *       VMA, and adjacent stacks merge into one mapping, so
 *       vm.max_map_count never caps the number of live stacks;
 *     - else mprotect(PROT_NONE), which splits the mapping (two VMAs per
 *       stack, a cap near 32k live stacks at the default map count) but
 *       costs no memory either;
 *     - and when even that fails (ENOMEM at the map-count limit), a canary
 *       word at the bottom, checked at every switch out of the fiber. The
 *       region stays reserved, so an overflow of less than GUARD_SIZE
 *       still writes only memory that no other stack uses.
 *
 *   The guard is 64 KiB, not one page. A function's frame is reserved
 *   with one move of the stack pointer, and its first store may land
 *   anywhere in it: a frame larger than the guard can step over it into
 *   the stack below, another task's, and corrupt it in silence. Built
 *   with -fstack-clash-protection, as braid is and as README asks of
 *   programs (their task functions' frames are the ones that overflow),
 *   every frame larger than the compiler's probe interval touches each
 *   page in order from the top, so it meets the guard first. GCC on
 *   x86-64 probes frames above 4 KiB; on AArch64 it leaves frames below
 *   its assumed 64 KiB guard (stack-clash-protection-guard-size=16)
 *   unprobed, so 64 KiB is the least guard that is sound there. Without
 *   the option, the same 64 KiB still stops every frame up to that size.
 *   The guard is free where it matters: with MADV_GUARD_INSTALL or
 *   mprotect it commits no memory and adds no VMA over a one-page guard.
 *   It costs address space (128 KiB per default stack instead of 68 KiB)
 *   and the page tables over it: docs/ARCHITECTURE.md gives the figures
 *   for 100,000 sleeping tasks.
 *
 *   Stacks of the runtime's default size come in slabs of 64 carved from one
 *   mapping, and go back to the runtime's pool rather than being unmapped:
 *   munmap of a thread's stack in a multi-threaded process costs a TLB
 *   shootdown on every core, and 100,000 sleeping tasks spent most of their
 *   time there. A slab's guards are installed, and the top page of each stack
 *   (where a task's first frames and usually all of them live) is populated,
 *   with one process_madvise() call each: a first touch of a page costs a
 *   fault, several times what a batched populate costs per page
 *   (docs/ARCHITECTURE.md). Where process_madvise refuses, per-stack madvise
 *   (or mprotect) does the same work one call at a time.
 *
 *   A guard fault raises SIGSEGV on the task's stack, where no handler can
 *   run, so each worker installs an alternate signal stack. forkexec.c
 *   also lends it to a child between clone and exec, while the worker
 *   thread waits with every signal blocked. The handler takes a fault as
 *   the running fiber's overflow when it lies in the fiber's guard, or
 *   when the interrupted stack pointer is below the fiber's stack and the
 *   fault lies between that stack pointer and the stack: an unprobed frame
 *   that jumped the guard and faulted further down (in another stack's
 *   guard, say). It writes one line naming the task, its function, its
 *   stack size and the two ways to raise it, and aborts. Any other SIGSEGV
 *   goes to the handler that was there before.

 * Invariants
 *   - [f->map, f->lo) is the guard, GUARD_SIZE bytes; [f->lo, f->hi) is
 *     the usable stack; f->map_len covers both.
 *   - A stack guarded by neither MADV_GUARD_INSTALL nor mprotect holds
 *     BR__STACK_CANARY in its lowest usable word until it overflows.
 *   - A default-size stack belongs to its slab for the runtime's life.
 *
 * Concurrency
 *   - Allocation and freeing: the worker owning the fiber.
 *   - The handler runs on the faulting thread; it reads only that
 *     thread's worker and fiber and calls only async-signal-safe code,
 *     but for dladdr() to name the function: the process is about to
 *     abort, and dladdr's lock is one the faulting thread cannot hold
 *     (glibc's is recursive, and a task's code does not load objects
 *     while it overflows).
 *
 * Lifetime
 *   Slabs live from their creation until br__stack_pool_term() at runtime
 *   free; odd-size stacks are mapped by br__stack_alloc() and unmapped by
 *   br__stack_free(); alternate signal stacks live as long as their
 *   worker thread.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/ucontext.h>
#include <sys/uio.h>
#include <unistd.h>

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define BR__VALGRIND 1
#endif

#include "fiber.h"
#include "task.h"
#include "worker.h"

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/* Stacks per slab. */
#define SLAB_STACKS 64

/* The guard region below each stack: the header says why 64 KiB. A
 * multiple of every page size Linux uses (4, 16 and 64 KiB). */
#define GUARD_SIZE ((size_t)64 << 10)

struct br__stack_slab {
	struct br__stack_slab *next;
	void *map;
	size_t len;
};

#define ALTSTACK_SIZE (64 * 1024)

static size_t page;
static int guard_install; /* 1 if MADV_GUARD_INSTALL works */
/* process_madvise takes our advice, until it
 * says otherwise */
static int batch_ok = 1;
static struct sigaction prev_segv;
static pthread_once_t once = PTHREAD_ONCE_INIT;

extern __thread struct br__worker *br__tls_worker;

/* ---- async-signal-safe formatting ---- */

static size_t put_str(char *buf, size_t at, size_t cap, const char *s)
{
	while (*s && at + 1 < cap)
		buf[at++] = *s++;
	return at;
}

static size_t put_num(char *buf, size_t at, size_t cap, uintptr_t v,
		      unsigned base)
{
	char tmp[32];
	int n = 0;

	if (base == 16)
		at = put_str(buf, at, cap, "0x");
	do {
		tmp[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v && n < (int)sizeof(tmp));
	while (n > 0 && at + 1 < cap)
		buf[at++] = tmp[--n];
	return at;
}

static void report_overflow(struct br__fiber *f, void *addr)
{
	struct br__task *t = f->top;
	uintptr_t fn = t ? (uintptr_t)t->fn : 0;
	char buf[512];
	size_t n = 0;
	Dl_info info;
	ssize_t r;

	n = put_str(buf, n, sizeof(buf), "braid: stack overflow in task ");
	n = put_num(buf, n, sizeof(buf), (uintptr_t)t, 16);
	n = put_str(buf, n, sizeof(buf), " (fn ");
	/* The name if the program exports it, else object and offset for
	 * addr2line; then the address. */
	if (fn && dladdr((void *)fn, &info)) {
		if (info.dli_sname && (uintptr_t)info.dli_saddr == fn) {
			n = put_str(buf, n, sizeof(buf), info.dli_sname);
			n = put_str(buf, n, sizeof(buf), " at ");
		} else if (info.dli_fname) {
			const char *o = strrchr(info.dli_fname, '/');

			n = put_str(buf, n, sizeof(buf),
				    o ? o + 1 : info.dli_fname);
			n = put_str(buf, n, sizeof(buf), "+");
			n = put_num(buf, n, sizeof(buf),
				    fn - (uintptr_t)info.dli_fbase, 16);
			n = put_str(buf, n, sizeof(buf), " at ");
		}
	}
	n = put_num(buf, n, sizeof(buf), fn, 16);
	n = put_str(buf, n, sizeof(buf), "): its stack is ");
	n = put_num(buf, n, sizeof(buf), f->size, 10);
	n = put_str(buf, n, sizeof(buf), " bytes");
	if (addr) {
		n = put_str(buf, n, sizeof(buf), ", fault at ");
		n = put_num(buf, n, sizeof(buf), (uintptr_t)addr, 16);
	}
	n = put_str(buf, n, sizeof(buf),
		    "; raise br_spawn_opts.stack_size or BRAID_STACK_SIZE\n");
	r = write(STDERR_FILENO, buf, n);
	(void)r;
}

/* The interrupted stack pointer, or 0 where this file does not know the
 * architecture's context layout. */
static uintptr_t fault_sp(void *uc)
{
	ucontext_t *u = uc;

#if defined(__x86_64__)
	return (uintptr_t)u->uc_mcontext.gregs[REG_RSP];
#elif defined(__aarch64__)
	return (uintptr_t)u->uc_mcontext.sp;
#else
	(void)u;
	return 0;
#endif
}

/* Below the stack pointer, stores reach at most this far: x86-64's red
 * zone is 128 bytes, and AArch64 stores a pair at most 512 bytes below
 * it when it allocates a frame. */
#define BELOW_SP 4096

/* Is a fault at a, with the stack pointer at sp, f's overflow? */
static int is_overflow(struct br__fiber *f, uintptr_t a, uintptr_t sp)
{
	uintptr_t map = (uintptr_t)f->map, lo = (uintptr_t)f->lo;

	if (a >= map && a < lo)
		return 1; /* in the guard */
	/* A frame that stepped over the guard: the stack pointer is below
	 * the stack, at most a maximal stack's size, and the fault lies
	 * between it and the stack. */
	return sp && sp < lo && lo - sp <= BR__STACK_MAX && a < lo &&
	       a + BELOW_SP >= sp;
}

static void on_segv(int sig, siginfo_t *si, void *uc)
{
	struct br__worker *w = br__tls_worker;
	struct br__fiber *f = w ? br__worker_fiber(w) : NULL;
	char *a = si->si_addr;

	if (f && is_overflow(f, (uintptr_t)a, fault_sp(uc))) {
		report_overflow(f, a);
		abort();
	}
	if (prev_segv.sa_flags & SA_SIGINFO) {
		if (prev_segv.sa_sigaction) {
			prev_segv.sa_sigaction(sig, si, uc);
			return;
		}
	} else if (prev_segv.sa_handler != SIG_DFL &&
		   prev_segv.sa_handler != SIG_IGN) {
		prev_segv.sa_handler(sig);
		return;
	}
	/* Default action: re-fault with the handler gone. */
	signal(SIGSEGV, SIG_DFL);
}

static void probe_once(void)
{
	struct sigaction sa;
	void *p;

	page = (size_t)sysconf(_SC_PAGESIZE);
	p = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p != MAP_FAILED) {
		guard_install = madvise(p, page, MADV_GUARD_INSTALL) == 0;
		munmap(p, 2 * page);
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_segv;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, &prev_segv);
}

int br__stack_init_process(void)
{
	pthread_once(&once, probe_once);
	return 0;
}

int br__stack_guard_install_works(void)
{
	br__stack_init_process();
	return guard_install;
}

int br__stack_thread_init(struct br__worker *w)
{
	stack_t ss;

	w->altstack = BR__FAULT_ERRNO("braid/stack/altstack", ENOMEM) ?
			      MAP_FAILED :
			      mmap(NULL, ALTSTACK_SIZE, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (w->altstack == MAP_FAILED) {
		w->altstack = NULL;
		return -ENOMEM;
	}
	ss.ss_sp = w->altstack;
	ss.ss_size = ALTSTACK_SIZE;
	ss.ss_flags = 0;
	if (sigaltstack(&ss, NULL) < 0) {
		munmap(w->altstack, ALTSTACK_SIZE);
		w->altstack = NULL;
		return -errno;
	}
	return 0;
}

void br__stack_thread_exit(struct br__worker *w)
{
	stack_t ss = { .ss_flags = SS_DISABLE };

	if (!w->altstack)
		return;
	sigaltstack(&ss, NULL);
	munmap(w->altstack, ALTSTACK_SIZE);
	w->altstack = NULL;
}

char *br__stack_alt_top(struct br__worker *w)
{
	return w->altstack ? (char *)w->altstack + ALTSTACK_SIZE : NULL;
}

int br__stack_alloc(struct br__fiber *f, size_t size)
{
	size_t len;
	char *p;

	size = (size + page - 1) & ~(page - 1);
	len = GUARD_SIZE + size;
	if (BR__FAULT_ERRNO("braid/stack/mmap", ENOMEM))
		return -errno;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1,
		 0);
	if (p == MAP_FAILED)
		return -errno;
	if (guard_install && madvise(p, GUARD_SIZE, MADV_GUARD_INSTALL) == 0)
		f->guard = BR__GUARD_PAGE;
	else if (mprotect(p, GUARD_SIZE, PROT_NONE) == 0)
		f->guard = BR__GUARD_PAGE;
	else
		f->guard = BR__GUARD_CANARY;
	f->slab = 0;
	f->map = p;
	f->map_len = len;
	f->lo = p + GUARD_SIZE;
	f->hi = p + len;
	f->size = size;
	if (f->guard == BR__GUARD_CANARY)
		*(uint64_t *)f->lo = BR__STACK_CANARY;
#ifdef BR__VALGRIND
	f->vg_id = VALGRIND_STACK_REGISTER(f->lo, f->hi);
#endif
	return 0;
}

void br__stack_free(struct br__fiber *f)
{
#ifdef BR__VALGRIND
	VALGRIND_STACK_DEREGISTER(f->vg_id);
#endif
	munmap(f->map, f->map_len);
	f->map = f->lo = f->hi = NULL;
}

void br__stack_overflowed(struct br__fiber *f)
{
	report_overflow(f, NULL);
	abort();
}

/* One process_madvise() over iov[0..n), or -1 if the kernel refuses (then
 * later slabs stop trying). The pidfd is opened per call: a pool worker
 * forked from this process must not advise its parent. */
static int advise_batch(struct iovec *iov, unsigned n, int advice)
{
	long r = -1;
	int pfd;

	if (!batch_ok)
		return -1;
	pfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
	if (pfd >= 0) {
		r = syscall(SYS_process_madvise, pfd, iov, (size_t)n, advice,
			    0u);
		close(pfd);
	}
	if (r < 0) {
		batch_ok = 0;
		return -1;
	}
	return 0;
}

int br__stack_pool_init(struct br__stack_pool *p, size_t size)
{
	br__stack_init_process();
	p->free = NULL;
	p->nfree = 0;
	p->slabs = NULL;
	p->size = (size + page - 1) & ~(page - 1);
	return -pthread_mutex_init(&p->lock, NULL);
}

struct br__fiber *br__stack_slab_new(struct br__stack_pool *p, unsigned *n)
{
	struct iovec guards[SLAB_STACKS], tops[SLAB_STACKS];
	struct br__fiber *list = NULL, *f;
	struct br__stack_slab *sl;
	size_t each = GUARD_SIZE + p->size;
	uint8_t guard = BR__GUARD_PAGE;
	unsigned i;
	char *m;

	if (BR__FAULT("braid/stack/mmap"))
		return NULL;
	sl = malloc(sizeof(*sl));
	if (!sl)
		return NULL;
	sl->len = each * SLAB_STACKS;
	m = mmap(NULL, sl->len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1,
		 0);
	if (m == MAP_FAILED) {
		free(sl);
		return NULL;
	}
	sl->map = m;
	for (i = 0; i < SLAB_STACKS; i++) {
		guards[i].iov_base = m + i * each;
		guards[i].iov_len = GUARD_SIZE;
		tops[i].iov_base = m + (i + 1) * each - page;
		tops[i].iov_len = page;
	}
	if (!guard_install ||
	    advise_batch(guards, SLAB_STACKS, MADV_GUARD_INSTALL) < 0) {
		for (i = 0; i < SLAB_STACKS; i++) {
			if (guard_install &&
			    madvise(guards[i].iov_base, GUARD_SIZE,
				    MADV_GUARD_INSTALL) == 0)
				continue;
			if (mprotect(guards[i].iov_base, GUARD_SIZE,
				     PROT_NONE) < 0)
				guard = BR__GUARD_CANARY;
		}
	}
	if (advise_batch(tops, SLAB_STACKS, MADV_POPULATE_WRITE) < 0)
		for (i = 0; i < SLAB_STACKS; i++)
			madvise(tops[i].iov_base, page, MADV_POPULATE_WRITE);
	for (i = SLAB_STACKS; i-- > 0;) {
		f = br__fiber_hdr_get();
		if (!f)
			break;
		f->map = m + i * each;
		f->map_len = each;
		f->lo = m + i * each + GUARD_SIZE;
		f->hi = m + (i + 1) * each;
		f->size = p->size;
		f->guard = guard;
		f->slab = 1;
		if (guard == BR__GUARD_CANARY)
			*(uint64_t *)f->lo = BR__STACK_CANARY;
#ifdef BR__VALGRIND
		f->vg_id = VALGRIND_STACK_REGISTER(f->lo, f->hi);
#endif
		f->next = list;
		list = f;
	}
	*n = SLAB_STACKS - (i + 1);
	if (!list) {
		munmap(m, sl->len);
		free(sl);
		return NULL;
	}
	/* Stacks left without a header (out of memory) stay unused until
	 * the slab goes. */
	sl->next = p->slabs;
	p->slabs = sl;
	return list;
}

void br__stack_pool_term(struct br__stack_pool *p)
{
	struct br__stack_slab *sl;

	while (p->free) {
		struct br__fiber *f = p->free;

		p->free = f->next;
#ifdef BR__VALGRIND
		VALGRIND_STACK_DEREGISTER(f->vg_id);
#endif
		f->slab = 0;
		f->map = f->lo = f->hi = NULL;
		br__fiber_hdr_put(f);
	}
	p->nfree = 0;
	while ((sl = p->slabs)) {
		p->slabs = sl->next;
		munmap(sl->map, sl->len);
		free(sl);
	}
	pthread_mutex_destroy(&p->lock);
}
