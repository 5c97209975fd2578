/* MSI-X: the table, the pending bits and the masking rules (msix.h). */
#include <errno.h>
#include <linux/pci_regs.h>
#include <string.h>

#include "msix.h"
#include "state.h"

_Static_assert(MSIX_PBA_BYTES == sizeof(((struct msix *)0)->pba), "the PBA the guest reads");

void msix_init(struct msix *m, struct pci_device *pdev, uint8_t cap, unsigned int n,
	       const struct msix_ops *ops, void *opaque)
{
	memset(m, 0, sizeof(*m));
	m->pdev = pdev;
	m->cap = cap;
	m->n = n;
	m->ops = ops;
	m->opaque = opaque;
	for (unsigned int v = 0; v < n; v++)
		m->table[v].ctrl = PCI_MSIX_ENTRY_CTRL_MASKBIT;
	/* Off, not masked, n vectors; the guest flips enable and mask only. */
	put_le16(&pdev->cfg[cap + PCI_MSIX_FLAGS], (uint16_t)(n - 1));
	put_le16(&pdev->wmask[cap + PCI_MSIX_FLAGS],
		 PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
	memset(&pdev->wmask[cap + PCI_MSIX_TABLE], 0, MSIX_CAP_LEN - PCI_MSIX_TABLE);
}

bool msix_enabled(const struct msix *m)
{
	return msix_ctrl(m) & PCI_MSIX_FLAGS_ENABLE;
}

bool msix_masked(const struct msix *m, unsigned int v)
{
	return (msix_ctrl(m) & PCI_MSIX_FLAGS_MASKALL) ||
	       (m->table[v].ctrl & PCI_MSIX_ENTRY_CTRL_MASKBIT);
}

void msix_table_access(struct msix *m, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	unsigned int v = (unsigned int)(off / PCI_MSIX_ENTRY_SIZE);
	unsigned int field = (unsigned int)(off % PCI_MSIX_ENTRY_SIZE) / 4;
	uint8_t *p;
	bool was_masked, masked;
	unsigned int what = 0;

	if (off / PCI_MSIX_ENTRY_SIZE >= m->n || (off % 4) + len > 4) {
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	p = (uint8_t *)&m->table[v] + off % PCI_MSIX_ENTRY_SIZE;
	if (!is_write) {
		memcpy(data, p, len);
		return;
	}
	was_masked = msix_masked(m, v);
	memcpy(p, data, len);
	if (field == PCI_MSIX_ENTRY_VECTOR_CTRL / 4)
		m->table[v].ctrl &= PCI_MSIX_ENTRY_CTRL_MASKBIT; /* the rest is reserved */
	else
		what |= MSIX_MESSAGE;
	masked = msix_masked(m, v);
	if (was_masked && !masked)
		what |= MSIX_UNMASKED;
	else if (!was_masked && masked)
		what |= MSIX_MASKED;
	m->ops->vector_changed(m->opaque, v, what);
}

void msix_pba_access(struct msix *m, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	if (is_write)
		return;
	memset(data, 0, len);
	if (off < sizeof(m->pba))
		memcpy(data, (uint8_t *)m->pba + off, MIN((uint64_t)len, sizeof(m->pba) - off));
}

void msix_fire(struct msix *m, unsigned int v)
{
	if (v >= m->n)
		return;
	if (msix_masked(m, v)) {
		m->pba[v / 64] |= 1ULL << (v % 64);
		return;
	}
	m->ops->signal(m->opaque, v);
}

void msix_deliver_pending(struct msix *m)
{
	for (unsigned int v = 0; v < m->n; v++)
		if ((m->pba[v / 64] >> (v % 64)) & 1 && !msix_masked(m, v)) {
			m->pba[v / 64] &= ~(1ULL << (v % 64));
			m->ops->signal(m->opaque, v);
		}
}

#define MSIX_FUNC_BITS (PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL)

void msix_save(const struct msix *m, struct state_writer *w)
{
	state_put_u32(w, m->n);
	state_put_u16(w, msix_ctrl(m) & MSIX_FUNC_BITS);
	for (unsigned int v = 0; v < m->n; v++) {
		state_put_u32(w, m->table[v].addr_lo);
		state_put_u32(w, m->table[v].addr_hi);
		state_put_u32(w, m->table[v].data);
		state_put_u32(w, m->table[v].ctrl);
	}
	for (unsigned int i = 0; i < (m->n + 63) / 64; i++)
		state_put_u64(w, m->pba[i]);
}

int msix_restore(struct msix *m, struct state_reader *r)
{
	struct msix_vector table[MSIX_MAX_VECTORS];
	uint64_t pba[MSIX_MAX_VECTORS / 64] = {0};
	bool was_masked[MSIX_MAX_VECTORS];
	uint32_t n = state_get_u32(r);
	uint16_t func = state_get_u16(r);
	unsigned int words;

	if (r->err)
		return r->err;
	if (n != m->n || (func & ~MSIX_FUNC_BITS)) {
		state_reader_fail(r, -EINVAL);
		return -EINVAL;
	}
	for (unsigned int v = 0; v < n; v++) {
		table[v].addr_lo = state_get_u32(r);
		table[v].addr_hi = state_get_u32(r);
		table[v].data = state_get_u32(r);
		table[v].ctrl = state_get_u32(r);
		if (table[v].ctrl & ~PCI_MSIX_ENTRY_CTRL_MASKBIT)
			state_reader_fail(r, -EINVAL);
	}
	words = (n + 63) / 64;
	for (unsigned int i = 0; i < words; i++)
		pba[i] = state_get_u64(r);
	if (n % 64 && (pba[words - 1] >> (n % 64)))
		state_reader_fail(r, -EINVAL);
	if (r->err)
		return r->err;

	for (unsigned int v = 0; v < n; v++)
		was_masked[v] = msix_masked(m, v);
	put_le16(&m->pdev->cfg[m->cap + PCI_MSIX_FLAGS],
		 (uint16_t)((msix_ctrl(m) & ~MSIX_FUNC_BITS) | func));
	memset(m->pba, 0, sizeof(m->pba));
	for (unsigned int v = 0; v < n; v++) {
		unsigned int what = 0;
		bool masked;

		if (memcmp(&m->table[v], &table[v], 3 * sizeof(uint32_t)))
			what |= MSIX_MESSAGE;
		m->table[v] = table[v];
		masked = msix_masked(m, v);
		if (was_masked[v] && !masked)
			what |= MSIX_UNMASKED;
		else if (!was_masked[v] && masked)
			what |= MSIX_MASKED;
		if (what)
			m->ops->vector_changed(m->opaque, v, what);
	}
	memcpy(m->pba, pba, sizeof(pba));
	return 0;
}
