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
 * host, while another one writes the family). Open stores are kept in
 * the VG's runtime (dlvm/runtime.h: the registry below needs a VG that has
 * one, as every VG a context loaded has) and shared by the data path's
 * maps of the thin LVs (map->thin, built by dlvm_vg_map_lv). The store is opaque (its runtime lives in lib/pool): every
 * call below that touches its state takes the store's mutex itself, as the
 * data path's connection threads and the command thread use a store at the
 * same time; no caller ever holds that mutex.
 *
 * Durability: changes to the store (new chunks, unmaps, new devices) become
 * durable at dlvm_thin_pool_commit, which first flushes the data area's
 * devices, so a committed mapping never points at data that did not land.
 * The data path commits on FLUSH and on FUA writes; commands commit before
 * they return.
 */
#ifndef DLVM_THINPOOL_H
#define DLVM_THINPOOL_H

#include <stdbool.h>
#include <stdint.h>

#include "dlvm/dev.h"
#include "dlvm/err.h"
#include "dlvm/lvdev.h"
#include "dlvm/map.h"
#include "dlvm/thin.h"

struct dlvm_vg;
struct dlvm_lv;

/* One open store (see above): opaque, reached through the calls below. */
struct dlvm_thin_pool;

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
 * store is read and its reference counts rebuilt) and kept in the VG's
 * runtime until it is freed (with the VG: dlvm_vg_free). The returned
 * pointer is borrowed from the runtime; take a reference
 * (dlvm_thin_pool_ref) to keep it longer. -ENOENT if the LV is not a pool,
 * -ENOTSUP for a pool of a shared VG (its stores are per family), -EINVAL
 * when the VG has no runtime, -ENODEV, -EBADMSG (damaged store), -EIO,
 * -ENOMEM.
 */
int dlvm_thin_pool_get(struct dlvm_vg *vg, const struct dlvm_lv *pool, struct dlvm_thin_pool **out,
		       struct dlvm_err *err);
/*
 * The store thin LV `lv` lives in: the pool's (local VG) or its family's
 * (shared VG). `write`: the store itself (this host writes the family);
 * else, in a shared VG, the family's writing store when it is open here and
 * otherwise a reader that serves snapshots only. Borrowed from the runtime as
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
/* Take a reference on p (returned); any thread that holds one already. */
struct dlvm_thin_pool *dlvm_thin_pool_ref(struct dlvm_thin_pool *p);
/* Let a reference go; the last one closes the store (without a commit:
 * the runtime's own reference commits when it is let go). NULL is ignored. */
void dlvm_thin_pool_unref(struct dlvm_thin_pool *p);
/*
 * The open stores of vg in turn: the first when p is NULL, else the one
 * after p; NULL at the end. Borrowed as dlvm_thin_pool_get's. The list
 * changes only on the thread that runs commands and the host agent (one at
 * a time, under the daemon's lock): a caller that drops p (store_drop)
 * takes the next one first.
 */
struct dlvm_thin_pool *dlvm_thin_pool_next(const struct dlvm_vg *vg,
					   const struct dlvm_thin_pool *p);
/* Forget every open store of pool LV lv_id, without a commit: the pool is
 * being removed. Maps that use one keep their reference. */
void dlvm_thin_pools_forget(struct dlvm_vg *vg, uint64_t lv_id);

/* ---- what an open store is: set when it opens, read without a lock by
 * anyone who holds a reference ---- */

/* "vg/pool", for messages; valid as long as p. */
const char *dlvm_thin_pool_name(const struct dlvm_thin_pool *p);
/* Bytes per data chunk (the pool LV's chunk size). */
uint64_t dlvm_thin_pool_chunk_size(const struct dlvm_thin_pool *p);
/* A family's store (shared VG), rather than a local pool's. */
bool dlvm_thin_pool_is_family(const struct dlvm_thin_pool *p);
/* A family store opened to read snapshots only (no store of its own: a
 * view per device). */
bool dlvm_thin_pool_is_reader(const struct dlvm_thin_pool *p);
/* The id of the pool LV, and of the store's metadata LV (its key in the
 * VG: dlvm_thin_store_find). */
uint64_t dlvm_thin_pool_lv_id(const struct dlvm_thin_pool *p);
uint64_t dlvm_thin_pool_meta_id(const struct dlvm_thin_pool *p);
/* Does anything besides the VG hold a reference (a map, a job)? A snapshot:
 * a reference may be taken right after. */
bool dlvm_thin_pool_in_use(const struct dlvm_thin_pool *p);

/* ---- the host agent's pass (its thread only, pool LVs as the VG model
 * has them; the pool's own state under its mutex) ---- */

/* What the agent knows of a store's pool LV when it asks what the store
 * wants (dlvm_thin_pool_wants). */
struct dlvm_thin_pool_facts {
	bool pool_found;               /* the pool LV is in the VG model; if not,
				   * nothing is wanted and the next fields are 0 */
	uint64_t pool_extents;         /* the pool LV's extents (a shared VG: those
				   * not yet handed to families as slabs) */
	uint64_t slab_extents;         /* extents per slab (shared VG), else 0 */
	uint64_t extent_size;          /* the VG's, in bytes */
	uint64_t vg_free;              /* free extents in the VG */
	unsigned autoextend_threshold; /* percent of data used that grows a local
				   * pool; 0 when autoextend is off */
};

/* What a store wants the agent to do now, under the VG lease. */
struct dlvm_thin_pool_wants {
	bool slab;       /* family: one more slab (a write waits for one, or
			  * less than half a slab is free), unless the last
			  * attempt failed and the pool has not changed since */
	bool meta;       /* family: a bigger metadata LV (3/4 used), unless
			  * the last attempt failed and the VG's free extents
			  * have not changed since */
	bool autoextend; /* local pool: grow the pool LV (a write waits for
			  * it, or data use is at the threshold), unless an
			  * autoextend failed since the pool last grew */
};

/*
 * What store p wants now (*w), given facts f. A reader wants nothing. For a
 * family this is asked before the pass commits it, for a local pool after
 * (its usage then counts what the commit freed). Asking also keeps the
 * store's own state in step: a family whose pool grew since a failed slab
 * may ask again; one whose last slab failed and that has writes waiting
 * lets them fail with ENOSPC; a local pool's writes wait for autoextend
 * only while it is on (as with dlvm_thin_pool_set_autoextend). Never fails.
 */
void dlvm_thin_pool_wants(struct dlvm_thin_pool *p, const struct dlvm_thin_pool_facts *f,
			  struct dlvm_thin_pool_wants *w);
/* The agent could not add a slab to family p while its pool had
 * pool_extents extents: the writes waiting for one fail (ENOSPC), and no
 * slab is wanted until the pool's size changes (dlvm_thin_pool_resized or
 * another host). Returns the failures in a row before this one (0: the
 * first, which is worth a message). */
unsigned dlvm_thin_family_no_slab(struct dlvm_thin_pool *p, uint64_t pool_extents);
/* The agent could not grow family p's metadata LV while the VG had vg_free
 * free extents: not wanted again until that number changes. Returns
 * whether this was already so (the failure was reported before). */
bool dlvm_thin_family_no_meta(struct dlvm_thin_pool *p, uint64_t vg_free);
/* Autoextend of local pool p failed: writes no longer wait for it (a full
 * pool fails them with ENOSPC) until the pool grows (dlvm_thin_pool_resized). */
void dlvm_thin_pool_autoextend_failed(struct dlvm_thin_pool *p);
/* Autoextend is on (on: the daemon's threshold is below 100%) for local
 * pool p: a write that finds it full waits for the agent to grow it, unless
 * an autoextend failed since the pool last grew. Any thread. */
void dlvm_thin_pool_set_autoextend(struct dlvm_thin_pool *p, bool on);
/* Stop store p (a family this host no longer holds): it is never committed
 * again, writes fail with -EIO and the message why, and writes waiting for
 * a slab wake. Any thread. */
void dlvm_thin_pool_stop(struct dlvm_thin_pool *p, const char *why);

/* Which of a store's areas a usage level is about. */
enum dlvm_thin_area {
	DLVM_THIN_AREA_DATA,
	DLVM_THIN_AREA_META,
};
/* The usage level (percent) last warned about for area of p, replaced by
 * level: the agent warns as a pool crosses 80% and every 5% above. */
unsigned dlvm_thin_pool_warned(struct dlvm_thin_pool *p, enum dlvm_thin_area area, unsigned level);
/* After the pool LV was extended: let the store use the new chunks (and the
 * data map the new extents). */
int dlvm_thin_pool_resized(struct dlvm_vg *vg, const struct dlvm_lv *pool, struct dlvm_err *err);

/* ---- for commands (each call takes the pool's mutex) ---- */

int dlvm_thin_pool_create_dev(struct dlvm_thin_pool *p, uint64_t id, struct dlvm_err *err);
int dlvm_thin_pool_delete_dev(struct dlvm_thin_pool *p, uint64_t id, struct dlvm_err *err);
/* The store's usage (dlvm/thin.h); a reader's: its chunk size, the data
 * chunks it knows of and readonly, the rest 0. Always 0. */
int dlvm_thin_pool_usage(struct dlvm_thin_pool *p, struct dlvm_thin_usage *u);
/* How full a store is, for lvs and the agent's warnings: chunks and
 * metadata blocks in use (those a commit is still freeing count) of all
 * there are. A reader's use is 0. */
struct dlvm_thin_pool_fill {
	uint64_t data_used, data_total;
	uint64_t meta_used, meta_total;
};
void dlvm_thin_pool_fill(struct dlvm_thin_pool *p, struct dlvm_thin_pool_fill *f);
/* Set the flags of device id (DLVM_THIN_DEV_READONLY or 0), not committed.
 * -EROFS for a reader, the store's errors (-ENOENT: no such device). */
int dlvm_thin_pool_set_flags(struct dlvm_thin_pool *p, uint64_t id, uint32_t flags,
			     struct dlvm_err *err);
/* lvreduce: unmap every chunk of device id that starts at or past byte
 * size, not committed. -EROFS for a reader, the store's errors. */
int dlvm_thin_pool_unmap_from(struct dlvm_thin_pool *p, uint64_t id, uint64_t size,
			      struct dlvm_err *err);
/* The first device of the store with an id ≥ from in *next (DLVM_THIN_NONE
 * if none). -EROFS for a reader, the store's errors. */
int dlvm_thin_pool_next_dev(struct dlvm_thin_pool *p, uint64_t from, uint64_t *next,
			    struct dlvm_err *err);
/* Does the store have device id? false for a reader. */
bool dlvm_thin_pool_has_dev(struct dlvm_thin_pool *p, uint64_t id);
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
 * write begun before the call has ended (waited for until dlvm_now_ns()
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
 * dlvm_now_ns() until_ns; what is left waits for the next call. The
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
	uint16_t mask;   /* sub-blocks that read as zeros until recorded */
	uint16_t relied; /* sub-blocks filled in part, whose whole fill by
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
int dlvm_thin_pool_written(struct dlvm_thin_pool *p, uint64_t id, const struct dlvm_thin_written *w,
			   size_t n, struct dlvm_err *err);
/* The writes of n records failed: what they filled stays unwritten. One
 * that another write relied on stops the pool (that write's data would not
 * read back). */
void dlvm_thin_pool_unfilled(struct dlvm_thin_pool *p, const struct dlvm_thin_written *w, size_t n);
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
	DLVM_THIN_EXT_DATA, /* mapped and written */
	DLVM_THIN_EXT_ZERO, /* mapped, unwritten sub-blocks: reads as zeros */
	DLVM_THIN_EXT_HOLE, /* not mapped (nor by a clone's origin): zeros */
};
/* Block status: from off, *ext bytes (≤ len, > 0 when len is) that are all
 * of one kind (*kind); looks at up to 64 chunks. */
int dlvm_thin_pool_extent(struct dlvm_thin_pool *p, uint64_t id, uint64_t off, uint64_t len,
			  uint64_t *ext, enum dlvm_thin_extent *kind, struct dlvm_err *err);

#endif
