/*
 * virtio-fs internals (src/virtio/fs.c, virtiofsd.c).
 */
#ifndef VMM_VIRTIO_FS_H
#define VMM_VIRTIO_FS_H

#include <stdbool.h>

#include "compiler.h"
#include "config.h"

/*
 * Start virtiofsd for --share f: *conn vmm's connected end of its
 * vhost-user socket, *err_fd its stderr (keep it open while it runs).
 * One line on failure; *usage: f cannot be served (no such folder).
 */
int virtiofsd_start(const struct fs_config *f, int *conn, int *err_fd, bool *usage) WUR;

#endif
