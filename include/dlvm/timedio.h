/* SPDX-License-Identifier: MIT */
/*
 * I/O with a timeout, for the devices of shared VGs: a device that hangs must
 * not block a lease renewal, a metadata change or dlvmd's shutdown forever
 * (docs/leases.md, "I/O with a timeout").
 *
 * Each read, write or flush goes to the kernel through an io_uring linked to
 * a timeout (IORING_OP_LINK_TIMEOUT): when it passes, the kernel cancels the
 * request if it still can, and the call fails with -ETIMEDOUT. A request the
 * kernel cannot give back any more (it reached a device that hangs) is
 * waited for DLVM_TIMEDIO_GRACE_MS more, then *abandoned*: the ring and the
 * bounce buffer it uses are kept aside, never freed nor reused, so that a
 * late completion touches nothing else; the caller gets -ETIMEDOUT and the
 * next call uses another ring. Every call is bounded by its timeout plus the
 * grace. A ring serves one request at a time, taken from a small pool that
 * all threads share; all calls are safe from any thread.
 */
#ifndef DLVM_TIMEDIO_H
#define DLVM_TIMEDIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dlvm/dev.h"

#define DLVM_TIMEDIO_GRACE_MS 500u

/* One read or write of exactly len bytes at off on fd (as O_DIRECT needs:
 * buf, len, off aligned), within timeout_ms. 0, -ETIMEDOUT, -EIO for a
 * short transfer, -errno. Falls back to plain pread/pwrite (no timeout)
 * where io_uring is not available. */
int dlvm_timed_rw(int fd, void *buf, size_t len, uint64_t off, bool write, uint64_t timeout_ms);
/* fdatasync(fd) within timeout_ms: 0, -ETIMEDOUT, -errno. */
int dlvm_timed_flush(int fd, uint64_t timeout_ms);

/* Keep an io_uring (heap-allocated, with requests still in it) and a buffer
 * (may be NULL) that a request still uses: never freed. For callers with
 * rings of their own (lib/volume/lvdev.c). */
struct io_uring;
void dlvm_timedio_abandon(struct io_uring *ring, void *buf);

/*
 * Give a device from dlvm_dev_open (a file or block device) a timeout: from
 * then on its reads, writes and flushes go through dlvm_timed_rw and
 * dlvm_timed_flush. Calling it again changes the timeout. -EINVAL for a
 * device without a file descriptor (a memory device keeps its ops), -ENOMEM.
 * Not while another thread does I/O on dev.
 */
int dlvm_dev_set_timeout(struct dlvm_dev *dev, uint64_t timeout_ms);
/* The timeout given by dlvm_dev_set_timeout, or 0. */
uint64_t dlvm_dev_timeout(const struct dlvm_dev *dev);

#endif
