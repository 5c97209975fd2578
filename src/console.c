/*
 * The console (console.h). Output to anything but a regular file (a pipe,
 * a terminal, a socket) can stall: a reader that stops reading, a terminal
 * on Ctrl-S. So the vCPU only appends to a bounded buffer (struct
 * console_out) and the I/O thread writes it out non-blocking, trying again
 * every 10 ms while the sink is full; bytes that find the buffer full are
 * dropped and counted.
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

#include "config.h"
#include "console.h"
#include "devices.h"
#include "io_loop.h"
#include "log.h"
#include "stop.h"

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

void console_init(struct console *c)
{
	memset(c, 0, sizeof(*c));
	c->out_fd = c->in_fd = c->in_timer = -1;
	c->out.fd = c->out.efd = c->out.retry_fd = -1;
}

static void tx_byte(void *opaque, uint8_t b);

int console_open(struct console *c, const struct vmm_config *cfg, struct serial *uart,
		 struct stop *stop)
{
	c->uart = uart;
	c->stop = stop;
	if (cfg->console == CONSOLE_FILE) {
		c->out_fd = open(cfg->console_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (c->out_fd < 0)
			return -errno;
		c->out_owned = true;
	} else if (cfg->console == CONSOLE_STDIO) {
		c->out_fd = STDOUT_FILENO;
		if (fcntl(STDIN_FILENO, F_GETFL) >= 0)
			c->in_fd = STDIN_FILENO;
		if (buffer_open(&c->out, STDOUT_FILENO))
			return errno ? -errno : -ENOMEM;
	}
	if (c->in_fd >= 0 && isatty(c->in_fd) && tcgetattr(c->in_fd, &c->tty_saved) == 0) {
		struct termios raw = c->tty_saved;

		cfmakeraw(&raw);
		/* Keep output post-processing: the guest's \n stays a newline. */
		raw.c_oflag = c->tty_saved.c_oflag;
		if (tcsetattr(c->in_fd, TCSANOW, &raw) == 0)
			c->tty_raw = true;
	}
	/* A pipe or a terminal gets the bytes through tx_byte's buffer. */
	uart->out_fd = c->out.ready ? -1 : c->out_fd;
	uart->tx_hook = tx_byte;
	uart->tx_opaque = c;
	return 0;
}

void console_set_hook(struct console *c, void (*hook)(void *, uint8_t), void *opaque)
{
	c->byte_hook = hook;
	c->hook_opaque = opaque;
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

/* The UART's transmit hook (UART lock held): buffer the byte, then the hook. */
static void tx_byte(void *opaque, uint8_t b)
{
	struct console *c = opaque;
	struct console_out *co = &c->out;

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
	if (c->byte_hook)
		c->byte_hook(c->hook_opaque, b);
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
	struct console_out *co = opaque;
	struct itimerspec ten_ms = {.it_value = {.tv_nsec = 10000000}};
	uint64_t n;

	(void)!read(co->efd, &n, sizeof(n));
	(void)!read(co->retry_fd, &n, sizeof(n));
	if (buffer_drain(co) == 1)
		timerfd_settime(co->retry_fd, 0, &ten_ms, NULL);
}

/* ---- input ---- */

/* Look again in 10 ms (on) or stop looking. */
static void input_poll(struct console *c, bool on)
{
	struct itimerspec ten_ms = {.it_interval = {.tv_nsec = 10000000},
				    .it_value = {.tv_nsec = 10000000}};
	struct itimerspec off = {0};

	if (c->in_polled != on && timerfd_settime(c->in_timer, 0, on ? &ten_ms : &off, NULL) == 0)
		c->in_polled = on;
}

static void input_watch(struct console *c, bool on)
{
	if (c->in_watched != on && io_watch_enable(c->io, c->in_fd, on) == 0)
		c->in_watched = on;
}

/*
 * Feed stdin to the UART without overrunning it: when its FIFO is full,
 * stop watching stdin and look again every 10 ms.
 */
static void input_pump(struct console *c)
{
	uint8_t buf[4096];
	size_t space = serial_rx_space(c->uart);
	ssize_t n;

	if (c->in_eof)
		return;
	if (space == 0) {
		input_watch(c, false);
		input_poll(c, true);
		return;
	}
	n = read(c->in_fd, buf, MIN(space, sizeof(buf)));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		c->in_eof = true; /* stdin closed: the guest just gets no more input */
		input_watch(c, false);
		input_poll(c, false);
		return;
	}
	console_input(c, buf, (size_t)n);
}

static void on_input(void *opaque)
{
	input_pump(opaque);
}

static void on_input_timer(void *opaque)
{
	struct console *c = opaque;
	uint64_t n;

	(void)!read(c->in_timer, &n, sizeof(n));
	if (c->in_eof)
		return;
	if (c->in_unpollable) {
		input_pump(c);
	} else if (serial_rx_space(c->uart) > 0) { /* room again: back to epoll */
		input_poll(c, false);
		input_watch(c, true);
	}
}

int console_start(struct console *c, struct io_loop *io)
{
	int r;

	c->io = io;
	if (c->out.ready && ((r = io_watch(io, c->out.efd, on_output, &c->out)) ||
			     (r = io_watch(io, c->out.retry_fd, on_output, &c->out))))
		return r;
	if (c->in_fd < 0)
		return 0;
	c->in_timer = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (c->in_timer < 0)
		return -errno;
	if ((r = io_watch(io, c->in_timer, on_input_timer, c)))
		return r;
	r = io_watch(io, c->in_fd, on_input, c);
	if (r == -EPERM) { /* a regular file: always readable, read it every 10 ms */
		c->in_unpollable = true;
		input_poll(c, true);
		return 0;
	}
	c->in_watched = !r;
	return r;
}

void console_flush(struct console *c)
{
	struct console_out *co = &c->out;
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

uint64_t console_dropped(struct console *c)
{
	struct console_out *co = &c->out;
	uint64_t n;

	if (!co->ready)
		return 0;
	pthread_mutex_lock(&co->lock);
	n = co->dropped;
	pthread_mutex_unlock(&co->lock);
	return n;
}

void console_close(struct console *c)
{
	if (c->tty_raw) {
		tcsetattr(c->in_fd, TCSANOW, &c->tty_saved);
		c->tty_raw = false;
	}
	buffer_close(&c->out);
	if (c->out_owned && c->out_fd >= 0)
		close(c->out_fd);
	if (c->in_timer >= 0)
		close(c->in_timer);
	c->out_owned = false;
	c->out_fd = c->in_timer = -1;
}

void console_input(struct console *c, const uint8_t *buf, size_t len)
{
	uint8_t out[4096 + 1];
	size_t n = 0;

	for (size_t i = 0; i < len && n < sizeof(out) - 1; i++) {
		uint8_t ch = buf[i];

		if (!c->tty_raw) {
			out[n++] = ch;
			continue;
		}
		if (c->escape_pending) {
			c->escape_pending = false;
			if (ch == 'x' || ch == 'X') {
				stop_request(c->stop, OUTCOME_SIGNAL, VMM_EXIT_SIGNAL + 2,
					     "stopped from the console (Ctrl-A x)");
				return;
			}
			if (ch != CTRL_A)
				out[n++] = CTRL_A;
			out[n++] = ch;
		} else if (ch == CTRL_A) {
			c->escape_pending = true;
		} else {
			out[n++] = ch;
		}
	}
	serial_receive(c->uart, out, n);
}
