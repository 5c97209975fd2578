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
#include "migrate.h"

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
		return config_fail(err, errlen, "--mem: '%s' is not a size (use e.g. 512M or 4G)",
				   arg);
	if (v < VMM_MIN_MEM)
		return config_fail(err, errlen, "--mem: '%s' is too small (minimum 4M)", arg);
	if (v > VMM_MAX_MEM)
		return config_fail(err, errlen, "--mem: '%s' is too large (maximum 1T)", arg);
	if (!IS_ALIGNED(v, 4096ULL))
		return config_fail(err, errlen, "--mem: '%s' is not a multiple of 4K", arg);
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
		return config_fail(err, errlen, "--console: '%s' is not stdio, none or file:PATH",
				   arg);
	}
	return 0;
}

static bool stacked_repetition(const char *re)
{
	const char *first = NULL; /* a bracket expression's first member, while in one */
	bool after_rep = false;

	for (const char *p = re; *p; p++) {
		bool rep;

		if (first) {
			/* "[]...]" and "[^]...]": a leading ] is a literal; "[:alpha:]",
			 * "[.x.]" and "[=x=]" inside hold a ] of their own */
			if (*p == '[' && (p[1] == ':' || p[1] == '.' || p[1] == '=')) {
				const char *end = strchr(p + 2, p[1]);

				while (end && end[1] != ']')
					end = strchr(end + 1, p[1]);
				if (end) {
					p = end + 1;
					continue;
				}
			}
			if (*p == ']' && p != first)
				first = NULL;
			continue;
		}
		if (*p == '\\' && p[1]) {
			p++;
			after_rep = false;
			continue;
		}
		if (*p == '[') {
			first = p[1] == '^' ? p + 2 : p + 1;
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
		return config_fail(err, errlen,
				   "%s: the regular expression is longer than 512 bytes", opt);
	if (stacked_repetition(re))
		return config_fail(err, errlen, "%s: '%s' stacks repetition operators (like a++)",
				   opt, re);
	r = regcomp(&rx, re, REG_EXTENDED | REG_NOSUB);

	if (r) {
		regerror(r, &rx, why, sizeof(why));
		return config_fail(err, errlen, "%s: '%s' is not a regular expression: %s", opt, re,
				   why);
	}
	regfree(&rx);
	return 0;
}

void config_free(struct vmm_config *cfg)
{
	for (unsigned int i = 0; i < cfg->nr_disks; i++)
		free(cfg->disk_args[i]);
	cfg->nr_disks = 0;
	for (unsigned int i = 0; i < cfg->nr_owned; i++)
		free(cfg->owned[i]);
	cfg->nr_owned = 0;
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
	OPT_NO_JAIL,
	OPT_USER,
	OPT_TIMEOUT,
	OPT_EXPECT,
	OPT_FAIL,
	OPT_RESULT,
	OPT_API_SOCKET,
	OPT_SNAPSHOT_AT,
	OPT_SNAPSHOT_DIR,
	OPT_PAUSED,
	OPT_DISK_COPY,
	OPT_INCOMING,
	OPT_MEM_SHARED,
	OPT_NO_RNG,
	OPT_APPEND,
	OPT_VSOCK,
	OPT_SHARE,
	OPT_FS,
	OPT_NO_KERNEL_CACHE,
};

/* --disk-copy vdX=PATH (restore). */
static int parse_disk_copy(struct vmm_config *cfg, const char *arg, char *err, size_t errlen)
{
	const char *eq = strchr(arg, '=');

	if (strncmp(arg, "vd", 2) || !eq || eq != arg + 3 || arg[2] < 'a' ||
	    arg[2] >= 'a' + VMM_MAX_DISKS || !eq[1])
		return config_fail(err, errlen,
				   "--disk-copy: '%s' is not vdX=PATH (e.g. vda=copy.img)", arg);
	if (cfg->disk_copy[arg[2] - 'a'])
		return config_fail(err, errlen, "--disk-copy: %.3s is given twice", arg);
	cfg->disk_copy[arg[2] - 'a'] = eq + 1;
	return 0;
}

/* The options that describe the machine, which a restore takes from the snapshot. */
static bool machine_option(int c)
{
	return c == OPT_KERNEL || c == OPT_INITRD || c == OPT_CMDLINE || c == OPT_MEM ||
	       c == OPT_CPUS || c == OPT_HUGEPAGES || c == OPT_DISK || c == OPT_NET ||
	       c == OPT_VFIO || c == OPT_MEM_SHARED || c == OPT_NO_RNG || c == OPT_APPEND ||
	       c == OPT_VSOCK || c == OPT_SHARE || c == OPT_FS;
}

static int parse(struct vmm_config *cfg, int argc, char *const argv[], bool *help, char *err,
		 size_t errlen, bool restore);

int config_parse_run(struct vmm_config *cfg, int argc, char *const argv[], bool *help, char *err,
		     size_t errlen)
{
	return parse(cfg, argc, argv, help, err, errlen, false);
}

int config_parse_restore(struct vmm_config *cfg, int argc, char *const argv[], bool *help,
			 char *err, size_t errlen)
{
	int r = parse(cfg, argc, argv, help, err, errlen, true);

	if (!r && !*help && !cfg->restore_dir)
		return config_fail(err, errlen, "missing the snapshot directory: vmm restore DIR");
	return r;
}

/* --append: the kernel command line (default or --cmdline), a space, the string. */
static int append_cmdline(struct vmm_config *cfg, char *err, size_t errlen)
{
	char *s;

	if (!*cfg->append)
		return config_fail(err, errlen, "--append: empty");
	if (cfg->nr_owned == ARRAY_SIZE(cfg->owned) ||
	    asprintf(&s, "%s%s%s", cfg->cmdline, *cfg->cmdline ? " " : "", cfg->append) < 0)
		return config_fail(err, errlen, "out of memory");
	cfg->owned[cfg->nr_owned++] = s;
	cfg->cmdline = s;
	return 0;
}

static int parse(struct vmm_config *cfg, int argc, char *const argv[], bool *help, char *err,
		 size_t errlen, bool restore)
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
	    {"no-jail", no_argument, NULL, OPT_NO_JAIL},
	    {"user", required_argument, NULL, OPT_USER},
	    {"timeout", required_argument, NULL, OPT_TIMEOUT},
	    {"expect", required_argument, NULL, OPT_EXPECT},
	    {"fail", required_argument, NULL, OPT_FAIL},
	    {"result", required_argument, NULL, OPT_RESULT},
	    {"api-socket", required_argument, NULL, OPT_API_SOCKET},
	    {"snapshot-at", required_argument, NULL, OPT_SNAPSHOT_AT},
	    {"snapshot-dir", required_argument, NULL, OPT_SNAPSHOT_DIR},
	    {"paused", no_argument, NULL, OPT_PAUSED},
	    {"disk-copy", required_argument, NULL, OPT_DISK_COPY},
	    {"incoming", required_argument, NULL, OPT_INCOMING},
	    {"mem-shared", no_argument, NULL, OPT_MEM_SHARED},
	    {"no-rng", no_argument, NULL, OPT_NO_RNG},
	    {"no-kernel-cache", no_argument, NULL, OPT_NO_KERNEL_CACHE},
	    {"append", required_argument, NULL, OPT_APPEND},
	    {"vsock", required_argument, NULL, OPT_VSOCK},
	    {"share", required_argument, NULL, OPT_SHARE},
	    {"fs", required_argument, NULL, OPT_FS},
	    {"verbose", no_argument, NULL, 'v'},
	    {"quiet", no_argument, NULL, 'q'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	unsigned long n;
	const char *machine_opt = NULL; /* the first, for --incoming's message */
	bool mem_unshared = false;	/* --mem SIZE,shared=off */
	int c, r, li = 0;

	*cfg = (struct vmm_config){
	    .cmdline = VMM_DEFAULT_CMDLINE,
	    .mem_bytes = VMM_DEFAULT_MEM,
	    .cpus = 1,
	    .hugepages = HUGEPAGES_AUTO,
	    .console = CONSOLE_STDIO,
	    .rng = true,
	    .kernel_cache = true,
	};
	*help = false;
	opterr = 0;
	optind = 0; /* full re-initialisation, so tests can parse repeatedly */
again:
	while ((c = getopt_long(argc, argv, "+:vqh", opts, &li)) != -1) {
		if (restore && machine_option(c))
			return config_fail(err, errlen,
					   "--%s: not an option of restore: the machine comes from "
					   "the snapshot",
					   opts[li].name);
		if (!restore && (c == OPT_PAUSED || c == OPT_DISK_COPY))
			return config_fail(err, errlen,
					   "--%s: an option of vmm restore, not of run",
					   opts[li].name);
		if (restore && c == OPT_INCOMING)
			return config_fail(err, errlen,
					   "--incoming: an option of run, not of restore");
		if (machine_option(c) && !machine_opt)
			machine_opt = opts[li].name;
		switch (c) {
		case OPT_KERNEL: cfg->kernel = optarg; break;
		case OPT_INITRD: cfg->initrd = optarg; break;
		case OPT_CMDLINE: cfg->cmdline = optarg; break;
		case OPT_MEM: { /* SIZE[,shared=on|off] */
			const char *comma = strchr(optarg, ',');
			char size[64];

			if (comma && strcmp(comma, ",shared=on") && strcmp(comma, ",shared=off"))
				return config_fail(err, errlen,
						   "--mem: '%s': after the size, only shared=on or "
						   "shared=off",
						   optarg);
			if (comma)
				cfg->mem_shared = !strcmp(comma, ",shared=on");
			mem_unshared = comma && !cfg->mem_shared;
			snprintf(size, sizeof(size), "%.*s",
				 (int)(comma ? comma - optarg : (ptrdiff_t)strlen(optarg)), optarg);
			r = parse_mem(size, &cfg->mem_bytes, err, errlen);
			if (r)
				return r;
			break;
		}
		case OPT_CPUS:
			r = parse_uint(optarg, 1, VMM_MAX_CPUS, &n);
			if (r == -EINVAL)
				return config_fail(err, errlen, "--cpus: '%s' is not a number",
						   optarg);
			if (r)
				return config_fail(err, errlen,
						   "--cpus: '%s' is out of range (1 to %d)", optarg,
						   VMM_MAX_CPUS);
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
				return config_fail(err, errlen,
						   "--hugepages: '%s' is not auto, 2M, 1G or off",
						   optarg);
			break;
		case OPT_CONSOLE:
			r = parse_console(cfg, optarg, err, errlen);
			if (r)
				return r;
			break;
		case OPT_DISK:
			if (cfg->nr_disks == VMM_MAX_DISKS)
				return config_fail(err, errlen, "--disk: at most %d disks",
						   VMM_MAX_DISKS);
			cfg->disk_args[cfg->nr_disks] = strdup(optarg);
			if (!cfg->disk_args[cfg->nr_disks])
				return config_fail(err, errlen, "out of memory");
			r = parse_disk(cfg->disk_args[cfg->nr_disks], &cfg->disks[cfg->nr_disks],
				       err, errlen);
			cfg->nr_disks++;
			if (r)
				return r;
			break;
		case OPT_NET:
			if (cfg->nr_nets == VMM_MAX_NETS)
				return config_fail(err, errlen, "--net: at most %d network devices",
						   VMM_MAX_NETS);
			r = parse_net(optarg, &cfg->nets[cfg->nr_nets], err, errlen);
			if (r)
				return r;
			for (unsigned int i = 0; i < cfg->nr_nets; i++)
				if (cfg->nets[i].user && cfg->nets[cfg->nr_nets].user)
					return config_fail(err, errlen,
							   "--net user: given twice (one user-mode "
							   "network per VM)");
				else if (!cfg->nets[i].user &&
					 !strcmp(cfg->nets[i].tap, cfg->nets[cfg->nr_nets].tap))
					return config_fail(err, errlen,
							   "--net: tap '%s' is given twice",
							   cfg->nets[i].tap);
			cfg->nr_nets++;
			break;
		case OPT_VFIO:
			if (cfg->nr_vfio == VMM_MAX_VFIO)
				return config_fail(err, errlen, "--vfio: at most %d devices",
						   VMM_MAX_VFIO);
			r = parse_vfio(optarg, cfg->vfio[cfg->nr_vfio], err, errlen);
			if (r)
				return r;
			for (unsigned int i = 0; i < cfg->nr_vfio; i++)
				if (!strcmp(cfg->vfio[i], cfg->vfio[cfg->nr_vfio]))
					return config_fail(err, errlen, "--vfio: %s is given twice",
							   cfg->vfio[i]);
			cfg->nr_vfio++;
			break;
		case OPT_NO_SECCOMP: cfg->no_seccomp = true; break;
		case OPT_NO_JAIL: cfg->no_jail = true; break;
		case OPT_USER:
			if (!*optarg || *optarg == ':')
				return config_fail(err, errlen, "--user: '%s' names no user",
						   optarg);
			cfg->user = optarg;
			break;
		case OPT_TIMEOUT: {
			char *end;

			errno = 0;
			cfg->timeout_s = strtod(optarg, &end);
			if (!*optarg || *end || errno || !(cfg->timeout_s > 0) ||
			    cfg->timeout_s > 31536000)
				return config_fail(
				    err, errlen,
				    "--timeout: '%s' is not a number of seconds above 0", optarg);
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
				return config_fail(err, errlen, "%s: at most %d patterns", opt,
						   VMM_MAX_PATTERNS);
			(c == OPT_EXPECT ? cfg->expect : cfg->fail)[(*nr)++] = optarg;
			break;
		}
		case OPT_RESULT:
			if (strncmp(optarg, "json:", 5) || !optarg[5])
				return config_fail(err, errlen, "--result: '%s' is not json:PATH",
						   optarg);
			cfg->result_path = optarg + 5;
			break;
		case OPT_API_SOCKET:
			if (!*optarg || strlen(optarg) >= 108) /* sun_path */
				return config_fail(
				    err, errlen, "--api-socket: '%s' is %s", optarg,
				    *optarg ? "longer than a socket path may be (107 bytes)"
					    : "empty");
			cfg->api_socket = optarg;
			break;
		case OPT_SNAPSHOT_AT:
			r = check_regex("--snapshot-at", optarg, err, errlen);
			if (r)
				return r;
			cfg->snapshot_at = optarg;
			break;
		case OPT_SNAPSHOT_DIR:
			if (!*optarg)
				return config_fail(err, errlen, "--snapshot-dir: empty path");
			cfg->snapshot_dir = optarg;
			break;
		case OPT_PAUSED: cfg->start_paused = true; break;
		case OPT_MEM_SHARED: cfg->mem_shared = true; break;
		case OPT_NO_RNG: cfg->rng = false; break;
		case OPT_NO_KERNEL_CACHE: cfg->kernel_cache = false; break;
		case OPT_APPEND:
			if (cfg->append)
				return config_fail(err, errlen,
						   "--append: given twice (one string holds every "
						   "parameter: --append 'a=1 b=2')");
			cfg->append = optarg;
			break;
		case OPT_VSOCK:
			if (cfg->vsock.on)
				return config_fail(err, errlen,
						   "--vsock: given twice (one device)");
			if ((r = parse_vsock(optarg, &cfg->vsock, err, errlen)))
				return r;
			break;
		case OPT_SHARE:
		case OPT_FS:
			if (cfg->nr_fs == VMM_MAX_FS)
				return config_fail(err, errlen,
						   "--share and --fs: at most %d shared folders",
						   VMM_MAX_FS);
			if ((r = parse_fs(optarg, c == OPT_SHARE, &cfg->fs[cfg->nr_fs], err,
					  errlen)))
				return r;
			for (unsigned int i = 0; i < cfg->nr_fs; i++)
				if (!strcmp(cfg->fs[i].tag, cfg->fs[cfg->nr_fs].tag))
					return config_fail(err, errlen,
							   "%s: tag '%s' is given twice (tag=NAME "
							   "tells them apart)",
							   c == OPT_SHARE ? "--share" : "--fs",
							   cfg->fs[i].tag);
			cfg->nr_fs++;
			break;
		case OPT_INCOMING: {
			struct mig_addr a;
			char why[200];

			if (mig_addr_parse(optarg, &a, why, sizeof(why)))
				return config_fail(err, errlen, "--incoming: %s", why);
			cfg->incoming = optarg;
			break;
		}
		case OPT_DISK_COPY:
			r = parse_disk_copy(cfg, optarg, err, errlen);
			if (r)
				return r;
			break;
		case 'v': cfg->verbosity = cfg->verbosity < 0 ? 1 : cfg->verbosity + 1; break;
		case 'q': cfg->verbosity = -1; break;
		case 'h': *help = true; return 0;
		case ':':
			return config_fail(err, errlen, "option '%s' needs a value",
					   argv[optind - 1]);
		default: return config_fail(err, errlen, "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (restore && optind < argc && !cfg->restore_dir) { /* restore's DIR, anywhere */
		cfg->restore_dir = argv[optind++];
		goto again;
	}
	if (optind < argc)
		return config_fail(err, errlen, "unexpected argument '%s'", argv[optind]);
	/* --snapshot-dir alone: where the API's snapshots may go (the jail's) */
	if (cfg->snapshot_at && !cfg->snapshot_dir)
		return config_fail(err, errlen, "--snapshot-at needs --snapshot-dir DIR");
	if (cfg->snapshot_dir && !cfg->snapshot_at && !cfg->api_socket)
		return config_fail(err, errlen,
				   "--snapshot-dir needs --snapshot-at REGEX or --api-socket PATH");
	if (cfg->incoming && machine_opt)
		return config_fail(err, errlen,
				   "--%s: not an option of run --incoming: the machine comes from "
				   "the source",
				   machine_opt);
	if (restore || cfg->incoming)
		return 0;
	/* PCI slots 1-31 of bus 0: disks, NICs, passed devices, the rng, vsock, shares. */
	if (cfg->nr_disks + cfg->nr_nets + cfg->nr_vfio + cfg->rng + cfg->vsock.on + cfg->nr_fs >
	    VMM_MAX_PCI_DEVICES)
		return config_fail(
		    err, errlen,
		    "%u --disk, --net, --vfio, --vsock, --share and --fs devices%s: at "
		    "most %d fit on the PCI bus",
		    cfg->nr_disks + cfg->nr_nets + cfg->nr_vfio + cfg->vsock.on + cfg->nr_fs,
		    cfg->rng ? " and the rng (--no-rng leaves it out)" : "", VMM_MAX_PCI_DEVICES);
	if (!cfg->kernel)
		return config_fail(err, errlen, "missing --kernel PATH");
	if (!*cfg->kernel)
		return config_fail(err, errlen, "--kernel: empty path");
	if (cfg->initrd && !*cfg->initrd)
		return config_fail(err, errlen, "--initrd: empty path");
	if (cfg->append && (r = append_cmdline(cfg, err, errlen)))
		return r;
	if (cfg->nr_fs && mem_unshared)
		return config_fail(
		    err, errlen,
		    "--mem ...,shared=off: --share and --fs need shared memory (their "
		    "back-end maps guest RAM)");
	if (cfg->nr_fs) /* a vhost-user back-end maps guest RAM */
		cfg->mem_shared = true;
	if (cfg->hugepages == HUGEPAGES_2M && !IS_ALIGNED(cfg->mem_bytes, 2 * MiB))
		return config_fail(
		    err, errlen,
		    "--mem: %llu bytes is not a multiple of 2M, needed by --hugepages 2M",
		    (unsigned long long)cfg->mem_bytes);
	if (cfg->hugepages == HUGEPAGES_1G && !IS_ALIGNED(cfg->mem_bytes, GiB))
		return config_fail(
		    err, errlen,
		    "--mem: %llu bytes is not a multiple of 1G, needed by --hugepages 1G",
		    (unsigned long long)cfg->mem_bytes);
	return 0;
}
