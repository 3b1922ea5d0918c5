/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the feature flags of the metadata (lib/meta): unknown
 * read-only-compatible features in the VG, in a PV header or in a metadata
 * header slot make the VG read-only: it loads, reads and reports, but no
 * metadata is written, and such a PV joins no VG.
 */
#include "helpers.h"
#include "lib/meta/meta.h"

/* Set ro_compat bits in the 512-byte structure at off (PV header or MDA
 * header slot: ro_compat at byte 24, CRC32C of bytes 0-507 at 508). */
static void set_ro_compat(struct dlvm_dev *dev, uint64_t off, uint64_t bits)
{
	uint8_t *p = dlvm_memdev_data(dev) + off;

	dlvm_put_le64(p + 24, dlvm_get_le64(p + 24) | bits);
	dlvm_put_le32(p + 508, dlvm_crc32c(p, 508));
}

/* Byte offset of the current MDA header slot of dev. */
static uint64_t current_slot(struct dlvm_dev *dev)
{
	struct dlvm_mda m = { 0 };
	struct dlvm_err e = { 0 };

	assert_ok(dlvm_mda_read_header(dev, &m, &e), &e);
	return DLVM_MDA_OFFSET + m.slot * DLVM_BLOCK;
}

/*
 * A VG "vg0" on two PVs with an LV, pv0 one record behind (stale), then
 * `bits` set in the structure at off of PV `which`; loaded again. The
 * writes of each device so far go to writes[].
 */
static struct dlvm_vg *vg_with_bits(size_t which, bool mda_slot, uint64_t bits, long writes[2])
{
	struct dlvm_vg *vg = t_vg(2, 64 * MiB, 512, MiB, MiB);
	struct dlvm_dev *devs[2];
	struct dlvm_err e = { 0 };

	assert_ok(t_lv_create(vg, "a", 2, 1, 0, &e), &e);
	dlvm_memdev_set_fault(vg->pvs[0]->dev, DLVM_FAULT_POWERLOSS, 0);
	assert_ok(t_lv_create(vg, "b", 1, 1, 0, &e), &e);
	t_heal(vg);
	t_detach(vg, devs);
	set_ro_compat(devs[which], mda_slot ? current_slot(devs[which]) : DLVM_PV_HEADER_OFFSET,
		      bits);
	for (size_t i = 0; i < 2; i++)
		writes[i] = dlvm_memdev_writes(devs[i]);
	return t_load(devs, 2);
}

/* Nothing may change: every kind of metadata write is refused with want. */
static void assert_nothing_written(struct dlvm_vg *vg, const long writes[2], const char *want)
{
	struct dlvm_err e = { 0 };
	char *txt;
	unsigned repaired;

	assert_true(vg->readonly);
	assert_err(t_lv_create(vg, "c", 1, 1, 0, &e), &e, -EROFS, want);
	assert_err(t_lv_remove(vg, "a", &e), &e, -EROFS, want);
	assert_err(dlvm_vg_checkpoint(vg, false, &e), &e, -EROFS, want);
	/* check still reads every copy and finds the stale one; the repair is
	 * refused, with the reason */
	assert_int_equal(t_check(vg, true, &repaired, &txt), 2);
	assert_int_equal(repaired, 0);
	assert_non_null(strstr(txt, "pv0: metadata copy 1 is stale (sequence 2, VG at 3)"));
	assert_non_null(strstr(txt, "pv0: repair failed: "));
	assert_non_null(strstr(txt, want));
	free(txt);
	for (size_t i = 0; i < 2; i++)
		assert_int_equal(dlvm_memdev_writes(vg->pvs[i]->dev), writes[i]);
}

static void pv_header_ro_compat_makes_vg_readonly(void **state)
{
	long writes[2];
	struct dlvm_vg *vg = vg_with_bits(1, false, 0x4, writes);
	(void)state;

	/* the VG reads as before */
	assert_int_equal(vg->seq, 3);
	assert_non_null(dlvm_lv_find(vg, "a"));
	assert_non_null(dlvm_lv_find(vg, "b"));
	assert_false(vg->pvs[0]->mda.in_sync);
	assert_true(vg->pvs[1]->mda.in_sync);
	assert_string_equal(vg->readonly_why,
			    "pv1: PV header at offset 4096: unknown "
			    "read-only-compatible features 0x4 (written by a newer dlvm): the VG "
			    "is read-only");
	assert_nothing_written(vg, writes, vg->readonly_why);
	dlvm_vg_free(vg);
}

static void mda_header_ro_compat_makes_vg_readonly(void **state)
{
	long writes[2];
	struct dlvm_vg *vg = vg_with_bits(0, true, 0x8 | DLVM_RO_COMPAT_SHARED, writes);
	char want[256];
	(void)state;

	assert_int_equal(vg->seq, 3);
	unsigned slot = vg->pvs[0]->mda.slot;
	snprintf(want, sizeof(want),
		 "pv0: metadata header slot %u at offset %u: unknown "
		 "read-only-compatible features 0x8 (written by a newer dlvm): the VG is "
		 "read-only",
		 slot, DLVM_MDA_OFFSET + slot * DLVM_BLOCK);
	assert_string_equal(vg->readonly_why, want);
	assert_nothing_written(vg, writes, want);
	dlvm_vg_free(vg);
}

/* The older header slot counts too: the next checkpoint would overwrite it. */
static void older_slot_ro_compat_makes_vg_readonly(void **state)
{
	struct dlvm_vg *vg = t_vg(1, 64 * MiB, 512, MiB, MiB);
	struct dlvm_dev *devs[1];
	struct dlvm_err e = { 0 };
	(void)state;

	assert_ok(dlvm_vg_checkpoint(vg, false, &e), &e);
	t_detach(vg, devs);
	uint64_t cur = current_slot(devs[0]);
	uint64_t older = cur == DLVM_MDA_OFFSET ? DLVM_MDA_OFFSET + DLVM_BLOCK : DLVM_MDA_OFFSET;
	set_ro_compat(devs[0], older, 0x10);
	vg = t_load(devs, 1);
	assert_true(vg->readonly);
	assert_non_null(strstr(vg->readonly_why, "unknown read-only-compatible features 0x10"));
	assert_err(t_lv_create(vg, "c", 1, 1, 0, &e), &e, -EROFS, "the VG is read-only");
	dlvm_vg_free(vg);
}

/* The VG's own ro_compat (VG_INFO) says why as well. */
static void vg_ro_compat_says_why(void **state)
{
	struct dlvm_vg *vg = t_vg(1, 64 * MiB, 512, MiB, MiB);
	struct dlvm_err e = { 0 };
	struct dlvm_edit ed = { .type = DLVM_EDIT_VG_INFO };
	(void)state;

	ed.u.vg = vg->info;
	ed.u.vg.ro_compat |= 0x20;
	assert_ok(t_commit(vg, &ed, &e), &e);
	vg = t_reload(vg);
	assert_err(t_lv_create(vg, "c", 1, 1, 0, &e), &e, -EROFS,
		   "vg0: unknown read-only-compatible features 0x20 (written by a newer dlvm): "
		   "the VG is read-only");
	dlvm_vg_free(vg);
}

/* vgcreate refuses such a PV before it writes anything. */
static void vg_create_refuses_unknown_ro_compat(void **state)
{
	struct dlvm_dev *devs[2] = { t_pv("pv0", 64 * MiB, 512, MiB),
				     t_pv("pv1", 64 * MiB, 512, MiB) };
	struct dlvm_vg *vg = NULL;
	struct dlvm_err e = { 0 };
	(void)state;

	set_ro_compat(devs[1], DLVM_MDA_OFFSET, 0x4);
	long w0 = dlvm_memdev_writes(devs[0]), w1 = dlvm_memdev_writes(devs[1]);
	assert_err(dlvm_vg_create("vg0", MiB, devs, 2, &vg, &e), &e, -EROFS,
		   "pv1: metadata header slot 0 at offset 8192: unknown read-only-compatible "
		   "features 0x4 (written by a newer dlvm): it cannot join a VG (pvcreate -f "
		   "reinitialises it)");
	assert_int_equal(dlvm_memdev_writes(devs[0]), w0);
	assert_int_equal(dlvm_memdev_writes(devs[1]), w1);

	/* nor is its header rewritten as an orphan's */
	set_ro_compat(devs[0], DLVM_PV_HEADER_OFFSET, 0x4);
	assert_err(dlvm_pv_make_orphan(devs[0], &e), &e, -EROFS,
		   "pv0: PV header at offset 4096: unknown read-only-compatible features 0x4 "
		   "(written by a newer dlvm): not rewritten");
	assert_int_equal(dlvm_memdev_writes(devs[0]), w0);
	/* a forced reinitialisation is what clears it */
	assert_ok(dlvm_pv_format(devs[0], NULL, &e), &e);
	assert_ok(dlvm_pv_make_orphan(devs[0], &e), &e);
	for (size_t i = 0; i < 2; i++)
		dlvm_dev_close(devs[i]);
}

/* Unknown incompatible features in either header slot: the copy is
 * refused, never read from the other slot (which may be the older one). */
static void incompat_slot_refuses_the_copy(void **state)
{
	(void)state;
	for (int older = 0; older < 2; older++) {
		struct dlvm_vg *vg = t_vg(1, 64 * MiB, 512, MiB, MiB);
		struct dlvm_dev *devs[1];
		struct dlvm_mda m = { 0 };
		struct dlvm_err e = { 0 };

		assert_ok(t_lv_create(vg, "a", 1, 1, 0, &e), &e);
		assert_ok(t_lv_create(vg, "b", 1, 1, 0, &e), &e);
		t_detach(vg, devs);
		assert_ok(dlvm_mda_read_header(devs[0], &m, &e), &e);
		assert_true(m.has_alt); /* both slots hold a header */
		uint64_t off = DLVM_MDA_OFFSET + (m.slot ^ (unsigned)older) * DLVM_BLOCK;
		uint8_t *p = dlvm_memdev_data(devs[0]) + off;
		dlvm_put_le64(p + 32, dlvm_get_le64(p + 32) | 0x100);
		dlvm_put_le32(p + 508, dlvm_crc32c(p, 508));
		assert_err(dlvm_mda_read_header(devs[0], &m, &e), &e, -ENOTSUP,
			   "unknown incompatible features 0x100");
		dlvm_dev_close(devs[0]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(pv_header_ro_compat_makes_vg_readonly),
		cmocka_unit_test(mda_header_ro_compat_makes_vg_readonly),
		cmocka_unit_test(older_slot_ro_compat_makes_vg_readonly),
		cmocka_unit_test(vg_ro_compat_says_why),
		cmocka_unit_test(vg_create_refuses_unknown_ro_compat),
		cmocka_unit_test(incompat_slot_refuses_the_copy),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
