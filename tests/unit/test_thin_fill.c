/* SPDX-License-Identifier: MIT */
/* Unit tests of the table of fills in flight (lib/pool/fill.c):
 * counts per sub-block, reliance, a full table, and removal that keeps the
 * entries probed past the removed one findable. */
#include "helpers.h"

#include "lib/pool/fill.h"

#define LIVE_MAX 384 /* three quarters of the table */

/* The sub-block the table test gives chunk c (chunks are i * 512 + i % 3). */
static uint16_t mask_of(uint64_t c)
{
	return (uint16_t)(1u << ((c / 512) % 16));
}

static void counts_and_reliance(void **state)
{
	(void)state;
	struct dlvm_thin_fills *f = dlvm_thin_fills_new();
	assert_non_null(f);

	assert_int_equal(dlvm_thin_fill_pending(f, 7), 0);
	assert_true(dlvm_thin_fill_add(f, 7, 0x0003));
	assert_true(dlvm_thin_fill_add(f, 7, 0x0006));
	assert_int_equal(dlvm_thin_fill_pending(f, 7), 0x0007);
	assert_int_equal(dlvm_thin_fill_pending(f, 8), 0);
	/* relied on: reported when the last fill of that sub-block ends */
	dlvm_thin_fill_rely(f, 7, 0x0002);
	dlvm_thin_fill_rely(f, 8, 0x0001); /* no fill there: nothing */
	assert_int_equal(dlvm_thin_fill_drop(f, 7, 0x0003), 0);
	assert_int_equal(dlvm_thin_fill_pending(f, 7), 0x0006);
	assert_int_equal(dlvm_thin_fill_drop(f, 7, 0x0006), 0x0002);
	assert_int_equal(dlvm_thin_fill_pending(f, 7), 0);
	/* a drop of what is not there changes nothing */
	assert_int_equal(dlvm_thin_fill_drop(f, 7, 0x0001), 0);
	assert_true(dlvm_thin_fill_add(f, 7, 0x8000));
	assert_int_equal(dlvm_thin_fill_pending(f, 7), 0x8000);
	/* reliance ended with its fill: not reported again */
	assert_int_equal(dlvm_thin_fill_drop(f, 7, 0x8000), 0);
	dlvm_thin_fills_free(f);
}

static void full_table_and_removal(void **state)
{
	(void)state;
	struct dlvm_thin_fills *f = dlvm_thin_fills_new();
	uint64_t chunks[LIVE_MAX];
	assert_non_null(f);

	/* chunks a multiple of the table size apart collide often */
	for (unsigned i = 0; i < LIVE_MAX; i++) {
		chunks[i] = (uint64_t)i * 512 + (i % 3);
		assert_true(dlvm_thin_fill_add(f, chunks[i], mask_of(chunks[i])));
	}
	assert_false(dlvm_thin_fill_add(f, 1ull << 40, 1));
	assert_int_equal(dlvm_thin_fill_pending(f, 1ull << 40), 0);
	/* a chunk already there takes more fills */
	assert_true(dlvm_thin_fill_add(f, chunks[5], 0x0100));
	assert_int_equal(dlvm_thin_fill_drop(f, chunks[5], 0x0100), 0);
	/* remove in a shuffled order; every other entry stays findable */
	t_shuffle_u64(chunks, LIVE_MAX, 99);
	for (unsigned i = 0; i < LIVE_MAX; i++) {
		uint64_t c = chunks[i];
		uint16_t m = mask_of(c);
		assert_int_equal(dlvm_thin_fill_pending(f, c), m);
		assert_int_equal(dlvm_thin_fill_drop(f, c, m), 0);
		assert_int_equal(dlvm_thin_fill_pending(f, c), 0);
		for (unsigned k = i + 1; k < LIVE_MAX; k++)
			if (dlvm_thin_fill_pending(f, chunks[k]) != mask_of(chunks[k]))
				fail_msg("chunk %" PRIu64 " lost after removing %" PRIu64,
					 chunks[k], c);
	}
	/* all gone: room for as many again */
	for (unsigned i = 0; i < LIVE_MAX; i++)
		assert_true(dlvm_thin_fill_add(f, 1000000 + i, 1));
	assert_false(dlvm_thin_fill_add(f, 5, 1));
	dlvm_thin_fills_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(counts_and_reliance),
		cmocka_unit_test(full_table_and_removal),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
