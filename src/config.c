/* Command-line parsing into struct vmm_config; validation as a whole. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <regex.h>
#include <stdarg.h>
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

static int fail(char *err, size_t errlen, const char *fmt, ...) PRINTF_LIKE(3, 4);
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int parse_mem(const char *arg, uint64_t *out, char *err, size_t errlen)
{
	uint64_t v;
	int r;

	/* A bare number means MiB, as with QEMU's -m. */
	if (*arg && strspn(arg, "0123456789") == strlen(arg)) {
		unsigned long long mib;

		errno = 0;
		mib = strtoull(arg, NULL, 10);
		/* Saturate instead of letting the shift wrap. */
		v = (errno == ERANGE || mib > (UINT64_MAX >> 20)) ? UINT64_MAX : mib << 20;
		r = 0;
	} else {
		r = parse_size(arg, &v);
	}
	if (r)
		return fail(err, errlen, "--mem: '%s' is not a size (use e.g. 512M or 4G)", arg);
	if (v < VMM_MIN_MEM)
		return fail(err, errlen, "--mem: '%s' is too small (minimum 4M)", arg);
	if (v > VMM_MAX_MEM)
		return fail(err, errlen, "--mem: '%s' is too large (maximum 1T)", arg);
	if (!IS_ALIGNED(v, 4096ULL))
		return fail(err, errlen, "--mem: '%s' is not a multiple of 4K", arg);
	*out = v;
	return 0;
}

static int parse_console(struct vmm_config *cfg, const char *arg, char *err, size_t errlen)
{
	if (!strcmp(arg, "stdio")) {
		cfg->console = CONSOLE_STDIO;
	} else if (!strcmp(arg, "none")) {
		cfg->console = CONSOLE_NONE;
	} else if (!strncmp(arg, "file:", 5) && arg[5]) {
		cfg->console = CONSOLE_FILE;
		cfg->console_path = arg + 5;
	} else {
		return fail(err, errlen, "--console: '%s' is not stdio, none or file:PATH", arg);
	}
	return 0;
}

const char *blk_engine_name(enum blk_engine_kind e)
{
	return e == BLK_ENGINE_IO_URING ? "io_uring" : e == BLK_ENGINE_AIO ? "aio" : "sync";
}

static int parse_onoff(const char *key, const char *v, bool *out, char *err, size_t errlen)
{
	if (!strcmp(v, "on") || !strcmp(v, "true") || !strcmp(v, "1"))
		*out = true;
	else if (!strcmp(v, "off") || !strcmp(v, "false") || !strcmp(v, "0"))
		*out = false;
	else
		return fail(err, errlen, "--disk: %s='%s' is not on or off", key, v);
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
		return fail(err, errlen, "%s: '%s' is not key=value", it->opt, item);
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
				return fail(err, errlen, "--disk: path is empty");
			d->path = v;
		} else if (!strcmp(kv, "readonly")) {
			if (parse_onoff(kv, v, &d->readonly, err, errlen))
				return -EINVAL;
		} else if (!strcmp(kv, "serial")) {
			if (strlen(v) > VIRTIO_BLK_ID_LEN)
				return fail(err, errlen,
					    "--disk: serial='%s' is longer than %d bytes", v,
					    VIRTIO_BLK_ID_LEN);
			strcpy(d->serial, v);
		} else if (!strcmp(kv, "cache")) {
			if (!strcmp(v, "none"))
				d->cache = BLK_CACHE_NONE;
			else if (!strcmp(v, "writeback"))
				d->cache = BLK_CACHE_WRITEBACK;
			else
				return fail(err, errlen,
					    "--disk: cache='%s' is not none or writeback", v);
		} else if (!strcmp(kv, "engine")) {
			if (!strcmp(v, "io_uring"))
				d->engine = BLK_ENGINE_IO_URING;
			else if (!strcmp(v, "aio"))
				d->engine = BLK_ENGINE_AIO;
			else if (!strcmp(v, "sync"))
				d->engine = BLK_ENGINE_SYNC;
			else
				return fail(err, errlen,
					    "--disk: engine='%s' is not io_uring, aio or sync", v);
		} else if (!strcmp(kv, "queues")) {
			if (parse_uint(v, 1, 64, &n))
				return fail(err, errlen,
					    "--disk: queues='%s' is not a number from 1 to 64", v);
			d->queues = (unsigned int)n;
		} else {
			return fail(err, errlen, "--disk: unknown key '%s'", kv);
		}
	}
	if (r)
		return r;
	if (!d->path)
		return fail(err, errlen, "--disk: path=FILE is missing");
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

int parse_net(const char *arg, struct net_config *n, char *err, size_t errlen)
{
	char buf[256], *kv, *v;
	struct kv_iter it = {.p = buf, .opt = "--net"};
	bool mac_set = false;
	unsigned long q;
	int r;

	*n = (struct net_config){.queues = 1};
	if (strlen(arg) >= sizeof(buf))
		return fail(err, errlen, "--net: '%.32s...' is too long", arg);
	strcpy(buf, arg);
	while ((r = kv_next(&it, &kv, &v, err, errlen)) > 0) {
		if (!strcmp(kv, "tap")) {
			if (!*v || strlen(v) >= NET_IFNAMSIZ || strpbrk(v, "/: \t\n") ||
			    !strcmp(v, ".") || !strcmp(v, ".."))
				return fail(err, errlen,
					    "--net: tap='%s' is not an interface name (1 to %d "
					    "characters, no '/', ':' or spaces)",
					    v, NET_IFNAMSIZ - 1);
			strcpy(n->tap, v);
		} else if (!strcmp(kv, "mac")) {
			if (parse_mac(v, n->mac))
				return fail(err, errlen,
					    "--net: mac='%s' is not a unicast MAC address like "
					    "52:54:00:12:34:56",
					    v);
			mac_set = true;
		} else if (!strcmp(kv, "queues")) {
			if (parse_uint(v, 1, NET_MAX_PAIRS, &q))
				return fail(err, errlen,
					    "--net: queues='%s' is not a number from 1 to %d", v,
					    NET_MAX_PAIRS);
			n->queues = (unsigned int)q;
		} else {
			return fail(err, errlen, "--net: unknown key '%s'", kv);
		}
	}
	if (r)
		return r;
	if (!n->tap[0])
		return fail(err, errlen, "--net: tap=NAME is missing");
	if (!mac_set)
		net_default_mac(n->tap, n->mac);
	return 0;
}

/*
 * glibc's regcomp() copies the parse tree for every stacked repetition
 * ("a+++..."): memory and time double with each (found by fuzzing: 22 of
 * them took 3 GB). No useful pattern stacks them, so refuse that, and
 * patterns longer than a console line.
 */
static bool stacked_repetition(const char *re)
{
	bool in_bracket = false, after_rep = false;

	for (const char *p = re; *p; p++) {
		bool rep;

		if (in_bracket) {
			/* "[]...]" and "[^]...]": a leading ] is a literal */
			if (*p == ']' && p[-1] != '[' && !(p[-1] == '^' && p[-2] == '['))
				in_bracket = false;
			continue;
		}
		if (*p == '\\' && p[1]) {
			p++;
			after_rep = false;
			continue;
		}
		if (*p == '[') {
			in_bracket = true;
			after_rep = false;
			continue;
		}
		rep = *p == '*' || *p == '+' || *p == '?' || *p == '{';
		if (rep && after_rep)
			return true;
		if (*p == '{') {
			while (p[1] && p[1] != '}')
				p++;
			if (p[1])
				p++;
		}
		after_rep = rep;
	}
	return false;
}

static int check_regex(const char *opt, const char *re, char *err, size_t errlen)
{
	regex_t rx;
	char why[128];
	int r;

	if (strlen(re) > 512)
		return fail(err, errlen, "%s: the regular expression is longer than 512 bytes",
			    opt);
	if (stacked_repetition(re))
		return fail(err, errlen, "%s: '%s' stacks repetition operators (like a++)", opt,
			    re);
	r = regcomp(&rx, re, REG_EXTENDED | REG_NOSUB);

	if (r) {
		regerror(r, &rx, why, sizeof(why));
		return fail(err, errlen, "%s: '%s' is not a regular expression: %s", opt, re, why);
	}
	regfree(&rx);
	return 0;
}

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
		return fail(
		    err, errlen,
		    "--vfio: '%s' is not a PCI address like 0000:00:04.0 (or its sysfs path)", arg);
	snprintf(bdf, VFIO_BDF_LEN, "%04x:%02x:%02x.%x", dom, bus, dev, fn);
	return 0;
}

void config_free(struct vmm_config *cfg)
{
	for (unsigned int i = 0; i < cfg->nr_disks; i++)
		free(cfg->disk_args[i]);
	cfg->nr_disks = 0;
}

enum {
	OPT_KERNEL = 256,
	OPT_INITRD,
	OPT_CMDLINE,
	OPT_MEM,
	OPT_CPUS,
	OPT_HUGEPAGES,
	OPT_CONSOLE,
	OPT_DISK,
	OPT_NET,
	OPT_VFIO,
	OPT_NO_SECCOMP,
	OPT_TIMEOUT,
	OPT_EXPECT,
	OPT_FAIL,
	OPT_RESULT,
	OPT_API_SOCKET
};

int config_parse_run(struct vmm_config *cfg, int argc, char *const argv[], bool *help, char *err,
		     size_t errlen)
{
	static const struct option opts[] = {
	    {"kernel", required_argument, NULL, OPT_KERNEL},
	    {"initrd", required_argument, NULL, OPT_INITRD},
	    {"cmdline", required_argument, NULL, OPT_CMDLINE},
	    {"mem", required_argument, NULL, OPT_MEM},
	    {"cpus", required_argument, NULL, OPT_CPUS},
	    {"hugepages", required_argument, NULL, OPT_HUGEPAGES},
	    {"console", required_argument, NULL, OPT_CONSOLE},
	    {"disk", required_argument, NULL, OPT_DISK},
	    {"net", required_argument, NULL, OPT_NET},
	    {"vfio", required_argument, NULL, OPT_VFIO},
	    {"no-seccomp", no_argument, NULL, OPT_NO_SECCOMP},
	    {"timeout", required_argument, NULL, OPT_TIMEOUT},
	    {"expect", required_argument, NULL, OPT_EXPECT},
	    {"fail", required_argument, NULL, OPT_FAIL},
	    {"result", required_argument, NULL, OPT_RESULT},
	    {"api-socket", required_argument, NULL, OPT_API_SOCKET},
	    {"verbose", no_argument, NULL, 'v'},
	    {"quiet", no_argument, NULL, 'q'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	unsigned long n;
	int c, r;

	*cfg = (struct vmm_config){
	    .cmdline = VMM_DEFAULT_CMDLINE,
	    .mem_bytes = VMM_DEFAULT_MEM,
	    .cpus = 1,
	    .hugepages = HUGEPAGES_AUTO,
	    .console = CONSOLE_STDIO,
	};
	*help = false;
	opterr = 0;
	optind = 0; /* full re-initialisation, so tests can parse repeatedly */
	while ((c = getopt_long(argc, argv, "+:vqh", opts, NULL)) != -1) {
		switch (c) {
		case OPT_KERNEL: cfg->kernel = optarg; break;
		case OPT_INITRD: cfg->initrd = optarg; break;
		case OPT_CMDLINE: cfg->cmdline = optarg; break;
		case OPT_MEM:
			r = parse_mem(optarg, &cfg->mem_bytes, err, errlen);
			if (r)
				return r;
			break;
		case OPT_CPUS:
			r = parse_uint(optarg, 1, VMM_MAX_CPUS, &n);
			if (r == -EINVAL)
				return fail(err, errlen, "--cpus: '%s' is not a number", optarg);
			if (r)
				return fail(err, errlen, "--cpus: '%s' is out of range (1 to %d)",
					    optarg, VMM_MAX_CPUS);
			cfg->cpus = (unsigned int)n;
			break;
		case OPT_HUGEPAGES:
			if (!strcmp(optarg, "auto"))
				cfg->hugepages = HUGEPAGES_AUTO;
			else if (!strcmp(optarg, "2M"))
				cfg->hugepages = HUGEPAGES_2M;
			else if (!strcmp(optarg, "1G"))
				cfg->hugepages = HUGEPAGES_1G;
			else if (!strcmp(optarg, "off"))
				cfg->hugepages = HUGEPAGES_OFF;
			else
				return fail(err, errlen,
					    "--hugepages: '%s' is not auto, 2M, 1G or off", optarg);
			break;
		case OPT_CONSOLE:
			r = parse_console(cfg, optarg, err, errlen);
			if (r)
				return r;
			break;
		case OPT_DISK:
			if (cfg->nr_disks == VMM_MAX_DISKS)
				return fail(err, errlen, "--disk: at most %d disks", VMM_MAX_DISKS);
			cfg->disk_args[cfg->nr_disks] = strdup(optarg);
			if (!cfg->disk_args[cfg->nr_disks])
				return fail(err, errlen, "out of memory");
			r = parse_disk(cfg->disk_args[cfg->nr_disks], &cfg->disks[cfg->nr_disks],
				       err, errlen);
			cfg->nr_disks++;
			if (r)
				return r;
			break;
		case OPT_NET:
			if (cfg->nr_nets == VMM_MAX_NETS)
				return fail(err, errlen, "--net: at most %d network devices",
					    VMM_MAX_NETS);
			r = parse_net(optarg, &cfg->nets[cfg->nr_nets], err, errlen);
			if (r)
				return r;
			for (unsigned int i = 0; i < cfg->nr_nets; i++)
				if (!strcmp(cfg->nets[i].tap, cfg->nets[cfg->nr_nets].tap))
					return fail(err, errlen, "--net: tap '%s' is given twice",
						    cfg->nets[i].tap);
			cfg->nr_nets++;
			break;
		case OPT_VFIO:
			if (cfg->nr_vfio == VMM_MAX_VFIO)
				return fail(err, errlen, "--vfio: at most %d devices",
					    VMM_MAX_VFIO);
			r = parse_vfio(optarg, cfg->vfio[cfg->nr_vfio], err, errlen);
			if (r)
				return r;
			for (unsigned int i = 0; i < cfg->nr_vfio; i++)
				if (!strcmp(cfg->vfio[i], cfg->vfio[cfg->nr_vfio]))
					return fail(err, errlen, "--vfio: %s is given twice",
						    cfg->vfio[i]);
			cfg->nr_vfio++;
			break;
		case OPT_NO_SECCOMP: cfg->no_seccomp = true; break;
		case OPT_TIMEOUT: {
			char *end;

			errno = 0;
			cfg->timeout_s = strtod(optarg, &end);
			if (!*optarg || *end || errno || !(cfg->timeout_s > 0) ||
			    cfg->timeout_s > 31536000)
				return fail(err, errlen,
					    "--timeout: '%s' is not a number of seconds above 0",
					    optarg);
			break;
		}
		case OPT_EXPECT:
		case OPT_FAIL: {
			const char *opt = c == OPT_EXPECT ? "--expect" : "--fail";
			unsigned int *nr = c == OPT_EXPECT ? &cfg->nr_expect : &cfg->nr_fail;

			r = check_regex(opt, optarg, err, errlen);
			if (r)
				return r;
			if (*nr == VMM_MAX_PATTERNS)
				return fail(err, errlen, "%s: at most %d patterns", opt,
					    VMM_MAX_PATTERNS);
			(c == OPT_EXPECT ? cfg->expect : cfg->fail)[(*nr)++] = optarg;
			break;
		}
		case OPT_RESULT:
			if (strncmp(optarg, "json:", 5) || !optarg[5])
				return fail(err, errlen, "--result: '%s' is not json:PATH", optarg);
			cfg->result_path = optarg + 5;
			break;
		case OPT_API_SOCKET:
			if (!*optarg || strlen(optarg) >= 108) /* sun_path */
				return fail(err, errlen, "--api-socket: '%s' is %s", optarg,
					    *optarg ? "longer than a socket path may be (107 bytes)"
						    : "empty");
			cfg->api_socket = optarg;
			break;
		case 'v': cfg->verbosity = cfg->verbosity < 0 ? 1 : cfg->verbosity + 1; break;
		case 'q': cfg->verbosity = -1; break;
		case 'h': *help = true; return 0;
		case ':': return fail(err, errlen, "option '%s' needs a value", argv[optind - 1]);
		default: return fail(err, errlen, "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return fail(err, errlen, "unexpected argument '%s'", argv[optind]);
	/* PCI slots 1-31 of bus 0: disks, then NICs, then passed devices. */
	if (cfg->nr_disks + cfg->nr_nets + cfg->nr_vfio > VMM_MAX_PCI_DEVICES)
		return fail(err, errlen,
			    "%u --disk, --net and --vfio devices: at most %d fit on the PCI bus",
			    cfg->nr_disks + cfg->nr_nets + cfg->nr_vfio, VMM_MAX_PCI_DEVICES);
	if (!cfg->kernel)
		return fail(err, errlen, "missing --kernel PATH");
	if (!*cfg->kernel)
		return fail(err, errlen, "--kernel: empty path");
	if (cfg->initrd && !*cfg->initrd)
		return fail(err, errlen, "--initrd: empty path");
	if (cfg->hugepages == HUGEPAGES_2M && !IS_ALIGNED(cfg->mem_bytes, 2 * MiB))
		return fail(err, errlen,
			    "--mem: %llu bytes is not a multiple of 2M, needed by --hugepages 2M",
			    (unsigned long long)cfg->mem_bytes);
	if (cfg->hugepages == HUGEPAGES_1G && !IS_ALIGNED(cfg->mem_bytes, GiB))
		return fail(err, errlen,
			    "--mem: %llu bytes is not a multiple of 1G, needed by --hugepages 1G",
			    (unsigned long long)cfg->mem_bytes);
	return 0;
}
