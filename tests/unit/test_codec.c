/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the on-disk codecs (lib/format): PV header, MDA header slot,
 * blob header of checkpoints and records, and the edit TLV stream. Every
 * field is corrupted in turn; the CRC is fixed up afterwards so that the
 * field's own check is the one that fires.
 */
#include "helpers.h"
#include "lib/meta/meta.h"

#define HDR_CRC 508 /* CRC32C of a 512-byte header structure, over bytes 0..507 */
#define BH_CRC 56   /* CRC32C field of a blob header */

static void put_le(uint8_t *p, unsigned width, uint64_t v)
{
	for (unsigned i = 0; i < width; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void fix_hdr_crc(uint8_t *buf)
{
	dlvm_put_le32(buf + HDR_CRC, dlvm_crc32c(buf, HDR_CRC));
}

static void fix_blob_crc(uint8_t *buf, uint32_t payload_len)
{
	dlvm_put_le32(buf + BH_CRC, 0);
	dlvm_put_le32(buf + BH_CRC, dlvm_crc32c(buf, DLVM_BLOB_HEADER_SIZE + payload_len));
}

/* A corruption: write `value` (width bytes, little endian) at off. */
struct bad_field {
	unsigned off, width;
	uint64_t value;
	int code;
	const char *msg;
};

/* ---- PV header ---- */

static void pv_header_sample(struct dlvm_pv_header *h)
{
	memset(h, 0, sizeof(*h));
	h->major = DLVM_FORMAT_MAJOR;
	h->minor = 3;
	for (int i = 0; i < 16; i++)
		h->pv_uuid[i] = (uint8_t)(0xa0 + i);
	h->sector_size = 4096;
	h->device_size = 1ull << 30;
	h->mda_offset = DLVM_MDA_OFFSET;
	h->mda_size = MiB;
	h->data_offset = 2 * MiB;
	h->data_size = (1ull << 30) - 2 * MiB;
	h->ctime = 1700000123;
	snprintf(h->hostname, sizeof(h->hostname), "host-a.example");
}

static void pv_header_roundtrip(void **state)
{
	struct dlvm_pv_header h, d;
	struct dlvm_err e = { 0 };
	uint8_t buf[DLVM_STRUCT_SIZE];
	(void)state;

	pv_header_sample(&h);
	h.compat = 0x10;    /* unknown compatible features are ignored */
	h.ro_compat = 0x20; /* unknown read-only features decode: the caller decides */
	dlvm_pv_header_encode(&h, buf);
	assert_memory_equal(buf, DLVM_PV_MAGIC, 8);
	assert_int_equal(dlvm_get_le32(buf + HDR_CRC), dlvm_crc32c(buf, HDR_CRC));
	assert_ok(dlvm_pv_header_decode(buf, &d, &e), &e);
	assert_int_equal(d.major, h.major);
	assert_int_equal(d.minor, 3);
	assert_int_equal(d.compat, 0x10);
	assert_int_equal(d.ro_compat, 0x20);
	assert_int_equal(d.incompat, 0);
	assert_memory_equal(d.pv_uuid, h.pv_uuid, 16);
	assert_int_equal(d.sector_size, 4096);
	assert_int_equal(d.device_size, h.device_size);
	assert_int_equal(d.mda_offset, DLVM_MDA_OFFSET);
	assert_int_equal(d.mda_size, MiB);
	assert_int_equal(d.lease_offset, 0);
	assert_int_equal(d.lease_size, 0);
	assert_int_equal(d.data_offset, 2 * MiB);
	assert_int_equal(d.data_size, h.data_size);
	assert_int_equal(d.ctime, 1700000123);
	assert_string_equal(d.hostname, "host-a.example");

	/* a host name of the full 64 bytes keeps all of them */
	memset(h.hostname, 'h', 64);
	h.hostname[64] = '\0';
	dlvm_pv_header_encode(&h, buf);
	assert_ok(dlvm_pv_header_decode(buf, &d, &e), &e);
	assert_int_equal(strlen(d.hostname), 64);

	/* the encoding of fixed fields is little endian at fixed offsets */
	assert_int_equal(dlvm_get_le16(buf + 8), DLVM_FORMAT_MAJOR);
	assert_int_equal(dlvm_get_le32(buf + 12), DLVM_STRUCT_SIZE);
	assert_int_equal(dlvm_get_le32(buf + 56), 4096);
	assert_int_equal(dlvm_get_le64(buf + 104), 2 * MiB);
}

static void pv_header_corrupt_fields(void **state)
{
	const uint64_t G = 1ull << 30;
	const struct bad_field bad[] = {
		{ 8, 2, 2, -ENOTSUP, "format version 2 is not supported" },
		{ 8, 2, 0, -ENOTSUP, "format version 0 is not supported" },
		{ 12, 4, 256, -EBADMSG, "header size 256, expected 512" },
		{ 12, 4, 0x10200, -EBADMSG, "header size 66048, expected 512" },
		{ 32, 8, 1ull << 5, -ENOTSUP, "unknown incompatible features 0x20" },
		{ 32, 8, DLVM_INCOMPAT_LEASES, -ENOTSUP, "unknown incompatible features 0x1 " },
		{ 32, 8, 1ull << 63, -ENOTSUP, "unknown incompatible features 0x8000000000000000" },
		{ 40, 16, 0, -EBADMSG, "field pv_uuid is all zero" },
		{ 56, 4, 1024, -EBADMSG, "field sector_size is 1024, not 512 or 4096" },
		{ 56, 4, 0, -EBADMSG, "field sector_size is 0" },
		{ 72, 8, 4096, -EBADMSG, "field mda_offset is 4096, expected 8192" },
		{ 80, 8, 4096, -EBADMSG,
		  "field mda_size 4096 is not a multiple of 4096 of at "
		  "least 1 MiB" },
		{ 80, 8, MiB + 512, -EBADMSG, "field mda_size 1049088" },
		{ 88, 8, 1, -EBADMSG, "field lease_offset/lease_size is set" },
		{ 96, 8, MiB, -EBADMSG, "field lease_offset/lease_size is set" },
		{ 104, 8, MiB, -EBADMSG, "field data_offset 1048576 overlaps the metadata area" },
		{ 104, 8, 3 * MiB + 4096, -EBADMSG,
		  "field data_offset 3149824 overlaps the "
		  "metadata area or is not 1 MiB aligned" },
		{ 112, 8, G, -EBADMSG,
		  "field data_size 1073741824 runs past the device size "
		  "1073741824" },
		{ 112, 8, UINT64_MAX, -EBADMSG, "field data_size 18446744073709551615 runs past" },
		{ 64, 8, 64 * MiB, -EBADMSG, "runs past the device size 67108864" },
		{ 192, 1, 1, -EBADMSG, "reserved byte 192 is not zero" },
		{ 300, 1, 0xff, -EBADMSG, "reserved byte 300 is not zero" },
		{ 507, 1, 0x80, -EBADMSG, "reserved byte 507 is not zero" },
	};
	struct dlvm_pv_header h, d;
	struct dlvm_err e = { 0 };
	uint8_t good[DLVM_STRUCT_SIZE], buf[DLVM_STRUCT_SIZE];
	(void)state;

	pv_header_sample(&h);
	dlvm_pv_header_encode(&h, good);
	for (size_t i = 0; i < DLVM_ARRAY_SIZE(bad); i++) {
		memcpy(buf, good, sizeof(buf));
		if (bad[i].width == 16)
			memset(buf + bad[i].off, (int)bad[i].value, 16);
		else
			put_le(buf + bad[i].off, bad[i].width, bad[i].value);
		fix_hdr_crc(buf);
		print_message("PV header byte %u: %s\n", bad[i].off, bad[i].msg);
		assert_err(dlvm_pv_header_decode(buf, &d, &e), &e, bad[i].code, bad[i].msg);
	}
}

static void pv_header_magic_and_crc(void **state)
{
	struct dlvm_pv_header h, d;
	struct dlvm_err e = { 0 };
	uint8_t good[DLVM_STRUCT_SIZE], buf[DLVM_STRUCT_SIZE];
	(void)state;

	pv_header_sample(&h);
	dlvm_pv_header_encode(&h, good);

	/* no label at all: -ENODATA, so callers can tell "not a PV" from "damaged" */
	memset(buf, 0, sizeof(buf));
	assert_err(dlvm_pv_header_decode(buf, &d, &e), &e, -ENODATA,
		   "no dlvm PV label (bad magic)");
	for (unsigned i = 0; i < 8; i++) {
		memcpy(buf, good, sizeof(buf));
		buf[i] ^= 0x01;
		fix_hdr_crc(buf);
		assert_err(dlvm_pv_header_decode(buf, &d, &e), &e, -ENODATA, "bad magic");
	}
	/* any other byte changed without fixing the CRC: checksum mismatch */
	const unsigned bytes[] = { 8, 40, 63, 128, 200, 400, 508, 511 };
	for (size_t i = 0; i < DLVM_ARRAY_SIZE(bytes); i++) {
		memcpy(buf, good, sizeof(buf));
		buf[bytes[i]] ^= 0x40;
		assert_err(dlvm_pv_header_decode(buf, &d, &e), &e, -EBADMSG, "checksum mismatch");
	}
	memcpy(buf, good, sizeof(buf));
	dlvm_put_le32(buf + HDR_CRC, 0x12345678);
	char want[80];
	snprintf(want, sizeof(want), "checksum mismatch (stored 0x12345678, computed 0x%08x)",
		 dlvm_crc32c(good, HDR_CRC));
	assert_err(dlvm_pv_header_decode(buf, &d, &e), &e, -EBADMSG, want);
	/* the unused bytes after the 512-byte structure are not part of it */
	memcpy(buf, good, sizeof(buf));
	assert_ok(dlvm_pv_header_decode(buf, &d, &e), &e);
}

/* ---- MDA header ---- */

static void mda_header_sample(struct dlvm_mda_header *h)
{
	memset(h, 0, sizeof(*h));
	h->major = DLVM_FORMAT_MAJOR;
	h->minor = 1;
	for (int i = 0; i < 16; i++) {
		h->vg_uuid[i] = (uint8_t)(i + 1);
		h->pv_uuid[i] = (uint8_t)(0xf0 - i);
	}
	dlvm_mda_geometry(MiB, h);
	h->generation = 77;
	h->ckpt_slot = 1;
	h->ckpt_seq = 42;
	h->ckpt_len = 5000;
	h->ckpt_crc = 0xdeadbeef;
	h->journal_start = 4096;
}

static void mda_geometry_of_1mib(void **state)
{
	struct dlvm_mda_header h;
	(void)state;

	dlvm_mda_geometry(MiB, &h);
	assert_int_equal(h.mda_size, MiB);
	assert_int_equal(h.ckpt_offset, 8192);
	assert_int_equal(h.ckpt_size, 389120);
	assert_int_equal(h.ring_offset, 786432);
	assert_int_equal(h.ring_size, 262144);
	assert_int_equal(h.ring_offset + h.ring_size, MiB);
}

static void mda_header_roundtrip(void **state)
{
	struct dlvm_mda_header h, d;
	struct dlvm_err e = { 0 };
	uint8_t buf[DLVM_STRUCT_SIZE];
	(void)state;

	mda_header_sample(&h);
	h.compat = 0x4;
	h.ro_compat = 0x8;
	dlvm_mda_header_encode(&h, buf);
	assert_memory_equal(buf, DLVM_MDH_MAGIC, 8);
	assert_ok(dlvm_mda_header_decode(buf, &d, &e), &e);
	assert_int_equal(d.major, DLVM_FORMAT_MAJOR);
	assert_int_equal(d.minor, 1);
	assert_int_equal(d.compat, 0x4);
	assert_int_equal(d.ro_compat, 0x8);
	assert_int_equal(d.incompat, 0);
	assert_memory_equal(d.vg_uuid, h.vg_uuid, 16);
	assert_memory_equal(d.pv_uuid, h.pv_uuid, 16);
	assert_int_equal(d.generation, 77);
	assert_int_equal(d.mda_size, MiB);
	assert_int_equal(d.ckpt_offset, h.ckpt_offset);
	assert_int_equal(d.ckpt_size, h.ckpt_size);
	assert_int_equal(d.ring_offset, h.ring_offset);
	assert_int_equal(d.ring_size, h.ring_size);
	assert_int_equal(d.ckpt_slot, 1);
	assert_int_equal(d.ckpt_seq, 42);
	assert_int_equal(d.ckpt_len, 5000);
	assert_int_equal(d.ckpt_crc, 0xdeadbeef);
	assert_int_equal(d.journal_start, 4096);

	/* an orphan PV's header: no VG, no checkpoint */
	memset(h.vg_uuid, 0, 16);
	h.ckpt_len = 0;
	h.ckpt_seq = 0;
	h.journal_start = 0;
	dlvm_mda_header_encode(&h, buf);
	assert_ok(dlvm_mda_header_decode(buf, &d, &e), &e);
	assert_true(dlvm_uuid_is_zero(d.vg_uuid));
}

static void mda_header_corrupt_fields(void **state)
{
	const struct bad_field bad[] = {
		{ 8, 2, 3, -ENOTSUP, "format version 3 is not supported" },
		{ 12, 4, 1024, -EBADMSG, "header size 1024, expected 512" },
		{ 12, 4, 0x20200, -EBADMSG, "header size 131584, expected 512" },
		{ 32, 8, 0x100, -ENOTSUP, "unknown incompatible features 0x100" },
		{ 88, 8, 4096, -EBADMSG,
		  "fields ckpt_offset/ckpt_size (4096/389120) are out of range" },
		{ 88, 8, 8192 + 512, -EBADMSG, "fields ckpt_offset/ckpt_size (8704/389120)" },
		{ 96, 8, 0, -EBADMSG, "fields ckpt_offset/ckpt_size (8192/0)" },
		{ 96, 8, 1000, -EBADMSG, "fields ckpt_offset/ckpt_size (8192/1000)" },
		{ 96, 8, 1ull << 63, -EBADMSG,
		  "fields ckpt_offset/ckpt_size (8192/9223372036854775808)" },
		{ 96, 8, (UINT64_MAX - 8191) / 2 / 4096 * 4096, -EBADMSG,
		  "fields ckpt_offset/ckpt_size" },
		{ 104, 8, 8192, -EBADMSG,
		  "fields ring_offset/ring_size (8192/262144) are out of range" },
		{ 104, 8, 786432 + 512, -EBADMSG, "fields ring_offset/ring_size (786944/262144)" },
		{ 112, 8, 12288, -EBADMSG, "fields ring_offset/ring_size (786432/12288)" },
		{ 112, 8, 266240, -EBADMSG, "fields ring_offset/ring_size (786432/266240)" },
		{ 112, 8, 262144 + 100, -EBADMSG, "fields ring_offset/ring_size (786432/262244)" },
		{ 104, 8, UINT64_MAX - 4095, -EBADMSG, "fields ring_offset/ring_size" },
		{ 80, 8, MiB - 4096, -EBADMSG, "fields ring_offset/ring_size (786432/262144)" },
		{ 120, 4, 2, -EBADMSG, "field ckpt_slot is 2, not 0 or 1" },
		{ 136, 8, 389121, -EBADMSG,
		  "field ckpt_len 389121 exceeds the region size 389120" },
		{ 136, 8, 63, -EBADMSG, "field ckpt_len 63 is too small" },
		{ 152, 8, 262144, -EBADMSG,
		  "field journal_start 262144 is outside the ring or "
		  "unaligned" },
		{ 152, 8, 1000, -EBADMSG, "field journal_start 1000 is outside the ring" },
		{ 160, 1, 1, -EBADMSG, "reserved byte 160 is not zero" },
		{ 507, 1, 1, -EBADMSG, "reserved byte 507 is not zero" },
	};
	struct dlvm_mda_header h, d;
	struct dlvm_err e = { 0 };
	uint8_t good[DLVM_STRUCT_SIZE], buf[DLVM_STRUCT_SIZE];
	(void)state;

	mda_header_sample(&h);
	dlvm_mda_header_encode(&h, good);
	for (size_t i = 0; i < DLVM_ARRAY_SIZE(bad); i++) {
		memcpy(buf, good, sizeof(buf));
		put_le(buf + bad[i].off, bad[i].width, bad[i].value);
		fix_hdr_crc(buf);
		print_message("MDA header byte %u: %s\n", bad[i].off, bad[i].msg);
		assert_err(dlvm_mda_header_decode(buf, &d, &e), &e, bad[i].code, bad[i].msg);
	}

	/* magic first, then the checksum */
	memcpy(buf, good, sizeof(buf));
	buf[3] = 'X';
	fix_hdr_crc(buf);
	assert_err(dlvm_mda_header_decode(buf, &d, &e), &e, -EBADMSG,
		   "bad magic (not a metadata area header)");
	memcpy(buf, good, sizeof(buf));
	buf[72] ^= 1; /* generation, CRC not fixed */
	assert_err(dlvm_mda_header_decode(buf, &d, &e), &e, -EBADMSG, "checksum mismatch (stored");
	memcpy(buf, good, sizeof(buf));
	buf[HDR_CRC + 3] ^= 0x80;
	assert_err(dlvm_mda_header_decode(buf, &d, &e), &e, -EBADMSG, "checksum mismatch");
}

/* ---- blob header ---- */

#define PAYLOAD 100u

static void blob_sample(uint8_t *buf, struct dlvm_blob_header *h)
{
	memset(h, 0, sizeof(*h));
	memcpy(h->magic, DLVM_REC_MAGIC, 8);
	h->major = DLVM_FORMAT_MAJOR;
	h->minor = 2;
	for (int i = 0; i < 16; i++)
		h->vg_uuid[i] = (uint8_t)(3 * i + 1);
	h->seq = 0x1122334455ull;
	h->type = DLVM_REC_TXN;
	h->payload_len = PAYLOAD;
	h->timestamp = 1700000456;
	for (unsigned i = 0; i < PAYLOAD; i++)
		buf[DLVM_BLOB_HEADER_SIZE + i] = (uint8_t)(i * 7);
	dlvm_blob_encode(h, buf);
}

static void blob_roundtrip(void **state)
{
	uint8_t buf[4096] = { 0 };
	struct dlvm_blob_header h, d;
	struct dlvm_err e = { 0 };
	(void)state;

	blob_sample(buf, &h);
	assert_int_equal(dlvm_get_le32(buf + BH_CRC), h.crc);
	assert_ok(dlvm_blob_decode(buf, DLVM_BLOB_HEADER_SIZE + PAYLOAD, DLVM_REC_MAGIC, &d, &e),
		  &e);
	assert_memory_equal(d.magic, DLVM_REC_MAGIC, 8);
	assert_int_equal(d.major, DLVM_FORMAT_MAJOR);
	assert_int_equal(d.minor, 2);
	assert_memory_equal(d.vg_uuid, h.vg_uuid, 16);
	assert_int_equal(d.seq, 0x1122334455ull);
	assert_int_equal(d.type, DLVM_REC_TXN);
	assert_int_equal(d.payload_len, PAYLOAD);
	assert_int_equal(d.timestamp, 1700000456);
	assert_int_equal(d.crc, h.crc);
	/* more readable bytes than the blob: fine */
	assert_ok(dlvm_blob_decode(buf, sizeof(buf), DLVM_REC_MAGIC, &d, &e), &e);

	/* a checkpoint header with no payload */
	struct dlvm_blob_header c = h;
	memcpy(c.magic, DLVM_CKPT_MAGIC, 8);
	c.type = 0;
	c.payload_len = 0;
	dlvm_blob_encode(&c, buf);
	assert_ok(dlvm_blob_decode(buf, DLVM_BLOB_HEADER_SIZE, DLVM_CKPT_MAGIC, &d, &e), &e);
	assert_int_equal(d.payload_len, 0);
	assert_int_equal(d.type, 0);
}

static void blob_corrupt_fields(void **state)
{
	const struct bad_field bad[] = {
		{ 8, 2, 2, -ENOTSUP, "format version 2 is not supported" },
		{ 12, 4, 128, -EBADMSG, "header size 128, expected 64" },
		{ 12, 4, 0x10040, -EBADMSG, "header size 65600, expected 64" },
		{ 44, 4, PAYLOAD + 1, -EBADMSG, "field payload_len 101 runs past the area" },
		{ 44, 4, UINT32_MAX, -EBADMSG, "field payload_len 4294967295 runs past the area" },
		{ 60, 4, 1, -EBADMSG, "reserved byte 60 is not zero" },
		{ 63, 1, 0x80, -EBADMSG, "reserved byte 60 is not zero" },
	};
	uint8_t good[DLVM_BLOB_HEADER_SIZE + PAYLOAD], buf[sizeof(good)];
	struct dlvm_blob_header h, d;
	struct dlvm_err e = { 0 };
	(void)state;

	blob_sample(good, &h);
	for (size_t i = 0; i < DLVM_ARRAY_SIZE(bad); i++) {
		memcpy(buf, good, sizeof(buf));
		put_le(buf + bad[i].off, bad[i].width, bad[i].value);
		fix_blob_crc(buf, bad[i].off == 44 ? 0 : PAYLOAD);
		print_message("blob header byte %u: %s\n", bad[i].off, bad[i].msg);
		assert_err(dlvm_blob_decode(buf, sizeof(buf), DLVM_REC_MAGIC, &d, &e), &e,
			   bad[i].code, bad[i].msg);
	}

	assert_err(dlvm_blob_decode(good, DLVM_BLOB_HEADER_SIZE - 1, DLVM_REC_MAGIC, &d, &e), &e,
		   -EBADMSG, "truncated header");
	assert_err(dlvm_blob_decode(good, sizeof(good) - 1, DLVM_REC_MAGIC, &d, &e), &e, -EBADMSG,
		   "field payload_len 100 runs past the area");
	/* a record is not a checkpoint */
	assert_err(dlvm_blob_decode(good, sizeof(good), DLVM_CKPT_MAGIC, &d, &e), &e, -EBADMSG,
		   "bad magic");
	memcpy(buf, good, sizeof(buf));
	buf[7] = 'X';
	fix_blob_crc(buf, PAYLOAD);
	assert_err(dlvm_blob_decode(buf, sizeof(buf), DLVM_REC_MAGIC, &d, &e), &e, -EBADMSG,
		   "bad magic");

	/* the CRC covers the header and the payload */
	const unsigned bytes[] = { 10, 16, 31, 32, 40, 48, 56, 64, 64 + PAYLOAD - 1 };
	for (size_t i = 0; i < DLVM_ARRAY_SIZE(bytes); i++) {
		memcpy(buf, good, sizeof(buf));
		buf[bytes[i]] ^= 0x02;
		print_message("blob byte %u flipped\n", bytes[i]);
		assert_err(dlvm_blob_decode(buf, sizeof(buf), DLVM_REC_MAGIC, &d, &e), &e, -EBADMSG,
			   "checksum mismatch");
	}
}

/* ---- edits ---- */

static struct dlvm_seg_desc **sample_segs(uint32_t *n)
{
	struct dlvm_seg_desc **segs = calloc(3, sizeof(*segs));
	const uint32_t p1[] = { 1 }, p3[] = { 2, 5, 9 }, p2[] = { 7, 3 };
	const uint64_t e1[] = { 100 }, e3[] = { 0, 1ull << 40, 12345 }, e2[] = { 8, 9 };

	assert_non_null(segs);
	segs[0] = t_seg(0, 10, 1, 0, p1, e1);
	segs[1] = t_seg(10, 30, 3, 65536, p3, e3);
	segs[2] = t_seg(40, 4, 2, 1u << 20, p2, e2);
	*n = 3;
	return segs;
}

static void assert_segs_equal(struct dlvm_seg_desc *const *a, uint32_t na,
			      struct dlvm_seg_desc *const *b, uint32_t nb)
{
	assert_int_equal(na, nb);
	for (uint32_t i = 0; i < na; i++) {
		assert_int_equal(a[i]->le_start, b[i]->le_start);
		assert_int_equal(a[i]->le_count, b[i]->le_count);
		assert_int_equal(a[i]->type, b[i]->type);
		assert_int_equal(a[i]->stripes, b[i]->stripes);
		assert_int_equal(a[i]->stripe_size, b[i]->stripe_size);
		for (uint16_t k = 0; k < a[i]->stripes; k++) {
			assert_int_equal(a[i]->area[k].pv_id, b[i]->area[k].pv_id);
			assert_int_equal(a[i]->area[k].pe_start, b[i]->area[k].pe_start);
		}
	}
}

/* One edit of every type (segments owned by the array). */
static size_t sample_edits(struct dlvm_edit *ed)
{
	size_t n = 0;
	struct dlvm_edit *e;

	e = &ed[n++];
	memset(e, 0, sizeof(*e));
	e->type = DLVM_EDIT_VG_INFO;
	snprintf(e->u.vg.name, sizeof(e->u.vg.name), "vg-main");
	for (int i = 0; i < 16; i++)
		e->u.vg.uuid[i] = (uint8_t)(i * 11);
	e->u.vg.extent_size = 4 * MiB;
	e->u.vg.flags = DLVM_VG_SHARED;
	e->u.vg.compat = 1;
	e->u.vg.ro_compat = 2;
	e->u.vg.incompat = 4;
	e->u.vg.ctime = 1600000000;
	e->u.vg.next_lv_id = 1ull << 33;
	e->u.vg.next_pv_id = 7;
	e->u.vg.max_lv = 100000;

	e = &ed[n++];
	memset(e, 0, sizeof(*e));
	e->type = DLVM_EDIT_PV_ADD;
	e->u.pv.id = 6;
	for (int i = 0; i < 16; i++)
		e->u.pv.uuid[i] = (uint8_t)(255 - i);
	e->u.pv.pe_start = 65 * MiB;
	e->u.pv.pe_count = 4000;
	e->u.pv.dev_size = 16ull << 30;
	e->u.pv.sector_size = 4096;
	e->u.pv.flags = 0x5;

	e = &ed[n++];
	memset(e, 0, sizeof(*e));
	e->type = DLVM_EDIT_PV_REMOVE;
	e->u.pv_id = 0xfedcba98;

	e = &ed[n++];
	memset(e, 0, sizeof(*e));
	e->type = DLVM_EDIT_LV_CREATE;
	e->u.lv.id = 0x123456789abull;
	for (int i = 0; i < 16; i++)
		e->u.lv.uuid[i] = (uint8_t)(i + 100);
	memset(e->u.lv.name, 'n', DLVM_NAME_MAX); /* longest name */
	e->u.lv.flags = DLVM_LV_READONLY;
	e->u.lv.ctime = 1650000000;
	e->u.lv.segs = sample_segs(&e->u.lv.nseg);

	e = &ed[n++];
	memset(e, 0, sizeof(*e));
	e->type = DLVM_EDIT_LV_REMOVE;
	e->u.lv.id = 99;

	e = &ed[n++];
	memset(e, 0, sizeof(*e));
	e->type = DLVM_EDIT_LV_RENAME;
	e->u.lv.id = 98;
	snprintf(e->u.lv.name, sizeof(e->u.lv.name), "renamed.lv+1");

	e = &ed[n++];
	memset(e, 0, sizeof(*e));
	e->type = DLVM_EDIT_LV_SET_FLAGS;
	e->u.lv.id = 97;
	e->u.lv.flags = 0xff00ff00ff00ull;

	e = &ed[n++];
	memset(e, 0, sizeof(*e));
	e->type = DLVM_EDIT_LV_SET_SEGMENTS;
	e->u.lv.id = 96;
	e->u.lv.segs = sample_segs(&e->u.lv.nseg);

	e = &ed[n++]; /* an LV without segments */
	memset(e, 0, sizeof(*e));
	e->type = DLVM_EDIT_LV_SET_SEGMENTS;
	e->u.lv.id = 95;
	e->u.lv.segs = NULL;
	e->u.lv.nseg = 0;

	e = &ed[n++];
	memset(e, 0, sizeof(*e));
	e->type = DLVM_EDIT_LV_SET_HOLDERS;
	e->u.lv.id = 94;
	e->u.lv.nholders = 3;
	e->u.lv.holders = calloc(3, sizeof(*e->u.lv.holders));
	for (uint32_t i = 0; i < 3; i++)
		e->u.lv.holders[i] = (struct dlvm_lv_holder){ 7 + i * 900, DLVM_HOLD_SHARED,
							      0x1122334455ull + i };

	e = &ed[n++];
	memset(e, 0, sizeof(*e));
	e->type = DLVM_EDIT_LV_SET_THIN;
	e->u.lv.id = 92;
	e->u.lv.thin = (struct dlvm_lv_thin){ .pool_id = 7,
					      .origin_id = 0x8877665544ull,
					      .virtual_size = 1ull << 40,
					      .meta_id = 3,
					      .chunk_size = 65536 };

	e = &ed[n++]; /* nobody holds it */
	memset(e, 0, sizeof(*e));
	e->type = DLVM_EDIT_LV_SET_HOLDERS;
	e->u.lv.id = 93;

	e = &ed[n++];
	memset(e, 0, sizeof(*e));
	e->type = DLVM_EDIT_LV_SET_COPY_RATE;
	e->flags = DLVM_EDIT_IGNORABLE;
	e->u.lv.id = 91;
	e->u.lv.copy_rate = 0x0123456789abcdefull;

	e = &ed[n++];
	memset(e, 0, sizeof(*e));
	e->type = DLVM_EDIT_PROPERTY_SET;
	e->flags = DLVM_EDIT_IGNORABLE;
	e->u.prop.id = 90;
	snprintf(e->u.prop.key, sizeof(e->u.prop.key), "cinder.meta.k%%3D1");
	e->u.prop.value = strdup("a value, with \"quotes\" and \xc3\xa9");

	e = &ed[n++]; /* a delete of a VG property */
	memset(e, 0, sizeof(*e));
	e->type = DLVM_EDIT_PROPERTY_SET;
	e->flags = DLVM_EDIT_IGNORABLE;
	e->u.prop.flags = DLVM_PROP_DELETE;
	snprintf(e->u.prop.key, sizeof(e->u.prop.key), "owner");
	return n;
}

static void assert_edit_equal(const struct dlvm_edit *a, const struct dlvm_edit *b)
{
	assert_int_equal(a->type, b->type);
	assert_int_equal(a->flags, b->flags);
	switch (a->type) {
	case DLVM_EDIT_VG_INFO:
		assert_string_equal(a->u.vg.name, b->u.vg.name);
		assert_memory_equal(a->u.vg.uuid, b->u.vg.uuid, 16);
		assert_int_equal(a->u.vg.extent_size, b->u.vg.extent_size);
		assert_int_equal(a->u.vg.flags, b->u.vg.flags);
		assert_int_equal(a->u.vg.compat, b->u.vg.compat);
		assert_int_equal(a->u.vg.ro_compat, b->u.vg.ro_compat);
		assert_int_equal(a->u.vg.incompat, b->u.vg.incompat);
		assert_int_equal(a->u.vg.ctime, b->u.vg.ctime);
		assert_int_equal(a->u.vg.next_lv_id, b->u.vg.next_lv_id);
		assert_int_equal(a->u.vg.next_pv_id, b->u.vg.next_pv_id);
		assert_int_equal(a->u.vg.max_lv, b->u.vg.max_lv);
		break;
	case DLVM_EDIT_PV_ADD:
		assert_int_equal(a->u.pv.id, b->u.pv.id);
		assert_memory_equal(a->u.pv.uuid, b->u.pv.uuid, 16);
		assert_int_equal(a->u.pv.pe_start, b->u.pv.pe_start);
		assert_int_equal(a->u.pv.pe_count, b->u.pv.pe_count);
		assert_int_equal(a->u.pv.dev_size, b->u.pv.dev_size);
		assert_int_equal(a->u.pv.sector_size, b->u.pv.sector_size);
		assert_int_equal(a->u.pv.flags, b->u.pv.flags);
		break;
	case DLVM_EDIT_PV_REMOVE: assert_int_equal(a->u.pv_id, b->u.pv_id); break;
	case DLVM_EDIT_LV_CREATE:
		assert_int_equal(a->u.lv.id, b->u.lv.id);
		assert_memory_equal(a->u.lv.uuid, b->u.lv.uuid, 16);
		assert_string_equal(a->u.lv.name, b->u.lv.name);
		assert_int_equal(a->u.lv.flags, b->u.lv.flags);
		assert_int_equal(a->u.lv.ctime, b->u.lv.ctime);
		assert_segs_equal(a->u.lv.segs, a->u.lv.nseg, b->u.lv.segs, b->u.lv.nseg);
		break;
	case DLVM_EDIT_LV_REMOVE: assert_int_equal(a->u.lv.id, b->u.lv.id); break;
	case DLVM_EDIT_LV_RENAME:
		assert_int_equal(a->u.lv.id, b->u.lv.id);
		assert_string_equal(a->u.lv.name, b->u.lv.name);
		break;
	case DLVM_EDIT_LV_SET_FLAGS:
		assert_int_equal(a->u.lv.id, b->u.lv.id);
		assert_int_equal(a->u.lv.flags, b->u.lv.flags);
		break;
	case DLVM_EDIT_LV_SET_SEGMENTS:
		assert_int_equal(a->u.lv.id, b->u.lv.id);
		assert_segs_equal(a->u.lv.segs, a->u.lv.nseg, b->u.lv.segs, b->u.lv.nseg);
		break;
	case DLVM_EDIT_LV_SET_THIN:
		assert_int_equal(a->u.lv.id, b->u.lv.id);
		assert_int_equal(a->u.lv.thin.pool_id, b->u.lv.thin.pool_id);
		assert_int_equal(a->u.lv.thin.origin_id, b->u.lv.thin.origin_id);
		assert_int_equal(a->u.lv.thin.virtual_size, b->u.lv.thin.virtual_size);
		assert_int_equal(a->u.lv.thin.meta_id, b->u.lv.thin.meta_id);
		assert_int_equal(a->u.lv.thin.chunk_size, b->u.lv.thin.chunk_size);
		break;
	case DLVM_EDIT_LV_SET_COPY_RATE:
		assert_int_equal(a->u.lv.id, b->u.lv.id);
		assert_int_equal(a->u.lv.copy_rate, b->u.lv.copy_rate);
		break;
	case DLVM_EDIT_LV_SET_HOLDERS:
		assert_int_equal(a->u.lv.id, b->u.lv.id);
		assert_int_equal(a->u.lv.nholders, b->u.lv.nholders);
		for (uint32_t i = 0; i < a->u.lv.nholders; i++) {
			assert_int_equal(a->u.lv.holders[i].host_id, b->u.lv.holders[i].host_id);
			assert_int_equal(a->u.lv.holders[i].mode, b->u.lv.holders[i].mode);
			assert_int_equal(a->u.lv.holders[i].generation,
					 b->u.lv.holders[i].generation);
		}
		break;
	case DLVM_EDIT_PROPERTY_SET:
		assert_int_equal(a->u.prop.id, b->u.prop.id);
		assert_int_equal(a->u.prop.flags, b->u.prop.flags);
		assert_string_equal(a->u.prop.key, b->u.prop.key);
		if (a->u.prop.value)
			assert_string_equal(a->u.prop.value, b->u.prop.value);
		else
			assert_null(b->u.prop.value);
		break;
	default: fail_msg("unexpected edit type %u", a->type);
	}
}

/* PROPERTY_SET: key and value bounds, key bytes, NUL, flags, delete. */
static void edit_bad_property(void **state)
{
	struct dlvm_edit ed = { .type = DLVM_EDIT_PROPERTY_SET, .flags = DLVM_EDIT_IGNORABLE }, d;
	struct dlvm_err e = { 0 };
	struct dlvm_buf b = { 0 };
	size_t pos = 0;
	(void)state;

	ed.u.prop.id = 7;
	snprintf(ed.u.prop.key, sizeof(ed.u.prop.key), "abc");
	ed.u.prop.value = strdup("xy");
	assert_int_equal(dlvm_edit_encode(&ed, &b), 0);
	dlvm_edit_release(&ed);
	/* header 8 | id 8 | flags 4 | key length 2 | key 3 | value length 4 | value 2 */
	assert_int_equal(b.len, 8 + 8 + 4 + 2 + 3 + 4 + 2);
	assert_ok(dlvm_edit_decode(b.data, b.len, &pos, &d, &e), &e);
	assert_string_equal(d.u.prop.value, "xy");
	dlvm_edit_release(&d);
	pos = 0;
	dlvm_put_le16(b.data + 20, 0);
	assert_err(dlvm_edit_decode(b.data, b.len, &pos, &d, &e), &e, -EBADMSG,
		   "edit PROPERTY_SET at byte 0: key length 0 is not 1 to 255");
	dlvm_put_le16(b.data + 20, 256);
	assert_err(dlvm_edit_decode(b.data, b.len, &pos, &d, &e), &e, -EBADMSG,
		   "edit PROPERTY_SET at byte 0: key length 256 is not 1 to 255");
	dlvm_put_le16(b.data + 20, 3);
	b.data[22] = ' ';
	assert_err(dlvm_edit_decode(b.data, b.len, &pos, &d, &e), &e, -EBADMSG,
		   "edit PROPERTY_SET at byte 0: property key \" bc\": byte 0 (0x20) is not one");
	b.data[22] = '\0';
	assert_err(dlvm_edit_decode(b.data, b.len, &pos, &d, &e), &e, -EBADMSG,
		   "byte 0 (0x00) is not one");
	b.data[22] = 'a';
	b.data[29] = '\0';
	assert_err(dlvm_edit_decode(b.data, b.len, &pos, &d, &e), &e, -EBADMSG,
		   "edit PROPERTY_SET at byte 0: property abc: value contains a NUL byte");
	b.data[29] = 'y';
	dlvm_put_le32(b.data + 25, DLVM_PROP_VALUE_MAX + 1);
	assert_err(dlvm_edit_decode(b.data, b.len, &pos, &d, &e), &e, -EBADMSG,
		   "edit PROPERTY_SET at byte 0: value length 4097 is above 4096");
	dlvm_put_le32(b.data + 25, 2);
	dlvm_put_le32(b.data + 16, DLVM_PROP_DELETE);
	assert_err(dlvm_edit_decode(b.data, b.len, &pos, &d, &e), &e, -EBADMSG,
		   "or given with a delete");
	dlvm_put_le32(b.data + 16, 0x4);
	assert_err(dlvm_edit_decode(b.data, b.len, &pos, &d, &e), &e, -EBADMSG,
		   "edit PROPERTY_SET at byte 0: unknown flags 0x4");
	dlvm_put_le32(b.data + 16, 0);
	dlvm_put_le32(b.data + 25, 3);
	assert_err(dlvm_edit_decode(b.data, b.len, &pos, &d, &e), &e, -EBADMSG,
		   "edit PROPERTY_SET at byte 0: field value is truncated");
	assert_int_equal(pos, 0);
	dlvm_buf_release(&b);
}

static void edit_roundtrip_every_type(void **state)
{
	struct dlvm_edit ed[16], d;
	struct dlvm_buf b = { 0 };
	struct dlvm_err e = { 0 };
	size_t n = sample_edits(ed), pos = 0;
	(void)state;

	/* one at a time */
	for (size_t i = 0; i < n; i++) {
		struct dlvm_buf one = { 0 };
		assert_int_equal(dlvm_edit_encode(&ed[i], &one), 0);
		assert_int_equal(dlvm_get_le16(one.data), ed[i].type);
		assert_int_equal(dlvm_get_le32(one.data + 4), one.len - 8);
		size_t p = 0;
		assert_ok(dlvm_edit_decode(one.data, one.len, &p, &d, &e), &e);
		assert_int_equal(p, one.len);
		assert_edit_equal(&ed[i], &d);
		dlvm_edit_release(&d);
		dlvm_buf_release(&one);
	}
	/* all in one stream, as in a checkpoint */
	for (size_t i = 0; i < n; i++)
		assert_int_equal(dlvm_edit_encode(&ed[i], &b), 0);
	for (size_t i = 0; i < n; i++) {
		assert_ok(dlvm_edit_decode(b.data, b.len, &pos, &d, &e), &e);
		assert_edit_equal(&ed[i], &d);
		dlvm_edit_release(&d);
	}
	assert_int_equal(pos, b.len);
	/* the sizes of the fixed-layout edits are part of the format */
	assert_int_equal(b.data[0], DLVM_EDIT_VG_INFO);
	dlvm_buf_release(&b);
	for (size_t i = 0; i < n; i++)
		dlvm_edit_release(&ed[i]);
	assert_string_equal(dlvm_edit_type_name(DLVM_EDIT_LV_SET_SEGMENTS), "LV_SET_SEGMENTS");
	assert_string_equal(dlvm_edit_type_name(4242), "UNKNOWN");
}

static void edit_unknown_type(void **state)
{
	struct dlvm_edit d;
	struct dlvm_err e = { 0 };
	uint8_t buf[8 + 5 + 8 + 4];
	size_t pos = 0;
	(void)state;

	/* type 300, not ignorable, 5 bytes of payload; then a PV_REMOVE */
	dlvm_put_le16(buf, 300);
	dlvm_put_le16(buf + 2, 0);
	dlvm_put_le32(buf + 4, 5);
	memcpy(buf + 8, "abcde", 5);
	dlvm_put_le16(buf + 13, DLVM_EDIT_PV_REMOVE);
	dlvm_put_le16(buf + 15, 0);
	dlvm_put_le32(buf + 17, 4);
	dlvm_put_le32(buf + 21, 3);
	assert_err(dlvm_edit_decode(buf, sizeof(buf), &pos, &d, &e), &e, -ENOTSUP,
		   "edit at byte 0: unknown type 300 (written by a newer dlvm)");
	assert_int_equal(pos, 0);
	/* other flag bits do not make it ignorable */
	dlvm_put_le16(buf + 2, 0xfffe);
	assert_err(dlvm_edit_decode(buf, sizeof(buf), &pos, &d, &e), &e, -ENOTSUP,
		   "unknown type 300");

	/* with IGNORABLE: decoded as raw bytes and skipped */
	dlvm_put_le16(buf + 2, DLVM_EDIT_IGNORABLE);
	assert_ok(dlvm_edit_decode(buf, sizeof(buf), &pos, &d, &e), &e);
	assert_int_equal(d.type, 300);
	assert_int_equal(d.flags, DLVM_EDIT_IGNORABLE);
	assert_int_equal(d.u.raw.len, 5);
	assert_memory_equal(d.u.raw.data, "abcde", 5);
	assert_int_equal(pos, 13);
	dlvm_edit_release(&d);
	assert_ok(dlvm_edit_decode(buf, sizeof(buf), &pos, &d, &e), &e);
	assert_int_equal(d.type, DLVM_EDIT_PV_REMOVE);
	assert_int_equal(d.u.pv_id, 3);
	assert_int_equal(pos, sizeof(buf));

	/* an unknown ignorable edit re-encodes to the same bytes */
	struct dlvm_edit raw = { .type = 300, .flags = DLVM_EDIT_IGNORABLE };
	struct dlvm_buf out = { 0 };
	raw.u.raw.data = (const uint8_t *)"abcde";
	raw.u.raw.len = 5;
	assert_int_equal(dlvm_edit_encode(&raw, &out), 0);
	assert_int_equal(out.len, 13);
	assert_memory_equal(out.data, buf, 13);
	dlvm_buf_release(&out);
}

static void edit_truncated(void **state)
{
	struct dlvm_edit ed[16], d;
	struct dlvm_err e = { 0 };
	size_t n = sample_edits(ed);
	(void)state;

	for (size_t i = 0; i < n; i++) {
		struct dlvm_buf b = { 0 };
		assert_int_equal(dlvm_edit_encode(&ed[i], &b), 0);
		uint32_t elen = (uint32_t)(b.len - 8);
		/* the buffer ends early */
		for (size_t cut = 0; cut < b.len; cut++) {
			size_t pos = 0;
			dlvm_err_clear(&e);
			int r = dlvm_edit_decode(b.data, cut, &pos, &d, &e);
			if (r != -EBADMSG || pos != 0)
				fail_msg("%s cut to %zu bytes: %d \"%s\"",
					 dlvm_edit_type_name(ed[i].type), cut, r, e.msg);
			if (cut < 8)
				assert_non_null(strstr(e.msg, "edit at byte 0: truncated header"));
			else
				assert_non_null(strstr(e.msg, "runs past the end"));
		}
		/* the edit's own length is too short for its fields */
		for (uint32_t l = 0; l < elen; l++) {
			size_t pos = 0;
			dlvm_put_le32(b.data + 4, l);
			dlvm_err_clear(&e);
			int r = dlvm_edit_decode(b.data, 8 + l, &pos, &d, &e);
			if (r != -EBADMSG || pos != 0 ||
			    (!strstr(e.msg, "is truncated") &&
			     !strstr(e.msg, "exceeds the edit length")))
				fail_msg("%s with length %u of %u: %d \"%s\"",
					 dlvm_edit_type_name(ed[i].type), l, elen, r, e.msg);
		}
		/* trailing bytes after the fields */
		uint8_t *big = calloc(1, b.len + 3);
		assert_non_null(big);
		memcpy(big, b.data, b.len);
		dlvm_put_le32(big + 4, elen + 3);
		size_t pos = 0;
		char want[80];
		snprintf(want, sizeof(want), "edit %s at byte 0: 3 trailing bytes",
			 dlvm_edit_type_name(ed[i].type));
		assert_err(dlvm_edit_decode(big, b.len + 3, &pos, &d, &e), &e, -EBADMSG, want);
		free(big);
		dlvm_buf_release(&b);
	}

	/* exact messages for a few cuts */
	struct dlvm_buf b = { 0 };
	size_t pos = 0;
	assert_int_equal(dlvm_edit_encode(&ed[3], &b), 0); /* LV_CREATE */
	dlvm_put_le32(b.data + 4, (uint32_t)(b.len - 8 - 1));
	assert_err(dlvm_edit_decode(b.data, b.len - 1, &pos, &d, &e), &e, -EBADMSG,
		   "edit LV_CREATE at byte 0: field area pe_start is truncated");
	dlvm_put_le32(b.data + 4, 4);
	assert_err(dlvm_edit_decode(b.data, b.len, &pos, &d, &e), &e, -EBADMSG,
		   "edit LV_CREATE at byte 0: field lv id is truncated");
	dlvm_put_le32(b.data + 4, 8 + 16 + 1);
	assert_err(dlvm_edit_decode(b.data, b.len, &pos, &d, &e), &e, -EBADMSG,
		   "field lv name is truncated");
	dlvm_put_le32(b.data + 4, (uint32_t)(b.len - 8 + 1));
	assert_err(dlvm_edit_decode(b.data, b.len, &pos, &d, &e), &e, -EBADMSG,
		   "edit at byte 0: length");
	dlvm_buf_release(&b);

	/* the position names where the bad edit starts */
	assert_int_equal(dlvm_edit_encode(&ed[2], &b), 0); /* PV_REMOVE, 12 bytes */
	assert_int_equal(dlvm_edit_encode(&ed[6], &b), 0); /* LV_SET_FLAGS */
	dlvm_put_le32(b.data + 12 + 4, 9);
	pos = 0;
	assert_ok(dlvm_edit_decode(b.data, b.len, &pos, &d, &e), &e);
	assert_int_equal(pos, 12);
	assert_err(dlvm_edit_decode(b.data, b.len, &pos, &d, &e), &e, -EBADMSG,
		   "edit LV_SET_FLAGS at byte 12: field lv flags is truncated");
	assert_int_equal(pos, 12);
	dlvm_buf_release(&b);
	for (size_t i = 0; i < n; i++)
		dlvm_edit_release(&ed[i]);
}

/* LV_SET_HOLDERS: a count past the limit or past the payload. */
static void edit_bad_holders(void **state)
{
	struct dlvm_edit ed = { .type = DLVM_EDIT_LV_SET_HOLDERS }, d;
	struct dlvm_err e = { 0 };
	struct dlvm_buf b = { 0 };
	size_t pos = 0;
	(void)state;

	ed.u.lv.id = 5;
	ed.u.lv.nholders = 1;
	ed.u.lv.holders = calloc(1, sizeof(*ed.u.lv.holders));
	ed.u.lv.holders[0] = (struct dlvm_lv_holder){ 3, DLVM_HOLD_EXCLUSIVE, 9 };
	assert_int_equal(dlvm_edit_encode(&ed, &b), 0);
	dlvm_edit_release(&ed);
	/* header 8 | id 8 | count 4 | host 4 | mode 4 | generation 8 */
	assert_int_equal(b.len, 8 + 8 + 4 + 16);
	dlvm_put_le32(b.data + 16, DLVM_MAX_HOLDERS + 1);
	assert_err(dlvm_edit_decode(b.data, b.len, &pos, &d, &e), &e, -EBADMSG,
		   "edit LV_SET_HOLDERS at byte 0: holder count 2001 is above 2000");
	dlvm_put_le32(b.data + 16, 2);
	assert_err(dlvm_edit_decode(b.data, b.len, &pos, &d, &e), &e, -EBADMSG,
		   "edit LV_SET_HOLDERS at byte 0: field holders is truncated");
	dlvm_put_le32(b.data + 16, 0);
	assert_err(dlvm_edit_decode(b.data, b.len, &pos, &d, &e), &e, -EBADMSG,
		   "edit LV_SET_HOLDERS at byte 0: 16 trailing bytes");
	dlvm_put_le32(b.data + 16, 1);
	assert_ok(dlvm_edit_decode(b.data, b.len, &pos, &d, &e), &e);
	assert_int_equal(d.u.lv.holders[0].host_id, 3);
	dlvm_edit_release(&d);
	dlvm_buf_release(&b);
}

/* Encode LV_SET_SEGMENTS with one segment, then poke its fields. */
static void edit_bad_segments(void **state)
{
	const uint32_t pv[] = { 1, 2 };
	const uint64_t pe[] = { 0, 0 };
	struct dlvm_edit ed = { .type = DLVM_EDIT_LV_SET_SEGMENTS }, d;
	struct dlvm_err e = { 0 };
	struct dlvm_buf good = { 0 };
	(void)state;

	ed.u.lv.id = 5;
	ed.u.lv.nseg = 1;
	ed.u.lv.segs = calloc(1, sizeof(*ed.u.lv.segs));
	ed.u.lv.segs[0] = t_seg(0, 8, 2, 65536, pv, pe);
	assert_int_equal(dlvm_edit_encode(&ed, &good), 0);
	dlvm_edit_release(&ed);
	/* payload: id 8 | nseg 4 | le_start 8 | le_count 8 | type 2 | stripes 2 | ssize 4 | areas */
	enum {
		NSEG = 8,
		LE_COUNT = NSEG + 4 + 8,
		TYPE = LE_COUNT + 8,
		STRIPES = TYPE + 2,
		SSIZE = STRIPES + 2
	};
	const struct bad_field bad[] = {
		{ TYPE, 2, 3, -ENOTSUP, "segment 0: unknown type 3" },
		{ STRIPES, 2, 0, -EBADMSG, "segment 0: field stripes is 0" },
		{ STRIPES, 2, DLVM_MAX_STRIPES + 1, -EBADMSG, "segment 0: field stripes is 129" },
		{ TYPE, 2, DLVM_SEG_LINEAR, -EBADMSG, "segment 0: field stripes is 2" },
		{ SSIZE, 4, 65536 + 4096, -EBADMSG,
		  "segment 0: field stripe_size 69632 is not a "
		  "power of two >= 4096" },
		{ SSIZE, 4, 2048, -EBADMSG, "field stripe_size 2048" },
		{ SSIZE, 4, 0, -EBADMSG, "field stripe_size 0" },
		{ LE_COUNT, 8, 7, -EBADMSG,
		  "segment 0: field le_count 7 is zero or not a multiple "
		  "of 2 stripes" },
		{ LE_COUNT, 8, 0, -EBADMSG, "field le_count 0 is zero" },
		{ NSEG, 4, 3, -EBADMSG, "field nseg 3 exceeds the edit length" },
		{ NSEG, 4, UINT32_MAX, -EBADMSG, "field nseg 4294967295 exceeds the edit length" },
	};
	for (size_t i = 0; i < DLVM_ARRAY_SIZE(bad); i++) {
		struct dlvm_buf b = { 0 };
		size_t pos = 0;
		assert_int_equal(dlvm_buf_reserve(&b, good.len), 0);
		memcpy(b.data, good.data, good.len);
		b.len = good.len;
		put_le(b.data + 8 + bad[i].off, bad[i].width, bad[i].value);
		print_message("segment field at %u: %s\n", bad[i].off, bad[i].msg);
		assert_err(dlvm_edit_decode(b.data, b.len, &pos, &d, &e), &e, bad[i].code,
			   bad[i].msg);
		assert_int_equal(pos, 0);
		dlvm_buf_release(&b);
	}
	dlvm_buf_release(&good);
}

static void edit_bad_names(void **state)
{
	struct dlvm_edit ed = { .type = DLVM_EDIT_LV_RENAME }, d;
	struct dlvm_err e = { 0 };
	struct dlvm_buf b = { 0 };
	size_t pos = 0;
	(void)state;

	ed.u.lv.id = 1;
	snprintf(ed.u.lv.name, sizeof(ed.u.lv.name), "abcd");
	assert_int_equal(dlvm_edit_encode(&ed, &b), 0);
	/* payload: id 8 | name length 2 | name */
	b.data[8 + 8 + 2 + 1] = '\0';
	assert_err(dlvm_edit_decode(b.data, b.len, &pos, &d, &e), &e, -EBADMSG,
		   "field lv name contains a NUL byte");
	dlvm_put_le16(b.data + 16, 128);
	assert_err(dlvm_edit_decode(b.data, b.len, &pos, &d, &e), &e, -EBADMSG,
		   "field lv name: length 128 exceeds 127");
	dlvm_buf_release(&b);

	struct dlvm_edit vg = { .type = DLVM_EDIT_VG_INFO };
	snprintf(vg.u.vg.name, sizeof(vg.u.vg.name), "vg0");
	vg.u.vg.extent_size = 4096;
	assert_int_equal(dlvm_edit_encode(&vg, &b), 0);
	dlvm_put_le16(b.data + 8, 0xffff);
	assert_err(dlvm_edit_decode(b.data, b.len, &pos, &d, &e), &e, -EBADMSG,
		   "field vg name: length 65535 exceeds 127");
	dlvm_buf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(pv_header_roundtrip),
		cmocka_unit_test(pv_header_corrupt_fields),
		cmocka_unit_test(pv_header_magic_and_crc),
		cmocka_unit_test(mda_geometry_of_1mib),
		cmocka_unit_test(mda_header_roundtrip),
		cmocka_unit_test(mda_header_corrupt_fields),
		cmocka_unit_test(blob_roundtrip),
		cmocka_unit_test(blob_corrupt_fields),
		cmocka_unit_test(edit_roundtrip_every_type),
		cmocka_unit_test(edit_unknown_type),
		cmocka_unit_test(edit_truncated),
		cmocka_unit_test(edit_bad_segments),
		cmocka_unit_test(edit_bad_holders),
		cmocka_unit_test(edit_bad_property),
		cmocka_unit_test(edit_bad_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
