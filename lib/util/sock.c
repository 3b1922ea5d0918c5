/* SPDX-License-Identifier: MIT */
/* Unix sockets of the daemons: who may reach them is decided here. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "dlvm/util.h"

/* The gid of group `name`, or -1 when there is none (or no name). */
static gid_t group_id(const char *name)
{
	struct group gr, *res = NULL;
	char buf[4096];

	if (!name || getgrnam_r(name, &gr, buf, sizeof(buf), &res) || !res)
		return (gid_t)-1;
	return res->gr_gid;
}

void dlvm_unix_unlink(const char *path)
{
	struct stat st;

	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path);
}

int dlvm_unix_listen(const char *path, int backlog, int flags, const char *group, int *fd_out,
		     struct dlvm_err *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	gid_t gid = group_id(group);
	struct stat st;
	mode_t old;
	bool bound;
	int fd, r;

	if (strlen(path) >= sizeof(sa.sun_path))
		return dlvm_err_set(err, -ENAMETOOLONG, "%s: socket path too long", path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	/* lstat: a link planted at path is refused, never followed */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return dlvm_err_set(err, -EEXIST, "%s: exists and is not a socket", path);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return dlvm_err_set(err, -errno, "socket: %s", strerror(errno));
		r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
		close(fd);
		if (r == 0)
			return dlvm_err_set(err, -EADDRINUSE,
					    "%s: another daemon is listening on this socket", path);
		dlvm_unix_unlink(path); /* left by a daemon that is gone */
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | flags, 0);
	if (fd < 0)
		return dlvm_err_set(err, -errno, "socket: %s", strerror(errno));
	/* bound under a umask that lets no one else in, then opened to the
	 * group: never reachable by others, not even for a moment */
	old = umask(0177);
	r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	bound = r == 0;
	/* neither follows a link that replaced the socket file meanwhile */
	if (bound && gid != (gid_t)-1 &&
	    (lchown(path, (uid_t)-1, gid) || fchmodat(AT_FDCWD, path, 0660, AT_SYMLINK_NOFOLLOW)))
		r = -1;
	if (r < 0 || listen(fd, backlog) < 0) {
		r = -errno;
		close(fd);
		if (bound)
			dlvm_unix_unlink(path);
		return dlvm_err_set(err, r, "%s: %s", path, strerror(-r));
	}
	*fd_out = fd;
	return 0;
}
