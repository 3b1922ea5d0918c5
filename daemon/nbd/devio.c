/* SPDX-License-Identifier: MIT */
#include "daemon/nbd/devio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "dlvm/util.h"

_Alignas(4096) uint8_t nbd_zero_buf[NBD_ZERO_BUF];

static int pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = pread(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO; /* past the end of the device */
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

static int pwrite_full(int fd, const void *buf, size_t len, uint64_t off, bool fua)
{
	const uint8_t *p = buf;

	while (len) {
		struct iovec iov = { .iov_base = (void *)p, .iov_len = len };
		ssize_t n = pwritev2(fd, &iov, 1, (off_t)off, fua ? RWF_DSYNC : 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EFBIG || errno == EDQUOT ? -ENOSPC : -errno;
		if (n == 0)
			return -EIO;
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

/* An aligned bounce buffer covering [off, off + len) rounded out to a. */
static uint8_t *bounce(uint64_t off, size_t len, uint32_t a, uint64_t *aoff, size_t *alen)
{
	void *b;

	*aoff = off / a * a;
	*alen = (size_t)(dlvm_align_up(off + len, a) - *aoff);
	if (posix_memalign(&b, a < 4096 ? 4096 : a, *alen))
		return NULL;
	return b;
}

int nbd_dev_read(const struct dlvm_map_dev *d, void *buf, size_t len, uint64_t off)
{
	uint32_t a = nbd_dev_align(d);
	uint64_t aoff;
	size_t alen;
	uint8_t *b;
	int ret;

	if (nbd_dev_aligned(d, buf, len, off))
		return pread_full(d->fd, buf, len, off);
	b = bounce(off, len, a, &aoff, &alen);
	if (!b)
		return -ENOMEM;
	ret = pread_full(d->fd, b, alen, aoff);
	if (!ret)
		memcpy(buf, b + (off - aoff), len);
	free(b);
	return ret;
}

int nbd_dev_write(const struct dlvm_map_dev *d, const void *buf, size_t len, uint64_t off, bool fua,
		  pthread_mutex_t *lock)
{
	uint32_t a = nbd_dev_align(d);
	uint64_t aoff;
	size_t alen;
	uint8_t *b;
	int ret = 0;

	if (nbd_dev_aligned(d, buf, len, off))
		return pwrite_full(d->fd, buf, len, off, fua);
	b = bounce(off, len, a, &aoff, &alen);
	if (!b)
		return -ENOMEM;
	pthread_mutex_lock(lock);
	/* Only partial first and last sectors need their old contents. */
	if (off != aoff)
		ret = pread_full(d->fd, b, a, aoff);
	if (!ret && (off + len) % a && (alen > a || off == aoff))
		ret = pread_full(d->fd, b + alen - a, a, aoff + alen - a);
	if (!ret) {
		memcpy(b + (off - aoff), buf, len);
		ret = pwrite_full(d->fd, b, alen, aoff, fua);
	}
	pthread_mutex_unlock(lock);
	free(b);
	return ret;
}

static int write_zeros(const struct dlvm_map_dev *d, uint64_t off, uint64_t len, bool fua,
		       pthread_mutex_t *lock)
{
	while (len) {
		size_t n = len < NBD_ZERO_BUF ? (size_t)len : NBD_ZERO_BUF;
		int ret = nbd_dev_write(d, nbd_zero_buf, n, off, fua, lock);
		if (ret < 0)
			return ret;
		off += n;
		len -= n;
	}
	return 0;
}

static bool falloc_unsupported(int e)
{
	return e == EOPNOTSUPP || e == ENOTSUP || e == EINVAL || e == ENODEV || e == ENOSYS;
}

int nbd_dev_zero(const struct dlvm_map_dev *d, uint64_t off, uint64_t len, bool may_trim, bool fua,
		 pthread_mutex_t *lock)
{
	uint32_t a = nbd_dev_align(d);
	uint64_t end = off + len, mid0 = dlvm_align_up(off, a), mid1 = end / a * a;
	int ret;

	if (mid0 >= mid1) /* within one sector */
		return write_zeros(d, off, len, fua, lock);
	if (off < mid0 && (ret = write_zeros(d, off, mid0 - off, fua, lock)) < 0)
		return ret;
	if (end > mid1 && (ret = write_zeros(d, mid1, end - mid1, fua, lock)) < 0)
		return ret;
	ret = -EOPNOTSUPP;
	if (may_trim && fallocate(d->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)mid0,
				  (off_t)(mid1 - mid0)) == 0)
		ret = 0;
	if (ret && fallocate(d->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, (off_t)mid0,
			     (off_t)(mid1 - mid0)) == 0)
		ret = 0;
	if (ret && !falloc_unsupported(errno))
		return -errno;
	if (ret)
		return write_zeros(d, mid0, mid1 - mid0, fua, lock);
	if (fua && fdatasync(d->fd) < 0)
		return -errno;
	return 0;
}

int nbd_dev_trim(const struct dlvm_map_dev *d, uint64_t off, uint64_t len, bool fua)
{
	uint32_t a = nbd_dev_align(d);
	uint64_t mid0 = dlvm_align_up(off, a), mid1 = (off + len) / a * a;

	if (mid0 >= mid1)
		return 0;
	if (fallocate(d->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)mid0,
		      (off_t)(mid1 - mid0)) < 0 &&
	    !falloc_unsupported(errno))
		return -errno;
	if (fua && fdatasync(d->fd) < 0)
		return -errno;
	return 0;
}
