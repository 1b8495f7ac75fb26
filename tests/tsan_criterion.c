/* SPDX-License-Identifier: MIT */
/*
 * tsan_criterion.c - lets Criterion 2.4 start under ThreadSanitizer.
 *
 * Design
 *   Criterion keeps its shared state in a BoxFort "arena" that it maps
 *   with MAP_FIXED at a random address between 0x200000000000 and
 *   0x600000000000, after checking with mincore() that the pages there are
 *   free. On x86-64 that range is almost all TSan shadow and metadata: the
 *   shadow pages look mapped, so every try fails and Criterion aborts with
 *   "Could not initialize inheritable arena" (or maps over shadow and
 *   crashes). Linked into the tsan test binaries only, this file
 *   interposes mincore() and mmap() so that
 *     - mincore() on an address TSan does not give the application
 *       reports "not mapped", and
 *     - mmap(MAP_FIXED) at such an address is placed instead at the next
 *       free spot of an application range that BoxFort also accepts
 *       (0x566000000000 upwards, above where PIE binaries load), with
 *       MAP_FIXED_NOREPLACE so nothing is ever mapped over.
 *   BoxFort reads the arena's address from mmap()'s return value and
 *   re-maps it in the test process at that same address, so moving it is
 *   invisible to Criterion. Every other call passes straight through to
 *   TSan's own interceptor, __interceptor_mmap.
 *
 *   This file must be compiled without -fsanitize=thread: it runs during
 *   TSan's own start-up, before an instrumented function may be called.
 *
 * Concurrency
 *   Criterion maps its arenas from its main thread before any test runs;
 *   next_base is only touched there.
 */
#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)

void *__interceptor_mmap(void *addr, size_t len, int prot, int flags, int fd,
			 off_t off);

#define APP_PIE_LO 0x550000000000ull  /* TSan's application range for */
#define APP_PIE_HI 0x568000000000ull  /* PIE binaries and their maps */
#define APP_HEAP_LO 0x7b0000000000ull /* TSan's heap begins here */
#define BOXFORT_LO 0x200000000000ull  /* BoxFort's lowest arena base */
#define RELOCATED_BASE 0x566000000000ull
#define STEP (1ull << 24)

static uintptr_t next_base = RELOCATED_BASE;

/* An address BoxFort may pick that TSan keeps for itself. */
static int tsan_reserved(uintptr_t a)
{
	return a >= BOXFORT_LO &&
	       (a < APP_PIE_LO || (a >= APP_PIE_HI && a < APP_HEAP_LO));
}

int mincore(void *addr, size_t len, unsigned char *vec)
{
	if (tsan_reserved((uintptr_t)addr)) {
		errno = ENOMEM;
		return -1;
	}
	return (int)syscall(SYS_mincore, addr, len, vec);
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	if (!(flags & MAP_FIXED) || !tsan_reserved((uintptr_t)addr))
		return __interceptor_mmap(addr, len, prot, flags, fd, off);
	for (int i = 0; i < 64; i++) {
		void *p = __interceptor_mmap(
			(void *)next_base, len, prot,
			(flags & ~MAP_FIXED) | MAP_FIXED_NOREPLACE, fd, off);

		next_base += ((len + STEP - 1) & ~(STEP - 1)) + STEP;
		if (p != MAP_FAILED && next_base < APP_PIE_HI)
			return p;
		if (p != MAP_FAILED)
			munmap(p, len);
	}
	errno = ENOMEM;
	return MAP_FAILED;
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return mmap(addr, len, prot, flags, fd, off);
}

#else
/* Other architectures have other TSan layouts; nothing is moved there. */
typedef int t_tsan_criterion_unused;
#endif
