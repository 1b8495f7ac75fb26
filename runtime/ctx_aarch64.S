/* SPDX-License-Identifier: MIT */
/*
 * ctx_aarch64.S - fiber context switch for AArch64 (AAPCS64, Linux).
 *
 *   void br__ctx_switch(void **save_sp, void *load_sp);   x0, x1
 *   void br__ctx_entry(void);   first code a new fiber runs
 *
 * ABI: Procedure Call Standard for the Arm 64-bit Architecture (AAPCS64),
 * "General-purpose Registers" and "SIMD and Floating-Point Registers".
 * Callee-saved: x19-x28, x29 (frame pointer), sp, and the low 64 bits of
 * v8-v15 (d8-d15). The control fields of FPCR (rounding mode, flush to
 * zero, trap enables) are preserved across calls too, so FPCR is saved.
 * x30 (lr) holds the address the switch returns to. Everything else, the
 * cumulative flags in FPSR included, is dead across a call and not saved.
 *
 * Frame stored on the stack being left (offsets in ctx.h, BR_CTX_*); the
 * saved stack pointer points at +0:
 *   +0   d8   +8   d9   +16  d10  +24  d11
 *   +32  d12  +40  d13  +48  d14  +56  d15
 *   +64  x19  +72  x20  +80  x21  +88  x22  +96  x23
 *   +104 x24  +112 x25  +120 x26  +128 x27  +136 x28
 *   +144 x29  +152 x30 (return address)
 *   +160 fpcr +168 pad
 *   +176 (BR_CTX_FRAME) the caller's stack pointer
 *
 * Pitfalls:
 *   - sp must stay 16-byte aligned whenever it is used as a base register
 *     (SCTLR_EL1.SA0, which Linux sets), so the frame is 176 bytes, not
 *     168, and br__ctx_init() places it at a 16-byte aligned top.
 *   - There is no red zone on AArch64 Linux, but nothing is stored below
 *     sp anyway: sp is lowered first, then the frame is filled.
 *   - Only d8-d15 are callee-saved, not the full q8-q15: the upper halves
 *     are caller-saved, so storing 64 bits is enough.
 *   - FPCR holds the rounding mode, flush-to-zero and trap enables, which
 *     fesetround() and friends change per thread. Without saving it, a
 *     fiber's rounding mode would leak into whatever runs next on the
 *     worker. Writing FPCR can be slow on some cores (it may synchronise
 *     the FP pipeline), so it is written only when it differs.
 *   - br__ctx_entry is reached by ret, not by br or blr, so it needs no
 *     BTI landing pad; both symbols get one anyway when the build asks for
 *     branch protection, together with the GNU property note, so that the
 *     linker keeps BTI enabled for the whole library.
 *   - x18 is the platform register and is not touched.
 */
#include "ctx.h"

#if defined(__ARM_FEATURE_BTI_DEFAULT) && __ARM_FEATURE_BTI_DEFAULT == 1
#define BR_BTI_C hint #34		/* bti c; a nop on cores without BTI */
#define BR_GNU_PROPERTY_BTI 1
#else
#define BR_BTI_C
#define BR_GNU_PROPERTY_BTI 0
#endif
#if defined(__ARM_FEATURE_PAC_DEFAULT) && __ARM_FEATURE_PAC_DEFAULT != 0
#define BR_GNU_PROPERTY_PAC 2	/* nothing here signs lr, so PAC is safe */
#else
#define BR_GNU_PROPERTY_PAC 0
#endif

	.text
	.globl	br__ctx_switch
	.hidden	br__ctx_switch
	.type	br__ctx_switch, %function
	.p2align 4
br__ctx_switch:
	.cfi_startproc
	BR_BTI_C
	sub	sp, sp, #BR_CTX_FRAME		/* room for the frame */
	.cfi_def_cfa_offset BR_CTX_FRAME
	stp	x29, x30, [sp, #BR_CTX_X29]	/* frame pointer, return address */
	.cfi_rel_offset x29, BR_CTX_X29
	.cfi_rel_offset x30, BR_CTX_X30
	stp	x19, x20, [sp, #BR_CTX_X19]	/* callee-saved GPRs */
	stp	x21, x22, [sp, #BR_CTX_X19 + 16]
	stp	x23, x24, [sp, #BR_CTX_X19 + 32]
	stp	x25, x26, [sp, #BR_CTX_X19 + 48]
	stp	x27, x28, [sp, #BR_CTX_X19 + 64]
	stp	d8, d9, [sp, #BR_CTX_D8]	/* callee-saved FP registers */
	stp	d10, d11, [sp, #BR_CTX_D8 + 16]
	stp	d12, d13, [sp, #BR_CTX_D8 + 32]
	stp	d14, d15, [sp, #BR_CTX_D8 + 48]
	mrs	x9, fpcr			/* FP control: rounding, FZ, traps */
	str	x9, [sp, #BR_CTX_FPCR]

	mov	x10, sp				/* *save_sp = this frame */
	str	x10, [x0]
	mov	sp, x1				/* switch stacks */

	/*
	 * From here on sp points at the resumed context's frame, which has
	 * the same shape, so the CFI above describes it too.
	 */
	ldr	x10, [sp, #BR_CTX_FPCR]		/* restore FPCR only if it */
	cmp	x9, x10				/* differs from the one just */
	b.eq	1f				/* saved */
	msr	fpcr, x10
1:
	ldp	d8, d9, [sp, #BR_CTX_D8]	/* FP registers */
	ldp	d10, d11, [sp, #BR_CTX_D8 + 16]
	ldp	d12, d13, [sp, #BR_CTX_D8 + 32]
	ldp	d14, d15, [sp, #BR_CTX_D8 + 48]
	ldp	x19, x20, [sp, #BR_CTX_X19]	/* GPRs */
	ldp	x21, x22, [sp, #BR_CTX_X19 + 16]
	ldp	x23, x24, [sp, #BR_CTX_X19 + 32]
	ldp	x25, x26, [sp, #BR_CTX_X19 + 48]
	ldp	x27, x28, [sp, #BR_CTX_X19 + 64]
	ldp	x29, x30, [sp, #BR_CTX_X29]	/* frame pointer, return address */
	add	sp, sp, #BR_CTX_FRAME		/* pop the frame */
	.cfi_def_cfa_offset 0
	.cfi_restore x29
	.cfi_restore x30
	ret					/* via x30, into the resumed context */
	.cfi_endproc
	.size	br__ctx_switch, .-br__ctx_switch

	.globl	br__ctx_entry
	.hidden	br__ctx_entry
	.type	br__ctx_entry, %function
	.p2align 4
br__ctx_entry:
	.cfi_startproc
	.cfi_undefined x30		/* outermost frame for unwinders */
	BR_BTI_C
	mov	x0, x19			/* arg, planted by br__ctx_init */
	mov	x29, xzr		/* end of the frame-record chain */
	mov	x30, xzr
	blr	x20			/* fn(arg); never returns */
	brk	#0
	.cfi_endproc
	.size	br__ctx_entry, .-br__ctx_entry

#if BR_GNU_PROPERTY_BTI || BR_GNU_PROPERTY_PAC
	/*
	 * GNU_PROPERTY_AARCH64_FEATURE_1_AND note: without it, linking this
	 * object into a BTI or PAC build would drop the marking from the
	 * whole output.
	 */
	.pushsection .note.gnu.property, "a"
	.p2align 3
	.long	4			/* n_namesz: "GNU\0" */
	.long	16			/* n_descsz */
	.long	5			/* NT_GNU_PROPERTY_TYPE_0 */
	.asciz	"GNU"
	.long	0xc0000000		/* GNU_PROPERTY_AARCH64_FEATURE_1_AND */
	.long	4			/* pr_datasz */
	.long	BR_GNU_PROPERTY_BTI | BR_GNU_PROPERTY_PAC
	.long	0			/* pad to 8 bytes */
	.popsection
#endif

	.section .note.GNU-stack,"",@progbits
