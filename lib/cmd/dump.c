/* SPDX-License-Identifier: MIT */
/* dlvm dump DEVICE: decode every on-disk structure of a device, read-only,
 * without locks, reporting what is damaged instead of stopping there. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dlvm/lease.h"
#include "dlvm/util.h"
#include "dlvm/thin.h"
#include "dlvm/thinpool.h"
#include "lib/ctx/ctx.h"
#include "lib/cluster/cluster.h"
#include "lib/cmd/cmd_int.h"

struct out {
	char *buf;
	size_t len;
	FILE *f;
};

static void hexflags(FILE *f, const char *name, uint64_t c, uint64_t ro, uint64_t in)
{
	fprintf(f,
		"  %-18s compat 0x%" PRIx64 ", ro_compat 0x%" PRIx64 ", incompat 0x%" PRIx64 "\n",
		name, c, ro, in);
}

static void dump_edit(FILE *f, const struct dlvm_edit *e)
{
	char u[DLVM_UUID_STR];

	fprintf(f, "    %-16s", dlvm_edit_type_name(e->type));
	switch (e->type) {
	case DLVM_EDIT_VG_INFO:
		dlvm_uuid_unparse(e->u.vg.uuid, u);
		fprintf(f,
			"name=%s uuid=%s extent_size=%" PRIu64 " flags=0x%" PRIx64
			" next_lv_id=%" PRIu64 " next_pv_id=%u\n",
			e->u.vg.name, u, e->u.vg.extent_size, e->u.vg.flags, e->u.vg.next_lv_id,
			e->u.vg.next_pv_id);
		break;
	case DLVM_EDIT_PV_ADD:
		dlvm_uuid_unparse(e->u.pv.uuid, u);
		fprintf(f,
			"id=%u uuid=%s pe_start=%" PRIu64 " pe_count=%" PRIu64 " dev_size=%" PRIu64
			" sector_size=%u\n",
			e->u.pv.id, u, e->u.pv.pe_start, e->u.pv.pe_count, e->u.pv.dev_size,
			e->u.pv.sector_size);
		break;
	case DLVM_EDIT_PV_REMOVE: fprintf(f, "id=%u\n", e->u.pv_id); break;
	case DLVM_EDIT_LV_CREATE:
	case DLVM_EDIT_LV_SET_SEGMENTS:
		if (e->type == DLVM_EDIT_LV_CREATE) {
			dlvm_uuid_unparse(e->u.lv.uuid, u);
			fprintf(f,
				"id=%" PRIu64 " name=%s uuid=%s flags=0x%" PRIx64 " segments=%u\n",
				e->u.lv.id, e->u.lv.name, u, e->u.lv.flags, e->u.lv.nseg);
		} else {
			fprintf(f, "id=%" PRIu64 " segments=%u\n", e->u.lv.id, e->u.lv.nseg);
		}
		for (uint32_t i = 0; i < e->u.lv.nseg; i++) {
			const struct dlvm_seg_desc *s = e->u.lv.segs[i];
			fprintf(f, "      seg %u: le %" PRIu64 "+%" PRIu64 " %s", i, s->le_start,
				s->le_count, s->type == DLVM_SEG_STRIPED ? "striped" : "linear");
			if (s->stripes > 1)
				fprintf(f, " stripes=%u stripe_size=%u", s->stripes,
					s->stripe_size);
			for (uint16_t k = 0; k < s->stripes; k++)
				fprintf(f, " [pv %u pe %" PRIu64 "]", s->area[k].pv_id,
					s->area[k].pe_start);
			fprintf(f, "\n");
		}
		break;
	case DLVM_EDIT_LV_REMOVE: fprintf(f, "id=%" PRIu64 "\n", e->u.lv.id); break;
	case DLVM_EDIT_LV_RENAME:
		fprintf(f, "id=%" PRIu64 " name=%s\n", e->u.lv.id, e->u.lv.name);
		break;
	case DLVM_EDIT_LV_SET_FLAGS:
		fprintf(f, "id=%" PRIu64 " flags=0x%" PRIx64 "\n", e->u.lv.id, e->u.lv.flags);
		break;
	case DLVM_EDIT_LV_SET_THIN:
		fprintf(f,
			"id=%" PRIu64 " pool=%" PRIu64 " origin=%" PRIu64 " virtual_size=%" PRIu64
			" meta=%" PRIu64 " chunk_size=%u slab_extents=%u\n",
			e->u.lv.id, e->u.lv.thin.pool_id, e->u.lv.thin.origin_id,
			e->u.lv.thin.virtual_size, e->u.lv.thin.meta_id, e->u.lv.thin.chunk_size,
			e->u.lv.thin.slab_extents);
		break;
	case DLVM_EDIT_LV_SET_COPY_RATE:
		fprintf(f, "id=%" PRIu64 " copy_rate=%" PRIu64 "\n", e->u.lv.id, e->u.lv.copy_rate);
		break;
	case DLVM_EDIT_LV_SET_HOLDERS:
		fprintf(f, "id=%" PRIu64 " holders=%u", e->u.lv.id, e->u.lv.nholders);
		for (uint32_t i = 0; i < e->u.lv.nholders; i++)
			fprintf(f, " [host %u %s gen %" PRIu64 "]", e->u.lv.holders[i].host_id,
				e->u.lv.holders[i].mode == DLVM_HOLD_EXCLUSIVE ? "ex" : "sh",
				e->u.lv.holders[i].generation);
		fprintf(f, "\n");
		break;
	case DLVM_EDIT_PROPERTY_SET:
		fprintf(f, "id=%" PRIu64 " key=%s", e->u.prop.id, e->u.prop.key);
		if (e->u.prop.flags & DLVM_PROP_DELETE || !e->u.prop.value) {
			fprintf(f, " deleted\n");
			break;
		}
		fprintf(f, " value=\"");
		/* values are any bytes but NUL: others are escaped */
		for (const unsigned char *c = (const unsigned char *)e->u.prop.value; *c; c++)
			if (*c < 0x20 || *c >= 0x7f || *c == '"' || *c == '\\')
				fprintf(f, "\\x%02x", *c);
			else
				fputc(*c, f);
		fprintf(f, "\"\n");
		break;
	default: fprintf(f, "(ignorable, %zu bytes)\n", e->u.raw.len); break;
	}
}

static void dump_edits(FILE *f, const uint8_t *p, size_t len)
{
	size_t pos = 0;

	while (pos < len) {
		struct dlvm_edit e;
		struct dlvm_err err = { 0 };
		if (dlvm_edit_decode(p, len, &pos, &e, &err)) {
			fprintf(f, "    DAMAGED: %s\n", err.msg);
			return;
		}
		dump_edit(f, &e);
		dlvm_edit_release(&e);
	}
}

static void dump_pv_header(FILE *f, const struct dlvm_pv_header *ph)
{
	char u[DLVM_UUID_STR];

	dlvm_uuid_unparse(ph->pv_uuid, u);
	fprintf(f, "PV header at offset %u:\n", DLVM_PV_HEADER_OFFSET);
	fprintf(f, "  version            %u.%u\n", ph->major, ph->minor);
	hexflags(f, "features", ph->compat, ph->ro_compat, ph->incompat);
	fprintf(f, "  pv_uuid            %s\n", u);
	fprintf(f, "  sector_size        %u\n", ph->sector_size);
	fprintf(f, "  device_size        %" PRIu64 "\n", ph->device_size);
	fprintf(f, "  metadata area      offset %" PRIu64 ", size %" PRIu64 "\n", ph->mda_offset,
		ph->mda_size);
	fprintf(f, "  lease area         offset %" PRIu64 ", size %" PRIu64 "\n", ph->lease_offset,
		ph->lease_size);
	fprintf(f, "  data area          offset %" PRIu64 ", size %" PRIu64 "\n", ph->data_offset,
		ph->data_size);
	fprintf(f, "  created            %" PRIu64 " on host %s\n", ph->ctime, ph->hostname);
}

/* Both metadata header slots; *cur: the newer valid one, or -1. */
static int dump_mda_slots(struct dlvm_dev *dev, FILE *f, const struct dlvm_pv_header *ph,
			  struct dlvm_mda_header mh[2], int *cur, struct dlvm_err *err)
{
	uint8_t *buf = dlvm_io_alloc(2 * DLVM_BLOCK);
	char u[DLVM_UUID_STR];
	int r;

	*cur = -1;
	if (!buf)
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	if ((r = dlvm_dev_read(dev, buf, 2 * DLVM_BLOCK, ph->mda_offset, err))) {
		free(buf);
		return r;
	}
	for (int s = 0; s < 2; s++) {
		struct dlvm_err se = { 0 };
		uint64_t off = ph->mda_offset + (uint64_t)s * DLVM_BLOCK;
		if (dlvm_mda_header_decode(buf + s * DLVM_BLOCK, &mh[s], &se) ||
		    dlvm_mda_header_check_area(&mh[s], ph->mda_size, &se)) {
			fprintf(f, "Metadata header slot %d at offset %" PRIu64 ": %s\n", s, off,
				se.msg);
			continue;
		}
		if (*cur < 0 || mh[s].generation > mh[*cur].generation)
			*cur = s;
		dlvm_uuid_unparse(mh[s].vg_uuid, u);
		fprintf(f, "Metadata header slot %d at offset %" PRIu64 ":\n", s, off);
		fprintf(f, "  generation         %" PRIu64 "\n", mh[s].generation);
		fprintf(f, "  vg_uuid            %s\n",
			dlvm_uuid_is_zero(mh[s].vg_uuid) ? "(none: orphan PV)" : u);
		fprintf(f, "  checkpoints        2 x %" PRIu64 " bytes at +%" PRIu64 "\n",
			mh[s].ckpt_size, mh[s].ckpt_offset);
		fprintf(f, "  journal ring       %" PRIu64 " bytes at +%" PRIu64 "\n",
			mh[s].ring_size, mh[s].ring_offset);
		fprintf(f,
			"  checkpoint         slot %u, sequence %" PRIu64 ", %" PRIu64
			" bytes, crc 0x%08x\n",
			mh[s].ckpt_slot, mh[s].ckpt_seq, mh[s].ckpt_len, mh[s].ckpt_crc);
		fprintf(f, "  journal_start      +%" PRIu64 "\n", mh[s].journal_start);
	}
	free(buf);
	return 0;
}

/* The current checkpoint with its edits; a damaged one is said, not fatal. */
static int dump_checkpoint(struct dlvm_dev *dev, FILE *f, const struct dlvm_pv_header *ph,
			   const struct dlvm_mda_header *h, struct dlvm_err *err)
{
	uint64_t ck_abs = ph->mda_offset + h->ckpt_offset + h->ckpt_slot * h->ckpt_size;
	size_t cklen = (size_t)dlvm_align_up(h->ckpt_len, DLVM_BLOCK);
	uint8_t *ck = dlvm_io_alloc(cklen);
	struct dlvm_blob_header bh;
	struct dlvm_err e = { 0 };

	if (!ck)
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	fprintf(f, "Checkpoint at offset %" PRIu64 ":\n", ck_abs);
	if (dlvm_dev_read(dev, ck, cklen, ck_abs, &e) ||
	    dlvm_blob_decode(ck, (size_t)h->ckpt_len, DLVM_CKPT_MAGIC, &bh, &e)) {
		fprintf(f, "  DAMAGED: %s\n", e.msg);
	} else {
		fprintf(f, "  sequence %" PRIu64 ", payload %u bytes, written %" PRIu64 "\n",
			bh.seq, bh.payload_len, bh.timestamp);
		dump_edits(f, ck + DLVM_BLOB_HEADER_SIZE, bh.payload_len);
	}
	free(ck);
	return 0;
}

/* The journal: the records after the checkpoint, until a torn or stale one. */
static int dump_journal(struct dlvm_dev *dev, FILE *f, const struct dlvm_pv_header *ph,
			const struct dlvm_mda_header *h, struct dlvm_err *err)
{
	uint64_t ring_abs = ph->mda_offset + h->ring_offset;
	uint8_t *ring = dlvm_io_alloc((size_t)h->ring_size);
	struct dlvm_blob_header bh;
	struct dlvm_err e = { 0 };
	int r;

	if (!ring)
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	fprintf(f, "Journal at offset %" PRIu64 " (ring of %" PRIu64 " bytes):\n", ring_abs,
		h->ring_size);
	if ((r = dlvm_dev_read(dev, ring, (size_t)h->ring_size, ring_abs, err))) {
		free(ring);
		return r;
	}
	uint64_t pos = h->journal_start, expect = h->ckpt_seq + 1, used = 0;
	uint32_t ss = ph->sector_size;
	for (;;) {
		if (pos >= h->ring_size)
			pos = 0;
		size_t avail = (size_t)(h->ring_size - pos);
		dlvm_err_clear(&e);
		if (dlvm_blob_decode(ring + pos, avail, DLVM_REC_MAGIC, &bh, &e)) {
			fprintf(f, "  end of journal at +%" PRIu64 ": %s\n", pos, e.msg);
			break;
		}
		if (bh.seq != expect || memcmp(bh.vg_uuid, h->vg_uuid, 16)) {
			fprintf(f,
				"  end of journal at +%" PRIu64 ": record %" PRIu64 " is stale "
				"(expected %" PRIu64 ")\n",
				pos, bh.seq, expect);
			break;
		}
		if (bh.type == DLVM_REC_WRAP) {
			fprintf(f, "  +%-10" PRIu64 " WRAP to the start of the ring\n", pos);
			used += h->ring_size - pos;
			pos = 0;
		} else {
			fprintf(f,
				"  +%-10" PRIu64 " record %" PRIu64 ", %u bytes, written %" PRIu64
				"\n",
				pos, bh.seq, bh.payload_len, bh.timestamp);
			dump_edits(f, ring + pos + DLVM_BLOB_HEADER_SIZE, bh.payload_len);
			uint64_t total = dlvm_align_up(DLVM_BLOB_HEADER_SIZE +
								       (uint64_t)bh.payload_len,
						       ss);
			pos += total;
			used += total;
			expect++;
		}
		if (used > h->ring_size)
			break;
	}
	fprintf(f, "  last sequence number %" PRIu64 "\n", expect - 1);
	free(ring);
	return 0;
}

static int dump_device(struct dlvm_dev *dev, FILE *f, struct dlvm_err *err)
{
	struct dlvm_pv_header ph;
	struct dlvm_mda_header mh[2];
	struct dlvm_err e = { 0 };
	int cur, r;

	fprintf(f, "%s: %" PRIu64 " bytes, %s, sector size %u\n", dev->path, dev->size,
		dev->blockdev ? "block device" : "regular file", dev->sector_size);
	r = dlvm_pv_read_header(dev, &ph, &e);
	if (r) {
		fprintf(f, "PV header at offset %u: %s\n", DLVM_PV_HEADER_OFFSET, e.msg);
		return r == -ENODATA ? dlvm_err_set(err, r, "%s: no dlvm PV label", dev->path)
				     : dlvm_err_set(err, r, "%s", e.msg);
	}
	dump_pv_header(f, &ph);
	if ((r = dump_mda_slots(dev, f, &ph, mh, &cur, err)))
		return r;
	if (cur < 0)
		return dlvm_err_set(err, -EBADMSG, "%s: both metadata header slots are damaged",
				    dev->path);
	fprintf(f, "Current metadata header: slot %d\n", cur);
	if (dlvm_uuid_is_zero(mh[cur].vg_uuid))
		return 0;
	if ((r = dump_checkpoint(dev, f, &ph, &mh[cur], err)))
		return r;
	return dump_journal(dev, f, &ph, &mh[cur], err);
}

/* The thin stores whose metadata LV lies wholly on this device: their
 * superblock slots and first nodes (dlvm_thin_dump). Quiet when the
 * device holds none or its VG does not load from it alone. */
#define THIN_DUMP_BLOCKS 32

static void dump_thin_stores(const char *path, FILE *f)
{
	struct dlvm_dev *dev;
	struct dlvm_vg *vg;
	struct dlvm_err e = { 0 };

	if (dlvm_dev_open(path, DLVM_DEV_RDONLY, &dev, &e))
		return;
	if (dlvm_vg_load(&dev, 1, NULL, &vg, &e)) {
		dlvm_dev_close(dev);
		return;
	}
	dlvm_dev_close(dev); /* NULL when the VG took it */
	for (size_t i = 0; i < vg->nlv; i++) {
		const struct dlvm_lv *m = vg->lvs[i];
		struct dlvm_dev *md;
		if (!(m->flags & DLVM_LV_THIN_META) || dlvm_lvdev_open(vg, m, &md, &e))
			continue;
		fprintf(f, "\nthin store in %s/[%s] (first %u blocks):\n", vg->info.name, m->name,
			THIN_DUMP_BLOCKS);
		if (dlvm_thin_dump(md, 0, THIN_DUMP_BLOCKS, f, &e))
			fprintf(f, "  %s\n", e.msg);
		dlvm_dev_close(md);
	}
	dlvm_vg_free(vg);
}

/* ---- the lease area of a shared VG ---- */

static void dump_delta(FILE *f, uint32_t id, const struct dlvm_delta_record *d)
{
	fprintf(f, "  host %-4u          ", id);
	if (d->host_id != id)
		fprintf(f, "(record of host id %u) ", d->host_id);
	fprintf(f, "%sname=%s generation=%" PRIu64 " timestamp=%" PRIu64 " io_timeout=%u\n",
		d->timestamp ? "" : "released: ", d->name, d->generation, d->timestamp,
		d->io_timeout);
}

/* Resource r: its leader, then the ballot block of every host that wrote one. */
static void dump_resource(FILE *f, struct dlvm_dev *dev, uint64_t area_off,
			  const struct dlvm_lease_area_header *h, uint32_t r, uint8_t *buf)
{
	uint64_t off = area_off + h->resource_offset + r * h->resource_stride;
	struct dlvm_paxos_leader l;
	struct dlvm_err e = { 0 };

	fprintf(f, "Resource %u%s at offset %" PRIu64 ":\n", r, r == 0 ? " (VG lease)" : "", off);
	if (dlvm_dev_read(dev, buf, h->resource_stride, off, &e)) {
		fprintf(f, "  DAMAGED: %s\n", e.msg);
		return;
	}
	if (dlvm_paxos_leader_decode(buf, &l, &e))
		fprintf(f, "  leader             DAMAGED: %s\n", e.msg);
	else
		fprintf(f,
			"  leader             owner=%u generation=%" PRIu64 " lver=%" PRIu64
			" timestamp=%" PRIu64 " (%s) writer=%u\n",
			l.owner_id, l.owner_generation, l.lver, l.timestamp,
			l.timestamp ? "held" : "free", l.writer_id);
	for (uint32_t id = 1; id <= h->max_hosts; id++) {
		struct dlvm_paxos_dblock b;
		dlvm_err_clear(&e);
		if (dlvm_paxos_dblock_decode(buf + (size_t)id * h->sector_size, &b, &e)) {
			fprintf(f, "  ballot host %-4u   DAMAGED: %s\n", id, e.msg);
			continue;
		}
		if (!b.host_id)
			continue;
		fprintf(f,
			"  ballot host %-4u   lver=%" PRIu64 " mbal=%" PRIu64 " bal=%" PRIu64
			" inp=%u/%" PRIu64 "/%" PRIu64 " flags=0x%x shared_generation=%" PRIu64
			"\n",
			id, b.lver, b.mbal, b.bal, b.inp_id, b.inp_generation, b.inp_timestamp,
			b.flags, b.shared_generation);
	}
}

/* The lease area in the lockspace LV of the VG, when that LV lies on this
 * device: header, delta leases, every resource's leader and ballots, and the
 * lock table (the activation records of the VG's LVs). Quiet when the device
 * holds none or its VG does not load from it alone. */
static void dump_lease_area(const char *path, FILE *f)
{
	struct dlvm_dev *dev;
	struct dlvm_vg *vg;
	struct dlvm_lease_area *area;
	const struct dlvm_lv *lv = NULL;
	struct dlvm_err e = { 0 };
	char u[DLVM_UUID_STR];

	if (dlvm_dev_open(path, DLVM_DEV_RDONLY, &dev, &e))
		return;
	if (dlvm_vg_load(&dev, 1, NULL, &vg, &e)) {
		dlvm_dev_close(dev);
		return;
	}
	dlvm_dev_close(dev); /* NULL when the VG took it */
	for (size_t i = 0; i < vg->nlv && !lv; i++)
		if (vg->lvs[i]->flags & DLVM_LV_LOCKSPACE)
			lv = vg->lvs[i];
	const struct dlvm_pv *pv = lv && lv->nseg == 1
						   ? dlvm_pv_find_id(vg, lv->segs[0]->area[0].pv_id)
						   : NULL;
	if (!pv || !pv->dev) {
		dlvm_vg_free(vg);
		return;
	}
	uint64_t es = vg->info.extent_size;
	uint64_t off = pv->d.pe_start + lv->segs[0]->area[0].pe_start * es;
	fprintf(f, "\nlease area in %s/[%s] at offset %" PRIu64 " (%" PRIu64 " bytes):\n",
		vg->info.name, lv->name, off, lv->le_count * es);
	if (dlvm_lease_area_open(pv->dev, off, lv->le_count * es, &area, &e)) {
		fprintf(f, "  DAMAGED: %s\n", e.msg);
		dlvm_vg_free(vg);
		return;
	}
	const struct dlvm_lease_area_header *h = &area->hdr;
	dlvm_uuid_unparse(h->vg_uuid, u);
	fprintf(f, "  version            %u.%u\n", h->major, h->minor);
	hexflags(f, "features", h->compat, h->ro_compat, h->incompat);
	fprintf(f, "  vg_uuid            %s\n", u);
	fprintf(f, "  sector_size        %u\n", h->sector_size);
	fprintf(f, "  max_hosts          %u\n", h->max_hosts);
	fprintf(f, "  io_timeout         %u\n", h->io_timeout);
	fprintf(f, "  area_size          %" PRIu64 "\n", h->area_size);
	fprintf(f, "  lockspace          %" PRIu64 " bytes at +%" PRIu64 "\n", h->lockspace_size,
		h->lockspace_offset);
	fprintf(f, "  resources          %u x %" PRIu64 " bytes at +%" PRIu64 "\n", h->nres,
		h->resource_stride, h->resource_offset);

	uint8_t *buf = dlvm_io_alloc(DLVM_MAX(h->lockspace_size, h->resource_stride));
	if (!buf) {
		fprintf(f, "  out of memory\n");
		goto out;
	}
	fprintf(f, "Delta leases at offset %" PRIu64 ":\n", off + h->lockspace_offset);
	dlvm_err_clear(&e);
	if (dlvm_dev_read(pv->dev, buf, h->lockspace_size, off + h->lockspace_offset, &e)) {
		fprintf(f, "  DAMAGED: %s\n", e.msg);
	} else {
		bool used = false;
		for (uint32_t id = 1; id <= h->max_hosts; id++) {
			struct dlvm_delta_record d;
			dlvm_err_clear(&e);
			if (dlvm_delta_decode(buf + (size_t)(id - 1) * h->sector_size, &d, &e)) {
				fprintf(f, "  host %-4u          DAMAGED: %s\n", id, e.msg);
				used = true;
			} else if (d.host_id) {
				dump_delta(f, id, &d);
				used = true;
			}
		}
		if (!used)
			fprintf(f, "  (no host id ever used)\n");
	}
	for (uint32_t r = 0; r < h->nres; r++)
		dump_resource(f, pv->dev, off, h, r, buf);
	fprintf(f, "Lock table (activation records in the journal):\n");
	bool any = false;
	for (size_t i = 0; i < vg->nlv; i++) {
		const struct dlvm_lv *m = vg->lvs[i];
		if (!m->nholders)
			continue;
		any = true;
		fprintf(f, "  %s/%s", vg->info.name, m->name);
		for (uint32_t k = 0; k < m->nholders; k++)
			fprintf(f, " [host %u %s gen %" PRIu64 "]", m->holders[k].host_id,
				m->holders[k].mode == DLVM_HOLD_EXCLUSIVE ? "ex" : "sh",
				m->holders[k].generation);
		fprintf(f, "\n");
	}
	if (!any)
		fprintf(f, "  (none)\n");
	free(buf);
out:
	dlvm_lease_area_close(area);
	dlvm_vg_free(vg);
}

DLVM_CMD_FN(cmd_dump)
{
	size_t n = json_array_size(args);
	char *text = NULL;
	size_t len = 0;
	int r = 0;

	(void)opts;
	if (!n)
		return dlvm_err_set(err, -EINVAL, "dump: give a device or file");
	/* through dlvmd: only what it manages, checked before any is opened */
	for (size_t i = 0; i < n; i++)
		if ((r = ctx_path_allowed(ctx, arg_str(args, i), err)))
			return r;
	FILE *f = open_memstream(&text, &len);
	if (!f)
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	for (size_t i = 0; i < n && !r; i++) {
		struct dlvm_dev *dev;
		if ((r = dlvm_dev_open(arg_str(args, i), DLVM_DEV_RDONLY, &dev, err)))
			break;
		r = dump_device(dev, f, err);
		dlvm_dev_close(dev);
		if (!r)
			dump_thin_stores(arg_str(args, i), f);
		if (!r)
			dump_lease_area(arg_str(args, i), f);
	}
	fclose(f);
	json_object_set_new(resp, "text", json_string(text ? text : ""));
	free(text);
	return r;
}
