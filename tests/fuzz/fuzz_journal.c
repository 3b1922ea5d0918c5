/* SPDX-License-Identifier: MIT */
/*
 * Fuzz loading a VG from damaged metadata: a real PV and VG with a few LVs
 * are made on a memory device, then the input overwrites bytes of the
 * metadata area (header slots, checkpoint, journal ring) before the VG is
 * loaded and checked. Loading must fail cleanly or give a consistent VG.
 * After patching, the CRCs of every record and checkpoint the header slots
 * point at, then of the slots themselves, are fixed up (unless the input
 * says not to), so the fuzzer reaches the field checks and the replay.
 *
 * Input: byte 0 bit 0 = keep checksums as they are; then records of
 * (u32 offset in the metadata area and label, u8 length, bytes).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dlvm/util.h"
#include "dlvm/vg.h"
#include "lib/format/layout.h"
#include "lib/meta/meta.h"
#include "tests/fuzz/patch.h"

#define DEV_SIZE (4u << 20)
#define MDA_SIZE (1u << 20)

static uint8_t *pristine;

static void make_pristine(void)
{
	struct dlvm_pvcreate_opts o = { .mda_size = MDA_SIZE };
	struct dlvm_dev *dev = dlvm_memdev_new("fz", DEV_SIZE, 512);
	struct dlvm_vg *vg = NULL;

	if (!dev || dlvm_pv_format(dev, &o, NULL) ||
	    dlvm_vg_create("vg0", 64 << 10, &dev, 1, &vg, NULL))
		abort();
	for (int i = 0; i < 6; i++) {
		struct dlvm_edit e = { .type = DLVM_EDIT_LV_CREATE };
		struct dlvm_txn t;
		if (dlvm_alloc(vg, NULL, 1 + (uint64_t)i % 3, 1, 0, NULL, 0, &e.u.lv.segs,
			       &e.u.lv.nseg, NULL))
			abort();
		e.u.lv.id = vg->info.next_lv_id;
		e.u.lv.uuid[0] = (uint8_t)(i + 1);
		e.u.lv.name[0] = (char)('a' + i);
		dlvm_txn_init(&t);
		dlvm_txn_add(&t, &e);
		if (dlvm_txn_commit(vg, &t, NULL))
			abort();
		dlvm_txn_release(&t);
	}
	pristine = malloc(DEV_SIZE);
	memcpy(pristine, dlvm_memdev_data(vg->pvs[0]->dev), DEV_SIZE);
	dlvm_vg_free(vg);
}

/* The blob at p (avail bytes): when it carries magic and its payload fits,
 * a CRC over header and payload. */
static void fix_blob(uint8_t *p, uint64_t avail, const char *magic)
{
	if (avail < DLVM_BLOB_HEADER_SIZE || memcmp(p + BH_MAGIC, magic, 8))
		return;
	uint64_t plen = dlvm_get_le32(p + BH_PLEN);
	if (plen > avail - DLVM_BLOB_HEADER_SIZE)
		return;
	dlvm_put_le32(p + BH_CRC, 0);
	dlvm_put_le32(p + BH_CRC, dlvm_crc32c(p, DLVM_BLOB_HEADER_SIZE + (size_t)plen));
}

static void fix_checksums(uint8_t *d)
{
	uint8_t *mda = d + DLVM_MDA_OFFSET;

	for (unsigned s = 0; s < 2; s++) {
		uint8_t *h = mda + s * DLVM_BLOCK;
		if (memcmp(h, DLVM_MDH_MAGIC, 8))
			continue;
		uint64_t co = dlvm_get_le64(h + MDH_CKPT_OFF),
			 cs = dlvm_get_le64(h + MDH_CKPT_SIZE);
		uint64_t ro = dlvm_get_le64(h + MDH_RING_OFF),
			 rs = dlvm_get_le64(h + MDH_RING_SIZE);
		uint64_t slot = dlvm_get_le32(h + MDH_CKPT_SLOT) & 1;
		uint64_t len = dlvm_get_le64(h + MDH_CKPT_LEN);
		if (co < MDA_SIZE && cs <= MDA_SIZE && co + (slot + 1) * cs <= MDA_SIZE &&
		    len <= cs) {
			uint8_t *ck = mda + co + slot * cs;
			fix_blob(ck, len, DLVM_CKPT_MAGIC);
			dlvm_put_le32(h + MDH_CKPT_CRC, dlvm_crc32c(ck, (size_t)len));
		}
		if (ro < MDA_SIZE && rs <= MDA_SIZE - ro)
			for (uint64_t p = 0; p < rs; p += 512)
				fix_blob(mda + ro + p, rs - p, DLVM_REC_MAGIC);
		dlvm_put_le32(h + MDH_CRC, dlvm_crc32c(h, MDH_CRC));
	}
	uint8_t *ph = d + DLVM_PV_HEADER_OFFSET;
	if (!memcmp(ph, DLVM_PV_MAGIC, 8))
		dlvm_put_le32(ph + 508, dlvm_crc32c(ph, 508));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!pristine)
		make_pristine();
	struct dlvm_dev *dev = dlvm_memdev_new("fz", DEV_SIZE, 512);
	if (!dev)
		return 0;
	uint8_t *d = dlvm_memdev_data(dev);
	memcpy(d, pristine, DEV_SIZE);
	if (size < 1) {
		dlvm_dev_close(dev);
		return 0;
	}
	bool fix = !(data[0] & 1);
	data++;
	size--;
	fuzz_patch(d, DEV_SIZE, DLVM_MDA_OFFSET + MDA_SIZE, 4, data, size);
	if (fix)
		fix_checksums(d);
	struct dlvm_vg *vg = NULL;
	struct dlvm_dev *devs[1] = { dev };
	if (!dlvm_vg_load(devs, 1, NULL, &vg, NULL)) {
		struct dlvm_check_report rep;
		if (!dlvm_vg_check(vg, true, &rep, NULL))
			dlvm_check_report_release(&rep);
		dlvm_vg_free(vg);
	} else {
		dlvm_dev_close(dev);
	}
	return 0;
}
