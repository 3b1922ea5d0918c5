/* SPDX-License-Identifier: MIT */
/* Internal interfaces between the files of lib/meta. */
#ifndef DLVM_META_INTERNAL_H
#define DLVM_META_INTERNAL_H

#include "dlvm/vg.h"
#include "../util/hmap.h"

/* Geometry of an MDA of the given size. */
void dlvm_mda_geometry(uint64_t mda_size, struct dlvm_mda_header *h);

/* Read the two header slots of the MDA on dev; pick the current one.
 * Fills mda->hdr, mda->slot. */
int dlvm_mda_read_header(struct dlvm_dev *dev, struct dlvm_mda *mda, struct dlvm_err *err);

/*
 * Verify one copy: its checkpoint and the records that follow, without
 * building a model. Sets mda->tail, tail_seq, used, valid. When vg is not
 * NULL, also applies the checkpoint and records to vg (a fresh model).
 */
int dlvm_mda_replay(struct dlvm_dev *dev, struct dlvm_mda *mda, struct dlvm_vg *vg,
		    struct dlvm_err *err);

/* Write a checkpoint of vg (payload already encoded, blob ready) to one copy. */
int dlvm_mda_write_checkpoint(struct dlvm_vg *vg, struct dlvm_pv *pv, const uint8_t *blob,
			      size_t blob_len, struct dlvm_err *err);

/* The edits that follow lv's LV_CREATE in a checkpoint, in out[0..n): its
 * thin attributes, a flatten's rate, its activation records (borrowing
 * lv->holders), each only where it has one. Returns n, at most 3. */
unsigned dlvm_lv_attr_edits(const struct dlvm_lv *lv, struct dlvm_edit out[3]);

/* Encode a checkpoint blob of vg: 4096-aligned buffer, header + payload. */
int dlvm_vg_checkpoint_blob(const struct dlvm_vg *vg, uint8_t **blob, size_t *len,
			    struct dlvm_err *err);

/*
 * Undo a vgcreate: rewrite the header of each of devs[0..n) as an orphan's.
 * err holds why vgcreate failed; if a PV could not be given back and still
 * names the VG (info), the message is extended to say which, why, and that
 * vgremove removes the VG left behind.
 */
void dlvm_vg_create_undo(struct dlvm_dev **devs, size_t n, const struct dlvm_vg_info *info,
			 struct dlvm_err *err);

struct dlvm_vg *dlvm_vg_new(void);
int dlvm_vg_add_lv(struct dlvm_vg *vg, struct dlvm_lv *lv);
void dlvm_vg_del_lv(struct dlvm_vg *vg, struct dlvm_lv *lv);
void dlvm_lv_free(struct dlvm_lv *lv);

/* ---- properties (props.c) ---- */
/* Apply a PROPERTY_SET to vg (checked first; -EBADMSG, -ENOMEM). */
int dlvm_apply_prop(struct dlvm_vg *vg, const struct dlvm_edit *e, struct dlvm_err *err);
/* The inverse of PROPERTY_SET e in *inv (type 0: none). -ENOMEM. */
int dlvm_undo_prop(const struct dlvm_vg *vg, const struct dlvm_edit *e, struct dlvm_edit *inv);
/* Owned PROPERTY_SET edits that recreate p on object id, in *out (NULL when
 * p is empty; release each, then free the array). Returns their count or
 * -ENOMEM. */
int dlvm_props_edits(uint64_t id, const struct dlvm_props *p, struct dlvm_edit **out);
/* Encode p's PROPERTY_SET edits for object id (checkpoints). -ENOMEM. */
int dlvm_props_encode(uint64_t id, const struct dlvm_props *p, struct dlvm_buf *out);

/* ---- the undo of a transaction (undo.c) ---- */
/* The inverse of an edit, taken from the model before the edit is applied. */
struct undo {
	struct dlvm_edit inv; /* type 0: nothing to undo */
	/* LV_REMOVE: after inv (its LV_CREATE), the LV's other attributes, as
	 * a checkpoint would write them */
	struct dlvm_edit more[3];
	unsigned nmore;
	struct dlvm_edit *props; /* LV_REMOVE: its properties, owned */
	unsigned nprops;
	struct dlvm_dev *dev; /* PV_REMOVE: what the removed PV had */
	struct dlvm_pv_header hdr;
	struct dlvm_mda mda;
};
/* Take into u the inverse of e from vg, before e is applied. -ENOMEM. */
int dlvm_undo_make(const struct dlvm_vg *vg, const struct dlvm_edit *e, struct undo *u);
/* Undo the first n applied edits of undo, newest first (info: the VG info
 * before the transaction), and release them. */
void dlvm_undo_all(struct dlvm_vg *vg, const struct dlvm_vg_info *info, struct undo *undo,
		   size_t n);
void dlvm_undo_release(struct undo *u);

#endif
