/*
 * The console: where UART output goes (stdout, a file, nowhere) and where
 * its input comes from (stdin). A TTY on stdin is put in raw mode so the
 * guest gets every key; Ctrl-A x leaves, Ctrl-A Ctrl-A sends a Ctrl-A.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "log.h"
#include "vm.h"

#define CTRL_A 0x01

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

void console_close(struct vm *vm)
{
	if (vm->tty_raw) {
		tcsetattr(vm->console_in_fd, TCSANOW, &vm->tty_saved);
		vm->tty_raw = false;
	}
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
				vm_request_stop(vm, VMM_EXIT_SIGNAL + 2,
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
