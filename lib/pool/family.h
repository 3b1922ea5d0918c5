/* SPDX-License-Identifier: MIT */
/*
 * Families of a shared VG's thin pool (docs/thin.md, "Families"): the journal
 * edits that create a family (a metadata LV with its store, a data LV of one
 * slab, the thin LV), hand it more slabs and give them back when it goes.
 * The caller holds the VG lease (commands, the host agent).
 */
#ifndef DLVM_POOL_FAMILY_H
#define DLVM_POOL_FAMILY_H

#include <stdint.h>

#include "dlvm/thinpool.h"
#include "dlvm/vg.h"

#define DEFAULT_CHUNK (64u << 10)
#define META_MIN (4ull << 20)

/* Extents per slab of a new pool of `extents` extents in a shared VG:
 * 256 MiB, less for a small pool so that it has 16 slabs, at least one
 * chunk, a whole number of chunks. */
uint32_t slab_extents_for(uint64_t extents, uint64_t es, uint32_t chunk);
/* Metadata bytes of a new family with vchunks virtual chunks in a pool of
 * pool_chunks. */
uint64_t family_meta_bytes(uint64_t vchunks, uint64_t pool_chunks);
/* Add to t the edits moving one slab from the end of pool to the end of
 * family data LV `data` (NULL: a new data LV of id data_id for family
 * meta_id). -ENOSPC "Thin pool vg/pool (SIZE) has no free slab left: ...". */
int slab_move_edits(struct dlvm_vg *vg, const struct dlvm_lv *pool, const struct dlvm_lv *data,
		    uint64_t data_id, uint64_t meta_id, struct dlvm_txn *t, struct dlvm_err *err);
/* Add to t the edits removing family meta_id and giving its slabs back. */
int family_remove_edits(struct dlvm_vg *vg, uint64_t meta_id, struct dlvm_txn *t,
			struct dlvm_err *err);
/* Forget the open stores of family meta_id (its LVs are going). */
void family_forget(struct dlvm_vg *vg, uint64_t meta_id);
/* A family store opened for a command and used by no map: closed again, so
 * that no host keeps a stale copy of a store another host may write next. */
void family_release(struct dlvm_vg *vg, struct dlvm_thin_pool *p);
/* The two edits that record thin LV id: LV_CREATE (a new uuid, now as its
 * creation time) and LV_SET_THIN. */
void thin_lv_edits(struct dlvm_edit *ce, struct dlvm_edit *te, uint64_t id, const char *lvname,
		   uint64_t flags, const struct dlvm_lv_thin *thin);
/* A new thin LV of a shared VG's pool plv: a family of its own, one
 * transaction (the store is formatted first, on extents nobody owns yet). */
int family_create(struct dlvm_vg *vg, struct dlvm_lv *plv, const char *lvname, uint64_t vsize,
		  uint64_t origin_id, struct dlvm_err *err);

#endif
