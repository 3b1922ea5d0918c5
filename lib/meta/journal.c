/* SPDX-License-Identifier: MIT */
/*
 * The metadata journal: reading a copy (header slots, checkpoint, records),
 * appending transaction records and writing checkpoints. See docs/format.md
 * for the layout and docs/metadata.md for why it is crash safe.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dlvm/debug.h"
#include "dlvm/fence.h"
#include "dlvm/runtime.h"
#include "dlvm/util.h"
#include "meta.h"

#define RING_WINDOW (1u << 20)

static uint64_t mda_base(const struct dlvm_pv *pv)
{
	return pv->hdr.mda_offset;
}

/* Bytes of the metadata area on dev: the label's mda_size (checked against the
 * device when the label is read), or all of the device after DLVM_MDA_OFFSET. */
static uint64_t mda_area(struct dlvm_dev *dev)
{
	struct dlvm_pv_header ph;

	if (!dlvm_pv_read_header(dev, &ph, NULL))
		return ph.mda_size;
	return dev->size > DLVM_MDA_OFFSET ? dev->size - DLVM_MDA_OFFSET : 0;
}

int dlvm_mda_read_header(struct dlvm_dev *dev, struct dlvm_mda *mda, struct dlvm_err *err)
{
	struct dlvm_mda_header h[2];
	struct dlvm_err e[2] = { 0 };
	uint8_t *buf = dlvm_io_alloc(2 * DLVM_BLOCK);
	int r[2];

	if (!buf)
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	int rr = dlvm_dev_read(dev, buf, 2 * DLVM_BLOCK, DLVM_MDA_OFFSET, err);
	if (rr) {
		free(buf);
		return rr;
	}
	for (int i = 0; i < 2; i++)
		r[i] = dlvm_mda_header_decode(buf + i * DLVM_BLOCK, &h[i], &e[i]);
	free(buf);
	/* a slot that decodes must also fit the area the label gives it (or,
	 * without a label, the device), before anything is read or allocated by it */
	uint64_t area = mda_area(dev);
	for (int i = 0; i < 2; i++)
		if (!r[i])
			r[i] = dlvm_mda_header_check_area(&h[i], area, &e[i]);
	/* a slot that checksums but is of a newer format (version, unknown
	 * incompatible features) may well be the newer one: its generation is
	 * not known, so the other slot's older state must not be used either */
	for (int i = 0; i < 2; i++)
		if (r[i] == -ENOTSUP)
			return dlvm_err_set(err, -ENOTSUP,
					    "%s: metadata header slot at offset %u: %s", dev->name,
					    DLVM_MDA_OFFSET + (unsigned)i * DLVM_BLOCK, e[i].msg);
	if (r[0] && r[1])
		return dlvm_err_set(err, r[0],
				    "%s: metadata header slots at offsets %u and %u are "
				    "both unreadable: %s; %s",
				    dev->name, DLVM_MDA_OFFSET, DLVM_MDA_OFFSET + DLVM_BLOCK,
				    e[0].msg, e[1].msg);
	int pick = r[0] ? 1 : r[1] ? 0 : (h[1].generation > h[0].generation ? 1 : 0);
	mda->hdr = h[pick];
	mda->slot = (unsigned)pick;
	mda->has_alt = !r[pick ^ 1];
	if (mda->has_alt)
		mda->alt = h[pick ^ 1];
	mda->fallback = false;
	return 0;
}

/* Reads ring bytes through a window so replay does one I/O per MiB. */
struct ring_reader {
	struct dlvm_dev *dev;
	uint64_t ring_abs; /* device offset of the ring */
	uint64_t ring_size;
	uint8_t *win;
	uint64_t win_off; /* ring offset of win[0] */
	size_t win_len;
	size_t win_cap; /* bytes allocated at win */
};

/* Make [off, off+len) of the ring readable; returns a pointer or NULL. */
static const uint8_t *ring_at(struct ring_reader *rr, uint64_t off, size_t len,
			      struct dlvm_err *err)
{
	if (off + len > rr->ring_size)
		return NULL;
	if (rr->win_len && off >= rr->win_off && off + len <= rr->win_off + rr->win_len)
		return rr->win + (off - rr->win_off);
	uint64_t start = off / DLVM_BLOCK * DLVM_BLOCK;
	size_t n = (size_t)DLVM_MIN((uint64_t)RING_WINDOW, rr->ring_size - start);
	if (off + len > start + n) {
		/* a record larger than the window: read exactly it */
		n = (size_t)dlvm_align_up(off + len - start, DLVM_BLOCK);
		if (start + n > rr->ring_size)
			return NULL;
		free(rr->win);
		rr->win = dlvm_io_alloc(n);
		if (!rr->win) {
			rr->win_len = 0;
			dlvm_err_set(err, -ENOMEM, "out of memory");
			return NULL;
		}
		rr->win_cap = n;
	} else if (rr->win_cap < n) {
		free(rr->win);
		rr->win = dlvm_io_alloc(n);
		rr->win_cap = rr->win ? n : 0;
		if (!rr->win) {
			rr->win_len = 0;
			dlvm_err_set(err, -ENOMEM, "out of memory");
			return NULL;
		}
	}
	if (dlvm_dev_read(rr->dev, rr->win, n, rr->ring_abs + start, err)) {
		rr->win_len = 0;
		return NULL;
	}
	rr->win_off = start;
	rr->win_len = n;
	return rr->win + (off - start);
}

/*
 * After the journal stopped at `from`: is there an intact record of this VG
 * with a higher sequence number within the next RING_WINDOW bytes? A torn
 * write can only hit the last record, so a later intact record means the one
 * at `from` was damaged afterwards: corruption, not the end of the journal.
 */
static bool later_record(struct ring_reader *rr, uint64_t from, uint32_t ss, const uint8_t uuid[16],
			 uint64_t expect, uint64_t *found_seq)
{
	uint64_t pos = from + ss;

	for (uint64_t scanned = 0; scanned < RING_WINDOW; scanned += ss, pos += ss) {
		struct dlvm_err e = { 0 };
		struct dlvm_blob_header bh;
		if (pos >= rr->ring_size)
			pos = 0;
		const uint8_t *p = ring_at(rr, pos, ss, &e);
		if (!p)
			return false;
		if (memcmp(p, DLVM_REC_MAGIC, 8) || memcmp(p + 16, uuid, 16) ||
		    dlvm_get_le64(p + 32) <= expect)
			continue;
		size_t total = (size_t)dlvm_align_up((uint64_t)DLVM_BLOB_HEADER_SIZE +
								     dlvm_get_le32(p + 44),
						     ss);
		if (total > rr->ring_size - pos)
			continue;
		p = ring_at(rr, pos, total, &e);
		if (p && !dlvm_blob_decode(p, total, DLVM_REC_MAGIC, &bh, &e)) {
			*found_seq = bh.seq;
			return true;
		}
	}
	return false;
}

static int apply_payload(struct dlvm_vg *vg, const uint8_t *p, size_t len, const char *where,
			 struct dlvm_err *err)
{
	size_t pos = 0;
	int r;

	while (pos < len) {
		struct dlvm_edit e;
		if ((r = dlvm_edit_decode(p, len, &pos, &e, err)))
			return dlvm_err_prefix(err, r, "%s: ", where);
		r = dlvm_vg_apply(vg, &e, err);
		dlvm_edit_release(&e);
		if (r)
			return dlvm_err_prefix(err, r, "%s: ", where);
	}
	return 0;
}

/* Read and check the checkpoint header h names, and apply it to vg (when
 * not NULL). *ckpt_bad: the failure is the checkpoint's, so the older one
 * may serve. */
static int replay_checkpoint(struct dlvm_dev *dev, const struct dlvm_mda_header *h,
			     struct dlvm_vg *vg, bool *ckpt_bad, struct dlvm_err *err)
{
	uint64_t ck_abs = DLVM_MDA_OFFSET + h->ckpt_offset + h->ckpt_slot * h->ckpt_size;
	size_t cklen = (size_t)dlvm_align_up(h->ckpt_len, DLVM_BLOCK);
	struct dlvm_blob_header bh;
	char where[160];
	uint8_t *ck;
	int r;

	snprintf(where, sizeof(where), "%s: checkpoint at offset %" PRIu64, dev->name, ck_abs);
	if (!(ck = dlvm_io_alloc(cklen)))
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	/* from here on, a failure is the checkpoint's: the older one may serve */
	*ckpt_bad = true;
	if ((r = dlvm_dev_read(dev, ck, cklen, ck_abs, err)))
		goto out;
	if (dlvm_crc32c(ck, (size_t)h->ckpt_len) != h->ckpt_crc) {
		r = dlvm_err_set(err, -EBADMSG, "%s: checksum mismatch", where);
		goto out;
	}
	if ((r = dlvm_blob_decode(ck, (size_t)h->ckpt_len, DLVM_CKPT_MAGIC, &bh, err))) {
		dlvm_err_prefix(err, r, "%s: ", where);
		goto out;
	}
	if (memcmp(bh.vg_uuid, h->vg_uuid, 16) || bh.seq != h->ckpt_seq) {
		r = dlvm_err_set(err, -EBADMSG,
				 "%s: belongs to another VG or sequence (%" PRIu64
				 ", header says %" PRIu64 ")",
				 where, bh.seq, h->ckpt_seq);
		goto out;
	}
	*ckpt_bad = false;
	r = vg ? apply_payload(vg, ck + DLVM_BLOB_HEADER_SIZE, bh.payload_len, where, err) : 0;
out:
	free(ck);
	return r;
}

/*
 * Replay one copy from mda->hdr. With `resume` (the newer header slot, whose
 * checkpoint is damaged), the records after mda->hdr's checkpoint are
 * followed only up to resume's checkpoint sequence; from there the journal
 * continues where resume says it does (resume->journal_start), which is not
 * always where the older journal ran on to (a repair starts a new journal at
 * ring offset 0). *bridged tells whether that point was reached.
 */
static int replay(struct dlvm_dev *dev, struct dlvm_mda *mda, struct dlvm_vg *vg,
		  const struct dlvm_mda_header *resume, bool *bridged, bool *ckpt_bad,
		  struct dlvm_err *err)
{
	const struct dlvm_mda_header *h = &mda->hdr;
	struct ring_reader rr = { 0 };
	struct dlvm_blob_header bh;
	uint32_t ss = 512;
	char where[160];
	int r;

	mda->valid = false;
	mda->in_sync = false;
	{
		struct dlvm_pv_header ph;
		if (!dlvm_pv_read_header(dev, &ph, NULL))
			ss = ph.sector_size;
	}
	if ((r = replay_checkpoint(dev, h, vg, ckpt_bad, err)))
		return r;

	/* records */
	rr.dev = dev;
	rr.ring_abs = DLVM_MDA_OFFSET + h->ring_offset;
	rr.ring_size = h->ring_size;
	uint64_t pos = h->journal_start, used = 0, expect = h->ckpt_seq + 1;
	bool wrapped_here = false;
	for (;;) {
		struct dlvm_err rec_err = { 0 };
		if (resume && !*bridged && expect == resume->ckpt_seq + 1) {
			pos = resume->journal_start;
			used = 0;
			wrapped_here = false;
			*bridged = true;
		}
		if (pos >= rr.ring_size)
			pos = 0;
		const uint8_t *p = ring_at(&rr, pos, ss, &rec_err);
		if (!p && rec_err.code) {
			r = dlvm_err_set(err, rec_err.code, "%s", rec_err.msg);
			goto out;
		}
		bool end = !p || memcmp(p, DLVM_REC_MAGIC, 8);
		size_t total = 0;
		if (!end) {
			uint32_t plen = dlvm_get_le32(p + 44);
			total = (size_t)dlvm_align_up((uint64_t)DLVM_BLOB_HEADER_SIZE + plen, ss);
			end = total > rr.ring_size - pos;
		}
		if (!end) {
			p = ring_at(&rr, pos, total, &rec_err);
			if (!p && rec_err.code) {
				r = dlvm_err_set(err, rec_err.code, "%s", rec_err.msg);
				goto out;
			}
			/* torn or stale: the journal ends here, unless more follows */
			end = !p || dlvm_blob_decode(p, total, DLVM_REC_MAGIC, &bh, &rec_err) ||
			      memcmp(bh.vg_uuid, h->vg_uuid, 16) || bh.seq != expect;
		}
		if (end) {
			uint64_t later;
			if (later_record(&rr, pos, ss, h->vg_uuid, expect, &later)) {
				r = dlvm_err_set(err, -EBADMSG,
						 "%s: journal record %" PRIu64 " at offset %" PRIu64
						 " is damaged but record %" PRIu64 " follows it",
						 dev->name, expect, rr.ring_abs + pos, later);
				goto out;
			}
			break;
		}
		if (bh.type == DLVM_REC_WRAP) {
			if (pos == 0 || wrapped_here)
				break;
			used += rr.ring_size - pos;
			pos = 0;
			wrapped_here = true;
			continue;
		}
		if (bh.type != DLVM_REC_TXN) {
			r = dlvm_err_set(err, -ENOTSUP,
					 "%s: journal record %" PRIu64 " at ring "
					 "offset %" PRIu64 " has unknown type %u",
					 dev->name, bh.seq, pos, bh.type);
			goto out;
		}
		wrapped_here = false;
		if (vg) {
			snprintf(where, sizeof(where),
				 "%s: journal record %" PRIu64 " at offset %" PRIu64, dev->name,
				 bh.seq, rr.ring_abs + pos);
			if ((r = apply_payload(vg, p + DLVM_BLOB_HEADER_SIZE, bh.payload_len, where,
					       err)))
				goto out;
		}
		pos += total;
		used += total;
		expect++;
		if (used > rr.ring_size)
			break; /* cannot happen with a sane writer; never loop forever */
	}
	mda->tail = pos >= rr.ring_size ? 0 : pos;
	mda->tail_seq = expect - 1;
	mda->used = used;
	mda->valid = true;
	if (vg)
		vg->seq = mda->tail_seq;
	r = 0;
out:
	free(rr.win);
	return r;
}

/*
 * Replay a copy from its older header slot (mda->hdr) up to the sequence of
 * the newer slot's damaged checkpoint (mda->alt), then the journal after
 * that checkpoint. Every record on the way is verified as usual.
 */
static int replay_older(struct dlvm_dev *dev, struct dlvm_mda *mda, struct dlvm_vg *vg,
			const char *why, struct dlvm_err *err)
{
	struct dlvm_mda_header newer = mda->alt;
	struct dlvm_err e = { 0 };
	bool bridged = false, bad = false;
	int r = replay(dev, mda, vg, &newer, &bridged, &bad, &e);

	if (r)
		return dlvm_err_set(err, r, "%s; the older checkpoint does not help: %s", why,
				    e.msg);
	if (!bridged) {
		mda->valid = false;
		return dlvm_err_set(err, -EBADMSG,
				    "%s; the journal after the older checkpoint ends "
				    "at sequence %" PRIu64 ", before %" PRIu64,
				    why, mda->tail_seq, newer.ckpt_seq);
	}
	return 0;
}

/*
 * A copy whose current checkpoint is damaged or unreadable is read from the
 * older header slot instead: its checkpoint is the one before (the next
 * checkpoint goes to the other checkpoint region, so it is intact) and its
 * journal runs on through the records up to the damaged checkpoint's
 * sequence, which a copy keeps until its next checkpoint. From there the
 * journal is the newer header's: usually the same records, but a repair
 * starts a new journal at ring offset 0. The result counts only when the
 * older journal reaches that sequence; otherwise the copy is unreadable as
 * before. The copy is then marked fallback, with hdr the older slot and alt
 * the newer one, and replays the same way again (the second pass of a load).
 */
int dlvm_mda_replay(struct dlvm_dev *dev, struct dlvm_mda *mda, struct dlvm_vg *vg,
		    struct dlvm_err *err)
{
	struct dlvm_err e0 = { 0 };
	bool ckpt_bad = false, unused = false;
	const struct dlvm_mda_header *h = &mda->hdr, *a = &mda->alt;

	if (mda->fallback)
		return replay_older(dev, mda, vg, mda->problem, err);
	int r = replay(dev, mda, vg, NULL, &unused, &ckpt_bad, &e0);
	if (!r)
		return 0;
	if (!ckpt_bad || !mda->has_alt || memcmp(a->vg_uuid, h->vg_uuid, 16) ||
	    a->generation >= h->generation || a->ckpt_slot == h->ckpt_slot ||
	    a->ckpt_seq > h->ckpt_seq || a->mda_size != h->mda_size ||
	    a->ckpt_offset != h->ckpt_offset || a->ckpt_size != h->ckpt_size ||
	    a->ring_offset != h->ring_offset || a->ring_size != h->ring_size)
		return dlvm_err_set(err, r, "%s", e0.msg);
	struct dlvm_mda try = *mda;
	try.hdr = mda->alt;
	try.alt = mda->hdr;
	try.slot = mda->slot ^ 1u;
	if ((r = replay_older(dev, &try, vg, e0.msg, err))) {
		mda->valid = false;
		return r;
	}
	snprintf(try.problem, sizeof(try.problem),
		 "%s; read from the older checkpoint "
		 "(sequence %" PRIu64 ") and the journal",
		 e0.msg, try.hdr.ckpt_seq);
	try.fallback = true;
	*mda = try;
	return 0;
}

int dlvm_vg_checkpoint_blob(const struct dlvm_vg *vg, uint8_t **blob, size_t *len,
			    struct dlvm_err *err)
{
	struct dlvm_buf b = { 0 };
	struct dlvm_blob_header bh = { .major = DLVM_FORMAT_MAJOR, .minor = DLVM_FORMAT_MINOR };
	int r;

	if ((r = dlvm_buf_reserve(&b, DLVM_BLOB_HEADER_SIZE)))
		return dlvm_err_set(err, r, "out of memory");
	b.len = DLVM_BLOB_HEADER_SIZE;
	if ((r = dlvm_vg_encode_state(vg, &b))) {
		dlvm_buf_release(&b);
		return dlvm_err_set(err, r, "out of memory");
	}
	if (b.len - DLVM_BLOB_HEADER_SIZE > UINT32_MAX) {
		dlvm_buf_release(&b);
		return dlvm_err_set(err, -ENOSPC, "%s: metadata checkpoint exceeds 4 GiB",
				    vg->info.name);
	}
	size_t alen = (size_t)dlvm_align_up(b.len, DLVM_BLOCK);
	uint8_t *out = dlvm_io_alloc(alen);
	if (!out) {
		dlvm_buf_release(&b);
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	}
	memcpy(out, b.data, b.len);
	memcpy(bh.magic, DLVM_CKPT_MAGIC, 8);
	memcpy(bh.vg_uuid, vg->info.uuid, 16);
	bh.seq = vg->seq;
	bh.payload_len = (uint32_t)(b.len - DLVM_BLOB_HEADER_SIZE);
	bh.timestamp = (uint64_t)time(NULL);
	dlvm_blob_encode(&bh, out);
	*len = b.len;
	*blob = out;
	dlvm_buf_release(&b);
	return 0;
}

/*
 * Every metadata write of a shared VG joined here is issued only while the
 * fence allows it (dlvm/fence.h): checked right before the write, under the
 * VG lease and the command lock that order the writes. A refused write
 * shuts the fence: the host fences itself.
 */
static int fenced_write(struct dlvm_fence *f, struct dlvm_dev *dev, const void *buf, size_t len,
			uint64_t off, const char *what, struct dlvm_err *err)
{
	int r = dlvm_fence_meta_ok(f, what, err);

	return r ? r : dlvm_dev_write(dev, buf, len, off, err);
}

static int write_header(struct dlvm_fence *f, struct dlvm_pv *pv, struct dlvm_mda_header *nh,
			struct dlvm_err *err)
{
	uint8_t *buf = dlvm_io_alloc(DLVM_BLOCK);
	unsigned slot = pv->mda.slot ^ 1u;
	int r;

	if (!buf)
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	dlvm_mda_header_encode(nh, buf);
	r = fenced_write(f, pv->dev, buf, DLVM_BLOCK, mda_base(pv) + slot * DLVM_BLOCK,
			 "metadata header write", err);
	if (!r)
		r = dlvm_dev_flush(pv->dev, err);
	free(buf);
	if (!r) {
		pv->mda.hdr = *nh;
		pv->mda.slot = slot;
	}
	return r;
}

int dlvm_vg_writable(const struct dlvm_vg *vg, struct dlvm_err *err)
{
	if (!vg->readonly)
		return 0;
	if (vg->readonly_why[0])
		return dlvm_err_set(err, -EROFS, "%s", vg->readonly_why);
	return dlvm_err_set(err, -EROFS, "%s: volume group is read-only", vg->info.name);
}

int dlvm_mda_write_checkpoint(struct dlvm_vg *vg, struct dlvm_pv *pv, const uint8_t *blob,
			      size_t blob_len, struct dlvm_err *err)
{
	struct dlvm_mda_header nh = pv->mda.hdr;
	int r;

	if ((r = dlvm_vg_writable(vg, err)) ||
	    (r = dlvm_pv_check_ro_compat(pv->dev, &pv->hdr, &pv->mda, err)))
		return r;
	if (blob_len > nh.ckpt_size)
		return dlvm_err_set(err, -ENOSPC,
				    "%s: metadata area too small: the VG needs %zu "
				    "bytes per checkpoint, the area holds %" PRIu64
				    " (recreate the "
				    "PV with a larger pvcreate --metadatasize)",
				    pv->dev->name, blob_len, nh.ckpt_size);
	bool fresh = dlvm_uuid_is_zero(nh.vg_uuid) || memcmp(nh.vg_uuid, vg->info.uuid, 16);
	unsigned cslot = fresh ? 0 : nh.ckpt_slot ^ 1u;
	uint64_t off = mda_base(pv) + nh.ckpt_offset + cslot * nh.ckpt_size;
	size_t wlen = (size_t)dlvm_align_up(blob_len, DLVM_BLOCK);

	dlvm_debug_pause("checkpoint-write");
	if ((r = fenced_write(dlvm_vg_fence(vg), pv->dev, blob, wlen, off,
			      "metadata checkpoint write", err)) ||
	    (r = dlvm_dev_flush(pv->dev, err)))
		return r;
	if (fresh) {
		pv->mda.tail = 0;
		memcpy(nh.vg_uuid, vg->info.uuid, 16);
	} else if (!pv->mda.valid) {
		pv->mda.tail = 0;
	}
	nh.generation++;
	nh.ckpt_slot = cslot;
	nh.ckpt_seq = vg->seq;
	nh.ckpt_len = blob_len;
	nh.ckpt_crc = dlvm_crc32c(blob, blob_len);
	nh.journal_start = pv->mda.tail;
	if ((r = write_header(dlvm_vg_fence(vg), pv, &nh, err)))
		return r;
	pv->mda.used = 0;
	pv->mda.tail_seq = vg->seq;
	pv->mda.valid = true;
	pv->mda.in_sync = true;
	pv->mda.problem[0] = '\0';
	return 0;
}

int dlvm_vg_checkpoint(struct dlvm_vg *vg, bool only_stale, struct dlvm_err *err)
{
	uint8_t *blob = NULL;
	size_t len;
	int r, done = 0, first = 0;

	if ((r = dlvm_vg_checkpoint_blob(vg, &blob, &len, err)))
		return r;
	for (size_t i = 0; i < vg->npv; i++) {
		struct dlvm_pv *pv = vg->pvs[i];
		/* damaged copies are rewritten only by an explicit repair */
		if (!pv->dev || !pv->mda.valid || (only_stale && pv->mda.in_sync))
			continue;
		struct dlvm_err e = { 0 };
		r = dlvm_mda_write_checkpoint(vg, pv, blob, len, &e);
		if (r) {
			pv->mda.in_sync = false;
			snprintf(pv->mda.problem, sizeof(pv->mda.problem), "%s", e.msg);
			if (!first)
				first = dlvm_err_set(err, r, "%s", e.msg);
		} else {
			done++;
		}
	}
	free(blob);
	if (!done && first)
		return first;
	return 0;
}

/* Write a record at the ring's tail (the caller flushes). */
static int append_one(struct dlvm_fence *f, struct dlvm_pv *pv, const uint8_t *rec, size_t rec_len,
		      const uint8_t *wrap, uint32_t ss, struct dlvm_err *err)
{
	struct dlvm_mda *m = &pv->mda;
	uint64_t ring_abs = mda_base(pv) + m->hdr.ring_offset;
	uint64_t pos = m->tail, used = m->used;
	int r;

	if (pos + rec_len > m->hdr.ring_size) {
		if (pos < m->hdr.ring_size &&
		    (r = fenced_write(f, pv->dev, wrap, ss, ring_abs + pos, "journal write", err)))
			return r;
		used += m->hdr.ring_size - pos;
		pos = 0;
	}
	if ((r = fenced_write(f, pv->dev, rec, rec_len, ring_abs + pos, "journal write", err)))
		return r;
	m->tail = pos + rec_len;
	if (m->tail >= m->hdr.ring_size)
		m->tail = 0;
	m->used = used + rec_len;
	return 0;
}

/* A copy could not take a record: it is stale from now on (*r, err: the
 * first such error). */
static void copy_failed(struct dlvm_pv *pv, const struct dlvm_err *e, int *r, struct dlvm_err *err)
{
	pv->mda.in_sync = false;
	snprintf(pv->mda.problem, sizeof(pv->mda.problem), "%s", e->msg);
	if (!*r)
		*r = dlvm_err_set(err, e->code, "%s", e->msg);
}

/* A commit on its way: the record, the undo of each applied edit, and the
 * copies written. */
struct commit {
	struct dlvm_vg *vg;
	struct dlvm_txn *t;
	struct dlvm_buf b;   /* room for the blob header, then the edits */
	size_t rec_len;      /* b.len rounded up to DLVM_BLOCK */
	uint8_t *rec, *wrap; /* the record and its wrap marker */
	struct undo *undo;   /* one per edit */
	size_t napplied;
	struct dlvm_vg_info saved_info; /* vg->info before the first edit */
	struct dlvm_pv **wpvs;          /* the copies written, to flush */
	struct dlvm_dev **wdevs;
	int *fres; /* their flush results */
	size_t nw;
};

/* A missing PV stops every change but its own removal. */
static int refuse_missing_pvs(const struct dlvm_vg *vg, const struct dlvm_txn *t,
			      struct dlvm_err *err)
{
	for (size_t i = 0; i < vg->npv; i++) {
		if (vg->pvs[i]->dev)
			continue;
		bool removed = false;
		for (size_t k = 0; k < t->n; k++)
			removed |= t->edits[k].type == DLVM_EDIT_PV_REMOVE &&
				   t->edits[k].u.pv_id == vg->pvs[i]->d.id;
		if (!removed)
			return dlvm_err_set(err, -EROFS,
					    "%s: PV %u is missing: metadata cannot be "
					    "changed until it is back or removed (vgreduce "
					    "--removemissing)",
					    vg->info.name, vg->pvs[i]->d.id);
	}
	return 0;
}

/* The record's payload: the edits after room for the blob header. */
static int encode_edits(struct commit *c, struct dlvm_err *err)
{
	int r;

	if ((r = dlvm_buf_reserve(&c->b, DLVM_BLOB_HEADER_SIZE)))
		return dlvm_err_set(err, r, "out of memory");
	c->b.len = DLVM_BLOB_HEADER_SIZE;
	for (size_t i = 0; i < c->t->n; i++)
		if ((r = dlvm_edit_encode(&c->t->edits[i], &c->b)))
			return dlvm_err_set(err, r, "out of memory");
	c->rec_len = (size_t)dlvm_align_up(c->b.len, DLVM_BLOCK);
	return 0;
}

/* Refuse a record too large for a ring; resync stale copies and checkpoint
 * copies whose ring is half full. A copy that cannot be brought up to date
 * stays stale; the change goes on while another copy is in sync. */
static int make_room(struct commit *c, struct dlvm_err *err)
{
	struct dlvm_vg *vg = c->vg;
	bool need_ckpt = false, all = false;
	int r;

	for (size_t i = 0; i < vg->npv; i++) {
		struct dlvm_mda *m = &vg->pvs[i]->mda;
		if (!vg->pvs[i]->dev)
			continue; /* a missing PV being removed */
		if (c->rec_len > m->hdr.ring_size / 4)
			return dlvm_err_set(err, -ENOSPC,
					    "%s: transaction of %zu bytes is too "
					    "large for the metadata journal",
					    vg->info.name, c->b.len);
		/* stale copies are brought up to date; damaged ones (!valid)
		 * wait for an explicit repair */
		if (m->valid && (!m->in_sync || m->used + 2 * c->rec_len > m->hdr.ring_size / 2))
			need_ckpt = true;
	}
	if (!need_ckpt)
		return 0;
	for (size_t i = 0; i < vg->npv; i++) {
		struct dlvm_mda *m = &vg->pvs[i]->mda;
		all |= m->in_sync && m->used + 2 * c->rec_len > m->hdr.ring_size / 2;
	}
	if (!(r = dlvm_vg_checkpoint(vg, !all, err)))
		return 0;
	for (size_t i = 0; i < vg->npv; i++)
		if (vg->pvs[i]->dev && vg->pvs[i]->mda.in_sync) {
			dlvm_err_clear(err);
			return 0;
		}
	return r;
}

/* The record's buffers, the undo of each edit, room for the copies. */
static int commit_alloc(struct commit *c, struct dlvm_err *err)
{
	size_t npv = c->vg->npv ? c->vg->npv : 1;

	c->rec = dlvm_io_alloc(c->rec_len);
	c->wrap = dlvm_io_alloc(DLVM_BLOCK);
	c->undo = calloc(c->t->n ? c->t->n : 1, sizeof(*c->undo));
	c->wpvs = calloc(npv, sizeof(*c->wpvs));
	c->wdevs = calloc(npv, sizeof(*c->wdevs));
	c->fres = calloc(npv, sizeof(*c->fres));
	if (!c->rec || !c->wrap || !c->undo || !c->wpvs || !c->wdevs || !c->fres)
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	return 0;
}

/* Apply the edits to the model, keeping the inverse of each: an edit that
 * does not fit is refused (and those before it undone) before anything
 * reaches the disk. */
static int apply_edits(struct commit *c, struct dlvm_err *err)
{
	struct dlvm_vg *vg = c->vg;
	int r;

	c->saved_info = vg->info;
	for (size_t i = 0; i < c->t->n; i++) {
		if ((r = dlvm_undo_make(vg, &c->t->edits[i], &c->undo[i]))) {
			r = dlvm_err_set(err, r, "out of memory");
			dlvm_undo_all(vg, &c->saved_info, c->undo, i);
			return r;
		}
		if ((r = dlvm_vg_apply(vg, &c->t->edits[i], err))) {
			dlvm_undo_all(vg, &c->saved_info, c->undo, i);
			return dlvm_err_prefix(err, r, "%s: change refused: ", vg->info.name);
		}
		c->napplied = i + 1;
	}
	return 0;
}

/* The record and its wrap marker, with the VG's next sequence number. */
static void seal_record(struct commit *c)
{
	struct dlvm_blob_header bh = { .major = DLVM_FORMAT_MAJOR,
				       .minor = DLVM_FORMAT_MINOR,
				       .type = DLVM_REC_TXN };

	c->vg->seq++;
	memcpy(c->rec, c->b.data, c->b.len);
	memcpy(bh.magic, DLVM_REC_MAGIC, 8);
	memcpy(bh.vg_uuid, c->vg->info.uuid, 16);
	bh.seq = c->vg->seq;
	bh.payload_len = (uint32_t)(c->b.len - DLVM_BLOB_HEADER_SIZE);
	bh.timestamp = (uint64_t)time(NULL);
	dlvm_blob_encode(&bh, c->rec);
	struct dlvm_blob_header wh = bh;
	wh.type = DLVM_REC_WRAP;
	wh.payload_len = 0;
	dlvm_blob_encode(&wh, c->wrap);
}

/* The record goes to every copy in sync, then all copies are flushed at
 * once: a crash in between leaves each with the record or without it, and
 * replay takes the newest (a stale copy is brought up to date). Returns how
 * many copies hold it; *r and err: the first copy that failed. */
static size_t write_copies(struct commit *c, int *r, struct dlvm_err *err)
{
	struct dlvm_vg *vg = c->vg;
	struct dlvm_fence *f = dlvm_vg_fence(vg);
	size_t ok = 0;

	dlvm_debug_pause("journal-write");
	for (size_t i = 0; i < vg->npv; i++) {
		struct dlvm_pv *pv = vg->pvs[i];
		if (!pv->mda.in_sync)
			continue;
		uint32_t ss = pv->hdr.sector_size;
		size_t len = (size_t)dlvm_align_up(c->b.len, ss);
		struct dlvm_err e = { 0 };
		if (append_one(f, pv, c->rec, len, c->wrap, ss, &e)) {
			copy_failed(pv, &e, r, err);
			continue;
		}
		c->wpvs[c->nw] = pv;
		c->wdevs[c->nw++] = pv->dev;
	}
	dlvm_devs_flush(c->wdevs, c->nw, c->fres);
	for (size_t i = 0; i < c->nw; i++) {
		struct dlvm_pv *pv = c->wpvs[i];
		if (c->fres[i]) {
			struct dlvm_err e = { 0 };
			dlvm_err_set(&e, c->fres[i], "%s: flush failed: %s", pv->dev->name,
				     strerror(-c->fres[i]));
			copy_failed(pv, &e, r, err);
			continue;
		}
		pv->mda.tail_seq = vg->seq;
		ok++;
	}
	return ok;
}

/* No copy took the record: undo the edits and refuse changes until a
 * reload, since the disk may hold the record all the same. */
static int fail_everywhere(struct commit *c, int r, struct dlvm_err *err)
{
	struct dlvm_vg *vg = c->vg;

	vg->seq--;
	dlvm_undo_all(vg, &c->saved_info, c->undo, c->napplied);
	c->napplied = 0;
	if (!r)
		r = dlvm_err_set(err, -EIO, "%s: no metadata copy could be written", vg->info.name);
	vg->readonly = true;
	snprintf(vg->readonly_why, sizeof(vg->readonly_why),
		 "%s: volume group is read-only: a "
		 "commit failed on every metadata copy (reload it before changing it again)",
		 vg->info.name);
	return r;
}

int dlvm_txn_commit(struct dlvm_vg *vg, struct dlvm_txn *t, struct dlvm_err *err)
{
	struct commit c = { .vg = vg, .t = t };
	int r;

	if ((r = dlvm_vg_writable(vg, err)) || (r = refuse_missing_pvs(vg, t, err)))
		return r;
	if ((r = encode_edits(&c, err)) || (r = make_room(&c, err)) ||
	    (r = commit_alloc(&c, err)) || (r = apply_edits(&c, err)))
		goto out;
	seal_record(&c);
	if (!write_copies(&c, &r, err)) {
		r = fail_everywhere(&c, r, err);
		goto out;
	}
	dlvm_err_clear(err); /* a copy failed but others hold the change */
	r = 0;
out:
	for (size_t i = 0; c.undo && i < t->n; i++)
		dlvm_undo_release(&c.undo[i]);
	free(c.undo);
	free(c.wpvs);
	free(c.wdevs);
	free(c.fres);
	free(c.rec);
	free(c.wrap);
	dlvm_buf_release(&c.b);
	return r;
}

int dlvm_vg_poll(struct dlvm_vg *vg, bool *changed, struct dlvm_err *err)
{
	struct dlvm_pv *pv = NULL;
	struct dlvm_mda cur = { 0 };
	int r;

	*changed = false;
	for (size_t i = 0; i < vg->npv && !pv; i++)
		if (vg->pvs[i]->dev && vg->pvs[i]->mda.valid && vg->pvs[i]->mda.in_sync)
			pv = vg->pvs[i];
	if (!pv) {
		*changed = true; /* nothing to compare with: let a reload decide */
		return 0;
	}
	if ((r = dlvm_mda_read_header(pv->dev, &cur, err)))
		return r;
	if (cur.slot != pv->mda.slot || cur.hdr.generation != pv->mda.hdr.generation ||
	    cur.hdr.ckpt_seq != pv->mda.hdr.ckpt_seq) {
		*changed = true; /* a checkpoint, or a vgextend/vgreduce */
		return 0;
	}
	/* The next record would start at the tail (or, after a wrap marker, at
	 * ring offset 0; the marker carries the same sequence number). Only
	 * magic, VG uuid and sequence number are looked at here: a reload
	 * verifies the rest. Blob header: magic @0, vg_uuid @16, seq @32. */
	uint32_t ss = pv->dev->sector_size;
	uint8_t *buf = dlvm_io_alloc(ss);
	if (!buf)
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	r = dlvm_dev_read(pv->dev, buf, ss, mda_base(pv) + pv->mda.hdr.ring_offset + pv->mda.tail,
			  err);
	if (!r && !memcmp(buf, DLVM_REC_MAGIC, 8) && !memcmp(buf + 16, vg->info.uuid, 16) &&
	    dlvm_get_le64(buf + 32) > vg->seq)
		*changed = true;
	free(buf);
	return r;
}
