/*
 * --share's back-end: Debian's virtiofsd (qemu-system-common installs it
 * at /usr/lib/qemu/virtiofsd; one on PATH comes first), started for one
 * folder on a listening socket that has no name left in the file system
 * by the time it runs: vmm binds it in a private directory, connects,
 * removes both, and hands virtiofsd the listening end (--fd). virtiofsd
 * serves that one connection and quits when vmm closes it.
 *
 * readonly=on: virtiofsd has no such option, so it runs in a mount
 * namespace of its own where the folder is a read-only bind mount. As an
 * ordinary user, that namespace sits in a user namespace where the user
 * is root (unprivileged user namespaces, on by default in Debian), which
 * also lets virtiofsd build its own sandbox; files it creates belong to
 * the user. Debian 12's virtiofsd then drops its supplementary groups,
 * which such a namespace forbids: an ordinary user without any (setpriv
 * --clear-groups) can share, one with them is told so (fs.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "backend_proc.h"
#include "fs.h"
#include "log.h"

#define VIRTIOFSD_START_MS 0 /* the handshake tells whether it runs */

static const char *const fallbacks[] = {"/usr/lib/qemu/virtiofsd", "/usr/libexec/virtiofsd", NULL};

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), r = 0;

	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		r = -1;
	if (fd >= 0)
		close(fd);
	return r;
}

/* In the child, before exec: the namespaces (see the top). */
static int setup(void *arg)
{
	const struct fs_config *f = arg;
	struct mount_attr ro = {.attr_set = MOUNT_ATTR_RDONLY};
	uid_t uid = geteuid();
	gid_t gid = getegid();
	char map[64];

	if (uid != 0) {
		if (unshare(CLONE_NEWUSER | CLONE_NEWNS)) {
			fprintf(stderr,
				"cannot make a user namespace to run virtiofsd without "
				"privilege: %s\n",
				strerror(errno));
			return -1;
		}
		snprintf(map, sizeof(map), "0 %u 1\n", (unsigned int)uid);
		if (write_file("/proc/self/setgroups", "deny") ||
		    write_file("/proc/self/uid_map", map))
			goto fail;
		snprintf(map, sizeof(map), "0 %u 1\n", (unsigned int)gid);
		if (write_file("/proc/self/gid_map", map))
			goto fail;
	} else if (f->readonly && unshare(CLONE_NEWNS)) {
		goto fail;
	}
	if (!f->readonly)
		return 0;
	/*
	 * The folder and every mount below it read-only, their other flags
	 * kept (a remount would clear nosuid or nodev, which a user
	 * namespace may not, and would leave submounts writable).
	 */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
	    mount(f->dir, f->dir, NULL, MS_BIND | MS_REC, NULL) ||
	    mount_setattr(AT_FDCWD, f->dir, AT_RECURSIVE, &ro, sizeof(ro)))
		goto fail;
	return 0;
fail:
	fprintf(stderr, "cannot set up virtiofsd's namespace: %s\n", strerror(errno));
	return -1;
}

/*
 * A listening socket with no name left, and vmm's connection to it, made
 * in $XDG_RUNTIME_DIR (or /tmp): where (for a failure's line) in dir.
 */
static int socket_pair(int *listen_fd, int *conn_fd, char dir[256])
{
	const char *rt = getenv("XDG_RUNTIME_DIR");
	char path[300];
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int l = -1, c = -1, e = 0;

	snprintf(dir, 256, "%s/vmm-fs.XXXXXX", rt && *rt ? rt : "/tmp");
	if (!mkdtemp(dir)) { /* 0700: nobody else reaches the socket meanwhile */
		e = -errno;
		snprintf(dir, 256, "%s", rt && *rt ? rt : "/tmp");
		return e;
	}
	snprintf(path, sizeof(path), "%s/s", dir);
	if (strlen(path) >= sizeof(sa.sun_path)) {
		rmdir(dir);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, path, strlen(path));
	l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0 || c < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) || listen(l, 1) ||
	    connect(c, (struct sockaddr *)&sa, sizeof(sa)))
		e = -errno;
	unlink(path);
	rmdir(dir);
	if (e) {
		if (l >= 0)
			close(l);
		if (c >= 0)
			close(c);
		return e;
	}
	*listen_fd = l;
	*conn_fd = c;
	return 0;
}

int virtiofsd_start(const struct fs_config *f, int *conn, int *err_fd, bool *usage)
{
	char path[4096], source[4200], why[256], dir[256];
	char *argv[12];
	struct backend_spec spec = {.path = path,
				    .argv = argv,
				    .setup = setup,
				    .arg = (void *)f,
				    .start_ms = VIRTIOFSD_START_MS};
	struct stat st;
	unsigned int k = 0;
	int l = -1, r;

	*usage = true;
	if (stat(f->dir, &st)) {
		int e = errno;

		log_err(NULL, "--share: '%s' %s", f->dir,
			e == ENOENT ? "does not exist" : "cannot be read");
		return -e;
	}
	if (!S_ISDIR(st.st_mode)) {
		log_err(NULL, "--share: '%s' is not a directory", f->dir);
		return -ENOTDIR;
	}
	*usage = false;
	if (backend_find("virtiofsd", fallbacks, path, sizeof(path))) {
		log_err(NULL, "--share: virtiofsd is not installed (Debian's qemu-system-common "
			      "provides /usr/lib/qemu/virtiofsd)");
		return -ENOENT;
	}
	if ((r = socket_pair(&l, conn, dir))) {
		log_err(NULL, "--share: a socket for virtiofsd in %s: %s", dir, strerror(-r));
		return r;
	}
	snprintf(source, sizeof(source), "source=%s", f->dir);
	argv[k++] = "virtiofsd";
	argv[k++] = "--fd=3";
	argv[k++] = "-o";
	argv[k++] = source;
	argv[k++] = "-o";
	argv[k++] = "log_level=err"; /* its stderr is a pipe vmm reads only on failure */
	if (geteuid() != 0)
		argv[k++] = "--rlimit-nofile=0"; /* a user namespace cannot raise it */
	argv[k] = NULL;
	spec.sock = l;
	r = backend_start(&spec, err_fd, why, sizeof(why));
	close(l);
	if (r < 0) {
		close(*conn);
		log_err(NULL, "--share: virtiofsd could not start for '%s': %s", f->dir, why);
		return r;
	}
	log_info("fs", "virtiofsd (pid %d) serves '%s' as tag '%s'%s", r, f->dir, f->tag,
		 f->readonly ? ", read-only" : "");
	return 0;
}
