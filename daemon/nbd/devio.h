/* SPDX-License-Identifier: MIT */
/*
 * Synchronous device I/O for the rare cases the io_uring path does not take:
 * ranges not aligned to the sector size of an O_DIRECT device (served with
 * aligned bounce buffers, writes as read-modify-write under the export's
 * lock), and zeroing where fallocate is not supported.
 *
 * All functions take a byte range on one device and return 0 or a negative
 * errno.
 */
#ifndef DLVMD_NBD_DEVIO_H
#define DLVMD_NBD_DEVIO_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dlvm/map.h"

/* Alignment an O_DIRECT transfer on d needs (1 when not O_DIRECT). */
static inline uint32_t nbd_dev_align(const struct dlvm_map_dev *d)
{
	if (!d->direct)
		return 1;
	return d->sector_size ? d->sector_size : 512;
}

/* Whether (buf, len, off) can go to d as one direct transfer. */
static inline bool nbd_dev_aligned(const struct dlvm_map_dev *d, const void *buf, uint64_t len,
				   uint64_t off)
{
	uint64_t a = nbd_dev_align(d);
	return !(((uintptr_t)buf | len | off) & (a - 1));
}

int nbd_dev_read(const struct dlvm_map_dev *d, void *buf, size_t len, uint64_t off);

/* Write; partial sectors are read, modified and written back under lock. */
int nbd_dev_write(const struct dlvm_map_dev *d, const void *buf, size_t len, uint64_t off, bool fua,
		  pthread_mutex_t *lock);

/* Make the range read back as zeros: fallocate (punching a hole when
 * may_trim, else zeroing in place) and else writing zeros. */
int nbd_dev_zero(const struct dlvm_map_dev *d, uint64_t off, uint64_t len, bool may_trim, bool fua,
		 pthread_mutex_t *lock);

/* Discard the sectors wholly inside the range, if the device can. Never fails
 * for lack of support (a trim is a hint). */
int nbd_dev_trim(const struct dlvm_map_dev *d, uint64_t off, uint64_t len, bool fua);

/* A 4096-aligned buffer of NBD_ZERO_BUF zeros. */
#define NBD_ZERO_BUF (1u << 20)
extern uint8_t nbd_zero_buf[NBD_ZERO_BUF]; /* never written */

#endif
