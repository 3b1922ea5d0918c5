/* SPDX-License-Identifier: MIT */
/*
 * The thin store with a million mapped chunks: how long opening it takes
 * (it reads every node once to rebuild the reference counts) and a check,
 * printed for docs/thin.md; the numbers are not asserted (speed belongs in
 * benchmarks). What is asserted: the store opens to the same mappings, a
 * snapshot of the whole volume costs O(1), and check() is clean.
 */
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"
#include "dlvm/thin.h"
#include "lib/thin/thin_int.h"

#define NONE DLVM_THIN_NONE
#define CHUNKS 1000000ull

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct dlvm_thin_store *open_timed(struct dlvm_dev *dev, double *secs)
{
	struct dlvm_thin_store *s = NULL;
	struct dlvm_err e = { 0 };
	double t0 = now_s();

	assert_ok(dlvm_thin_store_open(dev, NULL, &s, &e), &e);
	*secs = now_s() - t0;
	return s;
}

/*
 * The store of memory device mem copied into a file, opened with O_DIRECT
 * where the file system allows it, so that every read goes to the disk:
 * prints the open time, checks that device 2 maps vchunk to chunk, and
 * returns mem.
 */
static struct dlvm_dev *file_open_time(struct dlvm_dev *mem, uint64_t vchunk, uint64_t chunk)
{
	struct dlvm_thin_store *s;
	struct dlvm_dev *dev;
	struct dlvm_err e = { 0 };
	char path[] = "/var/tmp/dlvm-thin-scale-XXXXXX";
	int fd = mkstemp(path);
	double secs;
	uint64_t c;

	assert_true(fd >= 0);
	static const uint8_t zero[4096];
	const uint8_t *img = dlvm_memdev_data(mem);
	size_t used = (size_t)mem->size;
	while (used > 4096 && !memcmp(img + used - 4096, zero, 4096))
		used -= 4096; /* trailing zero blocks stay a hole */
	for (size_t off = 0; off < used;) {
		ssize_t n = pwrite(fd, img + off, used - off, (off_t)off);
		assert_true(n > 0);
		off += (size_t)n;
	}
	assert_int_equal(ftruncate(fd, (off_t)mem->size), 0);
	assert_int_equal(fsync(fd), 0);
	close(fd);
	assert_ok(dlvm_dev_open(path, DLVM_DEV_RDONLY, &dev, &e), &e);
	s = open_timed(dev, &secs);
	print_message("open from a file (%s): %.3f s\n", dev->direct ? "O_DIRECT" : "page cache",
		      secs);
	assert_ok(dlvm_thin_lookup(s, 2, vchunk, &c, NULL, &e), &e);
	assert_int_equal(c, chunk);
	dlvm_thin_store_close(s);
	dlvm_dev_close(dev);
	unlink(path);
	return mem;
}

/*
 * The walk with a budget of `win_max` windows of TH_WALK_WIN blocks (the
 * rest read in runs below each level-1 node, or block by block) counts
 * exactly what the open counted.
 */
static void walk_with_windows(struct dlvm_thin_store *s, size_t win_max)
{
	struct th_walk w = { .s = s,
			     .dev_root = s->sb.dev_root,
			     .win_max = win_max,
			     .lim = th_store_limits(s) };
	struct dlvm_err e = { 0 };

	assert_ok(th_walk_run(&w, &e), &e);
	assert_int_equal(w.ndevs, s->sb.ndevs);
	assert_memory_equal(w.mref, s->mref, s->sb.meta_blocks * sizeof(*w.mref));
	assert_memory_equal(w.dref, s->dref, s->sb.data_chunks * sizeof(*w.dref));
	th_walk_release(&w);
}

/*
 * A million chunks of device 1 written in order (sequential) or in a random
 * order, committed every 4096 chunks; then the open time from memory and
 * from a file, a check, and an O(1) snapshot of it all.
 */
static void million(bool random_order)
{
	struct dlvm_thin_format_opts o = { .chunk_size = 65536,
					   .data_chunks = 2 * CHUNKS,
					   .meta_blocks = 32768 };
	struct dlvm_dev *dev = dlvm_memdev_new("thin0", 32768 * 4096ull, 4096);
	struct dlvm_thin_store *s;
	struct dlvm_check_report rep = { 0 };
	struct dlvm_thin_usage u, u2;
	struct dlvm_err e = { 0 };
	uint64_t c, v, old, from;
	double secs;
	bool is_new;

	assert_ok(dlvm_thin_store_format(dev, &o, &e), &e);
	s = open_timed(dev, &secs);
	assert_ok(dlvm_thin_create(s, 1, 0, &e), &e);
	uint64_t *order = malloc(CHUNKS * sizeof(uint64_t));
	assert_non_null(order);
	for (uint64_t i = 0; i < CHUNKS; i++)
		order[i] = i;
	if (random_order)
		t_shuffle_u64(order, CHUNKS, 1);
	double t0 = now_s();
	for (uint64_t i = 0; i < CHUNKS; i++) {
		v = order[i];
		assert_ok(dlvm_thin_provision(s, 1, v, &c, &is_new, NULL, &e), &e);
		if (i % 4096 == 4095)
			assert_ok(dlvm_thin_commit(s, &e), &e);
	}
	assert_ok(dlvm_thin_commit(s, &e), &e);
	double fill = now_s() - t0;
	free(order);
	dlvm_thin_usage(s, &u);
	uint64_t nodes = u.meta_blocks - u.meta_free - 2;
	print_message("%s: %llu chunks provisioned in %.2f s (%.2f us each), %" PRIu64 " nodes\n",
		      random_order ? "random order" : "in order", CHUNKS, fill,
		      fill * 1e6 / (double)CHUNKS, nodes);
	dlvm_thin_store_close(s);

	s = open_timed(dev, &secs);
	print_message("open of a store with %llu mapped chunks in %" PRIu64 " nodes: %.3f s\n",
		      CHUNKS, nodes, secs);
	assert_true(nodes > 4 * TH_WALK_WIN); /* several windows */
	walk_with_windows(s, 1);
	walk_with_windows(s, 3);
	t0 = now_s();
	assert_ok(dlvm_thin_check(s, &rep, &e), &e);
	print_message("check: %.3f s, %u problems\n", now_s() - t0, rep.problems);
	assert_int_equal(rep.problems, 0);
	dlvm_check_report_release(&rep);

	/* a snapshot of a million chunks is one more reference to a root */
	dlvm_thin_usage(s, &u);
	long w0 = dlvm_memdev_writes(dev);
	assert_ok(dlvm_thin_snapshot(s, 1, 2, DLVM_THIN_DEV_READONLY, &e), &e);
	assert_ok(dlvm_thin_commit(s, &e), &e);
	assert_true(dlvm_memdev_writes(dev) - w0 <= 2);
	dlvm_thin_usage(s, &u2);
	assert_true(u.meta_free - u2.meta_free <= 1);
	assert_int_equal(u2.data_free, u.data_free);

	/* a write after the snapshot copies one path and one chunk */
	assert_ok(dlvm_thin_lookup(s, 1, 777777, &old, NULL, &e), &e);
	assert_ok(dlvm_thin_provision(s, 1, 777777, &c, &is_new, &from, &e), &e);
	assert_true(is_new);
	assert_int_equal(from, old);
	dlvm_thin_usage(s, &u);
	assert_true(u2.meta_free - u.meta_free <= 4);
	assert_ok(dlvm_thin_commit(s, &e), &e);
	dlvm_thin_store_close(s);

	s = open_timed(dev, &secs);
	print_message("open with a snapshot sharing them: %.3f s\n", secs);
	for (v = 0; v < CHUNKS; v += 99991) {
		uint64_t a, b;
		bool sh;
		assert_ok(dlvm_thin_lookup(s, 1, v, &a, &sh, &e), &e);
		assert_true(sh);
		assert_ok(dlvm_thin_lookup(s, 2, v, &b, NULL, &e), &e);
		assert_int_equal(a, b);
		assert_int_not_equal(a, NONE);
	}
	assert_ok(dlvm_thin_lookup(s, 2, 777777, &c, NULL, &e), &e);
	assert_int_equal(c, old);
	assert_ok(dlvm_thin_next_mapped(s, 1, CHUNKS - 1, &v, NULL, &e), &e);
	assert_int_equal(v, CHUNKS - 1);
	assert_ok(dlvm_thin_next_mapped(s, 1, CHUNKS, &v, NULL, &e), &e);
	assert_int_equal(v, NONE);
	dlvm_thin_store_close(s);
	dlvm_dev_close(file_open_time(dev, 777777, old));
}

static void million_in_order(void **state)
{
	(void)state;
	million(false);
}

static void million_random_order(void **state)
{
	(void)state;
	million(true);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(million_in_order),
		cmocka_unit_test(million_random_order),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
