/*
 * The VM's configuration: the command line is parsed into this struct,
 * then validated as a whole. Nothing here touches KVM.
 */
#ifndef VMM_CONFIG_H
#define VMM_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "compiler.h"

/* Exit statuses of the vmm process (documented in README and --help). */
enum vmm_exit {
	VMM_EXIT_OK = 0,      /* guest reset/rebooted, or --help/--version */
	VMM_EXIT_FAILURE = 1, /* runtime failure: host error or guest crash */
	VMM_EXIT_USAGE = 2,   /* bad command line or bad input file */
	VMM_EXIT_SIGNAL = 128 /* + signal number: stopped by SIGINT/SIGTERM */
};

enum hugepages_mode { HUGEPAGES_AUTO, HUGEPAGES_2M, HUGEPAGES_1G, HUGEPAGES_OFF };
enum console_kind { CONSOLE_STDIO, CONSOLE_FILE, CONSOLE_NONE };

#define VMM_DEFAULT_MEM (512ULL << 20)
#define VMM_MIN_MEM (4ULL << 20)
#define VMM_MAX_MEM (1ULL << 40) /* 1 TiB: well inside 40-bit guest physical */
#define VMM_MAX_CPUS 254	 /* 8-bit APIC IDs in the MP table, 0xff is broadcast */
#define VMM_DEFAULT_CMDLINE "console=ttyS0 reboot=k panic=1 acpi=off i8042.noaux i8042.nomux i8042.nopnp"

struct vmm_config {
	const char *kernel;
	const char *initrd;  /* NULL: none */
	const char *cmdline; /* never NULL after parsing */
	uint64_t mem_bytes;
	unsigned int cpus;
	enum hugepages_mode hugepages;
	enum console_kind console;
	const char *console_path; /* CONSOLE_FILE */
	int verbosity;		  /* 0 normal, -1 quiet, 1.. verbose */
};

/*
 * Parse "512M", "4G", "1048576", "64k" into bytes. Returns 0 or -EINVAL
 * (syntax) / -ERANGE (overflow).
 */
int parse_size(const char *s, uint64_t *out) WUR;

/* Parse an unsigned decimal integer in [min, max]; -EINVAL / -ERANGE. */
int parse_uint(const char *s, unsigned long min, unsigned long max,
	       unsigned long *out) WUR;

/*
 * Parse the arguments that follow "run". On a usage error, writes one
 * line into err (without "vmm: ") and returns -EINVAL. Sets *help when
 * --help was asked for (then nothing else is validated).
 */
int config_parse_run(struct vmm_config *cfg, int argc, char *const argv[],
		     bool *help, char *err, size_t errlen) WUR;

const char *hugepages_name(enum hugepages_mode m);

#endif
