/* vmm: command-line entry point. Only main() decides the exit status. */
#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>
#include <zlib.h>

#include "config.h"
#include "jail.h"
#include "log.h"
#include "machine.h"
#include "migrate.h"
#include "result.h"
#include "snapshot.h"
#include "state.h"

static const char usage_top[] =
    "usage: vmm run --kernel PATH [options]   boot a guest\n"
    "       vmm run --incoming ADDR [options] receive a migrating guest\n"
    "       vmm ctl SOCKET COMMAND            talk to a running vmm's --api-socket:\n"
    "                                         status, pause, resume, stop, stats,\n"
    "                                         snapshot DIR, migrate ADDR\n"
    "                                         [downtime_ms=N] [timeout_s=N],\n"
    "                                         migrate-cancel\n"
    "       vmm restore DIR [options]         resume a snapshot in a new process\n"
    "       vmm snapshot-info DIR             a snapshot's header and sections\n"
    "       vmm --help | --version\n"
    "\n"
    "Run 'vmm run --help' for the options of run.\n";

static const char usage_run[] =
    "usage: vmm run --kernel PATH [options]\n"
    "\n"
    "  --kernel PATH        bzImage (64-bit boot protocol) or ELF64 vmlinux\n"
    "  --initrd PATH        initial ramdisk\n"
    "  --cmdline STR        kernel command line, replacing the default:\n"
    "                       \"" VMM_DEFAULT_CMDLINE "\"\n"
    "  --append STR         added to the kernel command line (default or\n"
    "                       --cmdline's), after a space\n"
    "  --mem SIZE[,shared=on]\n"
    "                       guest RAM, e.g. 512M, 4G (a bare number is MiB;\n"
    "                       default 512M); shared=on: as --mem-shared\n"
    "  --cpus N             vCPUs (default 1)\n"
    "  --hugepages MODE     auto|2M|1G|off (default auto: 2M hugetlb pages when\n"
    "                       enough are free, else transparent huge pages)\n"
    "  --mem-shared         guest RAM in shared memfds (hugetlb ones with\n"
    "                       --hugepages 2M|1G): what 'migrate local:' hands over\n"
    "                       (on by itself with --share and --fs: virtiofsd maps it)\n"
    "  --disk path=FILE[,readonly=on][,serial=ID][,cache=none|writeback]\n"
    "       [,engine=io_uring|aio|sync][,queues=N]\n"
    "                       a virtio-blk disk on a raw image or a block device\n"
    "                       (repeatable: vda, vdb, ...);\n"
    "                       default engine io_uring, one queue per vCPU\n"
    "  --net tap=NAME[,mac=52:54:00:xx:xx:xx][,queues=N]\n"
    "                       a virtio-net NIC on a tap device (repeatable;\n"
    "                       created when missing and run as root); default\n"
    "                       MAC from the tap's name, one queue pair\n"
    "  --net user[,forward=tcp|udp:HOSTPORT:GUESTPORT]...[,mac=...]\n"
    "                       a virtio-net NIC on user-mode networking through\n"
    "                       passt (no root, no tap): DHCP, the host's network,\n"
    "                       forwarded host ports\n"
    "  --vfio BDF           pass host PCI device BDF (e.g. 0000:00:04.0, or its\n"
    "                       sysfs path), bound to vfio-pci, to the guest\n"
    "                       (repeatable; needs an IOMMU)\n"
    "  --no-rng             no virtio-rng device (on by default: the guest's\n"
    "                       /dev/hwrng reads the host's getrandom())\n"
    "  --no-kernel-cache    decompress a bzImage's kernel on every boot instead\n"
    "                       of keeping it in $XDG_CACHE_HOME/vmm (~/.cache/vmm)\n"
    "  --vsock cid=N,socket=PATH\n"
    "                       virtio-vsock, guest CID N (3 and up): a host program\n"
    "                       connects to PATH and writes 'CONNECT <port>\\n' to\n"
    "                       reach a guest listener (answered 'OK <hostport>\\n');\n"
    "                       the guest's connections to CID 2 port P reach a\n"
    "                       listener on PATH_P\n"
    "  --share HOSTDIR[,tag=NAME][,readonly=on]\n"
    "                       share a host folder (virtio-fs, served by a\n"
    "                       virtiofsd vmm starts; repeatable); in the guest:\n"
    "                       mount -t virtiofs NAME /mnt (NAME: the folder's\n"
    "                       name unless tag= says otherwise)\n"
    "  --fs tag=NAME,socket=PATH\n"
    "                       virtio-fs served by a vhost-user-fs back-end the\n"
    "                       user started, listening at PATH\n"
    "  --console SINK       stdio|file:PATH|none (default stdio; on a terminal,\n"
    "                       Ctrl-A x quits and Ctrl-A Ctrl-A sends Ctrl-A)\n"
    "  --no-seccomp         run without the seccomp filter (debugging)\n"
    "  --user USER[:GROUP]  whom vmm becomes after setup when started as root\n"
    "                       (default nobody)\n"
    "  --no-jail            keep privilege and the host's network and files\n"
    "                       after setup (debugging; see JAIL below)\n"
    "  --timeout SECONDS    stop the guest after this long: exit 124\n"
    "  --expect REGEX       exit 0 as soon as a console line matches\n"
    "  --fail REGEX         exit 1 as soon as a console line matches\n"
    "  --result json:PATH   write a JSON summary of the run at exit\n"
    "  --api-socket PATH    control socket (see vmm ctl)\n"
    "  --snapshot-at REGEX  when a console line matches, snapshot the VM into\n"
    "  --snapshot-dir DIR   DIR (new or empty) and exit 0 (see vmm restore);\n"
    "                       with --api-socket alone: where `snapshot` may write\n"
    "  --incoming ADDR      unix:PATH or tcp:HOST:PORT: wait there for one\n"
    "                       migration (vmm ctl SOCKET migrate ADDR), then run\n"
    "                       the guest; the machine comes from the source, so\n"
    "                       only the host-side options of restore are taken\n"
    "  The guest ends vmm with status N by writing byte N to I/O port 0x505\n"
    "  or to MMIO address 0xfebff000.\n"
    "  -v, --verbose        more detail on stderr (repeat for debug)\n"
    "  -q, --quiet          errors only\n"
    "  -h, --help           this text\n"
    "\n"
    "JAIL (unless --no-jail): once everything is open, vmm enters new mount,\n"
    "IPC, UTS and network namespaces (a user namespace when not root), sees\n"
    "only its snapshot and vsock directories, is held to --snapshot-dir by\n"
    "Landlock, drops root for --user with no capabilities and no_new_privs,\n"
    "then loads seccomp. With --api-socket it keeps the host's network and\n"
    "file view (migrations) and writes snapshots only beneath --snapshot-dir.\n"
    "A child that stays as vmm started puts --result in place and removes\n"
    "the sockets.\n"
    "\n"
    "exit status:\n"
    "  0      the guest rebooted, reset or powered off\n"
    "  1      runtime failure: host error, guest triple fault, KVM error,\n"
    "         a disk image locked by another process, a busy tap device\n"
    "  2      usage error: bad option or value, unusable kernel/initrd file,\n"
    "         a --vfio device that does not exist or is not bound to vfio-pci\n"
    "  N      the guest wrote N to the exit device\n"
    "  124    --timeout expired\n"
    "  128+N  stopped by signal N (130 for SIGINT or Ctrl-A x, 143 for SIGTERM\n"
    "         or a 'stop' the guest ignored, 159 for a seccomp violation)\n";

static const char usage_restore[] =
    "usage: vmm restore DIR [options]\n"
    "\n"
    "Resume the guest saved in DIR (vmm ctl SOCKET snapshot DIR, or run's\n"
    "--snapshot-at) in this process. The machine (memory, vCPUs, disks, NICs)\n"
    "comes from the snapshot; these host-side options may be given again:\n"
    "  --console, --no-seccomp, --no-jail, --user, --timeout, --expect,\n"
    "  --fail, --result, --api-socket, --snapshot-at/--snapshot-dir, -v, -q\n"
    "  (as for run)\n"
    "  --paused             restore, then wait for 'vmm ctl SOCKET resume'\n"
    "  --disk-copy vdX=PATH use PATH, a copy of that disk's image as it was at\n"
    "                       the snapshot, instead of the image itself\n"
    "\n"
    "A disk image that changed after the snapshot (its inode, size or\n"
    "modification time differ) is refused: its content no longer matches the\n"
    "guest's memory. Exit status as for run; 2 for a snapshot that is missing,\n"
    "damaged, of another format, architecture or CPU vendor, or whose disks\n"
    "are missing or changed.\n";

/* Each disk image's absolute path, for a snapshot (before seccomp). */
static void resolve_disks(struct vmm_config *cfg)
{
	for (unsigned int i = 0; i < cfg->nr_disks; i++) {
		char *abs = realpath(cfg->disks[i].path, NULL);

		if (abs && cfg->nr_owned < ARRAY_SIZE(cfg->owned)) {
			cfg->owned[cfg->nr_owned++] = abs;
			cfg->disk_abs[i] = abs;
		} else {
			free(abs);
		}
	}
}

/*
 * Build the machine (booted, restored from st, or migrated in: in), run
 * it: the exit status.
 */
static int launch_jailed(struct vmm_config *cfg, const struct state_stream *st, struct incoming *in,
			 struct result_file *result);

static int launch(struct vmm_config *cfg, const struct state_stream *st, struct incoming *in)
{
	struct result_file result = {.fd = -1};
	bool usage;
	int r;

	if (machine_check(cfg))
		return VMM_EXIT_USAGE;
	if (result_open(&result, cfg->result_path))
		return VMM_EXIT_FAILURE;
	if ((r = jail_plan(cfg, &usage))) { /* before anything opens: the keeper forks small */
		if (usage)
			result_discard(&result);
		else
			(void)result_commit(&result, result_new(VMM_EXIT_FAILURE,
								outcome_name(OUTCOME_HOST_ERROR),
								log_last_error()));
		jail_finish();
		return usage ? VMM_EXIT_USAGE : VMM_EXIT_FAILURE;
	}
	r = launch_jailed(cfg, st, in, &result);
	jail_finish(); /* the result is in place, the keeper gone */
	return r;
}

static int launch_jailed(struct vmm_config *cfg, const struct state_stream *st, struct incoming *in,
			 struct result_file *result)
{
	static struct machine m; /* large (the device list): not on the stack */
	static struct state_stream mst;
	struct guest_mem ram = {0};
	bool usage;
	int r;
	if (in && (r = incoming_receive(in, cfg, &ram, &mst, &usage))) {
		mem_destroy(&ram);
		if (r == -EINTR && in->signo) { /* stopped by a signal: 128+N, as a run */
			(void)result_commit(result, result_new(VMM_EXIT_SIGNAL + in->signo,
							       outcome_name(OUTCOME_SIGNAL),
							       log_last_error()));
			return VMM_EXIT_SIGNAL + in->signo;
		}
		if (!usage)
			(void)result_commit(result, result_new(VMM_EXIT_FAILURE,
							       outcome_name(OUTCOME_HOST_ERROR),
							       log_last_error()));
		else
			result_discard(result);
		return usage ? VMM_EXIT_USAGE : VMM_EXIT_FAILURE;
	}
	if (in)
		st = &mst;
	resolve_disks(cfg);
	r = machine_create_mem(&m, cfg, result, in ? &ram : NULL, &usage);
	if (!r)
		r = st ? restore_apply(&m, st, &usage) : machine_load(&m, &usage);
	if (in && (r = incoming_finish(in, r, log_last_error()))) {
		if (!usage)
			log_err(NULL, "incoming: telling the source the guest runs here: %s",
				strerror(-r));
	}
	if (r) {
		machine_destroy(&m);
		if (usage) {
			result_discard(result); /* bad input writes nothing */
		} else {
			/* A run that failed before the guest started still reports. */
			(void)result_commit(result, result_new(VMM_EXIT_FAILURE,
							       outcome_name(OUTCOME_HOST_ERROR),
							       log_last_error()));
		}
		return usage ? VMM_EXIT_USAGE : VMM_EXIT_FAILURE;
	}
	if (!m.vm.hw_virt)
		log_warn(NULL,
			 "this host's KVM is not hardware-assisted (no vmx/svm CPU flag): stock "
			 "Linux kernels will not boot here; scripts/lab runs them on a real KVM");
	r = machine_run(&m);
	machine_destroy(&m);
	result_discard(result); /* only if the run could not write it */
	return r;
}

static void set_verbosity(const struct vmm_config *cfg)
{
	log_set_level(cfg->verbosity < 0    ? LOG_ERROR
		      : cfg->verbosity == 0 ? LOG_WARN
		      : cfg->verbosity == 1 ? LOG_INFO
					    : LOG_DEBUG);
}

static int cmd_run(int argc, char *argv[])
{
	struct vmm_config cfg;
	sigset_t sigs;
	char err[256];
	bool help;
	int r;

	if (config_parse_run(&cfg, argc, argv, &help, err, sizeof(err))) {
		log_err(NULL, "%s", err);
		config_free(&cfg);
		return VMM_EXIT_USAGE;
	}
	if (help) {
		fputs(usage_run, stdout);
		config_free(&cfg);
		return VMM_EXIT_OK;
	}
	set_verbosity(&cfg);
	/* A stop signal during setup is served once the run starts. */
	machine_block_signals(&sigs);
	if (cfg.incoming) {
		struct incoming in = {.listen_fd = -1, .fd = -1, .sig_fd = -1};

		r = launch(&cfg, NULL, &in);
		incoming_close(&in);
	} else {
		r = launch(&cfg, NULL, NULL);
	}
	config_free(&cfg);
	return r;
}

static int cmd_restore(int argc, char *argv[])
{
	static struct state_stream st;
	struct vmm_config cfg;
	void *buf = NULL;
	size_t len = 0;
	sigset_t sigs;
	char err[256];
	bool help;
	int r;

	if (config_parse_restore(&cfg, argc, argv, &help, err, sizeof(err))) {
		log_err(NULL, "%s", err);
		config_free(&cfg);
		return VMM_EXIT_USAGE;
	}
	if (help) {
		fputs(usage_restore, stdout);
		config_free(&cfg);
		return VMM_EXIT_OK;
	}
	set_verbosity(&cfg);
	machine_block_signals(&sigs);
	if (restore_read(cfg.restore_dir, &buf, &len) || restore_prepare(&cfg, &st, buf, len))
		r = VMM_EXIT_USAGE;
	else
		r = launch(&cfg, &st, NULL);
	free(buf);
	config_free(&cfg);
	return r;
}

/* vmm snapshot-info DIR: the header and one line per section, checked. */
static int cmd_snapshot_info(int argc, char *argv[])
{
	static const char *const kinds[] = {"?", "config", "memory", "vm", "vcpu", "device", "cpu"};
	static struct state_stream st;
	void *buf = NULL;
	size_t len = 0;
	char why[256];

	if (argc != 2 || argv[1][0] == '-') {
		log_err(NULL, "usage: vmm snapshot-info DIR");
		return VMM_EXIT_USAGE;
	}
	if (restore_read(argv[1], &buf, &len))
		return VMM_EXIT_USAGE;
	if (state_parse(&st, buf, len, why, sizeof(why))) {
		log_err(NULL, "snapshot-info: '%s': %s", argv[1], why);
		free(buf);
		return VMM_EXIT_USAGE;
	}
	printf("format %u arch %u vendor %s tsc_khz %u sections %u\n", st.hdr.format, st.hdr.arch,
	       st.hdr.vendor, st.hdr.tsc_khz, st.n);
	for (unsigned int i = 0; i < st.n; i++)
		printf("%s %s v%u %zu bytes crc32 %08lx\n", st.sec[i].name,
		       st.sec[i].type < ARRAY_SIZE(kinds) ? kinds[st.sec[i].type] : "?",
		       st.sec[i].version, st.sec[i].len,
		       crc32_z(0, st.sec[i].payload, st.sec[i].len));
	free(buf);
	return VMM_EXIT_OK;
}

/*
 * migrate's address as the control socket takes it: a unix path made
 * absolute, a tcp host name resolved (vmm's own thread reads no files).
 */
static int ctl_migrate_addr(const char *arg, char *out, size_t len)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
	char cwd[4096], host[INET6_ADDRSTRLEN];
	struct mig_addr a;
	int n;

	if (mig_addr_parse(arg, &a, cwd, sizeof(cwd))) {
		log_err(NULL, "ctl: migrate: %s", cwd);
		return -EINVAL;
	}
	if (!a.tcp) {
		const char *scheme = a.local ? "local" : "unix";

		if (a.path[0] == '/' || !getcwd(cwd, sizeof(cwd)))
			n = snprintf(out, len, "%s:%s", scheme, a.path);
		else
			n = snprintf(out, len, "%s:%s/%s", scheme, cwd, a.path);
		return n < 0 || (size_t)n >= len ? -EINVAL : 0;
	}
	if (getaddrinfo(a.host, a.port, &hints, &res) || !res) {
		log_err(NULL, "ctl: migrate: cannot resolve '%s'", a.host);
		return -EINVAL;
	}
	if (res->ai_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)res->ai_addr)->sin6_addr, host,
			  sizeof(host));
	else
		inet_ntop(AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr, host,
			  sizeof(host));
	n = snprintf(out, len, res->ai_family == AF_INET6 ? "tcp:[%s]:%s" : "tcp:%s:%s", host,
		     a.port);
	freeaddrinfo(res);
	return n < 0 || (size_t)n >= len ? -EINVAL : 0;
}

/* The request line of vmm ctl's arguments: a snapshot's DIR made absolute. */
static int ctl_request(int argc, char *argv[], char *line, size_t len)
{
	char cwd[4096];
	int n;

	if (!strcmp(argv[2], "migrate")) {
		char addr[4096];

		if (argc < 4 || argc > 6)
			return -EINVAL;
		if (ctl_migrate_addr(argv[3], addr, sizeof(addr)))
			return -EBADMSG; /* said */
		n = snprintf(line, len, "migrate %s%s%s%s%s\n", addr, argc > 4 ? " " : "",
			     argc > 4 ? argv[4] : "", argc > 5 ? " " : "", argc > 5 ? argv[5] : "");
	} else if (!strcmp(argv[2], "snapshot")) {
		if (argc != 4 || !argv[3][0])
			return -EINVAL;
		if (argv[3][0] == '/' || !getcwd(cwd, sizeof(cwd)))
			n = snprintf(line, len, "snapshot %s\n", argv[3]);
		else
			n = snprintf(line, len, "snapshot %s/%s\n", cwd, argv[3]);
	} else {
		if (argc != 3)
			return -EINVAL;
		n = snprintf(line, len, "%s\n", argv[2]);
	}
	return n < 0 || (size_t)n >= len || strchr(line, '\n') != line + n - 1 ? -EINVAL : 0;
}

/* vmm ctl SOCKET COMMAND: one request, the reply on stdout. */
static int cmd_ctl(int argc, char *argv[])
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char line[API_LINE_MAX], buf[4096];
	json_t *reply;
	size_t off = 0;
	bool ok;
	ssize_t n;
	int fd, r = 0;

	if (argc < 3 || argc > 6 || !argv[1][0] || strlen(argv[1]) >= sizeof(sa.sun_path) ||
	    (r = ctl_request(argc, argv, line, sizeof(line)))) {
		if (r == -EBADMSG)
			return VMM_EXIT_USAGE;
		log_err(NULL, "usage: vmm ctl SOCKET COMMAND (status, pause, resume, stop, stats, "
			      "snapshot DIR, migrate ADDR [downtime_ms=N] [timeout_s=N], "
			      "migrate-cancel)");
		return VMM_EXIT_USAGE;
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", argv[1]);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		log_err(NULL, "ctl: cannot connect to '%s': %s", argv[1], strerror(errno));
		return VMM_EXIT_FAILURE;
	}
	if (write(fd, line, strlen(line)) < 0) {
		log_err(NULL, "ctl: '%s': %s", argv[1], strerror(errno));
		close(fd);
		return VMM_EXIT_FAILURE;
	}
	while (off < sizeof(buf) - 1 && (n = read(fd, buf + off, sizeof(buf) - 1 - off)) > 0)
		off += (size_t)n;
	close(fd);
	buf[off] = '\0';
	fputs(buf, stdout);
	reply = json_loads(buf, JSON_DISABLE_EOF_CHECK, NULL);
	ok = json_is_true(json_object_get(reply, "ok"));
	if (!reply)
		log_err(NULL, "ctl: '%s' answered something that is not JSON", argv[1]);
	json_decref(reply);
	return ok ? VMM_EXIT_OK : VMM_EXIT_FAILURE;
}

int main(int argc, char *argv[])
{
	/*
	 * Large buffers (a kernel image read in, a decompressor's window) are
	 * mapped and given back when freed. glibc would otherwise raise this
	 * threshold when the first one is freed and keep later ones in its
	 * heap: 8 MiB more of resident VMM for the life of the VM.
	 */
	mallopt(M_MMAP_THRESHOLD, 128 << 10);
	if (argc < 2) {
		fputs(usage_top, stderr);
		return VMM_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		fputs(usage_top, stdout);
		return VMM_EXIT_OK;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("vmm %s\n", VMM_VERSION);
		return VMM_EXIT_OK;
	}
	if (!strcmp(argv[1], "run"))
		return cmd_run(argc - 1, argv + 1);
	if (!strcmp(argv[1], "ctl"))
		return cmd_ctl(argc - 1, argv + 1);
	if (!strcmp(argv[1], "restore"))
		return cmd_restore(argc - 1, argv + 1);
	if (!strcmp(argv[1], "snapshot-info"))
		return cmd_snapshot_info(argc - 1, argv + 1);
	log_err(NULL, "unknown command '%s' (try 'vmm --help')", argv[1]);
	return VMM_EXIT_USAGE;
}
