/*
 * The user's files: the kernel, the initrd, the disks and the outputs,
 * checked before any KVM work (so bad input reads the same with or
 * without /dev/kvm), and the kernel and initrd read into guest memory.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "boot.h"
#include "config.h"
#include "inputs.h"
#include "kernel_cache.h"
#include "log.h"
#include "mem.h"
#include "supervise.h"
#include "virtio.h"

/* Open a regular, non-empty input file; one usage line on failure. */
static int open_input(const char *opt, const char *path, int *fd_out, uint64_t *size_out)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		log_err(NULL, "%s: cannot open '%s': %s", opt, path, strerror(errno));
		return -errno;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		log_err(NULL, "%s: '%s' is not a regular file", opt, path);
		close(fd);
		return -EINVAL;
	}
	if (st.st_size == 0) {
		log_err(NULL, "%s: '%s' is empty", opt, path);
		close(fd);
		return -EINVAL;
	}
	*fd_out = fd;
	*size_out = (uint64_t)st.st_size;
	return 0;
}

/* size bytes of fd into dst; one line naming opt and path on failure. */
static int read_all(const char *opt, const char *path, int fd, uint8_t *dst, uint64_t size)
{
	uint64_t done = 0;

	while (done < size) {
		ssize_t n = pread(fd, dst + done, size - done, (off_t)done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			log_err(NULL, "%s: reading '%s': %s", opt, path,
				n < 0 ? strerror(errno) : "the file shrank while it was read");
			return -EIO;
		}
		done += (uint64_t)n;
	}
	return 0;
}

/*
 * The whole of an input file, read (not mapped: a file truncated while vmm
 * starts must give an error, not SIGBUS). *buf is malloc'd.
 */
static int read_input(const char *opt, const char *path, void **buf, uint64_t *size)
{
	uint8_t *p;
	int fd, r = open_input(opt, path, &fd, size);

	if (r)
		return r;
	p = malloc(*size);
	if (!p) {
		log_err(NULL, "%s: '%s' (%llu bytes) does not fit in memory", opt, path,
			(unsigned long long)*size);
		close(fd);
		return -ENOMEM;
	}
	r = read_all(opt, path, fd, p, *size);
	close(fd);
	if (r)
		free(p);
	else
		*buf = p;
	return r;
}

/* What path names: the same inode, or (not there yet) the same place. */
struct file_id {
	bool exists;
	dev_t dev;
	ino_t ino;
	char place[8200]; /* the real directory + "/" + base name */
};

static void file_id(const char *path, struct file_id *id)
{
	char copy[4096], dir[4096], *slash;
	const char *dirpath = copy, *base;
	struct stat st;

	memset(id, 0, sizeof(*id));
	if (stat(path, &st) == 0) {
		id->exists = true;
		id->dev = st.st_dev;
		id->ino = st.st_ino;
		return;
	}
	snprintf(copy, sizeof(copy), "%s", path);
	slash = strrchr(copy, '/');
	if (!slash) {
		dirpath = ".";
		base = copy;
	} else if (slash == copy) {
		dirpath = "/";
		base = copy + 1;
	} else {
		*slash = '\0';
		base = slash + 1;
	}
	if (!realpath(dirpath, dir))
		return;
	snprintf(id->place, sizeof(id->place), "%s/%s", dir, base);
}

static bool same_file(const struct file_id *a, const struct file_id *b)
{
	if (a->exists && b->exists)
		return a->dev == b->dev && a->ino == b->ino;
	return !a->exists && !b->exists && a->place[0] && !strcmp(a->place, b->place);
}

/*
 * An output (--console file:, --result) must not be an input or the other
 * output: the run would destroy the file it reads. Links count as the
 * file they reach.
 */
static int check_outputs(const struct vmm_config *cfg)
{
	struct {
		const char *opt, *path;
	} in[4 + VMM_MAX_DISKS], out[2];
	unsigned int nin = 0, nout = 0;

	if (!cfg->restore_dir && !cfg->incoming)
		in[nin++] = (typeof(in[0])){"--kernel", cfg->kernel};
	if (cfg->initrd && !cfg->restore_dir && !cfg->incoming)
		in[nin++] = (typeof(in[0])){"--initrd", cfg->initrd};
	if (cfg->api_socket)
		in[nin++] = (typeof(in[0])){"--api-socket", cfg->api_socket};
	for (unsigned int i = 0; i < cfg->nr_disks; i++)
		in[nin++] = (typeof(in[0])){"--disk", cfg->disks[i].path};
	if (cfg->console == CONSOLE_FILE)
		out[nout++] = (typeof(out[0])){"--console", cfg->console_path};
	if (cfg->result_path)
		out[nout++] = (typeof(out[0])){"--result", cfg->result_path};
	for (unsigned int o = 0; o < nout; o++) {
		struct file_id oid, iid;

		file_id(out[o].path, &oid);
		for (unsigned int i = 0; i < nin + o; i++) {
			const char *opt = i < nin ? in[i].opt : out[i - nin].opt;
			const char *path = i < nin ? in[i].path : out[i - nin].path;

			file_id(path, &iid);
			if (same_file(&oid, &iid)) {
				log_err(NULL,
					"%s: '%s' is the file of %s '%s': refusing to overwrite it",
					out[o].opt, out[o].path, opt, path);
				return -EINVAL;
			}
		}
	}
	return 0;
}

/* A --disk image: there, a usable image (blk_check_image), accessible. */
static int check_disk(const struct disk_config *dc, struct stat *st)
{
	uint64_t size;
	int r;

	if (stat(dc->path, st) < 0) {
		log_err(NULL, "--disk: cannot open '%s': %s", dc->path, strerror(errno));
		return -errno;
	}
	if ((r = blk_check_image(dc->path, st, &size)))
		return r;
	if (access(dc->path, dc->readonly ? R_OK : R_OK | W_OK) < 0) {
		log_err(NULL, "--disk: cannot open '%s'%s: %s", dc->path,
			dc->readonly ? "" : " for writing", strerror(errno));
		return -errno;
	}
	return 0;
}

int inputs_check(const struct vmm_config *cfg)
{
	struct stat st[VMM_MAX_DISKS];
	struct guest_mem layout;
	struct kernel_info ki;
	char err[256];
	uint64_t size, initrd_gpa;
	void *buf;
	int fd, r;

	/* A restore loads no kernel: guest memory comes from the snapshot. */
	if (cfg->restore_dir || cfg->incoming)
		goto rest;
	/* The kernel against the memory layout, as machine_load() will put it. */
	r = read_input("--kernel", cfg->kernel, &buf, &size);
	if (r)
		return r;
	memset(&layout, 0, sizeof(layout));
	mem_layout(&layout, cfg->mem_bytes);
	r = kernel_check(&layout, buf, size, &ki, err, sizeof(err));
	free(buf);
	if (r) {
		log_err(NULL, "--kernel: '%s': %s", cfg->kernel, err);
		return r;
	}
	if (cfg->initrd) {
		r = open_input("--initrd", cfg->initrd, &fd, &size);
		if (r)
			return r;
		close(fd);
		if (initrd_place(&layout, &ki, size, &initrd_gpa)) {
			log_err(NULL,
				"--initrd: '%s' (%llu MiB) does not fit in guest memory with the "
				"kernel (--mem %llu MiB)",
				cfg->initrd, (unsigned long long)(size >> 20),
				(unsigned long long)(cfg->mem_bytes >> 20));
			return -ENOSPC;
		}
	}
rest:
	r = supervise_check(cfg);
	if (r)
		return r;
	for (unsigned int i = 0; i < cfg->nr_disks; i++) {
		r = check_disk(&cfg->disks[i], &st[i]);
		if (r)
			return r;
		for (unsigned int j = 0; j < i; j++)
			if (st[j].st_dev == st[i].st_dev && st[j].st_ino == st[i].st_ino) {
				log_err(NULL, "--disk: '%s' and '%s' are the same image",
					cfg->disks[j].path, cfg->disks[i].path);
				return -EINVAL;
			}
	}
	return check_outputs(cfg);
}

/* Whether `word` is one of the command line's words. */
static bool cmdline_has(const char *cmdline, const char *word)
{
	size_t n = strlen(word);

	for (const char *p = cmdline; (p = strstr(p, word)); p += n)
		if ((p == cmdline || p[-1] == ' ') && (p[n] == ' ' || !p[n]))
			return true;
	return false;
}

/*
 * The fast path: a bzImage's kernel decompressed on the host (or taken
 * from the cache) and loaded at random physical and virtual bases, as the
 * kernel's own decompressor would have done in the guest. 0 when loaded;
 * otherwise (said at -v) the caller loads the bzImage as it is.
 */
static int load_unpacked(struct guest_mem *mem, const struct vmm_config *cfg, const uint8_t *buf,
			 size_t size, struct kernel_info *ki)
{
	struct vmlinux_place pl = {.limit = mem_low_end(mem),
				   .kaslr = !cmdline_has(cfg->cmdline, "nokaslr")};
	struct kernel_unpacked u;
	struct kernel_info bz;
	uint64_t isize, igpa;
	char err[256];
	int fd, r;

	if (bzimage_parse(buf, size, &bz, err, sizeof(err)) || !bz.hdr.relocatable_kernel)
		return -ENOEXEC;
	if (cfg->initrd && !open_input("--initrd", cfg->initrd, &fd, &isize)) {
		close(fd);
		if (initrd_place(mem, &bz, isize, &igpa) == 0)
			pl.limit = igpa; /* where inputs_load_initrd() will put it */
	}
	if (pl.kaslr && getrandom(pl.rnd, sizeof(pl.rnd), GRND_NONBLOCK) != sizeof(pl.rnd))
		return -EAGAIN; /* the kernel's own decompressor has other sources */
	if ((r = kernel_cache_unpack(buf, size, &bz, cfg->kernel_cache, &u)))
		return r;
	r = vmlinux_boot_load(mem, u.data, u.len, &bz, &pl, ki, err, sizeof(err));
	if (r)
		log_info("boot",
			 "the decompressed kernel cannot be loaded: %s; booting the bzImage", err);
	else
		log_info("boot",
			 "bzImage kernel %s on the host: at 0x%llx (virtual offset 0x%llx), entry "
			 "0x%llx%s",
			 u.hit ? "from the cache, decompressed" : "decompressed",
			 (unsigned long long)ki->load_gpa, (unsigned long long)ki->virt_offset,
			 (unsigned long long)ki->entry_gpa,
			 ki->kaslr ? ", random base" : ", at its link address");
	kernel_cache_release(&u);
	return r;
}

int inputs_load_kernel(struct guest_mem *mem, const struct vmm_config *cfg, struct kernel_info *ki)
{
	const char *path = cfg->kernel;
	char err[256];
	uint64_t size;
	void *buf;
	int r;

	r = read_input("--kernel", path, &buf, &size);
	if (r)
		return r;
	if (load_unpacked(mem, cfg, buf, size, ki) == 0) {
		free(buf);
		return 0;
	}
	r = kernel_load(mem, buf, size, ki, err, sizeof(err));
	free(buf);
	if (r)
		log_err(NULL, "--kernel: '%s': %s", path, err);
	else
		log_info("boot", "%s kernel at 0x%llx, entry 0x%llx",
			 ki->kind == KERNEL_BZIMAGE ? "bzImage" : "ELF",
			 (unsigned long long)ki->load_gpa, (unsigned long long)ki->entry_gpa);
	return r;
}

int inputs_load_initrd(struct guest_mem *mem, const struct kernel_info *ki, const char *path,
		       uint64_t *gpa, uint64_t *size)
{
	uint8_t *dst;
	int fd, r;

	r = open_input("--initrd", path, &fd, size);
	if (r)
		return r;
	if (initrd_place(mem, ki, *size, gpa)) {
		log_err(NULL,
			"--initrd: '%s' (%llu MiB) does not fit in guest memory with the kernel "
			"(--mem %llu MiB)",
			path, (unsigned long long)(*size >> 20),
			(unsigned long long)(mem->ram_bytes >> 20));
		close(fd);
		return -ENOSPC;
	}
	dst = mem_gpa_to_hva(mem, *gpa, *size);
	r = dst ? read_all("--initrd", path, fd, dst, *size) : 0;
	close(fd);
	if (r)
		return r;
	log_info("boot", "initrd at 0x%llx, %llu bytes", (unsigned long long)*gpa,
		 (unsigned long long)*size);
	return dst ? 0 : -EFAULT;
}
