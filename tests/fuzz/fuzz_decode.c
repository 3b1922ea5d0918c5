/* SPDX-License-Identifier: MIT */
/*
 * Fuzz every decoder of the on-disk format: the PV header, the MDA header
 * slot, checkpoint and record headers, and edit streams, which are also
 * applied to a VG model (so apply's checks see arbitrary edits). A decoder
 * that accepts bytes must re-encode them to bytes it accepts again.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dlvm/format.h"
#include "dlvm/vg.h"
#include "lib/meta/meta.h"

static void fuzz_headers(const uint8_t *data, size_t size)
{
	uint8_t buf[DLVM_STRUCT_SIZE] = { 0 }, again[DLVM_STRUCT_SIZE];
	struct dlvm_pv_header ph, ph2;
	struct dlvm_mda_header mh, mh2;
	struct dlvm_err e = { 0 };

	memcpy(buf, data, size < sizeof(buf) ? size : sizeof(buf));
	if (!dlvm_pv_header_decode(buf, &ph, &e)) {
		dlvm_pv_header_encode(&ph, again);
		if (dlvm_pv_header_decode(again, &ph2, NULL))
			abort();
	}
	dlvm_err_clear(&e);
	if (!dlvm_mda_header_decode(buf, &mh, &e)) {
		dlvm_mda_header_encode(&mh, again);
		if (dlvm_mda_header_decode(again, &mh2, NULL))
			abort();
	}
	struct dlvm_blob_header bh;
	dlvm_blob_decode(data, size, DLVM_REC_MAGIC, &bh, NULL);
	dlvm_blob_decode(data, size, DLVM_CKPT_MAGIC, &bh, NULL);
}

static void fuzz_edits(const uint8_t *data, size_t size)
{
	struct dlvm_vg *vg = dlvm_vg_new();
	struct dlvm_edit e = { .type = DLVM_EDIT_VG_INFO };
	size_t pos = 0;

	if (!vg)
		return;
	/* a VG with two PVs, so LV edits have extents to take */
	strcpy(e.u.vg.name, "vg0");
	e.u.vg.uuid[0] = 1;
	e.u.vg.extent_size = 1 << 20;
	e.u.vg.next_lv_id = 1;
	e.u.vg.next_pv_id = 1;
	dlvm_vg_apply(vg, &e, NULL);
	for (uint32_t id = 1; id <= 2; id++) {
		struct dlvm_edit pe = { .type = DLVM_EDIT_PV_ADD };
		pe.u.pv.id = id;
		pe.u.pv.uuid[0] = (uint8_t)id;
		pe.u.pv.pe_count = 64;
		pe.u.pv.sector_size = 512;
		dlvm_vg_apply(vg, &pe, NULL);
	}
	while (pos < size) {
		struct dlvm_edit ed;
		struct dlvm_buf b = { 0 };
		if (dlvm_edit_decode(data, size, &pos, &ed, NULL))
			break;
		/* round trip: what decodes must encode and decode the same way */
		if (!dlvm_edit_encode(&ed, &b)) {
			size_t p2 = 0;
			struct dlvm_edit ed2;
			if (dlvm_edit_decode(b.data, b.len, &p2, &ed2, NULL) || p2 != b.len)
				abort();
			dlvm_edit_release(&ed2);
		}
		dlvm_buf_release(&b);
		dlvm_vg_apply(vg, &ed, NULL);
		dlvm_edit_release(&ed);
	}
	/* whatever was applied must still be self-consistent */
	struct dlvm_buf st = { 0 };
	if (!dlvm_vg_encode_state(vg, &st)) {
		struct dlvm_vg *copy = dlvm_vg_new();
		size_t p = 0;
		while (copy && p < st.len) {
			struct dlvm_edit ed;
			if (dlvm_edit_decode(st.data, st.len, &p, &ed, NULL))
				abort();
			if (dlvm_vg_apply(copy, &ed, NULL))
				abort();
			dlvm_edit_release(&ed);
		}
		dlvm_vg_free(copy);
	}
	dlvm_buf_release(&st);
	dlvm_vg_free(vg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_headers(data, size);
	fuzz_edits(data, size);
	return 0;
}
