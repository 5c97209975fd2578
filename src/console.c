/*
 * The console: where UART output goes (stdout, a file, nowhere) and where
 * its input comes from (stdin). A TTY on stdin is put in raw mode so the
 * guest gets every key; Ctrl-A x leaves, Ctrl-A Ctrl-A sends a Ctrl-A.
 *
 * Output to anything but a regular file (a pipe, a terminal, a socket)
 * can stall: a reader that stops reading, a terminal on Ctrl-S. So the
 * vCPU only appends to a bounded buffer (struct console_out) and the I/O
 * thread writes it out non-blocking, trying again every 10 ms while the
 * sink is full; bytes that find the buffer full are dropped and counted.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "vm.h"

#define CTRL_A 0x01

/*
 * Buffer output to fd unless it is a regular file (or not open at all).
 * The writes must not block, but O_NONBLOCK on fd itself would change the
 * file description vmm shares with its parent (a shell's terminal, a
 * script's pipe), and stay changed if vmm were killed. So a socket is
 * written with MSG_DONTWAIT, and anything else through a description of
 * its own, opened again through /proc. Without one, output is written
 * directly, as to a file.
 */
static int buffer_open(struct console_out *co, int fd)
{
	struct stat st;
	char path[32];

	co->fd = co->efd = co->retry_fd = -1;
	if (fstat(fd, &st) < 0 || S_ISREG(st.st_mode))
		return 0;
	if (S_ISSOCK(st.st_mode)) {
		co->fd = fd;
		co->sock = true;
	} else {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		co->fd = open(path, O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
		if (co->fd < 0) {
			log_debug("console", "output unbuffered: reopening %s: %s", path,
				  strerror(errno));
			return 0;
		}
		co->own = true;
	}
	co->buf = malloc(CONSOLE_BUF_SIZE);
	co->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	co->retry_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (!co->buf || co->efd < 0 || co->retry_fd < 0)
		return -1;
	pthread_mutex_init(&co->lock, NULL);
	co->ready = true;
	return 0;
}

int console_open(struct vm *vm)
{
	const struct vmm_config *cfg = vm->cfg;

	vm->console_out_fd = -1;
	vm->console_in_fd = -1;
	if (cfg->console == CONSOLE_FILE) {
		vm->console_out_fd = open(cfg->console_path,
					  O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
					  0644);
		if (vm->console_out_fd < 0)
			return -errno;
		vm->console_out_owned = true;
	} else if (cfg->console == CONSOLE_STDIO) {
		vm->console_out_fd = STDOUT_FILENO;
		if (fcntl(STDIN_FILENO, F_GETFL) >= 0)
			vm->console_in_fd = STDIN_FILENO;
		if (buffer_open(&vm->cout, STDOUT_FILENO))
			return errno ? -errno : -ENOMEM;
	}
	if (vm->console_in_fd >= 0 && isatty(vm->console_in_fd) &&
	    tcgetattr(vm->console_in_fd, &vm->tty_saved) == 0) {
		struct termios raw = vm->tty_saved;

		cfmakeraw(&raw);
		/* Keep output post-processing: the guest's \n stays a newline. */
		raw.c_oflag = vm->tty_saved.c_oflag;
		if (tcsetattr(vm->console_in_fd, TCSANOW, &raw) == 0)
			vm->tty_raw = true;
	}
	return 0;
}

static void buffer_close(struct console_out *co)
{
	if (co->ready) {
		pthread_mutex_destroy(&co->lock);
		co->ready = false;
	}
	if (co->own && co->fd >= 0)
		close(co->fd);
	co->own = co->sock = false;
	if (co->efd >= 0)
		close(co->efd);
	if (co->retry_fd >= 0)
		close(co->retry_fd);
	free(co->buf);
	co->buf = NULL;
	co->fd = co->efd = co->retry_fd = -1;
}

void console_tx_byte(void *opaque, uint8_t b)
{
	struct vm *vm = opaque;
	struct console_out *co = &vm->cout;

	if (co->ready) {
		bool was_empty;

		pthread_mutex_lock(&co->lock);
		was_empty = co->len == 0;
		if (co->len == CONSOLE_BUF_SIZE) {
			co->dropped++;
		} else {
			co->buf[(co->head + co->len) % CONSOLE_BUF_SIZE] = b;
			co->len++;
		}
		pthread_mutex_unlock(&co->lock);
		if (was_empty) {
			uint64_t one = 1;

			(void)!write(co->efd, &one, sizeof(one));
		}
	}
	supervise_console_byte(&vm->sup, b);
}

/*
 * Write out what the buffer holds (I/O thread). Returns 1 when the sink
 * is full with bytes left, 0 when empty, -1 when the sink is gone (the
 * rest is dropped).
 */
static int buffer_drain(struct console_out *co)
{
	for (;;) {
		const uint8_t *p;
		size_t n;
		ssize_t w;

		pthread_mutex_lock(&co->lock);
		p = co->buf + co->head;
		n = MIN(co->len, CONSOLE_BUF_SIZE - co->head);
		pthread_mutex_unlock(&co->lock);
		if (!n)
			return 0;
		/* Only this thread moves head: the bytes at p stay put. */
		w = co->sock ? send(co->fd, p, n, MSG_DONTWAIT) : write(co->fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			return 1;
		pthread_mutex_lock(&co->lock);
		if (w <= 0) {
			co->dropped += co->len; /* EPIPE and the like: nobody will read */
			co->head = co->len = 0;
		} else {
			co->head = (co->head + (size_t)w) % CONSOLE_BUF_SIZE;
			co->len -= (size_t)w;
		}
		pthread_mutex_unlock(&co->lock);
		if (w <= 0)
			return -1;
	}
}

static void on_output(void *opaque)
{
	struct vm *vm = opaque;
	struct console_out *co = &vm->cout;
	struct itimerspec ten_ms = {.it_value = {.tv_nsec = 10000000}};
	uint64_t n;

	(void)!read(co->efd, &n, sizeof(n));
	(void)!read(co->retry_fd, &n, sizeof(n));
	if (buffer_drain(co) == 1)
		timerfd_settime(co->retry_fd, 0, &ten_ms, NULL);
}

int console_start(struct vm *vm)
{
	int r;

	if (!vm->cout.ready)
		return 0;
	if ((r = vm_io_watch(vm, vm->cout.efd, on_output, vm)))
		return r;
	return vm_io_watch(vm, vm->cout.retry_fd, on_output, vm);
}

void console_flush(struct vm *vm)
{
	struct console_out *co = &vm->cout;
	const struct timespec ten_ms = {.tv_nsec = 10000000};
	size_t left = SIZE_MAX;
	int idle_ms = 0;

	if (!co->ready)
		return;
	while (buffer_drain(co) == 1 && idle_ms < 500) {
		size_t now;

		pthread_mutex_lock(&co->lock);
		now = co->len;
		pthread_mutex_unlock(&co->lock);
		idle_ms = now < left ? 0 : idle_ms + 10;
		left = now;
		nanosleep(&ten_ms, NULL);
	}
	pthread_mutex_lock(&co->lock);
	co->dropped += co->len; /* a reader that stalled to the end */
	co->head = co->len = 0;
	pthread_mutex_unlock(&co->lock);
}

uint64_t console_dropped(struct vm *vm)
{
	struct console_out *co = &vm->cout;
	uint64_t n;

	if (!co->ready)
		return 0;
	pthread_mutex_lock(&co->lock);
	n = co->dropped;
	pthread_mutex_unlock(&co->lock);
	return n;
}

void console_close(struct vm *vm)
{
	if (vm->tty_raw) {
		tcsetattr(vm->console_in_fd, TCSANOW, &vm->tty_saved);
		vm->tty_raw = false;
	}
	buffer_close(&vm->cout);
	if (vm->console_out_owned && vm->console_out_fd >= 0)
		close(vm->console_out_fd);
	vm->console_out_owned = false;
	vm->console_out_fd = -1;
}

void console_input(struct vm *vm, const uint8_t *buf, size_t len)
{
	uint8_t out[4096 + 1];
	size_t n = 0;

	for (size_t i = 0; i < len && n < sizeof(out) - 1; i++) {
		uint8_t c = buf[i];

		if (!vm->tty_raw) {
			out[n++] = c;
			continue;
		}
		if (vm->escape_pending) {
			vm->escape_pending = false;
			if (c == 'x' || c == 'X') {
				vm_request_stop_as(vm, OUTCOME_SIGNAL, VMM_EXIT_SIGNAL + 2,
						"stopped from the console (Ctrl-A x)");
				return;
			}
			if (c != CTRL_A)
				out[n++] = CTRL_A;
			out[n++] = c;
		} else if (c == CTRL_A) {
			vm->escape_pending = true;
		} else {
			out[n++] = c;
		}
	}
	serial_receive(&vm->serial, out, n);
}
