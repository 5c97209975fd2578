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
};

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
	};
	struct testdev_port pio = {td, 'P'}, mmio = {td, 'M'};
	struct watchdog w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
			     false, NULL};
	struct vm vm;
	pthread_t wd;
	bool usage;
	int p[2];
	ssize_t n;

	snprintf(path, sizeof(path), GUEST_DIR "%s.elf", name);
	memset(res, 0, sizeof(*res));
	assert_int_equal(vm_create(&vm, &cfg, &usage), 0);
	if (td) {
		assert_int_equal(bus_register(&vm.pio, TESTDEV_PIO, 16,
					      testdev_access, &pio, "testdev"), 0);
		assert_int_equal(bus_register(&vm.mmio, TESTDEV_MMIO, 0x1000,
					      testdev_access, &mmio, "testdev"), 0);
	}
	assert_int_equal(vm_load(&vm, &usage), 0);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
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
	close(p[1]);
	n = read(p[0], res->out, sizeof(res->out) - 1);
	res->out[n > 0 ? n : 0] = '\0';
	close(p[0]);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hello),
		cmocka_unit_test(test_io_dispatch),
		cmocka_unit_test(test_smp_1),
		cmocka_unit_test(test_smp_2),
		cmocka_unit_test(test_smp_4),
		cmocka_unit_test(test_bootinfo_low),
		cmocka_unit_test(test_bootinfo_high),
		cmocka_unit_test(test_triple_fault),
	};

	log_set_level(LOG_ERROR);
	return cmocka_run_group_tests_name("guests", tests, kvm_usable, NULL);
}
