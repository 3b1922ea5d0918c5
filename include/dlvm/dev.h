/* SPDX-License-Identifier: MIT */
/*
 * Devices: every metadata read and write of libdlvm goes through the small
 * ops table below, so tests can substitute a device that fails, tears a write
 * or "loses power" after N writes (see dlvm_memdev_*).
 *
 * The data path (NBD) does not use these ops: it submits I/O on dev->fd with
 * io_uring. dev->fd is opened with O_DIRECT when the file system allows it.
 */
#ifndef DLVM_DEV_H
#define DLVM_DEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "dlvm/err.h"

struct dlvm_dev;

/* One write of a batch (dlvm_dev_write_many). */
struct dlvm_dev_wr {
	const void *buf;
	size_t len;
	uint64_t off;
};

struct dlvm_dev_ops {
	/* Read/write exactly len bytes at off; buf, len and off are multiples
	 * of dev->sector_size and buf is 4096-aligned. 0 or -errno. */
	int (*pread)(struct dlvm_dev *dev, void *buf, size_t len, uint64_t off);
	int (*pwrite)(struct dlvm_dev *dev, const void *buf, size_t len, uint64_t off);
	/* Make completed writes durable. */
	int (*flush)(struct dlvm_dev *dev);
	void (*close)(struct dlvm_dev *dev);
	/* Optional: all n writes, in any order, at once where the device
	 * can; 0, or -errno with *failed the index of a write that failed. */
	int (*pwrite_many)(struct dlvm_dev *dev, const struct dlvm_dev_wr *w, size_t n,
			   size_t *failed);
};

struct dlvm_dev {
	const struct dlvm_dev_ops *ops;
	char *path;           /* as given by the user, owned */
	char *name;           /* basename for messages, owned */
	int fd;               /* -1 for devices without one (memory devices) */
	uint64_t size;        /* bytes */
	uint32_t sector_size; /* logical sector size: 512 or 4096 */
	bool direct;          /* fd is O_DIRECT */
	bool blockdev;        /* a block device (not a regular file) */
	bool readonly;
	void *priv;
};

enum {
	DLVM_DEV_RDONLY = 1 << 0,    /* open read-only */
	DLVM_DEV_LOCK = 1 << 1,      /* take an exclusive flock; -EBUSY if held */
	DLVM_DEV_LOCK_WAIT = 1 << 2, /* with LOCK: retry for up to 3 s before -EBUSY */
};

/*
 * Open a regular file or block device. The sector size is BLKSSZGET for block
 * devices; for files, the alignment O_DIRECT needs there (512, or 4096 on a
 * file system over 4096-byte sectors; statx STATX_DIOALIGN, else a probe),
 * or 512 without O_DIRECT when it needs more than 4096 or is not offered. Returns 0 and *out, or -ENOENT/-EACCES/-EBUSY
 * (locked by another process)/-EINVAL (not a file or block device).
 */
int dlvm_dev_open(const char *path, unsigned flags, struct dlvm_dev **out, struct dlvm_err *err);

/* Close and free (NULL is allowed). */
void dlvm_dev_close(struct dlvm_dev *dev);

/* Convenience wrappers around dev->ops with messages naming the device. */
int dlvm_dev_read(struct dlvm_dev *dev, void *buf, size_t len, uint64_t off, struct dlvm_err *err);
int dlvm_dev_write(struct dlvm_dev *dev, const void *buf, size_t len, uint64_t off,
		   struct dlvm_err *err);
int dlvm_dev_flush(struct dlvm_dev *dev, struct dlvm_err *err);
/* Write n pieces, which may go out together and complete in any order
 * (ops->pwrite_many, else one after the other); a failure names a piece
 * that failed, as dlvm_dev_write does. */
int dlvm_dev_write_many(struct dlvm_dev *dev, const struct dlvm_dev_wr *w, size_t n,
			struct dlvm_err *err);
/* Is dev a file or block device from dlvm_dev_open, whose fd takes any
 * I/O the ops would do? */
bool dlvm_dev_is_plain(const struct dlvm_dev *dev);
/* Flush n devices at once (a thread each, for those with a file
 * descriptor), so that their flushes overlap; res[i] is dev i's result
 * (0 or -errno). */
void dlvm_devs_flush(struct dlvm_dev **devs, size_t n, int *res);

/* 4096-aligned zeroed buffer for device I/O; free with free(). NULL on ENOMEM. */
void *dlvm_io_alloc(size_t len);

/* ---- test devices ---- */

/* A device backed by memory, of the given size and sector size. */
struct dlvm_dev *dlvm_memdev_new(const char *name, uint64_t size, uint32_t sector_size);
/* The memory behind a memdev (to corrupt bytes in tests). */
uint8_t *dlvm_memdev_data(struct dlvm_dev *dev);

/*
 * Fault injection around any memdev: after `writes_left` more successful
 * writes, the next write behaves as `mode`, and so do all writes after it
 * (power loss: nothing more reaches the disk).
 */
enum dlvm_fault_mode {
	DLVM_FAULT_NONE,
	DLVM_FAULT_EIO,        /* the write fails with -EIO, the device keeps working after */
	DLVM_FAULT_TEAR,       /* only the first sector of the write lands, then power is lost */
	DLVM_FAULT_POWERLOSS,  /* the write and every later write silently vanish */
	DLVM_FAULT_CACHE_LOSS, /* power is lost at the next write or flush, whichever
				* comes first; with a write cache (dlvm_memdev_set_cache),
				* the writes since the last flush land in part */
};
void dlvm_memdev_set_fault(struct dlvm_dev *dev, enum dlvm_fault_mode mode, long writes_left);
/* Reads that touch any of the len bytes at off fail with -EIO (a bad
 * sector); len 0 makes every byte readable again. */
void dlvm_memdev_set_unreadable(struct dlvm_dev *dev, uint64_t off, uint64_t len);
/* Number of writes that reached the device so far. */
long dlvm_memdev_writes(struct dlvm_dev *dev);
/*
 * Give a memdev a volatile write cache, as disks have: reads see every
 * write, but only a flush makes the writes before it durable. When the power
 * is lost (any fault mode but EIO), each write since the last flush lands
 * whole, not at all, or in its first sectors only, chosen by a generator
 * seeded with seed, in the order written; the memory then holds what the
 * medium would. Bytes changed through dlvm_memdev_data are not seen by the
 * cache: corrupt a memdev without one.
 */
void dlvm_memdev_set_cache(struct dlvm_dev *dev, uint64_t seed);
/* Lose the power now, as a fault would (the cache then lands in part). */
void dlvm_memdev_power_off(struct dlvm_dev *dev);
/* Has the power been lost (since the last dlvm_memdev_set_fault)? */
bool dlvm_memdev_lost_power(struct dlvm_dev *dev);

#endif
