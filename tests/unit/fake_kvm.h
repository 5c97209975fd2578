/*
 * A fake of the KVM plumbing the PCI devices call (the interrupt router
 * and the PCI bus's memory slots), for the unit tests and fuzzers of
 * virtio-pci and VFIO: linked in with -Wl,--wrap (FAKE_KVM_WRAP in the
 * Makefile), every call is recorded in fake_kvm and nothing reaches KVM.
 * The PCI windows and slot numbers are not faked (pci_bus allocates
 * them); neither is the I/O loop (a test uses a real one).
 *
 * The fake checks what any caller must respect (an allocated GSI, an
 * open eventfd, an irqchip pin, a page-aligned memory slot of the bus):
 * a call that does not counts in fake_kvm.broken, the first one's reason
 * in fake_kvm.why, for the test or fuzzer to assert on.
 *
 * Builds with gcc (unit tests, cmocka) and clang (fuzzers, no cmocka).
 */
#ifndef VMM_TESTS_FAKE_KVM_H
#define VMM_TESTS_FAKE_KVM_H

#include <stdbool.h>
#include <stdint.h>

#include "irq.h"

#define FAKE_KVM_GSIS	       64 /* GSIs recorded per GSI, from 0 */
#define FAKE_KVM_IOEVENTFDS    64 /* ioeventfd calls recorded (all counted) */
#define FAKE_KVM_MEMSLOT_CALLS 64 /* memory slot calls recorded (all counted) */

struct pci_bus;

struct fake_kvm {
	/* Calls with another router (when set) or bus (when set) break the rules. */
	const struct irq_router *router;
	const struct pci_bus *pci;

	/* irq_msi_alloc(): IRQ_IRQCHIP_GSIS + msi_allocated++, -ENOSPC past the routes. */
	int msi_allocated;
	/* irq_msi_set(): the last call's, and how many. */
	struct {
		int gsi;
		uint64_t addr;
		uint32_t data;
		unsigned int calls;
	} msi;
	/* irq_msi_set(): each GSI's message now (from 0, as irqfd_efd). */
	struct {
		uint64_t addr;
		uint32_t data;
		bool set;
	} route[FAKE_KVM_GSIS];
	/* irq_irqfd(): each GSI's eventfd and whether it is bound now. */
	int irqfd_efd[FAKE_KVM_GSIS];
	bool irqfd_on[FAKE_KVM_GSIS];
	unsigned int irqfd_calls, irqfd_deassigns;
	/* irq_irqfd_resample(): the last call's. */
	int resample_gsi, resample_efd, resample_fd;
	/* irq_ioeventfd(): each call, in order. */
	struct {
		uint64_t gpa;
		uint32_t len;
		int efd;
		bool assign;
	} ioev[FAKE_KVM_IOEVENTFDS];
	unsigned int nioev;
	/* irq_set_line(): each pin's level, and how many calls. */
	int line[IRQ_IRQCHIP_GSIS];
	unsigned int line_calls;
	/* pci_set_memslot(): each call, in order. */
	struct {
		int slot;
		uint64_t gpa, size;
		void *hva;
	} memslot[FAKE_KVM_MEMSLOT_CALLS];
	unsigned int nmemslot;

	unsigned int broken;
	const char *why;
};

extern struct fake_kvm fake_kvm;

/* Forget every call; then only router and pci (either may be NULL) are accepted. */
void fake_kvm_reset(const struct irq_router *router, const struct pci_bus *pci);
/* For the fuzzers: a broken rule is a crash (libFuzzer keeps the input). */
void fake_kvm_abort_if_broken(void);

#endif
