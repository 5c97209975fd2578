/*
 * One option's value: sizes and numbers, and the device options: --disk
 * and --net as key=value lists (one iterator, kv_next, for every such
 * option), --vfio's PCI address. config.c parses the command line with
 * these.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int parse_size(const char *s, uint64_t *out)
{
	uint64_t v = 0, mult = 1;
	const char *p = s;

	if (!s || !isdigit((unsigned char)*p))
		return -EINVAL;
	for (; isdigit((unsigned char)*p); p++) {
		unsigned int d = (unsigned int)(*p - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	switch (tolower((unsigned char)*p)) {
	case 'k':
		mult = 1ULL << 10;
		p++;
		break;
	case 'm':
		mult = 1ULL << 20;
		p++;
		break;
	case 'g':
		mult = 1ULL << 30;
		p++;
		break;
	case 't':
		mult = 1ULL << 40;
		p++;
		break;
	default: break;
	}
	/* Accept "512M", "512MB" and "512MiB" alike. */
	if (mult != 1 && (!strcmp(p, "B") || !strcmp(p, "iB")))
		p += strlen(p);
	if (*p)
		return -EINVAL;
	if (v > UINT64_MAX / mult)
		return -ERANGE;
	*out = v * mult;
	return 0;
}

int parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
	unsigned long v;
	char *end;

	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (*end)
		return -EINVAL;
	if (errno == ERANGE || v < min || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

const char *hugepages_name(enum hugepages_mode m)
{
	switch (m) {
	case HUGEPAGES_AUTO: return "auto";
	case HUGEPAGES_2M: return "2M";
	case HUGEPAGES_1G: return "1G";
	case HUGEPAGES_OFF: return "off";
	}
	return "?";
}

const char *blk_engine_name(enum blk_engine_kind e)
{
	return e == BLK_ENGINE_IO_URING ? "io_uring" : e == BLK_ENGINE_AIO ? "aio" : "sync";
}

static int parse_onoff(const char *opt, const char *key, const char *v, bool *out, char *err,
		       size_t errlen)
{
	if (!strcmp(v, "on") || !strcmp(v, "true") || !strcmp(v, "1"))
		*out = true;
	else if (!strcmp(v, "off") || !strcmp(v, "false") || !strcmp(v, "0"))
		*out = false;
	else
		return config_fail(err, errlen, "%s: %s='%s' is not on or off", opt, key, v);
	return 0;
}

/*
 * The one reader of the key=value lists of --disk, --net and options like
 * them: "k1=v1,k2=v2,...", split in place as strtok_r(",") would. Empty
 * items (leading, trailing, doubled commas) are skipped; the key is what
 * precedes an item's first '=' (may be empty), the value all after it (may
 * be empty or hold '='); a key given twice comes twice (callers: last wins).
 * kv_next: 1 with *key and *val, 0 at the end, or -EINVAL with err
 * "OPT: 'ITEM' is not key=value" for an item without '='.
 */
struct kv_iter {
	char *p;	 /* the rest of the list, in the caller's writable copy */
	const char *opt; /* "--disk": the messages' prefix */
};

static int kv_next(struct kv_iter *it, char **key, char **val, char *err, size_t errlen)
{
	char *item = it->p + strspn(it->p, ",");
	size_t len = strcspn(item, ",");

	if (!*item)
		return 0;
	it->p = item + len + (item[len] != '\0');
	item[len] = '\0';
	*key = item;
	*val = strchr(item, '=');
	if (!*val)
		return config_fail(err, errlen, "%s: '%s' is not key=value", it->opt, item);
	*(*val)++ = '\0';
	return 1;
}

int parse_disk(char *arg, struct disk_config *d, char *err, size_t errlen)
{
	struct kv_iter it = {.p = arg, .opt = "--disk"};
	unsigned long n;
	char *kv, *v;
	int r;

	*d = (struct disk_config){.cache = BLK_CACHE_WRITEBACK, .engine = BLK_ENGINE_IO_URING};
	while ((r = kv_next(&it, &kv, &v, err, errlen)) > 0) {
		if (!strcmp(kv, "path")) {
			if (!*v)
				return config_fail(err, errlen, "--disk: path is empty");
			d->path = v;
		} else if (!strcmp(kv, "readonly")) {
			if (parse_onoff("--disk", kv, v, &d->readonly, err, errlen))
				return -EINVAL;
		} else if (!strcmp(kv, "serial")) {
			if (strlen(v) > VIRTIO_BLK_ID_LEN)
				return config_fail(err, errlen,
						   "--disk: serial='%s' is longer than %d bytes", v,
						   VIRTIO_BLK_ID_LEN);
			strcpy(d->serial, v);
		} else if (!strcmp(kv, "cache")) {
			if (!strcmp(v, "none"))
				d->cache = BLK_CACHE_NONE;
			else if (!strcmp(v, "writeback"))
				d->cache = BLK_CACHE_WRITEBACK;
			else
				return config_fail(
				    err, errlen, "--disk: cache='%s' is not none or writeback", v);
		} else if (!strcmp(kv, "engine")) {
			if (!strcmp(v, "io_uring"))
				d->engine = BLK_ENGINE_IO_URING;
			else if (!strcmp(v, "aio"))
				d->engine = BLK_ENGINE_AIO;
			else if (!strcmp(v, "sync"))
				d->engine = BLK_ENGINE_SYNC;
			else
				return config_fail(
				    err, errlen, "--disk: engine='%s' is not io_uring, aio or sync",
				    v);
		} else if (!strcmp(kv, "queues")) {
			if (parse_uint(v, 1, 64, &n))
				return config_fail(
				    err, errlen, "--disk: queues='%s' is not a number from 1 to 64",
				    v);
			d->queues = (unsigned int)n;
		} else {
			return config_fail(err, errlen, "--disk: unknown key '%s'", kv);
		}
	}
	if (r)
		return r;
	if (!d->path)
		return config_fail(err, errlen, "--disk: path=FILE is missing");
	return 0;
}

void net_default_mac(const char *tap, uint8_t mac[6])
{
	uint32_t h = 2166136261u; /* FNV-1a: stable across runs and builds */

	for (const char *p = tap; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	mac[0] = 0x52;
	mac[1] = 0x54;
	mac[2] = 0x00;
	mac[3] = (uint8_t)(h >> 16);
	mac[4] = (uint8_t)(h >> 8);
	mac[5] = (uint8_t)h;
}

static int parse_mac(const char *v, uint8_t mac[6])
{
	unsigned int b[6];
	char end;

	if (strlen(v) != 17 || sscanf(v, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3],
				      &b[4], &b[5], &end) != 6)
		return -EINVAL;
	for (int i = 0; i < 6; i++) {
		if (!isxdigit((unsigned char)v[3 * i]) || !isxdigit((unsigned char)v[3 * i + 1]))
			return -EINVAL;
		mac[i] = (uint8_t)b[i];
	}
	/* A NIC's own address is unicast and not all zeroes. */
	if ((mac[0] & 1) || !(mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5]))
		return -EINVAL;
	return 0;
}

int parse_net_forward(const char *v, struct net_forward *f)
{
	unsigned int h, g;
	char proto[4], end;

	if (strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789:") != strlen(v) ||
	    sscanf(v, "%3[a-z]:%5u:%5u%c", proto, &h, &g, &end) != 3 || !h || !g || h > 65535 ||
	    g > 65535 || (strcmp(proto, "tcp") && strcmp(proto, "udp")))
		return -EINVAL;
	*f = (struct net_forward){
	    .udp = !strcmp(proto, "udp"), .host = (uint16_t)h, .guest = (uint16_t)g};
	return 0;
}

int parse_net(const char *arg, struct net_config *n, char *err, size_t errlen)
{
	char buf[256], *kv, *v;
	struct kv_iter it = {.p = buf, .opt = "--net"};
	bool mac_set = false;
	unsigned long q;
	int r;

	*n = (struct net_config){.queues = 1};
	if (strlen(arg) >= sizeof(buf))
		return config_fail(err, errlen, "--net: '%.32s...' is too long", arg);
	strcpy(buf, arg);
	if (!strncmp(buf, "user", 4) && (!buf[4] || buf[4] == ',')) {
		n->user = true;
		it.p = buf + 4;
	}
	while ((r = kv_next(&it, &kv, &v, err, errlen)) > 0) {
		if (!strcmp(kv, "forward")) {
			if (!n->user)
				return config_fail(err, errlen,
						   "--net: forward= is an option of --net user");
			if (n->nr_forwards == NET_MAX_FORWARDS)
				return config_fail(err, errlen,
						   "--net: at most %d forward=", NET_MAX_FORWARDS);
			if (parse_net_forward(v, &n->forwards[n->nr_forwards]))
				return config_fail(
				    err, errlen,
				    "--net: forward='%s' is not tcp:HOSTPORT:GUESTPORT "
				    "or udp:HOSTPORT:GUESTPORT (ports 1 to 65535)",
				    v);
			n->nr_forwards++;
		} else if (!strcmp(kv, "tap")) {
			if (n->user)
				return config_fail(err, errlen,
						   "--net: user and tap= exclude each other");
			if (!*v || strlen(v) >= NET_IFNAMSIZ || strpbrk(v, "/: \t\n") ||
			    !strcmp(v, ".") || !strcmp(v, ".."))
				return config_fail(
				    err, errlen,
				    "--net: tap='%s' is not an interface name (1 to %d "
				    "characters, no '/', ':' or spaces)",
				    v, NET_IFNAMSIZ - 1);
			strcpy(n->tap, v);
		} else if (!strcmp(kv, "mac")) {
			if (parse_mac(v, n->mac))
				return config_fail(
				    err, errlen,
				    "--net: mac='%s' is not a unicast MAC address like "
				    "52:54:00:12:34:56",
				    v);
			mac_set = true;
		} else if (!strcmp(kv, "queues")) {
			if (parse_uint(v, 1, NET_MAX_PAIRS, &q))
				return config_fail(
				    err, errlen, "--net: queues='%s' is not a number from 1 to %d",
				    v, NET_MAX_PAIRS);
			n->queues = (unsigned int)q;
		} else {
			return config_fail(err, errlen, "--net: unknown key '%s'", kv);
		}
	}
	if (r)
		return r;
	if (n->user && n->queues > 1)
		return config_fail(err, errlen,
				   "--net user: one queue pair (passt has one socket)");
	if (!n->tap[0] && !n->user)
		return config_fail(err, errlen, "--net: tap=NAME or user is missing");
	if (!mac_set)
		net_default_mac(n->user ? "user" : n->tap, n->mac);
	return 0;
}

int parse_fs(const char *arg, bool share, struct fs_config *f, char *err, size_t errlen)
{
	const char *opt = share ? "--share" : "--fs";
	char buf[4352], *kv, *v, *dir = buf;
	struct kv_iter it = {.p = buf, .opt = opt};
	int r;

	memset(f, 0, sizeof(*f));
	if (strlen(arg) >= sizeof(buf) || (share && strcspn(arg, ",") >= sizeof(f->dir)))
		return config_fail(err, errlen, "%s: '%.32s...' is too long", opt, arg);
	strcpy(buf, arg);
	if (share) { /* the folder first, then its keys */
		it.p = buf + strcspn(buf, ",");
		if (*it.p)
			*it.p++ = '\0';
		if (!*dir)
			return config_fail(err, errlen, "--share: HOSTDIR is missing");
		strcpy(f->dir, dir);
	}
	while ((r = kv_next(&it, &kv, &v, err, errlen)) > 0) {
		if (!strcmp(kv, "tag")) {
			if (!*v || strlen(v) > FS_TAG_MAX)
				return config_fail(err, errlen, "%s: tag='%s' is not 1 to %d bytes",
						   opt, v, FS_TAG_MAX);
			strcpy(f->tag, v);
		} else if (share && !strcmp(kv, "readonly")) {
			if ((r = parse_onoff("--share", "readonly", v, &f->readonly, err, errlen)))
				return r;
		} else if (!share && !strcmp(kv, "socket")) {
			if (!*v || strlen(v) >= sizeof(f->socket))
				return config_fail(err, errlen, "--fs: socket='%s' is %s", v,
						   *v ? "too long for a socket path" : "empty");
			strcpy(f->socket, v);
		} else {
			return config_fail(err, errlen, "%s: unknown key '%s'", opt, kv);
		}
	}
	if (r)
		return r;
	if (!share && (!f->tag[0] || !f->socket[0]))
		return config_fail(err, errlen, "--fs: %s is missing (tag=NAME,socket=PATH)",
				   !f->tag[0] ? "tag=NAME" : "socket=PATH");
	if (share && !f->tag[0]) { /* the folder's own name */
		char *end = dir + strlen(dir), *base;

		while (end > dir + 1 && end[-1] == '/')
			*--end = '\0';
		base = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
		if (!*base || !strcmp(base, ".") || !strcmp(base, "..") ||
		    strlen(base) > FS_TAG_MAX)
			return config_fail(err, errlen,
					   "--share: '%s' has no name to use as its tag: give "
					   "tag=NAME",
					   arg);
		strcpy(f->tag, base);
	}
	return 0;
}

int parse_vsock(const char *arg, struct vsock_config *vs, char *err, size_t errlen)
{
	char buf[256], *kv, *v;
	struct kv_iter it = {.p = buf, .opt = "--vsock"};
	unsigned long cid = 0;
	int r;

	*vs = (struct vsock_config){.on = true};
	if (strlen(arg) >= sizeof(buf))
		return config_fail(err, errlen, "--vsock: '%.32s...' is too long", arg);
	strcpy(buf, arg);
	while ((r = kv_next(&it, &kv, &v, err, errlen)) > 0) {
		if (!strcmp(kv, "cid")) {
			/* 0-2 are the hypervisor's, the local one's and the host's; -1 is "any" */
			if (parse_uint(v, 3, 0xfffffffeUL, &cid))
				return config_fail(err, errlen,
						   "--vsock: cid='%s' is not a number from 3 to "
						   "4294967294",
						   v);
		} else if (!strcmp(kv, "socket")) {
			/* PATH_<port> must fit too: 11 more bytes */
			if (!*v || strlen(v) + 11 >= sizeof(vs->path))
				return config_fail(
				    err, errlen, "--vsock: socket='%s' is %s", v,
				    *v ? "too long for a socket path (at most 96 bytes)" : "empty");
			strcpy(vs->path, v);
		} else {
			return config_fail(err, errlen, "--vsock: unknown key '%s'", kv);
		}
	}
	if (r)
		return r;
	if (!cid || !vs->path[0])
		return config_fail(err, errlen, "--vsock: %s is missing (cid=N,socket=PATH)",
				   !cid ? "cid=N" : "socket=PATH");
	vs->cid = (uint32_t)cid;
	return 0;
}

/*
 * glibc's regcomp() copies the parse tree for every stacked repetition
 * ("a+++..."): memory and time double with each (found by fuzzing: 22 of
 * them took 3 GB). No useful pattern stacks them, so refuse that, and
 * patterns longer than a console line.
 */
int parse_vfio(const char *arg, char bdf[VFIO_BDF_LEN], char *err, size_t errlen)
{
	const char *name = strrchr(arg, '/') ? strrchr(arg, '/') + 1 : arg;
	unsigned int dom = 0, bus, dev, fn;
	char end;
	int n;

	/* Two forms; every field hex, and nothing after the function. */
	if (strchr(name, ':') != strrchr(name, ':'))
		n = sscanf(name, "%4x:%2x:%2x.%1x%c", &dom, &bus, &dev, &fn, &end) == 4 ? 4 : 0;
	else
		n = sscanf(name, "%2x:%2x.%1x%c", &bus, &dev, &fn, &end) == 3 ? 4 : 0;
	if (n != 4 || strspn(name, "0123456789abcdefABCDEF:.") != strlen(name) || dev > 0x1f ||
	    fn > 7)
		return config_fail(
		    err, errlen,
		    "--vfio: '%s' is not a PCI address like 0000:00:04.0 (or its sysfs path)", arg);
	snprintf(bdf, VFIO_BDF_LEN, "%04x:%02x:%02x.%x", dom, bus, dev, fn);
	return 0;
}
