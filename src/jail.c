/*
 * The jail: see include/jail.h for what it does and the order it keeps.
 *
 * Decisions:
 * - A run with --api-socket keeps the host's network namespace and its
 *   whole file system view (in a mount namespace of its own): a client
 *   may ask it to migrate over TCP or to a Unix socket anywhere. Landlock
 *   and the drop still apply, so it writes only beneath --snapshot-dir.
 * - The reduced file system is a read-only tmpfs holding bind mounts of
 *   the snapshot directory and the vsock socket's directory, at their own
 *   paths; the working directory is kept when it is one of them.
 * - Landlock grants the snapshot directory alone (read and write). The
 *   vsock directory needs no rule: connecting to a socket is not a file
 *   access Landlock governs; the keeper removes the sockets.
 * - Without root, the namespaces come through a user namespace mapping
 *   the user to itself; where the host allows none, -v says so and
 *   Landlock and no_new_privs still apply.
 * - The keeper (below) is forked with the process small and no device
 *   open; it is confined by a seccomp filter of its own.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <netinet/in.h>
#include <pwd.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "config.h"
#include "jail.h"
#include "jail_walls.h"
#include "log.h"

/* The paths the keeper acts on: fixed before it is forked. */
enum keeper_path { K_RESULT_TMP, K_RESULT, K_API, K_VSOCK, K_SNAPDIR, K_NR };

/* One per process (the jail is the process's, not a VM's). */
static struct {
	bool on;
	bool drop; /* started as root: become uid/gid */
	uid_t uid;
	gid_t gid;
	char user[64];
	bool snap_made;		 /* the snapshot directory is ours: removed if still empty */
	char snap_abs[PATH_MAX]; /* its real path, for the API's snapshots */
	char snap_lex[PATH_MAX]; /* and as given, made absolute by its text */
	char cwd[PATH_MAX];
	char *path[K_NR];
	int keeper_fd;
} jail = {.keeper_fd = -1};

static bool lexical_abs(const char *dir, char *out, size_t len);

/* --user USER[:GROUP]: the user's own group unless GROUP says otherwise. */
static int resolve_user(const char *spec)
{
	char name[64], *colon;
	struct passwd *pw;

	snprintf(name, sizeof(name), "%s", spec);
	colon = strchr(name, ':');
	if (colon)
		*colon++ = '\0';
	pw = *name ? getpwnam(name) : NULL;
	if (!pw) {
		log_err(NULL, "--user: no such user '%s'", name);
		return -EINVAL;
	}
	if (pw->pw_uid == 0) {
		log_err(NULL,
			"--user: '%s' is root: the jail needs an unprivileged user "
			"(--no-jail keeps root)",
			name);
		return -EINVAL;
	}
	jail.uid = pw->pw_uid;
	jail.gid = pw->pw_gid;
	if (colon) {
		struct group *gr = *colon ? getgrnam(colon) : NULL;

		if (!gr || gr->gr_gid == 0) {
			log_err(NULL, "--user: %s group '%s'", gr ? "not the root" : "no such",
				colon);
			return -EINVAL;
		}
		jail.gid = gr->gr_gid;
	}
	snprintf(jail.user, sizeof(jail.user), "%s", name);
	return 0;
}

/* May uid/gid (no supplementary groups) write into dir? Mode bits only. */
static bool user_can_write(const struct stat *st)
{
	mode_t need = S_IWOTH | S_IXOTH;

	if (st->st_uid == jail.uid)
		need = S_IWUSR | S_IXUSR;
	else if (st->st_gid == jail.gid)
		need = S_IWGRP | S_IXGRP;
	return (st->st_mode & need) == need;
}

/*
 * The snapshot directory is where the jailed VMM writes: make it now if it
 * is new (owned by the user it becomes), or check that user can write it.
 */
static int prepare_snapshot_dir(const char *dir, bool *usage)
{
	struct stat st;

	if (mkdir(dir, 0700) == 0) {
		jail.snap_made = true;
		if (jail.drop && chown(dir, jail.uid, jail.gid) < 0) {
			int e = errno;

			log_err(NULL, "--snapshot-dir: cannot give '%s' to %s: %s", dir, jail.user,
				strerror(e));
			rmdir(dir);
			return -e;
		}
		return 0;
	}
	if (errno != EEXIST) {
		int e = errno;

		log_err(NULL, "--snapshot-dir: cannot make '%s': %s", dir, strerror(e));
		*usage = e == ENOENT || e == ENOTDIR;
		return -e;
	}
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		log_err(NULL, "--snapshot-dir: '%s' is not a directory", dir);
		*usage = true;
		return -ENOTDIR;
	}
	if (jail.drop && !user_can_write(&st)) {
		log_err(NULL,
			"--snapshot-dir: user %s cannot write '%s' (name a new directory, one %s "
			"owns, another --user, or --no-jail)",
			jail.user, dir, jail.user);
		*usage = true;
		return -EACCES;
	}
	return 0;
}

/* The keeper's whole life: fixed operations on request, cleanup at EOF. */
static void keeper_serve(int fd)
{
	static const int quiet[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGUSR1, SIGUSR2};
	static const int calls[] = {SCMP_SYS(read),	  SCMP_SYS(write),	 SCMP_SYS(rename),
				    SCMP_SYS(renameat),	  SCMP_SYS(renameat2),	 SCMP_SYS(unlink),
				    SCMP_SYS(unlinkat),	  SCMP_SYS(rmdir),	 SCMP_SYS(exit),
				    SCMP_SYS(exit_group), SCMP_SYS(rt_sigreturn)};
	bool renamed = false;
	scmp_filter_ctx ctx;
	unsigned char op;
	int null = open("/dev/null", O_RDWR);

	for (unsigned int i = 0; i < sizeof(quiet) / sizeof(quiet[0]); i++)
		signal(quiet[i], SIG_IGN);
	if (fd < 3) /* stdio was closed: keep the socket out of the way */
		fd = fcntl(fd, F_DUPFD, 3);
	if (null >= 0) { /* hold no reader of vmm's output open */
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
	}
	if (fd != 3 && dup2(fd, 3) == 3)
		fd = 3;
	syscall(SYS_close_range, fd + 1, ~0U, 0);
	prctl(PR_SET_NAME, "vmm-keeper");
	ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	for (unsigned int i = 0; ctx && i < sizeof(calls) / sizeof(calls[0]); i++)
		if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, calls[i], 0))
			_exit(1);
	if (!ctx || seccomp_load(ctx))
		_exit(1);
	op = 0;
	if (write(fd, &op, 1) != 1) /* ready */
		_exit(1);
	while (read(fd, &op, 1) == 1 && op != 'E') {
		int r = 0;

		switch (op) {
		case 'R':
			r = jail.path[K_RESULT_TMP] && jail.path[K_RESULT]
				? rename(jail.path[K_RESULT_TMP], jail.path[K_RESULT])
				: (errno = EINVAL, -1);
			renamed |= r == 0;
			break;
		case 'T': r = jail.path[K_RESULT_TMP] ? unlink(jail.path[K_RESULT_TMP]) : 0; break;
		case 'A': r = jail.path[K_API] ? unlink(jail.path[K_API]) : 0; break;
		case 'V': r = jail.path[K_VSOCK] ? unlink(jail.path[K_VSOCK]) : 0; break;
		default: r = -1, errno = EINVAL;
		}
		op = r < 0 ? (unsigned char)(errno > 0 && errno < 256 ? errno : EIO) : 0;
		if (write(fd, &op, 1) != 1)
			break;
	}
	/* vmm ends ('E') or was killed (EOF): what it leaves behind goes */
	if (!renamed && jail.path[K_RESULT_TMP])
		unlink(jail.path[K_RESULT_TMP]);
	if (jail.snap_made && jail.path[K_SNAPDIR])
		rmdir(jail.path[K_SNAPDIR]); /* only if nothing was written there */
	op = 0;
	(void)!write(fd, &op, 1); /* done: vmm may exit */
	_exit(0);
}

/* The keeper's answer: 0 or -errno (-EPIPE: it is gone). */
static int keeper_reply(void)
{
	unsigned char res;
	ssize_t n;

	do
		n = read(jail.keeper_fd, &res, 1);
	while (n < 0 && errno == EINTR);
	if (n != 1)
		return n < 0 ? -errno : -EPIPE;
	return -(int)res;
}

static int keeper_start(void)
{
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		int e = errno;

		close(sv[0]);
		close(sv[1]);
		return -e;
	}
	if (pid == 0) {
		close(sv[0]);
		keeper_serve(sv[1]);
	}
	close(sv[1]);
	jail.keeper_fd = sv[0];
	if (keeper_reply() != 0) { /* its ready byte: it runs, confined */
		close(jail.keeper_fd);
		jail.keeper_fd = -1;
		return -ECHILD;
	}
	return 0;
}

static int keep_path(enum keeper_path k, const char *p)
{
	if (p && !(jail.path[k] = strdup(p)))
		return -ENOMEM;
	return 0;
}

int jail_plan(struct vmm_config *cfg, bool *usage)
{
	char tmp[PATH_MAX];
	int r;

	*usage = false;
	jail.on = !cfg->no_jail;
	if (!jail.on) {
		if (cfg->user) {
			log_err(NULL, "--user: not with --no-jail");
			*usage = true;
			return -EINVAL;
		}
		return 0;
	}
	jail.drop = geteuid() == 0;
	if (jail.drop && !cfg->user && !getpwnam("nobody")) {
		/* a system without the entry (an initramfs): the kernel's overflow ids */
		jail.uid = jail.gid = 65534;
		snprintf(jail.user, sizeof(jail.user), "65534");
	} else if (jail.drop && (r = resolve_user(cfg->user ? cfg->user : "nobody"))) {
		*usage = true;
		return r;
	}
	if (!jail.drop) {
		jail.uid = geteuid();
		jail.gid = getegid();
		if (cfg->user)
			log_info("jail", "--user %s: vmm is not root; it stays uid %u", cfg->user,
				 (unsigned int)jail.uid);
	}
	if (!getcwd(jail.cwd, sizeof(jail.cwd)))
		snprintf(jail.cwd, sizeof(jail.cwd), "/");
	if (cfg->snapshot_dir && (r = prepare_snapshot_dir(cfg->snapshot_dir, usage)))
		return r;
	if (cfg->snapshot_dir) {
		/* by its real path from here on: the jail may change the working
		 * directory; the text as given still names it for the API */
		if (!lexical_abs(cfg->snapshot_dir, jail.snap_lex, sizeof(jail.snap_lex)))
			jail.snap_lex[0] = '\0';
		if (realpath(cfg->snapshot_dir, jail.snap_abs))
			cfg->snapshot_dir = jail.snap_abs;
		else
			jail.snap_abs[0] = '\0';
	}
	if (cfg->result_path && jail_result_tmp_name(tmp, sizeof(tmp), cfg->result_path) == 0 &&
	    ((r = keep_path(K_RESULT_TMP, tmp)) || (r = keep_path(K_RESULT, cfg->result_path))))
		goto fail;
	if ((r = keep_path(K_API, cfg->api_socket)) ||
	    (r = keep_path(K_VSOCK, cfg->vsock.on ? cfg->vsock.path : NULL)) ||
	    (r = keep_path(K_SNAPDIR, cfg->snapshot_dir)))
		goto fail;
	if ((r = keeper_start())) {
		log_err(NULL, "jail: cannot start the keeper process: %s", strerror(-r));
		goto fail;
	}
	return 0;
fail:
	if (r == -ENOMEM)
		log_err(NULL, "jail: out of memory");
	if (jail.snap_made) /* nothing else is left behind */
		rmdir(cfg->snapshot_dir);
	jail.snap_made = false;
	return r;
}

int jail_enter(const struct vmm_config *cfg, struct jail_report *rep, char *why, size_t len)
{
	struct jail_who w = {.drop = jail.drop, .uid = jail.uid, .gid = jail.gid};

	*rep = (struct jail_report){0};
	snprintf(why, len, "failed");
	return jail.on ? jail_walls(&w, cfg, rep, why, len) : 0;
}

bool jail_drops(uid_t *uid, gid_t *gid)
{
	if (!jail.on || !jail.drop)
		return false;
	*uid = jail.uid;
	*gid = jail.gid;
	return true;
}

static int keeper_do(char op);

/*
 * The keeper cleans up and answers before it exits, so nothing is left
 * when vmm exits. It is not reaped (wait4 is outside the I/O thread's
 * seccomp filter): it goes with vmm.
 */
void jail_finish(void)
{
	if (jail.keeper_fd >= 0) {
		(void)!keeper_do('E');
		close(jail.keeper_fd);
	}
	jail.keeper_fd = -1;
	for (unsigned int i = 0; i < K_NR; i++) {
		free(jail.path[i]);
		jail.path[i] = NULL;
	}
}

/* Ask the keeper for op; 0 or -errno. */
static int keeper_do(char op)
{
	ssize_t n;

	do /* no SIGPIPE from a keeper that died: it would end the run */
		n = send(jail.keeper_fd, &op, 1, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n != 1)
		return n < 0 ? -errno : -EIO;
	return keeper_reply();
}

static bool same(const char *a, const char *b)
{
	return a && b && !strcmp(a, b);
}

int jail_result_tmp_name(char *out, size_t len, const char *path)
{
	int n = snprintf(out, len, "%s.tmp.%d", path, (int)getpid());

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int jail_result_rename(const char *tmp, const char *path)
{
	if (jail.keeper_fd >= 0 && same(tmp, jail.path[K_RESULT_TMP]) &&
	    same(path, jail.path[K_RESULT]))
		return keeper_do('R');
	return rename(tmp, path) < 0 ? -errno : 0;
}

int jail_result_unlink(const char *tmp)
{
	if (jail.keeper_fd >= 0 && same(tmp, jail.path[K_RESULT_TMP]))
		return keeper_do('T');
	return unlink(tmp) < 0 ? -errno : 0;
}

int jail_unlink_socket(const char *path)
{
	if (jail.keeper_fd >= 0 && same(path, jail.path[K_API]))
		return keeper_do('A');
	if (jail.keeper_fd >= 0 && same(path, jail.path[K_VSOCK]))
		return keeper_do('V');
	return unlink(path) < 0 ? -errno : 0;
}

void jail_test_hook(void)
{
	const char *t = getenv("VMM_TEST_JAIL");
	long r;

	if (!t)
		return;
	if (!strncmp(t, "open:", 5)) {
		r = open(t + 5, O_RDONLY | O_CLOEXEC);
		if (r >= 0)
			close((int)r);
	} else if (!strncmp(t, "connect:", 8)) {
		struct sockaddr_in a = {.sin_family = AF_INET,
					.sin_port = htons((uint16_t)atoi(t + 8)),
					.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		r = s < 0 ? -1 : connect(s, (struct sockaddr *)&a, sizeof(a));
		if (s >= 0)
			close(s);
	} else if (!strcmp(t, "setuid")) {
		r = setuid(0);
	} else {
		fprintf(stderr, "vmm: jail probe '%s': unknown\n", t);
		return;
	}
	if (r < 0)
		fprintf(stderr, "vmm: jail probe %s: refused (%s)\n", t, strerror(errno));
	else
		fprintf(stderr, "vmm: jail probe %s: allowed\n", t);
}

/*
 * dir made absolute (against the working directory at jail_plan()) and
 * normalised, by its text alone: the I/O thread may not resolve links
 * (Landlock holds the real line). False for a ".." in it.
 */
static bool lexical_abs(const char *dir, char *out, size_t len)
{
	char tmp[PATH_MAX], *save = NULL, *c;
	size_t n = 0;

	if (snprintf(tmp, sizeof(tmp), "%s/%s", dir[0] == '/' ? "" : jail.cwd, dir) >=
	    (int)sizeof(tmp))
		return false;
	out[0] = '\0';
	for (c = strtok_r(tmp, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		if (!strcmp(c, "."))
			continue;
		if (!strcmp(c, "..") || n + strlen(c) + 2 > len)
			return false;
		n += (size_t)snprintf(out + n, len - n, "/%s", c);
	}
	if (!n)
		snprintf(out, len, "/");
	return true;
}

bool jail_snapshot_refusal(const char *dir, const char *area, char *why, size_t len)
{
	char abs[PATH_MAX];

	if (!jail.on)
		return false;
	if (!area) {
		snprintf(why, len,
			 "snapshot: the jail lets this vmm write nowhere: start it with "
			 "--snapshot-dir DIR (or --no-jail)");
		return true;
	}
	if (!lexical_abs(dir, abs, sizeof(abs)) ||
	    !((jail.snap_abs[0] && jail_beneath(abs, jail.snap_abs)) ||
	      (jail.snap_lex[0] && jail_beneath(abs, jail.snap_lex)))) {
		snprintf(why, len,
			 "snapshot: '%.200s' is not beneath --snapshot-dir '%.200s' (the jail's)",
			 dir, area);
		return true;
	}
	return false;
}
