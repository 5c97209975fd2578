/*
 * Fuzz target: the command-line parser (src/config.c). The input, split
 * on NUL bytes, is the argument list after "run"; config_parse_run()
 * parses it, and each argument is also fed to the value parsers on their
 * own (parse_size, parse_uint, parse_disk, parse_net, parse_vfio), so
 * each parser is reached without the option in front of it. Oracles: a
 * configuration that parsed is one machine_create() can take (limits, the
 * normalised forms); errors always come with a message.
 */
#include <errno.h>
#include <limits.h>

#include "config.h"
#include "fuzz.h"

#define MAX_ARGS 64

static void check_cfg(const struct vmm_config *c)
{
	FZ_CHECK(c->kernel && c->kernel[0] && c->cmdline);
	FZ_CHECK(!c->initrd || c->initrd[0]);
	FZ_CHECK(c->cpus >= 1 && c->cpus <= VMM_MAX_CPUS);
	FZ_CHECK(c->mem_bytes >= VMM_MIN_MEM && c->mem_bytes <= VMM_MAX_MEM &&
		 c->mem_bytes % 4096 == 0);
	FZ_CHECK(c->nr_disks <= VMM_MAX_DISKS && c->nr_nets <= VMM_MAX_NETS &&
		 c->nr_vfio <= VMM_MAX_VFIO);
	FZ_CHECK(c->nr_disks + c->nr_nets + c->nr_vfio + c->rng + c->vsock.on + c->nr_fs <=
		 VMM_MAX_PCI_DEVICES);
	FZ_CHECK(!c->vsock.on || (c->vsock.cid >= 3 && c->vsock.cid < 0xffffffffu &&
				  c->vsock.path[0] && strlen(c->vsock.path) + 11 < 108));
	FZ_CHECK(c->nr_fs <= VMM_MAX_FS && (!c->nr_fs || c->mem_shared));
	for (unsigned int i = 0; i < c->nr_fs; i++) {
		const struct fs_config *f = &c->fs[i];

		FZ_CHECK(f->tag[0] && strlen(f->tag) <= FS_TAG_MAX);
		FZ_CHECK(!f->dir[0] != !f->socket[0]); /* --share or --fs */
		FZ_CHECK(!f->readonly || f->dir[0]);
		for (unsigned int j = 0; j < i; j++)
			FZ_CHECK(strcmp(f->tag, c->fs[j].tag));
	}
	FZ_CHECK(c->console != CONSOLE_FILE || (c->console_path && c->console_path[0]));
	for (unsigned int i = 0; i < c->nr_disks; i++)
		FZ_CHECK(c->disks[i].path && c->disks[i].path[0] && c->disks[i].queues <= 64);
	for (unsigned int i = 0; i < c->nr_nets; i++)
		for (unsigned int j = 0; j < i; j++)
			FZ_CHECK(strcmp(c->nets[i].tap, c->nets[j].tap));
	for (unsigned int i = 0; i < c->nr_vfio; i++)
		for (unsigned int j = 0; j < i; j++)
			FZ_CHECK(strcmp(c->vfio[i], c->vfio[j]));
}

static void check_net(const struct net_config *n)
{
	size_t len = strnlen(n->tap, sizeof(n->tap));

	FZ_CHECK(!(n->mac[0] & 1));
	FZ_CHECK(n->nr_forwards <= NET_MAX_FORWARDS);
	if (n->user) { /* --net user: passt, one queue pair, no tap */
		FZ_CHECK(len == 0 && n->queues == 1);
		for (unsigned int i = 0; i < n->nr_forwards; i++)
			FZ_CHECK(n->forwards[i].host && n->forwards[i].guest);
		return;
	}
	FZ_CHECK(len > 0 && len < NET_IFNAMSIZ);
	FZ_CHECK(!strpbrk(n->tap, "/: \t\n"));
	FZ_CHECK(n->queues >= 1 && n->queues <= NET_MAX_PAIRS);
	FZ_CHECK(n->nr_forwards == 0);
}

static void check_bdf(const char *b)
{
	FZ_CHECK(strnlen(b, VFIO_BDF_LEN) == VFIO_BDF_LEN - 1);
	FZ_CHECK(b[4] == ':' && b[7] == ':' && b[10] == '.' && b[11] >= '0' && b[11] <= '7');
}

/* Each argument alone through every value parser. */
static void values(char *const *argv, int argc)
{
	char err[256], bdf[VFIO_BDF_LEN];
	struct disk_config dc;
	struct net_config nc;
	struct vsock_config vc;
	struct fs_config fc;
	unsigned long u;
	uint64_t sz;
	int r;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		char *copy;

		r = parse_size(a, &sz);
		FZ_CHECK(r == 0 || r == -EINVAL || r == -ERANGE);
		r = parse_uint(a, 0, ULONG_MAX, &u);
		FZ_CHECK(r == 0 || r == -EINVAL || r == -ERANGE);
		err[0] = '\0';
		r = parse_net(a, &nc, err, sizeof(err));
		FZ_CHECK(r == 0 || (r == -EINVAL && err[0]));
		if (!r)
			check_net(&nc);
		err[0] = '\0';
		r = parse_vsock(a, &vc, err, sizeof(err));
		FZ_CHECK(r == 0 || (r == -EINVAL && err[0]));
		for (int share = 0; share < 2; share++) {
			err[0] = '\0';
			r = parse_fs(a, share, &fc, err, sizeof(err));
			FZ_CHECK(r == 0 || (r == -EINVAL && err[0]));
			if (!r)
				FZ_CHECK(fc.tag[0] && strlen(fc.tag) <= FS_TAG_MAX &&
					 !fc.dir[0] == !share);
		}
		err[0] = '\0';
		r = parse_vfio(a, bdf, err, sizeof(err));
		FZ_CHECK(r == 0 || (r == -EINVAL && err[0]));
		if (!r)
			check_bdf(bdf);
		copy = strdup(a);
		FZ_CHECK(copy);
		err[0] = '\0';
		r = parse_disk(copy, &dc, err, sizeof(err));
		FZ_CHECK(r == 0 || (r == -EINVAL && err[0]));
		if (!r)
			FZ_CHECK(dc.path && dc.path[0] && strlen(dc.serial) <= VIRTIO_BLK_ID_LEN);
		free(copy);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1), *argv[MAX_ARGS + 2], err[512];
	struct vmm_config cfg;
	int argc = 0, r;
	size_t at = 0;
	bool help;

	FZ_CHECK(buf);
	memcpy(buf, data, size);
	buf[size] = '\0';
	argv[argc++] = "run";
	while (at <= size && argc <= MAX_ARGS) {
		argv[argc++] = buf + at;
		at += strlen(buf + at) + 1;
	}
	argv[argc] = NULL;

	err[0] = '\0';
	r = config_parse_run(&cfg, argc, argv, &help, err, sizeof(err));
	FZ_CHECK(r == 0 || (r == -EINVAL && err[0]));
	if (r == 0 && !help)
		check_cfg(&cfg);
	config_free(&cfg);

	values(argv, argc);
	free(buf);
	return 0;
}
