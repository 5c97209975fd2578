/*
 * Writing a snapshot (snapshot.h): the state stream built in memory from
 * a paused, quiesced machine, then the two files, each fsynced, in a
 * directory that holds nothing else.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "machine.h"
#include "snapshot.h"
#include "state.h"
#include "virtio.h"

const char *snapshot_refusal(struct machine *m, char *why, size_t whylen)
{
	const struct device *d = device_unsaveable(&m->devices);

	if (!d)
		return NULL;
	snprintf(why, whylen, "device %s cannot be saved: %s", d->name,
		 d->ops->unsaveable ? d->ops->unsaveable : "it keeps state vmm cannot read");
	return why;
}

static void cpu_vendor(const struct kvm_cpuid2 *c, char vendor[13])
{
	memset(vendor, 0, 13);
	for (unsigned int i = 0; i < c->nent; i++)
		if (c->entries[i].function == 0) {
			memcpy(vendor, &c->entries[i].ebx, 4);
			memcpy(vendor + 4, &c->entries[i].edx, 4);
			memcpy(vendor + 8, &c->entries[i].ecx, 4);
		}
}

static int put_config(struct machine *m, struct state_writer *w, char *why, size_t whylen)
{
	const struct vmm_config *cfg = m->cfg;
	struct disk_identity ids[VMM_MAX_DISKS];
	const char *paths[VMM_MAX_DISKS];
	char *text;

	for (unsigned int i = 0; i < cfg->nr_disks; i++) {
		int r;

		int fd = blk_image_fd(&m->devices, &cfg->disks[i]);

		paths[i] = cfg->disk_abs[i] ? cfg->disk_abs[i] : cfg->disks[i].path;
		if ((r = fd >= 0 ? snapshot_disk_identity_fd(fd, &ids[i])
				 : snapshot_disk_identity(paths[i], &ids[i]))) {
			snprintf(why, whylen, "vd%c: image '%s': %s", 'a' + i, paths[i],
				 strerror(-r));
			return r;
		}
	}
	text = snapshot_config_dump(cfg, paths, ids);
	if (!text)
		return -ENOMEM;
	state_begin(w, STATE_SEC_CONFIG, 1, "config");
	state_put(w, text, strlen(text));
	state_end(w);
	free(text);
	return 0;
}

static void put_memory_layout(const struct guest_mem *mem, struct state_writer *w)
{
	state_begin(w, STATE_SEC_MEMORY, 1, "memory");
	state_put_u64(w, mem->page_size);
	state_put_u32(w, mem->nr_regions);
	for (unsigned int i = 0; i < mem->nr_regions; i++) {
		state_put_u64(w, mem->regions[i].gpa);
		state_put_u64(w, mem->regions[i].size);
		state_put_u64(w, mem_file_offset(mem, i));
	}
	state_end(w);
}

/*
 * The header, the configuration and the memory layout. running: the vCPUs
 * are in KVM_RUN, whose vCPU lock a vCPU ioctl would wait for (for ever,
 * with a guest halted until an interrupt this thread delivers): the TSC
 * rate is left out (0); the state stream at the end has it.
 */
static int put_machine(struct machine *m, struct state_writer *w, bool running, char *why,
		       size_t whylen)
{
	struct state_header h = {.format = STATE_FORMAT_VERSION, .arch = STATE_ARCH_X86_64};
	int khz = running ? 0 : vcpu_tsc_khz(&m->vcpus.vcpus[0]), r;

	cpu_vendor(m->vm.cpuid, h.vendor);
	h.tsc_khz = khz > 0 ? (uint32_t)khz : 0;
	state_write_header(w, &h);
	if ((r = put_config(m, w, why, whylen)))
		return r;
	put_memory_layout(&m->mem, w);
	state_begin(w, STATE_SEC_CPU, 1, "cpu");
	vm_features_put(m->vm.cpuid, w);
	state_end(w);
	return 0;
}

int snapshot_build_hello(struct machine *m, struct state_writer *w, char *why, size_t whylen)
{
	int r = put_machine(m, w, true, why, whylen);

	if (r)
		return r;
	state_finish(w);
	if ((r = state_writer_error(w)))
		snprintf(why, whylen, "building the state: %s", strerror(-r));
	return r;
}

int snapshot_build_state(struct machine *m, struct state_writer *w, char *why, size_t whylen)
{
	const char *dev = NULL;
	int r;

	if ((r = put_machine(m, w, false, why, whylen)))
		return r;
	state_begin(w, STATE_SEC_VM, 1, "vm");
	r = vm_save(&m->vm, w);
	state_end(w);
	if (r) {
		snprintf(why, whylen, "reading the VM's state from KVM: %s", strerror(-r));
		return r;
	}
	for (unsigned int i = 0; i < m->vcpus.n; i++) {
		char name[16];

		snprintf(name, sizeof(name), "vcpu%u", i);
		state_begin(w, STATE_SEC_VCPU, 1, name);
		r = vcpu_save(&m->vcpus.vcpus[i], &m->vm, w);
		state_end(w);
		if (r) {
			snprintf(why, whylen, "reading vcpu%u's state from KVM: %s", i,
				 strerror(-r));
			return r;
		}
	}
	if ((r = device_save_all(&m->devices, w, &dev))) {
		snprintf(why, whylen, "saving device %s: %s", dev ? dev : "?", strerror(-r));
		return r;
	}
	state_finish(w);
	if ((r = state_writer_error(w)))
		snprintf(why, whylen, "building the state: %s", strerror(-r));
	return r;
}

/* Create dir, or take it when it exists and is empty. *made: it was created. */
static int open_dir(const char *dir, bool *made, char *why, size_t whylen)
{
	struct dirent *e;
	DIR *d;
	int fd;

	*made = mkdir(dir, 0700) == 0;
	if (!*made && errno != EEXIST) {
		snprintf(why, whylen, "cannot create '%s': %s", dir, strerror(errno));
		return -errno;
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, whylen, "cannot open '%s': %s", dir, strerror(errno));
		return -errno;
	}
	if (*made)
		return fd;
	d = fdopendir(dup(fd));
	if (!d) {
		close(fd);
		snprintf(why, whylen, "cannot read '%s': %s", dir, strerror(errno));
		return -errno;
	}
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			closedir(d);
			close(fd);
			snprintf(why, whylen,
				 "'%s' is not empty: a snapshot needs a directory of its own", dir);
			return -EEXIST;
		}
	closedir(d);
	return fd;
}

static int write_file(int dirfd, const char *name, const void *p, size_t len, int *out)
{
	int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	*out = fd;
	if (fd < 0)
		return -errno;
	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p = (const uint8_t *)p + n;
		len -= (size_t)n;
	}
	return 0;
}

static uint64_t blocks_of(int fd)
{
	struct stat st;

	return fd >= 0 && !fstat(fd, &st) ? (uint64_t)st.st_blocks * 512 : 0;
}

int snapshot_write(struct machine *m, const char *dir, struct snapshot_info *info, char *why,
		   size_t whylen)
{
	struct state_writer w;
	int dirfd, memfd = -1, statefd = -1, r;
	bool made, mem_made = false, state_made = false;

	memset(info, 0, sizeof(*info));
	if (snapshot_refusal(m, why, whylen))
		return -EOPNOTSUPP;
	state_writer_init(&w);
	if ((r = snapshot_build_state(m, &w, why, whylen))) {
		state_writer_free(&w);
		return r;
	}
	dirfd = open_dir(dir, &made, why, whylen);
	if (dirfd < 0) {
		state_writer_free(&w);
		return dirfd;
	}
	memfd = openat(dirfd, "memory", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	r = memfd < 0 ? -errno : 0;
	mem_made = !r;
	if (!r && (r = mem_save_file(&m->mem, memfd, &info->memory_bytes)) == 0)
		r = fsync(memfd) < 0 ? -errno : 0;
	if (r) {
		snprintf(why, whylen, "writing '%s/memory': %s", dir, strerror(-r));
	} else {
		r = write_file(dirfd, "state", w.buf, w.len, &statefd);
		state_made = statefd >= 0;
		if (!r && (fsync(statefd) < 0 || fsync(dirfd) < 0))
			r = -errno;
		if (r)
			snprintf(why, whylen, "writing '%s/state': %s", dir, strerror(-r));
	}
	info->disk_bytes = blocks_of(memfd) + blocks_of(statefd);
	if (memfd >= 0)
		close(memfd);
	if (statefd >= 0)
		close(statefd);
	if (r) { /* leave nothing behind */
		if (state_made)
			unlinkat(dirfd, "state", 0);
		if (mem_made)
			unlinkat(dirfd, "memory", 0);
	}
	close(dirfd);
	if (r && made)
		rmdir(dir);
	state_writer_free(&w);
	return r;
}
