/*
 * VM exit counters from KVM's binary statistics (KVM_GET_STATS_FD on each
 * vCPU fd), summed over the vCPUs, plus vmm's own count of exits to
 * userspace (struct vcpu.exits).
 *
 * The stats file of a vCPU is: a struct kvm_stats_header at offset 0;
 * num_desc descriptors at desc_offset, each sizeof(struct kvm_stats_desc)
 * + name_size bytes (the name is NUL-terminated inside name_size); the
 * data block at data_offset, where descriptor d's values are d.size u64s
 * at data_offset + d.offset. The descriptors never change for an open fd,
 * so they are parsed once (stats_parse) and each read is one pread of the
 * data that holds the wanted counters.
 *
 * Ordering: stats_open() after the vCPUs exist, stats_read() at any time
 * after that (it may run while the vCPUs do), stats_close() before the
 * vCPU fds are closed. Calls are from one thread at a time.
 */
#ifndef VMM_STATS_H
#define VMM_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "compiler.h"

struct vcpu_set;
struct vcpu_stats;

/* The counters, by KVM's x86 names; stats_format prints the short ones. */
enum vm_exit_stat {
	STAT_EXITS,	     /* "exits": every exit from the guest */
	STAT_IO_EXITS,	     /* "io_exits" */
	STAT_MMIO_EXITS,     /* "mmio_exits" */
	STAT_HALT_EXITS,     /* "halt_exits" */
	STAT_IRQ_EXITS,	     /* "irq_exits": external interrupts */
	STAT_SIGNAL_EXITS,   /* "signal_exits" */
	STAT_REQUEST_IRQ,    /* "request_irq_exits" */
	STAT_IRQ_WINDOW,     /* "irq_window_exits" */
	STAT_NMI_WINDOW,     /* "nmi_window_exits" */
	STAT_L1D_FLUSH,	     /* "l1d_flush" */
	STAT_INSN_EMULATION, /* "insn_emulation" */
	STAT_HYPERCALLS,     /* "hypercalls" */
	STAT_NR
};

/* KVM's name of counter i ("exits", "io_exits", ...); NULL when out of range. */
const char *stats_kvm_name(enum vm_exit_stat i);

/* Totals over all vCPUs. */
struct vm_exit_stats {
	uint64_t val[STAT_NR];
	uint32_t valid;	    /* bit i: val[i] came from KVM; others are 0 */
	uint64_t userspace; /* sum of struct vcpu.exits (KVM_RUN returns) */
};

/* The counters of a set of vCPUs: KVM's stats fds (none: per is NULL). */
struct exit_stats {
	const struct vcpu_set *vcpus;
	struct vcpu_stats *per; /* one per vCPU */
	unsigned int n;
};

/* Where the wanted counters sit in one stats file (from stats_parse). */
struct stats_layout {
	uint64_t span_off;     /* file offset of the first wanted counter */
	uint32_t span_len;     /* bytes from there to the end of the last */
	uint32_t off[STAT_NR]; /* counter i at span_off + off[i] */
	uint32_t valid;	       /* bit i: counter i was found */
};

/*
 * Pure, for tests: check the header at the start of blob (len bytes, the
 * stats file from offset 0; at least up to the end of the descriptor
 * block) and find the counters by name. Only single-value counters are
 * taken (size 1); a missing one leaves its valid bit clear. -EINVAL for a
 * short or inconsistent header, a descriptor block past len, or a name
 * without its NUL.
 */
int stats_parse(const void *blob, size_t len, struct stats_layout *lay) WUR;

/*
 * Size of the prefix of the stats file that stats_parse needs, from its
 * header (hdr, hdr_len bytes of it): header and descriptor block. -EINVAL
 * for a header that stats_parse would refuse.
 */
int stats_desc_end(const void *hdr, size_t hdr_len, size_t *end) WUR;

/* Pure: add the counters found in span (lay->span_len bytes read at lay->span_off) to out. */
void stats_accumulate(const struct stats_layout *lay, const void *span, struct vm_exit_stats *out);

/*
 * Open and parse each vCPU's stats fd. 0 when they are open, and 0 too,
 * with stats unavailable, when KVM lacks KVM_CAP_BINARY_STATS_FD; -errno
 * when KVM has it but a vCPU's stats cannot be opened or parsed (stats
 * then stay unavailable: diagnostics, so the caller may carry on).
 */
int stats_open(struct exit_stats *st, int kvm_fd, const struct vcpu_set *vcpus) WUR;

/*
 * Fill out with the totals over all vCPUs. Without KVM stats, valid is 0
 * and only userspace is set. -errno (valid 0, userspace set) when a read
 * fails.
 */
int stats_read(const struct exit_stats *st, struct vm_exit_stats *out) WUR;

/*
 * One line, "exits=123 io=4 mmio=5 halt=6 irq=7 ... userspace=8": the
 * counters that are valid, in enum order, then userspace. -ENOSPC when
 * len is too small (buf holds as much as fitted, NUL-terminated).
 */
int stats_format(const struct vm_exit_stats *s, char *buf, size_t len) WUR;

/* Close the stats fds; safe when stats_open() was never called or failed. */
void stats_close(struct exit_stats *st);

#endif
