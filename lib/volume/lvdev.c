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
#include "dlvm/timedio.h"
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

/* A batch on the ring: the writes in flight, the byte count each must
 * return, and on the PVs of a shared VG (devices with a timeout,
 * dlvm/timedio.h) a timeout linked to each write and a bounce buffer. */
struct batch {
	unsigned inflight, timeouts; /* completions still to come */
	uint32_t want[RING_ENTRIES];
	uint64_t seq;
	uint64_t timeout_ms;         /* 0: none */
	struct __kernel_timespec ts; /* of every timeout: read when submitted */
	uint8_t *bounce;             /* the batch's bytes, when timed */
	bool abandoned;              /* the ring and bounce were left to the kernel */
};

#define UD_TIMEOUT UINT64_MAX

/* The fence refused the writes queued on the ring and not submitted yet:
 * they (and their timeouts) become no-ops, which complete at once; the
 * writes count as failed. */
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

/* A timed batch did not complete within its timeout and the grace: the
 * ring (and the bounce buffer its writes use) go to the kernel for good;
 * the next batch makes a new ring. */
static void ring_abandon(struct lvdev *d, struct batch *b)
{
	struct io_uring *keep = malloc(sizeof(*keep));

	if (keep)
		*keep = d->ring;
	dlvm_timedio_abandon(keep, b->bounce);
	b->abandoned = true;
	d->ring_ok = false;
	d->ring_tried = false;
}

/* One completion; 0, or -ETIME when the timed batch's time is out. */
static int ring_wait(struct lvdev *d, uint64_t until_ns, struct io_uring_cqe **cqe)
{
	if (!until_ns)
		return io_uring_wait_cqe(&d->ring, cqe);
	uint64_t now = dlvm_now_ns();
	if (now >= until_ns)
		return -ETIME;
	struct __kernel_timespec ts = { .tv_sec = (long long)((until_ns - now) / 1000000000u),
					.tv_nsec = (long long)((until_ns - now) % 1000000000u) };
	int w = io_uring_wait_cqe_timeout(&d->ring, cqe, &ts);
	return w == -ETIME ? -EINTR : w; /* the loop reads the clock again */
}

/* Submit what is queued (only if the fence allows it) and wait for every
 * write in flight; the first failure wins. A short write is an I/O error:
 * nothing here writes past a device's end. */
static int ring_reap(struct lvdev *d, struct batch *b, size_t *failed, int r)
{
	if (io_uring_sq_ready(&d->ring)) {
		int fr = dlvm_fence_meta_ok(d->map->fence, "thin metadata write", NULL);
		if (fr) {
			ring_cancel_queued(d, failed);
			r = r ? r : fr;
		}
	}
	int w = io_uring_submit(&d->ring);
	if (w < 0 && w != -EINTR && w != -EAGAIN && w != -EBUSY)
		return r ? r : w;
	uint64_t until = b->timeout_ms ? dlvm_now_ns() + (b->timeout_ms + DLVM_TIMEDIO_GRACE_MS) *
									 1000000u
				       : 0;
	while (b->inflight || b->timeouts) {
		struct io_uring_cqe *cqe;
		if ((w = ring_wait(d, until, &cqe)) == -ETIME) {
			ring_abandon(d, b);
			return r ? r : -ETIMEDOUT;
		}
		if (w == -EINTR || w == -EAGAIN)
			continue;
		if (w < 0)
			return r ? r : w; /* in flight still: the ring goes with them */
		uint64_t i = io_uring_cqe_get_data64(cqe);
		int res = cqe->res;
		io_uring_cqe_seen(&d->ring, cqe);
		if (i == UD_TIMEOUT) {
			b->timeouts--;
			continue;
		}
		b->inflight--;
		uint32_t want = b->want[i % RING_ENTRIES];
		if (res == 0 && want)
			res = -ENOLCK; /* refused by the fence: a no-op */
		else if (res == -ECANCELED || res == -EINTR)
			res = -ETIMEDOUT;
		if (!r && (res < 0 || (uint32_t)res != want)) {
			r = res < 0 ? res : -EIO;
			*failed = (size_t)(i / RING_ENTRIES);
		}
	}
	return r;
}

/* Queue one piece of write i on the ring (reaping first when it is full):
 * 0 when queued, 1 when the ring cannot take it. */
static int ring_queue(struct lvdev *d, struct batch *b, struct dlvm_dev *pd, const char *buf,
		      const struct dlvm_map_piece *p, size_t i, size_t *failed, int *r)
{
	unsigned need = b->timeout_ms ? 2 : 1;

	if (!d->ring_ok || p->len > UINT32_MAX ||
	    !(dlvm_dev_is_plain(pd) || (b->timeout_ms && dlvm_dev_timeout(pd))))
		return 1;
	if (b->inflight + b->timeouts + need > RING_ENTRIES)
		*r = ring_reap(d, b, failed, *r);
	if (*r || !d->ring_ok || io_uring_sq_space_left(&d->ring) < need)
		return 1;
	struct io_uring_sqe *sqe = io_uring_get_sqe(&d->ring);
	io_uring_prep_write(sqe, pd->fd, buf, (unsigned)p->len, p->dev_off);
	io_uring_sqe_set_data64(sqe, (uint64_t)i * RING_ENTRIES + b->seq % RING_ENTRIES);
	b->want[b->seq++ % RING_ENTRIES] = (uint32_t)p->len;
	b->inflight++;
	if (b->timeout_ms) {
		b->ts = (struct __kernel_timespec){ .tv_sec = (long long)(b->timeout_ms / 1000),
						    .tv_nsec = (long long)(b->timeout_ms % 1000) *
							       1000000 };
		sqe->flags |= IOSQE_IO_LINK;
		sqe = io_uring_get_sqe(&d->ring);
		io_uring_prep_link_timeout(sqe, &b->ts, 0);
		io_uring_sqe_set_data64(sqe, UD_TIMEOUT);
		b->timeouts++;
	}
	return 0;
}

/* On a shared VG's PVs (with a timeout): the batch's bytes in a bounce
 * buffer, which an abandoned ring may keep; w[i].buf then points into it. */
static int batch_bounce(struct lvdev *d, struct batch *b, const struct dlvm_dev_wr *w, size_t n,
			struct dlvm_dev_wr **out)
{
	size_t total = 0;

	for (uint32_t k = 0; k < d->map->ndev; k++)
		b->timeout_ms = DLVM_MAX(b->timeout_ms, dlvm_dev_timeout(d->pvdevs[k]));
	if (!b->timeout_ms || !d->ring_ok)
		return 0;
	for (size_t i = 0; i < n; i++)
		total += w[i].len;
	struct dlvm_dev_wr *c = malloc((n ? n : 1) * sizeof(*c));
	if (!c || !(b->bounce = dlvm_io_alloc(total))) {
		free(c);
		return -ENOMEM;
	}
	for (size_t i = 0, pos = 0; i < n; pos += w[i].len, i++) {
		memcpy(b->bounce + pos, w[i].buf, w[i].len);
		c[i] = (struct dlvm_dev_wr){ .buf = b->bounce + pos,
					     .len = w[i].len,
					     .off = w[i].off };
	}
	*out = c;
	return 0;
}

/*
 * The writes of a batch, cut into pieces: those on PV files or block
 * devices go out together through the ring (a thin commit's runs of
 * nodes, which lie apart on the metadata LV), any other piece as its
 * device's pwrite. On the PVs of a shared VG each write on the ring has a
 * timeout linked to it.
 */
static int lvdev_pwrite_many(struct dlvm_dev *dev, const struct dlvm_dev_wr *w, size_t n,
			     size_t *failed)
{
	struct lvdev *d = dev->priv;
	struct batch b = { 0 };
	struct dlvm_dev_wr *copy = NULL;
	int r = 0;

	dlvm_debug_pause("thin-commit");
	pthread_mutex_lock(&d->mu);
	if (!d->ring_tried) {
		d->ring_tried = true;
		d->ring_ok = io_uring_queue_init(RING_ENTRIES, &d->ring, 0) == 0;
	}
	if ((r = batch_bounce(d, &b, w, n, &copy)))
		goto out;
	if (copy)
		w = copy;
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
			if (ring_queue(d, &b, pd, buf, &p, i, failed, &r) && !r &&
			    ((r = dlvm_fence_meta_ok(d->map->fence, "thin metadata write", NULL)) ||
			     (r = pd->ops->pwrite(pd, buf, p.len, p.dev_off))))
				*failed = i;
			done += p.len;
		}
	}
	if (d->ring_ok)
		r = ring_reap(d, &b, failed, r);
	if (!b.abandoned && (b.inflight || b.timeouts)) {
		/* the ring failed with writes in flight: never use it again */
		io_uring_queue_exit(&d->ring);
		d->ring_ok = false;
	}
out:
	pthread_mutex_unlock(&d->mu);
	if (!b.abandoned)
		free(b.bounce);
	free(copy);
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
