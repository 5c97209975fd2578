/* VM exit counters from KVM's binary stats fd (see include/stats.h). */
#include <errno.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "stats.h"
#include "vcpu.h"

/*
 * Sanity bounds on what a stats file may claim, so that a garbage header
 * cannot make us allocate or read without limit. KVM today: names of 48
 * bytes, about 60 vCPU descriptors, a data block of a few KiB.
 */
#define STATS_MAX_NAME	   1024
#define STATS_MAX_DESC	   65536
#define STATS_MAX_DESC_END (16 * MiB)
#define STATS_MAX_SPAN	   (1 * MiB)

/* One vCPU's stats fd and where its counters are. */
struct vcpu_stats {
	int fd;
	struct stats_layout lay;
	uint8_t *buf; /* lay.span_len bytes, read by stats_read */
};

static const struct {
	const char *kvm;  /* KVM's descriptor name */
	const char *abbr; /* in stats_format's line */
} stat_names[STAT_NR] = {
    [STAT_EXITS] = {"exits", "exits"},
    [STAT_IO_EXITS] = {"io_exits", "io"},
    [STAT_MMIO_EXITS] = {"mmio_exits", "mmio"},
    [STAT_HALT_EXITS] = {"halt_exits", "halt"},
    [STAT_IRQ_EXITS] = {"irq_exits", "irq"},
    [STAT_SIGNAL_EXITS] = {"signal_exits", "signal"},
    [STAT_REQUEST_IRQ] = {"request_irq_exits", "request_irq"},
    [STAT_IRQ_WINDOW] = {"irq_window_exits", "irq_window"},
    [STAT_NMI_WINDOW] = {"nmi_window_exits", "nmi_window"},
    [STAT_L1D_FLUSH] = {"l1d_flush", "l1d_flush"},
    [STAT_INSN_EMULATION] = {"insn_emulation", "insn_emulation"},
    [STAT_HYPERCALLS] = {"hypercalls", "hypercalls"},
};

const char *stats_kvm_name(enum vm_exit_stat i)
{
	return (unsigned int)i < STAT_NR ? stat_names[i].kvm : NULL;
}

int stats_desc_end(const void *hdr_buf, size_t hdr_len, size_t *end)
{
	struct kvm_stats_header hdr;
	uint64_t desc_size, e;

	if (hdr_len < sizeof(hdr))
		return -EINVAL;
	memcpy(&hdr, hdr_buf, sizeof(hdr));
	if (hdr.name_size == 0 || hdr.name_size > STATS_MAX_NAME || hdr.num_desc > STATS_MAX_DESC ||
	    hdr.desc_offset < sizeof(hdr) || hdr.data_offset < sizeof(hdr))
		return -EINVAL;
	desc_size = sizeof(struct kvm_stats_desc) + hdr.name_size;
	e = hdr.desc_offset + (uint64_t)hdr.num_desc * desc_size;
	if (e > STATS_MAX_DESC_END)
		return -EINVAL;
	*end = (size_t)e;
	return 0;
}

/* Which of our counters a descriptor name is, or -1. */
static int stat_index(const char *name)
{
	for (int i = 0; i < STAT_NR; i++)
		if (!strcmp(name, stat_names[i].kvm))
			return i;
	return -1;
}

int stats_parse(const void *blob, size_t len, struct stats_layout *lay)
{
	const uint8_t *p = blob;
	struct kvm_stats_header hdr;
	uint64_t abs[STAT_NR], lo = UINT64_MAX, hi = 0;
	size_t end, desc_size;
	int r;

	memset(lay, 0, sizeof(*lay));
	r = stats_desc_end(blob, len, &end);
	if (r)
		return r;
	if (end > len)
		return -EINVAL;
	memcpy(&hdr, blob, sizeof(hdr));
	desc_size = sizeof(struct kvm_stats_desc) + hdr.name_size;

	for (uint32_t d = 0; d < hdr.num_desc; d++) {
		const uint8_t *dp = p + hdr.desc_offset + (size_t)d * desc_size;
		const char *name = (const char *)dp + sizeof(struct kvm_stats_desc);
		struct kvm_stats_desc desc;
		int i;

		/* name_size need not keep descriptors aligned: copy, never cast. */
		memcpy(&desc, dp, sizeof(desc));
		if (memchr(name, '\0', hdr.name_size) == NULL)
			return -EINVAL;
		i = stat_index(name);
		if (i < 0 || (lay->valid & (1u << i)))
			continue; /* not ours, or a duplicate: the first stands */
		/* A plain counter: one value, cumulative. */
		if (desc.size != 1 ||
		    (desc.flags & KVM_STATS_TYPE_MASK) != KVM_STATS_TYPE_CUMULATIVE)
			continue;
		abs[i] = (uint64_t)hdr.data_offset + desc.offset;
		lo = MIN(lo, abs[i]);
		hi = MAX(hi, abs[i] + sizeof(uint64_t));
		lay->valid |= 1u << i;
	}
	if (!lay->valid)
		return 0;
	if (hi - lo > STATS_MAX_SPAN) {
		lay->valid = 0;
		return -EINVAL;
	}
	lay->span_off = lo;
	lay->span_len = (uint32_t)(hi - lo);
	for (int i = 0; i < STAT_NR; i++)
		if (lay->valid & (1u << i))
			lay->off[i] = (uint32_t)(abs[i] - lo);
	return 0;
}

void stats_accumulate(const struct stats_layout *lay, const void *span, struct vm_exit_stats *out)
{
	for (int i = 0; i < STAT_NR; i++) {
		uint64_t v;

		if (!(lay->valid & (1u << i)))
			continue;
		memcpy(&v, (const uint8_t *)span + lay->off[i], sizeof(v));
		out->val[i] += v;
		out->valid |= 1u << i;
	}
}

/* pread exactly len bytes at off: -EIO on a short file. */
static int pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (uint8_t *)buf + done, len - done, (off_t)(off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		done += (size_t)n;
	}
	return 0;
}

static int open_one(int vcpu_fd, struct vcpu_stats *s)
{
	struct kvm_stats_header hdr;
	size_t end;
	void *blob;
	int r;

	s->fd = ioctl(vcpu_fd, KVM_GET_STATS_FD, 0);
	if (s->fd < 0)
		return -errno;
	if ((r = pread_full(s->fd, &hdr, sizeof(hdr), 0)) ||
	    (r = stats_desc_end(&hdr, sizeof(hdr), &end)))
		return r;
	blob = malloc(end);
	if (!blob)
		return -ENOMEM;
	r = pread_full(s->fd, blob, end, 0);
	if (!r)
		r = stats_parse(blob, end, &s->lay);
	free(blob);
	if (r)
		return r;
	s->buf = malloc(MAX(s->lay.span_len, 1u));
	return s->buf ? 0 : -ENOMEM;
}

int stats_open(struct exit_stats *st, int kvm_fd, const struct vcpu_set *vcpus)
{
	int r;

	st->vcpus = vcpus;
	st->per = NULL;
	st->n = 0;
	if (ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_BINARY_STATS_FD) <= 0)
		return 0;
	st->per = calloc(vcpus->n, sizeof(*st->per));
	if (!st->per)
		return -ENOMEM;
	st->n = vcpus->n;
	for (unsigned int i = 0; i < st->n; i++)
		st->per[i].fd = -1;
	for (unsigned int i = 0; i < st->n; i++) {
		r = open_one(vcpus->vcpus[i].fd, &st->per[i]);
		if (r) {
			stats_close(st);
			return r;
		}
	}
	return 0;
}

int stats_read(const struct exit_stats *st, struct vm_exit_stats *out)
{
	memset(out, 0, sizeof(*out));
	/* Written by the running vCPU threads: each is one aligned u64. */
	for (unsigned int i = 0; st->vcpus && i < st->vcpus->n; i++)
		out->userspace += __atomic_load_n(&st->vcpus->vcpus[i].exits, __ATOMIC_RELAXED);
	for (unsigned int i = 0; i < st->n; i++) {
		struct vcpu_stats *s = &st->per[i];
		int r = pread_full(s->fd, s->buf, s->lay.span_len, s->lay.span_off);

		if (r) {
			memset(out->val, 0, sizeof(out->val));
			out->valid = 0;
			return r;
		}
		stats_accumulate(&s->lay, s->buf, out);
	}
	return 0;
}

int stats_format(const struct vm_exit_stats *s, char *buf, size_t len)
{
	size_t pos = 0;
	int n;

	if (len == 0)
		return -ENOSPC;
	buf[0] = '\0';
	for (int i = 0; i < STAT_NR; i++) {
		if (!(s->valid & (1u << i)))
			continue;
		n = snprintf(buf + pos, len - pos, "%s=%llu ", stat_names[i].abbr,
			     (unsigned long long)s->val[i]);
		if (n < 0 || (size_t)n >= len - pos)
			return -ENOSPC;
		pos += (size_t)n;
	}
	n = snprintf(buf + pos, len - pos, "userspace=%llu", (unsigned long long)s->userspace);
	return n < 0 || (size_t)n >= len - pos ? -ENOSPC : 0;
}

void stats_close(struct exit_stats *st)
{
	for (unsigned int i = 0; st->per && i < st->n; i++) {
		if (st->per[i].fd >= 0)
			close(st->per[i].fd);
		free(st->per[i].buf);
	}
	free(st->per);
	st->per = NULL;
	st->n = 0;
}
