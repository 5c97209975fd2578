/*
 * Confinement of the running VMM (src/confine.c). After setup, each thread
 * loads the seccomp filter of its role; a forbidden system call is named
 * on stderr and kills the process (SIGSYS, status 159). io_uring, which
 * works beyond seccomp's reach, is confined per ring when it is built.
 */
#ifndef VMM_CONFINE_H
#define VMM_CONFINE_H

#include "compiler.h"

struct io_uring;

enum confine_role { CONFINE_VCPU, CONFINE_IO, CONFINE_MIGRATE };
/* What the I/O thread may do beyond its role, for the options that ask. */
#define CONFINE_RENAME 1u /* --result: put the finished file in place */
#define CONFINE_SOCKET 2u /* --api-socket: serve clients, remove it at exit */
/* --vsock: CONFINE_SOCKET's calls, and connections of its own (AF_UNIX) */
#define CONFINE_VSOCK 8u
/* --share, --fs (vCPU and I/O threads): talk to a vhost-user back-end */
#define CONFINE_VHOST 16u
#define CONFINE_SNAPSHOT                                                                           \
	4u /* --api-socket, --snapshot-at: read KVM's state, write new files in a new or empty     \
	      directory */

/* Install the SIGSYS handler that reports a forbidden call (once). */
int confine_prepare(void) WUR;
/* Load the calling thread's filter (extra: CONFINE_* bits). 0 or -errno. */
int confine_thread(enum confine_role role, unsigned int extra) WUR;

/*
 * Build a disk's io_uring, entries deep, confined before it runs: fd is
 * its only file (fixed file CONFINE_RING_FILE), every SQE must carry
 * IOSQE_FIXED_FILE, READV, WRITEV and FSYNC are the only operations (any
 * other SQE completes with -EACCES), completions are signalled on efd, and
 * no io_uring_register() operation works once it is enabled. 0, or
 * -errno with no ring left; -EOPNOTSUPP when the kernel cannot restrict
 * rings (before 5.10): the disk must not run unrestricted.
 */
#define CONFINE_RING_FILE 0
int confine_disk_ring(struct io_uring *ring, unsigned int entries, int fd, int efd) WUR;

/*
 * Test hook. VMM_TEST_SECCOMP=[vcpu:]PROBE makes the I/O thread (or, with
 * "vcpu:", vcpu0) try PROBE right after its filter loads:
 *   1 (or any other word)  getppid()
 *   tiocsti                ioctl TIOCSTI (push input into a terminal)
 *   kvm-create-vm          ioctl KVM_CREATE_VM on /dev/kvm
 *   exec-mmap              an anonymous PROT_EXEC mapping
 *   tgkill                 tgkill() to the parent process (signal 0)
 *   uring-openat           an OPENAT SQE on a ring built like a disk's
 * The filter stops each of the first five (named, exit 159). The ring
 * refuses the OPENAT (-EACCES): one line says so and the VM runs on.
 */
enum confine_probe {
	CONFINE_PROBE_GETPPID,
	CONFINE_PROBE_TIOCSTI,
	CONFINE_PROBE_KVM_CREATE_VM,
	CONFINE_PROBE_EXEC_MMAP,
	CONFINE_PROBE_TGKILL,
	CONFINE_PROBE_URING_OPENAT,
};
/* Before any filter: open what probe p needs. 0 or -errno (-ENOENT: no
 * /dev/kvm). */
int confine_probe_prepare(enum confine_probe p) WUR;
/* Try it. What the call gave when nothing stopped it (-errno or >= 0). */
long confine_probe(enum confine_probe p);
/* The hook lines: run VMM_TEST_SECCOMP's probe if it is for role. */
void confine_test_hook(enum confine_role role);

#endif
