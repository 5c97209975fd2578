/*
 * The interrupt router (src/vm_irq.c): KVM's in-kernel interrupt plumbing
 * as devices use it. GSIs 0-23 are the irqchip's pins (struct irq_line
 * drives them through irq_set_line); MSI routes are allocated from GSI 24
 * up and pointed at a message as the guest programs it; an irqfd makes an
 * eventfd inject a GSI inside KVM, an ioeventfd makes a guest write signal
 * an eventfd (a doorbell), so neither passes through userspace.
 *
 * Ordering: irq_router_init() once the KVM VM and its irqchip exist and
 * before any device; every call after it is thread-safe (vCPU threads
 * reprogram MSI routes); irq_router_destroy() after the devices.
 */
#ifndef VMM_IRQ_H
#define VMM_IRQ_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "compiler.h"

#define IRQ_IRQCHIP_GSIS   24
#define IRQ_MAX_MSI_ROUTES 512

struct irq_router {
	int vm_fd;
	pthread_mutex_t lock; /* the routes; taken last (machine.h) */
	struct kvm_irq_routing_entry msi_routes[IRQ_MAX_MSI_ROUTES];
	bool msi_route_used[IRQ_MAX_MSI_ROUTES];
	bool ready; /* irq_router_init() ran */
};

void irq_router_init(struct irq_router *r, int vm_fd);
void irq_router_destroy(struct irq_router *r);
/* Reserve a GSI for an MSI route; -ENOSPC. Starts masked (no route). */
int irq_msi_alloc(struct irq_router *r) WUR;
/* Point gsi at an MSI message (address, data). */
int irq_msi_set(struct irq_router *r, int gsi, uint64_t addr, uint32_t data) WUR;
/* Bind eventfd efd to gsi: a write to efd injects the interrupt in KVM. */
int irq_irqfd(struct irq_router *r, int efd, int gsi, bool assign) WUR;
/*
 * A level-triggered irqfd: a write to efd raises gsi (an IOAPIC pin) until
 * the guest's EOI, which lowers it and signals resample_fd.
 */
int irq_irqfd_resample(struct irq_router *r, int efd, int resample_fd, int gsi) WUR;
/* A guest write of len bytes at MMIO gpa signals efd inside KVM. */
int irq_ioeventfd(struct irq_router *r, int efd, uint64_t gpa, uint32_t len, bool assign) WUR;
/* KVM_IRQ_LINE on an irqchip pin: the set callback of a struct irq_line
 * (opaque: the router). */
void irq_set_line(void *opaque, unsigned int gsi, int level);

#endif
