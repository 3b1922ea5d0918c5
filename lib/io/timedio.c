/* SPDX-License-Identifier: MIT */
/* I/O with a timeout (dlvm/timedio.h): io_uring requests linked to a
 * timeout, abandoned with their ring and buffer when the kernel cannot
 * give them back; and device ops that use them. */
#include "dlvm/timedio.h"

#include <errno.h>
#include <inttypes.h>
#include <liburing.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <sys/file.h>
#include <unistd.h>

#include "dlvm/util.h"

enum { UD_IO = 1, UD_TIMEOUT = 2 };

/* Idle rings, shared by all threads: a ring is taken for one request and
 * given back after it (threads that live for one flush make none). */
#define POOL_MAX 16
static struct io_uring *pool[POOL_MAX];
static size_t npool;
static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;

/* An idle ring, or a new one; NULL if none can be made. */
static struct io_uring *ring_get(void)
{
	struct io_uring *ring = NULL;

	pthread_mutex_lock(&pool_mu);
	if (npool)
		ring = pool[--npool];
	pthread_mutex_unlock(&pool_mu);
	if (ring)
		return ring;
	if (!(ring = calloc(1, sizeof(*ring))))
		return NULL;
	if (io_uring_queue_init(4, ring, 0)) {
		free(ring);
		return NULL;
	}
	return ring;
}

/* A ring whose requests have all completed goes back to the pool. */
static void ring_put(struct io_uring *ring)
{
	pthread_mutex_lock(&pool_mu);
	if (npool < POOL_MAX) {
		pool[npool++] = ring;
		ring = NULL;
	}
	pthread_mutex_unlock(&pool_mu);
	if (ring) {
		io_uring_queue_exit(ring);
		free(ring);
	}
}

/* Reap the request's two completions, waiting until `until_ns` (dlvm_now_ns)
 * at the latest. *res: the request's result; returns false if it did not
 * complete. */
static bool reap(struct io_uring *ring, uint64_t until_ns, int *res)
{
	bool io_done = false, to_done = false;

	while (!io_done || !to_done) {
		struct io_uring_cqe *cqe;
		uint64_t now = dlvm_now_ns();
		if (now >= until_ns)
			break;
		struct __kernel_timespec ts = {
			.tv_sec = (long long)((until_ns - now) / 1000000000u),
			.tv_nsec = (long long)((until_ns - now) % 1000000000u)
		};
		int w = io_uring_wait_cqe_timeout(ring, &cqe, &ts);
		if (w == -ETIME || w == -EINTR)
			continue;
		if (w < 0)
			break;
		if (io_uring_cqe_get_data64(cqe) == UD_IO) {
			*res = cqe->res;
			io_done = true;
		} else {
			to_done = true;
		}
		io_uring_cqe_seen(ring, cqe);
	}
	return io_done && to_done;
}

/* Rings and buffers left to requests the kernel would not give back: kept
 * here (never freed) so that nothing else reuses their memory. */
struct abandoned {
	struct abandoned *next;
	struct io_uring *ring;
	void *buf;
};
static struct abandoned *abandoned;
static pthread_mutex_t abandoned_mu = PTHREAD_MUTEX_INITIALIZER;

void dlvm_timedio_abandon(struct io_uring *ring, void *buf)
{
	struct abandoned *a = malloc(sizeof(*a));

	if (!a)
		return; /* unreachable then, but still never reused */
	*a = (struct abandoned){ .ring = ring, .buf = buf };
	pthread_mutex_lock(&abandoned_mu);
	a->next = abandoned;
	abandoned = a;
	pthread_mutex_unlock(&abandoned_mu);
}

/* Submit the request prepared in ring's first SQE, linked to a timeout, and
 * reap both completions: the request's result, or -ETIMEDOUT. The ring goes
 * back to the pool, or, with a request the kernel would not give back, is
 * abandoned with buffer b (*gone set). */
static int submit_timed(struct io_uring *ring, uint64_t timeout_ms, void *b, bool *gone)
{
	struct __kernel_timespec ts = { .tv_sec = (long long)(timeout_ms / 1000),
					.tv_nsec = (long long)(timeout_ms % 1000) * 1000000 };
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	int res;

	io_uring_prep_link_timeout(sqe, &ts, 0);
	io_uring_sqe_set_data64(sqe, UD_TIMEOUT);
	/* one system call submits both and waits for both completions (the
	 * timeout's comes at once when the request ends first); reap takes
	 * them, or waits on if this wait ended early */
	struct io_uring_cqe *cqe;
	struct __kernel_timespec wait = ts;
	res = io_uring_submit_and_wait_timeout(ring, &cqe, 2, &wait, NULL);
	if (res == -ETIME || res == -EINTR)
		res = 2; /* both went out: the kernel submits before it waits */
	if (res != 2) {
		/* nothing or half went out: this ring is not to be trusted */
		*gone = true;
		dlvm_timedio_abandon(ring, b);
		return res < 0 ? res : -EIO;
	}
	if (!reap(ring, dlvm_now_ns() + (timeout_ms + DLVM_TIMEDIO_GRACE_MS) * 1000000u, &res)) {
		*gone = true;
		dlvm_timedio_abandon(ring, b);
		return -ETIMEDOUT;
	}
	ring_put(ring);
	return res == -ECANCELED || res == -EINTR ? -ETIMEDOUT : res;
}

int dlvm_timed_rw(int fd, void *buf, size_t len, uint64_t off, bool write, uint64_t timeout_ms)
{
	struct io_uring *ring = len <= UINT32_MAX ? ring_get() : NULL;
	if (!ring) { /* no io_uring here: no timeout either */
		ssize_t n = write ? pwrite(fd, buf, len, (off_t)off)
				  : pread(fd, buf, len, (off_t)off);
		return n < 0 ? -errno : (size_t)n == len ? 0 : -EIO;
	}
	/* a bounce buffer: if the request is abandoned, it keeps this one */
	uint8_t *b = dlvm_io_alloc(len);
	bool gone = false;
	if (!b) {
		ring_put(ring);
		return -ENOMEM;
	}
	if (write)
		memcpy(b, buf, len);
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	if (write)
		io_uring_prep_write(sqe, fd, b, (unsigned)len, off);
	else
		io_uring_prep_read(sqe, fd, b, (unsigned)len, off);
	io_uring_sqe_set_data64(sqe, UD_IO);
	sqe->flags |= IOSQE_IO_LINK;
	int res = submit_timed(ring, timeout_ms, b, &gone);
	if (gone)
		return res; /* b went with the ring */
	if (res >= 0 && (size_t)res != len)
		res = -EIO; /* short: nothing here reads or writes past the end */
	else if (res >= 0)
		res = 0;
	if (!res && !write)
		memcpy(buf, b, len);
	free(b);
	return res;
}

int dlvm_timed_flush(int fd, uint64_t timeout_ms)
{
	struct io_uring *ring = ring_get();
	bool gone = false;
	if (!ring)
		return fdatasync(fd) < 0 ? -errno : 0;
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
	io_uring_sqe_set_data64(sqe, UD_IO);
	sqe->flags |= IOSQE_IO_LINK;
	int res = submit_timed(ring, timeout_ms, NULL, &gone);
	return res > 0 ? 0 : res;
}

/* ---- device ops with a timeout ---- */

struct timed_dev {
	uint64_t timeout_ms;
};

static uint64_t dev_timeout(struct dlvm_dev *dev)
{
	return ((struct timed_dev *)dev->priv)->timeout_ms;
}

static int timed_pread(struct dlvm_dev *dev, void *buf, size_t len, uint64_t off)
{
	return dlvm_timed_rw(dev->fd, buf, len, off, false, dev_timeout(dev));
}

static int timed_pwrite(struct dlvm_dev *dev, const void *buf, size_t len, uint64_t off)
{
	return dlvm_timed_rw(dev->fd, (void *)buf, len, off, true, dev_timeout(dev));
}

static int timed_flush(struct dlvm_dev *dev)
{
	return dlvm_timed_flush(dev->fd, dev_timeout(dev));
}

static void timed_close(struct dlvm_dev *dev)
{
	free(dev->priv);
	dev->priv = NULL;
	if (dev->fd < 0)
		return;
	flock(dev->fd, LOCK_UN); /* as a plain device's close does */
	close(dev->fd);
}

static const struct dlvm_dev_ops timed_ops = {
	.pread = timed_pread,
	.pwrite = timed_pwrite,
	.flush = timed_flush,
	.close = timed_close,
};

int dlvm_dev_set_timeout(struct dlvm_dev *dev, uint64_t timeout_ms)
{
	if (dev->ops == &timed_ops) {
		((struct timed_dev *)dev->priv)->timeout_ms = timeout_ms;
		return 0;
	}
	if (!dlvm_dev_is_plain(dev))
		return -EINVAL;
	struct timed_dev *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->timeout_ms = timeout_ms;
	dev->priv = t;
	dev->ops = &timed_ops;
	return 0;
}

uint64_t dlvm_dev_timeout(const struct dlvm_dev *dev)
{
	return dev->ops == &timed_ops ? ((const struct timed_dev *)dev->priv)->timeout_ms : 0;
}
