/*
 * The console (src/console.c): where the UART's output goes (stdout, a
 * file, nowhere) and where its input comes from (stdin, pumped into the
 * UART's FIFO by the I/O thread without overrunning it). A TTY on stdin
 * is put in raw mode; Ctrl-A x asks for a stop, Ctrl-A Ctrl-A sends a
 * Ctrl-A.
 *
 * Output to a pipe, socket or terminal is buffered: the vCPU appends to a
 * bounded buffer, the I/O thread writes it out without blocking; what does
 * not fit while the reader stalls is dropped and counted. A regular file
 * is written directly (it does not stall).
 *
 * Ordering: console_init(); console_open() once the UART exists (it takes
 * over the UART's output); console_start() before the run, with the I/O
 * loop; console_flush() after the vCPUs stopped; console_close() last (it
 * restores the terminal). Lock order: the UART's lock, then the buffer's.
 */
#ifndef VMM_CONSOLE_H
#define VMM_CONSOLE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <termios.h>

#include "compiler.h"

struct io_loop;
struct serial;
struct stop;
struct vmm_config;

#define CONSOLE_BUF_SIZE (64 * 1024)
struct console_out {
	pthread_mutex_t lock; /* after the UART's (machine.h) */
	uint8_t *buf;
	size_t head, len;
	uint64_t dropped; /* under lock */
	int fd;		  /* the sink, -1: not buffered */
	int efd;	  /* bytes arrived (vCPU -> I/O thread) */
	int retry_fd;	  /* timerfd: the sink was full, try again */
	bool sock;	  /* a socket: written with MSG_DONTWAIT */
	bool own;	  /* fd is vmm's own non-blocking description of the sink */
	bool ready;
};

struct console {
	struct serial *uart;
	struct stop *stop;
	struct io_loop *io;
	/* Each byte the guest printed (vCPU thread, UART lock held). */
	void (*byte_hook)(void *opaque, uint8_t b);
	void *hook_opaque;

	int out_fd; /* -1 for none */
	bool out_owned;
	struct console_out out; /* a pipe, socket or terminal: buffered */

	int in_fd; /* -1 for none */
	bool tty_raw;
	struct termios tty_saved;
	bool escape_pending; /* saw Ctrl-A */
	/* The input pump (I/O thread): stdin watched while the UART has room,
	 * else (or for a regular file, which epoll refuses) a 10 ms timer. */
	int in_timer;
	bool in_watched, in_polled, in_eof;
	bool in_unpollable; /* a regular file */
};

void console_init(struct console *c);
/*
 * Open the output (--console) and the input, put a TTY in raw mode, and
 * route uart's output here; requests from the keyboard go to stop. -errno:
 * with --console file: the user's (a usage error), else the host's.
 */
int console_open(struct console *c, const struct vmm_config *cfg, struct serial *uart,
		 struct stop *stop) WUR;
/* Each byte the guest prints also goes to hook(opaque, b). */
void console_set_hook(struct console *c, void (*hook)(void *, uint8_t), void *opaque);
/* Serve output and input on the I/O loop. */
int console_start(struct console *c, struct io_loop *io) WUR;
/* Write what is left, giving up after 0.5 s without progress. */
void console_flush(struct console *c);
uint64_t console_dropped(struct console *c);
void console_close(struct console *c);
/* Bytes from the keyboard: handles the Ctrl-A escape, feeds the UART. */
void console_input(struct console *c, const uint8_t *buf, size_t len);

#endif
