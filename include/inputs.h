/*
 * The user's files (src/inputs.c): inputs_check() before any KVM work
 * (the kernel against the memory layout, the initrd's fit, the disks, and
 * no output on top of an input); the loaders once guest memory exists.
 * Each prints one line naming the option and the file on failure.
 */
#ifndef VMM_INPUTS_H
#define VMM_INPUTS_H

#include <stdint.h>

#include "compiler.h"

struct guest_mem;
struct kernel_info;
struct vmm_config;

int inputs_check(const struct vmm_config *cfg) WUR;
/*
 * The kernel into guest memory. A bzImage is decompressed on the host
 * (cached unless cfg->kernel_cache is off) and loaded at a random base
 * unless the command line says nokaslr; when that cannot be done it is
 * loaded as it is and decompresses itself.
 */
int inputs_load_kernel(struct guest_mem *mem, const struct vmm_config *cfg,
		       struct kernel_info *ki) WUR;
int inputs_load_initrd(struct guest_mem *mem, const struct kernel_info *ki, const char *path,
		       uint64_t *gpa, uint64_t *size) WUR;

#endif
