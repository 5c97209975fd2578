/*
 * The interrupt router (irq.h): MSI routes, irqfds, ioeventfds, irqchip lines.
 * Setting any GSI route replaces KVM's whole table, so the default
 * irqchip routes (GSI 0-15 to the PICs and the IOAPIC, 16-23 to the
 * IOAPIC) are always sent along with the MSI routes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "irq.h"
#include "log.h"

static unsigned int default_routes(struct kvm_irq_routing_entry *e)
{
	unsigned int n = 0;

	for (unsigned int gsi = 0; gsi < IRQ_IRQCHIP_GSIS; gsi++) {
		e[n++] = (struct kvm_irq_routing_entry){
		    .gsi = gsi,
		    .type = KVM_IRQ_ROUTING_IRQCHIP,
		    .u.irqchip = {.irqchip = KVM_IRQCHIP_IOAPIC, .pin = gsi}};
		if (gsi < 16)
			e[n++] = (struct kvm_irq_routing_entry){
			    .gsi = gsi,
			    .type = KVM_IRQ_ROUTING_IRQCHIP,
			    .u.irqchip = {.irqchip = gsi < 8 ? KVM_IRQCHIP_PIC_MASTER
							     : KVM_IRQCHIP_PIC_SLAVE,
					  .pin = gsi % 8}};
	}
	return n;
}

/* Called with r->lock held. */
static int commit_routes(struct irq_router *r)
{
	const size_t max = IRQ_IRQCHIP_GSIS * 2 + IRQ_MAX_MSI_ROUTES;
	struct kvm_irq_routing *t;
	unsigned int n;
	int ret = 0;

	t = calloc(1, sizeof(*t) + max * sizeof(t->entries[0]));
	if (!t)
		return -ENOMEM;
	n = default_routes(t->entries);
	for (unsigned int i = 0; i < IRQ_MAX_MSI_ROUTES; i++)
		if (r->msi_route_used[i] && r->msi_routes[i].type == KVM_IRQ_ROUTING_MSI)
			t->entries[n++] = r->msi_routes[i];
	t->nr = n;
	if (ioctl(r->vm_fd, KVM_SET_GSI_ROUTING, t) < 0)
		ret = -errno;
	free(t);
	return ret;
}

int irq_msi_alloc(struct irq_router *r)
{
	int gsi = -ENOSPC;

	pthread_mutex_lock(&r->lock);
	for (unsigned int i = 0; i < IRQ_MAX_MSI_ROUTES; i++)
		if (!r->msi_route_used[i]) {
			r->msi_route_used[i] = true;
			memset(&r->msi_routes[i], 0, sizeof(r->msi_routes[i]));
			gsi = (int)(IRQ_IRQCHIP_GSIS + i);
			break;
		}
	pthread_mutex_unlock(&r->lock);
	return gsi;
}

int irq_msi_set(struct irq_router *r, int gsi, uint64_t addr, uint32_t data)
{
	unsigned int i = (unsigned int)gsi - IRQ_IRQCHIP_GSIS;
	struct kvm_irq_routing_entry e = {.gsi = (uint32_t)gsi,
					  .type = KVM_IRQ_ROUTING_MSI,
					  .u.msi = {.address_lo = (uint32_t)addr,
						    .address_hi = (uint32_t)(addr >> 32),
						    .data = data}};
	int ret = 0;

	if (gsi < IRQ_IRQCHIP_GSIS || i >= IRQ_MAX_MSI_ROUTES)
		return -EINVAL;
	pthread_mutex_lock(&r->lock);
	/* Rewriting the same message is common (unmask): skip the ioctl. */
	if (memcmp(&r->msi_routes[i], &e, sizeof(e))) {
		r->msi_routes[i] = e;
		ret = commit_routes(r);
	}
	pthread_mutex_unlock(&r->lock);
	return ret;
}

int irq_irqfd(struct irq_router *r, int efd, int gsi, bool assign)
{
	struct kvm_irqfd irqfd = {.fd = (uint32_t)efd,
				  .gsi = (uint32_t)gsi,
				  .flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN};

	return ioctl(r->vm_fd, KVM_IRQFD, &irqfd) < 0 ? -errno : 0;
}

int irq_ioeventfd(struct irq_router *r, int efd, uint64_t gpa, uint32_t len, bool assign)
{
	struct kvm_ioeventfd io = {
	    .addr = gpa, .len = len, .fd = efd, .flags = assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN};

	return ioctl(r->vm_fd, KVM_IOEVENTFD, &io) < 0 ? -errno : 0;
}

int irq_irqfd_resample(struct irq_router *r, int efd, int resample_fd, int gsi)
{
	struct kvm_irqfd f = {.fd = (uint32_t)efd,
			      .gsi = (uint32_t)gsi,
			      .flags = KVM_IRQFD_FLAG_RESAMPLE,
			      .resamplefd = (uint32_t)resample_fd};

	return ioctl(r->vm_fd, KVM_IRQFD, &f) < 0 ? -errno : 0;
}

void irq_router_init(struct irq_router *r, int vm_fd)
{
	memset(r, 0, sizeof(*r));
	r->vm_fd = vm_fd;
	pthread_mutex_init(&r->lock, NULL);
	r->ready = true;
}

void irq_router_destroy(struct irq_router *r)
{
	if (r->ready)
		pthread_mutex_destroy(&r->lock);
	r->ready = false;
}

void irq_set_line(void *opaque, unsigned int gsi, int level)
{
	struct irq_router *r = opaque;
	struct kvm_irq_level irq = {.irq = gsi, .level = (uint32_t)level};

	if (ioctl(r->vm_fd, KVM_IRQ_LINE, &irq) < 0)
		log_ratelimited(LOG_WARN, "vm", "KVM_IRQ_LINE %u: %s", gsi, strerror(errno));
}
