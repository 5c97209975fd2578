/* The recorders behind the wrapped KVM plumbing (fake_kvm.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices.h"
#include "fake_kvm.h"
#include "irq.h"
#include "mem.h"

struct fake_kvm fake_kvm;

int __wrap_irq_msi_alloc(struct irq_router *r);
int __wrap_irq_msi_set(struct irq_router *r, int gsi, uint64_t addr, uint32_t data);
int __wrap_irq_irqfd(struct irq_router *r, int efd, int gsi, bool assign);
int __wrap_irq_irqfd_resample(struct irq_router *r, int efd, int resample_fd, int gsi);
int __wrap_irq_ioeventfd(struct irq_router *r, int efd, uint64_t gpa, uint32_t len, bool assign);
void __wrap_irq_set_line(void *opaque, unsigned int gsi, int level);
int __wrap_pci_set_memslot(struct pci_bus *pci, int slot, uint64_t gpa, uint64_t size, void *hva);

void fake_kvm_reset(const struct irq_router *router, const struct pci_bus *pci)
{
	memset(&fake_kvm, 0, sizeof(fake_kvm));
	fake_kvm.router = router;
	fake_kvm.pci = pci;
	fake_kvm.resample_gsi = fake_kvm.resample_efd = fake_kvm.resample_fd = -1;
	for (unsigned int i = 0; i < FAKE_KVM_GSIS; i++)
		fake_kvm.irqfd_efd[i] = -1;
}

void fake_kvm_abort_if_broken(void)
{
	if (!fake_kvm.broken)
		return;
	fprintf(stderr, "fake_kvm: %u calls broke the rules, the first: %s\n", fake_kvm.broken,
		fake_kvm.why);
	abort();
}

/* A rule broken: counted, the first reason kept. */
static void broke(const char *why)
{
	if (!fake_kvm.broken++)
		fake_kvm.why = why;
}

static void check_router(const struct irq_router *r)
{
	if (fake_kvm.router && r != fake_kvm.router)
		broke("a call with another interrupt router");
}

static bool msi_gsi(int gsi)
{
	return gsi >= IRQ_IRQCHIP_GSIS && gsi < IRQ_IRQCHIP_GSIS + fake_kvm.msi_allocated;
}

int __wrap_irq_msi_alloc(struct irq_router *r)
{
	check_router(r);
	if (fake_kvm.msi_allocated == IRQ_MAX_MSI_ROUTES)
		return -ENOSPC;
	return IRQ_IRQCHIP_GSIS + fake_kvm.msi_allocated++;
}

int __wrap_irq_msi_set(struct irq_router *r, int gsi, uint64_t addr, uint32_t data)
{
	check_router(r);
	if (!msi_gsi(gsi))
		broke("irq_msi_set on a GSI never allocated");
	fake_kvm.msi.gsi = gsi;
	fake_kvm.msi.addr = addr;
	fake_kvm.msi.data = data;
	fake_kvm.msi.calls++;
	if (gsi >= 0 && gsi < FAKE_KVM_GSIS) {
		fake_kvm.route[gsi].addr = addr;
		fake_kvm.route[gsi].data = data;
		fake_kvm.route[gsi].set = true;
	}
	return 0;
}

int __wrap_irq_irqfd(struct irq_router *r, int efd, int gsi, bool assign)
{
	check_router(r);
	fake_kvm.irqfd_calls++;
	fake_kvm.irqfd_deassigns += !assign;
	if (efd < 0)
		broke("irq_irqfd without an eventfd");
	if (!msi_gsi(gsi))
		broke("irq_irqfd on a GSI never allocated");
	if (gsi < 0 || gsi >= FAKE_KVM_GSIS)
		return 0;
	if (assign && fake_kvm.irqfd_on[gsi])
		broke("irq_irqfd assigned twice"); /* KVM says EBUSY */
	if (!assign && (!fake_kvm.irqfd_on[gsi] || fake_kvm.irqfd_efd[gsi] != efd))
		broke("irq_irqfd deassigned what was not assigned"); /* ENOENT */
	fake_kvm.irqfd_on[gsi] = assign;
	fake_kvm.irqfd_efd[gsi] = efd;
	return 0;
}

int __wrap_irq_irqfd_resample(struct irq_router *r, int efd, int resample_fd, int gsi)
{
	check_router(r);
	if (efd < 0 || resample_fd < 0)
		broke("irq_irqfd_resample without its eventfds");
	if (gsi < 0 || gsi >= IRQ_IRQCHIP_GSIS)
		broke("irq_irqfd_resample on a GSI that is no irqchip pin");
	fake_kvm.resample_gsi = gsi;
	fake_kvm.resample_efd = efd;
	fake_kvm.resample_fd = resample_fd;
	return 0;
}

int __wrap_irq_ioeventfd(struct irq_router *r, int efd, uint64_t gpa, uint32_t len, bool assign)
{
	unsigned int i = fake_kvm.nioev++;

	check_router(r);
	if (efd < 0)
		broke("irq_ioeventfd without an eventfd");
	if (len != 0 && len != 1 && len != 2 && len != 4 && len != 8)
		broke("irq_ioeventfd of a width KVM does not take");
	if (i < FAKE_KVM_IOEVENTFDS) {
		fake_kvm.ioev[i].gpa = gpa;
		fake_kvm.ioev[i].len = len;
		fake_kvm.ioev[i].efd = efd;
		fake_kvm.ioev[i].assign = assign;
	}
	return 0;
}

void __wrap_irq_set_line(void *opaque, unsigned int gsi, int level)
{
	check_router(opaque);
	fake_kvm.line_calls++;
	if (gsi >= IRQ_IRQCHIP_GSIS || (level != 0 && level != 1)) {
		broke("irq_set_line off the irqchip's pins or levels");
		return;
	}
	fake_kvm.line[gsi] = level;
}

int __wrap_pci_set_memslot(struct pci_bus *pci, int slot, uint64_t gpa, uint64_t size, void *hva)
{
	unsigned int i = fake_kvm.nmemslot++;

	if (fake_kvm.pci && pci != fake_kvm.pci)
		broke("a memory slot of another PCI bus");
	if (slot < MEM_MAX_REGIONS || (unsigned int)slot >= pci->next_memslot)
		broke("a memory slot the bus never allocated");
	if (gpa % 4096 || size % 4096 || !hva)
		broke("a memory slot not of whole pages");
	if (i < FAKE_KVM_MEMSLOT_CALLS) {
		fake_kvm.memslot[i].slot = slot;
		fake_kvm.memslot[i].gpa = gpa;
		fake_kvm.memslot[i].size = size;
		fake_kvm.memslot[i].hva = hva;
	}
	return 0;
}
