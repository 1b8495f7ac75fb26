/* SPDX-License-Identifier: MIT */
/*
 * stack.c - task stacks: mmap'd, lazily committed, guarded, and the
 * SIGSEGV handler that names the task whose stack overflowed.
 *
 * Design
 *   Each stack is an anonymous MAP_NORESERVE mapping, so only the pages a
 *   task touches cost memory (a sleeping task with a shallow stack holds
 *   one page). Its lowest page is a guard:
 *     - MADV_GUARD_INSTALL (Linux 6.13+, value 102, not yet in glibc's
 *       headers) when the kernel has it: the guard costs no VMA, and
 *       adjacent stacks merge into one mapping, so vm.max_map_count never
 *       caps the number of live stacks;
 *     - else mprotect(PROT_NONE), which splits the mapping (two VMAs per
 *       stack, a cap near 32k live stacks at the default map count);
 *     - and when even that fails (ENOMEM at the map-count limit), a canary
 *       word at the bottom, checked at every switch out of the fiber.
 *   A guard fault raises SIGSEGV on the task's stack, where no handler can
 *   run, so each worker installs an alternate signal stack. The handler
 *   recognises a fault inside (or just below) the running fiber's guard,
 *   writes one line naming the task, its function and its stack size, and
 *   aborts. Any other SIGSEGV goes to the handler that was there before.
 *
 * Invariants
 *   - f->map .. f->lo is the guard page; [f->lo, f->hi) is usable.
 *
 * Concurrency
 *   - Allocation and freeing: the worker owning the fiber.
 *   - The handler runs on the faulting thread; it reads only that
 *     thread's worker and fiber and calls only async-signal-safe code.
 *
 * Lifetime
 *   Mappings are created by br__stack_alloc() and unmapped by
 *   br__stack_free(); alternate signal stacks live as long as their
 *   worker thread.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
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

#define ALTSTACK_SIZE (64 * 1024)

static size_t page;
static int guard_install; /* 1 if MADV_GUARD_INSTALL works */
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
	char buf[320];
	size_t n = 0;
	ssize_t r;

	n = put_str(buf, n, sizeof(buf), "braid: stack overflow in task ");
	n = put_num(buf, n, sizeof(buf), (uintptr_t)t, 16);
	n = put_str(buf, n, sizeof(buf), " (fn ");
	n = put_num(buf, n, sizeof(buf), t ? (uintptr_t)t->fn : 0, 16);
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

static void on_segv(int sig, siginfo_t *si, void *uc)
{
	struct br__worker *w = br__tls_worker;
	struct br__fiber *f = w ? w->fiber : NULL;
	char *a = si->si_addr;

	/* A frame bigger than the guard may skip past it; count faults
	 * up to 64 KiB below the mapping as overflows too. */
	if (f && a < (char *)f->lo && a + 65536 >= (char *)f->map) {
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

	w->altstack = mmap(NULL, ALTSTACK_SIZE, PROT_READ | PROT_WRITE,
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

int br__stack_alloc(struct br__fiber *f, size_t size)
{
	size_t len;
	char *p;

	size = (size + page - 1) & ~(page - 1);
	len = size + page;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1,
		 0);
	if (p == MAP_FAILED)
		return -errno;
	if (guard_install && madvise(p, page, MADV_GUARD_INSTALL) == 0)
		f->guard = BR__GUARD_PAGE;
	else if (mprotect(p, page, PROT_NONE) == 0)
		f->guard = BR__GUARD_PAGE;
	else
		f->guard = BR__GUARD_CANARY;
	f->map = p;
	f->map_len = len;
	f->lo = p + page;
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
