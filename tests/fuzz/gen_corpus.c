/* SPDX-License-Identifier: MIT */
/*
 * Writes the seed corpora of the fuzz harnesses, tests/fuzz/corpus/NAME/,
 * from structures encoded with the project's own codecs: valid inputs, and
 * valid inputs with one named field pushed out of range (what the field
 * checks are for). Run it again when a format or a harness's input changes:
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
	return 0;
}
