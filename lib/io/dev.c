/* SPDX-License-Identifier: MIT */

#include "dlvm/dev.h"
#include "dlvm/util.h"

#include <inttypes.h>

#include <fcntl.h>
#include <libgen.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

static int fd_pread(struct dlvm_dev *dev, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(dev->fd, (char *)buf + done, len - done, (off_t)(off + done));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO; /* short device */
		done += (size_t)n;
	}
	return 0;
}

static int fd_pwrite(struct dlvm_dev *dev, const void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pwrite(dev->fd, (const char *)buf + done, len - done,
				   (off_t)(off + done));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		done += (size_t)n;
	}
	return 0;
}

static int fd_flush(struct dlvm_dev *dev)
{
	return fdatasync(dev->fd) < 0 ? -errno : 0;
}

static void fd_close(struct dlvm_dev *dev)
{
	if (dev->fd < 0)
		return;
	/* Unlock explicitly: an io_uring that registered this fd may hold the
	 * open file (and so the flock) for a while after close or exit. */
	flock(dev->fd, LOCK_UN);
	close(dev->fd);
}

static const struct dlvm_dev_ops fd_ops = {
	.pread = fd_pread,
	.pwrite = fd_pwrite,
	.flush = fd_flush,
	.close = fd_close,
};

/*
 * The alignment O_DIRECT needs for offsets and lengths on the regular file
 * fd (of size bytes): 512 or 4096; 0 when it needs what dlvm's buffers
 * (4096-aligned) and sectors cannot give, or no O_DIRECT at all: use the
 * page cache then. The file system tells it through statx(STATX_DIOALIGN)
 * (Linux 6.1); where it does not, a read of 512 bytes shows whether that
 * is enough, else one of 4096.
 */
static uint32_t file_dio_align(int fd, uint64_t size)
{
	struct statx sx;
	uint8_t *buf;
	uint32_t align = 512;

	if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 &&
	    (sx.stx_mask & STATX_DIOALIGN)) {
		uint32_t off = sx.stx_dio_offset_align, mem = sx.stx_dio_mem_align;
		if (!off || off > 4096 || mem > 4096)
			return 0;
		return off <= 512 ? 512 : 4096;
	}
	if (size < 4096 || !(buf = dlvm_io_alloc(4096)))
		return 512; /* nothing to probe with: as before */
	if (pread(fd, buf, 512, 0) < 0 && errno == EINVAL)
		align = pread(fd, buf, 4096, 0) < 0 && errno == EINVAL ? 0 : 4096;
	free(buf);
	return align;
}

static char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return strdup(s && s[1] ? s + 1 : path);
}

int dlvm_dev_open(const char *path, unsigned flags, struct dlvm_dev **out, struct dlvm_err *err)
{
	/* O_NONBLOCK and O_NOCTTY until the type is known: opening a FIFO
	 * would otherwise wait for a writer, a terminal would become ours */
	int oflags = ((flags & DLVM_DEV_RDONLY) ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NONBLOCK |
		     O_NOCTTY;
	struct dlvm_dev *dev;
	struct stat st;
	int fd, r;

	fd = open(path, oflags | O_DIRECT);
	if (fd < 0 && errno == EINVAL)
		fd = open(path, oflags); /* file system without O_DIRECT (tmpfs) */
	if (fd < 0) {
		r = -errno;
		return dlvm_err_set(err, r, "%s: cannot open: %s", path, strerror(-r));
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		close(fd);
		return dlvm_err_set(err, r, "%s: cannot stat: %s", path, strerror(-r));
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		close(fd);
		return dlvm_err_set(err, -EINVAL, "%s: not a regular file or block device", path);
	}
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0) {
		r = -errno;
		close(fd);
		return dlvm_err_set(err, r, "%s: fcntl: %s", path, strerror(-r));
	}
	/* A process that just died may hold its locks a little longer: the
	 * kernel closes files registered with its io_uring asynchronously. */
	int tries = (flags & DLVM_DEV_LOCK_WAIT) ? 150 : 1;
	while ((flags & DLVM_DEV_LOCK) && flock(fd, LOCK_EX | LOCK_NB) < 0 &&
	       errno == EWOULDBLOCK && --tries > 0)
		usleep(20000);
	if ((flags & DLVM_DEV_LOCK) && flock(fd, LOCK_EX | LOCK_NB) < 0) {
		r = -errno;
		close(fd);
		if (r == -EWOULDBLOCK)
			return dlvm_err_set(err, -EBUSY,
					    "%s: in use by another dlvm process "
					    "(is dlvmd running? use --socket)",
					    path);
		return dlvm_err_set(err, r, "%s: cannot lock: %s", path, strerror(-r));
	}
	dev = calloc(1, sizeof(*dev));
	if (!dev) {
		close(fd);
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	}
	dev->ops = &fd_ops;
	dev->fd = fd;
	dev->path = strdup(path);
	dev->name = base_name(path);
	dev->readonly = flags & DLVM_DEV_RDONLY;
	dev->direct = (fcntl(fd, F_GETFL) & O_DIRECT) != 0;
	if (S_ISBLK(st.st_mode)) {
		uint64_t size = 0;
		int ss = 512;
		dev->blockdev = true;
		if (ioctl(fd, BLKGETSIZE64, &size) < 0 || ioctl(fd, BLKSSZGET, &ss) < 0) {
			r = -errno;
			dlvm_dev_close(dev);
			return dlvm_err_set(err, r, "%s: cannot query block device: %s", path,
					    strerror(-r));
		}
		dev->size = size;
		dev->sector_size = (uint32_t)ss;
	} else {
		dev->size = (uint64_t)st.st_size;
		dev->sector_size = dev->direct ? file_dio_align(fd, dev->size) : 512;
		/* alignment unknown or beyond 4096: through the page cache */
		if (!dev->sector_size) {
			if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_DIRECT) < 0) {
				r = -errno;
				dlvm_dev_close(dev);
				return dlvm_err_set(err, r, "%s: fcntl: %s", path, strerror(-r));
			}
			dev->direct = false;
			dev->sector_size = 512;
		}
	}
	if (!dev->path || !dev->name) {
		dlvm_dev_close(dev);
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	}
	*out = dev;
	return 0;
}

void dlvm_dev_close(struct dlvm_dev *dev)
{
	if (!dev)
		return;
	if (dev->ops && dev->ops->close)
		dev->ops->close(dev);
	free(dev->path);
	free(dev->name);
	free(dev);
}

int dlvm_dev_read(struct dlvm_dev *dev, void *buf, size_t len, uint64_t off, struct dlvm_err *err)
{
	int r = dev->ops->pread(dev, buf, len, off);
	if (r < 0)
		return dlvm_err_set(err, r,
				    "%s: read of %zu bytes at offset %" PRIu64 " failed: %s",
				    dev->name, len, off, strerror(-r));
	return 0;
}

int dlvm_dev_write(struct dlvm_dev *dev, const void *buf, size_t len, uint64_t off,
		   struct dlvm_err *err)
{
	if (dev->readonly)
		return dlvm_err_set(err, -EROFS, "%s: opened read-only", dev->name);
	int r = dev->ops->pwrite(dev, buf, len, off);
	if (r < 0)
		return dlvm_err_set(err, r,
				    "%s: write of %zu bytes at offset %" PRIu64 " failed: %s",
				    dev->name, len, off, strerror(-r));
	return 0;
}

int dlvm_dev_write_many(struct dlvm_dev *dev, const struct dlvm_dev_wr *w, size_t n,
			struct dlvm_err *err)
{
	size_t failed = 0;
	int r = 0;

	if (dev->readonly && n)
		return dlvm_err_set(err, -EROFS, "%s: opened read-only", dev->name);
	if (dev->ops->pwrite_many)
		r = dev->ops->pwrite_many(dev, w, n, &failed);
	else
		for (; failed < n &&
		       !(r = dev->ops->pwrite(dev, w[failed].buf, w[failed].len, w[failed].off));
		     failed++)
			;
	if (r < 0)
		return dlvm_err_set(err, r,
				    "%s: write of %zu bytes at offset %" PRIu64 " failed: %s",
				    dev->name, w[failed].len, w[failed].off, strerror(-r));
	return 0;
}

bool dlvm_dev_is_plain(const struct dlvm_dev *dev)
{
	return dev->ops == &fd_ops && dev->fd >= 0;
}

int dlvm_dev_flush(struct dlvm_dev *dev, struct dlvm_err *err)
{
	int r = dev->ops->flush(dev);
	if (r < 0)
		return dlvm_err_set(err, r, "%s: flush failed: %s", dev->name, strerror(-r));
	return 0;
}

struct flush_job {
	struct dlvm_dev *dev;
	int *res;
	pthread_t thread;
	bool started;
};

static void *flush_main(void *arg)
{
	struct flush_job *j = arg;

	*j->res = j->dev->ops->flush(j->dev);
	return NULL;
}

/* At most this many flushes run in threads of their own at once. */
#define FLUSH_THREADS_MAX 16

void dlvm_devs_flush(struct dlvm_dev **devs, size_t n, int *res)
{
	struct flush_job jobs[FLUSH_THREADS_MAX];
	size_t first = 0;

	while (first < n) {
		size_t m = DLVM_MIN(n - first, (size_t)FLUSH_THREADS_MAX);
		/* the first of each batch is flushed here, the others alongside;
		 * devices without a descriptor (memory devices) one at a time */
		for (size_t i = 1; i < m; i++) {
			struct flush_job *j = &jobs[i];
			*j = (struct flush_job){ .dev = devs[first + i], .res = &res[first + i] };
			j->started = j->dev->fd >= 0 &&
				     pthread_create(&j->thread, NULL, flush_main, j) == 0;
		}
		res[first] = devs[first]->ops->flush(devs[first]);
		for (size_t i = 1; i < m; i++) {
			if (jobs[i].started)
				pthread_join(jobs[i].thread, NULL);
			else
				res[first + i] = devs[first + i]->ops->flush(devs[first + i]);
		}
		first += m;
	}
}

void *dlvm_io_alloc(size_t len)
{
	void *p = NULL;

	if (posix_memalign(&p, 4096, len ? dlvm_align_up(len, 4096) : 4096))
		return NULL;
	memset(p, 0, len ? dlvm_align_up(len, 4096) : 4096);
	return p;
}
