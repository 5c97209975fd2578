/*
 * The jail's walls (see include/jail.h for the order): namespaces, the
 * reduced file system, Landlock, the drop of privilege. No state of its
 * own: src/jail.c says who the process becomes.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/landlock.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "config.h"
#include "jail_walls.h"
#include "log.h"

/* Write s to /proc/self/FILE (a user namespace's maps). */
static int write_proc(const char *file, const char *s)
{
	char path[64];
	int fd, r = 0;

	snprintf(path, sizeof(path), "/proc/self/%s", file);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, s, strlen(s)) != (ssize_t)strlen(s))
		r = -errno;
	close(fd);
	return r;
}

/* The namespaces; *userns: made through a user namespace. */
static int enter_namespaces(const struct jail_who *w, bool net, struct jail_report *rep, char *why,
			    size_t len)
{
	int flags = CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | (net ? CLONE_NEWNET : 0);
	char map[64];
	int r;

	if (!w->drop)
		flags |= CLONE_NEWUSER;
	if (unshare(flags) < 0) {
		int e = errno;

		if (e == EPERM || e == ENOSPC || e == EUSERS || e == EACCES) {
			/* no user namespace for an ordinary user here, or root
			 * without CAP_SYS_ADMIN (a container) */
			log_info("jail",
				 "%s (%s): no namespaces; Landlock, the drop and no_new_privs "
				 "still apply",
				 w->drop ? "no namespaces for this root"
					 : "no user namespace for an unprivileged vmm here",
				 strerror(e));
			return 1;
		}
		snprintf(why, len, "unshare: %s%s", strerror(e),
			 e == EINVAL ? " (the process has more than one thread)" : "");
		return -e;
	}
	if (!w->drop) {
		rep->userns = true;
		snprintf(map, sizeof(map), "%u %u 1\n", (unsigned int)w->uid, (unsigned int)w->uid);
		if ((r = write_proc("setgroups", "deny")) || (r = write_proc("uid_map", map)))
			goto fail;
		snprintf(map, sizeof(map), "%u %u 1\n", (unsigned int)w->gid, (unsigned int)w->gid);
		if ((r = write_proc("gid_map", map)))
			goto fail;
	}
	rep->net = net;
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
		r = -errno;
		goto fail;
	}
	return 0;
fail:
	snprintf(why, len, "setting up the namespaces: %s", strerror(-r));
	return r;
}

/* mkdir -p path (in the new root: a tmpfs of our own). */
static int make_path(const char *path)
{
	char p[PATH_MAX];

	snprintf(p, sizeof(p), "%s", path);
	for (char *s = p + 1;; s++) {
		if (*s == '/' || !*s) {
			char c = *s;

			*s = '\0';
			if (mkdir(p, 0755) < 0 && errno != EEXIST)
				return -errno;
			if (!(*s = c))
				break;
		}
	}
	return 0;
}

bool jail_beneath(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	return !strncmp(path, dir, n) && (path[n] == '/' || !path[n] || !strcmp(dir, "/"));
}

/*
 * Builds with AddressSanitizer: its leak checker reads /proc/self/task
 * and ptrace()s the threads at exit, so there the jail keeps /proc (bound
 * and readable) and leaves the process dumpable. Those builds run without
 * seccomp too (src/confine.c); release builds have none of this.
 */
#ifdef __SANITIZE_ADDRESS__
#define SANITIZER_RUNTIME 1
#else
#define SANITIZER_RUNTIME 0
#endif

#define MAX_BINDS 3

/*
 * Reduce the file system to dirs[] (absolute, none beneath another): a
 * read-only tmpfs root with each bound at its own path.
 */
static int reduce_fs(char dirs[][PATH_MAX], unsigned int n)
{
	int tree[MAX_BINDS], r = 0;
	char cwd[PATH_MAX];
	unsigned int i;

	if (!getcwd(cwd, sizeof(cwd)))
		snprintf(cwd, sizeof(cwd), "/");
	for (i = 0; i < n; i++) {
		tree[i] = open_tree(AT_FDCWD, dirs[i],
				    OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
		if (tree[i] < 0) {
			r = -errno;
			break;
		}
	}
	if (!r && mount("vmm-jail", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
			"size=64k,mode=0755") < 0)
		r = -errno;
	/*
	 * The tmpfs becomes the root; the old one goes (detached). An
	 * initramfs root cannot be pivoted away (EINVAL): there the tmpfs is
	 * moved over it and made the root by chroot(), which nobody without
	 * CAP_SYS_CHROOT (dropped below) can leave.
	 */
	if (!r && chdir("/tmp") < 0)
		r = -errno;
	if (!r && syscall(SYS_pivot_root, ".", ".") == 0) {
		if (umount2(".", MNT_DETACH) < 0)
			r = -errno;
	} else if (!r && (errno != EINVAL || mount(".", "/", NULL, MS_MOVE, NULL) < 0 ||
			  chroot(".") < 0)) {
		r = -errno;
	}
	if (!r && chdir("/") < 0)
		r = -errno;
	for (unsigned int j = 0; !r && j < n; j++)
		if ((r = make_path(dirs[j])) ||
		    (move_mount(tree[j], "", AT_FDCWD, dirs[j], MOVE_MOUNT_F_EMPTY_PATH) < 0 &&
		     (r = -errno)))
			break;
	while (i--)
		close(tree[i]);
	if (r)
		return r;
	/* the working directory stays where relative paths lead */
	bool bound = false;

	for (unsigned int j = 0; j < n; j++)
		bound |= jail_beneath(cwd, dirs[j]);
	if (!bound || chdir(cwd) < 0) /* elsewhere, nothing relative is needed */
		(void)!chdir("/");
	if (mount(NULL, "/", NULL,
		  MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		return -errno;
	return 0;
}

/* Add dir's absolute path to dirs[] unless one there holds it (or it it). */
static void add_dir(char dirs[][PATH_MAX], unsigned int *n, const char *path, bool parent)
{
	char copy[PATH_MAX], abs[PATH_MAX];

	snprintf(copy, sizeof(copy), "%s", path);
	if (!realpath(parent ? dirname(copy) : copy, abs))
		return;
	for (unsigned int i = 0; i < *n; i++) {
		if (jail_beneath(abs, dirs[i]))
			return;
		if (jail_beneath(dirs[i], abs)) {
			snprintf(dirs[i], PATH_MAX, "%s", abs);
			return;
		}
	}
	if (*n < MAX_BINDS)
		snprintf(dirs[(*n)++], PATH_MAX, "%s", abs);
}

/* Landlock: only the snapshot directory, read and write. Its ABI or 0. */
static int landlock(const char *snap_dir)
{
	struct landlock_ruleset_attr attr = {0};
	struct landlock_path_beneath_attr rule = {0};
	long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
	int rs, r = 0;

	if (abi < 1)
		return 0;
	attr.handled_access_fs = (LANDLOCK_ACCESS_FS_MAKE_SYM << 1) - 1; /* ABI 1: bits 0-12 */
	if (abi >= 2)
		attr.handled_access_fs |= LANDLOCK_ACCESS_FS_REFER;
#ifdef LANDLOCK_ACCESS_FS_TRUNCATE
	if (abi >= 3)
		attr.handled_access_fs |= LANDLOCK_ACCESS_FS_TRUNCATE;
#endif
	rs = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof(attr), 0);
	if (rs < 0)
		return -errno;
	if (snap_dir) {
		rule.allowed_access =
		    attr.handled_access_fs &
		    ~(LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_MAKE_CHAR |
		      LANDLOCK_ACCESS_FS_MAKE_BLOCK | LANDLOCK_ACCESS_FS_MAKE_FIFO |
		      LANDLOCK_ACCESS_FS_MAKE_SOCK | LANDLOCK_ACCESS_FS_MAKE_SYM);
		rule.parent_fd = open(snap_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (rule.parent_fd < 0 ||
		    syscall(SYS_landlock_add_rule, rs, LANDLOCK_RULE_PATH_BENEATH, &rule, 0) < 0)
			r = -errno;
		if (rule.parent_fd >= 0)
			close(rule.parent_fd);
	}
	if (!r && SANITIZER_RUNTIME) {
		rule.allowed_access = LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR;
		rule.parent_fd = open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (rule.parent_fd < 0 ||
		    syscall(SYS_landlock_add_rule, rs, LANDLOCK_RULE_PATH_BENEATH, &rule, 0) < 0)
			r = -errno;
		if (rule.parent_fd >= 0)
			close(rule.parent_fd);
	}
	if (!r && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		r = -errno;
	if (!r && syscall(SYS_landlock_restrict_self, rs, 0) < 0)
		r = -errno;
	close(rs);
	return r ? r : (int)abi;
}

/* No capability in any set; root -> the user; no_new_privs. */
static int drop_privilege(const struct jail_who *w, bool all_caps)
{
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct data[2] = {0};

	if (all_caps) { /* root, or in our user namespace: CAP_SETPCAP */
		for (int c = 0; prctl(PR_CAPBSET_READ, c, 0, 0, 0) >= 0; c++)
			if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0)
				return -errno;
		if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
			return -errno;
	}
	if (w->drop && (setgroups(1, &w->gid) < 0 || setresgid(w->gid, w->gid, w->gid) < 0 ||
			setresuid(w->uid, w->uid, w->uid) < 0))
		return -errno;
	if (syscall(SYS_capset, &hdr, data) < 0 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	if (w->drop && setuid(0) == 0) /* cannot happen: say so rather than run as root */
		return -EPERM;
	if (SANITIZER_RUNTIME && prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0)
		return -errno;
	return 0;
}

int jail_walls(const struct jail_who *w, const struct vmm_config *cfg, struct jail_report *rep,
	       char *why, size_t len)
{
	bool api = cfg->api_socket != NULL;
	char dirs[MAX_BINDS][PATH_MAX];
	unsigned int n = 0;
	int r, r_ns;

	*rep = (struct jail_report){0};
	if (cfg->snapshot_dir)
		add_dir(dirs, &n, cfg->snapshot_dir, false);
	if (cfg->vsock.on)
		add_dir(dirs, &n, cfg->vsock.path, true);
	if (SANITIZER_RUNTIME)
		add_dir(dirs, &n, "/proc", false);
	r = r_ns = enter_namespaces(w, !api, rep, why, len);
	if (r < 0)
		return r;
	if (r == 0 && !api) {
		if ((r = reduce_fs(dirs, n))) {
			snprintf(why, len, "reducing the file system: %s", strerror(-r));
			return r;
		}
		rep->pivot = true;
	}
	r = landlock(cfg->snapshot_dir);
	if (r < 0) {
		snprintf(why, len, "Landlock: %s", strerror(-r));
		return r;
	}
	rep->landlock = r;
	if (!r)
		log_info("jail", "no Landlock in this kernel: the other walls still apply");
	if ((r = drop_privilege(w, w->drop || rep->userns))) {
		snprintf(why, len, "dropping privilege: %s", strerror(-r));
		return r;
	}
	rep->dropped = w->drop;
	log_info("jail", "uid %u gid %u%s; namespaces:%s%s; file system: %s; Landlock ABI %d",
		 (unsigned int)getuid(), (unsigned int)getgid(),
		 w->drop ? " (dropped from root)" : "", rep->userns ? " user" : "",
		 r_ns	    ? " none"
		 : rep->net ? " mnt ipc uts net"
			    : " mnt ipc uts",
		 rep->pivot ? "reduced"
		 : api	    ? "whole (--api-socket)"
			    : "whole",
		 rep->landlock);
	return 0;
}
