/*
 * A snapshot's configuration section (snapshot.h): the machine part of
 * struct vmm_config as JSON, with each disk image's identity, and back.
 * The file is checksummed, but read as hostile all the same: every value
 * is checked as the command line's would be.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "snapshot.h"

static void identity_of(const struct stat *st, struct disk_identity *id);

int snapshot_disk_identity(const char *path, struct disk_identity *id)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return -errno;
	identity_of(&st, id);
	return 0;
}

int snapshot_disk_identity_fd(int fd, struct disk_identity *id)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	identity_of(&st, id);
	return 0;
}

static void identity_of(const struct stat *st_in, struct disk_identity *id)
{
	const struct stat st = *st_in;
	bool blk;

	/*
	 * A block device: its node only, 0 for size and time. Its size would
	 * take an open and an ioctl, which a confined snapshot may not make,
	 * and the node keeps no time of the writes to the device.
	 */
	blk = S_ISBLK(st.st_mode);
	*id = (struct disk_identity){
	    .size = blk ? 0 : (uint64_t)st.st_size,
	    .dev = (uint64_t)st.st_dev,
	    .ino = (uint64_t)st.st_ino,
	    .mtime_ns = blk ? 0 : (int64_t)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec};
}

char *snapshot_config_dump(const struct vmm_config *cfg, const char *const *disk_paths,
			   const struct disk_identity *ids)
{
	json_t *root = json_pack(
	    "{s:I, s:i, s:i, s:b, s:b, s:s, s:s}", "mem", (json_int_t)cfg->mem_bytes, "cpus",
	    (int)cfg->cpus, "hugepages", (int)cfg->hugepages, "mem_shared", cfg->mem_shared, "rng",
	    cfg->rng, "cmdline", cfg->cmdline, "kernel", cfg->kernel ? cfg->kernel : "");
	json_t *disks = json_array(), *nets = json_array();
	char *text = NULL;

	if (!root || !disks || !nets)
		goto out;
	for (unsigned int i = 0; i < cfg->nr_disks; i++) {
		const struct disk_config *d = &cfg->disks[i];

		json_array_append_new(
		    disks,
		    json_pack("{s:s, s:b, s:s, s:i, s:i, s:i, s:I, s:I, s:I, s:I}", "path",
			      disk_paths[i], "readonly", d->readonly, "serial", d->serial, "cache",
			      (int)d->cache, "engine", (int)d->engine, "queues", (int)d->queues,
			      "size", (json_int_t)ids[i].size, "dev", (json_int_t)ids[i].dev, "ino",
			      (json_int_t)ids[i].ino, "mtime_ns", (json_int_t)ids[i].mtime_ns));
	}
	for (unsigned int i = 0; i < cfg->nr_nets; i++) {
		const struct net_config *n = &cfg->nets[i];
		char mac[18];

		snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", n->mac[0], n->mac[1],
			 n->mac[2], n->mac[3], n->mac[4], n->mac[5]);
		char fw[NET_MAX_FORWARDS * 18 + 1] = "";

		for (unsigned int k = 0; k < n->nr_forwards; k++)
			snprintf(fw + strlen(fw), sizeof(fw) - strlen(fw), "%s%s:%u:%u",
				 k ? "," : "", n->forwards[k].udp ? "udp" : "tcp",
				 n->forwards[k].host, n->forwards[k].guest);
		json_array_append_new(nets, json_pack("{s:s, s:b, s:s, s:s, s:i}", "tap", n->tap,
						      "user", n->user, "forwards", fw, "mac", mac,
						      "queues", (int)n->queues));
	}
	json_object_set(root, "disks", disks);
	json_object_set(root, "nets", nets);
	if (cfg->vsock.on)
		json_object_set_new(root, "vsock",
				    json_pack("{s:I, s:s}", "cid", (json_int_t)cfg->vsock.cid,
					      "socket", cfg->vsock.path));
	text = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
out:
	json_decref(root);
	json_decref(disks);
	json_decref(nets);
	return text;
}

/* A string the config keeps (freed by config_free). */
static const char *own(struct vmm_config *cfg, const char *s)
{
	char *c;

	if (cfg->nr_owned == ARRAY_SIZE(cfg->owned) || !(c = strdup(s)))
		return NULL;
	cfg->owned[cfg->nr_owned++] = c;
	return c;
}

static int load_disk(struct vmm_config *cfg, unsigned int i, json_t *o, char *why, size_t whylen)
{
	struct disk_config *d = &cfg->disks[i];
	const char *path = NULL, *serial = NULL;
	json_int_t size, dev, ino, mtime;
	int ro, cache, engine, queues;

	if (json_unpack(o, "{s:s, s:b, s:s, s:i, s:i, s:i, s:I, s:I, s:I, s:I}", "path", &path,
			"readonly", &ro, "serial", &serial, "cache", &cache, "engine", &engine,
			"queues", &queues, "size", &size, "dev", &dev, "ino", &ino, "mtime_ns",
			&mtime) ||
	    !*path || path[0] != '/' || strlen(serial) > VIRTIO_BLK_ID_LEN || cache < 0 ||
	    cache > BLK_CACHE_NONE || engine < 0 || engine > BLK_ENGINE_SYNC || queues < 0 ||
	    queues > 64 || size < 0) {
		snprintf(why, whylen, "configuration: disk %u is malformed", i);
		return -EINVAL;
	}
	*d = (struct disk_config){.path = own(cfg, path),
				  .readonly = ro,
				  .cache = (enum blk_cache)cache,
				  .engine = (enum blk_engine_kind)engine,
				  .queues = (unsigned int)queues};
	snprintf(d->serial, sizeof(d->serial), "%s", serial);
	cfg->disk_id[i] = (struct disk_identity){
	    .size = (uint64_t)size, .dev = (uint64_t)dev, .ino = (uint64_t)ino, .mtime_ns = mtime};
	return d->path ? 0 : -ENOMEM;
}

static int load_net(struct vmm_config *cfg, unsigned int i, json_t *o, char *why, size_t whylen)
{
	struct net_config *n = &cfg->nets[i];
	const char *tap, *mac, *fw = "";
	unsigned int m[6];
	int queues, user = 0;
	char list[NET_MAX_FORWARDS * 18 + 1], *item, *save = NULL;

	if (json_unpack(o, "{s:s, s?b, s?s, s:s, s:i}", "tap", &tap, "user", &user, "forwards", &fw,
			"mac", &mac, "queues", &queues) ||
	    !*tap == !user || strlen(tap) >= NET_IFNAMSIZ || queues < 1 ||
	    queues > (user ? 1 : NET_MAX_PAIRS) || strlen(fw) >= sizeof(list) ||
	    sscanf(mac, "%2x:%2x:%2x:%2x:%2x:%2x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) != 6)
		goto bad;
	n->user = user;
	strcpy(list, fw);
	for (item = strtok_r(list, ",", &save); item; item = strtok_r(NULL, ",", &save))
		if (!n->user || n->nr_forwards == NET_MAX_FORWARDS ||
		    parse_net_forward(item, &n->forwards[n->nr_forwards++]))
			goto bad;
	snprintf(n->tap, sizeof(n->tap), "%s", tap);
	for (unsigned int k = 0; k < 6; k++)
		n->mac[k] = (uint8_t)m[k];
	n->queues = (unsigned int)queues;
	return 0;
bad:
	snprintf(why, whylen, "configuration: network device %u is malformed", i);
	return -EINVAL;
}

static int load_vsock(struct vmm_config *cfg, json_t *o, char *why, size_t whylen)
{
	const char *path = NULL;
	json_int_t cid;

	if (json_unpack(o, "{s:I, s:s}", "cid", &cid, "socket", &path) || cid < 3 ||
	    cid > 0xfffffffeLL || !*path || strlen(path) + 11 >= sizeof(cfg->vsock.path)) {
		snprintf(why, whylen, "configuration: the vsock device is malformed");
		return -EINVAL;
	}
	cfg->vsock.on = true;
	cfg->vsock.cid = (uint32_t)cid;
	snprintf(cfg->vsock.path, sizeof(cfg->vsock.path), "%s", path);
	return 0;
}

int snapshot_config_load(struct vmm_config *cfg, const void *text, size_t len, char *why,
			 size_t whylen)
{
	json_t *root = json_loadb(text, len, 0, NULL), *disks, *nets, *o, *vsock = NULL;
	const char *cmdline, *kernel;
	json_int_t mem;
	int cpus, huge, shared = 0, rng = 0, r = -EINVAL; /* older streams: no rng */
	size_t i;

	if (!root ||
	    json_unpack(root, "{s:I, s:i, s:i, s?b, s?b, s:s, s:s, s:o, s:o, s?o}", "mem", &mem,
			"cpus", &cpus, "hugepages", &huge, "mem_shared", &shared, "rng", &rng,
			"cmdline", &cmdline, "kernel", &kernel, "disks", &disks, "nets", &nets,
			"vsock", &vsock) ||
	    mem < (json_int_t)VMM_MIN_MEM || mem > (json_int_t)VMM_MAX_MEM || mem % 4096 ||
	    cpus < 1 || cpus > VMM_MAX_CPUS || huge < 0 || huge > HUGEPAGES_OFF ||
	    !json_is_array(disks) || json_array_size(disks) > VMM_MAX_DISKS ||
	    !json_is_array(nets) || json_array_size(nets) > VMM_MAX_NETS) {
		snprintf(why, whylen, "configuration: malformed");
		goto out;
	}
	cfg->mem_bytes = (uint64_t)mem;
	cfg->cpus = (unsigned int)cpus;
	cfg->hugepages = (enum hugepages_mode)huge;
	cfg->mem_shared = shared;
	cfg->rng = rng;
	cfg->cmdline = own(cfg, cmdline);
	cfg->kernel = own(cfg, kernel);
	json_array_foreach(disks, i,
			   o) if ((r = load_disk(cfg, (unsigned int)i, o, why, whylen))) goto out;
	cfg->nr_disks = (unsigned int)json_array_size(disks);
	json_array_foreach(nets, i,
			   o) if ((r = load_net(cfg, (unsigned int)i, o, why, whylen))) goto out;
	cfg->nr_nets = (unsigned int)json_array_size(nets);
	if (vsock && (r = load_vsock(cfg, vsock, why, whylen)))
		goto out;
	r = cfg->cmdline && cfg->kernel ? 0 : -ENOMEM;
out:
	json_decref(root);
	return r;
}

int snapshot_check_disks(const struct vmm_config *cfg, bool live, char *why, size_t whylen)
{
	for (unsigned int i = 0; i < cfg->nr_disks; i++) {
		const struct disk_identity *was = &cfg->disk_id[i];
		const char *path = cfg->disks[i].path;
		struct disk_identity now;
		char name[4] = {'v', 'd', (char)('a' + i), 0};
		int r = snapshot_disk_identity(path, &now);

		if (r) {
			snprintf(why, whylen, "%s: image '%s': %s", name, path, strerror(-r));
			return r;
		}
		if (now.size != was->size) {
			snprintf(why, whylen,
				 "%s: image '%s' is %llu bytes, it was %llu at the snapshot", name,
				 path, (unsigned long long)now.size, (unsigned long long)was->size);
			return -EINVAL;
		}
		if (cfg->disk_copy[i] || live)
			continue; /* a copy the user vouches for, or one the source writes */
		if (now.dev != was->dev || now.ino != was->ino || now.mtime_ns != was->mtime_ns) {
			snprintf(
			    why, whylen,
			    "%s: image '%s' changed after the snapshot (another file, or written "
			    "since); restore a copy taken with it with --disk-copy %s=PATH",
			    name, path, name);
			return -ESTALE;
		}
	}
	return 0;
}
