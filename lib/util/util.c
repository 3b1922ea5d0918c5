/* SPDX-License-Identifier: MIT */
#include "dlvm/util.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <isa-l/crc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uuid/uuid.h>

uint32_t dlvm_crc32c_update(uint32_t crc, const void *buf, size_t len)
{
	return ~crc32_iscsi((unsigned char *)buf, (int)len, ~crc);
}

uint32_t dlvm_crc32c(const void *buf, size_t len)
{
	/* isa-l takes an int length: feed huge buffers in pieces. */
	const uint8_t *p = buf;
	uint32_t crc = 0;

	while (len > (1u << 30)) {
		crc = dlvm_crc32c_update(crc, p, 1u << 30);
		p += 1u << 30;
		len -= 1u << 30;
	}
	return dlvm_crc32c_update(crc, p, len);
}

void dlvm_uuid_generate(uint8_t uuid[16])
{
	uuid_generate_random(uuid);
}

void dlvm_uuid_unparse(const uint8_t uuid[16], char out[DLVM_UUID_STR])
{
	uuid_unparse_lower(uuid, out);
}

bool dlvm_uuid_is_zero(const uint8_t uuid[16])
{
	for (int i = 0; i < 16; i++)
		if (uuid[i])
			return false;
	return true;
}

static int unit_shift(char c, uint64_t *mult)
{
	switch (tolower((unsigned char)c)) {
	case 'b': *mult = 1; return 0;
	case 's': *mult = 512; return 0;
	case 'k': *mult = 1ull << 10; return 0;
	case 'm': *mult = 1ull << 20; return 0;
	case 'g': *mult = 1ull << 30; return 0;
	case 't': *mult = 1ull << 40; return 0;
	case 'p': *mult = 1ull << 50; return 0;
	case 'e': *mult = 1ull << 60; return 0;
	default: return -EINVAL;
	}
}

int dlvm_parse_size(const char *text, uint64_t default_unit, uint64_t *bytes, char *sign,
		    struct dlvm_err *err)
{
	const char *p = text;
	uint64_t whole = 0, mult = default_unit, frac_num = 0, frac_den = 1;
	bool digits = false;

	if (!text || !*text)
		return dlvm_err_set(err, -EINVAL, "size is empty");
	if (sign)
		*sign = 0;
	if (*p == '+' || *p == '-') {
		if (!sign)
			return dlvm_err_set(err, -EINVAL, "size '%s' must not have a sign", text);
		*sign = *p++;
	}
	for (; isdigit((unsigned char)*p); p++) {
		digits = true;
		if (dlvm_mul_overflow(whole, 10, &whole) ||
		    dlvm_add_overflow(whole, (uint64_t)(*p - '0'), &whole))
			return dlvm_err_set(err, -ERANGE, "size '%s' is too large", text);
	}
	if (*p == '.') {
		p++;
		for (; isdigit((unsigned char)*p); p++) {
			digits = true;
			if (frac_den < 1000000000ull) {
				frac_num = frac_num * 10 + (uint64_t)(*p - '0');
				frac_den *= 10;
			}
		}
	}
	if (!digits)
		return dlvm_err_set(err, -EINVAL, "size '%s' is not a number", text);
	if (*p) {
		if (unit_shift(*p, &mult) < 0)
			return dlvm_err_set(err, -EINVAL,
					    "size '%s' has an unknown unit '%c' "
					    "(use b, s, k, m, g, t, p or e)",
					    text, *p);
		p++;
		/* Accept "GiB"/"GB"/"g" spellings the way people type them. */
		if (*p == 'i' || *p == 'I')
			p++;
		if (*p == 'b' || *p == 'B')
			p++;
		if (*p)
			return dlvm_err_set(err, -EINVAL, "size '%s' has trailing characters",
					    text);
	}
	uint64_t v;
	if (dlvm_mul_overflow(whole, mult, &v))
		return dlvm_err_set(err, -ERANGE, "size '%s' is too large", text);
	if (frac_num) {
		/* mult / frac_den first keeps this from overflowing for big units */
		long double f = (long double)frac_num / (long double)frac_den * (long double)mult;
		if (f > (long double)UINT64_MAX || dlvm_add_overflow(v, (uint64_t)f, &v))
			return dlvm_err_set(err, -ERANGE, "size '%s' is too large", text);
	}
	*bytes = v;
	return 0;
}

void dlvm_format_size(uint64_t bytes, char unit, char *out, size_t outlen)
{
	static const char units[] = "bkmgtpe";
	char u = (char)tolower((unsigned char)unit);
	const char *pos;
	int shift;

	if (u == 'h' || !u) {
		shift = 0;
		while (shift < 60 && bytes >= (1ull << (shift + 10)))
			shift += 10;
		u = units[shift / 10];
	} else if (u == 's') {
		snprintf(out, outlen, "%" PRIu64 "s", bytes / 512);
		return;
	} else if ((pos = strchr(units, u))) {
		shift = (int)(pos - units) * 10;
	} else {
		shift = 0;
		u = 'b';
	}
	if (u == 'b')
		snprintf(out, outlen, "%" PRIu64 "b", bytes);
	else
		snprintf(out, outlen, "%.2f%c", (double)bytes / (double)(1ull << shift), u);
}

int dlvm_check_name(const char *name, const char *what, struct dlvm_err *err)
{
	size_t len;

	if (!name || !*name)
		return dlvm_err_set(err, -EINVAL, "%s name is empty", what);
	len = strlen(name);
	if (len > 127)
		return dlvm_err_set(err, -EINVAL,
				    "%s name '%.20s...' is longer than 127 characters", what, name);
	if (name[0] == '-')
		return dlvm_err_set(err, -EINVAL, "%s name '%s' must not start with '-'", what,
				    name);
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return dlvm_err_set(err, -EINVAL, "%s name '%s' is reserved", what, name);
	for (const char *p = name; *p; p++) {
		if (!isalnum((unsigned char)*p) && !strchr("+_.-", *p))
			return dlvm_err_set(err, -EINVAL,
					    "%s name '%s' contains '%c': only a-z A-Z 0-9 + _ . - "
					    "are allowed",
					    what, name, *p);
	}
	if (!strcmp(what, "LV")) {
		static const char *const bad_prefix[] = { "snapshot", "pvmove" };
		static const char *const bad_part[] = { "_cdata",  "_cmeta",   "_corig",  "_mlog",
							"_mimage", "_pmspare", "_rimage", "_rmeta",
							"_tdata",  "_tmeta",   "_vorigin" };
		for (size_t i = 0; i < DLVM_ARRAY_SIZE(bad_prefix); i++)
			if (!strncmp(name, bad_prefix[i], strlen(bad_prefix[i])))
				return dlvm_err_set(err, -EINVAL,
						    "LV name '%s' must not start with '%s'", name,
						    bad_prefix[i]);
		for (size_t i = 0; i < DLVM_ARRAY_SIZE(bad_part); i++)
			if (strstr(name, bad_part[i]))
				return dlvm_err_set(err, -EINVAL,
						    "LV name '%s' must not contain '%s'", name,
						    bad_part[i]);
	}
	return 0;
}

struct timespec dlvm_mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts;
}

uint64_t dlvm_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_BOOTTIME, &ts);

	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t dlvm_now_ms(void)
{
	return dlvm_now_ns() / 1000000u;
}

struct timespec dlvm_mono_until(uint64_t until_ns)
{
	struct timespec t = dlvm_mono_now();
	uint64_t now = dlvm_now_ns(), left = until_ns > now ? until_ns - now : 0;
	uint64_t ns = (uint64_t)t.tv_nsec + left % 1000000000u;

	t.tv_sec += (time_t)(left / 1000000000u + ns / 1000000000u);
	t.tv_nsec = (long)(ns % 1000000000u);
	return t;
}

struct timespec dlvm_timespec_add_ms(struct timespec t, uint64_t ms)
{
	uint64_t ns = (uint64_t)t.tv_nsec + (ms % 1000u) * 1000000u;

	t.tv_sec += (time_t)(ms / 1000u + ns / 1000000000u);
	t.tv_nsec = (long)(ns % 1000000000u);
	return t;
}
