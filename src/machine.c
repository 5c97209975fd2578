/*
 * The board (machine.h): builds the machine from the validated config in
 * a fixed order, and takes it apart in reverse.
 *
 * PCI slots: 0 the host bridge, then the disks, the NICs, the passed
 * through devices, the entropy device, vsock and the shared folders, in that order, one slot each,
 * as the board table below lists them. Adding a device kind is one entry
 * there (at its end: snapshots made before it keep their slots).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "confine.h"
#include "devices/vfio.h"
#include "inputs.h"
#include "log.h"
#include "machine.h"
#include "virtio.h"

static unsigned int nr_disks(const struct vmm_config *cfg)
{
	return cfg->nr_disks;
}

static unsigned int nr_nets(const struct vmm_config *cfg)
{
	return cfg->nr_nets;
}

static unsigned int nr_vfio(const struct vmm_config *cfg)
{
	return cfg->nr_vfio;
}

static unsigned int nr_rng(const struct vmm_config *cfg)
{
	return cfg->rng;
}

static unsigned int nr_vsock(const struct vmm_config *cfg)
{
	return cfg->vsock.on;
}

static unsigned int nr_fs(const struct vmm_config *cfg)
{
	return cfg->nr_fs;
}

static int add_disk(struct machine *m, unsigned int i, unsigned int slot, bool *usage)
{
	return blk_add(&m->svc, &m->devices, &m->cfg->disks[i], i, slot, usage);
}

static int add_net(struct machine *m, unsigned int i, unsigned int slot, bool *usage)
{
	return net_add(&m->svc, &m->devices, &m->cfg->nets[i], i, slot, usage);
}

static int add_vfio(struct machine *m, unsigned int i, unsigned int slot, bool *usage)
{
	return vfio_add(&m->svc, &m->devices, m->cfg->vfio[i], slot, usage);
}

static int add_rng(struct machine *m, unsigned int i, unsigned int slot, bool *usage)
{
	(void)i;
	*usage = false;
	return rng_add(&m->svc, &m->devices, slot);
}

static int add_vsock(struct machine *m, unsigned int i, unsigned int slot, bool *usage)
{
	(void)i;
	return vsock_add(&m->svc, &m->devices, &m->cfg->vsock, slot, usage);
}

static int add_fs(struct machine *m, unsigned int i, unsigned int slot, bool *usage)
{
	return fs_add(&m->svc, &m->devices, &m->cfg->fs[i], i, slot, usage);
}

/* The configured devices, in PCI slot order. */
static const struct {
	unsigned int (*count)(const struct vmm_config *cfg);
	int (*add)(struct machine *m, unsigned int i, unsigned int slot, bool *usage);
} board[] = {
    {nr_disks, add_disk}, {nr_nets, add_net},	 {nr_vfio, add_vfio},
    {nr_rng, add_rng},	  {nr_vsock, add_vsock}, {nr_fs, add_fs},
};

static void reset_cb(void *opaque)
{
	stop_request(opaque, OUTCOME_RESET, VMM_EXIT_OK, "guest reset");
}

int machine_check(const struct vmm_config *cfg)
{
	return inputs_check(cfg);
}

/* The platform: legacy devices on the port bus, the exit device, the PCI host. */
static int add_platform(struct machine *m)
{
	struct irq_line com1 = {irq_set_line, &m->irq, SERIAL_COM1_IRQ};
	struct irq_line kbd = {irq_set_line, &m->irq, I8042_KBD_IRQ};
	int r;

	serial_init(&m->serial, com1, -1);
	if ((r = device_add(&m->devices, &serial_device_ops, &m->serial, "serial")))
		return r;
	i8042_init(&m->i8042, kbd, reset_cb, &m->stop);
	if ((r = device_add(&m->devices, &i8042_device_ops, &m->i8042, "i8042")))
		return r;
	rtc_init(&m->rtc);
	if ((r = device_add(&m->devices, &rtc_device_ops, &m->rtc, "rtc")))
		return r;
	if ((r = serial_attach(&m->serial, &m->pio, SERIAL_COM1_BASE)) ||
	    (r = i8042_attach(&m->i8042, &m->pio)) || (r = rtc_attach(&m->rtc, &m->pio)) ||
	    (r = exit_dev_attach(&m->exit, &m->stop, &m->pio, &m->mmio)) ||
	    (r = device_add(&m->devices, &exit_device_ops, &m->exit, "exit")))
		return r;
	if ((r = pci_init(&m->pci, &m->pio)))
		return r;
	m->pci.mem = &m->mem;
	m->pci.vm_fd = m->vm.vm_fd;
	return device_add(&m->devices, &pci_bus_device_ops, &m->pci, "pci");
}

/* A restore's RAM: from the snapshot's memory file, before KVM maps it. */
static int load_memory(struct machine *m, const char *dir)
{
	char path[4096];
	struct stat st;
	int fd, r;

	snprintf(path, sizeof(path), "%s/memory", dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		r = -errno;
		log_err(NULL, "restore: cannot open '%s': %s", path, strerror(-r));
		if (fd >= 0)
			close(fd);
		return r;
	}
	r = (uint64_t)st.st_size == mem_file_offset(&m->mem, m->mem.nr_regions)
		? mem_load_file(&m->mem, fd)
		: -EINVAL;
	close(fd); /* a private mapping keeps what it needs */
	if (r)
		log_err(NULL, "restore: '%s': %s", path,
			r == -EINVAL ? "not the size the snapshot's memory layout says"
				     : strerror(-r));
	return r;
}

int machine_create(struct machine *m, const struct vmm_config *cfg, struct result_file *result,
		   bool *usage)
{
	return machine_create_mem(m, cfg, result, NULL, usage);
}

int machine_create_mem(struct machine *m, const struct vmm_config *cfg, struct result_file *result,
		       struct guest_mem *ram, bool *usage)
{
	unsigned int slot = 1;
	char err[256];
	int r;

	memset(m, 0, sizeof(*m));
	m->cfg = cfg;
	m->start_ns = now_ns();
	m->vm.kvm_fd = m->vm.vm_fd = m->io.epfd = m->stop.efd = -1;
	m->vcpus.parked_efd = -1;
	console_init(&m->console);
	m->sup.result = result;
	*usage = false;

	if ((r = vm_open(&m->vm, cfg, usage)))
		return r;
	if (ram) { /* a migration's, filled already: the machine owns it now */
		m->mem = *ram;
		memset(ram, 0, sizeof(*ram));
		r = 0;
	} else {
		r = cfg->mem_shared
			? mem_create_shared(&m->mem, cfg->mem_bytes, cfg->hugepages, err,
					    sizeof(err))
			: mem_create(&m->mem, cfg->mem_bytes, cfg->hugepages, err, sizeof(err));
	}
	if (r) {
		log_err(NULL, "%s", err);
		return r;
	}
	if (!ram && cfg->restore_dir && (r = load_memory(m, cfg->restore_dir))) {
		*usage = r == -EINVAL || r == -ENOENT; /* the snapshot's fault */
		return r;
	}
	log_info("mem", "%llu MiB of guest RAM, %s", (unsigned long long)(cfg->mem_bytes >> 20),
		 m->mem.backing);
	if ((r = vm_map_ram(&m->vm, &m->mem)))
		return r;
	if ((r = stop_init(&m->stop)) || (r = io_loop_init(&m->io))) {
		log_err(NULL, "setting up the I/O thread: %s", strerror(-r));
		return r;
	}
	irq_router_init(&m->irq, m->vm.vm_fd);
	if ((r = bus_init(&m->pio, "pio")) || (r = bus_init(&m->mmio, "mmio"))) {
		log_err(NULL, "bus: %s", strerror(-r));
		return r;
	}
	if ((r = add_platform(m))) {
		log_err(NULL, "registering platform devices: %s", strerror(-r));
		return r;
	}
	if ((r = vcpus_create(&m->vcpus, &m->vm, cfg->cpus, &m->pio, &m->mmio, &m->stop,
			      !cfg->no_seccomp, m->start_ns)))
		return r;
	if (cfg->nr_fs) /* a driver's DRIVER_OK or reset talks to the back-end */
		m->vcpus.confine_extra = CONFINE_VHOST;
	/* Exit counters are diagnostics: without them the VM still runs. */
	r = stats_open(&m->stats, m->vm.kvm_fd, &m->vcpus);
	if (r)
		log_info("stats", "KVM's binary stats unavailable: %s", strerror(-r));
	/* Devices after the vCPUs: a disk gets a queue per vCPU by default. */
	m->svc = (struct dev_services){.mem = &m->mem,
				       .pio = &m->pio,
				       .mmio = &m->mmio,
				       .pci = &m->pci,
				       .irq = &m->irq,
				       .io = &m->io,
				       .nr_vcpus = m->vcpus.n,
				       .vm_fd = m->vm.vm_fd};
	for (unsigned int k = 0; k < ARRAY_SIZE(board); k++)
		for (unsigned int i = 0; i < board[k].count(cfg); i++, slot++)
			if ((r = board[k].add(m, i, slot, usage)))
				return r;
	return 0;
}

static void cpu_signature(const struct kvm_cpuid2 *c, uint32_t *sig, uint32_t *features)
{
	*sig = *features = 0;
	for (unsigned int i = 0; i < c->nent; i++)
		if (c->entries[i].function == 1) {
			*sig = c->entries[i].eax;
			*features = c->entries[i].edx;
		}
}

int machine_load(struct machine *m, bool *usage)
{
	const struct vmm_config *cfg = m->cfg;
	uint64_t initrd_gpa = 0, initrd_size = 0;
	uint32_t sig, features;
	int r;

	*usage = true; /* until the user's inputs have all been accepted */
	if ((r = inputs_load_kernel(&m->mem, cfg, &m->kernel)))
		return r;
	if (cfg->initrd &&
	    (r = inputs_load_initrd(&m->mem, &m->kernel, cfg->initrd, &initrd_gpa, &initrd_size)))
		return r;
	r = boot_write_params(&m->mem, &m->kernel, cfg->cmdline, initrd_gpa, initrd_size);
	if (r == -E2BIG) {
		log_err(NULL, "--cmdline: %zu bytes is longer than the kernel accepts (%u)",
			strlen(cfg->cmdline), m->kernel.hdr.cmdline_size);
		return r;
	}
	*usage = false;
	cpu_signature(m->vm.cpuid, &sig, &features);
	if (r || (r = boot_write_pagetables(&m->mem)) || (r = boot_write_gdt(&m->mem)) ||
	    (r = mptable_write(&m->mem, m->vcpus.n, sig, features))) {
		log_err(NULL, "writing boot state into guest memory: %s", strerror(-r));
		return r;
	}
	r = vcpu_setup_boot(&m->vcpus.vcpus[0], m->kernel.entry_gpa, BOOT_ZEROPAGE_GPA);
	if (r) {
		log_err(NULL, "setting up vcpu0 registers: %s", strerror(-r));
		return r;
	}
	return machine_open_host(m, usage);
}

int machine_open_host(struct machine *m, bool *usage)
{
	const struct vmm_config *cfg = m->cfg;
	int r;

	/* Last, so that bad input never leaves a console file behind. */
	r = console_open(&m->console, cfg, &m->serial, &m->stop);
	if (r && cfg->console == CONSOLE_FILE) {
		log_err(NULL, "--console: cannot open '%s': %s", cfg->console_path, strerror(-r));
		*usage = true;
		return r;
	}
	if (r) { /* the host's fault, not the user's */
		log_err(NULL, "console: cannot set up the output buffer: %s", strerror(-r));
		return r;
	}
	console_set_hook(&m->console, supervise_console_byte, &m->sup);
	m->sup.on_snapshot_at = api_snapshot_at;
	m->sup.snapshot_opaque = &m->api;
	if ((r = supervise_init(&m->sup, cfg, &m->stop, &m->io)) ||
	    (r = api_init(&m->api, m, cfg->api_socket))) {
		if (r == -ENOENT || r == -EACCES || r == -EEXIST)
			*usage = true;
		return r;
	}
	return 0;
}

void machine_destroy(struct machine *m)
{
	console_close(&m->console);
	api_destroy(&m->api);
	supervise_destroy(&m->sup);
	/* Devices before guest RAM goes: VFIO unmaps its DMA, disks flush. */
	device_destroy_all(&m->devices);
	stats_close(&m->stats);
	vcpus_destroy(&m->vcpus);
	if (m->pio.ranges || m->mmio.ranges) {
		bus_destroy(&m->pio);
		bus_destroy(&m->mmio);
	}
	irq_router_destroy(&m->irq);
	mem_destroy(&m->mem);
	io_loop_destroy(&m->io);
	stop_destroy(&m->stop);
	vm_close(&m->vm);
}
