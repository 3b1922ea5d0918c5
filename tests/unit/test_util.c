/* SPDX-License-Identifier: MIT */
/* Unit tests of lib/util: size parsing, name rules, CRC32C, size formatting. */
#include "helpers.h"

#include <pthread.h>

#include "dlvm/log.h"

static void expect_size(const char *text, uint64_t unit, uint64_t want, char want_sign)
{
	struct dlvm_err e = { 0 };
	uint64_t v = 12345;
	char sign = 'x';

	assert_ok(dlvm_parse_size(text, unit, &v, &sign, &e), &e);
	if (v != want || sign != want_sign)
		fail_msg("\"%s\": got %" PRIu64 " sign %d, want %" PRIu64 " sign %d", text, v, sign,
			 want, want_sign);
}

static void parse_size_suffixes(void **state)
{
	(void)state;
	expect_size("0", MiB, 0, 0);
	expect_size("10", MiB, 10 * MiB, 0);
	expect_size("10", 1, 10, 0);
	expect_size("7b", MiB, 7, 0);
	expect_size("7B", MiB, 7, 0);
	expect_size("3s", MiB, 3 * 512, 0);
	expect_size("3S", MiB, 3 * 512, 0);
	expect_size("1k", MiB, 1024, 0);
	expect_size("1K", MiB, 1024, 0);
	expect_size("2m", 1, 2 * MiB, 0);
	expect_size("4g", 1, 4ull << 30, 0);
	expect_size("4G", 1, 4ull << 30, 0);
	expect_size("4GiB", 1, 4ull << 30, 0);
	expect_size("4gib", 1, 4ull << 30, 0);
	expect_size("4GB", 1, 4ull << 30, 0);
	expect_size("5t", 1, 5ull << 40, 0);
	expect_size("6p", 1, 6ull << 50, 0);
	expect_size("15e", 1, 15ull << 60, 0);
	expect_size("18446744073709551615", 1, UINT64_MAX, 0);
	expect_size("18446744073709551615b", MiB, UINT64_MAX, 0);
	expect_size("007k", 1, 7 * 1024, 0);
}

static void parse_size_fractions(void **state)
{
	(void)state;
	expect_size("1.5k", 1, 1536, 0);
	expect_size("1.5g", 1, 3ull << 29, 0);
	expect_size("0.5", MiB, MiB / 2, 0);
	expect_size(".5m", 1, MiB / 2, 0);
	expect_size("2.", MiB, 2 * MiB, 0);
	expect_size("0.25t", 1, 1ull << 38, 0);
	/* fractions of a byte are cut off */
	expect_size("0.1k", 1, 102, 0);
	expect_size("1.5b", 1, 1, 0);
	expect_size("2.5s", 1, 1280, 0);
	/* digits beyond the ninth do not change the result */
	expect_size("0.5000000000001k", 1, 512, 0);
	expect_size("15.5e", 1, (15ull << 60) + (1ull << 59), 0);
}

static void parse_size_signs(void **state)
{
	struct dlvm_err e = { 0 };
	uint64_t v;
	(void)state;

	expect_size("+1g", 1, 1ull << 30, '+');
	expect_size("-512m", 1, 512 * MiB, '-');
	expect_size("+0", MiB, 0, '+');
	assert_err(dlvm_parse_size("+1g", 1, &v, NULL, &e), &e, -EINVAL,
		   "size '+1g' must not have a sign");
	assert_err(dlvm_parse_size("-1g", 1, &v, NULL, &e), &e, -EINVAL,
		   "size '-1g' must not have a sign");
	char sign;
	assert_err(dlvm_parse_size("+-1", 1, &v, &sign, &e), &e, -EINVAL,
		   "size '+-1' is not a number");
	assert_err(dlvm_parse_size("--1", 1, &v, &sign, &e), &e, -EINVAL, "is not a number");
}

static void parse_size_overflow(void **state)
{
	struct dlvm_err e = { 0 };
	uint64_t v = 77;
	(void)state;

	assert_err(dlvm_parse_size("16e", 1, &v, NULL, &e), &e, -ERANGE, "size '16e' is too large");
	assert_err(dlvm_parse_size("18446744073709551616", 1, &v, NULL, &e), &e, -ERANGE,
		   "size '18446744073709551616' is too large");
	assert_err(dlvm_parse_size("99999999999999999999999k", 1, &v, NULL, &e), &e, -ERANGE,
		   "is too large");
	assert_err(dlvm_parse_size("16384p", 1, &v, NULL, &e), &e, -ERANGE, "is too large");
	assert_err(dlvm_parse_size("17179869184g", 1, &v, NULL, &e), &e, -ERANGE, "is too large");
	assert_err(dlvm_parse_size("18446744073709551615", MiB, &v, NULL, &e), &e, -ERANGE,
		   "is too large");
	/* the whole part fits, the fraction pushes it over */
	assert_err(dlvm_parse_size("6148914691236517205.9", 3, &v, NULL, &e), &e, -ERANGE,
		   "is too large");
	expect_size("6148914691236517205", 3, UINT64_MAX, 0);
	assert_int_equal(v, 77); /* untouched on error */
}

static void parse_size_garbage(void **state)
{
	struct dlvm_err e = { 0 };
	uint64_t v = 77;
	char sign;
	(void)state;

	assert_err(dlvm_parse_size("", 1, &v, &sign, &e), &e, -EINVAL, "size is empty");
	assert_err(dlvm_parse_size(NULL, 1, &v, &sign, &e), &e, -EINVAL, "size is empty");
	assert_err(dlvm_parse_size("abc", 1, &v, &sign, &e), &e, -EINVAL,
		   "size 'abc' is not a number");
	assert_err(dlvm_parse_size("g", 1, &v, &sign, &e), &e, -EINVAL, "size 'g' is not a number");
	assert_err(dlvm_parse_size(".", 1, &v, &sign, &e), &e, -EINVAL, "size '.' is not a number");
	assert_err(dlvm_parse_size("+", 1, &v, &sign, &e), &e, -EINVAL, "size '+' is not a number");
	assert_err(dlvm_parse_size("10x", 1, &v, &sign, &e), &e, -EINVAL,
		   "size '10x' has an unknown unit 'x'");
	assert_err(dlvm_parse_size("10 g", 1, &v, &sign, &e), &e, -EINVAL,
		   "size '10 g' has an unknown unit ' '");
	assert_err(dlvm_parse_size("10gx", 1, &v, &sign, &e), &e, -EINVAL,
		   "size '10gx' has trailing characters");
	assert_err(dlvm_parse_size("10gibb", 1, &v, &sign, &e), &e, -EINVAL,
		   "has trailing characters");
	assert_err(dlvm_parse_size("1.2.3", 1, &v, &sign, &e), &e, -EINVAL,
		   "size '1.2.3' has an unknown unit '.'");
	assert_err(dlvm_parse_size("0x10", 1, &v, &sign, &e), &e, -EINVAL, "unknown unit 'x'");
	assert_err(dlvm_parse_size(" 1", 1, &v, &sign, &e), &e, -EINVAL, "is not a number");
	assert_int_equal(v, 77);
}

static void check_name_rules(void **state)
{
	struct dlvm_err e = { 0 };
	char name[200];
	(void)state;

	static const char *const good[] = { "vg0",   "a",   "A-Z_a.z+0", "lv.1",          "_x",
					    "+plus", "..a", "a..",       "my_lv-1.backup" };
	for (size_t i = 0; i < DLVM_ARRAY_SIZE(good); i++) {
		assert_ok(dlvm_check_name(good[i], "VG", &e), &e);
		assert_ok(dlvm_check_name(good[i], "LV", &e), &e);
	}
	memset(name, 'a', 127);
	name[127] = '\0';
	assert_ok(dlvm_check_name(name, "LV", &e), &e);
	name[127] = 'a';
	name[128] = '\0';
	assert_err(dlvm_check_name(name, "LV", &e), &e, -EINVAL, "is longer than 127 characters");
	assert_err(dlvm_check_name(name, "VG", &e), &e, -EINVAL, "VG name 'aaaa");

	assert_err(dlvm_check_name("", "VG", &e), &e, -EINVAL, "VG name is empty");
	assert_err(dlvm_check_name(NULL, "LV", &e), &e, -EINVAL, "LV name is empty");
	assert_err(dlvm_check_name("-lv", "LV", &e), &e, -EINVAL,
		   "LV name '-lv' must not start with '-'");
	assert_err(dlvm_check_name(".", "VG", &e), &e, -EINVAL, "VG name '.' is reserved");
	assert_err(dlvm_check_name("..", "LV", &e), &e, -EINVAL, "LV name '..' is reserved");
	assert_err(dlvm_check_name("a/b", "VG", &e), &e, -EINVAL,
		   "VG name 'a/b' contains '/': only a-z A-Z 0-9 + _ . - are allowed");
	assert_err(dlvm_check_name("a b", "LV", &e), &e, -EINVAL, "contains ' '");
	assert_err(dlvm_check_name("caf\xc3\xa9", "LV", &e), &e, -EINVAL, "contains '\xc3'");
	assert_err(dlvm_check_name("x:y", "LV", &e), &e, -EINVAL, "contains ':'");
	assert_err(dlvm_check_name("x*", "LV", &e), &e, -EINVAL, "contains '*'");

	/* LV-only reservations */
	assert_err(dlvm_check_name("snapshot1", "LV", &e), &e, -EINVAL,
		   "LV name 'snapshot1' must not start with 'snapshot'");
	assert_err(dlvm_check_name("pvmove0", "LV", &e), &e, -EINVAL,
		   "LV name 'pvmove0' must not start with 'pvmove'");
	static const char *const parts[] = { "_cdata",  "_cmeta",   "_corig",  "_mlog",
					     "_mimage", "_pmspare", "_rimage", "_rmeta",
					     "_tdata",  "_tmeta",   "_vorigin" };
	for (size_t i = 0; i < DLVM_ARRAY_SIZE(parts); i++) {
		char n[64], want[96];
		snprintf(n, sizeof(n), "lv%s_1", parts[i]);
		snprintf(want, sizeof(want), "LV name '%s' must not contain '%s'", n, parts[i]);
		assert_err(dlvm_check_name(n, "LV", &e), &e, -EINVAL, want);
		assert_ok(dlvm_check_name(n, "VG", &e), &e);
	}
	assert_ok(dlvm_check_name("snapshot1", "VG", &e), &e);
	assert_ok(dlvm_check_name("mysnapshot", "LV", &e), &e);
}

static void crc32c_vectors(void **state)
{
	(void)state;
	assert_int_equal(dlvm_crc32c("123456789", 9), 0xE3069283u);
	assert_int_equal(dlvm_crc32c("", 0), 0);
	/* RFC 3720 B.4: 32 bytes of zeros, of 0xff */
	uint8_t buf[32];
	memset(buf, 0, sizeof(buf));
	assert_int_equal(dlvm_crc32c(buf, sizeof(buf)), 0x8A9136AAu);
	memset(buf, 0xff, sizeof(buf));
	assert_int_equal(dlvm_crc32c(buf, sizeof(buf)), 0x62A8AB43u);
	/* a running CRC fed in pieces equals the CRC of the whole */
	uint32_t c = dlvm_crc32c_update(0, "1234", 4);
	c = dlvm_crc32c_update(c, "", 0);
	c = dlvm_crc32c_update(c, "56789", 5);
	assert_int_equal(c, 0xE3069283u);
}

static void format_size_units(void **state)
{
	char out[32];
	(void)state;

	dlvm_format_size(1536, 'h', out, sizeof(out));
	assert_string_equal(out, "1.50k");
	dlvm_format_size(4ull << 30, 'h', out, sizeof(out));
	assert_string_equal(out, "4.00g");
	dlvm_format_size(100, 'h', out, sizeof(out));
	assert_string_equal(out, "100b");
	dlvm_format_size(3 * MiB, 'k', out, sizeof(out));
	assert_string_equal(out, "3072.00k");
	dlvm_format_size(4096, 's', out, sizeof(out));
	assert_string_equal(out, "8s");
	dlvm_format_size(1ull << 40, 'G', out, sizeof(out));
	assert_string_equal(out, "1024.00g");
}

static void le_codec(void **state)
{
	uint8_t b[8];
	(void)state;

	dlvm_put_le64(b, 0x0102030405060708ull);
	assert_int_equal(b[0], 0x08);
	assert_int_equal(b[7], 0x01);
	assert_int_equal(dlvm_get_le64(b), 0x0102030405060708ull);
	dlvm_put_le32(b, 0xA1B2C3D4u);
	assert_int_equal(b[0], 0xD4);
	assert_int_equal(dlvm_get_le32(b), 0xA1B2C3D4u);
	dlvm_put_le16(b, 0xBEEF);
	assert_int_equal(b[0], 0xEF);
	assert_int_equal(b[1], 0xBE);
	assert_int_equal(dlvm_get_le16(b), 0xBEEF);
}

/* ---- dlvm_devs_flush ---- */

#define NFLUSH 37 /* more than one batch of threads */

struct fake_dev {
	struct dlvm_dev dev;
	int result;
	pthread_t by;
	int flushes;
};

static int fake_flush(struct dlvm_dev *d)
{
	struct fake_dev *f = (struct fake_dev *)d;
	f->by = pthread_self();
	f->flushes++;
	return f->result;
}

static const struct dlvm_dev_ops fake_ops = { .flush = fake_flush };

static void devs_flush_results(void **state)
{
	(void)state;
	struct fake_dev fd[NFLUSH];
	struct dlvm_dev *devs[NFLUSH];
	int res[NFLUSH];
	unsigned others = 0;

	for (int i = 0; i < NFLUSH; i++) {
		fd[i] = (struct fake_dev){ .dev = { .ops = &fake_ops, .fd = i % 5 ? 3 : -1 },
					   .result = i % 3 ? 0 : -(i + 1) };
		devs[i] = &fd[i].dev;
		res[i] = 12345;
	}
	dlvm_devs_flush(devs, NFLUSH, res);
	for (int i = 0; i < NFLUSH; i++) {
		assert_int_equal(fd[i].flushes, 1);
		assert_int_equal(res[i], fd[i].result);
		bool here = pthread_equal(fd[i].by, pthread_self());
		/* a device without a descriptor is flushed by the caller */
		if (fd[i].dev.fd < 0)
			assert_true(here);
		others += !here;
	}
	assert_true(others > 0);       /* the others alongside, in threads */
	dlvm_devs_flush(devs, 0, res); /* nothing to do */
}

/* Log lines: a name with a newline cannot start a line of its own; debug
 * flags go by subsystem and an unknown one changes nothing. */
struct captured {
	int n;
	enum dlvm_log_level level;
	char line[DLVM_LOG_LINE_MAX];
};

static void capture(void *arg, enum dlvm_log_level level, enum dlvm_log_sub sub, const char *line)
{
	struct captured *c = arg;

	(void)sub;
	c->n++;
	c->level = level;
	snprintf(c->line, sizeof(c->line), "%s", line);
}

static void log_escapes_and_filters(void **state)
{
	struct captured c = { 0 };
	struct dlvm_err err = { 0 };
	char buf[8];

	(void)state;
	dlvm_log_set_sink(capture, &c);
	log_info(DLVM_LOG_API, "%s: created", "vg0/a\ndlvmd: forged\x1b");
	assert_int_equal(c.n, 1);
	assert_string_equal(c.line, "vg0/a\\x0adlvmd: forged\\x1b: created");
	assert_null(strchr(c.line, '\n'));

	log_debug(DLVM_LOG_LEASE, "hidden");
	assert_int_equal(c.n, 1);
	assert_int_equal(dlvm_log_set_debug("thin,lease", &err), 0);
	log_debug(DLVM_LOG_LEASE, "shown");
	assert_int_equal(c.n, 2);
	assert_int_equal(c.level, DLVM_LOG_DEBUG);
	log_debug(DLVM_LOG_NBD, "still hidden");
	assert_int_equal(c.n, 2);
	assert_err(dlvm_log_set_debug("lease,bogus", &err), &err, -EINVAL,
		   "--debug: unknown subsystem 'bogus' (known: main, lease, thin, nbd, journal, "
		   "api, "
		   "jobs, agent, all)");
	assert_true(dlvm_log_debug_on(DLVM_LOG_LEASE)); /* unchanged by the refusal */
	assert_int_equal(dlvm_log_set_debug("", NULL), 0);
	assert_false(dlvm_log_debug_on(DLVM_LOG_LEASE));

	dlvm_log_set_level(DLVM_LOG_WARNING);
	log_info(DLVM_LOG_MAIN, "dropped");
	assert_int_equal(c.n, 2);
	log_warning(DLVM_LOG_MAIN, "kept");
	assert_int_equal(c.n, 3);
	dlvm_log_set_level(DLVM_LOG_INFO);
	dlvm_log_set_sink(NULL, NULL);

	/* a short buffer cuts before an escape, never inside it */
	assert_string_equal(dlvm_log_escape(buf, 5, "ab\ncd"), "ab");
	assert_string_equal(dlvm_log_escape(buf, sizeof(buf), "ab\ncd"), "ab\\x0ac");
	assert_string_equal(dlvm_log_escape(buf, sizeof(buf), "abcdefghij"), "abcdefg");
}

struct ring_seen {
	unsigned n;
	uint64_t seqs[8];
	char lines[8][32];
};

static void ring_collect(void *arg, const struct dlvm_log_entry *e)
{
	struct ring_seen *r = arg;

	if (r->n < 8) {
		r->seqs[r->n] = e->seq;
		snprintf(r->lines[r->n], sizeof(r->lines[0]), "%s", e->line);
	}
	r->n++;
}

static void log_ring_keeps_the_last_lines(void **state)
{
	struct dlvm_log_ring *ring = NULL;
	struct ring_seen seen = { 0 };
	enum dlvm_log_level lvl;
	char line[16];

	(void)state;
	assert_int_equal(dlvm_log_ring_new(0, &ring), -EINVAL);
	assert_int_equal(dlvm_log_ring_new(3, &ring), 0);
	assert_int_equal(dlvm_log_ring_read(ring, 0, DLVM_LOG_DEBUG, ring_collect, &seen), 0);
	assert_int_equal(seen.n, 0);

	for (unsigned i = 1; i <= 5; i++) {
		snprintf(line, sizeof(line), "line %u", i);
		assert_int_equal(dlvm_log_ring_add(ring, i == 4 ? DLVM_LOG_WARNING : DLVM_LOG_INFO,
						   DLVM_LOG_MAIN, line),
				 i);
	}
	/* full: lines 1 and 2 are gone, 3..5 come oldest first */
	assert_int_equal(dlvm_log_ring_read(ring, 0, DLVM_LOG_DEBUG, ring_collect, &seen), 5);
	assert_int_equal(seen.n, 3);
	assert_int_equal(seen.seqs[0], 3);
	assert_string_equal(seen.lines[0], "line 3");
	assert_string_equal(seen.lines[2], "line 5");

	/* since: only what came after */
	seen = (struct ring_seen){ 0 };
	assert_int_equal(dlvm_log_ring_read(ring, 4, DLVM_LOG_DEBUG, ring_collect, &seen), 5);
	assert_int_equal(seen.n, 1);
	assert_int_equal(seen.seqs[0], 5);
	seen = (struct ring_seen){ 0 };
	dlvm_log_ring_read(ring, 5, DLVM_LOG_DEBUG, ring_collect, &seen);
	assert_int_equal(seen.n, 0);

	/* level: that level or more severe */
	seen = (struct ring_seen){ 0 };
	dlvm_log_ring_read(ring, 0, DLVM_LOG_WARNING, ring_collect, &seen);
	assert_int_equal(seen.n, 1);
	assert_string_equal(seen.lines[0], "line 4");
	dlvm_log_ring_free(ring);

	assert_int_equal(dlvm_log_level_parse("warning", &lvl), 0);
	assert_int_equal(lvl, DLVM_LOG_WARNING);
	assert_int_equal(dlvm_log_level_parse("debug", &lvl), 0);
	assert_int_equal(lvl, DLVM_LOG_DEBUG);
	assert_int_equal(dlvm_log_level_parse("WARNING", &lvl), -EINVAL);
	assert_int_equal(dlvm_log_level_parse("", &lvl), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parse_size_suffixes),
		cmocka_unit_test(parse_size_fractions),
		cmocka_unit_test(parse_size_signs),
		cmocka_unit_test(parse_size_overflow),
		cmocka_unit_test(parse_size_garbage),
		cmocka_unit_test(check_name_rules),
		cmocka_unit_test(crc32c_vectors),
		cmocka_unit_test(format_size_units),
		cmocka_unit_test(le_codec),
		cmocka_unit_test(devs_flush_results),
		cmocka_unit_test(log_escapes_and_filters),
		cmocka_unit_test(log_ring_keeps_the_last_lines),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
