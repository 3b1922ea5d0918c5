/* SPDX-License-Identifier: MIT */
/*
 * Fuzz every decoder of the on-disk format: the PV header, the MDA header
 * slot, checkpoint and record headers, and edit streams, which are also
 * applied to a VG model (so apply's checks see arbitrary edits). Magic and
 * CRCs are fixed up after mutation unless the input says not to, so the
 * fuzzer reaches the field checks. A decoder that accepts bytes must
 * re-encode them to bytes it accepts again.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dlvm/format.h"
#include "dlvm/util.h"
#include "dlvm/vg.h"
#include "lib/meta/meta.h"

/* Stamp magic and a matching CRC on a 512-byte structure, so that the
 * decoder gets past both to the version, reserved bytes and field checks. */
static void seal(uint8_t *p, const char *magic)
{
	memcpy(p, magic, 8);
	dlvm_put_le32(p + DLVM_STRUCT_SIZE - 4, dlvm_crc32c(p, DLVM_STRUCT_SIZE - 4));
}

static void fuzz_pv_header(const uint8_t buf[DLVM_STRUCT_SIZE])
{
	uint8_t again[DLVM_STRUCT_SIZE];
	struct dlvm_pv_header ph, ph2;
	struct dlvm_err e = { 0 };

	if (!dlvm_pv_header_decode(buf, &ph, &e)) {
		dlvm_pv_header_encode(&ph, again);
		if (dlvm_pv_header_decode(again, &ph2, NULL))
			abort();
	} else if (e.code == 0 || !e.msg[0]) {
		abort(); /* a refusal always says why */
	}
}

static void fuzz_mda_header(const uint8_t buf[DLVM_STRUCT_SIZE])
{
	uint8_t again[DLVM_STRUCT_SIZE];
	struct dlvm_mda_header mh, mh2;
	struct dlvm_err e = { 0 };

	if (!dlvm_mda_header_decode(buf, &mh, &e)) {
		dlvm_mda_header_encode(&mh, again);
		if (dlvm_mda_header_decode(again, &mh2, NULL))
			abort();
		/* a slot that fits the area the codec allows fits it */
		if (dlvm_mda_header_check_area(&mh, mh.mda_size, NULL))
			abort();
		dlvm_mda_header_check_area(&mh, 1 << 20, NULL);
	} else if (e.code == 0 || !e.msg[0]) {
		abort();
	}
}

/* A blob header with its payload: magic and CRC (over header and payload)
 * fixed up when fix is set. */
static void fuzz_blob(const uint8_t *data, size_t size, const char *magic, bool fix)
{
	struct dlvm_blob_header bh;
	uint8_t *p = malloc(size ? size : 1);

	if (!p)
		return;
	memcpy(p, data, size);
	if (fix && size >= DLVM_BLOB_HEADER_SIZE) {
		uint32_t plen = dlvm_get_le32(p + 44);
		memcpy(p, magic, 8);
		if (plen <= size - DLVM_BLOB_HEADER_SIZE) {
			dlvm_put_le32(p + 56, 0);
			dlvm_put_le32(p + 56, dlvm_crc32c(p, DLVM_BLOB_HEADER_SIZE + plen));
		}
	}
	if (!dlvm_blob_decode(p, size, magic, &bh, NULL) &&
	    bh.payload_len > size - DLVM_BLOB_HEADER_SIZE)
		abort();
	free(p);
}

/* Input byte 0, bit 0: keep magic and CRCs as they are; the rest is the
 * structure (and, for fuzz_edits, an edit stream). */
static void fuzz_headers(const uint8_t *data, size_t size)
{
	uint8_t buf[DLVM_STRUCT_SIZE] = { 0 }, pv[DLVM_STRUCT_SIZE], mdh[DLVM_STRUCT_SIZE];
	bool fix = !(data[0] & 1);

	data++;
	size--;
	memcpy(buf, data, size < sizeof(buf) ? size : sizeof(buf));
	memcpy(pv, buf, sizeof(pv));
	memcpy(mdh, buf, sizeof(mdh));
	if (fix) {
		seal(pv, DLVM_PV_MAGIC);
		seal(mdh, DLVM_MDH_MAGIC);
	}
	fuzz_pv_header(pv);
	fuzz_mda_header(mdh);
	fuzz_blob(data, size, DLVM_REC_MAGIC, fix);
	fuzz_blob(data, size, DLVM_CKPT_MAGIC, fix);
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
	if (size < 1)
		return 0;
	fuzz_headers(data, size);
	fuzz_edits(data + 1, size - 1);
	return 0;
}
