/*
 * Snapshots (src/snapshot.c, src/snapshot_config.c, src/restore.c): a
 * machine's state written into a directory, and a new vmm process built
 * from one.
 *
 *   DIR/state   the state stream (state.h): header, then the sections
 *               config (JSON), memory (layout), vm, vcpuN..., one per
 *               device in board order, end
 *   DIR/memory  guest RAM, sparse (mem.h: mem_save_file)
 *
 * Disk images are not copied: the config section records each image's
 * absolute path, size, device, inode and modification time, and a
 * restore refuses an image whose identity changed (--disk-copy names a
 * copy to use instead; only its size is checked).
 *
 * Ordering: snapshot_write() with every vCPU parked and every device
 * quiesced, on the I/O thread; it leaves nothing behind on failure. The
 * state file is written last, after the memory file is on disk: a DIR
 * without one is not a snapshot. "vmm restore" is the sequence below.
 */
#ifndef VMM_SNAPSHOT_H
#define VMM_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "compiler.h"
#include "config.h"

struct machine;
struct state_stream;

struct snapshot_info {
	uint64_t disk_bytes;   /* both files' blocks on disk */
	uint64_t memory_bytes; /* RAM data written (zero pages skipped) */
};

/* The device that stops the VM from being saved, as one phrase, or NULL. */
const char *snapshot_refusal(struct machine *m, char *why, size_t whylen);
/*
 * Write the snapshot into dir (created, or empty). 0, or -errno with why
 * filled and nothing left behind (a directory it created is removed).
 */
int snapshot_write(struct machine *m, const char *dir, struct snapshot_info *info, char *why,
		   size_t whylen) WUR;

/*
 * The streams a migration sends (migrate.h), built the same way: the
 * whole state of the paused, quiesced machine, or only its header,
 * configuration and memory layout (at any time, on the I/O thread).
 */
struct state_writer;
int snapshot_build_state(struct machine *m, struct state_writer *w, char *why, size_t whylen) WUR;
int snapshot_build_hello(struct machine *m, struct state_writer *w, char *why, size_t whylen) WUR;

/* The config section (src/snapshot_config.c). */
int snapshot_disk_identity(const char *path, struct disk_identity *id) WUR;
/* The same from the open image (a jailed VMM may no longer reach the path). */
int snapshot_disk_identity_fd(int fd, struct disk_identity *id) WUR;
/* JSON text (malloc'd) of cfg's machine part; disk_paths: absolute. NULL: no memory. */
char *snapshot_config_dump(const struct vmm_config *cfg, const char *const *disk_paths,
			   const struct disk_identity *ids);
/* Fill cfg's machine part from the section. -errno with why. */
int snapshot_config_load(struct vmm_config *cfg, const void *text, size_t len, char *why,
			 size_t whylen) WUR;
/*
 * Every disk image is there, the same size, and (unless a --disk-copy, or
 * live: a migration, whose source writes it) unchanged.
 */
int snapshot_check_disks(const struct vmm_config *cfg, bool live, char *why, size_t whylen) WUR;

/*
 * vmm restore (src/restore.c), around machine_create():
 * restore_read() the state file of dir into *buf (malloc'd);
 * restore_prepare() checks it whole and fills cfg's machine part from it
 * (disks checked, --disk-copy applied); then machine_create() (guest RAM
 * from the memory file); restore_apply() sets the VM's, the vCPUs' and the
 * devices' state, opens the host side and sets the clock. Each prints one
 * line on failure; *usage (restore_apply) or a failing read/prepare: the
 * snapshot or the user's input is at fault (exit 2).
 */
int restore_read(const char *dir, void **buf, size_t *len) WUR;
int restore_prepare(struct vmm_config *cfg, struct state_stream *s, const void *buf,
		    size_t len) WUR;
/* restore_prepare() without the line: why filled (live: see snapshot_check_disks). */
int restore_check(struct vmm_config *cfg, struct state_stream *s, const void *buf, size_t len,
		  bool live, char *why, size_t whylen) WUR;
int restore_apply(struct machine *m, const struct state_stream *s, bool *usage) WUR;

#endif
