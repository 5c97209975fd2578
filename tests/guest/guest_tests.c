/*
 * Tier 2: tiny freestanding guests (guests/NAME.c) run on the host's
 * /dev/kvm through the same vm_create/vm_load/vm_run path as `vmm run`.
 * A recording test device sits at TESTDEV_PIO and TESTDEV_MMIO; console
 * output is captured through a pipe. Each test skips (never passes) when
 * /dev/kvm is unusable.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "vm.h"

#define TESTDEV_PIO 0x5000
#define TESTDEV_MMIO 0xd0000000ULL
#define GUEST_DIR "build/guests/"
#define WATCHDOG_S 60

struct access {
	char space; /* 'P' or 'M' */
	bool is_write;
	uint64_t offset;
	uint32_t len;
	uint64_t value;
};

struct testdev {
	pthread_mutex_t lock;
	struct access log[64];
	unsigned int n;
};

struct testdev_port {
	struct testdev *td;
	char space;
};

static void testdev_access(void *opaque, uint64_t offset, uint8_t *data,
			   uint32_t len, bool is_write)
{
	struct testdev_port *port = opaque;
	struct testdev *td = port->td;
	struct access a = {port->space, is_write, offset, len, 0};

	if (!is_write)
		for (uint32_t i = 0; i < len; i++)
			data[i] = (uint8_t)(0xa0 ^ (offset + i));
	memcpy(&a.value, data, len);
	pthread_mutex_lock(&td->lock);
	if (td->n < 64)
		td->log[td->n++] = a;
	pthread_mutex_unlock(&td->lock);
}

struct watchdog {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
	struct vm *vm;
};

static void *watchdog_thread(void *arg)
{
	struct watchdog *w = arg;
	struct timespec deadline;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += WATCHDOG_S;
	pthread_mutex_lock(&w->lock);
	while (!w->done)
		if (pthread_cond_timedwait(&w->cond, &w->lock, &deadline) == ETIMEDOUT) {
			vm_request_stop(w->vm, 124, "test watchdog expired");
			break;
		}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

struct run_result {
	int status;
	char reason[160];
	char out[4096];
	char err[4096]; /* what the VMM logged meanwhile */
};

/* Attached as the first --disk (PCI 00:01.0, two queues) when set... */
static const char *g_disk;
/* ...and this tap as the first --net (00:02.0). */
static const char *g_net;

/* Send our stderr into a memfd; returns the saved stderr. */
static int stderr_capture(int *memfd)
{
	int saved;

	fflush(stderr);
	*memfd = memfd_create("guest-test-stderr", MFD_CLOEXEC);
	saved = dup(STDERR_FILENO);
	if (*memfd < 0 || saved < 0 || dup2(*memfd, STDERR_FILENO) < 0)
		return -1;
	return saved;
}

static void stderr_restore(int saved, int memfd, char *buf, size_t size)
{
	ssize_t n;

	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	n = pread(memfd, buf, size - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	close(memfd);
}

/* Everything up to vm_run: NULL, or the step that failed (nothing asserts here). */
static const char *start_vm(struct vm *vm, struct vmm_config *cfg, struct testdev *td,
			    struct testdev_port *pio, struct testdev_port *mmio)
{
	bool usage;

	if (vm_create(vm, cfg, &usage))
		return "vm_create";
	if (td && (bus_register(&vm->pio, TESTDEV_PIO, 16, testdev_access, pio, "testdev") ||
		   bus_register(&vm->mmio, TESTDEV_MMIO, 0x1000, testdev_access, mmio,
				"testdev")))
		return "testdev";
	if (vm_load(vm, &usage))
		return "vm_load";
	return NULL;
}

/* Boot guests/<name>.elf; fill res. td may be NULL. */
static void run_guest(const char *name, unsigned int cpus, uint64_t mem,
		      const char *cmdline, const char *initrd,
		      struct testdev *td, struct run_result *res)
{
	char path[256];
	struct vmm_config cfg = {
		.kernel = path, .initrd = initrd,
		.cmdline = cmdline ? cmdline : VMM_DEFAULT_CMDLINE,
		.mem_bytes = mem, .cpus = cpus, .hugepages = HUGEPAGES_OFF,
		.console = CONSOLE_NONE,
		/* A filter would outlive this VM and kill the test process at
		 * its next open() (confinement has its own tests). */
		.no_seccomp = true,
	};
	struct testdev_port pio = {td, 'P'}, mmio = {td, 'M'};
	struct watchdog w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
			     false, NULL};
	const char *failed;
	struct vm vm;
	pthread_t wd;
	int p[2], memfd, saved;
	ssize_t n;

	snprintf(path, sizeof(path), GUEST_DIR "%s.elf", name);
	memset(res, 0, sizeof(*res));
	if (g_disk) {
		cfg.disks[0] = (struct disk_config){.path = g_disk, .queues = 2};
		cfg.nr_disks = 1;
	}
	if (g_net) {
		cfg.nets[0] = (struct net_config){.mac = {0x52, 0x54, 0, 0x12, 0x34, 0x56},
						  .queues = 1};
		snprintf(cfg.nets[0].tap, sizeof(cfg.nets[0].tap), "%s", g_net);
		cfg.nr_nets = 1;
	}
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	saved = stderr_capture(&memfd);
	assert_true(saved >= 0);
	log_ratelimit_reset();
	failed = start_vm(&vm, &cfg, td, &pio, &mmio);
	if (failed) {
		stderr_restore(saved, memfd, res->err, sizeof(res->err));
		fail_msg("%s failed: %s", failed, res->err);
	}
	vm.serial.out_fd = p[1];
	w.vm = &vm;
	assert_int_equal(pthread_create(&wd, NULL, watchdog_thread, &w), 0);

	res->status = vm_run(&vm);

	pthread_mutex_lock(&w.lock);
	w.done = true;
	pthread_cond_signal(&w.cond);
	pthread_mutex_unlock(&w.lock);
	pthread_join(wd, NULL);
	snprintf(res->reason, sizeof(res->reason), "%s", vm.exit_reason);
	vm_destroy(&vm);
	stderr_restore(saved, memfd, res->err, sizeof(res->err));
	close(p[1]);
	n = read(p[0], res->out, sizeof(res->out) - 1);
	res->out[n > 0 ? n : 0] = '\0';
	close(p[0]);
	if (res->err[0])
		fprintf(stderr, "%s", res->err); /* still shown, as before */
}

static int kvm_usable(void **state)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	(void)state;
	if (fd < 0) {
		fprintf(stderr, "guest tests: /dev/kvm: %s\n", strerror(errno));
		return 0; /* each test skips itself */
	}
	close(fd);
	return 0;
}

#define REQUIRE_KVM()                                                          \
	do {                                                                   \
		if (access("/dev/kvm", R_OK | W_OK))                           \
			skip();                                                \
	} while (0)

static void test_hello(void **state)
{
	struct run_result r;

	(void)state;
	REQUIRE_KVM();
	run_guest("hello", 1, 16 * MiB, NULL, NULL, NULL, &r);
	assert_int_equal(r.status, 0);
	assert_string_equal(r.reason, "guest reset");
	assert_string_equal(r.out, "hello from guest\n");
}

static void test_io_dispatch(void **state)
{
	static const struct access want[] = {
		{'P', true, 1, 1, 0x11},
		{'P', true, 2, 2, 0x2233},
		{'P', true, 4, 4, 0x44556677},
		{'P', true, 8, 1, 0xde},
		{'P', true, 8, 1, 0xad},
		{'P', true, 8, 1, 0xbe},
		{'P', true, 8, 1, 0xef},
		{'M', true, 0x10, 1, 0x88},
		{'M', true, 0x20, 2, 0x99aa},
		{'M', true, 0x40, 4, 0xbbccddee},
		{'M', true, 0x80, 8, 0x0123456789abcdefULL},
		{'P', false, 3, 1, 0xa3},
		{'P', false, 6, 2, 0xa7a6},
		{'P', false, 12, 4, 0xafaeadac},
		{'M', false, 0x101, 1, 0xa1},
		{'M', false, 0x202, 2, 0xa3a2},
		{'M', false, 0x404, 4, 0xa7a6a5a4},
		{'M', false, 0x808, 8, 0xafaeadacabaaa9a8ULL},
		{'P', true, 15, 1, 0xff},
	};
	struct testdev td = {.lock = PTHREAD_MUTEX_INITIALIZER};
	struct run_result r;

	(void)state;
	REQUIRE_KVM();
	run_guest("iodispatch", 1, 16 * MiB, NULL, NULL, &td, &r);
	assert_int_equal(r.status, 0);
	assert_string_equal(r.out, "io: ok\n");
	assert_int_equal(td.n, ARRAY_SIZE(want));
	for (unsigned int i = 0; i < td.n; i++) {
		assert_int_equal(td.log[i].space, want[i].space);
		assert_int_equal(td.log[i].is_write, want[i].is_write);
		assert_int_equal(td.log[i].offset, want[i].offset);
		assert_int_equal(td.log[i].len, want[i].len);
		assert_int_equal(td.log[i].value, want[i].value);
	}
}

static void smp_case(unsigned int cpus, const char *want)
{
	struct run_result r;

	REQUIRE_KVM();
	run_guest("smp", cpus, 16 * MiB, NULL, NULL, NULL, &r);
	assert_int_equal(r.status, 0);
	assert_string_equal(r.out, want);
}

static void test_smp_1(void **state)
{
	(void)state;
	smp_case(1, "smp: 01 cpus: 00\n");
}

static void test_smp_2(void **state)
{
	(void)state;
	smp_case(2, "smp: 02 cpus: 00 01\n");
}

static void test_smp_4(void **state)
{
	(void)state;
	smp_case(4, "smp: 04 cpus: 00 01 02 03\n");
}

static void test_bootinfo_low(void **state)
{
	char rd[] = "/tmp/vmm-test-initrd-XXXXXX";
	struct run_result r;
	int fd;

	(void)state;
	REQUIRE_KVM();
	fd = mkstemp(rd);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "INITRD-CONTENT\n", 15), 15);
	close(fd);
	run_guest("bootinfo", 1, 16 * MiB, "hello world x=1", rd, NULL, &r);
	unlink(rd);
	assert_int_equal(r.status, 0);
	/* The initrd sits page-aligned at the top of RAM. */
	assert_string_equal(r.out,
			    "cmdline: hello world x=1\n"
			    "initrd: 00fff000 0000000f INITRD-C\n"
			    "e820: 000000000 00009fc00 1\n"
			    "e820: 00009fc00 000060400 2\n"
			    "e820: 000100000 000f00000 1\n");
}

static void test_bootinfo_high(void **state)
{
	struct run_result r;

	(void)state;
	REQUIRE_KVM();
	/* 4G: 3G below the PCI hole, the last 1G moved above 4G. */
	run_guest("bootinfo", 1, 4 * GiB, "x", NULL, NULL, &r);
	assert_int_equal(r.status, 0);
	assert_string_equal(r.out,
			    "cmdline: x\n"
			    "e820: 000000000 00009fc00 1\n"
			    "e820: 00009fc00 000060400 2\n"
			    "e820: 000100000 0bff00000 1\n"
			    "e820: 100000000 040000000 1\n");
}

static void test_triple_fault(void **state)
{
	struct run_result r;

	(void)state;
	REQUIRE_KVM();
	run_guest("crash", 1, 16 * MiB, NULL, NULL, NULL, &r);
	assert_int_equal(r.status, VMM_EXIT_FAILURE);
	assert_string_equal(r.out, "crash: now\n");
	assert_non_null(strstr(r.reason, "triple fault on vcpu0"));
}

/*
 * guests/hostile.c attacks the disk (and, net-*, the network device); each
 * attack must end with the device in NEEDS_RESET (0x4f after DRIVER_OK,
 * 0x4b before) or the access ignored (0x0f), exactly one line in the log
 * saying what happened, and the device working again after a reset: the
 * disk reads back its first sector, the network device sends a frame.
 */
struct attack_case {
	const char *name;
	const char *shows; /* the guest's line after "attack NAME: " */
	const char *logs;  /* in the one log line */
};

static const struct attack_case attack_cases[] = {
	{"desc-loop", "status 4f", "vda: device stopped until the driver resets it: queue 0: descriptor chain loops"},
	{"indirect-loop", "status 4f", "queue 0: indirect chain loops"},
	{"outside-ram", "status 4f", "queue 0: buffer outside guest RAM"},
	{"mmio-hole", "status 4f", "queue 0: buffer outside guest RAM"},
	{"len-4g", "status 4f", "queue 0: buffer outside guest RAM"},
	{"addr-wrap", "status 4f", "queue 0: buffer outside guest RAM"},
	{"write-then-read", "status 4f", "queue 0: device-readable buffer after a device-writable one"},
	{"next-range", "status 4f", "queue 0: descriptor next out of range"},
	{"avail-jump", "status 4f", "queue 0: available index moved by more than the ring size"},
	{"head-range", "status 4f", "queue 0: chain head out of range"},
	{"queue-size", "status 4b", "queue size or ring alignment invalid"},
	{"queue-huge", "status 4b", "queue larger than offered"},
	{"ring-outside-ram", "status 4b", "queue rings outside guest RAM"},
	{"rings-overlap", "status 4b", "queue rings overlap each other"},
	{"queues-overlap", "status 4b", "queue rings overlap another queue's"},
	{"kick-disabled", "status 0f", "vda: kick on queue 1, which is not enabled, ignored"},
	{"kick-missing", "status 0f", "vda: write to BAR offset 0x301c, where nothing is, ignored"},
	{"ro-common", "num_queues 0002 status 0f", "vda: write to read-only common configuration at 0x12 ignored"},
	{"ro-devcfg", "capacity 00000800 status 0f", "vda: write to read-only device configuration at 0x0 ignored"},
	{"ro-pcicfg", "id 10421af4 cap 98 status 0f", "pci: write to read-only config register 0x00 of 00:01.0 ignored"},
	{"bar-on-ram", "ram 52414d21 status 0f", "pci: 00:01.0 BAR 0 moved onto guest RAM at 0x400000: left unmapped"},
	/* virtio-net's TX queue (queue 1) */
	{"net-tx-writable", "status 4f", "net0: device stopped until the driver resets it: TX buffer is device-writable"},
	{"net-tx-short", "status 4f", "TX buffer shorter than the header"},
	{"net-tx-csum", "status 4f", "checksum offload not negotiated"},
	{"net-tx-huge", "status 4f", "frame length out of range"},
	{"net-tx-loop", "status 4f", "queue 1: descriptor chain loops"},
};

#define DISK_MARK "VMMDISK0"
#define HOSTILE_TAP "vmmhostile0"

/*
 * A persistent tap, up, for vmm to attach to as an existing one (one it
 * made itself would cost a log line); on=false deletes it.
 */
static int tap_persist(bool on)
{
	struct ifreq ifr = {.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR};
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC), s = -1, r = 0;

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", HOSTILE_TAP);
	if (fd < 0 || ioctl(fd, TUNSETIFF, &ifr) || ioctl(fd, TUNSETPERSIST, on ? 1 : 0))
		r = -errno;
	if (!r && on) {
		/* Quiet: no IPv6 autoconfiguration traffic into the tap. */
		int v6 = open("/proc/sys/net/ipv6/conf/" HOSTILE_TAP "/disable_ipv6",
			      O_WRONLY | O_CLOEXEC);

		if (v6 >= 0) {
			if (write(v6, "1", 1) != 1)
				r = -errno;
			close(v6);
		}
		s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr))
			r = -errno;
		ifr.ifr_flags |= IFF_UP;
		if (!r && ioctl(s, SIOCSIFFLAGS, &ifr))
			r = -errno;
	}
	if (s >= 0)
		close(s);
	if (fd >= 0)
		close(fd);
	return r;
}

static int hostile_setup(void **state)
{
	static char path[] = "/tmp/vmm-hostile-XXXXXX";
	int fd = mkstemp(path), r;

	(void)state;
	if (fd < 0 || ftruncate(fd, 1 * MiB) || pwrite(fd, DISK_MARK, 8, 0) != 8) {
		fprintf(stderr, "hostile: disk image: %s\n", strerror(errno));
		return -1;
	}
	close(fd);
	g_disk = path;
	if (access("/dev/kvm", R_OK | W_OK))
		return 0; /* every case skips anyway */
	r = getenv("GT_NO_NET") ? -ENODEV : tap_persist(true);
	if (r)
		fprintf(stderr, "hostile guests: net-* cases skip: no tap device %s: %s\n",
			HOSTILE_TAP, strerror(-r));
	else
		g_net = HOSTILE_TAP;
	return 0;
}

static int hostile_teardown(void **state)
{
	(void)state;
	if (g_disk)
		unlink(g_disk);
	if (g_net && tap_persist(false))
		fprintf(stderr, "hostile guests: cannot delete tap %s\n", HOSTILE_TAP);
	g_disk = g_net = NULL;
	return 0;
}

/* s with its newlines shown as " | ", in a buffer of its own (two at a time). */
static const char *one_line(const char *s)
{
	static char buf[2][1024];
	static unsigned int which;
	char *o = buf[which++ % 2];
	size_t n = 0;

	for (; *s && n + 4 < sizeof(buf[0]); s++)
		if (*s == '\n') {
			if (s[1])
				n += (size_t)snprintf(o + n, 4, " | ");
		} else {
			o[n++] = *s;
		}
	o[n] = '\0';
	return o;
}

static void test_attack(void **state)
{
	const struct attack_case *c = *state;
	char cmdline[64], want[160];
	struct run_result r;
	unsigned int lines = 0;

	REQUIRE_KVM();
	assert_non_null(g_disk);
	if (!strncmp(c->name, "net-", 4) && !g_net)
		skip(); /* hostile_setup said why */
	snprintf(cmdline, sizeof(cmdline), "attack=%s", c->name);
	run_guest("hostile", 1, 16 * MiB, cmdline, NULL, NULL, &r);
	assert_int_equal(r.status, 0);
	snprintf(want, sizeof(want), "attack %s: %s\nrecovered: %s\n", c->name, c->shows,
		 strncmp(c->name, "net-", 4) ? DISK_MARK : "sent");
	/* One-line messages: the lab shows the first line of each failure. */
	if (strcmp(r.out, want))
		fail_msg("guest printed \"%s\", want \"%s\"", one_line(r.out), one_line(want));
	for (const char *l = r.err; (l = strstr(l, "vmm: ")); l++)
		lines++;
	if (lines != 1 || !strstr(r.err, c->logs))
		fail_msg("%u log lines \"%s\", want one with \"%s\"", lines, one_line(r.err),
			 c->logs);
}

/*
 * GUEST_TESTS_SKIP=NAME,NAME,...: leave these cases out (the lab's retry
 * after L1 wedged runs only what had no result yet). Returns the count left.
 */
static size_t leave_out_skipped(struct CMUnitTest *t, size_t n)
{
	const char *list = getenv("GUEST_TESTS_SKIP");
	char hay[8192], needle[128];
	size_t k = 0;

	if (!list || !*list)
		return n;
	snprintf(hay, sizeof(hay), ",%s,", list);
	for (size_t i = 0; i < n; i++) {
		snprintf(needle, sizeof(needle), ",%s,", t[i].name);
		if (!strstr(hay, needle))
			t[k++] = t[i];
	}
	return k;
}

int main(void)
{
	struct CMUnitTest hostile[ARRAY_SIZE(attack_cases)];
	struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hello),
		cmocka_unit_test(test_io_dispatch),
		cmocka_unit_test(test_smp_1),
		cmocka_unit_test(test_smp_2),
		cmocka_unit_test(test_smp_4),
		cmocka_unit_test(test_bootinfo_low),
		cmocka_unit_test(test_bootinfo_high),
		cmocka_unit_test(test_triple_fault),
	};
	size_t ntests, nhostile;
	int failed = 0;

	for (unsigned int i = 0; i < ARRAY_SIZE(attack_cases); i++)
		hostile[i] = (struct CMUnitTest){
			.name = attack_cases[i].name, .test_func = test_attack,
			.initial_state = (void *)&attack_cases[i]};
	ntests = leave_out_skipped(tests, ARRAY_SIZE(tests));
	nhostile = leave_out_skipped(hostile, ARRAY_SIZE(hostile));
	/* GUEST_TESTS_FILTER=PATTERN ('*' and '?') runs only matching cases. */
	if (getenv("GUEST_TESTS_FILTER"))
		cmocka_set_test_filter(getenv("GUEST_TESTS_FILTER"));
	/* Warnings too: the hostile guests must cause them. */
	log_set_level(LOG_WARN);
	if (ntests)
		failed += _cmocka_run_group_tests("guests", tests, ntests, kvm_usable, NULL);
	if (nhostile)
		failed += _cmocka_run_group_tests("hostile guests", hostile, nhostile,
						  hostile_setup, hostile_teardown);
	return failed;
}
