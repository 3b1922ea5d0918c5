/* SPDX-License-Identifier: MIT */
/*
 * The thin-pool runtime inside lib/pool: what the files of the folder share.
 * Nothing outside lib/pool includes this header; callers use dlvm/thinpool.h.
 *
 * Files, one concern each:
 *   runtime.c   a loaded VG's runtime (dlvm/runtime.h): its stores, its fence, maps
 *   registry.c  the open stores of a VG: find, open, reference, drop; format
 *   grow.c      more data chunks or metadata blocks, the writes that wait
 *   dev.c       commands on devices, the I/O brackets snapshots wait for
 *   commit.c    commits, with or without mu held during the I/O
 *   punch.c     freed chunks given back to PV files, cooling chunks let go
 *   chunk.c     synchronous chunk I/O, zeroing of new chunks
 *   subblock.c  unwritten sub-blocks: zeroing, recording whole fills
 *   fill.c      the table of whole fills in flight (fill.h)
 *   prep.c      a new chunk's contents before a write: copies, zeros
 *   map.c       the data path: reads and writes mapped, lookups, block status
 *   unmap.c     TRIM and WRITE_ZEROES
 *   flatten.c   a clone's copy of what its origin still provides
 *   policy.c    what a pool wants of the host agent, and what came of it
 *   family.c    the VG edits of families: creation, slabs (family.h)
 *
 * Locking: every field of struct dlvm_thin_pool below `mu` is guarded by
 * it, except those set once at open (lv_id, meta_id, family, reader, name,
 * chunk_size and the sub-block geometry), which anyone holding a reference
 * may read. Functions named "(mu held)" expect the caller to hold p->mu;
 * some let it go while they wait, as their comments say. Across two stores
 * the order is always clone before origin.
 */
#ifndef DLVM_POOL_INT_H
#define DLVM_POOL_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "dlvm/map.h"
#include "dlvm/runtime.h"
#include "dlvm/thinpool.h"
#include "dlvm/util.h"
#include "dlvm/vg.h"
#include "fill.h"

struct dlvm_thin_view_ent {
	uint64_t id;
	struct dlvm_thin_view *view;
};

/* Copies for new chunks made at once per pool, without its mutex. */
#define DLVM_THIN_PREP_MAX 16

struct dlvm_thin_pool {
	atomic_uint refs;
	pthread_mutex_t mu;
	uint64_t lv_id;                   /* the pool LV */
	uint64_t meta_id;                 /* the store's metadata LV: the key in the VG */
	bool family;                      /* a family's store (shared VG) */
	bool reader;                      /* snapshots only: no store, views per device */
	struct dlvm_thin_view_ent *views; /* reader: the devices read so far */
	size_t nviews;
	struct dlvm_fence *fence;         /* shared VG: no commit once it expires */
	struct dlvm_thin_pool *ext;       /* a clone's family: the store of its external
				      * origin (a reference), read where this
				      * store maps nothing; else NULL */
	uint64_t ext_dev;                 /* the origin snapshot's device in ext */
	bool want_slab;                   /* family: a write waits for another slab */
	unsigned slab_fails;              /* family: failed attempts to add one (quiet after 1) */
	uint64_t slab_fail_free;          /* family: the pool's own extents at the last failure */
	bool meta_grow_failed;            /* family: its metadata LV could not grow ... */
	uint64_t meta_fail_free;          /* ... while the VG had this many free extents */
	bool autoextend_failed;           /* local pool: do not try again until it grows */
	bool can_grow;                    /* local pool: autoextend is on: a full pool
				      * makes writes wait for it (want_slab) */
	pthread_cond_t grown;             /* family: signalled when the data LV grew */
	char name[2 * DLVM_NAME_MAX + 2]; /* "vg/pool", for messages */
	uint64_t chunk_size;
	/* unwritten sub-blocks (dlvm/thin.h): nsub of sub_size bytes per chunk;
	 * track: the store keeps them, so new chunks are not zeroed */
	uint64_t sub_size;
	unsigned nsub;
	uint16_t sub_all;
	bool track;
	struct dlvm_dev *meta; /* view of the metadata LV (owned) */
	struct dlvm_thin_store *store;
	struct dlvm_lv_map *data; /* map of the pool LV: the data area */
	/* data chunks [hole_lo, hole_hi) were free and read as zeros from a
	 * hole of their PV file when last looked at, and none of them was
	 * handed out since: a new chunk there needs no zeroing */
	uint64_t hole_lo, hole_hi;
	/* data chunks that commits freed and that are not punched out of their
	 * PV files yet (dlvm_thin_pool_punch): two bitmaps of freed_cap chunks
	 * and the number of bits set in each */
	uint64_t *freed, *aged;
	uint64_t freed_cap, nfreed, naged, freed_cursor;
	bool punch_off; /* punching failed once: never again */
	uint8_t *zero;  /* chunk_size zero bytes, 4096-aligned */
	uint8_t *copy;  /* chunk_size bytes for copy-on-write */
	/* copies of new chunks that a write made, done without mu (map_write):
	 * their virtual chunks, which every lookup waits for, and a buffer
	 * each (made on first use) */
	struct dlvm_thin_prep {
		uint64_t id, vchunk;
		bool busy;
		uint8_t *buf;
	} prep[DLVM_THIN_PREP_MAX];
	unsigned nprep;          /* entries busy */
	unsigned prep_closed;    /* > 0: a commit or snapshot waits for the
				      * copies to end; new ones are made under mu */
	pthread_cond_t prepared; /* an entry was let go */
	/* unwritten sub-blocks that writes in flight fill whole (track) */
	struct dlvm_thin_fills *fills;
	/* writes provisioned and not yet completed, in two epochs: a snapshot
	 * starts a new epoch and waits for the old one to drain */
	unsigned epoch;
	unsigned inflight[2];
	unsigned snapping;    /* snapshots being taken: writes wait */
	uint64_t snap_origin; /* the origin, the only device whose
				      * writes wait; DLVM_THIN_NONE: all wait
				      * (more than one snapshot at once) */
	pthread_cond_t drained;
	bool dirty;                        /* the store has changes since the last commit */
	bool committing;                   /* a commit is being written without mu */
	pthread_cond_t committed;          /* ... and it ended */
	unsigned warned_data, warned_meta; /* last usage level warned about (percent) */
	bool broken;                       /* a chunk could not be prepared: never commit */
	char broken_msg[DLVM_ERR_MSG_MAX];
	struct dlvm_thin_pool *next; /* in the VG runtime's list */
};

/* A loaded VG's runtime (dlvm/runtime.h); changed only by the thread that
 * runs commands and by the host agent, one at a time. */
struct dlvm_vg_runtime {
	struct dlvm_thin_pool *pools; /* the open stores, newest first: a reference each */
	struct dlvm_fence *fence;     /* shared VG joined here: a reference; else NULL */
};

/* The first open store of vg (NULL: none, or vg has no runtime). */
static inline struct dlvm_thin_pool *pool_first(const struct dlvm_vg *vg)
{
	return vg->runtime ? vg->runtime->pools : NULL;
}

/* ---- registry.c ---- */

/* The metadata LV of local pool LV `pool`, or NULL with -EBADMSG in err. */
const struct dlvm_lv *pool_meta_lv(const struct dlvm_vg *vg, const struct dlvm_lv *pool,
				   struct dlvm_err *err);
/* The error of a pool that stopped after an error (p->broken): -EIO. */
int pool_stopped(const struct dlvm_thin_pool *p, struct dlvm_err *err);

/* ---- dev.c ---- */

/* No read or write is in flight: what cools may go (mu held). */
void pool_cool_release_idle(struct dlvm_thin_pool *p);

/* ---- commit.c ---- */

/* Let the copies made without mu end and start no more of them, until
 * pool_preps_open (mu held, let go while waiting). */
void pool_preps_close(struct dlvm_thin_pool *p);
void pool_preps_open(struct dlvm_thin_pool *p);
/* Wait until no commit is being written without mu (mu held). */
void pool_commit_idle(struct dlvm_thin_pool *p);
/* Flush the data area and commit with mu held throughout (mu held); 0 at
 * once for a reader or a read-only store. The store's and flush errors;
 * -EIO once the pool stopped. */
int pool_commit_locked(struct dlvm_thin_pool *p, struct dlvm_err *err);

/* ---- punch.c ---- */

/* The store's freed hook: chunks [chunk, chunk + n) are to be punched
 * (arg: the pool; mu held). */
void pool_chunks_freed(void *arg, uint64_t chunk, uint64_t n);
/* Chunk c is handed out: not one to punch any more (mu held). */
void pool_chunk_taken(struct dlvm_thin_pool *p, uint64_t c);

/* ---- chunk.c ---- */

/* Synchronous I/O of bytes [in, in + len) of a chunk through data map dm,
 * to or from buf; no mutex needed while the caller holds dm. */
int pool_chunk_range_io_on(struct dlvm_thin_pool *p, const struct dlvm_lv_map *dm, uint64_t chunk,
			   uint64_t in, uint64_t len, uint8_t *buf, bool write,
			   struct dlvm_err *err);
/* The same through the pool's current data map (mu held). */
int pool_chunk_range_io(struct dlvm_thin_pool *p, uint64_t chunk, uint64_t in, uint64_t len,
			uint8_t *buf, bool write, struct dlvm_err *err);
/* Zero a chunk about to be handed out; in_hole: known to read as zeros
 * already (mu held). */
int pool_chunk_zero(struct dlvm_thin_pool *p, uint64_t chunk, bool in_hole, struct dlvm_err *err);

/* ---- subblock.c ---- */

/* Write zeros over the sub-blocks of mask in chunk (mu held). */
int pool_subs_zero(struct dlvm_thin_pool *p, uint64_t chunk, uint16_t mask, struct dlvm_err *err);
/* Zero the sub-blocks of mask in a chunk's contents in buf. */
void pool_subs_blank(const struct dlvm_thin_pool *p, uint8_t *buf, uint16_t mask);

/* ---- prep.c ---- */

/* Give new chunk m->chunk what it must hold before a write goes to it,
 * copying without mu where it can (mu held, may be let go meanwhile). */
int pool_chunk_prepare_write(struct dlvm_thin_pool *p, uint64_t id, uint64_t vchunk,
			     struct dlvm_thin_mapping *m, bool in_hole, struct dlvm_err *err);

/* ---- map.c (all with mu held) ---- */

/* dlvm_thin_provision_mapping, keeping the punch bitmaps and the known-hole
 * run true; *in_hole: the new chunk reads as zeros already. */
int pool_provision(struct dlvm_thin_pool *p, uint64_t id, uint64_t vchunk,
		   struct dlvm_thin_mapping *m, bool *in_hole, struct dlvm_err *err);
/* A reader's view of device id, opened on first use. */
int pool_view_of(struct dlvm_thin_pool *p, uint64_t id, struct dlvm_thin_view **out,
		 struct dlvm_err *err);
/* Lookups through the store, or through a view for a reader. */
int pool_lookup_map(struct dlvm_thin_pool *p, uint64_t id, uint64_t vchunk,
		    struct dlvm_thin_mapping *m, struct dlvm_err *err);
int pool_lookup(struct dlvm_thin_pool *p, uint64_t id, uint64_t vchunk, uint64_t *chunk,
		struct dlvm_err *err);
int pool_next_mapped(struct dlvm_thin_pool *p, uint64_t id, uint64_t from, uint64_t *vchunk,
		     struct dlvm_err *err);
/* Where a clone's external origins map vchunk (*owner, *chunk, *unw), or
 * *chunk DLVM_THIN_NONE; takes each origin's mu in turn. */
int pool_ext_resolve(struct dlvm_thin_pool *p, uint64_t vchunk, struct dlvm_thin_pool **owner,
		     uint64_t *chunk, uint16_t *unw, struct dlvm_err *err);
/* The pool may not commit what it changed from now on. */
void pool_break(struct dlvm_thin_pool *p, const struct dlvm_err *err);

/* ---- helpers of the data path, inline: they run for every request ---- */

/* The data area piece of chunk `chunk` at offset `in` for `len` bytes. */
static inline void pool_chunk_piece(struct dlvm_thin_pool *p, uint64_t chunk, uint64_t in,
				    uint64_t len, struct dlvm_map_piece *piece)
{
	dlvm_lv_map_resolve(p->data, chunk * p->chunk_size + in, len, piece);
}
/* The sub-blocks that bytes [in, in + n) of a chunk touch, and those of
 * them it covers whole. */
static inline void pool_sub_span(const struct dlvm_thin_pool *p, uint64_t in, uint64_t n,
				 uint16_t *touched, uint16_t *whole)
{
	uint64_t first = in / p->sub_size, last = (in + n - 1) / p->sub_size;
	uint16_t t = (uint16_t)(((2u << last) - 1) & ~((1u << first) - 1));

	*touched = *whole = t;
	if (in % p->sub_size)
		*whole &= (uint16_t) ~(1u << first);
	if ((in + n) % p->sub_size)
		*whole &= (uint16_t) ~(1u << last);
}

/* From byte in of a chunk with unwritten mask unw: how many of the next n
 * bytes are all unwritten (*zero) or all written. */
static inline uint64_t pool_sub_run(const struct dlvm_thin_pool *p, uint16_t unw, uint64_t in,
				    uint64_t n, bool *zero)
{
	unsigned i = (unsigned)(in / p->sub_size), j = i + 1;

	*zero = (unw >> i) & 1;
	while (j < p->nsub && ((unw >> j) & 1) == *zero)
		j++;
	return DLVM_MIN(n, j * p->sub_size - in);
}
static inline int pool_prep_find(const struct dlvm_thin_pool *p, uint64_t id, uint64_t first,
				 uint64_t end)
{
	for (unsigned i = 0; p->nprep && i < DLVM_THIN_PREP_MAX; i++)
		if (p->prep[i].busy && p->prep[i].id == id && p->prep[i].vchunk >= first &&
		    p->prep[i].vchunk < end)
			return (int)i;
	return -1;
}

/* Wait until no virtual chunk in [first, end) of device id is being
 * prepared (mu held, let go while waiting). */
static inline void pool_prep_wait(struct dlvm_thin_pool *p, uint64_t id, uint64_t first,
				  uint64_t end)
{
	while (pool_prep_find(p, id, first, end) >= 0)
		pthread_cond_wait(&p->prepared, &p->mu);
}

#endif
