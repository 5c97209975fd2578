/*
 * The VM's configuration: the command line is parsed into this struct,
 * then validated as a whole. Nothing here touches KVM.
 */
#ifndef VMM_CONFIG_H
#define VMM_CONFIG_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "compiler.h"

#define VMM_VERSION "0.1.0"

/* Exit statuses of the vmm process (documented in README and --help). */
enum vmm_exit {
	VMM_EXIT_OK = 0,      /* guest reset/rebooted, or --help/--version */
	VMM_EXIT_FAILURE = 1, /* runtime failure: host error or guest crash */
	VMM_EXIT_USAGE = 2,   /* bad command line or bad input file */
	VMM_EXIT_SIGNAL = 128 /* + signal number: stopped by SIGINT/SIGTERM */
};

enum hugepages_mode { HUGEPAGES_AUTO, HUGEPAGES_2M, HUGEPAGES_1G, HUGEPAGES_OFF };
enum console_kind { CONSOLE_STDIO, CONSOLE_FILE, CONSOLE_NONE };

#define VMM_DEFAULT_MEM (512ULL << 20)
#define VMM_MIN_MEM	(4ULL << 20)
#define VMM_MAX_MEM	(1ULL << 40) /* 1 TiB: well inside 40-bit guest physical */
#define VMM_MAX_CPUS	254	     /* 8-bit APIC IDs in the MP table, 0xff is broadcast */
#define VMM_DEFAULT_CMDLINE                                                                        \
	"console=ttyS0 reboot=k panic=1 acpi=off i8042.noaux i8042.nomux i8042.nopnp"

enum blk_engine_kind { BLK_ENGINE_IO_URING, BLK_ENGINE_AIO, BLK_ENGINE_SYNC };
enum blk_cache { BLK_CACHE_WRITEBACK, BLK_CACHE_NONE };

#define VMM_MAX_DISKS	  16
#define VIRTIO_BLK_ID_LEN 20 /* VIRTIO_BLK_ID_BYTES */

/* --disk path=FILE[,readonly=on][,serial=ID][,cache=none|writeback][,engine=...][,queues=N] */
struct disk_config {
	const char *path;
	bool readonly;
	char serial[VIRTIO_BLK_ID_LEN + 1];
	enum blk_cache cache;
	enum blk_engine_kind engine;
	unsigned int queues; /* 0: one per vCPU */
};

#define VMM_MAX_NETS  8
#define NET_MAX_PAIRS 16 /* queue pairs of one device */
#define NET_IFNAMSIZ  16 /* IFNAMSIZ */

#define NET_MAX_FORWARDS 16

/*
 * --net tap=NAME[,mac=52:54:00:xx:xx:xx][,queues=N], or
 * --net user[,forward=tcp|udp:HOSTPORT:GUESTPORT]...[,mac=...]: user-mode
 * networking through passt (no tap, no privilege).
 */
struct net_config {
	char tap[NET_IFNAMSIZ]; /* empty for user */
	bool user;
	uint8_t mac[6];	     /* given, or derived from the tap's name */
	unsigned int queues; /* queue pairs, 1..NET_MAX_PAIRS (user: 1) */
	struct net_forward {
		bool udp;
		uint16_t host, guest;
	} forwards[NET_MAX_FORWARDS];
	unsigned int nr_forwards;
};

/*
 * --vsock cid=N,socket=PATH: a virtio-vsock device whose host side is
 * Unix sockets at PATH (src/virtio/vsock.h).
 */
struct vsock_config {
	bool on;
	uint32_t cid;	/* 3 .. 0xfffffffe */
	char path[108]; /* sun_path */
};

/*
 * --share HOSTDIR[,tag=NAME][,readonly=on]: a virtio-fs device served by
 * a virtiofsd vmm starts for HOSTDIR; --fs tag=NAME,socket=PATH: one
 * served by a vhost-user-fs back-end the user started (src/virtio/fs.c).
 */
#define VMM_MAX_FS 4
#define FS_TAG_MAX 36 /* virtio_fs_config.tag */
struct fs_config {
	char tag[FS_TAG_MAX + 1];
	char dir[4096];	  /* --share's folder, "" for --fs */
	char socket[108]; /* --fs's back-end, "" for --share */
	bool readonly;
};

#define VMM_MAX_PATTERNS 16 /* --expect and --fail, each */

#define VMM_MAX_VFIO	    8
#define VMM_MAX_PCI_DEVICES 31 /* slots 1-31 of bus 0 */
#define VFIO_BDF_LEN	    13 /* "dddd:bb:dd.f" */

struct vmm_config {
	const char *kernel;
	const char *initrd;  /* NULL: none */
	const char *cmdline; /* never NULL after parsing */
	uint64_t mem_bytes;
	unsigned int cpus;
	enum hugepages_mode hugepages;
	bool mem_shared;    /* --mem-shared: guest RAM in memfds (migrate local:, vhost-user) */
	bool rng;	    /* a virtio-rng device (--no-rng: none) */
	bool kernel_cache;  /* a bzImage's decompressed kernel kept (--no-kernel-cache) */
	const char *append; /* --append: added to the command line (folded into cmdline) */
	enum console_kind console;
	const char *console_path; /* CONSOLE_FILE */
	int verbosity;		  /* 0 normal, -1 quiet, 1.. verbose */
	bool no_seccomp;	  /* --no-seccomp: no filter (debugging) */
	bool no_jail;		  /* --no-jail: keep privilege and the host's view */
	const char *user;	  /* --user USER[:GROUP]: whom root becomes (jail.h) */
	/* For scripted runs (src/supervise.c). */
	double timeout_s; /* --timeout: 0 none */
	/* --expect REGEX (any one matching a console line: exit 0) and
	 * --fail REGEX (any one: exit 1), each repeatable. */
	const char *expect[VMM_MAX_PATTERNS];
	unsigned int nr_expect;
	const char *fail[VMM_MAX_PATTERNS];
	unsigned int nr_fail;
	const char *result_path; /* --result json:PATH */
	const char *api_socket;	 /* --api-socket PATH */
	struct disk_config disks[VMM_MAX_DISKS];
	unsigned int nr_disks;
	char *disk_args[VMM_MAX_DISKS]; /* owned copies the paths point into */
	struct net_config nets[VMM_MAX_NETS];
	unsigned int nr_nets;
	char vfio[VMM_MAX_VFIO][VFIO_BDF_LEN]; /* --vfio, normalised BDFs */
	unsigned int nr_vfio;
	struct vsock_config vsock;
	struct fs_config fs[VMM_MAX_FS];
	unsigned int nr_fs;
	/* Snapshots (src/snapshot.c, src/restore.c). */
	const char *snapshot_at;  /* --snapshot-at REGEX: snapshot, then exit 0 */
	const char *snapshot_dir; /* --snapshot-dir DIR, with it; or with --api-socket:
				   * where `snapshot` may write under the jail */
	const char *restore_dir;  /* vmm restore DIR */
	const char *incoming;	  /* run --incoming ADDR (migrate.h) */
	bool start_paused;	  /* restore --paused */
	/* restore --disk-copy vdX=PATH: PATH stands in for that disk's image */
	const char *disk_copy[VMM_MAX_DISKS];
	/* What the snapshot recorded of each image (restore only). */
	struct disk_identity {
		uint64_t size, dev, ino;
		int64_t mtime_ns;
	} disk_id[VMM_MAX_DISKS];
	const char *disk_abs[VMM_MAX_DISKS]; /* each image's absolute path (owned) */
	char *owned[2 * VMM_MAX_DISKS + 5];  /* strings the config owns */
	unsigned int nr_owned;
};

/*
 * Parse one --disk value into d (path points into a copy owned by the
 * caller's storage, see config_parse_run). -EINVAL with err naming the key.
 */
int parse_disk(char *arg, struct disk_config *d, char *err, size_t errlen) WUR;
const char *blk_engine_name(enum blk_engine_kind e);
/* One forward= of --net user, tcp|udp:HOSTPORT:GUESTPORT: 0 or -EINVAL. */
int parse_net_forward(const char *v, struct net_forward *f) WUR;
/* Parse one --net value into n. -EINVAL with err naming the key. */
int parse_net(const char *arg, struct net_config *n, char *err, size_t errlen) WUR;
/*
 * One --share (share: HOSTDIR[,tag=][,readonly=]) or --fs (tag=,socket=)
 * value into f; -EINVAL with err naming the key.
 */
int parse_fs(const char *arg, bool share, struct fs_config *f, char *err, size_t errlen) WUR;
/* One --vsock value into v; -EINVAL with err naming the key. */
int parse_vsock(const char *arg, struct vsock_config *v, char *err, size_t errlen) WUR;
/*
 * One --vfio value: a PCI address "dddd:bb:dd.f" or "bb:dd.f" (domain 0),
 * or a sysfs path ending in one (/sys/bus/pci/devices/0000:00:04.0), into
 * the full lower-case form. -EINVAL with err naming the value.
 */
int parse_vfio(const char *arg, char bdf[VFIO_BDF_LEN], char *err, size_t errlen) WUR;
/* The default MAC of a tap: 52:54:00 (locally run VMs) + a hash of its name. */
void net_default_mac(const char *tap, uint8_t mac[6]);
void config_free(struct vmm_config *cfg);

/* Format a usage error into err (the parsers' one way to fail): -EINVAL. */
static inline int config_fail(char *err, size_t errlen, const char *fmt, ...) PRINTF_LIKE(3, 4);
static inline int config_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/*
 * Parse "512M", "4G", "1048576", "64k" into bytes. Returns 0 or -EINVAL
 * (syntax) / -ERANGE (overflow).
 */
int parse_size(const char *s, uint64_t *out) WUR;

/* Parse an unsigned decimal integer in [min, max]; -EINVAL / -ERANGE. */
int parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *out) WUR;

/*
 * Parse the arguments that follow "run". On a usage error, writes one
 * line into err (without "vmm: ") and returns -EINVAL. Sets *help when
 * --help was asked for (then nothing else is validated).
 */
int config_parse_run(struct vmm_config *cfg, int argc, char *const argv[], bool *help, char *err,
		     size_t errlen) WUR;

/*
 * Parse the arguments that follow "restore": DIR, then only host-side
 * options (console, scripting, --api-socket, -v/-q, --no-seccomp,
 * --paused, --disk-copy, --snapshot-at/--snapshot-dir); the machine comes
 * from the snapshot. Same convention as config_parse_run().
 */
int config_parse_restore(struct vmm_config *cfg, int argc, char *const argv[], bool *help,
			 char *err, size_t errlen) WUR;

const char *hugepages_name(enum hugepages_mode m);

#endif
