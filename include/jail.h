/*
 * The jail (src/jail.c): after setup, the VMM keeps no privilege it does
 * not need and reaches only its own files. On by default; --no-jail turns
 * it off, --user USER[:GROUP] names whom a root-started vmm becomes.
 *
 * The order, as a contract (machine_run() keeps it):
 *   1. jail_plan(), before anything is opened: the user is resolved, the
 *      snapshot directory made (owned by that user), and the keeper forked
 *      while the process is small.
 *   2. Setup acquires everything: /dev/kvm, guest memory, disks, taps,
 *      VFIO groups, sockets, helper processes.
 *   3. jail_enter(), while the process has one thread (unshare() needs
 *      it): new mount, IPC, UTS and network namespaces (a user namespace
 *      first when not root), the file system reduced to the snapshot and
 *      vsock directories, Landlock, then the drop to the user with every
 *      capability set empty and no_new_privs.
 *   4. Then the vCPU threads start and each thread loads its seccomp
 *      filter (src/confine.c); then the guest runs.
 *
 * The keeper is a child that stays as vmm was started. It does exactly
 * what was fixed when it was forked, and nothing a message could name:
 * put the --result file in place (or remove its temporary file), remove
 * the API and vsock sockets, remove the snapshot directory if it is still
 * empty. When vmm ends however it ends (a SIGKILL too), the keeper sees
 * its socket close and removes the result's temporary file. So the jailed
 * VMM needs no write access outside its snapshot directory.
 */
#ifndef VMM_JAIL_H
#define VMM_JAIL_H

#include <stdbool.h>
#include <sys/types.h>

#include "compiler.h"

struct vmm_config;

/* What jail_enter() did, for -v and the tests. */
struct jail_report {
	bool userns;  /* namespaces through a user namespace (not root) */
	bool net;     /* a network namespace (not with --api-socket) */
	bool pivot;   /* the file system reduced (not with --api-socket) */
	int landlock; /* its ABI version, 0: not in this kernel */
	bool dropped; /* root -> the user */
};

/*
 * Step 1. --snapshot-dir becomes its real path (the jail may change the
 * working directory). 0; -EINVAL for bad input (an unknown --user, a snapshot
 * directory the user cannot write: said in one line, *usage set);
 * another -errno for a runtime failure (said). Nothing to undo on failure.
 */
int jail_plan(struct vmm_config *cfg, bool *usage) WUR;
/* Step 3. 0, or -errno with why (for the run's one line). Nothing when off. */
int jail_enter(const struct vmm_config *cfg, struct jail_report *rep, char *why, size_t len) WUR;
/* The user a root-started vmm becomes (own uid/gid otherwise). */
bool jail_drops(uid_t *uid, gid_t *gid);
/* Close the keeper's socket and reap it (vmm's exit path). */
void jail_finish(void);

/*
 * The operations the keeper does for the jailed VMM: each acts on the
 * path fixed at jail_plan() and done by the VMM itself when there is no
 * keeper (jail off). 0 or -errno.
 */
/* --result's temporary file for path (this process's): 0 or -ENAMETOOLONG. */
int jail_result_tmp_name(char *out, size_t len, const char *path) WUR;
int jail_result_rename(const char *tmp, const char *path) WUR;
int jail_result_unlink(const char *tmp) WUR;
int jail_unlink_socket(const char *path) WUR;

/*
 * Under the jail, an API snapshot goes beneath --snapshot-dir (area) and
 * nowhere else: true, with why, when dir is not there.
 */
bool jail_snapshot_refusal(const char *dir, const char *area, char *why, size_t len);

/*
 * Test hook. VMM_TEST_JAIL=open:PATH|connect:PORT|setuid makes the I/O
 * thread, right after the jail (use --no-seccomp to test the jail on its
 * own), try to read PATH, connect to 127.0.0.1:PORT, or become root again,
 * and say on stderr "jail probe WHAT: refused (ERRNO)" or "...: allowed".
 */
void jail_test_hook(void);

#endif
