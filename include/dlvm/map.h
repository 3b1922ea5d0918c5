/* SPDX-License-Identifier: MIT */
/*
 * The data path's view of an LV: an immutable, reference-counted table that
 * turns LV byte offsets into (device fd, device offset) pieces. A new map is
 * built whenever an LV changes (extend, flags); connections keep the map they
 * started with, so an extend shows to new connections.
 */
#ifndef DLVM_MAP_H
#define DLVM_MAP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "dlvm/err.h"
#include "dlvm/fence.h"
#include "dlvm/format.h"
#include "dlvm/util.h"

struct dlvm_vg;
struct dlvm_lv;
struct dlvm_thin_pool;

struct dlvm_map_dev {
	int fd;               /* owned by the VG; valid while the VG is open */
	uint32_t sector_size; /* alignment O_DIRECT needs */
	bool direct;          /* fd is O_DIRECT */
	bool blockdev;
	char name[64]; /* for messages */
};

struct dlvm_map_seg {
	uint64_t start, len;                 /* byte range of the LV */
	uint32_t stripes;                    /* 1: linear */
	uint64_t stripe_size;                /* bytes (linear: len) */
	uint32_t area_dev[DLVM_MAX_STRIPES]; /* index into devs */
	uint64_t area_off[DLVM_MAX_STRIPES]; /* byte offset of the area on its device */
};

struct dlvm_lv_map {
	atomic_uint refs;
	uint64_t size; /* bytes */
	bool readonly;
	struct dlvm_fence *fence;    /* shared VG: checked before each request; else NULL */
	struct dlvm_thin_pool *thin; /* thin LV: its store (a reference), else NULL;
				      * devs are the pool's data devices, no segs */
	void (*thin_unref)(struct dlvm_thin_pool *p); /* lets thin go (its owner's) */
	uint64_t thin_id; /* thin LV: its device id in the pool's store */
	char vg[DLVM_NAME_MAX + 1];
	char lv[DLVM_NAME_MAX + 1];
	uint32_t ndev;
	struct dlvm_map_dev *devs;
	uint32_t nseg;
	struct dlvm_map_seg *segs;
};

/* One contiguous piece of an LV range on one device. */
struct dlvm_map_piece {
	uint32_t dev;     /* index into map->devs */
	uint64_t dev_off; /* byte offset on the device */
	uint64_t len;     /* bytes, <= the requested length */
};

/*
 * What a map takes from its VG's runtime rather than from the VG model: the
 * fence and, for a thin LV, its store. lib/volume neither knows where the
 * fence comes from nor how a store is opened or let go, so the layer that
 * builds maps (lib/pool: dlvm_vg_map_lv) hands them in.
 */
struct dlvm_map_source {
	struct dlvm_fence *fence;    /* shared VG: the map takes a reference; else NULL */
	struct dlvm_thin_pool *thin; /* thin LV: its store, a reference the map takes
				      * over and drops with thin_unref (at its last
				      * put, or at once when the build fails); else NULL */
	void (*thin_unref)(struct dlvm_thin_pool *p);
};

/*
 * Build a map for lv (refs = 1) with what src lends it (NULL: no fence, and
 * lv is not thin). A thin LV's map has its store, the LV's virtual size and
 * every PV of the VG as devices (the data path asks the store for every
 * piece, dlvm/thinpool.h). -ENODEV if a PV of the LV is missing, -EINVAL for
 * a thin LV without a store, -ENOMEM. Any thread that owns vg for the call.
 */
int dlvm_lv_map_build(const struct dlvm_vg *vg, const struct dlvm_lv *lv,
		      const struct dlvm_map_source *src, struct dlvm_lv_map **out,
		      struct dlvm_err *err);
struct dlvm_lv_map *dlvm_lv_map_get(struct dlvm_lv_map *m);
void dlvm_lv_map_put(struct dlvm_lv_map *m);

/*
 * The first contiguous piece of [off, off + len) of a linear or striped LV
 * (not a thin one: see dlvm_thin_pool_map_read): the caller guarantees
 * len > 0 and off + len <= m->size. Loop, advancing off by piece.len, to cover
 * a request that crosses a segment or stripe boundary. O(log nseg).
 */
void dlvm_lv_map_resolve(const struct dlvm_lv_map *m, uint64_t off, uint64_t len,
			 struct dlvm_map_piece *p);

#endif
