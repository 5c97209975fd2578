/*
 * A virtqueue's saved state (virtq.h: virtq_save, virtq_restore). The
 * host views of the rings are not saved: a restore finds them again
 * through virtq_enable(), which checks the saved addresses as it checks a
 * driver's.
 */
#include <errno.h>

#include "state.h"
#include "virtq.h"

void virtq_save(const struct virtq *vq, struct state_writer *w)
{
	state_put_u16(w, vq->size);
	state_put_u64(w, vq->desc_gpa);
	state_put_u64(w, vq->avail_gpa);
	state_put_u64(w, vq->used_gpa);
	state_put_bool(w, vq->event_idx);
	state_put_bool(w, vq->indirect);
	state_put_bool(w, vq->ready);
	state_put_bool(w, vq->broken);
	state_put_u16(w, vq->last_avail);
	state_put_u16(w, vq->used_idx);
	state_put_u16(w, vq->signalled_used);
	state_put_bool(w, vq->signalled_valid);
}

static int refuse(struct virtq *vq, struct state_reader *r)
{
	virtq_reset(vq);
	state_reader_fail(r, -EINVAL);
	return -EINVAL;
}

int virtq_restore(struct virtq *vq, struct state_reader *r, const struct guest_mem *mem,
		  uint16_t queue_max)
{
	struct virtq s = {0};
	bool ready, broken;

	s.size = state_get_u16(r);
	s.desc_gpa = state_get_u64(r);
	s.avail_gpa = state_get_u64(r);
	s.used_gpa = state_get_u64(r);
	s.event_idx = state_get_bool(r);
	s.indirect = state_get_bool(r);
	ready = state_get_bool(r);
	broken = state_get_bool(r);
	s.last_avail = state_get_u16(r);
	s.used_idx = state_get_u16(r);
	s.signalled_used = state_get_u16(r);
	s.signalled_valid = state_get_bool(r);
	virtq_reset(vq);
	if (r->err)
		return r->err;

	if (!ready) {
		/* As a reset or a refused enable leaves it: configuration only. */
		if (broken || s.last_avail || s.used_idx || s.signalled_used || s.signalled_valid)
			return refuse(vq, r);
		*vq = s;
		return 0;
	}
	/* Popped and not yet used: never more than the ring holds. */
	if (s.size > queue_max || (uint16_t)(s.last_avail - s.used_idx) > s.size)
		return refuse(vq, r);
	/* Before its first interrupt decision the mark is zero (virtq_enable). */
	if (!s.signalled_valid && s.signalled_used)
		return refuse(vq, r);
	vq->size = s.size;
	vq->desc_gpa = s.desc_gpa;
	vq->avail_gpa = s.avail_gpa;
	vq->used_gpa = s.used_gpa;
	if (virtq_enable(vq, mem))
		return refuse(vq, r);
	vq->event_idx = s.event_idx;
	vq->indirect = s.indirect;
	vq->last_avail = s.last_avail;
	vq->used_idx = s.used_idx;
	vq->signalled_used = s.signalled_used;
	vq->signalled_valid = s.signalled_valid;
	/* kicks on, whatever the saved rings said: the device starts idle */
	vq->kicks_off = true;
	virtq_kicks(vq, true);
	if (broken) {
		/* Its device is in NEEDS_RESET (or goes there at its next pop). */
		vq->broken = true;
		vq->fault = "broken before the snapshot";
	}
	return 0;
}
