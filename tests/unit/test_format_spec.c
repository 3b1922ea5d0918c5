/* SPDX-License-Identifier: MIT */
/*
 * The written format spec (the .md files of docs/format/) against the code. Every table
 * that a line "<!-- spec: KIND NAME -->" precedes is read and compared:
 *
 *   layout NAME  rows "| offset | size | type | field | ... |" tile the
 *                structure and give every field the codec's offset and size;
 *                where the structure has an encoder, the bytes it writes at
 *                the documented offset, read as the documented type, are the
 *                value it was given
 *   edits        rows "| type | name | ..." name every edit type, and no other
 *   features     rows "| name | bit | set | area | this build | ..." give every
 *                feature bit, and no other
 *   constants    rows "| name | value | ..." give the code's value
 *
 * A failure names the file and line of the row.
 */
#include "helpers.h"

#include <dirent.h>
#include <errno.h>

#include "dlvm/lease.h"
#include "lib/format/block.h"
#include "lib/format/layout.h"
#include "lib/lease/layout.h"
#include "lib/thin/layout.h"
#include "lib/thin/thin_int.h"

#ifndef DLVM_SOURCE_ROOT
#error "DLVM_SOURCE_ROOT must name the source tree (set by tests/unit/meson.build)"
#endif

#define SPEC_DIR DLVM_SOURCE_ROOT "/docs/format"
#define MAX_CELLS 8
#define MAX_ROWS 512

/* ---- the documents ---- */

struct row {
	char file[32];
	unsigned line;
	char kind[16], name[48]; /* of the table */
	unsigned ncell;
	char cell[MAX_CELLS][128];
};

static struct row rows[MAX_ROWS];
static unsigned nrows;
static char problems[16384];
static size_t problems_len;

static void problem(const struct row *r, const char *fmt, ...)
		__attribute__((format(printf, 2, 3)));
static void problem(const struct row *r, const char *fmt, ...)
{
	va_list ap;
	size_t room = sizeof(problems) - problems_len;

	if (room < 2)
		return;
	if (r)
		problems_len += (size_t)snprintf(problems + problems_len, room,
						 "\n  docs/format/%s:%u: ", r->file, r->line);
	else
		problems_len += (size_t)snprintf(problems + problems_len, room, "\n  ");
	problems_len = DLVM_MIN(problems_len, sizeof(problems) - 1);
	va_start(ap, fmt);
	problems_len += (size_t)vsnprintf(problems + problems_len, sizeof(problems) - problems_len,
					  fmt, ap);
	va_end(ap);
	problems_len = DLVM_MIN(problems_len, sizeof(problems) - 1);
}

static void check_no_problems(void)
{
	if (problems_len) {
		fail_msg("the spec and the code differ:%s", problems);
	}
}

/* Copy a cell without surrounding blanks and backticks. */
static void clean_cell(char *out, size_t cap, const char *s, size_t n)
{
	while (n && (*s == ' ' || *s == '`')) {
		s++;
		n--;
	}
	while (n && (s[n - 1] == ' ' || s[n - 1] == '`'))
		n--;
	n = DLVM_MIN(n, cap - 1);
	memcpy(out, s, n);
	out[n] = '\0';
}

static void read_file(const char *fname)
{
	char path[512], line[4096], kind[16] = "", name[48] = "";
	bool in_table = false;
	unsigned lineno = 0, seen = 0;

	snprintf(path, sizeof(path), "%s/%s", SPEC_DIR, fname);
	FILE *f = fopen(path, "r");
	if (!f)
		fail_msg("%s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		if (sscanf(line, "<!-- spec: %15s %47s -->", kind, name) >= 1) {
			if (!strcmp(name, "-->"))
				name[0] = '\0';
			in_table = true;
			seen = 0;
			continue;
		}
		if (!in_table)
			continue;
		if (line[0] != '|') {
			if (seen) /* blank lines may come before the table, nothing after */
				in_table = false;
			continue;
		}
		if (++seen <= 2) /* header and separator */
			continue;
		assert_true(nrows < MAX_ROWS);
		struct row *r = &rows[nrows++];
		memset(r, 0, sizeof(*r));
		snprintf(r->file, sizeof(r->file), "%s", fname);
		r->line = lineno;
		snprintf(r->kind, sizeof(r->kind), "%s", kind);
		snprintf(r->name, sizeof(r->name), "%s", name);
		const char *p = line + 1;
		while (r->ncell < MAX_CELLS) {
			const char *bar = strchr(p, '|');
			if (!bar)
				break;
			clean_cell(r->cell[r->ncell++], sizeof(r->cell[0]), p, (size_t)(bar - p));
			p = bar + 1;
		}
	}
	fclose(f);
}

static int load_docs(void **state)
{
	(void)state;
	DIR *d = opendir(SPEC_DIR);
	struct dirent *de;

	if (!d) {
		fprintf(stderr, "%s: %s\n", SPEC_DIR, strerror(errno));
		return -1;
	}
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		if (n > 3 && !strcmp(de->d_name + n - 3, ".md"))
			read_file(de->d_name);
	}
	closedir(d);
	return 0;
}

static bool parse_u64(const char *s, uint64_t *v)
{
	char *end;

	if (!*s)
		return false;
	errno = 0;
	*v = strtoull(s, &end, 0);
	return !errno && !*end;
}

/* ---- layouts ---- */

enum ftype { F_BYTES, F_U16, F_U32, F_U64 };

struct field {
	const char *name;
	unsigned off, size;
	bool has_value; /* the sample encoding holds this value there */
	uint64_t value;
};

struct layout {
	const char *name;
	unsigned size; /* bytes the table covers */
	const struct field *f;
	size_t nf;
	void (*encode)(uint8_t *buf); /* a sample, or NULL */
};

#define V(n, o, s, v) \
	{ \
		n, o, s, true, v \
	}
#define B(n, o, s) \
	{ \
		n, o, s, false, 0 \
	}

/* Sample values: each distinct, so that a documented offset that points at
 * another field reads the wrong value. */
static const uint8_t sample_uuid[16] = { 0x5a, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
					 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0x01 };

static void enc_pv(uint8_t *buf)
{
	struct dlvm_pv_header h = { .major = 1,
				    .minor = 3,
				    .compat = 0x1001,
				    .ro_compat = 0x1002,
				    .incompat = 0x1003,
				    .sector_size = 4096,
				    .device_size = 0x2000000001,
				    .mda_offset = 8192,
				    .mda_size = 0x100002,
				    .lease_offset = 0x3003,
				    .lease_size = 0x4004,
				    .data_offset = 0x500005,
				    .data_size = 0x600006,
				    .ctime = 0x7007 };
	memcpy(h.pv_uuid, sample_uuid, 16);
	strcpy(h.hostname, "node");
	dlvm_pv_header_encode(&h, buf);
}

static const struct field pv_fields[] = {
	B("magic", PVH_MAGIC, 8),
	V("major", PVH_MAJOR, 2, 1),
	V("minor", PVH_MINOR, 2, 3),
	V("size", PVH_SIZE, 4, DLVM_STRUCT_SIZE),
	V("compat", PVH_COMPAT, 8, 0x1001),
	V("ro_compat", PVH_RO_COMPAT, 8, 0x1002),
	V("incompat", PVH_INCOMPAT, 8, 0x1003),
	B("pv_uuid", PVH_UUID, 16),
	V("sector_size", PVH_SECTOR, 4, 4096),
	V("device_size", PVH_DEVSIZE, 8, 0x2000000001),
	V("mda_offset", PVH_MDA_OFF, 8, 8192),
	V("mda_size", PVH_MDA_SIZE, 8, 0x100002),
	V("lease_offset", PVH_LEASE_OFF, 8, 0x3003),
	V("lease_size", PVH_LEASE_SIZE, 8, 0x4004),
	V("data_offset", PVH_DATA_OFF, 8, 0x500005),
	V("data_size", PVH_DATA_SIZE, 8, 0x600006),
	V("ctime", PVH_CTIME, 8, 0x7007),
	B("hostname", PVH_HOST, PVH_HOST_LEN),
	B("crc", PVH_CRC, 4),
};

static void enc_mdh(uint8_t *buf)
{
	struct dlvm_mda_header h = { .major = 1,
				     .minor = 2,
				     .compat = 0x1001,
				     .ro_compat = 0x1002,
				     .incompat = 0x1003,
				     .generation = 0x2002,
				     .mda_size = 0x3003,
				     .ckpt_offset = 0x4004,
				     .ckpt_size = 0x5005,
				     .ring_offset = 0x6006,
				     .ring_size = 0x7007,
				     .ckpt_slot = 1,
				     .ckpt_seq = 0x8008,
				     .ckpt_len = 0x9009,
				     .ckpt_crc = 0xa00a,
				     .journal_start = 0xb00b };
	memcpy(h.vg_uuid, sample_uuid, 16);
	dlvm_mda_header_encode(&h, buf);
}

static const struct field mdh_fields[] = {
	B("magic", MDH_MAGIC, 8),
	V("major", MDH_MAJOR, 2, 1),
	V("minor", MDH_MINOR, 2, 2),
	V("size", MDH_SIZE, 4, DLVM_STRUCT_SIZE),
	V("compat", MDH_COMPAT, 8, 0x1001),
	V("ro_compat", MDH_RO_COMPAT, 8, 0x1002),
	V("incompat", MDH_INCOMPAT, 8, 0x1003),
	B("vg_uuid", MDH_VG_UUID, 16),
	B("pv_uuid", MDH_PV_UUID, 16),
	V("generation", MDH_GEN, 8, 0x2002),
	V("mda_size", MDH_MDA_SIZE, 8, 0x3003),
	V("ckpt_offset", MDH_CKPT_OFF, 8, 0x4004),
	V("ckpt_size", MDH_CKPT_SIZE, 8, 0x5005),
	V("ring_offset", MDH_RING_OFF, 8, 0x6006),
	V("ring_size", MDH_RING_SIZE, 8, 0x7007),
	V("ckpt_slot", MDH_CKPT_SLOT, 4, 1),
	V("ckpt_seq", MDH_CKPT_SEQ, 8, 0x8008),
	V("ckpt_len", MDH_CKPT_LEN, 8, 0x9009),
	V("ckpt_crc", MDH_CKPT_CRC, 4, 0xa00a),
	V("journal_start", MDH_JSTART, 8, 0xb00b),
	B("crc", MDH_CRC, 4),
};

static void enc_blob(uint8_t *buf)
{
	struct dlvm_blob_header h = { .major = 1,
				      .minor = 4,
				      .seq = 0x1001,
				      .type = 2,
				      .payload_len = 0,
				      .timestamp = 0x2002 };
	memcpy(h.magic, DLVM_REC_MAGIC, 8);
	memcpy(h.vg_uuid, sample_uuid, 16);
	dlvm_blob_encode(&h, buf);
}

static const struct field blob_fields[] = {
	B("magic", BH_MAGIC, 8),
	V("major", BH_MAJOR, 2, 1),
	V("minor", BH_MINOR, 2, 4),
	V("size", BH_SIZE, 4, DLVM_BLOB_HEADER_SIZE),
	B("vg_uuid", BH_VG_UUID, 16),
	V("seq", BH_SEQ, 8, 0x1001),
	V("type", BH_TYPE, 4, 2),
	V("payload_len", BH_PLEN, 4, 0),
	V("timestamp", BH_TIME, 8, 0x2002),
	B("crc", BH_CRC, 4),
};

/* The edit header is not a structure of its own in the codec: its offsets
 * are checked through what the encoder writes. */
static void enc_edit(uint8_t *buf)
{
	struct dlvm_buf b = { 0 };
	struct dlvm_edit e = { .type = DLVM_EDIT_LV_REMOVE, .flags = DLVM_EDIT_IGNORABLE };

	e.u.lv.id = 7;
	assert_int_equal(dlvm_edit_encode(&e, &b), 0);
	memcpy(buf, b.data, b.len);
	dlvm_buf_release(&b);
}

static const struct field edit_fields[] = {
	V("type", 0, 2, DLVM_EDIT_LV_REMOVE),
	V("flags", 2, 2, DLVM_EDIT_IGNORABLE),
	V("length", 4, 4, 8),
};

static const struct field common_fields[] = {
	B("magic", DLVM_BLK_MAGIC, 8),
	V("major", DLVM_BLK_MAJOR, 2, 1),
	V("minor", DLVM_BLK_MINOR, 2, 3),
	V("size", DLVM_BLK_SIZE, 4, DLVM_STRUCT_SIZE),
	V("compat", DLVM_BLK_COMPAT, 8, 0x1001),
	V("ro_compat", DLVM_BLK_RO_COMPAT, 8, 0x1002),
	V("incompat", DLVM_BLK_INCOMPAT, 8, 0x1003),
};

static void enc_lsa(uint8_t *buf)
{
	struct dlvm_lease_area_header h = { 0 };

	assert_int_equal(dlvm_lease_area_geometry(512, 8, 4, &h, NULL), 0);
	h.major = 1;
	h.minor = 5;
	h.compat = 0x1001;
	h.ro_compat = 0x1002;
	h.incompat = 0x1003;
	h.io_timeout = 9;
	memcpy(h.vg_uuid, sample_uuid, 16);
	dlvm_lease_area_header_encode(&h, buf);
}

/* max_hosts 8, 4 resources, 512-byte sectors */
static const struct field lsa_fields[] = {
	B("magic", R_MAGIC, 8),
	V("major", R_MAJOR, 2, 1),
	V("minor", R_MINOR, 2, 5),
	V("size", R_SIZE, 4, DLVM_LEASE_RECORD_SIZE),
	V("compat", AH_COMPAT, 8, 0x1001),
	V("ro_compat", AH_RO_COMPAT, 8, 0x1002),
	V("incompat", AH_INCOMPAT, 8, 0x1003),
	B("vg_uuid", AH_VG_UUID, 16),
	V("sector_size", AH_SECTOR, 4, 512),
	V("max_hosts", AH_MAX_HOSTS, 4, 8),
	V("nres", AH_NRES, 4, 4),
	V("io_timeout", AH_IO_TIMEOUT, 4, 9),
	V("area_size", AH_AREA_SIZE, 8, 8192 + 4 * 8192),
	V("lockspace_offset", AH_LS_OFF, 8, 4096),
	V("lockspace_size", AH_LS_SIZE, 8, 4096),
	V("resource_offset", AH_RES_OFF, 8, 8192),
	V("resource_stride", AH_RES_STRIDE, 8, 8192),
	B("crc", R_CRC, 4),
};

static void enc_delta(uint8_t *buf)
{
	struct dlvm_delta_record d = { .host_id = 3,
				       .io_timeout = 9,
				       .generation = 0x1001,
				       .timestamp = 0x2002 };
	memcpy(d.vg_uuid, sample_uuid, 16);
	strcpy(d.name, "node");
	dlvm_delta_encode(&d, buf);
}

static const struct field delta_fields[] = {
	B("magic", R_MAGIC, 8),
	V("major", R_MAJOR, 2, DLVM_LEASE_MAJOR),
	V("minor", R_MINOR, 2, DLVM_LEASE_MINOR),
	V("size", R_SIZE, 4, DLVM_LEASE_RECORD_SIZE),
	V("host_id", DL_HOST_ID, 4, 3),
	V("io_timeout", DL_IO_TIMEOUT, 4, 9),
	V("generation", DL_GEN, 8, 0x1001),
	V("timestamp", DL_TS, 8, 0x2002),
	B("vg_uuid", DL_VG_UUID, 16),
	B("name", DL_NAME, DL_NAME_LEN),
	B("crc", R_CRC, 4),
};

static void enc_leader(uint8_t *buf)
{
	struct dlvm_paxos_leader l = { .res_index = 2,
				       .owner_id = 3,
				       .owner_generation = 0x1001,
				       .lver = 0x2002,
				       .timestamp = 0x3003,
				       .writer_id = 4,
				       .max_hosts = 8 };
	memcpy(l.vg_uuid, sample_uuid, 16);
	dlvm_paxos_leader_encode(&l, buf);
}

static const struct field leader_fields[] = {
	B("magic", R_MAGIC, 8),
	V("major", R_MAJOR, 2, DLVM_LEASE_MAJOR),
	V("minor", R_MINOR, 2, DLVM_LEASE_MINOR),
	V("size", R_SIZE, 4, DLVM_LEASE_RECORD_SIZE),
	V("res_index", PL_RES, 4, 2),
	V("owner_id", PL_OWNER, 4, 3),
	V("owner_generation", PL_OWNER_GEN, 8, 0x1001),
	V("lver", PL_LVER, 8, 0x2002),
	V("timestamp", PL_TS, 8, 0x3003),
	B("vg_uuid", PL_VG_UUID, 16),
	V("writer_id", PL_WRITER, 4, 4),
	V("max_hosts", PL_MAX_HOSTS, 4, 8),
	B("crc", R_CRC, 4),
};

static void enc_dblock(uint8_t *buf)
{
	struct dlvm_paxos_dblock b = { .host_id = 3,
				       .flags = DLVM_DBLOCK_SHARED,
				       .lver = 0x1001,
				       .mbal = 0x2002,
				       .bal = 0x2001,
				       .inp_id = 5,
				       .inp_generation = 0x3003,
				       .inp_timestamp = 0x4004,
				       .shared_generation = 0x5005 };
	dlvm_paxos_dblock_encode(&b, buf);
}

static const struct field dblock_fields[] = {
	B("magic", R_MAGIC, 8),
	V("major", R_MAJOR, 2, DLVM_LEASE_MAJOR),
	V("minor", R_MINOR, 2, DLVM_LEASE_MINOR),
	V("size", R_SIZE, 4, DLVM_LEASE_RECORD_SIZE),
	V("host_id", DB_HOST_ID, 4, 3),
	V("flags", DB_FLAGS, 4, DLVM_DBLOCK_SHARED),
	V("lver", DB_LVER, 8, 0x1001),
	V("mbal", DB_MBAL, 8, 0x2002),
	V("bal", DB_BAL, 8, 0x2001),
	V("inp_id", DB_INP_ID, 4, 5),
	V("inp_generation", DB_INP_GEN, 8, 0x3003),
	V("inp_timestamp", DB_INP_TS, 8, 0x4004),
	V("shared_generation", DB_SHARED_GEN, 8, 0x5005),
	B("crc", R_CRC, 4),
};

static void enc_sb(uint8_t *buf)
{
	struct th_sb sb = { .major = 1,
			    .minor = 6,
			    .compat = 0x1001,
			    .ro_compat = 0x1002,
			    .incompat = 0x1003,
			    .txn = 0x2002,
			    .slot = 1,
			    .chunk_size = 65536,
			    .data_chunks = 0x3003,
			    .meta_blocks = 0x4004,
			    .dev_root = 0x5005,
			    .ndevs = 0x6006,
			    .ctime = 0x7007 };
	memcpy(sb.uuid, sample_uuid, 16);
	th_sb_encode(&sb, buf);
}

static const struct field sb_fields[] = {
	B("magic", SB_MAGIC, 8),
	V("major", SB_MAJOR, 2, 1),
	V("minor", SB_MINOR, 2, 6),
	V("size", SB_SIZE, 4, TH_SB_SIZE),
	V("compat", SB_COMPAT, 8, 0x1001),
	V("ro_compat", SB_RO_COMPAT, 8, 0x1002),
	V("incompat", SB_INCOMPAT, 8, 0x1003),
	B("uuid", SB_UUID, 16),
	V("txn", SB_TXN, 8, 0x2002),
	V("slot", SB_SLOT, 4, 1),
	V("block_size", SB_BLOCK_SIZE, 4, TH_BLOCK),
	V("chunk_size", SB_CHUNK_SIZE, 8, 65536),
	V("data_chunks", SB_DATA_CHUNKS, 8, 0x3003),
	V("meta_blocks", SB_META_BLOCKS, 8, 0x4004),
	V("dev_root", SB_DEV_ROOT, 8, 0x5005),
	V("ndevs", SB_NDEVS, 8, 0x6006),
	V("ctime", SB_CTIME, 8, 0x7007),
	B("crc", SB_CRC, 4),
};

static void enc_node(uint8_t *buf)
{
	static struct th_node n;

	memset(&n, 0, sizeof(n));
	n.blocknr = 0x1001;
	n.txn = 0x2002;
	n.type = TH_TREE_MAP;
	n.level = 0;
	n.nr = 3;
	n.keys[0] = 1;
	n.keys[1] = 2;
	n.keys[2] = 3;
	th_node_encode(&n, buf);
}

static const struct field node_fields[] = {
	B("magic", NH_MAGIC, 8),
	B("crc", NH_CRC, 4),
	V("type", NH_TYPE, 2, TH_TREE_MAP),
	V("level", NH_LEVEL, 2, 0),
	V("blocknr", NH_BLOCKNR, 8, 0x1001),
	V("txn", NH_TXN, 8, 0x2002),
	V("nr_entries", NH_NR, 2, 3),
	V("max_entries", NH_MAX, 2, TH_ENTRIES),
	V("value_size", NH_VSIZE, 4, 8),
};

static const struct field devrec_fields[] = {
	B("root", DR_ROOT, 8),           B("mapped", DR_MAPPED, 8), B("created_txn", DR_CTXN, 8),
	B("snapshot_of", DR_SNAP_OF, 8), B("flags", DR_FLAGS, 4),
};

#define LAYOUT(n, size, f, enc) \
	{ \
		n, size, f, sizeof(f) / sizeof(f[0]), enc \
	}

static const struct layout layouts[] = {
	LAYOUT("common_header", 40, common_fields, enc_pv),
	LAYOUT("pv_header", DLVM_STRUCT_SIZE, pv_fields, enc_pv),
	LAYOUT("mda_header", DLVM_STRUCT_SIZE, mdh_fields, enc_mdh),
	LAYOUT("blob_header", DLVM_BLOB_HEADER_SIZE, blob_fields, enc_blob),
	LAYOUT("edit_header", 8, edit_fields, enc_edit),
	LAYOUT("lease_area_header", DLVM_LEASE_RECORD_SIZE, lsa_fields, enc_lsa),
	LAYOUT("delta_lease", DLVM_LEASE_RECORD_SIZE, delta_fields, enc_delta),
	LAYOUT("paxos_leader", DLVM_LEASE_RECORD_SIZE, leader_fields, enc_leader),
	LAYOUT("paxos_dblock", DLVM_LEASE_RECORD_SIZE, dblock_fields, enc_dblock),
	LAYOUT("thin_superblock", TH_SB_SIZE, sb_fields, enc_sb),
	LAYOUT("thin_node_header", TH_NODE_HDR, node_fields, enc_node),
	LAYOUT("thin_device_record", TH_DEV_VALUE, devrec_fields, NULL),
};

static const struct field *find_field(const struct layout *l, const char *name)
{
	for (size_t i = 0; i < l->nf; i++)
		if (!strcmp(l->f[i].name, name))
			return &l->f[i];
	return NULL;
}

static bool doc_type(const char *t, enum ftype *ft, unsigned *bytes)
{
	static const struct {
		const char *name;
		enum ftype ft;
		unsigned bytes;
	} types[] = {
		{ "u16", F_U16, 2 },
		{ "u32", F_U32, 4 },
		{ "u64", F_U64, 8 },
	};
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (!strcmp(t, types[i].name)) {
			*ft = types[i].ft;
			*bytes = types[i].bytes;
			return true;
		}
	*ft = F_BYTES;
	*bytes = 0;
	return false;
}

static uint64_t read_le(const uint8_t *p, enum ftype ft)
{
	switch (ft) {
	case F_U16: return dlvm_get_le16(p);
	case F_U32: return dlvm_get_le32(p);
	case F_U64: return dlvm_get_le64(p);
	default: return 0;
	}
}

static void check_layout(const struct layout *l)
{
	static uint8_t buf[TH_BLOCK];
	bool documented[32] = { false };
	unsigned next = 0, n = 0;
	const struct row *last = NULL;

	assert_true(l->nf <= 32);
	if (l->encode) {
		memset(buf, 0, sizeof(buf));
		l->encode(buf);
	}
	for (unsigned i = 0; i < nrows; i++) {
		const struct row *r = &rows[i];
		uint64_t off, size;
		if (strcmp(r->kind, "layout") || strcmp(r->name, l->name))
			continue;
		n++;
		last = r;
		if (r->ncell < 4 || !parse_u64(r->cell[0], &off) || !parse_u64(r->cell[1], &size)) {
			problem(r, "%s: a row must start \"| offset | size | type | field |\"",
				l->name);
			continue;
		}
		if (off != next)
			problem(r, "%s: field %s at %" PRIu64 ", but the row before ends at %u",
				l->name, r->cell[3], off, next);
		next = (unsigned)(off + size);
		enum ftype ft;
		unsigned tbytes;
		if (doc_type(r->cell[2], &ft, &tbytes) && tbytes != size)
			problem(r, "%s: field %s is a %s of %" PRIu64 " bytes", l->name, r->cell[3],
				r->cell[2], size);
		if (!strcmp(r->cell[3], "reserved"))
			continue; /* a field of the codec there is missing from the table */
		const struct field *f = find_field(l, r->cell[3]);
		if (!f) {
			problem(r, "%s: the codec has no field %s", l->name, r->cell[3]);
			continue;
		}
		documented[f - l->f] = true;
		if (f->off != off || f->size != size)
			problem(r,
				"%s: field %s at %" PRIu64 " (%" PRIu64 " bytes), the codec has it "
				"at %u (%u bytes)",
				l->name, f->name, off, size, f->off, f->size);
		if (l->encode && f->has_value && ft != F_BYTES && off + size <= sizeof(buf) &&
		    read_le(buf + off, ft) != f->value)
			problem(r,
				"%s: field %s: the encoder wrote %" PRIu64 " for %" PRIu64 " at "
				"the documented offset %" PRIu64,
				l->name, f->name, read_le(buf + off, ft), f->value, off);
	}
	if (!n) {
		problem(NULL, "no table \"<!-- spec: layout %s -->\"", l->name);
		return;
	}
	if (next != l->size)
		problem(last, "%s: the rows end at byte %u, the structure at %u", l->name, next,
			l->size);
	for (size_t i = 0; i < l->nf; i++)
		if (!documented[i])
			problem(NULL, "%s: field %s (at %u, %u bytes) is not documented", l->name,
				l->f[i].name, l->f[i].off, l->f[i].size);
}

static void layouts_match_codecs(void **state)
{
	(void)state;
	problems_len = 0;
	for (size_t i = 0; i < sizeof(layouts) / sizeof(layouts[0]); i++)
		check_layout(&layouts[i]);
	for (unsigned i = 0; i < nrows; i++) {
		bool known = false;
		if (strcmp(rows[i].kind, "layout"))
			continue;
		for (size_t k = 0; k < sizeof(layouts) / sizeof(layouts[0]); k++)
			known |= !strcmp(rows[i].name, layouts[k].name);
		if (!known)
			problem(&rows[i], "layout %s is not one the test knows", rows[i].name);
	}
	check_no_problems();
}

/* ---- edits ---- */

static void edit_types_match(void **state)
{
	bool documented[65536] = { false };

	(void)state;
	problems_len = 0;
	for (unsigned i = 0; i < nrows; i++) {
		const struct row *r = &rows[i];
		uint64_t type;
		if (strcmp(r->kind, "edits"))
			continue;
		if (r->ncell < 2 || !parse_u64(r->cell[0], &type) || type > 65535) {
			problem(r, "edits: a row must start \"| type | name |\"");
			continue;
		}
		const char *name = dlvm_edit_type_name((uint16_t)type);
		if (strcmp(name, r->cell[1]))
			problem(r, "edit type %" PRIu64 " is %s in the code, %s here", type, name,
				r->cell[1]);
		if (documented[type])
			problem(r, "edit type %" PRIu64 " is documented twice", type);
		documented[type] = true;
	}
	for (unsigned t = 0; t < 65536; t++)
		if (strcmp(dlvm_edit_type_name((uint16_t)t), "UNKNOWN") && !documented[t])
			problem(NULL, "edit type %u (%s) is not documented", t,
				dlvm_edit_type_name((uint16_t)t));
	check_no_problems();
}

/* ---- feature flags ---- */

struct feature {
	const char *name, *set, *area;
	uint64_t bit;
	uint64_t known; /* the *_KNOWN mask of its set and area */
};

static const struct feature features[] = {
	{ "DLVM_RO_COMPAT_SHARED", "ro_compat", "vg", DLVM_RO_COMPAT_SHARED, DLVM_RO_COMPAT_KNOWN },
	{ "DLVM_RO_COMPAT_PROPERTIES", "ro_compat", "vg", DLVM_RO_COMPAT_PROPERTIES,
	  DLVM_RO_COMPAT_KNOWN },
	{ "DLVM_INCOMPAT_LEASES", "incompat", "vg", DLVM_INCOMPAT_LEASES, DLVM_INCOMPAT_KNOWN },
	{ "DLVM_INCOMPAT_THIN", "incompat", "vg", DLVM_INCOMPAT_THIN, DLVM_INCOMPAT_KNOWN },
	{ "DLVM_INCOMPAT_RAID1", "incompat", "vg", DLVM_INCOMPAT_RAID1, DLVM_INCOMPAT_KNOWN },
	{ "UNWRITTEN", "incompat", "thin", TH_INCOMPAT_UNWRITTEN, TH_INCOMPAT_KNOWN },
};

/* Every bit each area's code knows, by set: the registry's "known" rows
 * must add up to these. */
static const struct {
	const char *area, *set;
	uint64_t known;
} known_masks[] = {
	{ "vg", "compat", DLVM_COMPAT_KNOWN },
	{ "vg", "ro_compat", DLVM_RO_COMPAT_KNOWN },
	{ "vg", "incompat", DLVM_INCOMPAT_KNOWN },
	{ "lease", "incompat", DLVM_LEASE_INCOMPAT_KNOWN },
	{ "thin", "compat", TH_COMPAT_KNOWN },
	{ "thin", "ro_compat", TH_RO_COMPAT_KNOWN },
	{ "thin", "incompat", TH_INCOMPAT_KNOWN },
};

static void feature_registry_matches(void **state)
{
	bool documented[sizeof(features) / sizeof(features[0])] = { false };
	uint64_t doc_known[sizeof(known_masks) / sizeof(known_masks[0])] = { 0 };

	(void)state;
	problems_len = 0;
	for (unsigned i = 0; i < nrows; i++) {
		const struct row *r = &rows[i];
		uint64_t bit;
		if (strcmp(r->kind, "features"))
			continue;
		if (r->ncell < 5 || !parse_u64(r->cell[1], &bit) || bit > 63) {
			problem(r, "features: a row must start \"| name | bit | set | area | this "
				   "build |\"");
			continue;
		}
		char name[64];
		snprintf(name, sizeof(name), "%s", r->cell[0]);
		name[strcspn(name, "` ")] = '\0'; /* "`UNWRITTEN` (`TH_...`)": the first name */
		const struct feature *f = NULL;
		for (size_t k = 0; k < sizeof(features) / sizeof(features[0]); k++)
			if (!strcmp(features[k].name, name))
				f = &features[k];
		if (!f) {
			problem(r, "feature %s is not one the code defines", name);
			continue;
		}
		documented[f - features] = true;
		if ((UINT64_C(1) << bit) != f->bit)
			problem(r, "feature %s is bit %" PRIu64 " here, 0x%" PRIx64 " in the code",
				name, bit, f->bit);
		if (strcmp(r->cell[2], f->set) || strcmp(r->cell[3], f->area))
			problem(r, "feature %s is %s/%s here, %s/%s in the code", name, r->cell[3],
				r->cell[2], f->area, f->set);
		bool known = f->known & f->bit;
		if (strcmp(r->cell[4], known ? "known" : "reserved"))
			problem(r, "feature %s is \"%s\" here, but this build %s it", name,
				r->cell[4], known ? "knows" : "does not know");
		for (size_t k = 0; k < sizeof(known_masks) / sizeof(known_masks[0]); k++)
			if (!strcmp(r->cell[4], "known") &&
			    !strcmp(known_masks[k].area, r->cell[3]) &&
			    !strcmp(known_masks[k].set, r->cell[2]))
				doc_known[k] |= UINT64_C(1) << bit;
	}
	for (size_t k = 0; k < sizeof(features) / sizeof(features[0]); k++)
		if (!documented[k])
			problem(NULL, "feature %s is not in the registry", features[k].name);
	for (size_t k = 0; k < sizeof(known_masks) / sizeof(known_masks[0]); k++)
		if (doc_known[k] != known_masks[k].known)
			problem(NULL,
				"the registry's known %s %s bits are 0x%" PRIx64 ", the code "
				"knows 0x%" PRIx64,
				known_masks[k].area, known_masks[k].set, doc_known[k],
				known_masks[k].known);
	check_no_problems();
}

/* ---- constants ---- */

static const struct {
	const char *name;
	uint64_t value;
} constants[] = {
	{ "DLVM_PV_HEADER_OFFSET", DLVM_PV_HEADER_OFFSET },
	{ "DLVM_MDA_OFFSET", DLVM_MDA_OFFSET },
	{ "DLVM_STRUCT_SIZE", DLVM_STRUCT_SIZE },
	{ "DLVM_BLOCK", DLVM_BLOCK },
	{ "DLVM_DATA_ALIGN", DLVM_DATA_ALIGN },
	{ "DLVM_BLOB_HEADER_SIZE", DLVM_BLOB_HEADER_SIZE },
	{ "DLVM_FORMAT_MAJOR", DLVM_FORMAT_MAJOR },
	{ "DLVM_LEASE_MAJOR", DLVM_LEASE_MAJOR },
	{ "TH_MAJOR", TH_MAJOR },
	{ "DLVM_LEASE_HEADER_SIZE", DLVM_LEASE_HEADER_SIZE },
	{ "DLVM_LEASE_RECORD_SIZE", DLVM_LEASE_RECORD_SIZE },
	{ "DLVM_LEASE_MAX_HOSTS", DLVM_LEASE_MAX_HOSTS },
	{ "DLVM_LEASE_MAX_RESOURCES", DLVM_LEASE_MAX_RESOURCES },
	{ "DLVM_LEASE_NAME_MAX", DLVM_LEASE_NAME_MAX },
	{ "DLVM_LEASE_IO_TIMEOUT_MAX", DLVM_LEASE_IO_TIMEOUT_MAX },
	{ "TH_BLOCK", TH_BLOCK },
	{ "TH_SB_SIZE", TH_SB_SIZE },
	{ "TH_FIRST_NODE", TH_FIRST_NODE },
	{ "TH_NODE_HDR", TH_NODE_HDR },
	{ "TH_ENTRIES", TH_ENTRIES },
	{ "TH_DEV_ENTRIES", TH_DEV_ENTRIES },
	{ "TH_DEV_VALUE", TH_DEV_VALUE },
	{ "TH_MAX_LEVEL", TH_MAX_LEVEL },
	{ "TH_MAP_FLAGS_SHIFT", TH_MAP_FLAGS_SHIFT },
};

#define NCONST (sizeof(constants) / sizeof(constants[0]))

static void constants_match(void **state)
{
	bool documented[NCONST] = { false };

	(void)state;
	problems_len = 0;
	for (unsigned i = 0; i < nrows; i++) {
		const struct row *r = &rows[i];
		uint64_t v;
		size_t k;
		if (strcmp(r->kind, "constants"))
			continue;
		if (r->ncell < 2 || !parse_u64(r->cell[1], &v)) {
			problem(r, "constants: a row must start \"| name | value |\"");
			continue;
		}
		for (k = 0; k < NCONST && strcmp(constants[k].name, r->cell[0]); k++)
			;
		if (k == NCONST) {
			problem(r, "constant %s is not one the test knows", r->cell[0]);
			continue;
		}
		documented[k] = true;
		if (v != constants[k].value)
			problem(r, "%s is %" PRIu64 " here, %" PRIu64 " in the code", r->cell[0], v,
				constants[k].value);
	}
	for (size_t k = 0; k < NCONST; k++)
		if (!documented[k])
			problem(NULL, "constant %s is not documented", constants[k].name);
	check_no_problems();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(layouts_match_codecs),
		cmocka_unit_test(edit_types_match),
		cmocka_unit_test(feature_registry_matches),
		cmocka_unit_test(constants_match),
	};
	return cmocka_run_group_tests(tests, load_docs, NULL);
}
