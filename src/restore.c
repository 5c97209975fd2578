/*
 * vmm restore (snapshot.h): the snapshot read and checked whole before
 * anything is created, then a machine built from its configuration, and
 * every part's state set in the order KVM needs: the VM's interrupt
 * controllers, each vCPU, each device, and the clock last, just before
 * the vCPUs run.
 */
#include <cpuid.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "machine.h"
#include "snapshot.h"
#include "state.h"

#define STATE_FILE_MAX (256u << 20) /* far above any machine's state */

static void host_vendor(char vendor[13])
{
	unsigned int a, b, c, d;

	memset(vendor, 0, 13);
	if (!__get_cpuid(0, &a, &b, &c, &d))
		return;
	memcpy(vendor, &b, 4);
	memcpy(vendor + 4, &d, 4);
	memcpy(vendor + 8, &c, 4);
}

int restore_read(const char *dir, void **buf, size_t *len)
{
	char path[4096];
	struct stat st;
	ssize_t n;
	int fd;

	*buf = NULL;
	snprintf(path, sizeof(path), "%s/state", dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		int r = -errno;
		struct stat ds;

		if (fd >= 0)
			close(fd);
		if (stat(dir, &ds) < 0)
			log_err(NULL, "restore: '%s': %s", dir, strerror(errno));
		else if (r == -ENOENT)
			log_err(NULL, "restore: '%s' is not a snapshot (no state file)", dir);
		else
			log_err(NULL, "restore: cannot read '%s': %s", path, strerror(-r));
		return r;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > STATE_FILE_MAX) {
		close(fd);
		log_err(NULL, "restore: '%s' is not a snapshot's state file", path);
		return -EINVAL;
	}
	*len = (size_t)st.st_size;
	*buf = malloc(*len ? *len : 1);
	n = *buf ? read(fd, *buf, *len) : -1;
	close(fd);
	if (n != (ssize_t)*len) {
		log_err(NULL, "restore: cannot read '%s'", path);
		free(*buf);
		*buf = NULL;
		return -EIO;
	}
	return 0;
}

/* The memory section against the layout this vmm gives the configured RAM. */
static int check_layout(const struct state_stream *s, const struct vmm_config *cfg, char *why,
			size_t whylen)
{
	const struct state_section_ref *sec = state_find(s, STATE_SEC_MEMORY, NULL);
	struct guest_mem layout;
	struct state_reader r;
	uint32_t n;
	bool same;

	if (!sec) {
		snprintf(why, whylen, "no memory section");
		return -EINVAL;
	}
	memset(&layout, 0, sizeof(layout));
	mem_layout(&layout, cfg->mem_bytes);
	state_reader_init(&r, sec->payload, sec->len);
	(void)state_get_u64(&r); /* the page size it ran on: another may be used */
	n = state_get_u32(&r);
	same = n == layout.nr_regions;
	for (unsigned int i = 0; same && i < n; i++)
		same = state_get_u64(&r) == layout.regions[i].gpa &&
		       state_get_u64(&r) == layout.regions[i].size &&
		       state_get_u64(&r) == mem_file_offset(&layout, i);
	if (!same || state_reader_done(&r)) {
		snprintf(why, whylen, "the memory layout is not the one this vmm builds");
		return -EINVAL;
	}
	return 0;
}

int restore_prepare(struct vmm_config *cfg, struct state_stream *s, const void *buf, size_t len)
{
	char why[512];
	int r = restore_check(cfg, s, buf, len, false, why, sizeof(why));

	if (r)
		log_err(NULL, "restore: '%s': %s", cfg->restore_dir, why);
	return r;
}

/*
 * The guest's CPU features against this host's KVM, before anything is
 * made (a stream without the section, from an older vmm, is checked by
 * vm_restore() later).
 */
static int check_features(const struct state_stream *s, char *why, size_t whylen)
{
	const struct state_section_ref *sec = state_find(s, STATE_SEC_CPU, NULL);
	struct kvm_cpuid2 *host;
	struct state_reader r;
	int err;

	if (!sec)
		return 0;
	if ((err = vm_host_cpuid(&host))) {
		snprintf(why, whylen, "reading this host's CPU features from /dev/kvm: %s",
			 strerror(-err));
		return err;
	}
	state_reader_init(&r, sec->payload, sec->len);
	err = vm_features_check(host, &r, why, whylen);
	free(host);
	if (!err && (err = state_reader_done(&r)))
		snprintf(why, whylen, "CPU section: malformed");
	return err;
}

int restore_check(struct vmm_config *cfg, struct state_stream *s, const void *buf, size_t len,
		  bool live, char *why, size_t whylen)
{
	const struct state_section_ref *sec;
	char vendor[13];
	int r;

	if ((r = state_parse(s, buf, len, why, whylen)))
		return r;
	host_vendor(vendor);
	if (s->hdr.arch != STATE_ARCH_X86_64) {
		snprintf(why, whylen, "made on another architecture (ELF machine %u)", s->hdr.arch);
		return -EINVAL;
	}
	if (strcmp(s->hdr.vendor, vendor)) {
		snprintf(why, whylen, "made on a %.12s CPU, this host's is %.12s", s->hdr.vendor,
			 vendor);
		return -EINVAL;
	}
	if ((r = check_features(s, why, whylen)))
		return r;
	sec = state_find(s, STATE_SEC_CONFIG, NULL);
	if (!sec) {
		snprintf(why, whylen, "no configuration section");
		return -EINVAL;
	}
	if ((r = snapshot_config_load(cfg, sec->payload, sec->len, why, whylen)))
		return r;
	for (unsigned int i = 0; i < VMM_MAX_DISKS; i++) {
		if (!cfg->disk_copy[i])
			continue;
		if (i >= cfg->nr_disks) {
			snprintf(why, whylen, "--disk-copy vd%c: the snapshot has %u disk%s",
				 'a' + i, cfg->nr_disks, cfg->nr_disks == 1 ? "" : "s");
			return -EINVAL;
		}
		cfg->disks[i].path = cfg->disk_copy[i];
	}
	if ((r = check_layout(s, cfg, why, whylen)))
		return r;
	return snapshot_check_disks(cfg, live, why, whylen);
}

/* Where the state came from, for messages. */
static const char *state_origin(const struct vmm_config *cfg)
{
	return cfg->restore_dir ? cfg->restore_dir : cfg->incoming ? cfg->incoming : "?";
}

static int restore_vcpus(struct machine *m, const struct state_stream *s, uint32_t tsc_khz,
			 bool *usage)
{
	int khz = vcpu_tsc_khz(&m->vcpus.vcpus[0]);

	/* Within 1 kHz is the same clock measured twice. */
	if (tsc_khz && khz > 0 && (uint32_t)abs(khz - (int)tsc_khz) > 1) {
		if (ioctl(m->vm.kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_CONTROL) <= 0) {
			log_err(NULL,
				"restore: the guest's TSC ran at %u kHz, this host's at %d kHz, "
				"and its KVM cannot scale TSCs",
				tsc_khz, khz);
			*usage = true;
			return -ENOTSUP;
		}
		for (unsigned int i = 0; i < m->vcpus.n; i++)
			if (vcpu_set_tsc_khz(&m->vcpus.vcpus[i], tsc_khz)) {
				log_err(NULL,
					"restore: the guest's TSC ran at %u kHz, this host's KVM "
					"cannot scale its %d kHz to that",
					tsc_khz, khz);
				*usage = true;
				return -ENOTSUP;
			}
	}
	for (unsigned int i = 0; i < m->vcpus.n; i++) {
		char name[16];
		const struct state_section_ref *sec;
		struct state_reader r;
		int err;

		snprintf(name, sizeof(name), "vcpu%u", i);
		sec = state_find(s, STATE_SEC_VCPU, name);
		if (!sec) {
			log_err(NULL, "restore: '%s': no %s section", state_origin(m->cfg), name);
			*usage = true;
			return -EINVAL;
		}
		state_reader_init(&r, sec->payload, sec->len);
		if ((err = vcpu_restore(&m->vcpus.vcpus[i], &m->vm, &r))) {
			*usage = err == -EPROTO || err == -EINVAL;
			log_err(NULL, "restore: %s: %s", name,
				err == -EPROTO ? "another layout version" : strerror(-err));
			return err;
		}
	}
	return 0;
}

int restore_apply(struct machine *m, const struct state_stream *s, bool *usage)
{
	const struct state_section_ref *sec = state_find(s, STATE_SEC_VM, NULL);
	const char *dev = NULL;
	struct vm_clock clock;
	struct state_reader r;
	char why[256];
	int err;

	*usage = true;
	if (!sec) {
		log_err(NULL, "restore: '%s': no VM section", state_origin(m->cfg));
		return -EINVAL;
	}
	state_reader_init(&r, sec->payload, sec->len);
	if ((err = vm_restore(&m->vm, &r, &clock, why, sizeof(why)))) {
		log_err(NULL, "restore: %s", why);
		return err;
	}
	if ((err = restore_vcpus(m, s, s->hdr.tsc_khz, usage)))
		return err;
	if ((err = device_restore_all(&m->devices, s, &dev))) {
		/* A section at fault is the snapshot's; anything else the host's. */
		*usage = err == -ENOENT || err == -EPROTO || err == -EINVAL || err == -EEXIST;
		if (!dev)
			log_err(NULL, "restore: the snapshot has a device this machine lacks");
		else
			log_err(NULL, "restore: device %s: %s", dev,
				err == -ENOENT	 ? "no section for it in the snapshot"
				: err == -EPROTO ? "another layout version"
				: err == -EINVAL ? "its saved state is not valid"
						 : strerror(-err));
		return err;
	}
	*usage = false;
	if ((err = machine_open_host(m, usage)))
		return err;
	if ((err = vm_restore_clock(&m->vm, &clock))) {
		log_err(NULL, "restore: setting the guest's clock: %s", strerror(-err));
		return err;
	}
	return 0;
}
