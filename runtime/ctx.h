/* SPDX-License-Identifier: MIT */
/*
 * ctx.h - the saved-register frame of a suspended fiber.
 *
 * Design
 *   A suspended fiber is nothing but a stack pointer. br__ctx_switch()
 *   pushes the callee-saved registers and the FP control words onto the
 *   stack it leaves, stores that stack pointer, loads the other one and
 *   pops the same frame off it. Only what the ABI says a callee must
 *   preserve is saved: caller-saved registers are already dead at a call,
 *   and the signal mask is per thread (swapcontext's sigprocmask syscall
 *   is exactly what this avoids). The layout below is shared with the
 *   assembly through the BR_CTX_* offsets and checked by _Static_assert in
 *   fiber.c.
 *
 *   A new fiber's stack is prepared by br__ctx_init() with a frame whose
 *   return address is br__ctx_entry, an assembly stub that calls
 *   fn(arg) with an ABI-aligned stack. fn never returns.
 *
 * Concurrency
 *   A frame is written by the worker switching away from the fiber and
 *   read by the worker switching to it. The hand-off between them is made
 *   by the scheduler's release/acquire on the task's wake word.
 */
#ifndef BR_CTX_H
#define BR_CTX_H

#if defined(__x86_64__)
/*
 * x86-64 System V frame, lowest address first (the saved stack pointer
 * points at BR_CTX_MXCSR):
 *
 *   +0  mxcsr (4) | x87 control word (2) | pad (2)
 *   +8  r15   +16 r14   +24 r13   +32 r12   +40 rbx   +48 rbp
 *   +56 return address
 */
#define BR_CTX_MXCSR 0
#define BR_CTX_FPUCW 4
#define BR_CTX_R15 8
#define BR_CTX_R14 16
#define BR_CTX_R13 24
#define BR_CTX_R12 32
#define BR_CTX_RBX 40
#define BR_CTX_RBP 48
#define BR_CTX_RET 56
#define BR_CTX_FRAME 64
#elif defined(__aarch64__)
/*
 * AArch64 AAPCS64 frame, lowest address first:
 *
 *   +0   d8 d9 d10 d11 d12 d13 d14 d15      (8 bytes each)
 *   +64  x19 x20 x21 x22 x23 x24 x25 x26 x27 x28
 *   +144 x29 (fp)   +152 x30 (lr, where the switch returns to)
 *   +160 fpcr       +168 pad (keeps sp 16-byte aligned)
 */
#define BR_CTX_D8 0
#define BR_CTX_X19 64
#define BR_CTX_X29 144
#define BR_CTX_X30 152
#define BR_CTX_FPCR 160
#define BR_CTX_FRAME 176
#else
#error "braid: no context switch for this architecture"
#endif

#ifndef __ASSEMBLER__
#include <stddef.h>
#include <stdint.h>

#if defined(__x86_64__)
struct br__ctx_frame {
	uint32_t mxcsr;
	uint16_t fpucw;
	uint16_t pad;
	uint64_t r15, r14, r13, r12, rbx, rbp;
	uint64_t ret;
};
#else
struct br__ctx_frame {
	uint64_t d[8];
	uint64_t x19_x28[10];
	uint64_t x29, x30;
	uint64_t fpcr, pad;
};
#endif

/*
 * br__ctx_switch - save the running context, storing its stack pointer in
 * *save_sp, and resume the context whose stack pointer is load_sp.
 * Returns when some other switch resumes *save_sp.
 */
void br__ctx_switch(void **save_sp, void *load_sp);

/* The stub a new context starts in; see br__ctx_init(). */
void br__ctx_entry(void);

/*
 * br__ctx_init - prepare the stack [lo, hi) so that switching to the
 * returned stack pointer calls fn(arg) on it. fn must never return.
 */
static inline void *br__ctx_init(void *lo, void *hi, void (*fn)(void *),
				 void *arg)
{
	uintptr_t top = (uintptr_t)hi & ~(uintptr_t)15;
	struct br__ctx_frame *f;

	(void)lo;
	f = (struct br__ctx_frame *)(top - sizeof(*f));
	*f = (struct br__ctx_frame){ 0 };
#if defined(__x86_64__)
	/* Default MXCSR (all exceptions masked, round to nearest) and x87
	 * control word (extended precision, all masked), as at process
	 * start. */
	f->mxcsr = 0x1f80;
	f->fpucw = 0x037f;
	f->r12 = (uint64_t)(uintptr_t)arg;
	f->r13 = (uint64_t)(uintptr_t)fn;
	f->ret = (uint64_t)(uintptr_t)br__ctx_entry;
#else
	f->x19_x28[0] = (uint64_t)(uintptr_t)arg;
	f->x19_x28[1] = (uint64_t)(uintptr_t)fn;
	f->x30 = (uint64_t)(uintptr_t)br__ctx_entry;
#endif
	return f;
}
#endif /* !__ASSEMBLER__ */

#endif /* BR_CTX_H */
