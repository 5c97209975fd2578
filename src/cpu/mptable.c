/*
 * Intel MultiProcessor Specification 1.4 table: how a Linux guest without
 * ACPI learns its CPUs, the IOAPIC and how ISA IRQs are wired.
 */
#include <errno.h>
#include <string.h>

#include "boot.h"

#define MP_LAPIC_ADDR	  0xfee00000u
#define MP_IOAPIC_ADDR	  0xfec00000u
#define MP_APIC_VERSION	  0x14
#define MP_IOAPIC_VERSION 0x11
#define MP_IRQS		  16
#define MP_PCI_SLOTS	  31 /* slots 1-31 of bus 0 */
/* PCI INTA of slot s reaches IOAPIC pin MP_PCI_GSI(s) (virtio-pci's INTx). */
#define MP_PCI_GSI(s)	 (16 + (s) % 8)
#define MP_IRQ_LEVEL_LOW 0x0f /* polarity active low, level triggered */

struct mpf_intel {
	char signature[4]; /* "_MP_" */
	uint32_t physptr;
	uint8_t length; /* in 16-byte units */
	uint8_t specification;
	uint8_t checksum;
	uint8_t feature[5];
} __attribute__((packed));

struct mpc_table {
	char signature[4]; /* "PCMP" */
	uint16_t length;
	uint8_t spec;
	uint8_t checksum;
	char oem[8];
	char productid[12];
	uint32_t oemptr;
	uint16_t oemsize;
	uint16_t oemcount;
	uint32_t lapic;
	uint32_t reserved;
} __attribute__((packed));

struct mpc_cpu {
	uint8_t type, apicid, apicver, cpuflag;
	uint32_t cpufeature, featureflag;
	uint32_t reserved[2];
} __attribute__((packed));

struct mpc_bus {
	uint8_t type, busid;
	char bustype[6];
} __attribute__((packed));

struct mpc_ioapic {
	uint8_t type, apicid, apicver, flags;
	uint32_t apicaddr;
} __attribute__((packed));

struct mpc_intsrc {
	uint8_t type, irqtype;
	uint16_t irqflag;
	uint8_t srcbus, srcbusirq, dstapic, dstirq;
} __attribute__((packed));

enum { MP_PROCESSOR = 0, MP_BUS = 1, MP_IOAPIC = 2, MP_INTSRC = 3, MP_LINTSRC = 4 };
enum { MP_INT = 0, MP_NMI = 1, MP_EXTINT = 3 };
#define CPU_ENABLED	  1
#define CPU_BOOTPROCESSOR 2
/*
 * Linux looks a PCI interrupt up by the PCI bus number as the MP bus ID
 * (IO_APIC_get_PCI_irq_vector): PCI bus 0 must be MP bus 0, so ISA is 1.
 */
#define MP_BUS_PCI 0
#define MP_BUS_ISA 1

static uint8_t checksum(const uint8_t *p, size_t len)
{
	uint8_t sum = 0;

	while (len--)
		sum = (uint8_t)(sum + *p++);
	return (uint8_t)-sum;
}

int mptable_write(const struct guest_mem *mem, unsigned int ncpus, uint32_t cpu_signature,
		  uint32_t cpu_features)
{
	const size_t size = sizeof(struct mpf_intel) + sizeof(struct mpc_table) +
			    ncpus * sizeof(struct mpc_cpu) + 2 * sizeof(struct mpc_bus) +
			    sizeof(struct mpc_ioapic) +
			    (MP_IRQS + MP_PCI_SLOTS + 2) * sizeof(struct mpc_intsrc);
	uint8_t *base = mem_gpa_to_hva(mem, BOOT_MPTABLE_GPA, size);
	const uint8_t ioapic_id = (uint8_t)ncpus; /* after the CPUs' APIC IDs */
	struct mpf_intel *mpf;
	struct mpc_table *mpc;
	uint8_t *p;

	if (!base || ncpus == 0 || ncpus > 254)
		return -EINVAL;
	memset(base, 0, size);
	mpf = (struct mpf_intel *)base;
	mpc = (struct mpc_table *)(mpf + 1);
	p = (uint8_t *)(mpc + 1);

	for (unsigned int i = 0; i < ncpus; i++) {
		struct mpc_cpu c = {
		    .type = MP_PROCESSOR,
		    .apicid = (uint8_t)i,
		    .apicver = MP_APIC_VERSION,
		    .cpuflag = CPU_ENABLED | (i == 0 ? CPU_BOOTPROCESSOR : 0),
		    .cpufeature = cpu_signature,
		    .featureflag = cpu_features,
		};
		memcpy(p, &c, sizeof(c));
		p += sizeof(c);
	}
	{
		struct mpc_bus b = {.type = MP_BUS, .busid = MP_BUS_PCI};

		memcpy(b.bustype, "PCI   ", 6);
		memcpy(p, &b, sizeof(b));
		p += sizeof(b);
		b.busid = MP_BUS_ISA;
		memcpy(b.bustype, "ISA   ", 6);
		memcpy(p, &b, sizeof(b));
		p += sizeof(b);
	}
	{
		struct mpc_ioapic io = {.type = MP_IOAPIC,
					.apicid = ioapic_id,
					.apicver = MP_IOAPIC_VERSION,
					.flags = 1,
					.apicaddr = MP_IOAPIC_ADDR};
		memcpy(p, &io, sizeof(io));
		p += sizeof(io);
	}
	/* ISA IRQ n is IOAPIC pin n: KVM's default GSI routing is 1:1. */
	for (unsigned int irq = 0; irq < MP_IRQS; irq++) {
		struct mpc_intsrc s = {.type = MP_INTSRC,
				       .irqtype = MP_INT,
				       .srcbus = MP_BUS_ISA,
				       .srcbusirq = (uint8_t)irq,
				       .dstapic = ioapic_id,
				       .dstirq = (uint8_t)irq};
		memcpy(p, &s, sizeof(s));
		p += sizeof(s);
	}
	/* PCI INTA of each slot, level-triggered and active low. */
	for (unsigned int slot = 1; slot <= MP_PCI_SLOTS; slot++) {
		struct mpc_intsrc s = {.type = MP_INTSRC,
				       .irqtype = MP_INT,
				       .irqflag = MP_IRQ_LEVEL_LOW,
				       .srcbus = MP_BUS_PCI,
				       .srcbusirq = (uint8_t)(slot << 2),
				       .dstapic = ioapic_id,
				       .dstirq = (uint8_t)MP_PCI_GSI(slot)};
		memcpy(p, &s, sizeof(s));
		p += sizeof(s);
	}
	{
		/* LINT0 is ExtINT (the PIC), LINT1 NMI, on every local APIC. */
		struct mpc_intsrc l0 = {.type = MP_LINTSRC,
					.irqtype = MP_EXTINT,
					.srcbus = MP_BUS_ISA,
					.dstapic = 0xff,
					.dstirq = 0};
		struct mpc_intsrc l1 = {.type = MP_LINTSRC,
					.irqtype = MP_NMI,
					.srcbus = MP_BUS_ISA,
					.dstapic = 0xff,
					.dstirq = 1};
		memcpy(p, &l0, sizeof(l0));
		p += sizeof(l0);
		memcpy(p, &l1, sizeof(l1));
		p += sizeof(l1);
	}

	/* Entry count: CPUs, two buses, the IOAPIC, interrupts, two LINTs. */
	mpc->oemcount = (uint16_t)(ncpus + 2 + 1 + MP_IRQS + MP_PCI_SLOTS + 2);
	memcpy(mpc->signature, "PCMP", 4);
	mpc->length = (uint16_t)(p - (uint8_t *)mpc);
	mpc->spec = 4;
	memcpy(mpc->oem, "VMM     ", 8);
	memcpy(mpc->productid, "VMM         ", 12);
	mpc->lapic = MP_LAPIC_ADDR;
	mpc->checksum = checksum((uint8_t *)mpc, mpc->length);

	memcpy(mpf->signature, "_MP_", 4);
	mpf->physptr = (uint32_t)(BOOT_MPTABLE_GPA + sizeof(*mpf));
	mpf->length = 1;
	mpf->specification = 4;
	mpf->checksum = checksum((uint8_t *)mpf, sizeof(*mpf));
	return 0;
}
