/* The board's ordered device list (device.h): walks in order and in reverse. */
#include <errno.h>
#include <string.h>

#include "device.h"
#include "log.h"
#include "state.h"

int device_add(struct device_list *l, const struct device_ops *ops, void *opaque, const char *name)
{
	if (l->n == DEVICE_MAX)
		return -ENOSPC;
	l->devs[l->n++] = (struct device){.ops = ops, .opaque = opaque, .name = name};
	return 0;
}

int device_quiesce_all(struct device_list *l)
{
	for (unsigned int i = 0; i < l->n; i++) {
		struct device *d = &l->devs[i];
		int r = d->ops->quiesce ? d->ops->quiesce(d) : 0;

		if (r) {
			log_warn(d->name, "cannot quiesce: %s", strerror(-r));
			device_resume_all(l);
			return r;
		}
		d->quiesced = true;
	}
	return 0;
}

void device_resume_all(struct device_list *l)
{
	for (unsigned int i = l->n; i-- > 0;) {
		struct device *d = &l->devs[i];

		if (!d->quiesced)
			continue;
		if (d->ops->resume)
			d->ops->resume(d);
		d->quiesced = false;
	}
}

void device_reset_all(struct device_list *l)
{
	for (unsigned int i = 0; i < l->n; i++)
		if (l->devs[i].ops->reset)
			l->devs[i].ops->reset(&l->devs[i]);
}

int device_release_all(struct device_list *l, const char **which)
{
	for (unsigned int i = 0; i < l->n; i++) {
		struct device *d = &l->devs[i];
		int r = d->ops->release ? d->ops->release(d) : 0;

		if (r) {
			*which = d->name;
			return r;
		}
		d->released = true;
	}
	return 0;
}

unsigned int device_reclaim_all(struct device_list *l)
{
	unsigned int failed = 0;

	for (unsigned int i = 0; i < l->n; i++) {
		struct device *d = &l->devs[i];

		if (d->released && d->ops->reclaim && d->ops->reclaim(d))
			failed++;
		d->released = false;
	}
	return failed;
}

void device_destroy_all(struct device_list *l)
{
	for (unsigned int i = l->n; i-- > 0;)
		if (l->devs[i].ops->destroy)
			l->devs[i].ops->destroy(&l->devs[i]);
	l->n = 0;
}

const struct device *device_unsaveable(const struct device_list *l)
{
	for (unsigned int i = 0; i < l->n; i++)
		if (!l->devs[i].ops->save || !l->devs[i].ops->restore)
			return &l->devs[i];
	return NULL;
}

int device_save_all(struct device_list *l, struct state_writer *w, const char **which)
{
	for (unsigned int i = 0; i < l->n; i++) {
		struct device *d = &l->devs[i];
		int r;

		*which = d->name;
		if (!d->ops->save)
			return -EOPNOTSUPP;
		state_begin(w, STATE_SEC_DEVICE, 1, d->name);
		r = d->ops->save(d, w);
		state_end(w);
		if (r || (r = state_writer_error(w)))
			return r;
	}
	*which = NULL;
	return 0;
}

int device_restore_all(struct device_list *l, const struct state_stream *s, const char **which)
{
	unsigned int n = 0;

	for (unsigned int i = 0; i < l->n; i++) {
		struct device *d = &l->devs[i];
		const struct state_section_ref *sec = state_find(s, STATE_SEC_DEVICE, d->name);
		struct state_reader r;
		int err;

		*which = d->name;
		if (!sec)
			return -ENOENT;
		if (!d->ops->restore)
			return -EOPNOTSUPP;
		state_reader_init(&r, sec->payload, sec->len);
		err = d->ops->restore(d, &r);
		if (!err)
			err = state_reader_done(&r);
		if (err)
			return err;
	}
	for (unsigned int i = 0; i < s->n; i++)
		n += s->sec[i].type == STATE_SEC_DEVICE;
	*which = NULL;
	return n == l->n ? 0 : -EEXIST; /* a device the board does not have */
}
