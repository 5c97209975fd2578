/* The board's ordered device list (device.h): walks in order and in reverse. */
#include <errno.h>
#include <string.h>

#include "device.h"
#include "log.h"

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

void device_destroy_all(struct device_list *l)
{
	for (unsigned int i = l->n; i-- > 0;)
		if (l->devs[i].ops->destroy)
			l->devs[i].ops->destroy(&l->devs[i]);
	l->n = 0;
}
