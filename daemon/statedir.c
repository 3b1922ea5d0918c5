/* SPDX-License-Identifier: MIT */
/* The state directory of dlvmd: created, locked, its devices file. */
#include "daemon/statedir.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dlvm/log.h"

void dlvmd_lease_name(const char *dir, char *out, size_t len)
{
	char host[64] = "localhost";
	uint32_t h = 2166136261u;

	gethostname(host, sizeof(host) - 1);
	host[sizeof(host) - 1] = '\0';
	if ((size_t)snprintf(out, len, "%s:%s", host, dir) < len)
		return;
	for (const char *p = dir; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	host[20] = '\0';
	int used = snprintf(out, len, "%s:%08x:", host, h);
	size_t room = len - 1 - (size_t)used, dl = strlen(dir);
	snprintf(out + used, len - (size_t)used, "%s", dir + (dl > room ? dl - room : 0));
}

int dlvmd_mkdir_p(const char *dir)
{
	char buf[PATH_MAX];
	size_t len = strlen(dir);

	if (len >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(buf, dir, len + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(buf, 0755) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

/*
 * The state directory, opened for the *at() calls that make its files, once
 * it is seen safe: owned by us, and writable by others only when sticky (so
 * that they can neither remove nor rename what we made there). The files
 * themselves are opened without following links (O_NOFOLLOW, and O_EXCL for
 * new ones): a link planted in a shared directory never makes dlvmd write
 * through it. -1 (logged) when refused.
 */
static int state_dir_fd(const char *dir)
{
	struct stat st;
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st) < 0) {
		log_error(DLVM_LOG_MAIN, "%s: %s", dir, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (st.st_uid != geteuid() || ((st.st_mode & 022) && !(st.st_mode & S_ISVTX))) {
		log_error(DLVM_LOG_MAIN,
			  "%s: state directory owned by uid %u, mode %04o: it must belong to uid "
			  "%u and be writable by others only with the sticky bit",
			  dir, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777),
			  (unsigned)geteuid());
		close(fd);
		return -1;
	}
	return fd;
}

/* openat(dfd, name) without following a link; for an existing file, one
 * that we own, so another user cannot hand us theirs in a sticky
 * directory. -1 (logged). */
static int open_own(int dfd, const char *dir, const char *name, int flags, mode_t mode)
{
	struct stat st;
	int fd = openat(dfd, name, flags | O_NOFOLLOW | O_CLOEXEC, mode);

	if (fd < 0) {
		if (errno != ENOENT || (flags & O_CREAT))
			log_error(DLVM_LOG_MAIN, "%s/%s: %s", dir, name,
				  errno == ELOOP ? "is a symbolic link: not followed (remove it)"
						 : strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid()) {
		log_error(DLVM_LOG_MAIN,
			  "%s/%s: not a regular file of uid %u: not used (remove it)", dir, name,
			  (unsigned)geteuid());
		close(fd);
		errno = EPERM;
		return -1;
	}
	return fd;
}

int dlvmd_state_dir_lock(const char *dir)
{
	char pid[32] = "";
	ssize_t n;
	int fd, dfd = state_dir_fd(dir);

	if (dfd < 0)
		return -1;
	fd = open_own(dfd, dir, "dlvmd.pid", O_RDWR | O_CREAT, 0644);
	close(dfd);
	if (fd < 0)
		return -1;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		n = pread(fd, pid, sizeof(pid) - 1, 0);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		log_error(DLVM_LOG_MAIN, "%s: another dlvmd (pid %s) runs on this state directory",
			  dir, *pid ? pid : "?");
		close(fd);
		return -1;
	}
	n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
		log_error(DLVM_LOG_MAIN, "%s/dlvmd.pid: %s", dir, strerror(errno));
		close(fd);
		return -1;
	}
	return fd; /* kept open for the daemon's lifetime */
}

int dlvmd_pv_dir_open(const char *state_dir, const char *dir, char *out, size_t len)
{
	char def[PATH_MAX], real[PATH_MAX];
	struct stat st;

	if (!dir) {
		snprintf(def, sizeof(def), "%s/pv", state_dir);
		dir = def;
		if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
			log_error(DLVM_LOG_MAIN, "%s: cannot create the PV directory: %s", dir,
				  strerror(errno));
			return -1;
		}
	}
	if (!realpath(dir, real) || stat(real, &st) < 0) {
		log_error(DLVM_LOG_MAIN, "--pv-dir %s: %s", dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		log_error(DLVM_LOG_MAIN, "--pv-dir %s: not a directory", dir);
		return -1;
	}
	if (st.st_uid != geteuid() || (st.st_mode & 022)) {
		log_error(DLVM_LOG_MAIN,
			  "--pv-dir %s: owned by uid %u, mode %04o: it must belong to uid %u and "
			  "be writable by its owner only (others could link any file there)",
			  dir, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777),
			  (unsigned)geteuid());
		return -1;
	}
	if (strlen(real) >= len) {
		log_error(DLVM_LOG_MAIN, "--pv-dir %s: path too long", dir);
		return -1;
	}
	memcpy(out, real, strlen(real) + 1);
	return 0;
}

/* An absolute form of a device path (the daemon's cwd must not matter). */
static char *absolute_path(const char *p)
{
	char cwd[PATH_MAX], *out;

	if (p[0] == '/')
		return strdup(p);
	if (!getcwd(cwd, sizeof(cwd)))
		return NULL;
	if (asprintf(&out, "%s/%s", cwd, p) < 0)
		return NULL;
	return out;
}

/* Whether a line of the devices file names the same device as path. */
static bool same_device(const char *line, const char *path)
{
	char a[PATH_MAX], b[PATH_MAX], *l = strndup(line, strcspn(line, "\n"));
	bool same;

	if (!l)
		return false;
	if (realpath(l, a) && realpath(path, b))
		same = !strcmp(a, b);
	else
		same = !strcmp(l, path);
	free(l);
	return same;
}

/* The lines of DIR/devices into *old (*nold of them); none when it does not
 * exist. 0, or -1 (logged). */
static int devices_read(int dfd, const char *dir, char ***old, size_t *nold)
{
	char *line = NULL;
	size_t cap = 0;
	int fd = open_own(dfd, dir, "devices", O_RDONLY, 0);
	FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;

	if (!f) {
		if (fd >= 0)
			close(fd);
		return fd < 0 && errno == ENOENT ? 0 : -1;
	}
	while (getline(&line, &cap, f) > 0) {
		char **p = realloc(*old, (*nold + 1) * sizeof(**old));

		if (!p) {
			free(line);
			fclose(f);
			log_error(DLVM_LOG_MAIN, "out of memory");
			return -1;
		}
		*old = p;
		(*old)[(*nold)++] = strdup(line);
	}
	free(line);
	fclose(f);
	return 0;
}

/* Append the devices not listed yet to f; whether any was. */
static bool devices_append(FILE *f, const char *path, char **old, size_t nold, const char *devices)
{
	bool changed = false;
	char *list = strdup(devices);

	for (char *tok = list, *next = NULL; tok; tok = next) {
		if ((next = strchr(tok, ',')))
			*next++ = '\0';
		char *abs = *tok ? absolute_path(tok) : NULL;
		bool known = false;

		if (!abs)
			continue;
		for (size_t i = 0; i < nold && !known; i++)
			known = old[i] && same_device(old[i], abs);
		if (!known) {
			if (nold && old[nold - 1] && !strchr(old[nold - 1], '\n') && !changed)
				fputc('\n', f);
			fprintf(f, "%s\n", abs);
			log_info(DLVM_LOG_MAIN, "%s: added to %s", abs, path);
			changed = true;
		}
		free(abs);
	}
	free(list);
	return changed;
}

int dlvmd_devices_file_add(const char *dir, const char *devices)
{
	char path[PATH_MAX + 32];
	size_t nold = 0;
	char **old = NULL;
	bool changed;
	FILE *f = NULL;
	int ret = -1, fd, dfd = state_dir_fd(dir);

	if (dfd < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/devices", dir);
	if (devices_read(dfd, dir, &old, &nold) < 0)
		goto out;
	/* a new file (O_EXCL): whatever was left at devices.tmp, a link
	 * included, is removed, never written through */
	if (unlinkat(dfd, "devices.tmp", 0) < 0 && errno != ENOENT) {
		log_error(DLVM_LOG_MAIN, "%s/devices.tmp: %s", dir, strerror(errno));
		goto out;
	}
	fd = open_own(dfd, dir, "devices.tmp", O_WRONLY | O_CREAT | O_EXCL, 0644);
	if (fd < 0 || !(f = fdopen(fd, "w"))) {
		if (fd >= 0)
			close(fd);
		goto out;
	}
	for (size_t i = 0; i < nold; i++)
		if (old[i])
			fputs(old[i], f);
	changed = devices_append(f, path, old, nold, devices);
	if (fflush(f) || fsync(fileno(f)) || fclose(f)) {
		log_error(DLVM_LOG_MAIN, "%s/devices.tmp: %s", dir, strerror(errno));
		unlinkat(dfd, "devices.tmp", 0);
		goto out;
	}
	if (changed && renameat(dfd, "devices.tmp", dfd, "devices") < 0) {
		log_error(DLVM_LOG_MAIN, "%s: %s", path, strerror(errno));
		unlinkat(dfd, "devices.tmp", 0);
		goto out;
	}
	if (!changed)
		unlinkat(dfd, "devices.tmp", 0);
	ret = 0;
out:
	for (size_t i = 0; i < nold; i++)
		free(old[i]);
	free(old);
	close(dfd);
	return ret;
}
