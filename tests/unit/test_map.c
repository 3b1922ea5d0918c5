/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the data-path map (lib/volume/map.c): LV byte offsets to
 * (device, offset) pieces for linear multi-segment and striped LVs. PVs are
 * 64 MiB memory devices with 1 MiB extents; their data area starts at 2 MiB.
 */
#include "helpers.h"
#include "dlvm/map.h"
#include "dlvm/thinpool.h"

#include <fcntl.h>
#include <unistd.h>

#define KiB 1024ull
#define DATA (2 * MiB) /* pe_start of every PV */

/* Memory devices have no fd; the map tells devices apart by fd, so give
 * each PV a distinct fake one (memdevs never use it). */
static struct dlvm_vg *vg_of(size_t npv)
{
	struct dlvm_vg *vg = t_vg(npv, 64 * MiB, 512, MiB, MiB);
	for (size_t i = 0; i < npv; i++) {
		assert_int_equal(vg->pvs[i]->d.pe_start, DATA);
		vg->pvs[i]->dev->fd = 100 + (int)i;
	}
	return vg;
}

static struct dlvm_lv_map *map_of(struct dlvm_vg *vg, const char *lv)
{
	struct dlvm_lv_map *m = NULL;
	struct dlvm_err e = { 0 };

	assert_non_null(dlvm_lv_find(vg, lv));
	assert_ok(dlvm_lv_map_build(vg, dlvm_lv_find(vg, lv), NULL, &m, &e), &e);
	return m;
}

#define assert_piece(m, at, n, want_dev, want_off, want_len) \
	do { \
		struct dlvm_map_piece p_ = { 99, 99, 99 }; \
		dlvm_lv_map_resolve((m), (at), (n), &p_); \
		if (p_.dev != (want_dev) || p_.dev_off != (want_off) || p_.len != (want_len)) \
			fail_msg("resolve(%llu, %llu): dev %u off %" PRIu64 " len %" PRIu64 \
				 ", want dev %u off %llu len %llu", \
				 (unsigned long long)(at), (unsigned long long)(n), p_.dev, \
				 p_.dev_off, p_.len, (unsigned)(want_dev), \
				 (unsigned long long)(want_off), (unsigned long long)(want_len)); \
	} while (0)

/* Walk [0, size) piece by piece: bytes per device and number of pieces. */
static unsigned walk(const struct dlvm_lv_map *m, uint64_t step, uint64_t *per_dev)
{
	unsigned pieces = 0;

	for (uint32_t d = 0; d < m->ndev; d++)
		per_dev[d] = 0;
	for (uint64_t off = 0; off < m->size;) {
		struct dlvm_map_piece p;
		uint64_t len = DLVM_MIN(step, m->size - off);
		dlvm_lv_map_resolve(m, off, len, &p);
		assert_true(p.len > 0 && p.len <= len);
		assert_true(p.dev < m->ndev);
		per_dev[p.dev] += p.len;
		off += p.len;
		pieces++;
	}
	return pieces;
}

static void linear_segments(void **state)
{
	struct dlvm_vg *vg = vg_of(2);
	struct dlvm_err e = { 0 };
	struct dlvm_seg_desc **segs = calloc(3, sizeof(*segs));
	const uint32_t p1[] = { 1 }, p2[] = { 2 };
	const uint64_t at10[] = { 10 }, at0[] = { 0 }, at30[] = { 30 };
	(void)state;

	segs[0] = t_seg(0, 3, 1, 0, p1, at10);
	segs[1] = t_seg(3, 2, 1, 0, p2, at0);
	segs[2] = t_seg(5, 4, 1, 0, p1, at30);
	assert_ok(t_lv_create_segs(vg, "lin", segs, 3, &e), &e);
	struct dlvm_lv_map *m = map_of(vg, "lin");
	assert_int_equal(m->size, 9 * MiB);
	assert_false(m->readonly);
	assert_string_equal(m->vg, "vg0");
	assert_string_equal(m->lv, "lin");
	assert_int_equal(m->nseg, 3);
	assert_int_equal(m->ndev, 2);
	assert_int_equal(m->devs[0].fd, 100);
	assert_int_equal(m->devs[1].fd, 101);
	assert_string_equal(m->devs[0].name, "pv0");
	assert_int_equal(m->devs[0].sector_size, 512);

	/* a piece never crosses a segment edge */
	assert_piece(m, 0, 9 * MiB, 0, DATA + 10 * MiB, 3 * MiB);
	assert_piece(m, 0, 1, 0, DATA + 10 * MiB, 1);
	assert_piece(m, 3 * MiB - 512, 1024, 0, DATA + 13 * MiB - 512, 512);
	assert_piece(m, 3 * MiB, 512, 1, DATA, 512);
	assert_piece(m, 3 * MiB, 6 * MiB, 1, DATA, 2 * MiB);
	assert_piece(m, 4 * MiB + 7, 5 * MiB - 7, 1, DATA + MiB + 7, MiB - 7);
	assert_piece(m, 5 * MiB - 1, 2, 1, DATA + 2 * MiB - 1, 1);
	assert_piece(m, 5 * MiB, 4 * MiB, 0, DATA + 30 * MiB, 4 * MiB);
	assert_piece(m, 9 * MiB - 1, 1, 0, DATA + 34 * MiB - 1, 1);
	assert_piece(m, 6 * MiB + 123, 4096, 0, DATA + 31 * MiB + 123, 4096);

	uint64_t per[4];
	assert_int_equal(walk(m, 9 * MiB, per), 3);
	assert_int_equal(per[0], 7 * MiB);
	assert_int_equal(per[1], 2 * MiB);
	/* 3 MiB, 2 MiB, 4 MiB in steps of 1000 KiB: 4 + 3 + 5 pieces */
	assert_int_equal(walk(m, 1000 * KiB, per), 12);

	/* references */
	assert_ptr_equal(dlvm_lv_map_get(m), m);
	assert_int_equal(atomic_load(&m->refs), 2);
	dlvm_lv_map_put(m);
	assert_int_equal(atomic_load(&m->refs), 1);
	dlvm_lv_map_put(m);
	dlvm_vg_free(vg);
}

static void striped_and_linear(void **state)
{
	struct dlvm_vg *vg = vg_of(3);
	struct dlvm_err e = { 0 };
	struct dlvm_seg_desc **segs = calloc(2, sizeof(*segs));
	const uint32_t p3[] = { 1, 2, 3 }, p2[] = { 2 };
	const uint64_t e3[] = { 0, 5, 7 }, e20[] = { 20 };
	const uint64_t S = 64 * KiB;
	(void)state;

	/* 6 extents over 3 stripes of 64 KiB (2 MiB per stripe), then 2 linear */
	segs[0] = t_seg(0, 6, 3, (uint32_t)S, p3, e3);
	segs[1] = t_seg(6, 2, 1, 0, p2, e20);
	assert_ok(t_lv_create_segs(vg, "st", segs, 2, &e), &e);
	struct dlvm_lv_map *m = map_of(vg, "st");
	assert_int_equal(m->size, 8 * MiB);
	assert_int_equal(m->ndev, 3);
	assert_int_equal(m->segs[0].stripes, 3);
	assert_int_equal(m->segs[0].stripe_size, S);
	assert_int_equal(m->segs[1].stripes, 1);
	assert_int_equal(m->segs[1].stripe_size, 2 * MiB);

	/* chunk c of the striped segment: stripe c % 3, row c / 3 */
	assert_piece(m, 0, MiB, 0, DATA, S);
	assert_piece(m, 0, 100, 0, DATA, 100);
	assert_piece(m, S - 1, 2, 0, DATA + S - 1, 1);
	assert_piece(m, S, MiB, 1, DATA + 5 * MiB, S);
	assert_piece(m, S + 100, MiB, 1, DATA + 5 * MiB + 100, S - 100);
	assert_piece(m, 2 * S, S, 2, DATA + 7 * MiB, S);
	assert_piece(m, 3 * S + 5, 10, 0, DATA + S + 5, 10);
	assert_piece(m, 4 * S, 3 * S, 1, DATA + 5 * MiB + S, S);
	assert_piece(m, 95 * S, S, 2, DATA + 7 * MiB + 31 * S, S);
	assert_piece(m, 6 * MiB - 1, 1, 2, DATA + 9 * MiB - 1, 1);
	/* across the edge from the striped segment into the linear one */
	assert_piece(m, 6 * MiB - 10, 20, 2, DATA + 9 * MiB - 10, 10);
	assert_piece(m, 6 * MiB, 10, 1, DATA + 20 * MiB, 10);
	assert_piece(m, 6 * MiB, 2 * MiB, 1, DATA + 20 * MiB, 2 * MiB);
	assert_piece(m, 8 * MiB - 1, 1, 1, DATA + 22 * MiB - 1, 1);

	uint64_t per[4];
	/* 96 chunks of the striped part, one piece for the linear part */
	assert_int_equal(walk(m, 8 * MiB, per), 97);
	assert_int_equal(per[0], 2 * MiB);
	assert_int_equal(per[1], 4 * MiB);
	assert_int_equal(per[2], 2 * MiB);
	/* unaligned requests: pieces still stop at every stripe edge */
	assert_int_equal(walk(m, 100 * KiB, per), 96 + 21);

	/* a chunk lands on the device offset its own arithmetic predicts */
	for (uint64_t c = 0; c < 96; c++) {
		struct dlvm_map_piece p;
		dlvm_lv_map_resolve(m, c * S + 7, S, &p);
		uint32_t stripe = (uint32_t)(c % 3);
		assert_int_equal(p.dev, stripe);
		assert_int_equal(p.dev_off, DATA + e3[stripe] * MiB + (c / 3) * S + 7);
		assert_int_equal(p.len, S - 7);
	}
	dlvm_lv_map_put(m);

	/* read-only LVs give read-only maps */
	struct dlvm_edit fe = { .type = DLVM_EDIT_LV_SET_FLAGS };
	fe.u.lv.id = dlvm_lv_find(vg, "st")->id;
	fe.u.lv.flags = DLVM_LV_READONLY;
	assert_ok(t_commit(vg, &fe, &e), &e);
	m = map_of(vg, "st");
	assert_true(m->readonly);
	dlvm_lv_map_put(m);

	/* a missing PV: no map */
	struct dlvm_dev *keep = vg->pvs[2]->dev;
	vg->pvs[2]->dev = NULL;
	assert_err(dlvm_lv_map_build(vg, dlvm_lv_find(vg, "st"), NULL, &m, &e), &e, -ENODEV,
		   "vg0/st: PV 3 is missing");
	vg->pvs[2]->dev = keep;
	dlvm_vg_free(vg);
}

/* Many segments: the binary search finds each one. */
static void many_segments(void **state)
{
	struct dlvm_vg *vg = vg_of(2);
	struct dlvm_err e = { 0 };
	enum { N = 40 };
	struct dlvm_seg_desc **segs = calloc(N, sizeof(*segs));
	(void)state;

	/* segment i: 1 extent, alternating PVs, descending extents */
	for (uint32_t i = 0; i < N; i++) {
		uint32_t pv = 1 + i % 2;
		uint64_t pe = 50 - i / 2;
		segs[i] = t_seg(i, 1, 1, 0, &pv, &pe);
	}
	assert_ok(t_lv_create_segs(vg, "many", segs, N, &e), &e);
	struct dlvm_lv_map *m = map_of(vg, "many");
	assert_int_equal(m->nseg, N);
	for (uint32_t i = 0; i < N; i++) {
		assert_piece(m, (uint64_t)i * MiB, MiB, i % 2, DATA + (50 - i / 2) * MiB, MiB);
		assert_piece(m, (uint64_t)i * MiB + MiB - 1, 1, i % 2,
			     DATA + (51 - i / 2) * MiB - 1, 1);
	}
	dlvm_lv_map_put(m);
	dlvm_vg_free(vg);
}

/* A batch of writes through an LV device on two PV files: more pieces than
 * the ring holds, across stripe and PV boundaries; every byte reads back,
 * and a write past the end fails, naming it. */
static void lvdev_batch_on_files(void **state)
{
	struct dlvm_pvcreate_opts o = { .mda_size = MiB };
	struct dlvm_dev *devs[2], *lvd = NULL;
	struct dlvm_vg *vg = NULL;
	struct dlvm_err e = { 0 };
	char paths[2][64];
	(void)state;

	for (int i = 0; i < 2; i++) {
		snprintf(paths[i], sizeof(paths[i]), "/var/tmp/dlvm-lvdev-XXXXXX");
		int fd = mkstemp(paths[i]);
		assert_true(fd >= 0);
		assert_int_equal(ftruncate(fd, 64 * MiB), 0);
		close(fd);
		assert_ok(dlvm_dev_open(paths[i], 0, &devs[i], &e), &e);
		assert_ok(dlvm_pv_format(devs[i], &o, &e), &e);
	}
	assert_ok(dlvm_vg_create("vg0", MiB, devs, 2, &vg, &e), &e);
	assert_ok(t_lv_create(vg, "st", 16, 2, 64 * KiB, &e), &e);
	assert_ok(dlvm_lvdev_open(vg, dlvm_lv_find(vg, "st"), &lvd, &e), &e);
	assert_int_equal(lvd->size, 16 * MiB);

	enum { N = 150 };
	struct dlvm_dev_wr w[N];
	uint8_t *buf = dlvm_io_alloc(N * 128 * KiB), *back = dlvm_io_alloc(128 * KiB);
	struct t_gen g = { .s = 99 };
	assert_non_null(buf);
	assert_non_null(back);
	/* disjoint: write i (4 to 96 KiB) lies in [i * 100 KiB, (i + 1) * 100 KiB) */
	for (int i = 0; i < N; i++) {
		uint64_t len = 4 * KiB * (1 + t_rnd(&g) % 24);
		uint8_t *b = buf + (size_t)i * 128 * KiB;
		for (uint64_t k = 0; k < len; k++)
			b[k] = (uint8_t)(t_rnd(&g) >> 7);
		w[i] = (struct dlvm_dev_wr){ .buf = b,
					     .len = len,
					     .off = (uint64_t)i * 100 * KiB +
						    4 * KiB * (t_rnd(&g) % 2) };
	}
	assert_ok(dlvm_dev_write_many(lvd, w, N, &e), &e);
	for (int i = 0; i < N; i++) {
		assert_ok(dlvm_dev_read(lvd, back, w[i].len, w[i].off, &e), &e);
		if (memcmp(back, w[i].buf, w[i].len))
			fail_msg("write %d (%zu bytes at %" PRIu64 ") does not read back", i,
				 w[i].len, w[i].off);
	}
	w[3].off = 16 * MiB - 4 * KiB;
	w[3].len = 8 * KiB;
	assert_err(dlvm_dev_write_many(lvd, w, 5, &e), &e, -EIO,
		   "vg0/st: write of 8192 bytes at offset 16773120 failed");
	free(buf);
	free(back);
	dlvm_dev_close(lvd);
	dlvm_vg_free(vg);
	for (int i = 0; i < 2; i++)
		unlink(paths[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(linear_segments),
		cmocka_unit_test(striped_and_linear),
		cmocka_unit_test(many_segments),
		cmocka_unit_test(lvdev_batch_on_files),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
