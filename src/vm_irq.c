/*
 * KVM interrupt plumbing for devices: MSI routes, irqfds, ioeventfds.
 * Setting any GSI route replaces KVM's whole table, so the default
 * irqchip routes (GSI 0-15 to the PICs and the IOAPIC, 16-23 to the
 * IOAPIC) are always sent along with the MSI routes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "log.h"
#include "vm.h"

#define PCI_MMIO_WINDOW_END VMM_EXIT_MMIO /* the exit page, then the IOAPIC */
/* Port I/O BARs: above the legacy devices, as firmware puts them. */
#define PCI_IO_WINDOW_START 0xc000ULL
#define PCI_IO_WINDOW_END 0x10000ULL

static unsigned int default_routes(struct kvm_irq_routing_entry *e)
{
	unsigned int n = 0;

	for (unsigned int gsi = 0; gsi < VM_IRQCHIP_GSIS; gsi++) {
		e[n++] = (struct kvm_irq_routing_entry){
			.gsi = gsi, .type = KVM_IRQ_ROUTING_IRQCHIP,
			.u.irqchip = {.irqchip = KVM_IRQCHIP_IOAPIC, .pin = gsi}};
		if (gsi < 16)
			e[n++] = (struct kvm_irq_routing_entry){
				.gsi = gsi, .type = KVM_IRQ_ROUTING_IRQCHIP,
				.u.irqchip = {.irqchip = gsi < 8 ? KVM_IRQCHIP_PIC_MASTER
								 : KVM_IRQCHIP_PIC_SLAVE,
					      .pin = gsi % 8}};
	}
	return n;
}

/* Called with routes_lock held. */
static int commit_routes(struct vm *vm)
{
	const size_t max = VM_IRQCHIP_GSIS * 2 + VM_MAX_MSI_ROUTES;
	struct kvm_irq_routing *t;
	unsigned int n;
	int r = 0;

	t = calloc(1, sizeof(*t) + max * sizeof(t->entries[0]));
	if (!t)
		return -ENOMEM;
	n = default_routes(t->entries);
	for (unsigned int i = 0; i < VM_MAX_MSI_ROUTES; i++)
		if (vm->msi_route_used[i] && vm->msi_routes[i].type == KVM_IRQ_ROUTING_MSI)
			t->entries[n++] = vm->msi_routes[i];
	t->nr = n;
	if (ioctl(vm->vm_fd, KVM_SET_GSI_ROUTING, t) < 0)
		r = -errno;
	free(t);
	return r;
}

int vm_msi_alloc(struct vm *vm)
{
	int gsi = -ENOSPC;

	pthread_mutex_lock(&vm->routes_lock);
	for (unsigned int i = 0; i < VM_MAX_MSI_ROUTES; i++)
		if (!vm->msi_route_used[i]) {
			vm->msi_route_used[i] = true;
			memset(&vm->msi_routes[i], 0, sizeof(vm->msi_routes[i]));
			gsi = (int)(VM_IRQCHIP_GSIS + i);
			break;
		}
	pthread_mutex_unlock(&vm->routes_lock);
	return gsi;
}

int vm_msi_set(struct vm *vm, int gsi, uint64_t addr, uint32_t data)
{
	unsigned int i = (unsigned int)gsi - VM_IRQCHIP_GSIS;
	struct kvm_irq_routing_entry e = {
		.gsi = (uint32_t)gsi, .type = KVM_IRQ_ROUTING_MSI,
		.u.msi = {.address_lo = (uint32_t)addr,
			  .address_hi = (uint32_t)(addr >> 32), .data = data}};
	int r = 0;

	if (gsi < VM_IRQCHIP_GSIS || i >= VM_MAX_MSI_ROUTES)
		return -EINVAL;
	pthread_mutex_lock(&vm->routes_lock);
	/* Rewriting the same message is common (unmask): skip the ioctl. */
	if (memcmp(&vm->msi_routes[i], &e, sizeof(e))) {
		vm->msi_routes[i] = e;
		r = commit_routes(vm);
	}
	pthread_mutex_unlock(&vm->routes_lock);
	return r;
}

int vm_irqfd(struct vm *vm, int efd, int gsi, bool assign)
{
	struct kvm_irqfd irqfd = {.fd = (uint32_t)efd, .gsi = (uint32_t)gsi,
				  .flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN};

	return ioctl(vm->vm_fd, KVM_IRQFD, &irqfd) < 0 ? -errno : 0;
}

int vm_ioeventfd(struct vm *vm, int efd, uint64_t gpa, uint32_t len,
		 bool assign)
{
	struct kvm_ioeventfd io = {.addr = gpa, .len = len, .fd = efd,
				   .flags = assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN};

	return ioctl(vm->vm_fd, KVM_IOEVENTFD, &io) < 0 ? -errno : 0;
}

/* Take len (a power of two) bytes aligned to len from a bump window. */
static int window_alloc(uint64_t *next, uint64_t start, uint64_t end, uint64_t len,
			uint64_t *out)
{
	uint64_t base;

	if (len == 0 || (len & (len - 1)) || len > end - start)
		return -EINVAL;
	if (!*next)
		*next = start;
	base = ALIGN_UP(*next, len);
	if (base > end - len)
		return -ENOSPC;
	*next = base + len;
	*out = base;
	return 0;
}

int vm_pci_mmio_alloc(struct vm *vm, uint64_t len, uint64_t *gpa)
{
	return window_alloc(&vm->pci_mmio_next, MEM_MMIO_HOLE_START, PCI_MMIO_WINDOW_END, len, gpa);
}

int vm_pci_io_alloc(struct vm *vm, uint64_t len, uint64_t *port)
{
	return window_alloc(&vm->pci_io_next, PCI_IO_WINDOW_START, PCI_IO_WINDOW_END, len, port);
}

int vm_alloc_memslot(struct vm *vm)
{
	if (!vm->next_memslot)
		vm->next_memslot = MEM_MAX_REGIONS;
	return vm->next_memslot < VM_MAX_MEMSLOTS ? (int)vm->next_memslot++ : -ENOSPC;
}

int vm_set_memslot(struct vm *vm, int slot, uint64_t gpa, uint64_t size, void *hva)
{
	struct kvm_userspace_memory_region r = {
		.slot = (uint32_t)slot, .guest_phys_addr = gpa, .memory_size = size,
		.userspace_addr = (uint64_t)(uintptr_t)hva};

	return ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0 ? -errno : 0;
}

int vm_irqfd_resample(struct vm *vm, int efd, int resample_fd, int gsi)
{
	struct kvm_irqfd f = {.fd = (uint32_t)efd, .gsi = (uint32_t)gsi,
			      .flags = KVM_IRQFD_FLAG_RESAMPLE, .resamplefd = (uint32_t)resample_fd};

	return ioctl(vm->vm_fd, KVM_IRQFD, &f) < 0 ? -errno : 0;
}
