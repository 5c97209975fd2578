/* VM lifecycle: KVM setup, memory, devices, boot state, run, teardown. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "stats.h"
#include "virtio.h"
#include "vm.h"

#define KVM_TSS_GPA 0xfffbd000ULL
#define KVM_IDENTITY_MAP_GPA 0xfffbc000ULL

bool vm_request_stop_as(struct vm *vm, enum vmm_outcome outcome, int status,
			const char *fmt, ...)
{
	uint64_t one = 1;
	int expected = 0;
	va_list ap;

	if (!__atomic_compare_exchange_n(&vm->stop_claimed, &expected, 1, false,
					 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		return false; /* the first reason stands */
	vm->exit_status = status;
	vm->outcome = outcome;
	va_start(ap, fmt);
	vsnprintf(vm->exit_reason, sizeof(vm->exit_reason), fmt, ap);
	va_end(ap);
	/* Whoever sees stopping set also sees the status and reason. */
	__atomic_store_n(&vm->stopping, 1, __ATOMIC_RELEASE);
	if (write(vm->stop_efd, &one, sizeof(one)) < 0)
		log_debug("vm", "stop eventfd: %s", strerror(errno));
	return true;
}

void vm_set_irq(void *opaque, unsigned int gsi, int level)
{
	struct vm *vm = opaque;
	struct kvm_irq_level irq = {.irq = gsi, .level = (uint32_t)level};

	if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &irq) < 0)
		log_ratelimited(LOG_WARN, "vm", "KVM_IRQ_LINE %u: %s", gsi,
				strerror(errno));
}

uint64_t vm_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void reset_cb(void *opaque)
{
	vm_request_stop_as(opaque, OUTCOME_RESET, VMM_EXIT_OK, "guest reset");
}

static bool host_has_hw_virt(void)
{
	char line[4096];
	bool found = false;
	FILE *f = fopen("/proc/cpuinfo", "re");

	if (!f)
		return true; /* cannot tell: do not warn */
	while (!found && fgets(line, sizeof(line), f))
		if (!strncmp(line, "flags", 5))
			found = strstr(line, " vmx") || strstr(line, " svm");
	fclose(f);
	return found;
}

static int get_supported_cpuid(struct vm *vm)
{
	for (unsigned int nent = 128; nent <= 4096; nent *= 2) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + nent * sizeof(c->entries[0]));

		if (!c)
			return -ENOMEM;
		c->nent = nent;
		if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
			vm->cpuid = c;
			return 0;
		}
		free(c);
		if (errno != E2BIG)
			return -errno;
	}
	return -E2BIG;
}

static int check_cap(struct vm *vm, long cap, const char *name)
{
	if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, cap) > 0)
		return 0;
	log_err(NULL, "this host's KVM lacks %s", name);
	return -ENOTSUP;
}

#define FAIL_SYS(what)                                                         \
	do {                                                                   \
		r = -errno;                                                    \
		log_err(NULL, "%s: %s", what, strerror(errno));                \
		return r;                                                      \
	} while (0)

int vm_create(struct vm *vm, const struct vmm_config *cfg, bool *usage)
{
	struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
	char err[256];
	int r, max;

	memset(vm, 0, sizeof(*vm));
	vm->cfg = cfg;
	vm->start_ns = vm_now_ns();
	vm->kvm_fd = vm->vm_fd = vm->stop_efd = vm->epfd = -1;
	vm->console_out_fd = vm->console_in_fd = -1;
	vm->cout.fd = vm->cout.efd = vm->cout.retry_fd = -1;
	*usage = false;

	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		r = -errno;
		log_err(NULL, "cannot open /dev/kvm: %s%s", strerror(errno),
			errno == ENOENT ? " (is the kvm module loaded, or is this a VM without nested virtualisation?)"
			: errno == EACCES ? " (run as root or join the kvm group)" : "");
		return r;
	}
	r = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
	if (r != KVM_API_VERSION) {
		log_err(NULL, "/dev/kvm speaks API version %d, vmm needs %d", r,
			KVM_API_VERSION);
		return -ENOTSUP;
	}
	vm->hw_virt = host_has_hw_virt();

	max = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
	if (max <= 0)
		max = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
	vm->max_vcpus = max > 0 ? (unsigned int)max : 4;
	if (cfg->cpus > vm->max_vcpus) {
		log_err(NULL, "--cpus: %u exceeds this host's KVM limit of %u vCPUs",
			cfg->cpus, vm->max_vcpus);
		*usage = true;
		return -EINVAL;
	}
	if ((r = check_cap(vm, KVM_CAP_IRQCHIP, "an in-kernel irqchip")) ||
	    (r = check_cap(vm, KVM_CAP_PIT2, "an in-kernel PIT")) ||
	    (r = check_cap(vm, KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT")) ||
	    (r = check_cap(vm, KVM_CAP_USER_MEMORY, "user memory regions")))
		return r;

	do
		vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	while (vm->vm_fd < 0 && errno == EINTR);
	if (vm->vm_fd < 0)
		FAIL_SYS("KVM_CREATE_VM");
	vm->run_mmap_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (vm->run_mmap_size <= 0)
		FAIL_SYS("KVM_GET_VCPU_MMAP_SIZE");
	/* Intel needs these two pages set aside below 4G; AMD ignores them. */
	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, KVM_TSS_GPA) < 0)
		FAIL_SYS("KVM_SET_TSS_ADDR");
	if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SET_IDENTITY_MAP_ADDR) > 0) {
		uint64_t id_map = KVM_IDENTITY_MAP_GPA;

		if (ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &id_map) < 0)
			FAIL_SYS("KVM_SET_IDENTITY_MAP_ADDR");
	}
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
		FAIL_SYS("KVM_CREATE_IRQCHIP");
	if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
		FAIL_SYS("KVM_CREATE_PIT2");

	r = mem_create(&vm->mem, cfg->mem_bytes, cfg->hugepages, err, sizeof(err));
	if (r) {
		log_err(NULL, "%s", err);
		return r;
	}
	log_info("mem", "%llu MiB of guest RAM, %s",
		 (unsigned long long)(cfg->mem_bytes >> 20), vm->mem.backing);
	for (unsigned int i = 0; i < vm->mem.nr_regions; i++) {
		const struct mem_region *reg = &vm->mem.regions[i];
		struct kvm_userspace_memory_region kr = {
			.slot = i,
			.guest_phys_addr = reg->gpa,
			.memory_size = reg->size,
			.userspace_addr = (uint64_t)(uintptr_t)reg->hva,
		};

		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &kr) < 0)
			FAIL_SYS("KVM_SET_USER_MEMORY_REGION");
	}
	r = get_supported_cpuid(vm);
	if (r) {
		log_err(NULL, "KVM_GET_SUPPORTED_CPUID: %s", strerror(-r));
		return r;
	}
	/*
	 * KVM emulates the TSC-deadline timer but leaves advertising it to
	 * us; without it Linux calibrates the LAPIC timer at every boot.
	 */
	if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_DEADLINE_TIMER) > 0)
		cpuid_set_feature(vm->cpuid, 1, CPUID_REG_ECX, 24);

	vm->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vm->stop_efd < 0)
		FAIL_SYS("eventfd");
	vm->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (vm->epfd < 0)
		FAIL_SYS("epoll_create1");
	pthread_mutex_init(&vm->routes_lock, NULL);
	if ((r = bus_init(&vm->pio, "pio")) || (r = bus_init(&vm->mmio, "mmio"))) {
		log_err(NULL, "bus: %s", strerror(-r));
		return r;
	}
	serial_init(&vm->serial,
		    (struct irq_line){vm_set_irq, vm, SERIAL_COM1_IRQ}, -1);
	i8042_init(&vm->i8042,
		   (struct irq_line){vm_set_irq, vm, I8042_KBD_IRQ}, reset_cb, vm);
	rtc_init(&vm->rtc);
	if ((r = serial_attach(&vm->serial, &vm->pio, SERIAL_COM1_BASE)) ||
	    (r = i8042_attach(&vm->i8042, &vm->pio)) ||
	    (r = rtc_attach(&vm->rtc, &vm->pio)) ||
	    (r = pci_init(&vm->pci, &vm->pio))) {
		log_err(NULL, "registering platform devices: %s", strerror(-r));
		return r;
	}
	vm->pci.mem = &vm->mem;

	vm->vcpus = calloc(cfg->cpus, sizeof(*vm->vcpus));
	if (!vm->vcpus)
		return -ENOMEM;
	vm->nr_vcpus = cfg->cpus;
	for (unsigned int i = 0; i < cfg->cpus; i++) {
		vm->vcpus[i].fd = -1;
		r = vcpu_create(vm, &vm->vcpus[i], i);
		if (r) {
			log_err(NULL, "creating vcpu%u: %s", i, strerror(-r));
			return r;
		}
	}
	/* Exit counters are diagnostics: without them the VM still runs. */
	r = stats_open(vm);
	if (r)
		log_info("stats", "KVM's binary stats unavailable: %s", strerror(-r));
	/* Disks after the vCPUs: each gets a queue per vCPU by default. */
	for (unsigned int i = 0; i < cfg->nr_disks; i++) {
		r = blk_create(vm, &cfg->disks[i], i, 1 + i, usage);
		if (r)
			return r;
	}
	for (unsigned int i = 0; i < cfg->nr_nets; i++) {
		r = net_create(vm, &cfg->nets[i], i, 1 + cfg->nr_disks + i, usage);
		if (r)
			return r;
	}
	for (unsigned int i = 0; i < cfg->nr_vfio; i++) {
		r = vfio_create(vm, cfg->vfio[i], 1 + cfg->nr_disks + cfg->nr_nets + i, usage);
		if (r)
			return r;
	}
	return 0;
}

/* Open a regular, non-empty input file; one usage line on failure. */
static int open_input(const char *opt, const char *path, int *fd_out,
		      uint64_t *size_out)
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

	in[nin++] = (typeof(in[0])){"--kernel", cfg->kernel};
	if (cfg->initrd)
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
				log_err(NULL, "%s: '%s' is the file of %s '%s': refusing to overwrite it",
					out[o].opt, out[o].path, opt, path);
				return -EINVAL;
			}
		}
	}
	return 0;
}

/* A --disk image: there, a regular file, a whole number of sectors. */
static int check_disk(const struct disk_config *dc, struct stat *st)
{
	if (stat(dc->path, st) < 0) {
		log_err(NULL, "--disk: cannot open '%s': %s", dc->path, strerror(errno));
		return -errno;
	}
	if (!S_ISREG(st->st_mode)) {
		log_err(NULL, "--disk: '%s' is not a regular file", dc->path);
		return -EINVAL;
	}
	if (st->st_size == 0 || st->st_size % 512) {
		log_err(NULL, "--disk: '%s' is %lld bytes: %s", dc->path, (long long)st->st_size,
			st->st_size ? "not a multiple of 512" : "an empty image");
		return -EINVAL;
	}
	if (access(dc->path, dc->readonly ? R_OK : R_OK | W_OK) < 0) {
		log_err(NULL, "--disk: cannot open '%s'%s: %s", dc->path,
			dc->readonly ? "" : " for writing", strerror(errno));
		return -errno;
	}
	return 0;
}

int vm_check_inputs(const struct vmm_config *cfg)
{
	struct stat st[VMM_MAX_DISKS];
	struct guest_mem layout;
	struct kernel_info ki;
	char err[256];
	uint64_t size, initrd_gpa;
	void *buf;
	int fd, r;

	/* The kernel against the memory layout, as vm_load() will put it. */
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
			log_err(NULL, "--initrd: '%s' (%llu MiB) does not fit in guest memory with the kernel (--mem %llu MiB)",
				cfg->initrd, (unsigned long long)(size >> 20),
				(unsigned long long)(cfg->mem_bytes >> 20));
			return -ENOSPC;
		}
	}
	r = supervise_check(cfg);
	if (r)
		return r;
	for (unsigned int i = 0; i < cfg->nr_disks; i++) {
		r = check_disk(&cfg->disks[i], &st[i]);
		if (r)
			return r;
		for (unsigned int j = 0; j < i; j++)
			if (st[j].st_dev == st[i].st_dev && st[j].st_ino == st[i].st_ino) {
				log_err(NULL, "--disk: '%s' and '%s' are the same image", cfg->disks[j].path,
					cfg->disks[i].path);
				return -EINVAL;
			}
	}
	return check_outputs(cfg);
}

static int load_kernel(struct vm *vm)
{
	const char *path = vm->cfg->kernel;
	char err[256];
	uint64_t size;
	void *buf;
	int r;

	r = read_input("--kernel", path, &buf, &size);
	if (r)
		return r;
	r = kernel_load(&vm->mem, buf, size, &vm->kernel, err, sizeof(err));
	free(buf);
	if (r)
		log_err(NULL, "--kernel: '%s': %s", path, err);
	else
		log_info("boot", "%s kernel at 0x%llx, entry 0x%llx",
			 vm->kernel.kind == KERNEL_BZIMAGE ? "bzImage" : "ELF",
			 (unsigned long long)vm->kernel.load_gpa,
			 (unsigned long long)vm->kernel.entry_gpa);
	return r;
}

static int load_initrd(struct vm *vm, uint64_t *gpa, uint64_t *size)
{
	const char *path = vm->cfg->initrd;
	uint8_t *dst;
	int fd, r;

	r = open_input("--initrd", path, &fd, size);
	if (r)
		return r;
	if (initrd_place(&vm->mem, &vm->kernel, *size, gpa)) {
		log_err(NULL, "--initrd: '%s' (%llu MiB) does not fit in guest memory with the kernel (--mem %llu MiB)",
			path, (unsigned long long)(*size >> 20),
			(unsigned long long)(vm->cfg->mem_bytes >> 20));
		close(fd);
		return -ENOSPC;
	}
	dst = mem_gpa_to_hva(&vm->mem, *gpa, *size);
	r = dst ? read_all("--initrd", path, fd, dst, *size) : 0;
	close(fd);
	if (r)
		return r;
	log_info("boot", "initrd at 0x%llx, %llu bytes", (unsigned long long)*gpa,
		 (unsigned long long)*size);
	return dst ? 0 : -EFAULT;
}

static void cpu_signature(const struct kvm_cpuid2 *c, uint32_t *sig,
			  uint32_t *features)
{
	*sig = *features = 0;
	for (unsigned int i = 0; i < c->nent; i++)
		if (c->entries[i].function == 1) {
			*sig = c->entries[i].eax;
			*features = c->entries[i].edx;
		}
}

int vm_load(struct vm *vm, bool *usage)
{
	uint64_t initrd_gpa = 0, initrd_size = 0;
	uint32_t sig, features;
	int r;

	*usage = true; /* until the user's inputs have all been accepted */
	r = load_kernel(vm);
	if (r)
		return r;
	if (vm->cfg->initrd) {
		r = load_initrd(vm, &initrd_gpa, &initrd_size);
		if (r)
			return r;
	}
	r = boot_write_params(&vm->mem, &vm->kernel, vm->cfg->cmdline,
			      initrd_gpa, initrd_size);
	if (r == -E2BIG) {
		log_err(NULL, "--cmdline: %zu bytes is longer than the kernel accepts (%u)",
			strlen(vm->cfg->cmdline), vm->kernel.hdr.cmdline_size);
		return r;
	}
	*usage = false;
	cpu_signature(vm->cpuid, &sig, &features);
	if (r || (r = boot_write_pagetables(&vm->mem)) ||
	    (r = boot_write_gdt(&vm->mem)) ||
	    (r = mptable_write(&vm->mem, vm->nr_vcpus, sig, features))) {
		log_err(NULL, "writing boot state into guest memory: %s",
			strerror(-r));
		return r;
	}
	r = vcpu_setup_boot(&vm->vcpus[0], vm->kernel.entry_gpa, BOOT_ZEROPAGE_GPA);
	if (r) {
		log_err(NULL, "setting up vcpu0 registers: %s", strerror(-r));
		return r;
	}
	/* Last, so that bad input never leaves a console file behind. */
	r = console_open(vm);
	if (r && vm->cfg->console == CONSOLE_FILE) {
		log_err(NULL, "--console: cannot open '%s': %s",
			vm->cfg->console_path, strerror(-r));
		*usage = true;
		return r;
	}
	if (r) { /* the host's fault, not the user's */
		log_err(NULL, "console: cannot set up the output buffer: %s", strerror(-r));
		return r;
	}
	/* A pipe or a terminal gets the bytes through console_tx_byte's buffer. */
	vm->serial.out_fd = vm->cout.ready ? -1 : vm->console_out_fd;
	vm->serial.tx_hook = console_tx_byte;
	vm->serial.tx_opaque = vm;
	r = supervise_init(vm);
	if (r == -ENOENT || r == -EACCES || r == -EEXIST)
		*usage = true;
	return r;
}

void vm_destroy(struct vm *vm)
{
	console_close(vm);
	supervise_destroy(vm);
	for (unsigned int i = 0; i < vm->nr_disks; i++)
		blk_destroy(vm->disks[i]);
	vm->nr_disks = 0;
	for (unsigned int i = 0; i < vm->nr_nets; i++)
		net_destroy(vm->nets[i]);
	vm->nr_nets = 0;
	vfio_destroy_all(vm); /* before guest RAM goes: it unmaps its DMA */
	stats_close(vm);
	for (unsigned int i = 0; vm->vcpus && i < vm->nr_vcpus; i++)
		vcpu_destroy(&vm->vcpus[i]);
	free(vm->vcpus);
	vm->vcpus = NULL;
	free(vm->cpuid);
	vm->cpuid = NULL;
	if (vm->pio.ranges || vm->mmio.ranges) {
		bus_destroy(&vm->pio);
		bus_destroy(&vm->mmio);
	}
	mem_destroy(&vm->mem);
	if (vm->stop_efd >= 0)
		close(vm->stop_efd);
	if (vm->epfd >= 0)
		close(vm->epfd);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	vm->stop_efd = vm->vm_fd = vm->kvm_fd = vm->epfd = -1;
}
