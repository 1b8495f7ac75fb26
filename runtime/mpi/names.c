/* SPDX-License-Identifier: MIT */
/*
 * names.c - naming a job function across ranks: its object and offset.
 *
 * Design
 *   A function pointer means nothing on another node (address space
 *   layout randomisation, other load addresses), but the same binary and
 *   libraries are there: dladdr() gives the object a function lies in and
 *   its load address, and the offset between the two is the same on every
 *   rank. The object is the one whose loaded segments hold the address,
 *   and the offset is taken from its load bias (dl_iterate_phdr's
 *   dlpi_addr), which is 0 for an executable that is not position
 *   independent. The main program is named "" (dl_iterate_phdr lists it
 *   first), since its path may differ from node to node; a library is
 *   named by its path, or failing that by its file name.
 *
 *   A function that is not in any loaded object's code (a JIT, a
 *   trampoline) has no name, and br_submit of it on an MPI pool fails on
 *   the rank that cannot resolve it, with a message naming it.
 *
 * Concurrency
 *   Any thread; no state of its own.
 */
#include <errno.h>
#include <link.h>
#include <stdint.h>
#include <string.h>

#include "wire.h"

struct find {
	const char *name; /* wanted: "" for the main program */
	int by_base;	  /* match the file name only */
	int index;	  /* objects seen so far */
	uintptr_t base;	  /* found */
	int found;
};

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

static int match(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct find *f = arg;
	const char *n = info->dlpi_name ? info->dlpi_name : "";

	if (!*f->name  ? f->index++ == 0 :
	    f->by_base ? *n && !strcmp(base_name(n), base_name(f->name)) :
			 !strcmp(n, f->name)) {
		f->base = (uintptr_t)info->dlpi_addr;
		f->found = 1;
		return 1;
	}
	if (*f->name)
		f->index++;
	return 0;
}

struct owner {
	uintptr_t addr; /* wanted */
	const char *name;
	uintptr_t bias;
	int index, found;
};

/* The object whose loaded segments hold addr: its name ("" for the first
 * one listed, the main program) and its load bias. */
static int owner_of(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct owner *o = arg;

	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t lo = (uintptr_t)info->dlpi_addr + ph->p_vaddr;

		if (ph->p_type == PT_LOAD && o->addr >= lo &&
		    o->addr < lo + ph->p_memsz) {
			o->name = o->index == 0 || !info->dlpi_name ?
					  "" :
					  info->dlpi_name;
			o->bias = (uintptr_t)info->dlpi_addr;
			o->found = 1;
			return 1;
		}
	}
	o->index++;
	return 0;
}

int br__mpi_name_of(const void *fn, const char **name, uint64_t *offset)
{
	struct owner o = { .addr = (uintptr_t)fn };

	dl_iterate_phdr(owner_of, &o);
	if (!o.found)
		return -ENOENT;
	*name = o.name;
	*offset = o.addr - o.bias;
	return 0;
}

void *br__mpi_resolve(const char *name, uint64_t offset)
{
	struct find f = { .name = name };

	dl_iterate_phdr(match, &f);
	if (!f.found && *name) {
		f.by_base = 1;
		dl_iterate_phdr(match, &f);
	}
	if (!f.found)
		return NULL;
	return (void *)(f.base + (uintptr_t)offset);
}
