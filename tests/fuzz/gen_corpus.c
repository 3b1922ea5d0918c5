/* SPDX-License-Identifier: MIT */
/*
 * Writes the seed corpora of the fuzz harnesses, tests/fuzz/corpus/NAME/,
 * from structures encoded with the project's own codecs: valid inputs, and
 * valid inputs with one named field pushed out of range (what the field
 * checks are for); for fuzz_nbd, client sessions in the harness's input
 * format (nbd_input.h), good and bad. Run it again when a format or a
 * harness's input changes:
 *
 *   cc -std=c17 -D_GNU_SOURCE -Iinclude -I. -o build/gen_corpus \
 *      tests/fuzz/gen_corpus.c build/lib/libdlvm.a \
 *      $(pkg-config --libs jansson blkid uuid libisal liburing) -lpthread
 *   build/gen_corpus tests/fuzz/corpus
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dlvm/cmd.h"
#include "dlvm/format.h"
#include "dlvm/lease.h"
#include "dlvm/util.h"
#include "dlvm/vg.h"
#include "lib/format/layout.h"
#include "lib/lease/layout.h"
#include "lib/meta/meta.h"
#include "lib/thin/layout.h"
#include "tests/fuzz/nbd_input.h"

static const char *root;

struct seed {
	uint8_t b[8192];
	size_t len;
};

static void put(struct seed *s, const void *p, size_t n)
{
	if (s->len + n > sizeof(s->b))
		abort();
	memcpy(s->b + s->len, p, n);
	s->len += n;
}

static void put8(struct seed *s, uint8_t v)
{
	put(s, &v, 1);
}

static void put_le(struct seed *s, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		put8(s, (uint8_t)(v >> (8 * i)));
}

/* a patch record: (offset in offw bytes, u8 length, the value's n bytes) */
static void patch(struct seed *s, unsigned offw, uint64_t off, uint64_t v, unsigned n)
{
	put_le(s, off, offw);
	put8(s, (uint8_t)n);
	put_le(s, v, n);
}

static void save(const char *harness, const char *name, const struct seed *s)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", root, harness);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/%s/%s", root, harness, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(s->b, 1, s->len, f) != s->len || fclose(f))
		abort();
}

/* fuzz_decode: flag byte, a structure, and for the edits a VG's state */
static void gen_decode(void)
{
	struct seed s = { .len = 0 };
	uint8_t buf[DLVM_STRUCT_SIZE];
	struct dlvm_pv_header ph = { .major = DLVM_FORMAT_MAJOR,
				     .sector_size = 512,
				     .device_size = 64 << 20,
				     .mda_offset = DLVM_MDA_OFFSET,
				     .mda_size = 1 << 20,
				     .data_offset = 2 << 20,
				     .data_size = 62 << 20,
				     .hostname = "node1" };
	struct dlvm_mda_header mh = { .major = DLVM_FORMAT_MAJOR,
				      .generation = 3,
				      .ckpt_len = 512,
				      .ckpt_seq = 7 };

	ph.pv_uuid[0] = 1;
	memset(buf, 0, sizeof(buf));
	dlvm_pv_header_encode(&ph, buf);
	put8(&s, 0);
	put(&s, buf, sizeof(buf));
	save("fuzz_decode", "pv_header", &s);

	dlvm_mda_geometry(1 << 20, &mh);
	mh.vg_uuid[0] = 2;
	mh.pv_uuid[0] = 1;
	memset(buf, 0, sizeof(buf));
	dlvm_mda_header_encode(&mh, buf);
	s.len = 0;
	put8(&s, 0);
	put(&s, buf, sizeof(buf));
	save("fuzz_decode", "mda_header", &s);
	dlvm_put_le64(buf + MDH_RING_SIZE, 1ull << 40);
	dlvm_put_le64(buf + MDH_MDA_SIZE, (1ull << 40) + mh.ring_offset);
	s.len = 1;
	put(&s, buf, sizeof(buf));
	save("fuzz_decode", "mda_header_huge_ring", &s);

	/* a record holding the state of a small VG */
	struct dlvm_dev *dev = dlvm_memdev_new("g", 8 << 20, 512);
	struct dlvm_pvcreate_opts o = { .mda_size = 1 << 20 };
	struct dlvm_vg *vg = NULL;
	struct dlvm_buf st = { 0 };
	struct dlvm_txn t;
	if (!dev || dlvm_pv_format(dev, &o, NULL) ||
	    dlvm_vg_create("vg0", 1 << 20, &dev, 1, &vg, NULL))
		abort();
	/* a property of the VG, so that the seeds hold a PROPERTY_SET */
	dlvm_txn_init(&t);
	if (dlvm_txn_push_prop(vg, &t, 0, "cinder.owner", "node1", NULL) ||
	    dlvm_txn_commit(vg, &t, NULL) || dlvm_vg_encode_state(vg, &st))
		abort();
	dlvm_txn_release(&t);
	struct dlvm_blob_header bh = { .major = DLVM_FORMAT_MAJOR,
				       .seq = 2,
				       .type = DLVM_REC_TXN,
				       .payload_len = (uint32_t)st.len };
	uint8_t *rec = calloc(1, DLVM_BLOB_HEADER_SIZE + st.len);
	memcpy(bh.magic, DLVM_REC_MAGIC, 8);
	memcpy(rec + DLVM_BLOB_HEADER_SIZE, st.data, st.len);
	dlvm_blob_encode(&bh, rec);
	s.len = 0;
	put8(&s, 0);
	put(&s, rec, DLVM_BLOB_HEADER_SIZE + st.len);
	save("fuzz_decode", "record", &s);
	s.len = 0;
	put8(&s, 0);
	put(&s, st.data, st.len);
	save("fuzz_decode", "edits", &s);
	free(rec);
	dlvm_buf_release(&st);
	dlvm_vg_free(vg);
}

/* fuzz_journal: flag byte, then (u32 offset, u8 length, bytes) patches */
static void gen_journal(void)
{
	const uint64_t slot0 = DLVM_MDA_OFFSET, slot1 = DLVM_MDA_OFFSET + DLVM_BLOCK;
	struct seed s = { .len = 0 };

	put8(&s, 0);
	save("fuzz_journal", "pristine", &s);
	patch(&s, 4, slot0 + MDH_RING_SIZE, 1ull << 40, 8);
	patch(&s, 4, slot0 + MDH_MDA_SIZE, 1ull << 41, 8);
	save("fuzz_journal", "slot0_huge_ring", &s);
	s.len = 1;
	patch(&s, 4, slot1 + MDH_CKPT_LEN, 1 << 19, 8);
	patch(&s, 4, slot0 + MDH_CKPT_LEN, 1 << 19, 8);
	save("fuzz_journal", "ckpt_len", &s);
	s.len = 1;
	patch(&s, 4, slot0 + MDH_JSTART, 4096, 8);
	patch(&s, 4, slot0 + MDH_GEN, 1000, 8);
	save("fuzz_journal", "journal_start", &s);
	s.len = 1;
	patch(&s, 4, DLVM_PV_HEADER_OFFSET + 80, 3 << 20, 8);
	save("fuzz_journal", "label_mda_size", &s);
}

/* fuzz_lease: flag byte, then (u16 offset, u8 length, bytes) patches */
static void gen_lease(void)
{
	struct dlvm_lease_area_header g;
	struct seed s = { .len = 0 };

	if (dlvm_lease_area_geometry(512, 4, 4, &g, NULL))
		abort();
	put8(&s, 0);
	save("fuzz_lease", "pristine", &s);
	patch(&s, 2, AH_MAX_HOSTS, 2000, 4);
	save("fuzz_lease", "max_hosts", &s);
	s.len = 1;
	patch(&s, 2, AH_NRES, 4096, 4);
	save("fuzz_lease", "nres", &s);
	s.len = 1;
	patch(&s, 2, g.lockspace_offset + 512 + DL_HOST_ID, 9, 4);
	save("fuzz_lease", "delta_host_id", &s);
	s.len = 1;
	patch(&s, 2, g.lockspace_offset + 512 + DL_TS, 0, 8);
	patch(&s, 2, g.resource_offset + 512 + 16, 0, 4);
	save("fuzz_lease", "released", &s);
}

/* fuzz_thin: mode byte, then (u32 offset, u8 length, bytes) patches */
static void gen_thin(void)
{
	struct seed s = { .len = 0 };

	put8(&s, 0);
	save("fuzz_thin", "pristine", &s);
	patch(&s, 4, SB_DATA_CHUNKS, 1ull << 47, 8);
	save("fuzz_thin", "data_chunks", &s);
	s.len = 1;
	patch(&s, 4, SB_META_BLOCKS, 1ull << 30, 8);
	patch(&s, 4, 4096 + SB_META_BLOCKS, 1ull << 30, 8);
	save("fuzz_thin", "meta_blocks", &s);
	s.len = 1;
	patch(&s, 4, SB_DEV_ROOT, 47, 8);
	save("fuzz_thin", "dev_root", &s);
}

/* fuzz_request: command byte, then NUL-separated tokens */
static void request(const char *file, const char *cmd, const char *const *tok)
{
	struct seed s = { .len = 0 };
	size_t i;

	for (i = 0; dlvm_commands[i].name && strcmp(dlvm_commands[i].name, cmd); i++)
		;
	if (!dlvm_commands[i].name)
		abort();
	put8(&s, (uint8_t)i);
	for (size_t k = 0; tok[k]; k++)
		put(&s, tok[k], strlen(tok[k]) + (tok[k + 1] != NULL));
	save("fuzz_request", file, &s);
}

static void gen_request(void)
{
	request("lvcreate", "lvcreate",
		(const char *const[]){ "-name=lv1", "-size=10G", "-stripes=2", "-stripesize=64k",
				       "vg0", NULL });
	request("lvcreate_thin", "lvcreate",
		(const char *const[]){ "-virtualsize=1T", "-thinpool=vg0/pool", "-name=t1", "-zero",
				       NULL });
	request("lvextend", "lvextend",
		(const char *const[]){ "-size=+1G", "vg0/lv1", "/dev/null", NULL });
	request("lvresize", "lvresize",
		(const char *const[]){ "-extents=-100%FREE", "vg0/lv1", NULL });
	request("lvrename", "lvrename", (const char *const[]){ "vg0", "old", "new", NULL });
	request("lvchange", "lvchange",
		(const char *const[]){ "-activate=ey", "-permission=r", "vg0/lv1", NULL });
	request("vgs", "vgs", (const char *const[]){ "-all", "vg0", "vg1", NULL });
	request("lvs", "lvs", (const char *const[]){ "-all", "vg0/lv1", NULL });
	request("vgrename", "vgrename", (const char *const[]){ "vg0", "vg1", NULL });
	request("lvcreate_json_opt", "lvcreate",
		(const char *const[]){ "-size:12", "-stripes:[\"2\", 3]", "vg0", NULL });
	request("check", "check", (const char *const[]){ "-repair", "vg0", NULL });

	struct seed s = { .len = 0 };
	const char *json = "{\"opts\":{\"size\":\"1G\",\"name\":[\"a\",\"b\"]},\"args\":[\"vg0\"]}";
	size_t i;
	for (i = 0; strcmp(dlvm_commands[i].name, "lvcreate"); i++)
		;
	put8(&s, (uint8_t)(0x80 | i));
	put(&s, json, strlen(json));
	save("fuzz_request", "json_lvcreate", &s);
}

/* fuzz_nbd: mode byte, client flags, options, requests (nbd_input.h) */
static void put_be(struct seed *s, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		put8(s, (uint8_t)(v >> (8 * (n - 1 - i))));
}

/* A request: op byte (and flags byte), offset choice, length choice, each
 * with the bytes it takes; v is the value those bytes carry. */
static void rq(struct seed *s, uint8_t op, uint8_t flags, uint8_t off, uint64_t offv, uint8_t len,
	       uint64_t lenv)
{
	put8(s, op);
	if (op & RQ_FLAGS)
		put8(s, flags);
	put8(s, off);
	switch (off) {
	case OFF_U16_SECTORS:
	case OFF_U16:
	case OFF_END_MINUS_U16:
	case OFF_MAX_MINUS_U16: put_be(s, offv, 2); break;
	case OFF_U64: put_be(s, offv, 8); break;
	case OFF_U8_PAGES: put8(s, (uint8_t)offv); break;
	default: break;
	}
	put8(s, len);
	switch (len) {
	case LEN_U16:
	case LEN_U16_SECTORS: put_be(s, lenv, 2); break;
	case LEN_U32: put_be(s, lenv, 4); break;
	default: break;
	}
}

static void nbd_start(struct seed *s, uint8_t mode, uint8_t cflags)
{
	s->len = 0;
	put8(s, mode);
	put8(s, cflags);
}

/* an option with a name and, for GO and INFO, no info requests */
static void opt_name(struct seed *s, uint8_t op, uint8_t name)
{
	put8(s, op);
	put8(s, name);
	if ((op & 0xf) == K_GO || (op & 0xf) == K_INFO)
		put8(s, 0);
}

/* structured replies, base:allocation on name, GO name asking for its
 * name and description */
static void nbd_go(struct seed *s, uint8_t name)
{
	put8(s, K_STRUCTURED);
	put8(s, K_SET_META);
	put8(s, name);
	put8(s, 1);
	put8(s, Q_ALLOCATION);
	put8(s, K_GO);
	put8(s, name);
	put8(s, 2);
	put8(s, 1); /* NBD_INFO_NAME */
	put8(s, 2); /* NBD_INFO_DESCRIPTION */
}

/* every command, aligned and not */
static void nbd_io(struct seed *s)
{
	rq(s, 1, 0, OFF_0, 0, LEN_4K, 0);                           /* write */
	rq(s, 0, 0, OFF_0, 0, LEN_4K, 0);                           /* read */
	rq(s, 1 | RQ_FUA, 0, OFF_U8_PAGES, 3, LEN_64K, 0);          /* write FUA */
	rq(s, 1, 0, OFF_U16, 1000, LEN_U16, 3000);                  /* unaligned write */
	rq(s, 0, 0, OFF_U16, 999, LEN_U16, 5000);                   /* unaligned read */
	rq(s, 3, 0, OFF_0, 0, LEN_0, 0);                            /* flush */
	rq(s, 4, 0, OFF_U8_PAGES, 4, LEN_64K, 0);                   /* trim */
	rq(s, 6, 0, OFF_0, 0, LEN_64K, 0);                          /* write zeroes */
	rq(s, 6 | RQ_FLAGS, 2, OFF_U16, 100, LEN_4K, 0);            /* ... NO_HOLE */
	rq(s, 6 | RQ_FUA, 0, OFF_U16_SECTORS, 9, LEN_4K, 0);        /* ... FUA */
	rq(s, 7 | RQ_FLAGS, 8, OFF_0, 0, LEN_1M, 0);                /* block status */
	rq(s, 5, 0, OFF_0, 0, LEN_4K, 0);                           /* cache */
	rq(s, 0, 0, OFF_0, 0, LEN_256K_1, 0);                       /* over the kept size */
	rq(s, 1, 0, OFF_0, 0, LEN_1M, 0);                           /* the whole export */
	rq(s, 0 | RQ_FLAGS, 4, OFF_END_MINUS_U16, 512, LEN_512, 0); /* DF, the last sector */
	rq(s, 2, 0, OFF_0, 0, LEN_0, 0);                            /* disconnect */
}

static void gen_nbd(void)
{
	struct seed s;

	/* a full session on each kind of export */
	static const struct {
		const char *file;
		uint8_t name;
	} full[] = { { "go_linear", N_LV0 },      { "go_direct", N_LV1 },
		     { "go_striped", N_STRIPED }, { "go_readonly", N_RO },
		     { "go_fenced", N_FENCED },   { "go_live", N_LIVE } };
	for (size_t i = 0; i < sizeof(full) / sizeof(full[0]); i++) {
		nbd_start(&s, M_TRANSMIT, 3);
		nbd_go(&s, full[i].name);
		nbd_io(&s);
		save("fuzz_nbd", full[i].file, &s);
	}

	/* simple replies, tight buffer limits, many large requests at once */
	nbd_start(&s, M_TRANSMIT | M_TIGHT, 3);
	opt_name(&s, K_GO, N_STRIPED);
	for (int i = 0; i < 24; i++)
		rq(&s, i % 3 ? 0 : 1, 0, OFF_0, 0, LEN_1M, 0);
	rq(&s, 1, 0, OFF_0, 0, LEN_MAX_PAYLOAD, 0); /* refused: past the end */
	rq(&s, 3, 0, OFF_0, 0, LEN_0, 0);
	save("fuzz_nbd", "tight_pipelined", &s);

	/* requests refused: out of range, too large, bad flags, unknown */
	nbd_start(&s, M_TRANSMIT, 3);
	nbd_go(&s, N_LV0);
	rq(&s, 0, 0, OFF_END, 0, LEN_1, 0);
	rq(&s, 0, 0, OFF_MAX_MINUS_U16, 1, LEN_4K, 0);
	rq(&s, 0, 0, OFF_0, 0, LEN_MAX_PAYLOAD_1, 0);
	rq(&s, 1, 0, OFF_END_MINUS_U16, 512, LEN_64K, 0); /* past the end: payload dropped */
	rq(&s, 4, 0, OFF_U64, 1ull << 40, LEN_U32_MAX, 0);
	rq(&s, 6, 0, OFF_0, 0, LEN_U32, 0x7fffffff);
	rq(&s, 7, 0, OFF_0, 0, LEN_0, 0); /* zero-length block status */
	rq(&s, 0 | RQ_FLAGS, 0xff, OFF_0, 0, LEN_512, 0);
	put8(&s, RQ_TYPE_RAW); /* command 99 */
	put_be(&s, 99, 2);
	put8(&s, OFF_0);
	put8(&s, LEN_512);
	rq(&s, 1 | RQ_SHORT, 0, OFF_0, 0, LEN_4K, 0); /* payload cut: ends mid-request */
	put_be(&s, 100, 2);
	save("fuzz_nbd", "refused", &s);

	/* a write larger than the server drops: disconnect */
	nbd_start(&s, M_TRANSMIT, 3);
	opt_name(&s, K_GO, N_LV0);
	rq(&s, 1, 0, OFF_0, 0, LEN_DISCARD_MAX_1, 0);
	save("fuzz_nbd", "write_too_large", &s);

	/* bad request magic */
	nbd_start(&s, M_TRANSMIT, 3);
	opt_name(&s, K_GO, N_LV0);
	rq(&s, 0, 0, OFF_0, 0, LEN_4K, 0);
	put8(&s, RQ_MAGIC_RAW);
	put_be(&s, 0x25609514, 4);
	put8(&s, OFF_0);
	put8(&s, LEN_4K);
	save("fuzz_nbd", "bad_request_magic", &s);

	/* LIST, INFO, meta contexts, then ABORT */
	nbd_start(&s, 0, 3);
	put8(&s, K_LIST);
	put8(&s, K_INFO);
	put8(&s, N_RO);
	put8(&s, 3);
	put8(&s, 0);
	put8(&s, 1);
	put8(&s, 3);
	put8(&s, K_LIST_META); /* before structured replies: refused */
	put8(&s, N_LV0);
	put8(&s, 0);
	put8(&s, K_STRUCTURED);
	put8(&s, K_LIST_META);
	put8(&s, N_LV0);
	put8(&s, 3);
	put8(&s, Q_BASE);
	put8(&s, Q_OTHER);
	put8(&s, Q_RAW);
	put8(&s, NAME_RAW | 4);
	put(&s, "x:yz", 4);
	put8(&s, K_SET_META);
	put8(&s, NAME_OTHER);
	put8(&s, 1);
	put8(&s, Q_ALLOCATION);
	put8(&s, K_ABORT);
	save("fuzz_nbd", "list_info_meta_abort", &s);

	/* EXPORT_NAME, without NO_ZEROES, then I/O */
	nbd_start(&s, M_TRANSMIT, 1);
	opt_name(&s, K_EXPORT_NAME, N_LV1);
	rq(&s, 1, 0, OFF_U16_SECTORS, 3, LEN_U16_SECTORS, 9);
	rq(&s, 0, 0, OFF_0, 0, LEN_64K_1, 0);
	rq(&s, 2, 0, OFF_0, 0, LEN_0, 0);
	save("fuzz_nbd", "export_name", &s);

	/* names that do not open: empty, unknown, with a NUL; then GO */
	nbd_start(&s, M_TRANSMIT, 3);
	opt_name(&s, K_GO | OP_STAY, NAME_DEFAULT);
	opt_name(&s, K_INFO, NAME_OTHER);
	put8(&s, K_GO | OP_STAY);
	put8(&s, NAME_RAW | 3);
	put(&s, "a\0b", 3);
	put8(&s, 0);
	opt_name(&s, K_GO, N_LV0);
	rq(&s, 0, 0, OFF_0, 0, LEN_512, 0);
	save("fuzz_nbd", "bad_names", &s);

	/* an option's length one short: the rest is taken for the next option */
	nbd_start(&s, M_TRANSMIT, 3);
	put8(&s, K_GO | OP_FUDGE | OP_STAY);
	put8(&s, 0xff);
	put8(&s, N_LV0);
	put8(&s, 0);
	save("fuzz_nbd", "option_length_short", &s);

	/* unknown options, option data too long */
	nbd_start(&s, 0, 3);
	put8(&s, K_UNKNOWN);
	put_be(&s, 4, 4);
	put8(&s, 2);
	put(&s, "ab", 2);
	put8(&s, K_RAW_OPTION); /* STRUCTURED_REPLY with data */
	put_be(&s, 8, 4);
	put_be(&s, 2, 4);
	put8(&s, 2);
	put(&s, "ab", 2);
	put8(&s, K_RAW_OPTION); /* more data than the server reads */
	put_be(&s, 3, 4);
	put_be(&s, 70000, 4);
	put8(&s, 0);
	save("fuzz_nbd", "option_too_long", &s);

	/* bad option magic */
	nbd_start(&s, 0, 3);
	put8(&s, K_RAW_BYTES);
	put8(&s, 16);
	put(&s, "IHAVEOPU\0\0\0\3\0\0\0\0", 16);
	save("fuzz_nbd", "bad_option_magic", &s);

	/* TLS: required but not started; then STARTTLS and no TLS handshake */
	nbd_start(&s, M_TRANSMIT | M_TLS | M_TLS_REQUIRED | M_RESTRICTED, 3);
	put8(&s, K_LIST);
	opt_name(&s, K_GO | OP_STAY, N_LV0);
	put8(&s, K_STARTTLS);
	put8(&s, K_RAW_BYTES);
	put8(&s, 5);
	put(&s, "\x16\x03\x01\x00\x05", 5);
	save("fuzz_nbd", "starttls", &s);

	/* TLS started (the client does the TLS handshake), then a full session
	 * through it; required, with the access rules: alice opens vg1/ro */
	nbd_start(&s, M_TRANSMIT | M_TLS, 3);
	put8(&s, K_STRUCTURED); /* forgotten once TLS starts */
	put8(&s, K_STARTTLS);
	nbd_go(&s, N_STRIPED);
	nbd_io(&s);
	save("fuzz_nbd", "tls_session", &s);
	nbd_start(&s, M_TRANSMIT | M_TLS | M_TLS_REQUIRED | M_RESTRICTED, 3);
	put8(&s, K_LIST);
	put8(&s, K_STARTTLS);
	put8(&s, K_LIST);
	put8(&s, K_STARTTLS); /* again: refused */
	nbd_go(&s, N_RO);
	nbd_io(&s);
	save("fuzz_nbd", "tls_required", &s);

	/* TLS offered, not started: the access rules hide vg1 and vg2/fenced */
	nbd_start(&s, M_TRANSMIT | M_TLS | M_RESTRICTED, 3);
	put8(&s, K_LIST);
	opt_name(&s, K_GO | OP_STAY, N_RO);
	opt_name(&s, K_GO, N_LIVE);
	rq(&s, 1, 0, OFF_0, 0, LEN_4K, 0);
	save("fuzz_nbd", "access_rules", &s);

	/* no TLS configured: STARTTLS refused */
	nbd_start(&s, 0, 3);
	put8(&s, K_STARTTLS);
	put8(&s, K_ABORT);
	save("fuzz_nbd", "starttls_off", &s);

	/* the server is stopping */
	nbd_start(&s, M_TRANSMIT | M_STOP, 3);
	put8(&s, K_LIST);
	opt_name(&s, K_GO, N_LV0);
	save("fuzz_nbd", "stopping", &s);

	/* unknown client flags */
	nbd_start(&s, 0, CF_UNKNOWN | 0x7);
	put8(&s, K_LIST);
	save("fuzz_nbd", "client_flags", &s);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: gen_corpus DIR\n");
		return 2;
	}
	root = argv[1];
	mkdir(root, 0755);
	gen_decode();
	gen_journal();
	gen_lease();
	gen_thin();
	gen_request();
	gen_nbd();
	return 0;
}
