/* SPDX-License-Identifier: MIT */
/*
 * The in-memory model of a volume group and the metadata store behind it.
 *
 * A struct dlvm_vg is loaded from the metadata areas of its PVs
 * (dlvm_vg_load), changed only through transactions (dlvm_txn_*: edits are
 * made durable in every metadata copy first, then applied to the model), and
 * freed with dlvm_vg_free. It is not thread safe: callers serialise access
 * (dlvmd holds a mutex per VG; the CLI holds flocks on every PV).
 */
#ifndef DLVM_VG_H
#define DLVM_VG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dlvm/dev.h"
#include "dlvm/err.h"
#include "dlvm/format.h"
#include "dlvm/util.h"

struct dlvm_hmap;
struct dlvm_vg_runtime;

struct dlvm_free_range {
	uint64_t start, count; /* physical extents */
};

/* One metadata copy (the MDA of one PV) and where its journal ends. */
struct dlvm_mda {
	struct dlvm_mda_header hdr; /* current header slot */
	unsigned slot;              /* 0 or 1: slot hdr was read from */
	uint64_t tail;              /* ring offset where the next record goes */
	uint64_t tail_seq;          /* last sequence number in this copy */
	uint64_t used;              /* ring bytes used since the checkpoint */
	bool valid;                 /* header and checkpoint decoded */
	bool in_sync;               /* tail_seq == vg->seq: receives appends */
	struct dlvm_mda_header alt; /* the other header slot, when it decodes */
	bool has_alt;
	bool fallback;                  /* read from alt: the current checkpoint is damaged */
	char problem[DLVM_ERR_MSG_MAX]; /* why not valid / not in sync */
};

struct dlvm_pv {
	struct dlvm_pv_desc d;     /* as recorded in the VG metadata */
	struct dlvm_pv_header hdr; /* label read from the device */
	struct dlvm_dev *dev;      /* NULL when the PV is missing */
	struct dlvm_mda mda;
	struct dlvm_free_range *free; /* sorted by start, non-adjacent */
	size_t nfree, capfree;
	uint64_t pe_alloc; /* extents in use */
};

/* Key/value properties of an LV or of the VG (PROPERTY_SET edits), sorted
 * by key; both strings owned, at most DLVM_PROP_MAX of them. */
struct dlvm_prop {
	char *key, *value;
};
struct dlvm_props {
	struct dlvm_prop *v;
	uint32_t n;
};

struct dlvm_lv {
	uint64_t id;
	uint8_t uuid[16];
	char name[DLVM_NAME_MAX + 1];
	uint64_t flags; /* DLVM_LV_* */
	uint64_t ctime;
	uint64_t le_count; /* size in extents */
	uint32_t nseg;
	struct dlvm_seg_desc **segs;    /* ordered by le_start, contiguous */
	struct dlvm_lv_thin thin;       /* DLVM_LV_THIN_POOL / DLVM_LV_THIN attributes */
	uint32_t nholders;              /* shared VGs: activation records */
	struct dlvm_lv_holder *holders; /* sorted by host id, owned */
	uint64_t copy_rate;             /* a flatten's limit, bytes per second; 0 none */
	struct dlvm_props props;        /* PROPERTY_SET */
	size_t index;                   /* position in vg->lvs */
};

struct dlvm_vg {
	struct dlvm_vg_info info;
	uint64_t seq; /* last applied transaction */
	struct dlvm_pv **pvs;
	size_t npv;
	struct dlvm_lv **lvs; /* unordered; lv->index is the position */
	size_t nlv, caplv;
	struct dlvm_hmap *by_name;           /* the LVs by name (lib/util/hmap.h), owned */
	struct dlvm_hmap *by_id;             /* the LVs by id, owned */
	struct dlvm_props props;             /* the VG's own properties */
	bool readonly;                       /* every metadata change is refused */
	char readonly_why[DLVM_ERR_MSG_MAX]; /* the message it is refused with ("" for
					       * the generic one) */
	/* What the layers above keep for this VG while it is loaded (open thin
	 * stores, a shared VG's fence: dlvm/runtime.h). Opaque to lib/meta,
	 * which frees it only through runtime_release, set by its owner. */
	struct dlvm_vg_runtime *runtime;
	void (*runtime_release)(struct dlvm_vg_runtime *rt);
};

/* ---- loading ---- */

/*
 * Find the VGs on a set of open devices. For each device, *vg_names receives
 * the name of the VG it belongs to (or NULL for an orphan PV or a device
 * without a label), in the order of devs. Each VG found is loaded to learn
 * its name (to load them all, dlvm_vg_load_all does it in one pass). Devices
 * with damaged labels get a message in problems[i] (caller-allocated array of
 * n dlvm_err, may be NULL).
 */
int dlvm_scan(struct dlvm_dev **devs, size_t n, char **vg_names, struct dlvm_err *problems);

/*
 * Load the VG `name` (or, when name is NULL, the one VG on devs) from devs.
 * The devices that belong to it are moved into the VG (their slots in devs
 * become NULL); the others are left to the caller. Every metadata copy is
 * read; the one with the highest sequence number wins, the others are marked
 * stale or damaged in pv->mda. -ENOENT if no such VG, -EBADMSG if no copy is
 * readable (message names each copy's problem), -ENOTSUP for unknown
 * incompatible features.
 */
int dlvm_vg_load(struct dlvm_dev **devs, size_t n, const char *name, struct dlvm_vg **out,
		 struct dlvm_err *err);

/*
 * Load every VG on devs, each once: what dlvm_scan followed by dlvm_vg_load
 * of each name it found gives, at the cost of one load per VG. *vgs (n_vgs
 * entries, free the array and each VG) lists the VGs in the order of their
 * first device in devs; their devices are moved into them (slots become
 * NULL). The devices left are orphan PVs, devices without a label, and
 * devices whose label or metadata header is damaged or whose VG does not
 * load: each of these has its message in problems[i] (n entries the caller
 * zeroed, may be NULL), which stays zero for every other device. Two VGs of
 * the same name both load. 0, or -ENOMEM (nothing loaded, devs untouched).
 */
int dlvm_vg_load_all(struct dlvm_dev **devs, size_t n, struct dlvm_vg ***vgs, size_t *n_vgs,
		     struct dlvm_err *problems);

/* Free vg: its runtime first (runtime_release, while the devices are still
 * open), then the model, closing its PVs' devices. NULL is ignored. */
void dlvm_vg_free(struct dlvm_vg *vg);

/* Hang runtime rt on vg, which has none, with the function that frees it
 * (dlvm_vg_free calls release(rt)). The caller (the context) keeps it
 * there for as long as the VG is loaded. */
void dlvm_vg_attach_runtime(struct dlvm_vg *vg, struct dlvm_vg_runtime *rt,
			    void (*release)(struct dlvm_vg_runtime *rt));
/* Hand from's runtime (and its release function) over to `to`, which has
 * none: a reload's new model goes on with the old one's open stores and
 * fence. from is left without a runtime. */
void dlvm_vg_move_runtime(struct dlvm_vg *from, struct dlvm_vg *to);

/*
 * Has another writer (another host of a shared VG) committed since vg was
 * loaded? Reads the MDA header slots and the sector at the journal tail of
 * one in-sync copy: two small reads. *changed may be a false alarm (a reload
 * tells), never a miss of a committed record. 0 or -errno from the device.
 */
int dlvm_vg_poll(struct dlvm_vg *vg, bool *changed, struct dlvm_err *err);

/* ---- PV labels ---- */

struct dlvm_pvcreate_opts {
	uint64_t mda_size;    /* 0: default */
	uint32_t sector_size; /* 0: the device's */
};
/* Write a PV label and an empty MDA onto dev (which must not belong to a VG;
 * the caller checks foreign signatures). */
int dlvm_pv_format(struct dlvm_dev *dev, const struct dlvm_pvcreate_opts *opts,
		   struct dlvm_err *err);
/* What dlvm_pv_format would refuse for dev and opts (size, sector size,
 * metadata size), without writing anything. */
int dlvm_pv_format_check(const struct dlvm_dev *dev, const struct dlvm_pvcreate_opts *opts,
			 struct dlvm_err *err);
/* Read and decode the label; -ENODATA when there is none. */
int dlvm_pv_read_header(struct dlvm_dev *dev, struct dlvm_pv_header *h, struct dlvm_err *err);
/* Detach a PV's metadata area from its VG (vgreduce, vgremove): write a new
 * header slot that names no VG. */
int dlvm_pv_make_orphan(struct dlvm_dev *dev, struct dlvm_err *err);
/* Erase the label and the MDA header slots. */
int dlvm_pv_wipe(struct dlvm_dev *dev, struct dlvm_err *err);
/*
 * A PV header, or an MDA header slot that decodes, with read-only-compatible
 * features this build does not know may be read but is never rewritten
 * (pvcreate -f, a forced reinitialisation, is the exception). Returns
 * -EROFS with a message naming the device, the structure and the bits
 * ("pv0.img: PV header at offset 4096: unknown read-only-compatible
 * features 0x4 (written by a newer dlvm)") if ph or, when mda is not NULL,
 * mda->hdr or mda->alt (when mda->has_alt) has such bits; else 0.
 */
int dlvm_pv_check_ro_compat(const struct dlvm_dev *dev, const struct dlvm_pv_header *ph,
			    const struct dlvm_mda *mda, struct dlvm_err *err);

/* 0 if vg's metadata may be changed; else -EROFS with the reason (unknown
 * read-only-compatible features of the VG or of one of its PVs, or a
 * commit that failed on every copy). */
int dlvm_vg_writable(const struct dlvm_vg *vg, struct dlvm_err *err);

/* ---- lookup ---- */
struct dlvm_lv *dlvm_lv_find(const struct dlvm_vg *vg, const char *name);
struct dlvm_lv *dlvm_lv_find_id(const struct dlvm_vg *vg, uint64_t id);
struct dlvm_pv *dlvm_pv_find_id(const struct dlvm_vg *vg, uint32_t id);
uint64_t dlvm_vg_free_extents(const struct dlvm_vg *vg);
uint64_t dlvm_vg_total_extents(const struct dlvm_vg *vg);

/* ---- transactions ---- */

/* A transaction: a list of edits, committed atomically. */
struct dlvm_txn {
	struct dlvm_edit *edits;
	size_t n, cap;
};
void dlvm_txn_init(struct dlvm_txn *t);
/* Append an edit; the transaction takes ownership of e's allocations. */
int dlvm_txn_add(struct dlvm_txn *t, struct dlvm_edit *e);
void dlvm_txn_release(struct dlvm_txn *t);

/*
 * Make a transaction durable in every in-sync metadata copy (checkpointing
 * first when the journal ring is half full), then apply it to vg. On error
 * nothing is applied and the on-disk state is the old one or, if a write
 * reached some copies, the new one after a reload. -ENOSPC when the metadata
 * area is too small for the VG.
 */
int dlvm_txn_commit(struct dlvm_vg *vg, struct dlvm_txn *t, struct dlvm_err *err);

/* Commit a transaction of the one edit e (the commit takes ownership of
 * e's allocations, whatever the result). Same results as dlvm_txn_commit. */
int dlvm_txn_commit_edit(struct dlvm_vg *vg, struct dlvm_edit *e, struct dlvm_err *err);

/* Apply one edit to the model (used by replay and commit). -EBADMSG if the
 * edit does not fit the model (an LV that does not exist, a used extent). */
int dlvm_vg_apply(struct dlvm_vg *vg, const struct dlvm_edit *e, struct dlvm_err *err);

/*
 * Create a VG on freshly formatted PVs: write a checkpoint of the new VG into
 * every PV's MDA. On success *out is the loaded VG owning the devices.
 */
int dlvm_vg_create(const char *name, uint64_t extent_size, struct dlvm_dev **devs, size_t n,
		   struct dlvm_vg **out, struct dlvm_err *err);

/* Write a fresh checkpoint of vg into every (or, with only_stale, every
 * stale or damaged) metadata copy. Used by vgextend/vgreduce and repair. */
int dlvm_vg_checkpoint(struct dlvm_vg *vg, bool only_stale, struct dlvm_err *err);

/* Encode the whole VG as a checkpoint payload (edit stream). */
int dlvm_vg_encode_state(const struct dlvm_vg *vg, struct dlvm_buf *out);

/* ---- extent allocation (alloc.c) ---- */

/*
 * Choose extents for `extents` more logical extents of lv (lv may be NULL for
 * a new LV; then le_start is 0) with `stripes` stripes of stripe_size bytes.
 * Returns new segments (caller owns: free each, then the array) without
 * changing the model. Linear: contiguous if possible (best fit), else the
 * fewest pieces; an extend continues the last segment's PV when it can.
 * Striped: each stripe on a different PV, extents a multiple of stripes.
 * `pvs`/`npvs` restrict the PVs (NULL: all). -ENOSPC with free and needed
 * extents in the message.
 */
int dlvm_alloc(const struct dlvm_vg *vg, const struct dlvm_lv *lv, uint64_t extents,
	       uint16_t stripes, uint32_t stripe_size, const uint32_t *pvs, size_t npvs,
	       struct dlvm_seg_desc ***segs_out, uint32_t *nseg_out, struct dlvm_err *err);

/* Free-space bookkeeping used by apply: mark [start, start+count) used or
 * free on pv; -EBADMSG if the range is already used / not used. */
int dlvm_pv_take(struct dlvm_pv *pv, uint64_t start, uint64_t count);
int dlvm_pv_give(struct dlvm_pv *pv, uint64_t start, uint64_t count);

/* Deep copy of a segment list (for edits). */
int dlvm_segs_dup(struct dlvm_seg_desc *const *segs, uint32_t n, struct dlvm_seg_desc ***out);
void dlvm_segs_free(struct dlvm_seg_desc **segs, uint32_t n);

/* ---- model helpers (lvutil.c) ---- */

/* Make e the LV_CREATE of a new LV: id, a new UUID, name, flags, now as its
 * creation time. Its segments (e->u.lv.segs, nseg) are left as they are,
 * so an allocation may fill them before or after. */
void dlvm_lv_create_edit(struct dlvm_edit *e, uint64_t id, const char *name, uint64_t flags);
/* dlvm_txn_add with a message: -ENOMEM "out of memory" in err. */
int dlvm_txn_push(struct dlvm_txn *t, struct dlvm_edit *e, struct dlvm_err *err);
/* Size of an LV in bytes (the virtual size of a thin LV; a shared VG's
 * pool counts the slabs it handed out). */
uint64_t dlvm_lv_bytes(const struct dlvm_vg *vg, const struct dlvm_lv *lv);
/* Cut lv's segment list down to `keep` extents (a copy). -ENOMEM. */
int dlvm_segs_cut(const struct dlvm_lv *lv, uint64_t keep, struct dlvm_seg_desc ***out,
		  uint32_t *nout);
/* Append segments b (taken: the entries become NULL) after a copy of a,
 * merging a linear segment into the previous one when the areas are
 * adjacent on the same PV. -ENOMEM. */
int dlvm_segs_join(struct dlvm_seg_desc *const *a, uint32_t na, struct dlvm_seg_desc **b,
		   uint32_t nb, struct dlvm_seg_desc ***out, uint32_t *nout);
/* Grow lv by `more` extents (rounded up to whole rows of `stripes`) from
 * the VG's free extents (only PVs pvs[0..npvs) when npvs > 0), one journal
 * transaction. Errors of dlvm_alloc and dlvm_txn_commit. */
int dlvm_lv_extend(struct dlvm_vg *vg, struct dlvm_lv *lv, uint64_t more, uint16_t stripes,
		   uint32_t stripe_size, const uint32_t *pvs, size_t npvs, struct dlvm_err *err);
/* The hidden LV holding the lease area of a shared VG, or NULL. */
struct dlvm_lv *dlvm_vg_lockspace_lv(const struct dlvm_vg *vg);
/* Internal LVs (hidden, lockspace) that users do not change. */
bool dlvm_lv_is_internal(const struct dlvm_lv *lv);
/* Can the LV be exported over NBD (not internal, not a thin pool)? */
bool dlvm_lv_exportable(const struct dlvm_lv *lv);
/* -EPERM "vg/lvmlock: cannot WHAT [lvmlock]: ..." for an internal LV, else 0. */
int dlvm_lv_refuse_internal(const struct dlvm_vg *vg, const struct dlvm_lv *lv, const char *what,
			    struct dlvm_err *err);

/* ---- properties (props.c) ---- */
/* The value of key in p, borrowed until the next change; NULL if absent. */
const char *dlvm_prop_get(const struct dlvm_props *p, const char *key);
/* The properties of object id (an LV id; 0: the VG), or NULL if no such LV. */
const struct dlvm_props *dlvm_props_of(const struct dlvm_vg *vg, uint64_t id);
/*
 * Append to t the edit that sets key to value (value NULL: deletes key) on
 * object id (an LV id, 0: the VG), and, the first time a property is
 * written in vg, a VG_INFO that adds DLVM_RO_COMPAT_PROPERTIES (once per
 * transaction). The key and value are checked first (dlvm_prop_check):
 * -EINVAL with the message, nothing added. -ENOMEM.
 */
int dlvm_txn_push_prop(const struct dlvm_vg *vg, struct dlvm_txn *t, uint64_t id, const char *key,
		       const char *value, struct dlvm_err *err);
/* Free what p holds and empty it. */
void dlvm_props_release(struct dlvm_props *p);

/* ---- consistency check (check.c) ---- */
/* Verify every copy and checksum, that no extent is used twice and that free
 * space adds up; with repair, rewrite stale/damaged copies from the model. */
int dlvm_vg_check(struct dlvm_vg *vg, bool repair, struct dlvm_check_report *rep,
		  struct dlvm_err *err);

#endif
