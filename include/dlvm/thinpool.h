/* SPDX-License-Identifier: MIT */
/*
 * Thin pools in a VG. In a local VG a pool is a pool LV (DLVM_LV_THIN_POOL)
 * whose extents are the data area, cut into chunks of lv->thin.chunk_size,
 * and a hidden metadata LV (DLVM_LV_THIN_META) holding one thin store
 * (dlvm/thin.h) for every thin LV of the pool. In a shared VG each family
 * (an origin thin LV with its snapshots and in-family clones) has its own
 * store on its own metadata LV and its own data LV (DLVM_LV_THIN_DATA) made
 * of slabs taken from the pool LV, so that different hosts write different
 * families at once (docs/thin.md, "Families"). Each thin LV is the device of
 * its store whose id is the LV's id.
 *
 * struct dlvm_thin_pool is one open store: the local pool's, or a family's.
 * A family store is opened either to write (by the host that holds the
 * family: the store is read whole and its reference counts rebuilt) or to
 * read snapshots only (views of single devices, dlvm_thin_view_open: any
 * host, while another one writes the family). Open stores are kept with
 * their VG model and shared by the data path's maps of the thin LVs
 * (map->thin). Every call below takes the store's mutex: the data path's
 * connection threads and the command thread use a store at the same time.
 *
 * Durability: changes to the store (new chunks, unmaps, new devices) become
 * durable at dlvm_thin_pool_commit, which first flushes the data area's
 * devices, so a committed mapping never points at data that did not land.
 * The data path commits on FLUSH and on FUA writes; commands commit before
 * they return.
 */
#ifndef DLVM_THINPOOL_H
#define DLVM_THINPOOL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "dlvm/dev.h"
#include "dlvm/err.h"
#include "dlvm/map.h"
#include "dlvm/thin.h"

struct dlvm_vg;
struct dlvm_lv;
struct dlvm_thin_fills;

struct dlvm_thin_view_ent {
	uint64_t id;
	struct dlvm_thin_view *view;
};

/* Copies for new chunks made at once per pool, without its mutex. */
#define DLVM_THIN_PREP_MAX 16

struct dlvm_thin_pool {
	atomic_uint refs;
	pthread_mutex_t mu;
	uint64_t lv_id;              /* the pool LV */
	uint64_t meta_id;            /* the store's metadata LV: the key in the VG */
	bool family;                 /* a family's store (shared VG) */
	bool reader;                 /* snapshots only: no store, views per device */
	struct dlvm_thin_view_ent *views; /* reader: the devices read so far */
	size_t nviews;
	struct dlvm_fence *fence;    /* shared VG: no commit once it expires */
	struct dlvm_thin_pool *ext;  /* a clone's family: the store of its external
				      * origin (a reference), read where this
				      * store maps nothing; else NULL */
	uint64_t ext_dev;            /* the origin snapshot's device in ext */
	bool want_slab;              /* family: a write waits for another slab */
	unsigned slab_fails;         /* family: failed attempts to add one (quiet after 1) */
	uint64_t slab_fail_free;     /* family: the pool's own extents at the last failure */
	bool meta_grow_failed;       /* family: its metadata LV could not grow ... */
	uint64_t meta_fail_free;     /* ... while the VG had this many free extents */
	bool autoextend_failed;      /* local pool: do not try again until it grows */
	bool can_grow;               /* local pool: autoextend is on: a full pool
				      * makes writes wait for it (want_slab) */
	pthread_cond_t grown;        /* family: signalled when the data LV grew */
	char name[2 * DLVM_NAME_MAX + 2]; /* "vg/pool", for messages */
	uint64_t chunk_size;
	/* unwritten sub-blocks (dlvm/thin.h): nsub of sub_size bytes per chunk;
	 * track: the store keeps them, so new chunks are not zeroed */
	uint64_t sub_size;
	unsigned nsub;
	uint16_t sub_all;
	bool track;
	struct dlvm_dev *meta;       /* view of the metadata LV (owned) */
	struct dlvm_thin_store *store;
	struct dlvm_lv_map *data;    /* map of the pool LV: the data area */
	/* data chunks [hole_lo, hole_hi) were free and read as zeros from a
	 * hole of their PV file when last looked at, and none of them was
	 * handed out since: a new chunk there needs no zeroing */
	uint64_t hole_lo, hole_hi;
	/* data chunks that commits freed and that are not punched out of their
	 * PV files yet (dlvm_thin_pool_punch): two bitmaps of freed_cap chunks
	 * and the number of bits set in each */
	uint64_t *freed, *aged;
	uint64_t freed_cap, nfreed, naged, freed_cursor;
	bool punch_off;              /* punching failed once: never again */
	uint8_t *zero;               /* chunk_size zero bytes, 4096-aligned */
	uint8_t *copy;               /* chunk_size bytes for copy-on-write */
	/* copies of new chunks that a write made, done without mu (map_write):
	 * their virtual chunks, which every lookup waits for, and a buffer
	 * each (made on first use) */
	struct dlvm_thin_prep {
		uint64_t id, vchunk;
		bool busy;
		uint8_t *buf;
	} prep[DLVM_THIN_PREP_MAX];
	unsigned nprep;              /* entries busy */
	unsigned prep_closed;        /* > 0: a commit or snapshot waits for the
				      * copies to end; new ones are made under mu */
	pthread_cond_t prepared;     /* an entry was let go */
	/* unwritten sub-blocks that writes in flight fill whole (track) */
	struct dlvm_thin_fills *fills;
	/* writes provisioned and not yet completed, in two epochs: a snapshot
	 * starts a new epoch and waits for the old one to drain */
	unsigned epoch;
	unsigned inflight[2];
	unsigned snapping;           /* snapshots being taken: writes wait */
	uint64_t snap_origin;        /* the origin, the only device whose
				      * writes wait; DLVM_THIN_NONE: all wait
				      * (more than one snapshot at once) */
	pthread_cond_t drained;
	bool dirty;                  /* the store has changes since the last commit */
	bool committing;             /* a commit is being written without mu */
	pthread_cond_t committed;    /* ... and it ended */
	unsigned warned_data, warned_meta; /* last usage level warned about (percent) */
	bool broken;                 /* a chunk could not be prepared: never commit */
	char broken_msg[DLVM_ERR_MSG_MAX];
	struct dlvm_thin_pool *next; /* in the VG's list */
};

/* A device view of an LV's extents (lib/volume/lvdev.c), used for the
 * metadata store; read-only (dev->readonly) in a read-only VG. The VG and
 * its PV devices must outlive it. -ENODEV when a PV of the LV is missing,
 * -ENOMEM. */
int dlvm_lvdev_open(const struct dlvm_vg *vg, const struct dlvm_lv *lv, struct dlvm_dev **out,
		    struct dlvm_err *err);

/* Does a flush of an LV device view flush the PV behind fd too? */
bool dlvm_lvdev_flushes(const struct dlvm_dev *dev, int fd);

/* Point an LV device view at the LV's current extents (after an extend);
 * the caller serialises this with its users. */
int dlvm_lvdev_remap(struct dlvm_dev *dev, const struct dlvm_vg *vg, const struct dlvm_lv *lv,
		     struct dlvm_err *err);
/* After the metadata LV of pool was extended: the store uses the new blocks. */
int dlvm_thin_pool_meta_resized(struct dlvm_vg *vg, const struct dlvm_lv *pool,
				struct dlvm_err *err);

/* Write a family's store on metadata LV `meta` (its segments: it need not be
 * committed yet) for data_chunks chunks, with an empty device dev_id in it
 * (a new thin LV's), committed. */
int dlvm_thin_family_format(const struct dlvm_vg *vg, const struct dlvm_lv *meta,
			    uint32_t chunk_size, uint64_t data_chunks, uint64_t dev_id,
			    struct dlvm_err *err);

/* Write an empty store into the pool's metadata LV (lvcreate --type
 * thin-pool). The LVs must be committed already. zero_new: a store without
 * unwritten sub-blocks, whose new chunks are zeroed (lvcreate -Z y). */
int dlvm_thin_pool_format(const struct dlvm_vg *vg, const struct dlvm_lv *pool, bool zero_new,
			  struct dlvm_err *err);

/*
 * The open pool of pool LV `pool` in a local VG: opened on first use (the
 * store is read and its reference counts rebuilt) and kept in the VG until
 * dlvm_vg_free. The returned pointer is borrowed from the VG; take a
 * reference (dlvm_thin_pool_ref) to keep it longer. -ENOENT if the LV is not
 * a pool, -ENOTSUP for a pool of a shared VG (its stores are per family),
 * -ENODEV, -EBADMSG (damaged store), -EIO, -ENOMEM.
 */
int dlvm_thin_pool_get(struct dlvm_vg *vg, const struct dlvm_lv *pool,
		       struct dlvm_thin_pool **out, struct dlvm_err *err);
/*
 * The store thin LV `lv` lives in: the pool's (local VG) or its family's
 * (shared VG). `write`: the store itself (this host writes the family);
 * else, in a shared VG, the family's writing store when it is open here and
 * otherwise a reader that serves snapshots only. Borrowed from the VG as
 * dlvm_thin_pool_get's.
 */
int dlvm_thin_lv_store(struct dlvm_vg *vg, const struct dlvm_lv *lv, bool write,
		       struct dlvm_thin_pool **out, struct dlvm_err *err);
/* The same by the family's metadata LV (or a local pool's). */
int dlvm_thin_store_get(struct dlvm_vg *vg, uint64_t meta_id, bool write,
			struct dlvm_thin_pool **out, struct dlvm_err *err);
/* The open store of meta_id in vg, or NULL (nothing is opened). */
struct dlvm_thin_pool *dlvm_thin_store_find(struct dlvm_vg *vg, uint64_t meta_id, bool write);
/* Forget an open store (commit it first when it writes): the next get opens
 * it again. Maps that use it keep their reference. */
int dlvm_thin_store_drop(struct dlvm_vg *vg, struct dlvm_thin_pool *p, struct dlvm_err *err);
/* The data LV of family meta_id (shared VG), or NULL. */
const struct dlvm_lv *dlvm_thin_family_data(const struct dlvm_vg *vg, uint64_t meta_id);
/* After the data LV of a family grew (a slab was added): the store uses the
 * new chunks and the writes waiting for them go on. */
int dlvm_thin_family_grown(struct dlvm_vg *vg, uint64_t meta_id, struct dlvm_err *err);
/* After the metadata LV of family meta_id grew (this host or another): the
 * stores open on it here read (and the writer allocates in) the new blocks. */
int dlvm_thin_family_meta_grown(struct dlvm_vg *vg, uint64_t meta_id, struct dlvm_err *err);
/* After a reload of a shared VG: every family store open here follows its
 * metadata and data LVs, which other hosts may have grown. */
void dlvm_thin_families_follow(struct dlvm_vg *vg);
/* Give up on writes waiting for a slab (none could be added). */
void dlvm_thin_family_no_slab(struct dlvm_thin_pool *p, uint64_t pool_free);
/*
 * Flatten: copy into the store of family p (a clone's, opened to write)
 * every chunk its external origin maps that p's device `id` does not, then
 * forget the origin (the caller commits the journal). `add_slab` is called
 * (with arg) when the family needs more chunks; progress (may be NULL) is
 * called after each chunk copied, with the virtual chunks gone through and
 * the chunks copied so far, and once at the end with vchunks: a nonzero
 * return (a negative errno) stops the copy there, with that error and its
 * message set in err; what was copied stays the clone's, so running it
 * again goes on where it stopped. The store is committed every few
 * thousand chunks.
 */
int dlvm_thin_pool_flatten(struct dlvm_thin_pool *p, uint64_t id, uint64_t vchunks,
			   int (*add_slab)(void *arg, struct dlvm_err *err), void *arg,
			   int (*progress)(void *arg, uint64_t done, uint64_t copied,
					   struct dlvm_err *err),
			   struct dlvm_err *err);
/* Chunks the family store can still hand out. */
uint64_t dlvm_thin_pool_free_chunks(struct dlvm_thin_pool *p);
struct dlvm_thin_pool *dlvm_thin_pool_ref(struct dlvm_thin_pool *p);
void dlvm_thin_pool_unref(struct dlvm_thin_pool *p);
/* Drop the VG's references to its open pools (dlvm_vg_free calls it). */
void dlvm_thin_pools_release(struct dlvm_vg *vg);
/* After the pool LV was extended: let the store use the new chunks (and the
 * data map the new extents). */
int dlvm_thin_pool_resized(struct dlvm_vg *vg, const struct dlvm_lv *pool, struct dlvm_err *err);

/* ---- for commands (under the pool's mutex) ---- */

int dlvm_thin_pool_create_dev(struct dlvm_thin_pool *p, uint64_t id, struct dlvm_err *err);
int dlvm_thin_pool_delete_dev(struct dlvm_thin_pool *p, uint64_t id, struct dlvm_err *err);
int dlvm_thin_pool_usage(struct dlvm_thin_pool *p, struct dlvm_thin_usage *u);
/* Mapped chunks of device id (0 when unknown). */
uint64_t dlvm_thin_pool_dev_mapped(struct dlvm_thin_pool *p, uint64_t id);
/*
 * A snapshot of device origin as device id (flags: DLVM_THIN_DEV_READONLY or
 * 0 for a writable clone), committed. Writes to the origin that were given
 * their chunks before this call and are still in flight are waited for (up
 * to 30 s: -ETIMEDOUT), so the snapshot holds exactly the writes completed
 * before it.
 */
int dlvm_thin_pool_snapshot(struct dlvm_thin_pool *p, uint64_t origin, uint64_t id, uint32_t flags,
			    struct dlvm_err *err);
/* Revert: device origin becomes a copy of device snap (which stays), in one
 * commit. */
int dlvm_thin_pool_revert(struct dlvm_thin_pool *p, uint64_t origin, uint64_t snap,
			  struct dlvm_err *err);
/* Flush the data area, then commit the store. */
int dlvm_thin_pool_commit(struct dlvm_thin_pool *p, struct dlvm_err *err);
/* The same, only when the store has uncommitted changes (the periodic
 * commit: idle pools cost nothing). */
int dlvm_thin_pool_commit_dirty(struct dlvm_thin_pool *p, struct dlvm_err *err);

/*
 * Let the data chunks that commits freed be handed out again once every
 * write begun before the call has ended (waited for until CLOCK_MONOTONIC
 * until_ns; else the next call tries again). Until then they cool
 * (dlvm_thin_set_cooling): a write that looked its chunk up before a trim
 * freed the chunk must not land in another device's data. When no write
 * is in flight, a commit or the last write's end frees them at once; this
 * is for a pool that is never idle.
 */
void dlvm_thin_pool_cool(struct dlvm_thin_pool *p, uint64_t until_ns);

/*
 * Give back to the PV files the data chunks that commits have freed: punch
 * them (FALLOC_FL_PUNCH_HOLE), so that a file PV does not keep the space of
 * removed volumes and trimmed chunks, and so that a chunk handed out again
 * reads as zeros without being zeroed. A chunk is punched only while it is
 * free, and only once every write begun before the call has ended (a write
 * that looked its chunk up before the chunk was freed must not land after
 * the punch); never after the pool broke or its fence expired. Chunks on
 * block devices are left as they are. Works in small pieces until
 * CLOCK_MONOTONIC until_ns; what is left waits for the next call. The
 * caller must keep the store this host's meanwhile (the agent holds the
 * daemon's lock, so no command hands a family to another host). Returns
 * the number of chunks punched; a failed punch is reported in err (those
 * chunks keep their data, which is harmless) and punching stops for the
 * pool.
 */
uint64_t dlvm_thin_pool_punch(struct dlvm_thin_pool *p, uint64_t until_ns, struct dlvm_err *err);
int dlvm_thin_pool_check(struct dlvm_thin_pool *p, struct dlvm_check_report *rep,
			 struct dlvm_err *err);

/* ---- for the data path ---- */

/*
 * Where the read at byte off of the thin LV of map m (m->thin) goes, for at
 * most len bytes (the piece ends at the chunk's end): a piece of the data
 * area (piece->dev indexes m->devs) or a hole of piece->len bytes that reads
 * as zeros (*hole true). -EIO when the pool grew onto a PV the map does not
 * know (the client reconnects), the store's errors.
 */
int dlvm_thin_pool_map_read(const struct dlvm_lv_map *m, uint64_t off, uint64_t len,
			    struct dlvm_map_piece *piece, bool *hole, struct dlvm_err *err);
/* What a write fills of its chunk, to record once its data is on the device
 * (dlvm_thin_pool_written). mask 0: nothing to record. */
struct dlvm_thin_written {
	uint64_t vchunk, chunk;
	uint16_t mask;       /* sub-blocks that read as zeros until recorded */
	uint16_t relied;     /* sub-blocks filled in part, whose whole fill by
			      * another write is under way */
};

/*
 * The same for a write: an unmapped chunk is provisioned, a shared one
 * copied, before this returns, so the caller's write completes it. A new
 * chunk is zeroed where the store keeps no unwritten sub-blocks; where it
 * does, the sub-blocks the write fills only in part are zeroed now and those
 * it fills whole are in *w: the caller records them with
 * dlvm_thin_pool_written after its write succeeded, or lets them go with
 * dlvm_thin_pool_unfilled after it failed, before dlvm_thin_pool_io_end
 * (until then they read as zeros). A sub-block filled in part while another
 * write fills it whole is not zeroed (w->relied): the caller replies only
 * once dlvm_thin_pool_fills_ended. -ENOSPC when the pool has no free chunk
 * (nothing changed).
 */
int dlvm_thin_pool_map_write(const struct dlvm_lv_map *m, uint64_t off, uint64_t len,
			     struct dlvm_map_piece *piece, struct dlvm_thin_written *w,
			     struct dlvm_err *err);
/* Record n writes of device id as done: their sub-blocks read what was
 * written from now on. A record whose chunk the device no longer maps there
 * (unmapped meanwhile) is dropped. The store's errors (the write then
 * failed: its sub-blocks keep reading as zeros). */
int dlvm_thin_pool_written(struct dlvm_thin_pool *p, uint64_t id,
			   const struct dlvm_thin_written *w, size_t n, struct dlvm_err *err);
/* The writes of n records failed: what they filled stays unwritten. One
 * that another write relied on stops the pool (that write's data would not
 * read back). */
void dlvm_thin_pool_unfilled(struct dlvm_thin_pool *p, const struct dlvm_thin_written *w,
			     size_t n);
/* Have the whole fills that n records rely on ended? Then 0, or the pool's
 * error when it stopped meanwhile; -EAGAIN while one is under way. */
int dlvm_thin_pool_fills_ended(struct dlvm_thin_pool *p, const struct dlvm_thin_written *w,
			       size_t n, struct dlvm_err *err);
/* Bracket the device I/O of one request to device id, a write
 * (dlvm_thin_pool_map_write and the I/O it leads to) or a read
 * (dlvm_thin_pool_map_read and its reads): begin gives a token for end.
 * Never blocks: a write is refused with -EAGAIN while a snapshot of device
 * id is being taken (it would change chunks the snapshot is about to
 * share); the caller starts it again later. A snapshot waits for the
 * brackets begun before it. Freed chunks cool until every bracket begun
 * before they were freed has ended. */
int dlvm_thin_pool_io_begin(struct dlvm_thin_pool *p, uint64_t id, bool write, unsigned *token);
void dlvm_thin_pool_io_end(struct dlvm_thin_pool *p, unsigned token);
/* Unmap the chunks of device id that lie wholly inside [off, off + len)
 * (TRIM, WRITE_ZEROES). zero_subs (WRITE_ZEROES): of partial chunks, the
 * sub-blocks the range covers whole become unwritten (read as zeros) where
 * the store keeps them. The rest of partial chunks is left to the caller. */
int dlvm_thin_pool_unmap(struct dlvm_thin_pool *p, uint64_t id, uint64_t off, uint64_t len,
			 bool zero_subs, struct dlvm_err *err);
/* What a stretch of a thin LV is, for block status. */
enum dlvm_thin_extent {
	DLVM_THIN_EXT_DATA,  /* mapped and written */
	DLVM_THIN_EXT_ZERO,  /* mapped, unwritten sub-blocks: reads as zeros */
	DLVM_THIN_EXT_HOLE,  /* not mapped (nor by a clone's origin): zeros */
};
/* Block status: from off, *ext bytes (≤ len, > 0 when len is) that are all
 * of one kind (*kind); looks at up to 64 chunks. */
int dlvm_thin_pool_extent(struct dlvm_thin_pool *p, uint64_t id, uint64_t off, uint64_t len,
			  uint64_t *ext, enum dlvm_thin_extent *kind, struct dlvm_err *err);

#endif
