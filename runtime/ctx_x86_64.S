/* SPDX-License-Identifier: MIT */
/*
 * ctx_x86_64.S - fiber context switch for x86-64 System V.
 *
 *   void br__ctx_switch(void **save_sp, void *load_sp);   rdi, rsi
 *   void br__ctx_entry(void);   first code a new fiber runs
 *
 * ABI: System V AMD64 psABI 3.2.1. Callee-saved: rbx, rbp, r12-r15, the
 * MXCSR control bits and the x87 control word. Everything else is dead
 * across a call, so it is not saved.
 *
 * Frame pushed on the stack being left (offsets in ctx.h, BR_CTX_*):
 *   +0 mxcsr, +4 x87 cw, +8 r15, +16 r14, +24 r13, +32 r12, +40 rbx,
 *   +48 rbp, +56 return address (pushed by the call itself).
 *
 * Pitfalls:
 *   - The red zone below rsp belongs to the caller; everything here is
 *     pushed, never written below rsp.
 *   - At a call instruction rsp is 16-byte aligned, so fn's entry sees
 *     rsp = 8 (mod 16). br__ctx_init() places the frame so that after the
 *     final ret into br__ctx_entry, rsp is 16-byte aligned again before
 *     its call.
 *   - Status flags of MXCSR are not callee-saved, but saving the whole
 *     register is what glibc and libaco do and costs the same.
 *   - rax and rdx carry the outgoing control words across the stack
 *     swap; both are caller-saved, so clobbering them is free.
 */
#include "ctx.h"

	.text
	.globl	br__ctx_switch
	.hidden	br__ctx_switch
	.type	br__ctx_switch, @function
	.p2align 4
br__ctx_switch:
	.cfi_startproc
	pushq	%rbp			/* callee-saved GPRs, in frame order */
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset rbp, 0
	pushq	%rbx
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset rbx, 0
	pushq	%r12
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset r12, 0
	pushq	%r13
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset r13, 0
	pushq	%r14
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset r14, 0
	pushq	%r15
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset r15, 0
	subq	$8, %rsp		/* room for mxcsr and the x87 cw */
	.cfi_adjust_cfa_offset 8
	stmxcsr	BR_CTX_MXCSR(%rsp)	/* the one stmxcsr of a switch: it
					 * costs more than everything else
					 * here together */
	fnstcw	BR_CTX_FPUCW(%rsp)
	movl	BR_CTX_MXCSR(%rsp), %eax /* current control words, to skip */
	movzwl	BR_CTX_FPUCW(%rsp), %edx /* reloading them when unchanged */
	movq	%rsp, (%rdi)		/* *save_sp = this frame */
	movq	%rsi, %rsp		/* switch stacks; from here the CFI
					 * describes the resumed frame, which
					 * has the same shape */
	cmpl	BR_CTX_MXCSR(%rsp), %eax /* ldmxcsr and fldcw serialise: */
	je	1f			/* load only what differs */
	ldmxcsr	BR_CTX_MXCSR(%rsp)
1:	cmpw	BR_CTX_FPUCW(%rsp), %dx
	je	2f
	fldcw	BR_CTX_FPUCW(%rsp)
2:	addq	$8, %rsp
	.cfi_adjust_cfa_offset -8
	popq	%r15
	.cfi_adjust_cfa_offset -8
	.cfi_restore r15
	popq	%r14
	.cfi_adjust_cfa_offset -8
	.cfi_restore r14
	popq	%r13
	.cfi_adjust_cfa_offset -8
	.cfi_restore r13
	popq	%r12
	.cfi_adjust_cfa_offset -8
	.cfi_restore r12
	popq	%rbx
	.cfi_adjust_cfa_offset -8
	.cfi_restore rbx
	popq	%rbp
	.cfi_adjust_cfa_offset -8
	.cfi_restore rbp
	ret				/* into the resumed context */
	.cfi_endproc
	.size	br__ctx_switch, .-br__ctx_switch

	.globl	br__ctx_entry
	.hidden	br__ctx_entry
	.type	br__ctx_entry, @function
	.p2align 4
br__ctx_entry:
	.cfi_startproc
	.cfi_undefined rip		/* outermost frame for unwinders */
	xorl	%ebp, %ebp		/* end of the frame-pointer chain */
	movq	%r12, %rdi		/* arg, planted by br__ctx_init */
	callq	*%r13			/* fn(arg); never returns */
	ud2
	.cfi_endproc
	.size	br__ctx_entry, .-br__ctx_entry

	.section .note.GNU-stack,"",@progbits
