/* SPDX-License-Identifier: MIT */
/*
 * Lease I/O with a timeout. A lease read or write on a PV file or block
 * device goes to the kernel through an io_uring of the calling thread, linked
 * to a timeout of T (IORING_OP_LINK_TIMEOUT): when T passes, the kernel
 * cancels the request if it still can, and the caller gets -ETIMEDOUT. A
 * request the kernel can no longer cancel (already at the device, which
 * hangs) is waited for a short grace more and then abandoned: the ring and
 * the bounce buffer it uses are left to it (never freed nor reused, so a
 * late completion touches nothing of ours) and the thread makes a new ring
 * for its next I/O. So a hung lease device never blocks a renewal, a ballot
 * or dlvmd's shutdown for longer than T plus the grace per I/O; how a write
 * that lands late is covered is argued in docs/leases.md ("Lease I/O").
 *
 * Devices without a file descriptor (memory devices in the unit tests) and
 * an area without a timeout use the device's ops, as before.
 */
#include <errno.h>
#include <inttypes.h>
#include <liburing.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "dlvm/log.h"
#include "dlvm/util.h"
#include "lease_int.h"

#define GRACE_MS 500u /* after the timeout, for the kernel's cancellation */

enum { UD_IO = 1, UD_TIMEOUT = 2 };

static pthread_key_t ring_key;
static pthread_once_t ring_once = PTHREAD_ONCE_INIT;

static void ring_free(void *p)
{
	io_uring_queue_exit(p);
	free(p);
}

static void ring_key_make(void)
{
	pthread_key_create(&ring_key, ring_free);
}

/* This thread's ring, made at its first lease I/O; NULL if none can be. */
static struct io_uring *thread_ring(void)
{
	pthread_once(&ring_once, ring_key_make);
	struct io_uring *ring = pthread_getspecific(ring_key);
	if (ring)
		return ring;
	if (!(ring = calloc(1, sizeof(*ring))))
		return NULL;
	if (io_uring_queue_init(4, ring, 0)) {
		free(ring);
		return NULL;
	}
	pthread_setspecific(ring_key, ring);
	return ring;
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

/* The ring of this thread has a request the kernel would not give back:
 * leave the ring and the request's buffer to it; the thread's next lease
 * I/O makes a new ring. */
static void abandon(struct io_uring *ring, void *buf)
{
	struct abandoned *a = malloc(sizeof(*a));

	pthread_setspecific(ring_key, NULL);
	if (!a)
		return; /* unreachable then, but still never reused */
	*a = (struct abandoned){ .ring = ring, .buf = buf };
	pthread_mutex_lock(&abandoned_mu);
	a->next = abandoned;
	abandoned = a;
	pthread_mutex_unlock(&abandoned_mu);
}

static int timed_io(struct dlvm_dev *dev, void *buf, size_t len, uint64_t off, bool write,
		    uint64_t timeout_ms)
{
	struct io_uring *ring = thread_ring();
	if (!ring) /* no io_uring here: no timeout either */
		return write ? dev->ops->pwrite(dev, buf, len, off)
			     : dev->ops->pread(dev, buf, len, off);
	/* a bounce buffer: if the request is abandoned, it keeps this one */
	uint8_t *b = dlvm_io_alloc(len);
	if (!b)
		return -ENOMEM;
	if (write)
		memcpy(b, buf, len);
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	if (write)
		io_uring_prep_write(sqe, dev->fd, b, (unsigned)len, off);
	else
		io_uring_prep_read(sqe, dev->fd, b, (unsigned)len, off);
	io_uring_sqe_set_data64(sqe, UD_IO);
	sqe->flags |= IOSQE_IO_LINK;
	struct __kernel_timespec ts = { .tv_sec = (long long)(timeout_ms / 1000),
					.tv_nsec = (long long)(timeout_ms % 1000) * 1000000 };
	sqe = io_uring_get_sqe(ring);
	io_uring_prep_link_timeout(sqe, &ts, 0);
	io_uring_sqe_set_data64(sqe, UD_TIMEOUT);
	int res = io_uring_submit(ring);
	if (res != 2) {
		/* nothing or half went out: this ring is not to be trusted */
		abandon(ring, b);
		return res < 0 ? res : -EIO;
	}
	if (!reap(ring, dlvm_now_ns() + (timeout_ms + GRACE_MS) * 1000000u, &res)) {
		abandon(ring, b);
		log_warning(DLVM_LOG_LEASE,
			    "%s: lease %s at offset %" PRIu64 " still in the kernel %" PRIu64
			    " ms after its timeout: abandoned",
			    dev->name, write ? "write" : "read", off, (uint64_t)GRACE_MS);
		return -ETIMEDOUT;
	}
	if (res == -ECANCELED || res == -EINTR)
		res = -ETIMEDOUT;
	else if (res >= 0 && (size_t)res != len)
		res = -EIO; /* short: nothing here reads or writes past the end */
	else if (res >= 0)
		res = 0;
	if (!res && !write)
		memcpy(buf, b, len);
	free(b);
	return res;
}

int lease_dev_io(struct dlvm_lease_area *a, void *buf, size_t len, uint64_t off, bool write,
		 struct dlvm_err *err)
{
	struct dlvm_dev *dev = a->dev;
	uint64_t t = a->io_timeout_ms;
	int r;

	if (write && dev->readonly)
		return dlvm_err_set(err, -EROFS, "%s: opened read-only", dev->name);
	if (!t || !dlvm_dev_is_plain(dev) || len > UINT32_MAX)
		r = write ? dev->ops->pwrite(dev, buf, len, off)
			  : dev->ops->pread(dev, buf, len, off);
	else
		r = timed_io(dev, buf, len, off, write, t);
	if (r == -ETIMEDOUT)
		return dlvm_err_set(err, r,
				    "%s: %s of %zu bytes at offset %" PRIu64
				    " did not complete in %" PRIu64 " ms (the I/O timeout)",
				    dev->name, write ? "write" : "read", len, off, t);
	if (r)
		return dlvm_err_set(err, r, "%s: %s of %zu bytes at offset %" PRIu64 " failed: %s",
				    dev->name, write ? "write" : "read", len, off, strerror(-r));
	return 0;
}
