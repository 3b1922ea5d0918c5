/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the thin store (lib/thin): the superblock and node codecs
 * field by field, the copy-on-write B-tree against a model under a few
 * hundred thousand random changes, snapshots that share subtrees and copy
 * on write, deletes that free exactly what only they held, damaged blocks
 * named by number, and running out of data chunks or metadata blocks.
 * Power loss is in test_thin_crash.c, the open time of a large store in
 * test_thin_scale.c.
 */
#include "helpers.h"
#include "dlvm/thin.h"
#include "lib/thin/thin_int.h"

#define NONE DLVM_THIN_NONE

/* ---- small helpers ---- */

static void put_le(uint8_t *p, unsigned width, uint64_t v)
{
	for (unsigned i = 0; i < width; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* A memory device of meta_blocks blocks (plus `spare` more for growing)
 * holding a fresh store. */
static struct dlvm_dev *t_thin_dev(uint64_t meta_blocks, uint64_t spare, uint64_t data_chunks)
{
	struct dlvm_thin_format_opts o = { .chunk_size = 65536,
					   .data_chunks = data_chunks,
					   .meta_blocks = meta_blocks };
	struct dlvm_dev *dev = dlvm_memdev_new("thin0", (meta_blocks + spare) * 4096, 4096);
	struct dlvm_err e = { 0 };

	assert_non_null(dev);
	assert_ok(dlvm_thin_store_format(dev, &o, &e), &e);
	return dev;
}

static struct dlvm_thin_store *t_open(struct dlvm_dev *dev, size_t cache)
{
	struct dlvm_thin_open_opts o = { .cache_blocks = cache };
	struct dlvm_thin_store *s = NULL;
	struct dlvm_err e = { 0 };

	assert_ok(dlvm_thin_store_open(dev, &o, &s, &e), &e);
	return s;
}

static struct dlvm_thin_store *t_reopen(struct dlvm_thin_store *s, struct dlvm_dev *dev,
					size_t cache)
{
	dlvm_thin_store_close(s);
	return t_open(dev, cache);
}

/* Number of problems dlvm_thin_check finds; their lines in *text (caller
 * frees; text may be NULL). */
static unsigned t_thin_check(struct dlvm_thin_store *s, char **text)
{
	struct dlvm_check_report rep = { 0 };
	struct dlvm_err e = { 0 };
	struct t_str b = { 0 };

	assert_ok(dlvm_thin_check(s, &rep, &e), &e);
	t_add(&b, "%s", "");
	for (size_t i = 0; i < rep.nlines; i++)
		t_add(&b, "%s\n", rep.lines[i]);
	unsigned p = rep.problems;
	dlvm_check_report_release(&rep);
	if (text)
		*text = b.s;
	else
		free(b.s);
	return p;
}

#define assert_thin_clean(s) \
	do { \
		char *txt_; \
		unsigned p_ = t_thin_check((s), &txt_); \
		if (p_) \
			fail_msg("dlvm_thin_check: %u problems:\n%s", p_, txt_); \
		free(txt_); \
	} while (0)

static struct dlvm_thin_usage t_usage(struct dlvm_thin_store *s)
{
	struct dlvm_thin_usage u;

	dlvm_thin_usage(s, &u);
	return u;
}

static uint64_t t_lookup(struct dlvm_thin_store *s, uint64_t id, uint64_t v, bool *shared)
{
	struct dlvm_err e = { 0 };
	uint64_t c;
	bool sh;

	assert_ok(dlvm_thin_lookup(s, id, v, &c, &sh, &e), &e);
	if (shared)
		*shared = sh;
	return c;
}

/* Provision v of device id; returns the chunk. */
static uint64_t t_prov(struct dlvm_thin_store *s, uint64_t id, uint64_t v, bool *is_new,
		       uint64_t *copy_from)
{
	struct dlvm_err e = { 0 };
	uint64_t c, from;
	bool n;

	assert_ok(dlvm_thin_provision(s, id, v, &c, &n, &from, &e), &e);
	if (is_new)
		*is_new = n;
	if (copy_from)
		*copy_from = from;
	return c;
}

static void t_commit_thin(struct dlvm_thin_store *s)
{
	struct dlvm_err e = { 0 };

	assert_ok(dlvm_thin_commit(s, &e), &e);
}

/* ---- codecs ---- */

struct bad_field {
	unsigned off, width;
	uint64_t value;
	int code;
	const char *msg;
};

static void sb_sample(struct th_sb *sb)
{
	memset(sb, 0, sizeof(*sb));
	sb->major = TH_MAJOR;
	sb->minor = 4;
	sb->compat = 0x8;
	sb->ro_compat = 0x10;
	for (int i = 0; i < 16; i++)
		sb->uuid[i] = (uint8_t)(0x40 + i);
	sb->txn = 77;
	sb->slot = 1;
	sb->chunk_size = 1 << 20;
	sb->data_chunks = 123456;
	sb->meta_blocks = 5000;
	sb->dev_root = 4321;
	sb->ndevs = 17;
	sb->ctime = 1700000000;
}

static void sb_roundtrip(void **state)
{
	uint8_t *buf = dlvm_io_alloc(TH_BLOCK);
	struct dlvm_err e = { 0 };
	struct th_sb sb, d;
	(void)state;

	sb_sample(&sb);
	th_sb_encode(&sb, buf);
	assert_memory_equal(buf, "dlvm.tsb", 8);
	assert_int_equal(dlvm_get_le32(buf + 508), dlvm_crc32c(buf, 508));
	assert_ok(th_sb_decode(buf, 1, &d, &e), &e);
	assert_int_equal(d.major, 1);
	assert_int_equal(d.minor, 4);
	assert_int_equal(d.compat, 0x8);     /* unknown compat bits: ignored */
	assert_int_equal(d.ro_compat, 0x10); /* unknown ro_compat bits: the caller decides */
	assert_int_equal(d.incompat, 0);
	assert_memory_equal(d.uuid, sb.uuid, 16);
	assert_int_equal(d.txn, 77);
	assert_int_equal(d.slot, 1);
	assert_int_equal(d.chunk_size, 1 << 20);
	assert_int_equal(d.data_chunks, 123456);
	assert_int_equal(d.meta_blocks, 5000);
	assert_int_equal(d.dev_root, 4321);
	assert_int_equal(d.ndevs, 17);
	assert_int_equal(d.ctime, 1700000000);
	/* the slot it is read from must be the one it names */
	assert_err(th_sb_decode(buf, 0, &d, &e), &e, -EBADMSG,
		   "superblock slot 0 (block 0): field slot is 1 but the superblock is in slot 0");
	free(buf);
}

static void sb_bad_fields(void **state)
{
	static const struct bad_field bad[] = {
		{ 0, 8, 0, -ENODATA, "bad magic" },
		{ 8, 2, 2, -ENOTSUP,
		  "format version 2 is not supported (this dlvm reads version 1)" },
		{ 12, 4, 256, -EBADMSG, "field header_size is 256, expected 512" },
		{ 32, 8, 4, -ENOTSUP,
		  "unknown incompatible features 0x4 (written by a newer dlvm)" },
		{ 40, 16, 0, -EBADMSG, "field uuid is all zero" },
		{ 56, 8, 0, -EBADMSG, "field txn is 0, out of range" },
		{ 56, 8, UINT64_MAX, -EBADMSG, "field txn is 18446744073709551615, out of range" },
		{ 64, 4, 0, -EBADMSG, "field slot is 0 but the superblock is in slot 1" },
		{ 68, 4, 512, -EBADMSG, "field block_size is 512, not 4096" },
		{ 72, 8, 12288, -EBADMSG,
		  "field chunk_size 12288 is not a power of two from 4096" },
		{ 72, 8, 2048, -EBADMSG, "field chunk_size 2048 is not a power of two" },
		{ 72, 8, 1ull << 31, -EBADMSG,
		  "field chunk_size 2147483648 is not a power of two" },
		{ 80, 8, 0, -EBADMSG, "field data_chunks is 0, not 1 to 281474976710656" },
		{ 80, 8, (1ull << 48) + 1, -EBADMSG,
		  "field data_chunks is 281474976710657, not 1 to" },
		{ 88, 8, 2, -EBADMSG, "field meta_blocks is 2, not 3 to 4294967296" },
		{ 88, 8, (1ull << 32) + 1, -EBADMSG, "field meta_blocks is 4294967297, not 3 to" },
		{ 96, 8, 1, -EBADMSG, "field dev_root is block 1, outside blocks 2 to 4999" },
		{ 96, 8, 5000, -EBADMSG, "field dev_root is block 5000, outside blocks 2 to 4999" },
		{ 104, 8, (1ull << 48) + 1, -EBADMSG,
		  "field ndevs is 281474976710657, out of range" },
		{ 120, 1, 1, -EBADMSG, "reserved byte 120 is not zero" },
		{ 507, 1, 1, -EBADMSG, "reserved byte 507 is not zero" },
		{ 512, 1, 1, -EBADMSG, "reserved byte 512 is not zero" },
		{ 4095, 1, 1, -EBADMSG, "reserved byte 4095 is not zero" },
	};
	uint8_t *good = dlvm_io_alloc(TH_BLOCK), *buf = dlvm_io_alloc(TH_BLOCK);
	struct dlvm_err e = { 0 };
	struct th_sb sb, d;
	char want[256];
	(void)state;

	sb_sample(&sb);
	th_sb_encode(&sb, good);
	for (size_t i = 0; i < DLVM_ARRAY_SIZE(bad); i++) {
		memcpy(buf, good, TH_BLOCK);
		if (bad[i].width == 16) {
			put_le(buf + bad[i].off, 8, bad[i].value);
			put_le(buf + bad[i].off + 8, 8, bad[i].value);
		} else {
			put_le(buf + bad[i].off, bad[i].width, bad[i].value);
		}
		dlvm_put_le32(buf + 508, dlvm_crc32c(buf, 508));
		snprintf(want, sizeof(want), "superblock slot 1 (block 1): %s", bad[i].msg);
		print_message("superblock byte %u: %s\n", bad[i].off, bad[i].msg);
		assert_err(th_sb_decode(buf, 1, &d, &e), &e, bad[i].code, want);
	}
	/* a flipped bit anywhere in the structure is a checksum mismatch */
	for (unsigned off = 0; off < 512; off += 37) {
		memcpy(buf, good, TH_BLOCK);
		buf[off == 0 ? 9 : off] ^= 0x20;
		assert_err(th_sb_decode(buf, 1, &d, &e), &e, -EBADMSG,
			   "superblock slot 1 (block 1): checksum mismatch (stored 0x");
	}
	free(good);
	free(buf);
}

static const struct th_limits lim = { .meta_blocks = 100, .data_chunks = 1000, .max_txn = 5 };

static void fix_node_crc(uint8_t *buf)
{
	dlvm_put_le32(buf + 8, 0);
	dlvm_put_le32(buf + 8, dlvm_crc32c(buf, TH_BLOCK));
}

static void node_roundtrip(void **state)
{
	uint8_t *buf = dlvm_io_alloc(TH_BLOCK);
	struct th_node *n = calloc(1, sizeof(*n)), *d = calloc(1, sizeof(*d));
	struct dlvm_err e = { 0 };
	(void)state;

	/* a full mapping leaf */
	n->blocknr = 7;
	n->txn = 5;
	n->type = TH_TREE_MAP;
	n->nr = TH_ENTRIES;
	for (unsigned i = 0; i < TH_ENTRIES; i++) {
		n->keys[i] = 1000 + 3 * i;
		n->u.v[i] = 999 - i;
	}
	th_node_encode(n, buf);
	assert_memory_equal(buf, "dlvm.btn", 8);
	assert_int_equal(dlvm_get_le16(buf + 34), 253);
	assert_int_equal(dlvm_get_le32(buf + 36), 8);
	assert_ok(th_node_decode(buf, 7, &lim, d, &e), &e);
	assert_int_equal(d->nr, TH_ENTRIES);
	assert_int_equal(d->type, TH_TREE_MAP);
	assert_int_equal(d->level, 0);
	assert_int_equal(d->txn, 5);
	assert_memory_equal(d->keys, n->keys, sizeof(n->keys));
	assert_memory_equal(d->u.v, n->u.v, TH_ENTRIES * 8);

	/* an internal node */
	memset(n, 0, sizeof(*n));
	n->blocknr = 9;
	n->txn = 1;
	n->type = TH_TREE_MAP;
	n->level = 3;
	n->nr = 2;
	n->keys[0] = 0;
	n->keys[1] = 1ull << 40;
	n->u.v[0] = 2;
	n->u.v[1] = 99;
	th_node_encode(n, buf);
	assert_ok(th_node_decode(buf, 9, &lim, d, &e), &e);
	assert_int_equal(d->level, 3);
	assert_int_equal(d->u.v[1], 99);
	assert_int_equal(d->keys[1], 1ull << 40);

	/* a device leaf */
	memset(n, 0, sizeof(*n));
	n->blocknr = 3;
	n->txn = 5;
	n->type = TH_TREE_DEV;
	n->nr = TH_DEV_ENTRIES;
	for (unsigned i = 0; i < TH_DEV_ENTRIES; i++) {
		n->keys[i] = 10 + i;
		n->u.d[i] = (struct th_devrec){ .root = 2 + i,
						.mapped = 100 * i,
						.created_txn = 4,
						.snapshot_of = i % 2 ? i - 1 : 0,
						.flags = (i % 2 ? DLVM_THIN_DEV_SNAPSHOT : 0) |
							 (i % 3 ? DLVM_THIN_DEV_READONLY : 0) };
	}
	th_node_encode(n, buf);
	assert_int_equal(dlvm_get_le16(buf + 34), 84);
	assert_int_equal(dlvm_get_le32(buf + 36), 40);
	assert_ok(th_node_decode(buf, 3, &lim, d, &e), &e);
	for (unsigned i = 0; i < TH_DEV_ENTRIES; i++) {
		assert_int_equal(d->keys[i], 10 + i);
		assert_int_equal(d->u.d[i].root, 2 + i);
		assert_int_equal(d->u.d[i].mapped, 100 * i);
		assert_int_equal(d->u.d[i].created_txn, 4);
		assert_int_equal(d->u.d[i].snapshot_of, n->u.d[i].snapshot_of);
		assert_int_equal(d->u.d[i].flags, n->u.d[i].flags);
	}
	free(n);
	free(d);
	free(buf);
}

/* Encode a node of the given shape with two entries into buf. */
static void node_sample(uint8_t *buf, uint16_t type, uint16_t level)
{
	struct th_node *n = calloc(1, sizeof(*n));

	n->blocknr = 7;
	n->txn = 5;
	n->type = type;
	n->level = level;
	n->nr = 2;
	n->keys[0] = 10;
	n->keys[1] = 20;
	if (type == TH_TREE_DEV && level == 0) {
		n->u.d[0] = (struct th_devrec){ .root = 8, .mapped = 3, .created_txn = 2 };
		n->u.d[1] = (struct th_devrec){ .root = 8,
						.mapped = 3,
						.created_txn = 5,
						.snapshot_of = 10,
						.flags = DLVM_THIN_DEV_SNAPSHOT };
	} else {
		n->u.v[0] = level ? 8 : 500;
		n->u.v[1] = level ? 9 : 501;
	}
	th_node_encode(n, buf);
	free(n);
}

static void check_node_bad(uint16_t type, uint16_t level, const struct bad_field *bad, size_t n)
{
	uint8_t *good = dlvm_io_alloc(TH_BLOCK), *buf = dlvm_io_alloc(TH_BLOCK);
	struct th_node *d = calloc(1, sizeof(*d));
	struct dlvm_err e = { 0 };
	char want[256];

	node_sample(good, type, level);
	assert_ok(th_node_decode(good, 7, &lim, d, &e), &e);
	for (size_t i = 0; i < n; i++) {
		memcpy(buf, good, TH_BLOCK);
		put_le(buf + bad[i].off, bad[i].width, bad[i].value);
		fix_node_crc(buf);
		snprintf(want, sizeof(want), "node at block 7: %s", bad[i].msg);
		print_message("node type %u level %u byte %u: %s\n", type, level, bad[i].off,
			      bad[i].msg);
		assert_err(th_node_decode(buf, 7, &lim, d, &e), &e, bad[i].code, want);
	}
	free(d);
	free(good);
	free(buf);
}

/* Mapping leaf: keys at 40, values at 40 + 8 * 253 = 2064. */
static void node_bad_fields_map_leaf(void **state)
{
	static const struct bad_field bad[] = {
		{ 0, 8, 0x1122, -EBADMSG, "bad magic" },
		{ 16, 8, 8, -EBADMSG, "field blocknr is 8 (a node written elsewhere)" },
		{ 12, 2, 3, -EBADMSG, "field type is 3, not 1 (device tree) or 2 (mapping tree)" },
		{ 12, 2, 0, -EBADMSG, "field type is 0, not 1 (device tree) or 2 (mapping tree)" },
		{ 14, 2, 16, -EBADMSG, "field level is 16, more than 15" },
		{ 34, 2, 84, -EBADMSG, "field max_entries is 84, expected 253" },
		{ 36, 4, 40, -EBADMSG, "field value_size is 40, expected 8" },
		{ 32, 2, 254, -EBADMSG, "field nr_entries is 254, more than 253" },
		{ 32, 2, 3, -EBADMSG, "key 2 (0) is not above key 1 (20)" },
		{ 32, 2, 1, -EBADMSG, "byte 48 past the last entry is not zero" },
		{ 24, 8, 6, -EBADMSG, "field txn is 6, later than the store's transaction 5" },
		{ 48, 8, 10, -EBADMSG, "key 1 (10) is not above key 0 (10)" },
		{ 48, 8, 9, -EBADMSG, "key 1 (9) is not above key 0 (10)" },
		{ 40, 8, 1ull << 48, -EBADMSG,
		  "key 0 is 281474976710656, more than 281474976710655" },
		{ 2064, 8, 1000, -EBADMSG,
		  "entry 0 maps to data chunk 1000, beyond the 1000 data "
		  "chunks" },
		{ 2072, 8, 501 | (1ull << 48), -EBADMSG, "entry 1 has unknown flags 0x1" },
		{ 2080, 1, 1, -EBADMSG, "byte 2080 past the last entry is not zero" },
		{ 4095, 1, 1, -EBADMSG, "byte 4095 past the last entry is not zero" },
	};
	uint8_t *buf = dlvm_io_alloc(TH_BLOCK);
	struct th_node *d = calloc(1, sizeof(*d));
	struct dlvm_err e = { 0 };
	(void)state;

	check_node_bad(TH_TREE_MAP, 0, bad, DLVM_ARRAY_SIZE(bad));
	/* a flipped bit anywhere in the block is a checksum mismatch */
	node_sample(buf, TH_TREE_MAP, 0);
	for (unsigned off = 0; off < TH_BLOCK; off += 97) {
		unsigned at = off >= 8 && off < 12 ? 12 : off;
		buf[at] ^= 0x04;
		assert_err(th_node_decode(buf, 7, &lim, d, &e), &e, -EBADMSG,
			   at < 8 ? "node at block 7: bad magic"
				  : "node at block 7: checksum mismatch (stored 0x");
		buf[at] ^= 0x04;
	}
	free(d);
	free(buf);
}

static void node_bad_fields_internal(void **state)
{
	static const struct bad_field bad[] = {
		{ 32, 2, 0, -EBADMSG, "field nr_entries is 0 in an internal node" },
		{ 2064, 8, 100, -EBADMSG,
		  "child 0 is block 100, outside blocks 2 to 99 or the node "
		  "itself" },
		{ 2064, 8, 1, -EBADMSG, "child 0 is block 1, outside blocks 2 to 99" },
		{ 2072, 8, 7, -EBADMSG,
		  "child 1 is block 7, outside blocks 2 to 99 or the node "
		  "itself" },
		{ 34, 2, 84, -EBADMSG, "field max_entries is 84, expected 253" },
	};
	(void)state;
	check_node_bad(TH_TREE_MAP, 1, bad, DLVM_ARRAY_SIZE(bad));
	check_node_bad(TH_TREE_DEV, 2, bad, DLVM_ARRAY_SIZE(bad));
}

/* Device leaf: keys at 40, values (40 bytes each) at 40 + 8 * 84 = 712. */
static void node_bad_fields_dev_leaf(void **state)
{
	static const struct bad_field bad[] = {
		{ 34, 2, 253, -EBADMSG, "field max_entries is 253, expected 84" },
		{ 36, 4, 8, -EBADMSG, "field value_size is 8, expected 40" },
		{ 32, 2, 85, -EBADMSG, "field nr_entries is 85, more than 84" },
		{ 712, 8, 1, -EBADMSG, "device 10: field root is block 1, outside blocks 2 to 99" },
		{ 712, 8, 100, -EBADMSG,
		  "device 10: field root is block 100, outside blocks 2 to 99" },
		{ 720, 8, (1ull << 48) + 1, -EBADMSG,
		  "device 10: field mapped is 281474976710657, "
		  "out of range" },
		{ 728, 8, 6, -EBADMSG,
		  "device 10: field created_txn is 6, later than the store's "
		  "transaction 5" },
		{ 736, 8, 3, -EBADMSG, "device 10: field snapshot_of is 3 with flags 0x0" },
		{ 776, 8, 1ull << 48, -EBADMSG,
		  "device 20: field snapshot_of is 281474976710656 "
		  "with flags 0x2" },
		{ 744, 4, 0x4, -EBADMSG, "device 10: unknown flags 0x4" },
		{ 748, 4, 1, -EBADMSG, "device 10: reserved field is not zero" },
		{ 792, 1, 1, -EBADMSG, "byte 792 past the last entry is not zero" },
		{ 4072, 1, 1, -EBADMSG, "byte 4072 past the last entry is not zero" },
	};
	(void)state;
	check_node_bad(TH_TREE_DEV, 0, bad, DLVM_ARRAY_SIZE(bad));
}

/* ---- format, open, devices ---- */

static void format_and_open(void **state)
{
	struct dlvm_dev *dev = t_thin_dev(64, 0, 1000);
	struct dlvm_thin_store *s = t_open(dev, 0);
	struct dlvm_err e = { 0 };
	(void)state;

	struct dlvm_thin_usage u = t_usage(s);
	assert_int_equal(u.transaction, 1);
	assert_int_equal(u.chunk_size, 65536);
	assert_int_equal(u.devices, 0);
	assert_int_equal(u.data_chunks, 1000);
	assert_int_equal(u.data_free, 1000);
	assert_int_equal(u.meta_blocks, 64);
	assert_int_equal(u.meta_free, 61); /* two superblock slots and the device tree root */
	assert_false(u.readonly);
	assert_false(dlvm_uuid_is_zero(u.uuid));
	/* nothing to commit: nothing written */
	long w = dlvm_memdev_writes(dev);
	t_commit_thin(s);
	assert_int_equal(dlvm_memdev_writes(dev), w);
	assert_int_equal(t_usage(s).transaction, 1);
	assert_thin_clean(s);
	dlvm_thin_store_close(s);

	/* bad options */
	struct dlvm_thin_format_opts o = { .chunk_size = 65536, .data_chunks = 10 };
	o.chunk_size = 1000;
	assert_err(dlvm_thin_store_format(dev, &o, &e), &e, -EINVAL,
		   "thin0: thin chunk size 1000 is not a power of two from 4 KiB to 1 GiB");
	o.chunk_size = 4096;
	o.data_chunks = 0;
	assert_err(dlvm_thin_store_format(dev, &o, &e), &e, -EINVAL,
		   "thin0: 0 data chunks: not 1 to 281474976710656");
	o.data_chunks = 10;
	o.meta_blocks = 65;
	assert_err(dlvm_thin_store_format(dev, &o, &e), &e, -EINVAL,
		   "thin0: 65 metadata blocks: not 3 to 64 (the device holds 64 blocks");
	dlvm_dev_close(dev);

	/* not a store */
	dev = dlvm_memdev_new("blank", 64 * 4096, 512);
	assert_err(dlvm_thin_store_open(dev, NULL, &s, &e), &e, -ENODATA,
		   "blank: no thin store (no superblock magic in blocks 0 and 1)");
	dlvm_dev_close(dev);
	dev = dlvm_memdev_new("tiny", 4096, 512);
	assert_err(dlvm_thin_store_open(dev, NULL, &s, &e), &e, -ENODATA,
		   "tiny: too small for a thin store (4096 bytes)");
	dlvm_dev_close(dev);
}

/* Formatting over an older store leaves nothing of it that could win. */
static void format_over_old_store(void **state)
{
	struct dlvm_dev *dev = t_thin_dev(64, 0, 100);
	struct dlvm_thin_store *s = t_open(dev, 0);
	struct dlvm_err e = { 0 };
	(void)state;

	for (int i = 0; i < 5; i++) {
		assert_ok(dlvm_thin_create(s, (uint64_t)i, 0, &e), &e);
		t_commit_thin(s);
	}
	assert_int_equal(t_usage(s).transaction, 6);
	dlvm_thin_store_close(s);
	struct dlvm_thin_format_opts o = { .chunk_size = 4096, .data_chunks = 50 };
	assert_ok(dlvm_thin_store_format(dev, &o, &e), &e);
	s = t_open(dev, 0);
	assert_int_equal(t_usage(s).transaction, 1);
	assert_int_equal(t_usage(s).devices, 0);
	assert_int_equal(t_usage(s).data_chunks, 50);
	dlvm_thin_store_close(s);
	dlvm_dev_close(dev);
}

static int collect(void *ctx, uint64_t v, uint64_t c)
{
	struct t_str *b = ctx;
	t_add(b, "%" PRIu64 ":%" PRIu64 " ", v, c);
	return v >= 1000 ? 42 : 0;
}

static void devices_basics(void **state)
{
	struct dlvm_dev *dev = t_thin_dev(64, 0, 1000);
	struct dlvm_thin_store *s = t_open(dev, 0);
	struct dlvm_thin_dev_info in;
	struct dlvm_err e = { 0 };
	uint64_t id, v, c;
	bool is_new;
	(void)state;

	assert_ok(dlvm_thin_create(s, 5, 0, &e), &e);
	assert_ok(dlvm_thin_create(s, 3, DLVM_THIN_DEV_READONLY, &e), &e);
	assert_err(dlvm_thin_create(s, 5, 0, &e), &e, -EEXIST, "thin0: thin device 5 exists");
	assert_err(dlvm_thin_create(s, 1ull << 48, 0, &e), &e, -EINVAL,
		   "thin0: thin device id 281474976710656 is above 281474976710655");
	assert_err(dlvm_thin_create(s, 6, DLVM_THIN_DEV_SNAPSHOT, &e), &e, -EINVAL,
		   "thin0: thin device 6: flags 0x2 cannot be set");
	assert_err(dlvm_thin_info(s, 4, &in, &e), &e, -ENOENT,
		   "thin0: thin device 4 does not "
		   "exist");
	assert_err(dlvm_thin_lookup(s, 4, 0, &c, NULL, &e), &e, -ENOENT,
		   "thin0: thin device 4 does not exist");
	assert_err(dlvm_thin_delete(s, 4, &e), &e, -ENOENT, "thin0: thin device 4 does not exist");
	assert_err(dlvm_thin_snapshot(s, 4, 9, 0, &e), &e, -ENOENT,
		   "thin0: thin device 4 does not exist");
	assert_err(dlvm_thin_snapshot(s, 5, 3, 0, &e), &e, -EEXIST, "thin0: thin device 3 exists");
	assert_int_equal(t_usage(s).devices, 2);

	/* listing in id order */
	assert_ok(dlvm_thin_next_dev(s, 0, &id, &e), &e);
	assert_int_equal(id, 3);
	assert_ok(dlvm_thin_next_dev(s, 4, &id, &e), &e);
	assert_int_equal(id, 5);
	assert_ok(dlvm_thin_next_dev(s, 6, &id, &e), &e);
	assert_int_equal(id, NONE);

	/* a hole, then a write, then the same chunk again */
	assert_int_equal(t_lookup(s, 5, 17, NULL), NONE);
	uint64_t from;
	c = t_prov(s, 5, 17, &is_new, &from);
	assert_true(is_new);
	assert_int_equal(from, NONE);
	assert_int_equal(t_lookup(s, 5, 17, NULL), c);
	assert_int_equal(t_prov(s, 5, 17, &is_new, &from), c);
	assert_false(is_new);
	assert_int_equal(from, NONE);
	assert_err(dlvm_thin_provision(s, 5, 1ull << 48, &c, &is_new, NULL, &e), &e, -EINVAL,
		   "thin0: virtual chunk 281474976710656 is above 281474976710655");
	assert_err(dlvm_thin_provision(s, 3, 0, &c, &is_new, NULL, &e), &e, -EROFS,
		   "thin0: thin device 3 is read-only");
	assert_err(dlvm_thin_unmap(s, 3, 0, 1, NULL, &e), &e, -EROFS,
		   "thin0: thin device 3 is read-only");
	assert_ok(dlvm_thin_set_flags(s, 3, 0, &e), &e);
	assert_ok(dlvm_thin_provision(s, 3, 0, &c, &is_new, NULL, &e), &e);
	assert_err(dlvm_thin_set_flags(s, 3, DLVM_THIN_DEV_SNAPSHOT, &e), &e, -EINVAL,
		   "flags 0x2 cannot be set");

	for (uint64_t k = 100; k < 1100; k += 10)
		t_prov(s, 5, k, NULL, NULL);
	assert_ok(dlvm_thin_info(s, 5, &in, &e), &e);
	assert_int_equal(in.id, 5);
	assert_int_equal(in.mapped, 101);
	assert_int_equal(in.created_txn, 2);
	assert_int_equal(in.flags, 0);

	/* holes and mappings */
	assert_ok(dlvm_thin_next_mapped(s, 5, 0, &v, &c, &e), &e);
	assert_int_equal(v, 17);
	assert_int_equal(c, t_lookup(s, 5, 17, NULL));
	assert_ok(dlvm_thin_next_mapped(s, 5, 18, &v, NULL, &e), &e);
	assert_int_equal(v, 100);
	assert_ok(dlvm_thin_next_mapped(s, 5, 101, &v, NULL, &e), &e);
	assert_int_equal(v, 110);
	assert_ok(dlvm_thin_next_mapped(s, 5, 1091, &v, &c, &e), &e);
	assert_int_equal(v, NONE);
	assert_int_equal(c, NONE);

	/* iteration from a point, stopped by the callback's value */
	struct t_str b = { 0 };
	assert_int_equal(dlvm_thin_iterate(s, 5, 975, collect, &b, &e), 42);
	char want[256];
	snprintf(want, sizeof(want), "980:%" PRIu64 " 990:%" PRIu64 " 1000:%" PRIu64 " ",
		 t_lookup(s, 5, 980, NULL), t_lookup(s, 5, 990, NULL), t_lookup(s, 5, 1000, NULL));
	assert_string_equal(b.s, want);
	free(b.s);

	/* unmap a range with holes in it */
	uint64_t n;
	assert_ok(dlvm_thin_unmap(s, 5, 95, 200, &n, &e), &e);
	assert_int_equal(n, 20); /* 100, 110, ... 290 */
	assert_int_equal(t_lookup(s, 5, 290, NULL), NONE);
	assert_int_not_equal(t_lookup(s, 5, 300, NULL), NONE);
	assert_ok(dlvm_thin_unmap(s, 5, 0, 0, &n, &e), &e);
	assert_int_equal(n, 0);
	assert_ok(dlvm_thin_unmap(s, 5, 1000, UINT64_MAX, &n, &e), &e);
	assert_int_equal(n, 10);
	assert_ok(dlvm_thin_info(s, 5, &in, &e), &e);
	assert_int_equal(in.mapped, 71);
	assert_thin_clean(s);

	/* all of it survives a commit and a reopen */
	t_commit_thin(s);
	s = t_reopen(s, dev, 0);
	assert_ok(dlvm_thin_info(s, 5, &in, &e), &e);
	assert_int_equal(in.mapped, 71);
	assert_ok(dlvm_thin_info(s, 3, &in, &e), &e);
	assert_int_equal(in.flags, 0);
	assert_int_equal(in.mapped, 1);
	assert_int_equal(t_usage(s).data_free, 1000 - 72);
	assert_thin_clean(s);

	/* read-only open */
	dlvm_thin_store_close(s);
	struct dlvm_thin_open_opts ro = { .flags = DLVM_THIN_RDONLY };
	assert_ok(dlvm_thin_store_open(dev, &ro, &s, &e), &e);
	assert_true(t_usage(s).readonly);
	assert_int_not_equal(t_lookup(s, 3, 0, NULL), NONE);
	assert_err(dlvm_thin_create(s, 8, 0, &e), &e, -EROFS, "thin0: thin store is read-only");
	assert_err(dlvm_thin_provision(s, 5, 0, &c, &is_new, NULL, &e), &e, -EROFS,
		   "thin store is read-only");
	/* nothing to commit: no error, and nothing written */
	uint8_t *slots = malloc(2 * 4096);
	assert_non_null(slots);
	memcpy(slots, dlvm_memdev_data(dev), 2 * 4096);
	uint64_t txn = t_usage(s).transaction;
	assert_ok(dlvm_thin_commit(s, &e), &e);
	assert_int_equal(t_usage(s).transaction, txn);
	assert_memory_equal(slots, dlvm_memdev_data(dev), 2 * 4096);
	free(slots);
	dlvm_thin_store_close(s);
	dlvm_dev_close(dev);
}

static void dump_blocks(void **state)
{
	struct dlvm_dev *dev = t_thin_dev(16, 0, 100);
	struct dlvm_thin_store *s = t_open(dev, 0);
	struct dlvm_err e = { 0 };
	char *text = NULL;
	size_t len = 0;
	(void)state;

	assert_ok(dlvm_thin_create(s, 7, 0, &e), &e);
	t_prov(s, 7, 1234, NULL, NULL);
	t_commit_thin(s);
	dlvm_thin_store_close(s);
	dlvm_memdev_data(dev)[2 * 4096 + 100] ^= 1; /* the first device tree root, now unused */
	FILE *f = open_memstream(&text, &len);
	assert_ok(dlvm_thin_dump(dev, 0, 8, f, &e), &e);
	fclose(f);
	print_message("%s", text);
	assert_non_null(strstr(text, "block 0: superblock slot 0\n  version      1.0\n"));
	assert_non_null(strstr(text, "block 1: superblock slot 1\n  version      1.0\n"
				     "  features     compat 0x0, ro_compat 0x0, incompat 0x1\n"));
	assert_non_null(strstr(text, "  txn          2\n  chunk_size   65536\n  data_chunks  100\n"
				     "  meta_blocks  16\n"));
	assert_non_null(strstr(text, "  device 7: root 3, mapped 1, created in txn 2, snapshot of "
				     "0, flags 0x0\n"));
	assert_non_null(strstr(text, "mapping tree leaf, level 0, txn 2, 1 entries\n"
				     "  1234 -> chunk 0\n"));
	assert_non_null(strstr(text, "block 2: DAMAGED: node at block 2: checksum mismatch"));
	assert_non_null(strstr(text, "block 4: device tree leaf, level 0, txn 2, 1 entries\n"));
	assert_non_null(strstr(text, "block 5: zero\nblock 6: zero\nblock 7: zero\n"));
	free(text);
	dlvm_dev_close(dev);
}

/* ---- the B-tree against a model ---- */

struct tmodel {
	uint64_t V;    /* virtual chunks 0 .. V-1 */
	uint64_t *map; /* chunk or NONE */
	uint64_t mapped;
};

/* Compare every mapping of device id with the model: iteration, and
 * next_mapped from a few points. */
static void compare_model(struct dlvm_thin_store *s, uint64_t id, const struct tmodel *m,
			  struct t_gen *g)
{
	struct dlvm_thin_dev_info in;
	struct dlvm_err e = { 0 };
	uint64_t v = 0, c, want = 0;

	assert_ok(dlvm_thin_info(s, id, &in, &e), &e);
	assert_int_equal(in.mapped, m->mapped);
	for (;;) {
		assert_ok(dlvm_thin_next_mapped(s, id, v, &v, &c, &e), &e);
		while (want < m->V && m->map[want] == NONE)
			want++;
		if (want == m->V) {
			assert_int_equal(v, NONE);
			break;
		}
		assert_int_equal(v, want);
		assert_int_equal(c, m->map[want]);
		v = ++want;
	}
	for (int i = 0; i < 200; i++) {
		uint64_t k = t_rnd(g) % m->V;
		assert_int_equal(t_lookup(s, id, k, NULL), m->map[k]);
	}
}

static void model_provision(struct dlvm_thin_store *s, struct tmodel *m, uint64_t id, uint64_t k)
{
	bool is_new;
	uint64_t from, c = t_prov(s, id, k, &is_new, &from);

	assert_int_equal(from, NONE); /* nothing is shared here */
	if (m->map[k] == NONE) {
		assert_true(is_new);
		m->mapped++;
	} else {
		assert_false(is_new);
		assert_int_equal(c, m->map[k]);
	}
	m->map[k] = c;
}

static void model_unmap(struct dlvm_thin_store *s, struct tmodel *m, uint64_t id, uint64_t k,
			uint64_t len)
{
	struct dlvm_err e = { 0 };
	uint64_t n, want = 0;

	assert_ok(dlvm_thin_unmap(s, id, k, len, &n, &e), &e);
	for (uint64_t i = k; i < k + len && i < m->V; i++) {
		want += m->map[i] != NONE;
		m->map[i] = NONE;
	}
	assert_int_equal(n, want);
	m->mapped -= want;
}

static unsigned root_level(struct dlvm_thin_store *s, uint64_t id)
{
	struct th_devrec rec;
	unsigned depth;
	struct dlvm_err e = { 0 };

	assert_ok(th_dev_find(s, id, &rec, &e), &e);
	assert_ok(th_tree_depth(s, rec.root, TH_TREE_MAP, &depth, &e), &e);
	return depth - 1;
}

/*
 * Random inserts, overwrites, single and range removals on one device,
 * through fill, churn and drain phases, with a cache small enough that nodes
 * come and go. The tree grows to three levels and shrinks back to one empty
 * leaf; check() (which also flags nodes less than a third full) stays clean.
 */
static void btree_random_against_model(void **state)
{
	const uint64_t V = 1 << 18;
	struct dlvm_dev *dev = t_thin_dev(16384, 0, V);
	struct dlvm_thin_store *s = t_open(dev, 64);
	struct tmodel m = { .V = V, .map = malloc(V * sizeof(uint64_t)) };
	struct dlvm_err e = { 0 };
	struct t_gen g = { .s = 99 };
	unsigned max_level = 0;
	long ops = 0;
	(void)state;

	for (uint64_t i = 0; i < V; i++)
		m.map[i] = NONE;
	assert_ok(dlvm_thin_create(s, 1, 0, &e), &e);
	t_commit_thin(s);
	uint64_t meta_free0 = t_usage(s).meta_free;
	/* fill to about 70% in random order, then churn, then drain */
	for (int phase = 0; phase < 3; phase++) {
		long n = phase == 0 ? 200000 : phase == 1 ? 150000 : 0;
		for (long i = 0; phase < 2 ? i < n : m.mapped > 0; i++, ops++) {
			uint32_t op = t_rnd(&g) % 100;
			uint64_t k = t_rnd(&g) % V;
			if (phase == 0 || (phase == 1 && op < 60)) {
				model_provision(s, &m, 1, k);
			} else if (phase == 1 && op < 90) {
				model_unmap(s, &m, 1, k, 1);
			} else {
				uint64_t len = 1 + t_rnd(&g) % (phase == 2 ? 3000 : 200);
				model_unmap(s, &m, 1, k, len);
			}
			if (ops % 997 == 0)
				t_commit_thin(s);
			if (ops % 20011 == 0) {
				unsigned lvl = root_level(s, 1);
				max_level = lvl > max_level ? lvl : max_level;
				assert_thin_clean(s);
				compare_model(s, 1, &m, &g);
			}
			if (ops % 70001 == 0) {
				t_commit_thin(s);
				s = t_reopen(s, dev, 64);
				compare_model(s, 1, &m, &g);
			}
		}
		print_message("phase %d: %ld operations so far, %" PRIu64
			      " mapped, root level %u\n",
			      phase, ops, m.mapped, root_level(s, 1));
		assert_thin_clean(s);
		compare_model(s, 1, &m, &g);
	}
	assert_true(ops > 300000);
	assert_int_equal(max_level, 2);
	assert_int_equal(root_level(s, 1), 0);
	t_commit_thin(s);
	/* every node but the empty root leaf is free again, and every chunk */
	struct dlvm_thin_usage u = t_usage(s);
	assert_int_equal(u.meta_free, meta_free0);
	assert_int_equal(u.data_free, V);
	s = t_reopen(s, dev, 0);
	assert_int_equal(t_usage(s).meta_free, meta_free0);
	assert_thin_clean(s);
	free(m.map);
	dlvm_thin_store_close(s);
	dlvm_dev_close(dev);
}

/* Sequential keys split the last leaf over and over; removing every other
 * key leaves nodes to merge; removing from the front leaves stale lower
 * bounds in the internal nodes. */
static void btree_patterns(void **state)
{
	const uint64_t V = 60000;
	struct dlvm_dev *dev = t_thin_dev(4096, 0, V);
	struct dlvm_thin_store *s = t_open(dev, 16);
	struct tmodel m = { .V = V, .map = malloc(V * sizeof(uint64_t)) };
	struct dlvm_err e = { 0 };
	struct t_gen g = { .s = 5 };
	(void)state;

	for (uint64_t i = 0; i < V; i++)
		m.map[i] = NONE;
	assert_ok(dlvm_thin_create(s, 2, 0, &e), &e);
	for (uint64_t k = 0; k < V; k++)
		model_provision(s, &m, 2, k);
	assert_int_equal(root_level(s, 2), 2);
	assert_thin_clean(s);
	for (uint64_t k = 0; k < V; k += 2)
		model_unmap(s, &m, 2, k, 1);
	assert_thin_clean(s);
	compare_model(s, 2, &m, &g);
	for (uint64_t k = 0; k < V / 2; k++)
		model_unmap(s, &m, 2, k, 1);
	assert_thin_clean(s);
	compare_model(s, 2, &m, &g);
	t_commit_thin(s); /* the chunks freed above become free */
	/* keys below every remaining one go in front of the stale bounds */
	for (uint64_t k = 0; k < V / 2; k += 3)
		model_provision(s, &m, 2, k);
	assert_thin_clean(s);
	compare_model(s, 2, &m, &g);
	t_commit_thin(s);
	s = t_reopen(s, dev, 16);
	compare_model(s, 2, &m, &g);
	/* backwards */
	for (uint64_t k = V; k-- > 0;)
		model_unmap(s, &m, 2, k, 1);
	assert_int_equal(root_level(s, 2), 0);
	assert_thin_clean(s);
	compare_model(s, 2, &m, &g);
	free(m.map);
	dlvm_thin_store_close(s);
	dlvm_dev_close(dev);
}

/* A commit writes the nodes that changed in block order, neighbours
 * together: far fewer writes than nodes. */
static void commit_writes_neighbours_together(void **state)
{
	const uint64_t V = 20000;
	struct dlvm_dev *dev = t_thin_dev(4096, 0, V);
	struct dlvm_thin_store *s = t_open(dev, 8192);
	struct tmodel m = { .V = V, .map = malloc(V * sizeof(uint64_t)) };
	struct dlvm_err e = { 0 };
	struct t_gen g = { .s = 11 };
	(void)state;

	for (uint64_t i = 0; i < V; i++)
		m.map[i] = NONE;
	assert_ok(dlvm_thin_create(s, 2, 0, &e), &e);
	t_commit_thin(s);
	struct dlvm_thin_usage u0 = t_usage(s);
	for (uint64_t k = 0; k < V; k++)
		model_provision(s, &m, 2, k);
	long before = dlvm_memdev_writes(dev);
	t_commit_thin(s);
	long writes = dlvm_memdev_writes(dev) - before;
	struct dlvm_thin_usage u1 = t_usage(s);
	uint64_t nodes = u0.meta_free - u1.meta_free;
	print_message("%" PRIu64 " new nodes written in %ld writes\n", nodes, writes);
	assert_true(nodes > 100);
	assert_true(writes > 1 && (uint64_t)writes * 16 < nodes);
	s = t_reopen(s, dev, 16);
	compare_model(s, 2, &m, &g);
	assert_thin_clean(s);
	free(m.map);
	dlvm_thin_store_close(s);
	dlvm_dev_close(dev);
}

/* ---- snapshots ---- */

enum { MAXD = 12 };

/* A model of several devices: per device id 0..MAXD-1 a map or NULL. */
struct fam {
	uint64_t V;
	uint64_t *map[MAXD];
	uint64_t mapped[MAXD];
	uint64_t data_chunks;
};

static void fam_free(struct fam *f)
{
	for (int i = 0; i < MAXD; i++)
		free(f->map[i]);
}

/* Chunks mapped by any device of the model. */
static uint64_t fam_used(const struct fam *f)
{
	uint8_t *seen = calloc(f->data_chunks, 1);
	uint64_t n = 0;

	for (int d = 0; d < MAXD; d++)
		for (uint64_t v = 0; f->map[d] && v < f->V; v++)
			if (f->map[d][v] != NONE && !seen[f->map[d][v]]++)
				n++;
	free(seen);
	return n;
}

static bool fam_shared(const struct fam *f, int id, uint64_t v)
{
	for (int d = 0; d < MAXD; d++)
		if (d != id && f->map[d] && f->map[d][v] == f->map[id][v])
			return true;
	return false;
}

/* Every device of the store against the model, the shared flags, and the
 * data space: free + pending + used = total. */
static void fam_compare(struct dlvm_thin_store *s, const struct fam *f)
{
	struct dlvm_err e = { 0 };
	uint64_t id = 0, ndev = 0;

	for (;;) {
		assert_ok(dlvm_thin_next_dev(s, id, &id, &e), &e);
		if (id == NONE)
			break;
		assert_true(id < MAXD && f->map[id]);
		ndev++;
		struct dlvm_thin_dev_info in;
		assert_ok(dlvm_thin_info(s, id, &in, &e), &e);
		assert_int_equal(in.mapped, f->mapped[id]);
		for (uint64_t v = 0; v < f->V; v++) {
			bool sh;
			uint64_t c = t_lookup(s, id, v, &sh);
			if (c != f->map[id][v])
				fail_msg("device %" PRIu64 " chunk %" PRIu64 ": %" PRIu64
					 ", model %" PRIu64,
					 id, v, c, f->map[id][v]);
			if (c != NONE && sh != fam_shared(f, (int)id, v))
				fail_msg("device %" PRIu64 " chunk %" PRIu64 ": shared %d", id, v,
					 sh);
		}
		id++;
	}
	for (int d = 0; d < MAXD; d++)
		ndev -= f->map[d] != NULL;
	assert_int_equal(ndev, 0);
	struct dlvm_thin_usage u = t_usage(s);
	assert_int_equal(u.data_free + u.data_pending, f->data_chunks - fam_used(f));
}

static void fam_write(struct dlvm_thin_store *s, struct fam *f, int id, uint64_t v)
{
	bool is_new, shared = f->map[id][v] != NONE && fam_shared(f, id, v);
	uint64_t from, old = f->map[id][v];
	uint64_t c = t_prov(s, (uint64_t)id, v, &is_new, &from);

	if (old == NONE) {
		assert_true(is_new);
		assert_int_equal(from, NONE);
		f->mapped[id]++;
	} else if (shared) {
		assert_true(is_new); /* copy on write */
		assert_int_equal(from, old);
		assert_int_not_equal(c, old);
	} else {
		assert_false(is_new);
		assert_int_equal(c, old);
	}
	f->map[id][v] = c;
}

static void fam_snapshot(struct dlvm_thin_store *s, struct fam *f, int origin, int id)
{
	struct dlvm_err e = { 0 };

	assert_ok(dlvm_thin_snapshot(s, (uint64_t)origin, (uint64_t)id, 0, &e), &e);
	f->map[id] = malloc(f->V * sizeof(uint64_t));
	memcpy(f->map[id], f->map[origin], f->V * sizeof(uint64_t));
	f->mapped[id] = f->mapped[origin];
}

static void fam_delete(struct dlvm_thin_store *s, struct fam *f, int id)
{
	struct dlvm_err e = { 0 };

	assert_ok(dlvm_thin_delete(s, (uint64_t)id, &e), &e);
	free(f->map[id]);
	f->map[id] = NULL;
	f->mapped[id] = 0;
}

static void fam_create(struct dlvm_thin_store *s, struct fam *f, int id)
{
	struct dlvm_err e = { 0 };

	assert_ok(dlvm_thin_create(s, (uint64_t)id, 0, &e), &e);
	f->map[id] = malloc(f->V * sizeof(uint64_t));
	for (uint64_t v = 0; v < f->V; v++)
		f->map[id][v] = NONE;
	f->mapped[id] = 0;
}

static void snapshot_shares_and_copies(void **state)
{
	struct dlvm_dev *dev = t_thin_dev(2048, 0, 20000);
	struct dlvm_thin_store *s = t_open(dev, 0);
	struct fam f = { .V = 3000, .data_chunks = 20000 };
	struct dlvm_thin_dev_info in;
	struct dlvm_err e = { 0 };
	(void)state;

	fam_create(s, &f, 1);
	for (uint64_t v = 0; v < f.V; v++)
		fam_write(s, &f, 1, v);
	t_commit_thin(s);
	assert_int_equal(root_level(s, 1), 1);

	/* a snapshot costs no node of the origin's tree and no data chunk */
	struct dlvm_thin_usage u0 = t_usage(s);
	long w0 = dlvm_memdev_writes(dev);
	fam_snapshot(s, &f, 1, 2);
	struct dlvm_thin_usage u1 = t_usage(s);
	assert_int_equal(u1.data_free, u0.data_free);
	assert_true(u0.meta_free - u1.meta_free <= 1); /* the device tree leaf */
	t_commit_thin(s);
	assert_true(dlvm_memdev_writes(dev) - w0 <= 2); /* that leaf and the superblock */
	assert_ok(dlvm_thin_info(s, 2, &in, &e), &e);
	assert_int_equal(in.flags, DLVM_THIN_DEV_SNAPSHOT);
	assert_int_equal(in.snapshot_of, 1);
	assert_int_equal(in.mapped, 3000);
	assert_int_equal(in.created_txn, 3);
	fam_compare(s, &f);
	assert_thin_clean(s);

	/* a write to the origin copies the path and the chunk; the snapshot
	 * still sees the old chunk */
	uint64_t old = f.map[1][1500];
	fam_write(s, &f, 1, 1500);
	assert_int_not_equal(f.map[1][1500], old);
	assert_int_equal(t_lookup(s, 2, 1500, NULL), old);
	/* the origin's leaf is its own now: the rest of its chunks are still
	 * shared, one write each does not copy the leaf again */
	uint64_t mf = t_usage(s).meta_free;
	fam_write(s, &f, 1, 1501);
	fam_write(s, &f, 1, 1500); /* its own chunk now: written in place */
	assert_int_equal(t_usage(s).meta_free, mf);
	fam_compare(s, &f);
	assert_thin_clean(s);
	/* the same in the snapshot */
	fam_write(s, &f, 2, 10);
	fam_write(s, &f, 2, 1500);
	fam_compare(s, &f);
	assert_thin_clean(s);
	t_commit_thin(s);
	s = t_reopen(s, dev, 0);
	fam_compare(s, &f);
	assert_thin_clean(s);

	/* deleting the origin frees only what the snapshot does not map */
	uint64_t only_origin = 0;
	for (uint64_t v = 0; v < f.V; v++)
		only_origin += f.map[1][v] != f.map[2][v];
	assert_int_equal(only_origin, 3);
	u0 = t_usage(s);
	fam_delete(s, &f, 1);
	u1 = t_usage(s);
	assert_int_equal(u1.data_free, u0.data_free);
	assert_int_equal(u1.data_pending, only_origin);
	fam_compare(s, &f);
	assert_thin_clean(s);
	t_commit_thin(s);
	assert_int_equal(t_usage(s).data_free, u0.data_free + only_origin);
	assert_int_equal(t_usage(s).data_pending, 0);

	/* then the snapshot: everything is free again */
	fam_delete(s, &f, 2);
	fam_compare(s, &f);
	assert_thin_clean(s);
	t_commit_thin(s);
	u1 = t_usage(s);
	assert_int_equal(u1.data_free, 20000);
	assert_int_equal(u1.meta_free, 2048 - 3);
	assert_int_equal(u1.devices, 0);
	s = t_reopen(s, dev, 0);
	assert_int_equal(t_usage(s).meta_free, 2048 - 3);
	fam_free(&f);
	dlvm_thin_store_close(s);
	dlvm_dev_close(dev);
}

/* Snapshots made in the same transaction as the writes before them (nodes
 * that are new and shared at once), snapshots of snapshots, deletes in any
 * order; check() after every step. */
static void snapshot_random_family(void **state)
{
	struct dlvm_dev *dev = t_thin_dev(4096, 0, 30000);
	struct dlvm_thin_store *s = t_open(dev, 32);
	struct fam f = { .V = 2000, .data_chunks = 30000 };
	struct t_gen g = { .s = 2024 };
	unsigned counts[6] = { 0 };
	(void)state;

	fam_create(s, &f, 0);
	for (int step = 0; step < 3000; step++) {
		int live[MAXD], nlive = 0, freeid = -1;
		for (int d = 0; d < MAXD; d++) {
			if (f.map[d])
				live[nlive++] = d;
			else if (freeid < 0)
				freeid = d;
		}
		int id = nlive ? live[t_rnd(&g) % (uint32_t)nlive] : -1;
		uint32_t op = t_rnd(&g) % 100;
		if (!nlive) {
			fam_create(s, &f, freeid);
			counts[0]++;
		} else if (op < 2 && freeid >= 0) {
			fam_create(s, &f, freeid);
			counts[0]++;
		} else if (op < 6 && freeid >= 0) {
			fam_snapshot(s, &f, id, freeid);
			counts[1]++;
		} else if (op < 9 && nlive > 1) {
			fam_delete(s, &f, id);
			counts[2]++;
		} else if (op < 80) {
			/* runs of writes so leaves fill and split */
			uint64_t v = t_rnd(&g) % f.V, n = 1 + t_rnd(&g) % 8;
			for (uint64_t i = 0; i < n && v + i < f.V; i++)
				fam_write(s, &f, id, v + i);
			counts[3]++;
		} else if (op < 95) {
			struct dlvm_err e = { 0 };
			uint64_t v = t_rnd(&g) % f.V, n = 1 + t_rnd(&g) % 300, got, want = 0;
			assert_ok(dlvm_thin_unmap(s, (uint64_t)id, v, n, &got, &e), &e);
			for (uint64_t i = v; i < v + n && i < f.V; i++) {
				want += f.map[id][i] != NONE;
				f.map[id][i] = NONE;
			}
			assert_int_equal(got, want);
			f.mapped[id] -= want;
			counts[4]++;
		} else {
			t_commit_thin(s);
			if (op == 99)
				s = t_reopen(s, dev, 32);
			counts[5]++;
		}
		assert_thin_clean(s);
		if (step % 50 == 0)
			fam_compare(s, &f);
	}
	print_message("%u creates, %u snapshots, %u deletes, %u write runs, %u unmaps, %u "
		      "commits\n",
		      counts[0], counts[1], counts[2], counts[3], counts[4], counts[5]);
	assert_true(counts[1] > 50 && counts[2] > 50);
	fam_compare(s, &f);
	t_commit_thin(s);
	s = t_reopen(s, dev, 0);
	fam_compare(s, &f);
	assert_thin_clean(s);
	fam_free(&f);
	dlvm_thin_store_close(s);
	dlvm_dev_close(dev);
}

/* ---- damage ---- */

/* A store with two devices, committed twice; returns the block of device
 * 2's mapping tree root (a leaf). */
static struct dlvm_dev *damage_fixture(uint64_t *leaf2, uint64_t *leaf1)
{
	struct dlvm_dev *dev = t_thin_dev(64, 0, 1000);
	struct dlvm_thin_store *s = t_open(dev, 0);
	struct dlvm_err e = { 0 };
	struct th_devrec rec;

	assert_ok(dlvm_thin_create(s, 1, 0, &e), &e);
	assert_ok(dlvm_thin_create(s, 2, 0, &e), &e);
	for (uint64_t v = 0; v < 10; v++) {
		t_prov(s, 1, v, NULL, NULL);
		t_prov(s, 2, v * 7, NULL, NULL);
	}
	t_commit_thin(s);
	t_prov(s, 2, 500, NULL, NULL);
	t_commit_thin(s);
	assert_ok(th_dev_find(s, 2, &rec, &e), &e);
	*leaf2 = rec.root;
	assert_ok(th_dev_find(s, 1, &rec, &e), &e);
	*leaf1 = rec.root;
	dlvm_thin_store_close(s);
	return dev;
}

static void damaged_node_refused_at_open(void **state)
{
	struct dlvm_thin_open_opts salvage = { .flags = DLVM_THIN_SALVAGE };
	struct dlvm_thin_store *s = NULL;
	struct dlvm_err e = { 0 };
	uint64_t leaf2, leaf1, c;
	char want[200], *txt;
	bool is_new;
	(void)state;

	struct dlvm_dev *dev = damage_fixture(&leaf2, &leaf1);
	dlvm_memdev_data(dev)[leaf2 * 4096 + 2100] ^= 0x10;
	snprintf(want, sizeof(want), "thin0: node at block %" PRIu64 ": checksum mismatch", leaf2);
	assert_err(dlvm_thin_store_open(dev, NULL, &s, &e), &e, -EBADMSG, want);
	assert_null(s);

	/* salvage: read-only, check names the block, the other device reads */
	assert_ok(dlvm_thin_store_open(dev, &salvage, &s, &e), &e);
	assert_true(t_usage(s).readonly);
	assert_int_equal(t_thin_check(s, &txt), 1);
	assert_non_null(strstr(txt, want));
	free(txt);
	assert_int_not_equal(t_lookup(s, 1, 3, NULL), NONE);
	assert_err(dlvm_thin_lookup(s, 2, 7, &c, NULL, &e), &e, -EBADMSG, want);
	assert_err(dlvm_thin_provision(s, 1, 3, &c, &is_new, NULL, &e), &e, -EROFS,
		   "thin0: thin store is read-only");
	dlvm_thin_store_close(s);

	/* a valid node in the wrong block (a misdirected write) */
	uint8_t *d = dlvm_memdev_data(dev);
	d[leaf2 * 4096 + 2100] ^= 0x10;
	memcpy(d + leaf2 * 4096, d + leaf1 * 4096, 4096);
	snprintf(want, sizeof(want),
		 "thin0: node at block %" PRIu64 ": field blocknr is %" PRIu64
		 " (a node written elsewhere)",
		 leaf2, leaf1);
	assert_err(dlvm_thin_store_open(dev, NULL, &s, &e), &e, -EBADMSG, want);
	dlvm_dev_close(dev);
}

/* A leaf deep in a tree (read ahead with its siblings at open) is named
 * just the same. */
static void damaged_leaf_below_internal_node(void **state)
{
	struct dlvm_dev *dev = t_thin_dev(256, 0, 10000);
	struct dlvm_thin_store *s = t_open(dev, 0);
	struct dlvm_err e = { 0 };
	struct th_devrec rec;
	struct th_cnode *root;
	char want[200];
	(void)state;

	assert_ok(dlvm_thin_create(s, 1, 0, &e), &e);
	for (uint64_t v = 0; v < 5000; v++)
		t_prov(s, 1, v * 2, NULL, NULL);
	t_commit_thin(s);
	assert_ok(th_dev_find(s, 1, &rec, &e), &e);
	assert_ok(th_node_get(s, rec.root, TH_TREE_MAP, -1, &root, &e), &e);
	assert_int_equal(root->n.level, 1);
	assert_true(root->n.nr > 20);
	uint64_t leaf = root->n.u.v[17];
	th_node_put(s, root);
	s = t_reopen(s, dev, 0);
	assert_thin_clean(s);
	dlvm_thin_store_close(s);
	dlvm_memdev_data(dev)[leaf * 4096 + 3000] ^= 0x80;
	snprintf(want, sizeof(want), "thin0: node at block %" PRIu64 ": checksum mismatch", leaf);
	s = NULL;
	assert_err(dlvm_thin_store_open(dev, NULL, &s, &e), &e, -EBADMSG, want);
	assert_null(s);
	dlvm_dev_close(dev);
}

/* A node that cannot be read (a bad sector): the large read of the walk
 * that covers it fails, the nodes around it are still read, and the error
 * names the node's own block. */
static void unreadable_node_named_at_open(void **state)
{
	struct dlvm_thin_store *s = NULL;
	struct dlvm_err e = { 0 };
	uint64_t leaf2, leaf1;
	char want[200];
	(void)state;

	struct dlvm_dev *dev = damage_fixture(&leaf2, &leaf1);
	dlvm_memdev_set_unreadable(dev, leaf1 * 4096 + 1024, 512);
	snprintf(want, sizeof(want), "thin0: read of 4096 bytes at offset %" PRIu64 " failed: %s",
		 leaf1 * 4096, strerror(EIO));
	assert_err(dlvm_thin_store_open(dev, NULL, &s, &e), &e, -EIO, want);
	assert_null(s);
	dlvm_memdev_set_unreadable(dev, 0, 0);
	assert_ok(dlvm_thin_store_open(dev, NULL, &s, &e), &e);
	assert_int_not_equal(t_lookup(s, 1, 3, NULL), NONE);
	assert_int_not_equal(t_lookup(s, 2, 7, NULL), NONE);
	dlvm_thin_store_close(s);
	dlvm_dev_close(dev);
}

static void damaged_node_found_later(void **state)
{
	struct dlvm_thin_open_opts small = { .cache_blocks = 1 };
	struct dlvm_thin_store *s = NULL;
	struct dlvm_err e = { 0 };
	uint64_t leaf2, leaf1, c;
	char want[200];
	bool is_new;
	(void)state;

	struct dlvm_dev *dev = damage_fixture(&leaf2, &leaf1);
	assert_ok(dlvm_thin_store_open(dev, &small, &s, &e), &e);
	/* the cache holds one node: reading device 1 pushes device 2's leaf out */
	assert_int_not_equal(t_lookup(s, 2, 7, NULL), NONE);
	assert_int_not_equal(t_lookup(s, 1, 3, NULL), NONE);
	dlvm_memdev_data(dev)[leaf2 * 4096 + 40] ^= 0x01;
	snprintf(want, sizeof(want), "thin0: node at block %" PRIu64 ": checksum mismatch", leaf2);
	assert_err(dlvm_thin_lookup(s, 2, 7, &c, NULL, &e), &e, -EBADMSG, want);
	/* from now on the store takes no change */
	assert_err(dlvm_thin_provision(s, 1, 3, &c, &is_new, NULL, &e), &e, -EROFS, want);
	assert_err(dlvm_thin_create(s, 9, 0, &e), &e, -EROFS,
		   "thin0: thin store refuses changes "
		   "after an earlier error (thin0: node at block");
	assert_err(dlvm_thin_commit(s, &e), &e, -EROFS,
		   "reopen it to continue from the last "
		   "commit");
	assert_true(t_usage(s).readonly);
	assert_int_not_equal(t_lookup(s, 1, 3, NULL), NONE);
	dlvm_thin_store_close(s);
	dlvm_dev_close(dev);
}

static void damaged_superblock_slots(void **state)
{
	struct dlvm_thin_store *s = NULL;
	struct dlvm_err e = { 0 };
	uint64_t leaf2, leaf1;
	(void)state;

	struct dlvm_dev *dev = damage_fixture(&leaf2, &leaf1);
	uint8_t *d = dlvm_memdev_data(dev);
	/* txn 3 is in slot 0 (1: format, 2: slot 1, 3: slot 0) */
	assert_int_equal(dlvm_get_le64(d + 56), 3);
	assert_int_equal(dlvm_get_le64(d + 4096 + 56), 2);
	d[100] ^= 1;
	s = t_open(dev, 0);
	/* the older commit: chunk 500 of device 2 is not mapped there */
	assert_int_equal(t_usage(s).transaction, 2);
	assert_int_equal(t_lookup(s, 2, 500, NULL), NONE);
	assert_int_not_equal(t_lookup(s, 2, 63, NULL), NONE);
	assert_thin_clean(s);
	/* the next commit goes to the damaged slot, the older one stays */
	t_prov(s, 2, 600, NULL, NULL);
	t_commit_thin(s);
	assert_int_equal(dlvm_get_le64(d + 56), 3);
	assert_int_equal(dlvm_get_le64(d + 4096 + 56), 2);
	s = t_reopen(s, dev, 0);
	assert_int_not_equal(t_lookup(s, 2, 600, NULL), NONE);
	dlvm_thin_store_close(s);

	/* damage both slots */
	d[100] ^= 1;
	d[4096 + 60] ^= 1;
	assert_err(dlvm_thin_store_open(dev, NULL, &s, &e), &e, -EBADMSG,
		   "thin0: both superblock slots are unreadable: superblock slot 0 (block 0): "
		   "checksum mismatch");
	assert_non_null(strstr(e.msg, "; superblock slot 1 (block 1): checksum mismatch"));
	dlvm_dev_close(dev);
}

/* A slot written by a newer version (unknown incompatible feature, good
 * checksum) may hold the newest commit: the store is refused rather than
 * opened at the other slot, whose next commit would overwrite it. */
static void newer_superblock_slot_refused(void **state)
{
	struct dlvm_thin_store *s = NULL;
	struct dlvm_err e = { 0 };
	uint64_t leaf2, leaf1;
	(void)state;

	struct dlvm_dev *dev = damage_fixture(&leaf2, &leaf1);
	uint8_t *d = dlvm_memdev_data(dev);
	for (unsigned slot = 0; slot < 2; slot++) {
		uint8_t *b = d + slot * 4096, keep[4096];
		memcpy(keep, b, sizeof(keep));
		put_le(b + 32, 8, 1ull << 40);
		dlvm_put_le32(b + 508, dlvm_crc32c(b, 508));
		char want[128];
		snprintf(want, sizeof(want),
			 "thin0: superblock slot %u (block %u): superblock "
			 "slot %u (block %u): unknown incompatible features 0x10000000000",
			 slot, slot, slot, slot);
		long w = dlvm_memdev_writes(dev);
		assert_err(dlvm_thin_store_open(dev, NULL, &s, &e), &e, -ENOTSUP, want);
		assert_int_equal(dlvm_memdev_writes(dev), w);
		memcpy(b, keep, sizeof(keep));
	}
	s = t_open(dev, 0);
	assert_int_equal(t_usage(s).transaction, 3);
	dlvm_thin_store_close(s);
	dlvm_dev_close(dev);
}

/* ---- running out of space ---- */

static void data_full_then_grow(void **state)
{
	struct dlvm_dev *dev = t_thin_dev(64, 0, 100);
	struct dlvm_thin_store *s = t_open(dev, 0);
	struct dlvm_err e = { 0 };
	uint64_t c, n;
	bool is_new;
	(void)state;

	assert_ok(dlvm_thin_create(s, 1, 0, &e), &e);
	for (uint64_t v = 0; v < 100; v++)
		t_prov(s, 1, v * 3, NULL, NULL);
	assert_err(dlvm_thin_provision(s, 1, 1000, &c, &is_new, NULL, &e), &e, -ENOSPC,
		   "thin0: no free data chunk for thin device 1 (100 chunks, 0 free after the next "
		   "commit, 0 cooling)");
	assert_int_equal(c, NONE);
	/* everything written before stays; nothing changed */
	assert_int_equal(t_lookup(s, 1, 1000, NULL), NONE);
	assert_int_not_equal(t_lookup(s, 1, 297, NULL), NONE);
	assert_thin_clean(s);
	/* a write to a chunk the device owns still works */
	t_prov(s, 1, 3, &is_new, NULL);
	assert_false(is_new);
	/* a snapshot makes every chunk shared: a write needs a copy */
	assert_ok(dlvm_thin_snapshot(s, 1, 2, DLVM_THIN_DEV_READONLY, &e), &e);
	assert_err(dlvm_thin_provision(s, 1, 3, &c, &is_new, NULL, &e), &e, -ENOSPC,
		   "no free data chunk");
	assert_err(dlvm_thin_provision(s, 2, 3, &c, &is_new, NULL, &e), &e, -EROFS,
		   "thin0: thin device 2 is read-only");

	/* freed chunks wait for the commit */
	assert_ok(dlvm_thin_delete(s, 2, &e), &e);
	assert_ok(dlvm_thin_unmap(s, 1, 0, 30, &n, &e), &e);
	assert_int_equal(n, 10);
	assert_int_equal(t_usage(s).data_pending, 10);
	assert_err(dlvm_thin_provision(s, 1, 1000, &c, &is_new, NULL, &e), &e, -ENOSPC,
		   "(100 chunks, 10 free after the next commit, 0 cooling)");
	t_commit_thin(s);
	assert_int_equal(t_usage(s).data_free, 10);
	for (uint64_t v = 1000; v < 1010; v++)
		t_prov(s, 1, v, NULL, NULL);
	assert_err(dlvm_thin_provision(s, 1, 2000, &c, &is_new, NULL, &e), &e, -ENOSPC,
		   "no free data chunk");

	/* grow and go on */
	assert_err(dlvm_thin_grow_data(s, 99, &e), &e, -EINVAL,
		   "thin0: cannot change the data chunk count from 100 to 99");
	assert_ok(dlvm_thin_grow_data(s, 250, &e), &e);
	assert_int_equal(t_usage(s).data_free, 150);
	for (uint64_t v = 2000; v < 2150; v++)
		assert_true(t_prov(s, 1, v, NULL, NULL) < 250);
	assert_err(dlvm_thin_provision(s, 1, 3000, &c, &is_new, NULL, &e), &e, -ENOSPC,
		   "(250 chunks, 0 free");
	assert_thin_clean(s);
	t_commit_thin(s);
	s = t_reopen(s, dev, 0);
	assert_int_equal(t_usage(s).data_chunks, 250);
	assert_int_equal(t_usage(s).data_free, 0);
	assert_thin_clean(s);
	dlvm_thin_store_close(s);
	dlvm_dev_close(dev);
}

static void metadata_full_then_grow(void **state)
{
	struct dlvm_dev *dev = t_thin_dev(40, 500, 100000);
	struct dlvm_thin_store *s = t_open(dev, 4);
	struct dlvm_err e = { 0 };
	uint64_t c, v = 0;
	bool is_new;
	int r = 0;
	(void)state;

	assert_ok(dlvm_thin_create(s, 1, 0, &e), &e);
	t_commit_thin(s);
	while (!r) {
		dlvm_err_clear(&e);
		r = dlvm_thin_provision(s, 1, v, &c, &is_new, NULL, &e);
		if (!r)
			v++;
	}
	assert_int_equal(r, -ENOSPC);
	assert_non_null(strstr(e.msg, "thin0: thin metadata is full: "));
	print_message("%" PRIu64 " chunks mapped in 40 metadata blocks: %s\n", v, e.msg);
	assert_true(v > 500);
	assert_int_equal(t_lookup(s, 1, v, NULL), NONE);
	assert_thin_clean(s);
	/* a change that needs no metadata still works */
	t_prov(s, 1, 0, &is_new, NULL);
	assert_false(is_new);
	t_commit_thin(s);

	assert_err(dlvm_thin_grow_meta(s, 541, &e), &e, -EINVAL,
		   "thin0: cannot change the metadata block count from 40 to 541 (it only grows, "
		   "up to the 540 blocks of the device)");
	assert_ok(dlvm_thin_grow_meta(s, 540, &e), &e);
	uint64_t v0 = v;
	for (; v < v0 + 20000; v++)
		t_prov(s, 1, v, NULL, NULL);
	assert_ok(dlvm_thin_create(s, 2, 0, &e), &e);
	assert_thin_clean(s);
	t_commit_thin(s);
	s = t_reopen(s, dev, 4);
	assert_int_equal(t_usage(s).meta_blocks, 540);
	struct dlvm_thin_dev_info in;
	assert_ok(dlvm_thin_info(s, 1, &in, &e), &e);
	assert_int_equal(in.mapped, v);
	assert_thin_clean(s);
	dlvm_thin_store_close(s);
	dlvm_dev_close(dev);
}

/* An unmap in a snapshot copies shared nodes: with no metadata left it
 * stops early, says how far it got, and leaves a consistent store; after the
 * metadata grows it goes on. */
static void unmap_without_metadata(void **state)
{
	struct dlvm_dev *dev = t_thin_dev(40, 400, 100000);
	struct dlvm_thin_store *s = t_open(dev, 0);
	struct dlvm_thin_dev_info in;
	struct dlvm_err e = { 0 };
	uint64_t c, v, n, total = 0, mb = 40, first;
	unsigned rounds = 0, partial = 0;
	bool is_new;
	int r = 0;
	(void)state;

	assert_ok(dlvm_thin_create(s, 1, 0, &e), &e);
	assert_ok(dlvm_thin_create(s, 2, 0, &e), &e);
	for (v = 0; v < 2000; v++)
		t_prov(s, 1, v, NULL, NULL);
	assert_ok(dlvm_thin_snapshot(s, 1, 3, 0, &e), &e);
	t_commit_thin(s);
	for (v = 0; !r; v++) {
		dlvm_err_clear(&e);
		r = dlvm_thin_provision(s, 2, v, &c, &is_new, NULL, &e);
	}
	assert_int_equal(r, -ENOSPC);
	for (;;) {
		dlvm_err_clear(&e);
		r = dlvm_thin_unmap(s, 3, 0, 2000, &n, &e);
		char msg[DLVM_ERR_MSG_MAX];
		memcpy(msg, e.msg, sizeof(msg));
		total += n;
		assert_ok(dlvm_thin_info(s, 3, &in, &e), &e);
		assert_int_equal(in.mapped, 2000 - total);
		assert_ok(dlvm_thin_next_mapped(s, 3, 0, &first, NULL, &e), &e);
		assert_int_equal(first, total == 2000 ? NONE : total);
		assert_thin_clean(s);
		if (!r)
			break;
		assert_int_equal(r, -ENOSPC);
		assert_non_null(strstr(msg, "thin0: thin metadata is full"));
		rounds++;
		partial += n > 0;
		mb += 1;
		assert_ok(dlvm_thin_grow_meta(s, mb, &e), &e);
	}
	print_message("unmapped 2000 chunks of a snapshot in %u rounds of growing metadata, %u "
		      "stopped half way\n",
		      rounds + 1, partial);
	assert_true(partial > 0);
	assert_int_equal(total, 2000);
	t_commit_thin(s);
	s = t_reopen(s, dev, 0);
	assert_thin_clean(s);
	dlvm_thin_store_close(s);
	dlvm_dev_close(dev);
}

/* A store of chunk_size bytes per chunk, formatted with or without
 * unwritten sub-blocks. */
static struct dlvm_dev *t_thin_dev_opts(uint64_t chunk_size, bool zero_new)
{
	struct dlvm_thin_format_opts o = { .chunk_size = chunk_size,
					   .data_chunks = 100,
					   .meta_blocks = 64,
					   .zero_new = zero_new };
	struct dlvm_dev *dev = dlvm_memdev_new("thin0", 64 * 4096, 4096);
	struct dlvm_err e = { 0 };

	assert_non_null(dev);
	assert_ok(dlvm_thin_store_format(dev, &o, &e), &e);
	return dev;
}

static uint16_t t_unwritten(struct dlvm_thin_store *s, uint64_t id, uint64_t v, uint64_t chunk)
{
	struct dlvm_thin_mapping m;
	struct dlvm_err e = { 0 };

	assert_ok(dlvm_thin_lookup_mapping(s, id, v, &m, &e), &e);
	assert_int_equal(m.chunk, chunk);
	return m.unwritten;
}

/* Unwritten masks: kept by provision, changed only for the chunk named,
 * committed, shared by a snapshot and handed to copy-on-write, limited to
 * the chunk's sub-blocks, and never kept by a store formatted with
 * zero_new. */
static void unwritten_masks(void **state)
{
	struct dlvm_dev *dev = t_thin_dev_opts(65536, false);
	struct dlvm_thin_store *s = t_open(dev, 0);
	struct dlvm_thin_mapping m;
	struct dlvm_err e = { 0 };
	(void)state;

	assert_int_equal(dlvm_thin_subblocks(4096), 1);
	assert_int_equal(dlvm_thin_subblocks(16384), 4);
	assert_int_equal(dlvm_thin_subblocks(65536), 16);
	assert_int_equal(dlvm_thin_subblocks(1 << 20), 16);
	assert_true(dlvm_thin_tracks_unwritten(s));
	assert_ok(dlvm_thin_create(s, 1, 0, &e), &e);
	assert_ok(dlvm_thin_provision_mapping(s, 1, 5, 0xffff, &m, &e), &e);
	assert_true(m.is_new);
	assert_int_equal(m.chunk, 0);
	assert_int_equal(m.unwritten, 0xffff);
	assert_int_equal(m.copy_from, NONE);
	/* a write to the chunk it owns alone: the mask as it is */
	assert_ok(dlvm_thin_set_unwritten(s, 1, 5, 0, 0, 0x0003, &e), &e);
	assert_ok(dlvm_thin_provision_mapping(s, 1, 5, 0xffff, &m, &e), &e);
	assert_false(m.is_new);
	assert_int_equal(m.unwritten, 0xfffc);
	/* another chunk named: nothing changes; nor for a hole */
	assert_ok(dlvm_thin_set_unwritten(s, 1, 5, 7, 0, 0xffff, &e), &e);
	assert_ok(dlvm_thin_set_unwritten(s, 1, 6, 0, 0, 0xffff, &e), &e);
	assert_int_equal(t_unwritten(s, 1, 5, 0), 0xfffc);
	assert_int_equal(t_unwritten(s, 1, 6, NONE), 0);
	assert_ok(dlvm_thin_set_unwritten(s, 1, 5, 0, 0x0001, 0x0100, &e), &e);
	assert_int_equal(t_unwritten(s, 1, 5, 0), 0xfefd);
	assert_err(dlvm_thin_set_unwritten(s, 9, 5, 0, 0, 1, &e), &e, -ENOENT, "does not exist");
	t_commit_thin(s);
	s = t_reopen(s, dev, 0);
	assert_int_equal(t_unwritten(s, 1, 5, 0), 0xfefd);
	assert_int_equal(t_thin_check(s, NULL), 0);
	/* a snapshot shares the mapping, mask and all; a write to the origin
	 * copies the chunk and learns what of it reads as zeros */
	assert_ok(dlvm_thin_snapshot(s, 1, 2, 0, &e), &e);
	assert_ok(dlvm_thin_provision_mapping(s, 1, 5, 0xffff, &m, &e), &e);
	assert_true(m.is_new);
	assert_int_equal(m.copy_from, 0);
	assert_int_equal(m.from_unwritten, 0xfefd);
	assert_ok(dlvm_thin_set_unwritten(s, 1, 5, m.chunk, 0, 0xffff, &e), &e);
	assert_int_equal(t_unwritten(s, 1, 5, m.chunk), 0);
	assert_int_equal(t_unwritten(s, 2, 5, 0), 0xfefd);
	/* a read-only snapshot's mask does not change */
	assert_ok(dlvm_thin_set_flags(s, 2, DLVM_THIN_DEV_READONLY, &e), &e);
	assert_err(dlvm_thin_set_unwritten(s, 2, 5, 0, 0, 1, &e), &e, -EROFS, "read-only");
	t_commit_thin(s);
	assert_int_equal(t_thin_check(s, NULL), 0);
	dlvm_thin_store_close(s);
	dlvm_dev_close(dev);

	/* 16 KiB chunks: four sub-blocks, the other bits never stored */
	dev = t_thin_dev_opts(16384, false);
	s = t_open(dev, 0);
	assert_ok(dlvm_thin_create(s, 1, 0, &e), &e);
	assert_ok(dlvm_thin_provision_mapping(s, 1, 0, 0xffff, &m, &e), &e);
	assert_int_equal(m.unwritten, 0x000f);
	assert_ok(dlvm_thin_set_unwritten(s, 1, 0, m.chunk, 0xfff0, 0x0001, &e), &e);
	assert_int_equal(t_unwritten(s, 1, 0, m.chunk), 0x000e);
	dlvm_thin_store_close(s);
	dlvm_dev_close(dev);

	/* the format before the feature: no masks at all */
	dev = t_thin_dev_opts(65536, true);
	s = t_open(dev, 0);
	assert_false(dlvm_thin_tracks_unwritten(s));
	assert_ok(dlvm_thin_create(s, 1, 0, &e), &e);
	assert_ok(dlvm_thin_provision_mapping(s, 1, 0, 0xffff, &m, &e), &e);
	assert_int_equal(m.unwritten, 0);
	assert_ok(dlvm_thin_set_unwritten(s, 1, 0, m.chunk, 0xffff, 0, &e), &e);
	assert_int_equal(t_unwritten(s, 1, 0, m.chunk), 0);
	dlvm_thin_store_close(s);
	dlvm_dev_close(dev);
}

/* A mask bit beyond the chunk's sub-blocks, or any in a store without the
 * feature, is damage named by its entry. */
static void unwritten_bits_checked(void **state)
{
	struct th_limits lim = { .meta_blocks = 100,
				 .data_chunks = 1000,
				 .max_txn = 5,
				 .map_flags = 0x000f };
	struct th_node n = { .blocknr = 7,
			     .txn = 1,
			     .type = TH_TREE_MAP,
			     .level = 0,
			     .nr = 2,
			     .keys = { 1, 2 } };
	struct dlvm_err e = { 0 };
	(void)state;

	n.u.v[0] = 3 | (UINT64_C(0x000f) << 48);
	n.u.v[1] = 4;
	assert_ok(th_node_validate(&n, &lim, &e), &e);
	n.u.v[1] = 4 | (UINT64_C(0x0030) << 48);
	assert_err(th_node_validate(&n, &lim, &e), &e, -EBADMSG,
		   "node at block 7: entry 1 has unknown flags 0x30");
	lim.map_flags = 0;
	assert_err(th_node_validate(&n, &lim, &e), &e, -EBADMSG,
		   "node at block 7: entry 0 has unknown flags 0xf");
	lim.map_flags = 0xffff;
	n.u.v[1] = 1000 | (UINT64_C(0x8000) << 48);
	assert_err(th_node_validate(&n, &lim, &e), &e, -EBADMSG,
		   "entry 1 maps to data chunk 1000, beyond the 1000 data chunks");
}

/* The freed hook: each run of chunks a commit frees, once, after the
 * commit; nothing for a commit that frees nothing. */
struct freed_log {
	uint64_t first[16], n[16];
	size_t runs;
};

static void log_freed(void *arg, uint64_t chunk, uint64_t n)
{
	struct freed_log *l = arg;

	assert_true(l->runs < 16);
	l->first[l->runs] = chunk;
	l->n[l->runs++] = n;
}

static void freed_hook_runs(void **state)
{
	struct dlvm_dev *dev = t_thin_dev(64, 0, 1000);
	struct dlvm_thin_store *s = t_open(dev, 0);
	struct freed_log l = { .runs = 0 };
	struct dlvm_err e = { 0 };
	uint64_t n;
	(void)state;

	dlvm_thin_set_freed_hook(s, log_freed, &l);
	assert_ok(dlvm_thin_create(s, 1, 0, &e), &e);
	for (uint64_t v = 0; v < 200; v++)
		assert_int_equal(t_prov(s, 1, v, NULL, NULL), v); /* chunk v */
	t_commit_thin(s);
	assert_int_equal(l.runs, 0);
	/* chunks 10-19, 63-64 (across a bitmap word) and 199 (the last one
	 * handed out) */
	assert_ok(dlvm_thin_unmap(s, 1, 10, 10, &n, &e), &e);
	assert_ok(dlvm_thin_unmap(s, 1, 63, 2, &n, &e), &e);
	assert_ok(dlvm_thin_unmap(s, 1, 199, 1, &n, &e), &e);
	assert_int_equal(l.runs, 0); /* not before the commit */
	t_commit_thin(s);
	assert_int_equal(l.runs, 3);
	assert_int_equal(l.first[0], 10);
	assert_int_equal(l.n[0], 10);
	assert_int_equal(l.first[1], 63);
	assert_int_equal(l.n[1], 2);
	assert_int_equal(l.first[2], 199);
	assert_int_equal(l.n[2], 1);
	t_commit_thin(s);
	assert_int_equal(l.runs, 3); /* nothing freed: nothing told */
	/* a snapshot holds the chunks: deleting the origin frees nothing,
	 * deleting the snapshot then frees the 187 chunks left, in runs */
	assert_ok(dlvm_thin_snapshot(s, 1, 2, 0, &e), &e);
	assert_ok(dlvm_thin_delete(s, 1, &e), &e);
	t_commit_thin(s);
	assert_int_equal(l.runs, 3);
	assert_ok(dlvm_thin_delete(s, 2, &e), &e);
	t_commit_thin(s);
	assert_int_equal(l.runs, 6);
	uint64_t total = 0;
	for (size_t i = 3; i < l.runs; i++)
		total += l.n[i];
	assert_int_equal(total, 187);
	assert_int_equal(l.first[3], 0);
	assert_int_equal(l.n[3], 10);
	dlvm_thin_store_close(s);
	dlvm_dev_close(dev);
}

/* With cooling on, what a commit frees is handed out only after a seal and
 * a release; chunks freed after the seal wait for the next one; the
 * checker counts them; turning cooling off frees them. */
static void freed_chunks_cool(void **state)
{
	struct dlvm_dev *dev = t_thin_dev(64, 0, 100);
	struct dlvm_thin_store *s = t_open(dev, 0);
	struct dlvm_err e = { 0 };
	uint64_t c, n;
	bool is_new;
	(void)state;

	dlvm_thin_set_cooling(s, true);
	assert_ok(dlvm_thin_create(s, 1, 0, &e), &e);
	for (uint64_t v = 0; v < 100; v++)
		assert_int_equal(t_prov(s, 1, v, NULL, NULL), v);
	t_commit_thin(s);
	assert_ok(dlvm_thin_unmap(s, 1, 10, 5, &n, &e), &e);
	assert_int_equal(n, 5);
	t_commit_thin(s);
	/* committed, but cooling: not free, counted as pending */
	assert_int_equal(dlvm_thin_cooling(s), 5);
	assert_int_equal(t_usage(s).data_free, 0);
	assert_int_equal(t_usage(s).data_pending, 5);
	assert_err(dlvm_thin_provision(s, 1, 200, &c, &is_new, NULL, &e), &e, -ENOSPC,
		   "(100 chunks, 0 free after the next commit, 5 cooling)");
	assert_thin_clean(s);
	/* releasing without a seal frees nothing */
	assert_int_equal(dlvm_thin_cool_release(s), 0);
	dlvm_thin_cool_seal(s);
	/* freed after the seal: waits for the next one */
	assert_ok(dlvm_thin_unmap(s, 1, 50, 2, &n, &e), &e);
	t_commit_thin(s);
	assert_int_equal(dlvm_thin_cooling(s), 7);
	assert_thin_clean(s);
	assert_int_equal(dlvm_thin_cool_release(s), 5);
	assert_int_equal(t_usage(s).data_free, 5);
	assert_int_equal(t_usage(s).data_pending, 2);
	for (uint64_t v = 200; v < 205; v++) {
		c = t_prov(s, 1, v, NULL, NULL);
		assert_true(c >= 10 && c < 15);
	}
	assert_err(dlvm_thin_provision(s, 1, 300, &c, &is_new, NULL, &e), &e, -ENOSPC,
		   "2 cooling)");
	assert_thin_clean(s);
	/* off: everything cooling is free at once */
	dlvm_thin_set_cooling(s, false);
	assert_int_equal(dlvm_thin_cooling(s), 0);
	assert_int_equal(t_usage(s).data_free, 2);
	c = t_prov(s, 1, 300, NULL, NULL);
	assert_true(c == 50 || c == 51);
	/* and a commit frees at once again */
	assert_ok(dlvm_thin_unmap(s, 1, 300, 1, &n, &e), &e);
	t_commit_thin(s);
	assert_int_equal(t_usage(s).data_free, 2);
	assert_thin_clean(s);
	dlvm_thin_store_close(s);
	dlvm_dev_close(dev);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(sb_roundtrip),
		cmocka_unit_test(freed_hook_runs),
		cmocka_unit_test(freed_chunks_cool),
		cmocka_unit_test(unwritten_masks),
		cmocka_unit_test(unwritten_bits_checked),
		cmocka_unit_test(sb_bad_fields),
		cmocka_unit_test(node_roundtrip),
		cmocka_unit_test(node_bad_fields_map_leaf),
		cmocka_unit_test(node_bad_fields_internal),
		cmocka_unit_test(node_bad_fields_dev_leaf),
		cmocka_unit_test(format_and_open),
		cmocka_unit_test(format_over_old_store),
		cmocka_unit_test(devices_basics),
		cmocka_unit_test(dump_blocks),
		cmocka_unit_test(btree_random_against_model),
		cmocka_unit_test(btree_patterns),
		cmocka_unit_test(commit_writes_neighbours_together),
		cmocka_unit_test(snapshot_shares_and_copies),
		cmocka_unit_test(snapshot_random_family),
		cmocka_unit_test(damaged_node_refused_at_open),
		cmocka_unit_test(damaged_leaf_below_internal_node),
		cmocka_unit_test(unreadable_node_named_at_open),
		cmocka_unit_test(damaged_node_found_later),
		cmocka_unit_test(damaged_superblock_slots),
		cmocka_unit_test(newer_superblock_slot_refused),
		cmocka_unit_test(data_full_then_grow),
		cmocka_unit_test(metadata_full_then_grow),
		cmocka_unit_test(unmap_without_metadata),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
