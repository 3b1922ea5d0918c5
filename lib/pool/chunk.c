/* SPDX-License-Identifier: MIT */
/* Synchronous I/O on whole data chunks, and the zeroing of new ones
 * (skipped where a PV file's hole reads as zeros already). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/falloc.h>
#include <string.h>
#include <unistd.h>

#include "dlvm/log.h"
#include "dlvm/util.h"
#include "dlvm/vg.h"
#include "pool_int.h"

/* Synchronous I/O of bytes [in, in + len) of a chunk through data map dm
 * (a chunk may cross a segment or stripe boundary); buf holds those bytes.
 * Needs no mutex when the caller holds a reference on dm. */
int pool_chunk_range_io_on(struct dlvm_thin_pool *p, const struct dlvm_lv_map *dm, uint64_t chunk,
			   uint64_t in, uint64_t len, uint8_t *buf, bool write,
			   struct dlvm_err *err)
{
	uint64_t done = 0;

	while (done < len) {
		struct dlvm_map_piece pc;
		dlvm_lv_map_resolve(dm, chunk * p->chunk_size + in + done, len - done, &pc);
		const struct dlvm_map_dev *d = &dm->devs[pc.dev];
		uint64_t left = pc.len, pos = 0;
		while (left) {
			ssize_t n = write ? pwrite(d->fd, buf + done + pos, left,
						   (off_t)(pc.dev_off + pos))
					  : pread(d->fd, buf + done + pos, left,
						  (off_t)(pc.dev_off + pos));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return dlvm_err_set(err, n < 0 ? -errno : -EIO,
						    "%s: chunk %" PRIu64 ": %s %s: %s", p->name,
						    chunk, write ? "write" : "read", d->name,
						    n < 0 ? strerror(errno) : "short");
			left -= (uint64_t)n;
			pos += (uint64_t)n;
		}
		done += pc.len;
	}
	return 0;
}

/* The same through the pool's current data map (mu held). */
int pool_chunk_range_io(struct dlvm_thin_pool *p, uint64_t chunk, uint64_t in, uint64_t len,
			uint8_t *buf, bool write, struct dlvm_err *err)
{
	return pool_chunk_range_io_on(p, p->data, chunk, in, len, buf, write, err);
}

static int chunk_io(struct dlvm_thin_pool *p, uint64_t chunk, uint8_t *buf, bool write,
		    struct dlvm_err *err)
{
	return pool_chunk_range_io(p, chunk, 0, p->chunk_size, buf, write, err);
}
/* Bytes from off on that read as zeros from a hole of a PV file: up to the
 * next data (UINT64_MAX: no data after off). 0 when off holds data or the
 * file cannot tell. */
static uint64_t file_hole_len(int fd, uint64_t off)
{
	off_t data = lseek(fd, (off_t)off, SEEK_DATA);

	if (data < 0)
		return errno == ENXIO ? UINT64_MAX : 0;
	return (uint64_t)data - off;
}

#define HOLE_RUN_MAX 65536 /* chunks taken into the known-hole run at once */

/*
 * Chunk `chunk` lies in a hole of its PV file that goes on for hole_bytes:
 * the free chunks after it that the same hole covers, on the same device
 * and in one stretch of the data map, need no zeroing and no look at the
 * file when they are handed out (mu held). Chunks are handed out in
 * increasing order, so the run is used up from below; one look at the file
 * serves up to HOLE_RUN_MAX new chunks.
 */
static void note_hole_run(struct dlvm_thin_pool *p, uint64_t chunk, uint64_t hole_bytes)
{
	uint64_t cs = p->chunk_size, start = chunk * cs;
	struct dlvm_map_piece run;

	if (start >= p->data->size)
		return;
	pool_chunk_piece(p, chunk, 0, p->data->size - start, &run);
	uint64_t n = DLVM_MIN(run.len, hole_bytes) / cs; /* chunk itself included */
	if (n < 2)
		return;
	n = dlvm_thin_free_run(p->store, chunk + 1, DLVM_MIN(n - 1, HOLE_RUN_MAX));
	p->hole_lo = chunk + 1;
	p->hole_hi = chunk + 1 + n;
}

/*
 * Zero a chunk about to be handed out (or, for a clone, one that must read
 * as zeros). Where it lies in a hole of a PV file (never written since the
 * file was made, or punched) it reads as zeros already: nothing is done,
 * which also spares a fallocate that would wait for every direct I/O in
 * flight on the file. Otherwise fallocate ZERO_RANGE on files, zeros
 * written on block devices. in_hole: the chunk came from the known-hole
 * run (provision), so not even the file needs a look.
 */
int pool_chunk_zero(struct dlvm_thin_pool *p, uint64_t chunk, bool in_hole, struct dlvm_err *err)
{
	uint64_t done = 0;

	if (in_hole)
		return 0;
	while (done < p->chunk_size) {
		struct dlvm_map_piece pc;
		pool_chunk_piece(p, chunk, done, p->chunk_size - done, &pc);
		const struct dlvm_map_dev *d = &p->data->devs[pc.dev];
		uint64_t hole = d->blockdev ? 0 : file_hole_len(d->fd, pc.dev_off);
		if (hole >= pc.len) {
			if (done == 0 && pc.len == p->chunk_size)
				note_hole_run(p, chunk, hole);
			done += pc.len;
			continue;
		}
		if (d->blockdev || fallocate(d->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
					     (off_t)pc.dev_off, (off_t)pc.len) < 0)
			return chunk_io(p, chunk, p->zero, true, err);
		done += pc.len;
	}
	return 0;
}
