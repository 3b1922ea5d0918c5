/* SPDX-License-Identifier: MIT */
/* The fence of a shared VG (dlvm/fence.h) and the metadata writes it guards;
 * devices with an I/O timeout (dlvm/timedio.h). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "dlvm/fence.h"
#include "dlvm/runtime.h"
#include "dlvm/timedio.h"
#include "helpers.h"

static void meta_needs_the_margin(void **state)
{
	struct dlvm_fence *f = dlvm_fence_new("vg0");
	struct dlvm_err e = { 0 };
	(void)state;

	assert_non_null(f);
	/* a new fence is fenced until its deadline is set */
	assert_false(dlvm_fence_ok(f));
	dlvm_fence_set_margin(f, 1000);
	assert_true(dlvm_fence_set(f, dlvm_now_ms() + 60000));
	assert_true(dlvm_fence_ok(f));
	assert_ok(dlvm_fence_meta_ok(f, "journal write", &e), &e);
	assert_ok(dlvm_fence_meta_ok(NULL, "journal write", &e), &e); /* a local VG */

	/* data may still go, metadata may not: the deadline is within T */
	assert_true(dlvm_fence_set(f, dlvm_now_ms() + 500));
	assert_true(dlvm_fence_ok(f));
	assert_err(dlvm_fence_meta_ok(f, "journal write", &e), &e, -ENOLCK,
		   "journal write not issued, this host fences itself");
	assert_true(strstr(e.msg, "vg0: lease expires in ") != NULL);
	assert_true(strstr(e.msg, " ms (I/O timeout 1000 ms)") != NULL);

	/* shut for good: no renewal reopens it */
	assert_true(dlvm_fence_is_shut(f));
	assert_false(dlvm_fence_ok(f));
	assert_false(dlvm_fence_set(f, dlvm_now_ms() + 60000));
	assert_false(dlvm_fence_ok(f));
	assert_err(dlvm_fence_meta_ok(f, "thin metadata write", &e), &e, -ENOLCK,
		   "vg0: this host has fenced itself: thin metadata write not issued");
	dlvm_fence_put(f);
}

static void meta_after_the_deadline(void **state)
{
	struct dlvm_fence *f = dlvm_fence_new("vg0");
	struct dlvm_err e = { 0 };
	(void)state;

	dlvm_fence_set(f, dlvm_now_ms() - 3000);
	assert_err(dlvm_fence_meta_ok(f, "journal write", &e), &e, -ENOLCK, "vg0: lease expired 3");
	dlvm_fence_put(f);
	f = dlvm_fence_new("vg1");
	assert_err(dlvm_fence_meta_ok(f, "journal write", &e), &e, -ENOLCK,
		   "vg1: this host holds no lease: journal write not issued");
	dlvm_fence_put(f);
}

static uint64_t lv_id = 100;

static int create_lv(struct dlvm_vg *vg, const char *name, struct dlvm_err *e)
{
	struct dlvm_edit c = { .type = DLVM_EDIT_LV_CREATE };

	dlvm_lv_create_edit(&c, lv_id++, name, 0);
	return dlvm_txn_commit_edit(vg, &c, e);
}

static long writes(struct dlvm_vg *vg)
{
	long n = 0;

	for (size_t i = 0; i < vg->npv; i++)
		n += dlvm_memdev_writes(vg->pvs[i]->dev);
	return n;
}

/* A commit on a VG whose fence refuses issues no write at all and fails
 * with the fence's reason; the copies keep the last commit. */
static void journal_commit_is_fenced(void **state)
{
	struct dlvm_vg *vg = t_vg(2, 64 * MiB, 512, 0, 4 * MiB);
	struct dlvm_vg_runtime *rt = dlvm_vg_runtime_new();
	struct dlvm_fence *f = dlvm_fence_new("vg0");
	struct dlvm_err e = { 0 };
	(void)state;

	assert_non_null(rt);
	dlvm_vg_attach_runtime(vg, rt, dlvm_vg_runtime_free);
	assert_int_equal(dlvm_vg_set_fence(vg, f), 0);
	dlvm_fence_set_margin(f, 1000);
	dlvm_fence_set(f, dlvm_now_ms() + 60000);
	assert_ok(create_lv(vg, "a", &e), &e);

	dlvm_fence_set(f, dlvm_now_ms() + 200);
	long before = writes(vg);
	assert_err(create_lv(vg, "b", &e), &e, -ENOLCK, "vg0: lease expires in ");
	assert_true(strstr(e.msg, "journal write not issued, this host fences itself") != NULL);
	assert_int_equal(writes(vg), before);
	assert_null(dlvm_lv_find(vg, "b"));
	/* and nothing more is written: the VG is read-only until reloaded */
	assert_int_not_equal(create_lv(vg, "c", &e), 0);
	assert_int_equal(writes(vg), before);

	/* what is on the disks: "a" and not "b" */
	vg = t_reload(vg);
	assert_non_null(dlvm_lv_find(vg, "a"));
	assert_null(dlvm_lv_find(vg, "b"));
	dlvm_vg_free(vg);
	dlvm_fence_put(f);
}

/* A device with a timeout reads, writes and flushes as before. */
static void device_with_a_timeout(void **state)
{
	char path[] = "/tmp/dlvm-timedio-XXXXXX";
	int fd = mkstemp(path);
	struct dlvm_dev *dev = NULL, *mem = dlvm_memdev_new("m", MiB, 512);
	struct dlvm_err e = { 0 };
	uint8_t *a = dlvm_io_alloc(8192), *b = dlvm_io_alloc(8192);
	(void)state;

	assert_true(fd >= 0 && ftruncate(fd, 4 * MiB) == 0);
	close(fd);
	assert_ok(dlvm_dev_open(path, 0, &dev, &e), &e);
	assert_int_equal(dlvm_dev_timeout(dev), 0);
	assert_int_equal(dlvm_dev_set_timeout(dev, 2000), 0);
	assert_int_equal(dlvm_dev_timeout(dev), 2000);
	assert_int_equal(dlvm_dev_set_timeout(dev, 3000), 0);
	assert_int_equal(dlvm_dev_timeout(dev), 3000);
	for (int i = 0; i < 8192; i++)
		a[i] = (uint8_t)(i * 7);
	assert_ok(dlvm_dev_write(dev, a, 8192, 4096, &e), &e);
	assert_ok(dlvm_dev_flush(dev, &e), &e);
	assert_ok(dlvm_dev_read(dev, b, 8192, 4096, &e), &e);
	assert_memory_equal(a, b, 8192);
	assert_ok(dlvm_dev_read(dev, b, 4096, 0, &e), &e);
	assert_true(b[0] == 0 && b[4095] == 0);
	/* past the end: an error, not a hang nor a short success */
	assert_int_not_equal(dlvm_dev_read(dev, b, 4096, 4 * MiB, &e), 0);
	assert_int_equal(dlvm_timed_rw(-1, b, 512, 0, false, 1000), -EBADF);
	/* a memory device keeps its own ops */
	assert_int_equal(dlvm_dev_set_timeout(mem, 1000), -EINVAL);
	assert_int_equal(dlvm_dev_timeout(mem), 0);
	dlvm_dev_close(dev);
	dlvm_dev_close(mem);
	unlink(path);
	free(a);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(meta_needs_the_margin),
		cmocka_unit_test(meta_after_the_deadline),
		cmocka_unit_test(journal_commit_is_fenced),
		cmocka_unit_test(device_with_a_timeout),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
