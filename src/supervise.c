/*
 * Scripted runs: the guest exit device, --timeout, --expect/--fail on the
 * console, --result json:PATH and the control socket. See supervise.h;
 * the protocol is in the README ("Scripted runs").
 *
 * Console matching works on whole lines as the UART emits them (vCPU
 * thread, one regexec per line), so it costs the console nothing per byte
 * but a copy. The control socket is served on the I/O thread: a client
 * connects, sends one line, reads one JSON line back.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "stats.h"
#include "vm.h"

/* ---- the exit device ---- */

static void exit_dev(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
		     bool is_write)
{
	struct vm *vm = opaque;

	(void)offset;
	if (!is_write) {
		memset(data, 0, len);
		return;
	}
	vm_request_stop(vm, data[0], "the guest asked to exit with status %u", data[0]);
}

/* ---- console lines ---- */

static void check_line(struct supervise *s)
{
	s->line[s->line_len] = '\0';
	if (s->has_fail && !regexec(&s->fail, s->line, 0, NULL, 0))
		vm_request_stop(s->vm, VMM_EXIT_FAILURE, "console matched --fail: %.200s", s->line);
	else if (s->has_expect && !regexec(&s->expect, s->line, 0, NULL, 0))
		vm_request_stop(s->vm, VMM_EXIT_OK, "console matched --expect: %.200s", s->line);
	s->line_len = 0;
}

void supervise_console_byte(void *opaque, uint8_t b)
{
	struct supervise *s = opaque;

	if (!s->first_byte_ns)
		s->first_byte_ns = vm_now_ns();
	if (!s->has_expect && !s->has_fail)
		return;
	if (b == '\n') {
		check_line(s);
	} else if (b != '\r') {
		s->line[s->line_len++] = (char)b;
		if (s->line_len == sizeof(s->line) - 1)
			check_line(s); /* a very long line: judge it in pieces */
	}
}

/* ---- timers ---- */

static int arm(double seconds)
{
	struct itimerspec it = {.it_value = {.tv_sec = (time_t)seconds,
					     .tv_nsec = (long)((seconds - (double)(time_t)seconds) * 1e9)}};
	int fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);

	if (fd < 0)
		return -errno;
	if (it.it_value.tv_sec == 0 && it.it_value.tv_nsec == 0)
		it.it_value.tv_nsec = 1;
	if (timerfd_settime(fd, 0, &it, NULL) < 0) {
		int e = errno;

		close(fd);
		return -e;
	}
	return fd;
}

static void on_timeout(void *opaque)
{
	struct vm *vm = opaque;

	vm_request_stop(vm, VMM_EXIT_TIMEOUT, "timeout: the guest did not finish within %g s (--timeout)",
			vm->cfg->timeout_s);
}

static void on_grace(void *opaque)
{
	struct vm *vm = opaque;

	vm_request_stop(vm, VMM_EXIT_SIGNAL + SIGTERM,
			"stopped: the guest did not shut down within %d s of the stop request",
			VMM_STOP_GRACE_S);
}

/* ---- pause ---- */

void supervise_pause_point(struct vm *vm, struct vcpu *v)
{
	struct supervise *s = &vm->sup;

	pthread_mutex_lock(&s->lock);
	if (s->paused && !__atomic_load_n(&vm->stopping, __ATOMIC_ACQUIRE)) {
		s->parked++;
		pthread_cond_broadcast(&s->cond);
		while (s->paused && !__atomic_load_n(&vm->stopping, __ATOMIC_ACQUIRE))
			pthread_cond_wait(&s->cond, &s->lock);
		s->parked--;
	}
	pthread_mutex_unlock(&s->lock);
	/* The kick that brought us here must not end the next KVM_RUN. */
	if (!__atomic_load_n(&vm->stopping, __ATOMIC_ACQUIRE))
		__atomic_store_n(&v->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
}

/* Park every vCPU (waits up to 2 s for them); false if they did not come. */
static bool pause_vcpus(struct vm *vm)
{
	struct supervise *s = &vm->sup;
	struct timespec deadline;
	bool ok = true;

	pthread_mutex_lock(&s->lock);
	s->paused = true;
	pthread_mutex_unlock(&s->lock);
	for (unsigned int i = 0; i < vm->nr_vcpus; i++)
		vcpu_kick(&vm->vcpus[i]);
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 2;
	pthread_mutex_lock(&s->lock);
	while (s->parked < vm->nr_vcpus && ok)
		ok = pthread_cond_timedwait(&s->cond, &s->lock, &deadline) == 0;
	ok = s->parked == vm->nr_vcpus;
	pthread_mutex_unlock(&s->lock);
	return ok;
}

static void resume_vcpus(struct vm *vm)
{
	struct supervise *s = &vm->sup;

	pthread_mutex_lock(&s->lock);
	s->paused = false;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

/* ---- JSON ---- */

/* Exit counters as a JSON object body: "exits":N,"io_exits":N,... */
static int exits_json(struct vm *vm, char *buf, size_t len)
{
	struct vm_exit_stats st;
	size_t n = 0;
	int r = stats_read(vm, &st);

	n += (size_t)snprintf(buf + n, len - n, "\"userspace_exits\":%llu",
			      (unsigned long long)st.userspace);
	for (unsigned int i = 0; i < STAT_NR && n < len; i++)
		if (st.valid & (1u << i))
			n += (size_t)snprintf(buf + n, len - n, ",\"%s\":%llu", stats_kvm_name(i),
					      (unsigned long long)st.val[i]);
	return r;
}

/* s as a JSON string body (quotes and control characters escaped). */
static void json_str(char *out, size_t len, const char *s)
{
	size_t n = 0;

	for (; *s && n + 7 < len; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			n += (size_t)snprintf(out + n, len - n, "\\%c", c);
		else if (c < 0x20)
			n += (size_t)snprintf(out + n, len - n, "\\u%04x", c);
		else
			out[n++] = (char)c;
	}
	out[n] = '\0';
}

/* ---- the control socket ---- */

static double uptime_s(const struct vm *vm)
{
	return (double)(vm_now_ns() - vm->start_ns) / 1e9;
}

static void reply(int fd, const char *fmt, ...) PRINTF_LIKE(2, 3);
static void reply(int fd, const char *fmt, ...)
{
	char buf[2048];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	n = MIN(n, (int)sizeof(buf) - 2);
	buf[n++] = '\n';
	(void)!write(fd, buf, (size_t)n);
}

static void api_command(struct vm *vm, int fd, char *cmd)
{
	struct supervise *s = &vm->sup;
	char body[1536];

	cmd[strcspn(cmd, "\r\n")] = '\0';
	if (!strcmp(cmd, "status")) {
		reply(fd, "{\"ok\":true,\"state\":\"%s\",\"uptime_s\":%.3f,\"vcpus\":%u}",
		      s->paused ? "paused" : "running", uptime_s(vm), vm->nr_vcpus);
	} else if (!strcmp(cmd, "pause")) {
		if (pause_vcpus(vm))
			reply(fd, "{\"ok\":true,\"state\":\"paused\"}");
		else
			reply(fd, "{\"ok\":false,\"error\":\"the vCPUs did not stop within 2 s\"}");
	} else if (!strcmp(cmd, "resume")) {
		resume_vcpus(vm);
		reply(fd, "{\"ok\":true,\"state\":\"running\"}");
	} else if (!strcmp(cmd, "stop")) {
		resume_vcpus(vm);
		if (s->grace_fd < 0) {
			/* What a PC's power button is to an OS without ACPI. */
			i8042_ctrl_alt_del(&vm->i8042);
			s->grace_fd = arm(VMM_STOP_GRACE_S);
			if (s->grace_fd < 0 || vm_io_watch(vm, s->grace_fd, on_grace, vm))
				on_grace(vm);
		}
		reply(fd, "{\"ok\":true,\"state\":\"stopping\",\"grace_s\":%d}", VMM_STOP_GRACE_S);
	} else if (!strcmp(cmd, "stats")) {
		exits_json(vm, body, sizeof(body));
		reply(fd, "{\"ok\":true,%s,\"console_bytes\":%llu}", body,
		      (unsigned long long)vm->serial.tx_bytes);
	} else {
		json_str(body, 64, cmd);
		reply(fd, "{\"ok\":false,\"error\":\"unknown command '%s' (status, pause, resume, stop, stats)\"}",
		      body);
	}
}

static void on_api(void *opaque)
{
	struct vm *vm = opaque;
	struct timeval tv = {.tv_usec = 200000};
	char buf[128];
	ssize_t n;
	int fd = accept4(vm->sup.listen_fd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0)
		return;
	/* One short line; a client that sends nothing is dropped soon. */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	n = read(fd, buf, sizeof(buf) - 1);
	if (n > 0) {
		buf[n] = '\0';
		api_command(vm, fd, buf);
	}
	close(fd);
}

static int api_listen(struct vm *vm, const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), r;

	if (fd < 0)
		return -errno;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	unlink(path); /* a stale socket: supervise_check() made sure of it */
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0) {
		r = -errno;
		close(fd);
		log_err(NULL, "--api-socket: cannot listen on '%s': %s", path, strerror(-r));
		return r;
	}
	chmod(path, 0600);
	vm->sup.listen_fd = fd;
	return vm_io_watch(vm, fd, on_api, vm);
}

/* ---- setup and the end ---- */

static int check_dir_of(const char *opt, const char *path)
{
	char copy[4096], *dir;
	struct stat st;

	snprintf(copy, sizeof(copy), "%s", path);
	dir = dirname(copy);
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		log_err(NULL, "%s: '%s': its directory '%s' does not exist", opt, path, dir);
		return -ENOENT;
	}
	return 0;
}

int supervise_check(const char *result_path, const char *api_socket)
{
	struct stat st;
	int r;

	if (result_path && (r = check_dir_of("--result", result_path)))
		return r;
	if (!api_socket)
		return 0;
	if ((r = check_dir_of("--api-socket", api_socket)))
		return r;
	if (lstat(api_socket, &st) == 0) {
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		int fd;

		if (!S_ISSOCK(st.st_mode)) {
			log_err(NULL, "--api-socket: '%s' exists and is not a socket", api_socket);
			return -EEXIST;
		}
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", api_socket);
		if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			close(fd);
			log_err(NULL, "--api-socket: '%s' is in use by a running vmm", api_socket);
			return -EADDRINUSE;
		}
		if (fd >= 0)
			close(fd);
	}
	return 0;
}

int supervise_init(struct vm *vm)
{
	struct supervise *s = &vm->sup;
	const struct vmm_config *cfg = vm->cfg;
	int r;

	s->vm = vm;
	s->timer_fd = s->grace_fd = s->result_fd = s->listen_fd = -1;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	if ((r = bus_register(&vm->pio, VMM_EXIT_PORT, 1, exit_dev, vm, "exit")) ||
	    (r = bus_register(&vm->mmio, VMM_EXIT_MMIO, 0x1000, exit_dev, vm, "exit")))
		return r;
	/* Both checked when the command line was parsed. */
	s->has_expect = cfg->expect && !regcomp(&s->expect, cfg->expect, REG_EXTENDED | REG_NOSUB);
	s->has_fail = cfg->fail && !regcomp(&s->fail, cfg->fail, REG_EXTENDED | REG_NOSUB);
	if (cfg->timeout_s > 0) {
		s->timer_fd = arm(cfg->timeout_s);
		if (s->timer_fd < 0 || (r = vm_io_watch(vm, s->timer_fd, on_timeout, vm)))
			return s->timer_fd < 0 ? s->timer_fd : r;
	}
	if (cfg->result_path) {
		snprintf(s->result_tmp, sizeof(s->result_tmp), "%s.tmp.%d", cfg->result_path, (int)getpid());
		s->result_fd = open(s->result_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (s->result_fd < 0) {
			r = -errno;
			log_err(NULL, "--result: cannot write '%s': %s", cfg->result_path, strerror(-r));
			return r;
		}
	}
	return cfg->api_socket ? api_listen(vm, cfg->api_socket) : 0;
}

void supervise_finish(struct vm *vm)
{
	struct supervise *s = &vm->sup;
	char exits[1536], reason[400], first[32] = "null";

	if (s->result_fd < 0)
		return;
	if (s->first_byte_ns)
		snprintf(first, sizeof(first), "%.6f", (double)(s->first_byte_ns - vm->start_ns) / 1e9);
	exits_json(vm, exits, sizeof(exits));
	json_str(reason, sizeof(reason), vm->exit_reason);
	dprintf(s->result_fd,
		"{\"status\":%d,\"reason\":\"%s\",\"wall_time_s\":%.6f,\"first_console_byte_s\":%s,"
		"\"console_bytes\":%llu,\"vcpus\":%u,\"exits\":{%s}}\n",
		vm->exit_status, reason, uptime_s(vm), first,
		(unsigned long long)vm->serial.tx_bytes, vm->nr_vcpus, exits);
	close(s->result_fd);
	s->result_fd = -1;
	/* Whole or not at all: the name appears only when the file is done. */
	if (rename(s->result_tmp, vm->cfg->result_path) < 0)
		log_err(NULL, "--result: cannot write '%s': %s", vm->cfg->result_path, strerror(errno));
}

void supervise_destroy(struct vm *vm)
{
	struct supervise *s = &vm->sup;

	if (!s->vm)
		return;
	if (s->has_expect)
		regfree(&s->expect);
	if (s->has_fail)
		regfree(&s->fail);
	if (s->timer_fd >= 0)
		close(s->timer_fd);
	if (s->grace_fd >= 0)
		close(s->grace_fd);
	if (s->result_fd >= 0) {
		close(s->result_fd);
		unlink(s->result_tmp); /* a run that never got to its end */
	}
	if (s->listen_fd >= 0) {
		close(s->listen_fd);
		unlink(vm->cfg->api_socket);
	}
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	s->vm = NULL;
}
