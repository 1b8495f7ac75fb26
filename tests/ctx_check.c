/* SPDX-License-Identifier: MIT */
/*
 * ctx_check.c - standalone check of the context switch (ctx.h + ctx_*.S).
 *
 * Design
 *   This program links nothing of braid but ctx.h and one ctx_<arch>.S,
 *   and no test framework, so that it can be cross-compiled statically and
 *   run under qemu-user on an architecture whose host has no Criterion.
 *   Main and two contexts, a and b, started with br__ctx_init() on mmap'd
 *   stacks, pass control around the ring main -> a -> b -> main for
 *   ROUNDS rounds. Every switch goes through switch_checked(), which pins
 *   known values in the callee-saved registers around the call and
 *   compares them afterwards. Checks:
 *     1. order: each participant runs exactly once per round, in turn;
 *     2. callee-saved registers: general-purpose (rbx, r12-r15 or
 *        x19-x28), FP (d8-d15 on AArch64; on x86-64, where no vector
 *        register is callee-saved, live doubles spilled around the call),
 *        and the frame and stack pointers, survive every switch;
 *     3. FP control: a runs with FE_UPWARD set by fesetround(), b and main
 *        with the default FE_TONEAREST, and each sees its own mode after
 *        every switch, both through fegetround() and through the result
 *        of a division (which on x86-64 reads MXCSR, not the x87 word);
 *     4. alignment: the stack of a started function is aligned as the ABI
 *        requires at a call (16 bytes on both architectures).
 *   Exits 0 and prints "ctx_check: 4 passed, 0 failed" when all hold.
 *
 * Concurrency
 *   One thread; the contexts are coroutines of it. No shared state needs
 *   ordering.
 *
 * Lifetime
 *   a and b never return (br__ctx_init() contexts must not). They are
 *   left suspended when main has finished its rounds, and their stacks
 *   are unmapped without resuming them.
 */
#include <fenv.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ctx.h"

#define ROUNDS 100000
#define STACK_SIZE (64 * 1024)

#define BAD_GPR 1u
#define BAD_FPR 2u
#define BAD_FP_SP 4u

struct coro {
	const char *name;
	void *sp;  /* saved stack pointer while suspended */
	void *map; /* stack mapping, guard page first */
	size_t map_len;
	unsigned long rounds; /* turns this context has taken */
};

static struct coro coro_a = { .name = "a" };
static struct coro coro_b = { .name = "b" };
static void *main_sp;

/* Turn of the ring: 0 main has switched to a, 1 a to b, 2 b to main. */
static unsigned long turn;

static unsigned long fail_order, fail_regs, fail_fpctl, fail_align;

static void report(unsigned long *counter, const char *who, const char *what,
		   unsigned long round)
{
	/* Print the first few failures only; the count says the rest. */
	if (*counter < 5)
		fprintf(stderr, "ctx_check: %s: %s (round %lu)\n", who, what,
			round);
	(*counter)++;
}

/*
 * Pins seed-derived values in every callee-saved register the compiler
 * lets a C function name, switches, and checks the values afterwards. The
 * local register variables are only guaranteed to live in their register
 * at the asm statements that use them, which is exactly before and after
 * the call. noinline keeps the pinning out of the callers.
 */
static __attribute__((noinline)) unsigned
switch_checked(void **save_sp, void *load_sp, uint64_t seed)
{
	unsigned bad = 0;
	uintptr_t fp0, sp0, fp1, sp1;
	uint64_t k = seed * 0x9e3779b97f4a7c15ull;
#if defined(__x86_64__)
	register uint64_t g0 __asm__("rbx") = k ^ 1;
	register uint64_t g1 __asm__("r12") = k ^ 2;
	register uint64_t g2 __asm__("r13") = k ^ 3;
	register uint64_t g3 __asm__("r14") = k ^ 4;
	register uint64_t g4 __asm__("r15") = k ^ 5;
	/* No xmm register is callee-saved: these live on the stack. */
	double d0 = (double)(seed & 0xffff) + 0.5, d1 = d0 + 1, d2 = d0 + 2,
	       d3 = d0 + 3, d4 = d0 + 4, d5 = d0 + 5, d6 = d0 + 6, d7 = d0 + 7;
#define GPR_OPS "+r"(g0), "+r"(g1), "+r"(g2), "+r"(g3), "+r"(g4)
#define FPR_OPS                                                               \
	"+x"(d0), "+x"(d1), "+x"(d2), "+x"(d3), "+x"(d4), "+x"(d5), "+x"(d6), \
		"+x"(d7)
#define GPR_OK                                                               \
	(g0 == (k ^ 1) && g1 == (k ^ 2) && g2 == (k ^ 3) && g3 == (k ^ 4) && \
	 g4 == (k ^ 5))
	__asm__ volatile("movq %%rbp, %0\n\tmovq %%rsp, %1"
			 : "=r"(fp0), "=r"(sp0));
#elif defined(__aarch64__)
	register uint64_t g0 __asm__("x19") = k ^ 1;
	register uint64_t g1 __asm__("x20") = k ^ 2;
	register uint64_t g2 __asm__("x21") = k ^ 3;
	register uint64_t g3 __asm__("x22") = k ^ 4;
	register uint64_t g4 __asm__("x23") = k ^ 5;
	register uint64_t g5 __asm__("x24") = k ^ 6;
	register uint64_t g6 __asm__("x25") = k ^ 7;
	register uint64_t g7 __asm__("x26") = k ^ 8;
	register uint64_t g8 __asm__("x27") = k ^ 9;
	register uint64_t g9 __asm__("x28") = k ^ 10;
	register double d0 __asm__("d8") = (double)(seed & 0xffff) + 0.5;
	register double d1 __asm__("d9") = d0 + 1;
	register double d2 __asm__("d10") = d0 + 2;
	register double d3 __asm__("d11") = d0 + 3;
	register double d4 __asm__("d12") = d0 + 4;
	register double d5 __asm__("d13") = d0 + 5;
	register double d6 __asm__("d14") = d0 + 6;
	register double d7 __asm__("d15") = d0 + 7;
#define GPR_OPS                                                               \
	"+r"(g0), "+r"(g1), "+r"(g2), "+r"(g3), "+r"(g4), "+r"(g5), "+r"(g6), \
		"+r"(g7), "+r"(g8), "+r"(g9)
#define FPR_OPS                                                               \
	"+w"(d0), "+w"(d1), "+w"(d2), "+w"(d3), "+w"(d4), "+w"(d5), "+w"(d6), \
		"+w"(d7)
#define GPR_OK                                                               \
	(g0 == (k ^ 1) && g1 == (k ^ 2) && g2 == (k ^ 3) && g3 == (k ^ 4) && \
	 g4 == (k ^ 5) && g5 == (k ^ 6) && g6 == (k ^ 7) && g7 == (k ^ 8) && \
	 g8 == (k ^ 9) && g9 == (k ^ 10))
	__asm__ volatile("mov %0, x29\n\tmov %1, sp" : "=r"(fp0), "=r"(sp0));
#else
#error "ctx_check: no register list for this architecture"
#endif
	double base = (double)(seed & 0xffff) + 0.5;

	/* Make the compiler materialise every value in its register now. */
	__asm__ volatile("" : GPR_OPS);
	__asm__ volatile("" : FPR_OPS);

	br__ctx_switch(save_sp, load_sp);

	/* And read them back from the same registers. */
	__asm__ volatile("" : GPR_OPS);
	__asm__ volatile("" : FPR_OPS);
#if defined(__x86_64__)
	__asm__ volatile("movq %%rbp, %0\n\tmovq %%rsp, %1"
			 : "=r"(fp1), "=r"(sp1));
#else
	__asm__ volatile("mov %0, x29\n\tmov %1, sp" : "=r"(fp1), "=r"(sp1));
#endif
	if (!GPR_OK)
		bad |= BAD_GPR;
	if (d0 != base || d1 != base + 1 || d2 != base + 2 || d3 != base + 3 ||
	    d4 != base + 4 || d5 != base + 5 || d6 != base + 6 ||
	    d7 != base + 7)
		bad |= BAD_FPR;
	if (fp0 != fp1 || sp0 != sp1)
		bad |= BAD_FP_SP;
	return bad;
#undef GPR_OPS
#undef FPR_OPS
#undef GPR_OK
}

/* 1/3 rounded to nearest and rounded up differ in the last bit. */
#define THIRD_NEAREST 0x3fd5555555555555ull
#define THIRD_UPWARD 0x3fd5555555555556ull

static void check_fpctl(int mode, const char *who, unsigned long round)
{
	volatile double one = 1.0, three = 3.0;
	double q = one / three;
	uint64_t bits, want;

	want = mode == FE_UPWARD ? THIRD_UPWARD : THIRD_NEAREST;
	memcpy(&bits, &q, sizeof(bits));
	if (fegetround() != mode)
		report(&fail_fpctl, who, "fegetround() changed", round);
	else if (bits != want)
		report(&fail_fpctl, who, "division rounded in a foreign mode",
		       round);
}

static void check_switch(unsigned bad, const char *who, unsigned long round)
{
	if (bad & BAD_GPR)
		report(&fail_regs, who, "callee-saved GPR changed", round);
	if (bad & BAD_FPR)
		report(&fail_regs, who, "callee-saved FP register changed",
		       round);
	if (bad & BAD_FP_SP)
		report(&fail_regs, who, "frame or stack pointer changed",
		       round);
}

/*
 * Checks the stack alignment at entry of a started function. An aligned
 * local is placed by the compiler on the assumption that the incoming
 * stack is aligned, so a misaligned entry shows up in its address, as it
 * does in the frame address. The asm hides both from the optimiser, which
 * would otherwise fold the test to true.
 */
static void check_entry_alignment(const char *who)
{
	_Alignas(16) volatile char probe[16];
	uintptr_t p = (uintptr_t)probe;
	uintptr_t f = (uintptr_t)__builtin_frame_address(0);

	probe[0] = 0;
	__asm__ volatile("" : "+r"(p), "+r"(f));
	if (p % 16 != 0)
		report(&fail_align, who, "16-byte aligned local misaligned", 0);
	if (f % 16 != 0)
		report(&fail_align, who, "frame address not 16-byte aligned",
		       0);
}

static void coro_a_main(void *arg)
{
	struct coro *self = arg;
	unsigned long round = 0;

	check_entry_alignment(self->name);
	check_fpctl(FE_TONEAREST, self->name, 0); /* the init frame's FPCR */
	if (fesetround(FE_UPWARD) != 0)
		report(&fail_fpctl, self->name, "fesetround failed", 0);
	for (;;) {
		if (turn % 3 != 0)
			report(&fail_order, self->name, "ran out of turn",
			       round);
		turn++;
		self->rounds++;
		check_switch(switch_checked(&self->sp, coro_b.sp,
					    2 * round + 1),
			     self->name, round);
		check_fpctl(FE_UPWARD, self->name, round);
		round++;
	}
}

static void coro_b_main(void *arg)
{
	struct coro *self = arg;
	unsigned long round = 0;

	check_entry_alignment(self->name);
	for (;;) {
		check_fpctl(FE_TONEAREST, self->name, round);
		if (turn % 3 != 1)
			report(&fail_order, self->name, "ran out of turn",
			       round);
		turn++;
		self->rounds++;
		check_switch(switch_checked(&self->sp, main_sp, 2 * round + 2),
			     self->name, round);
		round++;
	}
}

static int coro_start(struct coro *c, void (*fn)(void *))
{
	long page = sysconf(_SC_PAGESIZE);

	c->map_len = STACK_SIZE + (size_t)page;
	c->map = mmap(NULL, c->map_len, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (c->map == MAP_FAILED) {
		perror("ctx_check: mmap");
		return -1;
	}
	/* Guard page below the stack, so an overflow faults. */
	if (mprotect(c->map, (size_t)page, PROT_NONE) != 0) {
		perror("ctx_check: mprotect");
		return -1;
	}
	c->sp = br__ctx_init((char *)c->map + page, (char *)c->map + c->map_len,
			     fn, c);
	return 0;
}

static void result(const char *name, unsigned long failures, int *passed,
		   int *failed)
{
	printf("  %s  %s\n", failures ? "FAIL" : "ok  ", name);
	if (failures)
		(*failed)++;
	else
		(*passed)++;
}

int main(void)
{
	unsigned long round;
	int passed = 0, failed = 0;

	if (coro_start(&coro_a, coro_a_main) < 0 ||
	    coro_start(&coro_b, coro_b_main) < 0)
		return 2;

	for (round = 0; round < ROUNDS; round++) {
		check_switch(switch_checked(&main_sp, coro_a.sp, 2 * round),
			     "main", round);
		check_fpctl(FE_TONEAREST, "main", round);
		if (turn % 3 != 2)
			report(&fail_order, "main", "resumed out of turn",
			       round);
		turn++;
	}
	if (coro_a.rounds != ROUNDS || coro_b.rounds != ROUNDS ||
	    turn != 3ul * ROUNDS)
		report(&fail_order, "main", "wrong number of turns", round);

	munmap(coro_a.map, coro_a.map_len);
	munmap(coro_b.map, coro_b.map_len);

	result("switch order, main -> a -> b", fail_order, &passed, &failed);
	result("callee-saved registers survive", fail_regs, &passed, &failed);
	result("FP control is per context", fail_fpctl, &passed, &failed);
	result("stack 16-byte aligned at entry", fail_align, &passed, &failed);
	printf("ctx_check: %d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
