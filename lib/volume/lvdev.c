/* SPDX-License-Identifier: MIT */
/*
 * A struct dlvm_dev whose bytes are an LV's: reads and writes are cut at
 * segment and stripe boundaries and passed to the PVs' devices. The thin
 * pool's metadata store lives on one (its hidden metadata LV). In a shared
 * VG every write is checked against the map's fence right before it is
 * submitted (dlvm_fence_meta_ok): a thin store's blocks and superblock are
 * metadata, written only while this host's lease allows.
 */
#include "dlvm/lvdev.h"

#include <liburing.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlvm/debug.h"
#include "dlvm/map.h"
#include "dlvm/runtime.h"
#include "dlvm/util.h"
#include "dlvm/vg.h"

#define RING_ENTRIES 64

struct lvdev {
	struct dlvm_lv_map *map;
	struct dlvm_dev **pvdevs; /* per map->devs entry: the PV's device (borrowed) */
	/* batches (lvdev_pwrite_many): a ring made at the first one */
	pthread_mutex_t mu;
	bool ring_tried, ring_ok;
	struct io_uring ring;
};

static bool in_lv(const struct lvdev *d, uint64_t off, size_t len)
{
	return off <= d->map->size && len <= d->map->size - off;
}

static int lvdev_io(struct dlvm_dev *dev, void *buf, size_t len, uint64_t off, bool write)
{
	struct lvdev *d = dev->priv;
	size_t done = 0;

	if (!in_lv(d, off, len))
		return -EIO;
	while (done < len) {
		struct dlvm_map_piece p;
		dlvm_lv_map_resolve(d->map, off + done, len - done, &p);
		struct dlvm_dev *pd = d->pvdevs[p.dev];
		int r = write ? dlvm_fence_meta_ok(d->map->fence, "thin metadata write", NULL) : 0;
		if (!r)
			r = write ? pd->ops->pwrite(pd, (const char *)buf + done, p.len, p.dev_off)
				  : pd->ops->pread(pd, (char *)buf + done, p.len, p.dev_off);
		if (r)
			return r;
		done += p.len;
	}
	return 0;
}

static int lvdev_pread(struct dlvm_dev *dev, void *buf, size_t len, uint64_t off)
{
	return lvdev_io(dev, buf, len, off, false);
}

static int lvdev_pwrite(struct dlvm_dev *dev, const void *buf, size_t len, uint64_t off)
{
	return lvdev_io(dev, (void *)buf, len, off, true);
}

/* The fence refused the writes queued on the ring and not submitted yet:
 * they become no-ops, which complete at once (and count as failed). */
static void ring_cancel_queued(struct lvdev *d, size_t *failed)
{
	struct io_uring_sq *sq = &d->ring.sq;

	for (unsigned h = sq->sqe_head; h != sq->sqe_tail; h++) {
		struct io_uring_sqe *sqe = &sq->sqes[h & sq->ring_mask];
		uint64_t data = sqe->user_data;
		if (h == sq->sqe_head)
			*failed = (size_t)(data / RING_ENTRIES);
		io_uring_prep_nop(sqe);
		io_uring_sqe_set_data64(sqe, data);
	}
}

/* Wait for the n writes in flight on the ring; the first failure wins. A
 * short write is an I/O error: nothing here writes past a device's end.
 * Writes queued and not yet submitted are submitted only if the fence
 * allows it. */
static int ring_reap(struct lvdev *d, unsigned *n, const uint32_t *want, size_t *failed, int r)
{
	if (io_uring_sq_ready(&d->ring)) {
		int fr = dlvm_fence_meta_ok(d->map->fence, "thin metadata write", NULL);
		if (fr) {
			ring_cancel_queued(d, failed);
			r = r ? r : fr;
		}
	}
	while (*n) {
		struct io_uring_cqe *cqe;
		int w = io_uring_submit_and_wait(&d->ring, 1);
		if (w < 0 && w != -EINTR && w != -EAGAIN && w != -EBUSY)
			return r ? r : w; /* in flight still: the ring goes with them */
		while (*n && io_uring_peek_cqe(&d->ring, &cqe) == 0) {
			uint64_t i = io_uring_cqe_get_data64(cqe);
			int res = cqe->res == 0 && want[i % RING_ENTRIES] ? -ENOLCK : cqe->res;
			io_uring_cqe_seen(&d->ring, cqe);
			(*n)--;
			if (!r && (res < 0 || (uint32_t)res != want[i % RING_ENTRIES])) {
				r = res < 0 ? res : -EIO;
				*failed = (size_t)(i / RING_ENTRIES);
			}
		}
	}
	return r;
}

/*
 * The writes of a batch, cut into pieces: those on PV files or block
 * devices go out together through the ring (a thin commit's runs of
 * nodes, which lie apart on the metadata LV), any other piece as its
 * device's pwrite.
 */
static int lvdev_pwrite_many(struct dlvm_dev *dev, const struct dlvm_dev_wr *w, size_t n,
			     size_t *failed)
{
	struct lvdev *d = dev->priv;
	uint32_t want[RING_ENTRIES];
	unsigned inflight = 0;
	uint64_t seq = 0;
	int r = 0;

	dlvm_debug_pause("thin-commit");
	pthread_mutex_lock(&d->mu);
	if (!d->ring_tried) {
		d->ring_tried = true;
		d->ring_ok = io_uring_queue_init(RING_ENTRIES, &d->ring, 0) == 0;
	}
	for (size_t i = 0; i < n && !r; i++) {
		if (!in_lv(d, w[i].off, w[i].len)) {
			r = -EIO;
			*failed = i;
			break;
		}
		for (size_t done = 0; done < w[i].len && !r;) {
			struct dlvm_map_piece p;
			dlvm_lv_map_resolve(d->map, w[i].off + done, w[i].len - done, &p);
			struct dlvm_dev *pd = d->pvdevs[p.dev];
			const char *buf = (const char *)w[i].buf + done;
			struct io_uring_sqe *sqe = NULL;
			if (d->ring_ok && dlvm_dev_is_plain(pd) && p.len <= UINT32_MAX) {
				if (inflight == RING_ENTRIES)
					r = ring_reap(d, &inflight, want, failed, r);
				sqe = r ? NULL : io_uring_get_sqe(&d->ring);
			}
			if (sqe) {
				io_uring_prep_write(sqe, pd->fd, buf, (unsigned)p.len, p.dev_off);
				io_uring_sqe_set_data64(sqe, (uint64_t)i * RING_ENTRIES +
									     seq % RING_ENTRIES);
				want[seq++ % RING_ENTRIES] = (uint32_t)p.len;
				inflight++;
			} else if (!r && ((r = dlvm_fence_meta_ok(d->map->fence,
								  "thin metadata write", NULL)) ||
					  (r = pd->ops->pwrite(pd, buf, p.len, p.dev_off)))) {
				*failed = i;
			}
			done += p.len;
		}
	}
	r = ring_reap(d, &inflight, want, failed, r);
	if (inflight) {
		/* the ring failed with writes in flight: never use it again */
		io_uring_queue_exit(&d->ring);
		d->ring_ok = false;
	}
	pthread_mutex_unlock(&d->mu);
	return r;
}

static int lvdev_flush(struct dlvm_dev *dev)
{
	struct lvdev *d = dev->priv;

	for (uint32_t i = 0; i < d->map->ndev; i++) {
		int r = d->pvdevs[i]->ops->flush(d->pvdevs[i]);
		if (r)
			return r;
	}
	return 0;
}

bool dlvm_lvdev_flushes(const struct dlvm_dev *dev, int fd)
{
	const struct lvdev *d = dev->priv;

	for (uint32_t i = 0; fd >= 0 && i < d->map->ndev; i++)
		if (d->pvdevs[i]->fd == fd)
			return true;
	return false;
}

static void lvdev_close(struct dlvm_dev *dev)
{
	struct lvdev *d = dev->priv;

	dlvm_lv_map_put(d->map);
	free(d->pvdevs);
	if (d->ring_ok)
		io_uring_queue_exit(&d->ring);
	pthread_mutex_destroy(&d->mu);
	free(d);
}

static const struct dlvm_dev_ops lvdev_ops = {
	.pread = lvdev_pread,
	.pwrite = lvdev_pwrite,
	.flush = lvdev_flush,
	.pwrite_many = lvdev_pwrite_many,
	.close = lvdev_close,
};

int dlvm_lvdev_open(const struct dlvm_vg *vg, const struct dlvm_lv *lv, struct dlvm_dev **out,
		    struct dlvm_err *err)
{
	struct dlvm_dev *dev = calloc(1, sizeof(*dev));
	struct lvdev *d = calloc(1, sizeof(*d));
	struct dlvm_map_source src = { .fence = dlvm_vg_fence(vg) }; /* shared VG, else NULL */
	char name[2 * DLVM_NAME_MAX + 2];
	int r;

	if (!dev || !d) {
		r = dlvm_err_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	pthread_mutex_init(&d->mu, NULL);
	if ((r = dlvm_lv_map_build(vg, lv, &src, &d->map, err)))
		goto fail;
	if (!(d->pvdevs = calloc(d->map->ndev ? d->map->ndev : 1, sizeof(*d->pvdevs)))) {
		r = dlvm_err_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	dev->sector_size = 512;
	for (uint32_t i = 0; i < d->map->ndev; i++) {
		for (size_t p = 0; p < vg->npv; p++)
			if (vg->pvs[p]->dev && vg->pvs[p]->dev->fd == d->map->devs[i].fd)
				d->pvdevs[i] = vg->pvs[p]->dev;
		if (!d->pvdevs[i]) {
			r = dlvm_err_set(err, -ENODEV, "%s/%s: a PV is missing", vg->info.name,
					 lv->name);
			goto fail;
		}
		if (d->pvdevs[i]->sector_size > dev->sector_size)
			dev->sector_size = d->pvdevs[i]->sector_size;
	}
	snprintf(name, sizeof(name), "%s/%s", vg->info.name, lv->name);
	dev->ops = &lvdev_ops;
	dev->path = strdup(name);
	dev->name = strdup(name);
	dev->fd = -1;
	dev->size = d->map->size;
	/* a read-only VG's LVs are read, never written: a thin store on the
	 * view opens read-only */
	dev->readonly = vg->readonly;
	dev->priv = d;
	if (!dev->path || !dev->name) {
		r = dlvm_err_set(err, -ENOMEM, "out of memory");
		dev->priv = NULL;
		free(dev->path);
		free(dev->name);
		goto fail;
	}
	*out = dev;
	return 0;
fail:
	if (d) {
		dlvm_lv_map_put(d->map);
		free(d->pvdevs);
	}
	free(d);
	free(dev);
	return r;
}

int dlvm_lvdev_remap(struct dlvm_dev *dev, const struct dlvm_vg *vg, const struct dlvm_lv *lv,
		     struct dlvm_err *err)
{
	struct lvdev *d = dev->priv;
	struct dlvm_map_source src = { .fence = dlvm_vg_fence(vg) };
	struct dlvm_lv_map *m;
	struct dlvm_dev **pvdevs;
	int r;

	if ((r = dlvm_lv_map_build(vg, lv, &src, &m, err)))
		return r;
	if (!(pvdevs = calloc(m->ndev ? m->ndev : 1, sizeof(*pvdevs)))) {
		dlvm_lv_map_put(m);
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	}
	for (uint32_t i = 0; i < m->ndev; i++) {
		for (size_t p = 0; p < vg->npv; p++)
			if (vg->pvs[p]->dev && vg->pvs[p]->dev->fd == m->devs[i].fd)
				pvdevs[i] = vg->pvs[p]->dev;
		if (!pvdevs[i]) {
			free(pvdevs);
			dlvm_lv_map_put(m);
			return dlvm_err_set(err, -ENODEV, "%s/%s: a PV is missing", vg->info.name,
					    lv->name);
		}
	}
	dlvm_lv_map_put(d->map);
	free(d->pvdevs);
	d->map = m;
	d->pvdevs = pvdevs;
	dev->size = m->size;
	return 0;
}
