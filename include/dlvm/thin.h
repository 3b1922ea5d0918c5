/* SPDX-License-Identifier: MIT */
/*
 * Thin store: the copy-on-write metadata of one thin family (an origin thin
 * volume and its snapshots) or of one pool. docs/thin.md is the spec of the
 * on-disk format and of the commit protocol.
 *
 * A store lives on a metadata device of 4096-byte blocks and hands out the
 * numbers of `data_chunks` data chunks (0 .. data_chunks-1). It never reads
 * or writes data: the caller copies and zeroes chunks as the calls below
 * tell it to. Each thin device (a volume or a snapshot, named by a
 * caller-chosen id) maps virtual chunks to data chunks through a B-tree;
 * snapshots share subtrees with their origin until one of them writes.
 *
 * Changes build a transaction in memory (and in blocks no committed state
 * uses); dlvm_thin_commit makes them durable at once. A crash loses the
 * uncommitted changes and nothing else. Data chunks and metadata blocks freed
 * in a transaction are not handed out again before the next commit.
 *
 * Errors: 0 or a negative errno with a message in *err (may be NULL):
 *   -EINVAL   bad argument (id or chunk out of range, shrinking)
 *   -ENOENT   no device with that id
 *   -EEXIST   a device with that id exists
 *   -ENOSPC   no free data chunk, or not enough free metadata blocks for the
 *             change (checked before anything changes: the store goes on)
 *   -EROFS    the device or the store is read-only
 *   -EBADMSG  a damaged superblock or node; the message names the block
 *   -ENOTSUP  a format version or incompatible feature this build lacks
 *   -EIO      device I/O error
 *   -ENOMEM   out of memory
 * After -EBADMSG, -EIO or -ENOMEM in a call that changes the store, the store
 * refuses every further change (-EROFS, naming the first error); reads go on.
 * Close and open it again to continue from the last commit.
 *
 * Not thread safe: callers serialise every call on one store.
 */
#ifndef DLVM_THIN_H
#define DLVM_THIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "dlvm/dev.h"
#include "dlvm/err.h"

struct dlvm_thin_store;
struct dlvm_check_report; /* dlvm/vg.h */

#define DLVM_THIN_BLOCK 4096u
#define DLVM_THIN_MAX_ID ((UINT64_C(1) << 48) - 1)    /* largest device id and virtual chunk */
#define DLVM_THIN_MAX_CHUNKS (UINT64_C(1) << 48)      /* most data chunks a store manages */
#define DLVM_THIN_MAX_META_BLOCKS (UINT64_C(1) << 32) /* most metadata blocks (16 TiB) */
#define DLVM_THIN_NONE UINT64_MAX                     /* no chunk; no further mapping or device */

/* Device flags */
#define DLVM_THIN_DEV_READONLY (1u << 0) /* provision and unmap fail with -EROFS */
#define DLVM_THIN_DEV_SNAPSHOT (1u << 1) /* made by dlvm_thin_snapshot; snapshot_of is set */

/* ---- the store ---- */

struct dlvm_thin_format_opts {
	uint64_t chunk_size;  /* bytes per data chunk: power of two, 4 KiB .. 1 GiB (recorded) */
	uint64_t data_chunks; /* 1 .. DLVM_THIN_MAX_CHUNKS */
	uint64_t meta_blocks; /* metadata blocks to use; 0: all of the device */
	uint8_t uuid[16];     /* identity of the store; all zero: a random one */
	bool zero_new;        /* no unwritten sub-blocks: the caller zeroes new chunks
			       * (the format before that feature) */
};

/*
 * Unwritten sub-blocks. A store formatted without zero_new keeps, with each
 * mapping, which of its chunk's sub-blocks hold nothing written since the
 * chunk was handed out: they read as zeros whatever the data chunk holds, so
 * a new chunk needs no zeroing. A chunk has dlvm_thin_subblocks(chunk_size)
 * sub-blocks of chunk_size / that many bytes; bit i of a mask is sub-block i.
 */
#define DLVM_THIN_SUBBLOCKS_MAX 16
static inline unsigned dlvm_thin_subblocks(uint64_t chunk_size)
{
	uint64_t n = chunk_size / 4096;
	return n < DLVM_THIN_SUBBLOCKS_MAX ? (unsigned)(n ? n : 1) : DLVM_THIN_SUBBLOCKS_MAX;
}

/*
 * Write an empty store (no device) to dev: both superblock slots are
 * invalidated first, then the empty device tree and superblock slot 0 are
 * written, with a flush after each step. dev is borrowed. Returns 0, -EINVAL
 * (bad option, device smaller than meta_blocks or than 3 blocks), -EIO.
 */
int dlvm_thin_store_format(struct dlvm_dev *dev, const struct dlvm_thin_format_opts *o,
			   struct dlvm_err *err);

enum {
	DLVM_THIN_RDONLY = 1 << 0,  /* refuse every change (-EROFS) */
	DLVM_THIN_SALVAGE = 1 << 1, /* open even when trees are damaged; implies RDONLY */
};

struct dlvm_thin_open_opts {
	unsigned flags;      /* DLVM_THIN_* above */
	size_t cache_blocks; /* nodes kept in memory besides those in use; 0: 4096 */
};

/*
 * Open the store on dev (borrowed: keep it open until dlvm_thin_store_close).
 * Reads both superblock slots and uses the valid one with the higher
 * transaction id, then reads every node reachable from it once to rebuild the
 * reference counts in memory (docs/thin.md: "Reference counts"). o may be
 * NULL. Returns 0 and *out, or -EBADMSG (both slots damaged, or a damaged
 * node: the message names its block; with DLVM_THIN_SALVAGE the store opens
 * read-only instead and dlvm_thin_check lists the damage), -ENODATA (no
 * superblock magic in either slot: not a thin store), -ENOTSUP, -EIO,
 * -ENOMEM. An unknown ro_compat feature opens the store read-only.
 */
int dlvm_thin_store_open(struct dlvm_dev *dev, const struct dlvm_thin_open_opts *o,
			 struct dlvm_thin_store **out, struct dlvm_err *err);

/* Forget the uncommitted changes and free the store (NULL is fine). The
 * device stays open: it is the caller's. */
void dlvm_thin_store_close(struct dlvm_thin_store *s);

/*
 * Make every change since the last commit durable: write the new nodes,
 * flush, write the superblock into the slot not holding the last commit,
 * flush. Nothing to commit: returns 0 and writes nothing. On -EIO the store
 * becomes read-only; the device then holds the last or (if only the final
 * flush failed) the new state.
 */
int dlvm_thin_commit(struct dlvm_thin_store *s, struct dlvm_err *err);

/*
 * dlvm_thin_commit in three steps, for a caller that lets its other threads
 * use and change the store while the commit is written (docs/thin.md:
 * "Commit"). Under the caller's lock, dlvm_thin_commit_start seals the
 * transaction: it copies the new nodes and the superblock into *job (NULL
 * when there is nothing to commit) and the next transaction starts; -EBUSY
 * while another job is out, -ENOMEM (nothing changed), -EROFS.
 * dlvm_thin_commit_write, without the lock, writes and flushes the job.
 * dlvm_thin_commit_end, under the lock again, takes its result r: on 0
 * what the sealed transaction freed becomes free, otherwise the store
 * refuses changes from then on. It frees the job and returns r.
 */
struct dlvm_thin_job;
int dlvm_thin_commit_start(struct dlvm_thin_store *s, struct dlvm_thin_job **job,
			   struct dlvm_err *err);
int dlvm_thin_commit_write(struct dlvm_thin_job *job, struct dlvm_err *err);
int dlvm_thin_commit_end(struct dlvm_thin_store *s, struct dlvm_thin_job *job, int r,
			 struct dlvm_err *err);
/* Has the store changes for dlvm_thin_commit to write (and flush)? */
bool dlvm_thin_changed(const struct dlvm_thin_store *s);

/*
 * Called by dlvm_thin_commit once the commit is on disk, for each run of
 * data chunks [chunk, chunk + n) that the commit freed: no committed state
 * maps them any more, and they may be handed out from now on. The hook must
 * not call back into the store. NULL: none (the default).
 */
typedef void (*dlvm_thin_freed_fn)(void *arg, uint64_t chunk, uint64_t n);
void dlvm_thin_set_freed_hook(struct dlvm_thin_store *s, dlvm_thin_freed_fn fn, void *arg);

/*
 * Freed chunks that cool before they are handed out again. A write that
 * looked its chunk up before a trim freed the chunk may still land after
 * the commit; had the chunk gone to another device meanwhile, that device
 * would get the write. With cooling on, the chunks each commit frees wait
 * (they count as pending) until the caller, who sees its writes, lets them
 * go in two steps: dlvm_thin_cool_seal closes the set of chunks cooling so
 * far, and dlvm_thin_cool_release frees what was sealed, to be called once
 * every write begun before the seal has ended. Chunks freed after a seal
 * wait for the next one. In memory only: after an open nothing cools.
 * Turning cooling off frees everything cooling.
 */
void dlvm_thin_set_cooling(struct dlvm_thin_store *s, bool on);
uint64_t dlvm_thin_cooling(const struct dlvm_thin_store *s); /* chunks cooling, sealed or not */
void dlvm_thin_cool_seal(struct dlvm_thin_store *s);
uint64_t dlvm_thin_cool_release(struct dlvm_thin_store *s); /* the chunks freed */

struct dlvm_thin_usage {
	uint64_t transaction; /* id of the last commit */
	uint64_t chunk_size;
	uint64_t devices;
	uint64_t data_chunks;  /* total */
	uint64_t data_free;    /* can be handed out now */
	uint64_t data_pending; /* freed, not free yet: in this transaction (free after
				   * the next commit), or cooling (dlvm_thin_set_cooling) */
	uint64_t meta_blocks;  /* total, the two superblock slots included */
	uint64_t meta_free;
	uint64_t meta_pending;
	bool readonly;
	uint8_t uuid[16];
};
void dlvm_thin_usage(const struct dlvm_thin_store *s, struct dlvm_thin_usage *u);

/* Let the store hand out data chunks up to new_count (≥ the current count,
 * ≤ DLVM_THIN_MAX_CHUNKS). Durable at the next commit. -EINVAL, -EROFS,
 * -ENOMEM. */
int dlvm_thin_grow_data(struct dlvm_thin_store *s, uint64_t new_count, struct dlvm_err *err);

/* Use metadata blocks up to new_count (≥ the current count; the device must
 * hold them: the caller grows the device first). Durable at the next commit.
 * -EINVAL, -EROFS, -ENOMEM. */
int dlvm_thin_grow_meta(struct dlvm_thin_store *s, uint64_t new_count, struct dlvm_err *err);

/*
 * Verify the current state (committed and not): every tree's node checksums,
 * self block numbers, levels, tree types and key order and ranges; recount
 * every reference count from scratch and compare it with the counts kept in
 * memory; each device's mapped count; that free and used space add up. Each
 * problem is a line added to rep (struct from dlvm/vg.h, zeroed by the
 * caller or holding what a check of the VG found before; release it with
 * dlvm_check_report_release) and counts in rep->problems. Returns 0 when the
 * check ran (whatever it found), -ENOMEM or -EIO otherwise.
 */
int dlvm_thin_check(struct dlvm_thin_store *s, struct dlvm_check_report *rep, struct dlvm_err *err);

/*
 * Decode `count` blocks of a store from `first` into text on out: superblock
 * slots field by field, nodes with their header and entries, damage as
 * "DAMAGED: reason". Does not need an open store. 0 or -EIO.
 */
int dlvm_thin_dump(struct dlvm_dev *dev, uint64_t first, uint64_t count, FILE *out,
		   struct dlvm_err *err);

/* ---- thin devices ---- */

struct dlvm_thin_dev_info {
	uint64_t id;
	uint64_t mapped;      /* virtual chunks mapped */
	uint64_t created_txn; /* transaction id the device was created in */
	uint64_t snapshot_of; /* origin's id with DLVM_THIN_DEV_SNAPSHOT, else 0 */
	uint32_t flags;       /* DLVM_THIN_DEV_* */
};

/* A new empty device. id ≤ DLVM_THIN_MAX_ID; flags: DLVM_THIN_DEV_READONLY or
 * 0. -EEXIST, -EINVAL, -ENOSPC (metadata), -EROFS. */
int dlvm_thin_create(struct dlvm_thin_store *s, uint64_t id, uint32_t flags, struct dlvm_err *err);

/*
 * A new device `id` sharing every mapping of `origin` as it is now (committed
 * or not). O(1) in the size of the origin: the new device's tree root is the
 * origin's, with one more reference. Later writes to either copy the nodes
 * and chunks they change. flags as for dlvm_thin_create (DLVM_THIN_DEV_SNAPSHOT
 * is added). -ENOENT (origin), -EEXIST (id), -EINVAL, -ENOSPC, -EROFS.
 */
int dlvm_thin_snapshot(struct dlvm_thin_store *s, uint64_t origin, uint64_t id, uint32_t flags,
		       struct dlvm_err *err);

/* Remove a device; the nodes and data chunks that only it referenced become
 * free after the next commit. Other devices' mappings are untouched.
 * -ENOENT, -ENOSPC (metadata), -EROFS. */
int dlvm_thin_delete(struct dlvm_thin_store *s, uint64_t id, struct dlvm_err *err);

/* Set or clear DLVM_THIN_DEV_READONLY (the only flag that can change).
 * -ENOENT, -EINVAL (other bits), -ENOSPC, -EROFS. */
int dlvm_thin_set_flags(struct dlvm_thin_store *s, uint64_t id, uint32_t flags,
			struct dlvm_err *err);

/* The details of device id. -ENOENT. */
int dlvm_thin_info(struct dlvm_thin_store *s, uint64_t id, struct dlvm_thin_dev_info *out,
		   struct dlvm_err *err);

/* The smallest device id ≥ from in *id, or DLVM_THIN_NONE when there is
 * none (returns 0). Lists the devices in id order. */
int dlvm_thin_next_dev(struct dlvm_thin_store *s, uint64_t from, uint64_t *id,
		       struct dlvm_err *err);

/*
 * Where virtual chunk vchunk of device id is: *chunk is the data chunk, or
 * DLVM_THIN_NONE for a hole (returns 0 either way). *shared (may be NULL) is
 * true when another device maps the same data chunk, so a write would copy it.
 * -ENOENT, -EINVAL (vchunk > DLVM_THIN_MAX_ID), -EBADMSG, -EIO.
 */
int dlvm_thin_lookup(struct dlvm_thin_store *s, uint64_t id, uint64_t vchunk, uint64_t *chunk,
		     bool *shared, struct dlvm_err *err);

/*
 * The data chunk a write to virtual chunk vchunk of device id goes to.
 *   - mapped and owned by this device alone: *chunk is that chunk, *is_new
 *     false, *copy_from DLVM_THIN_NONE; nothing changes;
 *   - a hole: a free chunk is mapped; *is_new true, *copy_from DLVM_THIN_NONE:
 *     the caller zeroes what it does not write;
 *   - mapped but shared with another device: a free chunk replaces it in this
 *     device only; *is_new true, *copy_from is the old chunk, whose data the
 *     caller copies (it stays mapped by the other devices).
 * copy_from may be NULL. -ENOSPC (no free data chunk or metadata block:
 * nothing changed), -ENOENT, -EROFS (read-only device or store), -EINVAL,
 * -EBADMSG, -EIO.
 */
int dlvm_thin_provision(struct dlvm_thin_store *s, uint64_t id, uint64_t vchunk, uint64_t *chunk,
			bool *is_new, uint64_t *copy_from, struct dlvm_err *err);

/* Does the store keep unwritten sub-blocks (it was formatted without
 * zero_new)? Otherwise every mask below is 0. */
bool dlvm_thin_tracks_unwritten(const struct dlvm_thin_store *s);

/* A mapping as dlvm_thin_lookup_mapping and dlvm_thin_provision_mapping
 * give it. */
struct dlvm_thin_mapping {
	uint64_t chunk;          /* data chunk, or DLVM_THIN_NONE (a hole) */
	uint16_t unwritten;      /* its sub-blocks that read as zeros */
	bool shared;             /* another device maps the chunk (lookup only) */
	bool is_new;             /* provision: chunk was just handed out */
	uint64_t copy_from;      /* provision: the shared chunk it replaces, or NONE */
	uint16_t from_unwritten; /* provision: copy_from's unwritten mask */
};

/* dlvm_thin_lookup with the unwritten mask. */
int dlvm_thin_lookup_mapping(struct dlvm_thin_store *s, uint64_t id, uint64_t vchunk,
			     struct dlvm_thin_mapping *m, struct dlvm_err *err);

/*
 * dlvm_thin_provision with the masks: a chunk handed out gets `unwritten`
 * (0 where the store keeps no masks); its writer clears the bits of what it
 * wrote with dlvm_thin_set_unwritten once the data is on the device. A copy
 * must not carry what the from_unwritten sub-blocks of copy_from hold.
 */
int dlvm_thin_provision_mapping(struct dlvm_thin_store *s, uint64_t id, uint64_t vchunk,
				uint16_t unwritten, struct dlvm_thin_mapping *m,
				struct dlvm_err *err);

/*
 * Change the unwritten mask of virtual chunk vchunk of device id to
 * (mask | set) & ~clear, if it still maps data chunk `chunk` (otherwise,
 * or in a store without masks, nothing changes and 0 is returned). Clear a
 * bit only once the sub-block's new contents are on the device: a commit
 * flushes data before it writes the masks. -ENOENT, -EROFS, -ENOSPC
 * (metadata), -EBADMSG, -EIO.
 */
int dlvm_thin_set_unwritten(struct dlvm_thin_store *s, uint64_t id, uint64_t vchunk, uint64_t chunk,
			    uint16_t set, uint16_t clear, struct dlvm_err *err);

/*
 * How many data chunks from `chunk` on (at most max) are free: neither
 * mapped nor freed in the current transaction. Such a chunk changes only
 * when dlvm_thin_provision hands it out. Costs one step per chunk counted.
 */
uint64_t dlvm_thin_free_run(const struct dlvm_thin_store *s, uint64_t chunk, uint64_t max);

/*
 * Unmap virtual chunks [first, first + count) of device id (TRIM, WRITE_ZEROES).
 * *unmapped (may be NULL) is the number of chunks that were mapped. Data
 * chunks no other device maps become free after the next commit. Unmapping
 * may need metadata blocks (to copy shared nodes): on -ENOSPC a prefix of the
 * range is unmapped (*unmapped says how much) and the store goes on.
 * -ENOENT, -EROFS, -EINVAL, -EBADMSG, -EIO.
 */
int dlvm_thin_unmap(struct dlvm_thin_store *s, uint64_t id, uint64_t first, uint64_t count,
		    uint64_t *unmapped, struct dlvm_err *err);

/*
 * The first mapped virtual chunk ≥ from of device id in *vchunk and its data
 * chunk in *chunk (may be NULL); *vchunk = DLVM_THIN_NONE when none follows.
 * A caller reports the hole [from, *vchunk). -ENOENT, -EBADMSG, -EIO.
 */
int dlvm_thin_next_mapped(struct dlvm_thin_store *s, uint64_t id, uint64_t from, uint64_t *vchunk,
			  uint64_t *chunk, struct dlvm_err *err);

/* Called for each mapping in virtual chunk order; a non-zero return stops the
 * iteration and is returned by dlvm_thin_iterate. The callback must not
 * change the store. */
typedef int (*dlvm_thin_map_fn)(void *ctx, uint64_t vchunk, uint64_t chunk);

/* Call fn for every mapping of device id with vchunk ≥ from. Returns 0, fn's
 * non-zero value, or -ENOENT, -EBADMSG, -EIO. */
int dlvm_thin_iterate(struct dlvm_thin_store *s, uint64_t id, uint64_t from, dlvm_thin_map_fn fn,
		      void *ctx, struct dlvm_err *err);

/* ---- read-only views ---- */

/*
 * A view reads one device of a store that another process (or host) may be
 * changing and committing at the same time, without the walk of every tree
 * that dlvm_thin_store_open does (docs/thin.md: "Read-only views"). It sees
 * the device as the last commit before the open left it.
 *
 * The open reads both superblock slots, uses the valid one with the higher
 * txn and finds the device's record in the device tree. A device tree node
 * that fails to decode or whose txn is later than the superblock's (a block
 * a later commit used again), or a torn superblock slot, makes the open
 * start again from the superblocks, up to 8 times; then -EAGAIN. A node that
 * fails while the superblocks stay the same is damage: -EBADMSG.
 *
 * After the open only the device's own mapping tree is read: the caller
 * makes sure the device neither changes nor goes away while the view is
 * open (a snapshot: copy-on-write never writes a node a commit references,
 * and a device's nodes and chunks are not freed while it exists). Each node
 * read is checked like the store's (checksum, block number, tree type,
 * level, key order and the range its parent gives, txn not later than the
 * view's): a lookup answers as of the view's commit or fails with -EBADMSG
 * naming the block, even when the rule is broken; but then the data chunks
 * it names may already belong to something else.
 *
 * Not thread safe: callers serialise every call on one view. Views of one
 * store share nothing; each has its own cache.
 */
struct dlvm_thin_view;

struct dlvm_thin_view_info {
	uint64_t id;
	uint64_t txn;         /* the commit the view reads */
	uint64_t chunk_size;  /* bytes per data chunk */
	uint64_t data_chunks; /* of the store, at that commit */
	uint64_t mapped;      /* virtual chunks the device maps */
	uint32_t flags;       /* DLVM_THIN_DEV_* */
	uint8_t uuid[16];     /* of the store */
};

/*
 * Open device id of the store on dev (borrowed: keep it open until
 * dlvm_thin_view_close) read-only. cache_blocks: decoded mapping tree nodes
 * kept in memory (about 5.4 KiB each; 0: 1024); once it is full, lookups
 * allocate nothing. Returns 0 and *out, or -ENOENT (no such device),
 * -ENODATA (not a thin store), -EBADMSG (damaged superblocks, device tree or
 * mapping tree root: the message names the block), -ENOTSUP, -EAGAIN (the
 * store changed under every attempt; a few milliseconds pass between
 * attempts), -EIO, -ENOMEM.
 */
int dlvm_thin_view_open(struct dlvm_dev *dev, uint64_t id, size_t cache_blocks,
			struct dlvm_thin_view **out, struct dlvm_err *err);

/* Free the view and its cache (NULL is fine). The device stays open. */
void dlvm_thin_view_close(struct dlvm_thin_view *v);

/* The device's details as of the view's commit. */
void dlvm_thin_view_info(const struct dlvm_thin_view *v, struct dlvm_thin_view_info *out);

/* As dlvm_thin_lookup on the view's device (without *shared): *chunk is the
 * data chunk or DLVM_THIN_NONE. -EINVAL (vchunk > DLVM_THIN_MAX_ID),
 * -EBADMSG, -EIO, -ENOMEM. */
int dlvm_thin_view_lookup(struct dlvm_thin_view *v, uint64_t vchunk, uint64_t *chunk,
			  struct dlvm_err *err);

/* dlvm_thin_view_lookup with the unwritten mask (m->shared, is_new and
 * copy_from are not set). */
int dlvm_thin_view_lookup_mapping(struct dlvm_thin_view *v, uint64_t vchunk,
				  struct dlvm_thin_mapping *m, struct dlvm_err *err);

/* As dlvm_thin_next_mapped on the view's device: the first mapped virtual
 * chunk >= from in *vchunk (DLVM_THIN_NONE: none) and its data chunk in
 * *chunk (may be NULL). -EBADMSG, -EIO, -ENOMEM. */
int dlvm_thin_view_next_mapped(struct dlvm_thin_view *v, uint64_t from, uint64_t *vchunk,
			       uint64_t *chunk, struct dlvm_err *err);

#endif
