/* SPDX-License-Identifier: MIT */
/* Argument helpers of the LV commands: PV lists, sizes, stripes, -a values. */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dlvm/lease.h"
#include "dlvm/log.h"
#include "dlvm/map.h"
#include "dlvm/thinpool.h"
#include "dlvm/util.h"
#include "lib/ctx/ctx.h"
#include "lib/lvops/lvops.h"

/* PV arguments (paths) after `from` restrict allocation to those PVs. */
int pv_filter(struct dlvm_ctx *ctx, struct dlvm_vg *vg, json_t *args, size_t from, uint32_t **ids,
	      size_t *n, struct dlvm_err *err)
{
	size_t cnt = json_array_size(args) > from ? json_array_size(args) - from : 0;
	int r;

	*ids = NULL;
	*n = 0;
	if (!cnt)
		return 0;
	*ids = calloc(cnt, sizeof(**ids));
	if (!*ids)
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	for (size_t i = 0; i < cnt; i++) {
		struct dlvm_dev *dev;
		struct dlvm_vg *owner;
		struct dlvm_pv *pv;
		if ((r = ctx_device(ctx, arg_str(args, from + i), false, &dev, &owner, &pv, err)) ||
		    owner != vg) {
			free(*ids);
			*ids = NULL;
			return r ? r
				 : dlvm_err_set(err, -EINVAL, "%s: not a PV of volume group \"%s\"",
						arg_str(args, from + i), vg->info.name);
		}
		(*ids)[i] = pv->d.id;
	}
	*n = cnt;
	return 0;
}

/*
 * Work out the new size in extents from -L/-l. cur is the current size
 * (0 for a new LV); sign_ok allows +/-. Returns the target extent count.
 */
int target_extents(const struct dlvm_vg *vg, json_t *opts, uint64_t cur, bool sign_ok,
		   uint16_t stripes, uint64_t *out, struct dlvm_err *err)
{
	const char *L = opt_str(opts, "size"), *l = opt_str(opts, "extents");
	uint64_t es = vg->info.extent_size, n = 0;
	char sign = 0;
	int r;

	if (L && l)
		return dlvm_err_set(err, -EINVAL,
				    "give either -L/--size or -l/--extents, not both");
	if (!L && !l)
		return dlvm_err_set(err, -EINVAL, "give a size with -L SIZE or -l EXTENTS");
	if (L) {
		uint64_t bytes;
		if ((r = dlvm_parse_size(L, 1 << 20, &bytes, sign_ok ? &sign : NULL, err)))
			return dlvm_err_prefix(err, r, "-L: ");
		n = bytes / es + (bytes % es != 0);
	} else {
		const char *p = l;
		if (sign_ok && (*p == '+' || *p == '-'))
			sign = *p++;
		char *end;
		if (!isdigit((unsigned char)*p))
			return dlvm_err_set(err, -EINVAL, "-l %s: not a number of extents", l);
		errno = 0;
		unsigned long long v = strtoull(p, &end, 10);
		if (errno)
			return dlvm_err_set(err, -ERANGE, "-l %s: too large", l);
		if (*end == '%') {
			uint64_t base;
			if (!strcmp(end, "%VG"))
				base = dlvm_vg_total_extents(vg);
			else if (!strcmp(end, "%FREE"))
				base = dlvm_vg_free_extents(vg);
			else
				return dlvm_err_set(err, -EINVAL, "-l %s: use N%%VG or N%%FREE", l);
			if (v > 100)
				return dlvm_err_set(err, -EINVAL, "-l %s: more than 100%%", l);
			n = base * v / 100;
		} else if (*end) {
			return dlvm_err_set(err, -EINVAL, "-l %s: not a number of extents", l);
		} else {
			n = v;
		}
	}
	uint64_t t = n;
	if (sign == '+' && dlvm_add_overflow(cur, n, &t))
		return dlvm_err_set(err, -ERANGE, "size overflows");
	if (sign == '-') {
		if (n >= cur)
			return dlvm_err_set(err, -EINVAL,
					    "cannot reduce by %" PRIu64 " extents: the LV "
					    "has %" PRIu64,
					    n, cur);
		t = cur - n;
	}
	if (stripes > 1 && t % stripes) {
		t += stripes - t % stripes;
	}
	uint64_t bytes;
	if (dlvm_mul_overflow(t, es, &bytes) || bytes > (1ull << 62))
		return dlvm_err_set(err, -ERANGE, "size of %" PRIu64 " extents is too large", t);
	*out = t;
	return 0;
}

int parse_stripes(json_t *opts, const struct dlvm_vg *vg, uint16_t *stripes, uint32_t *ssize,
		  struct dlvm_err *err)
{
	const char *i = opt_str(opts, "stripes"), *I = opt_str(opts, "stripesize");
	int r;

	*stripes = 1;
	*ssize = 0;
	if (i) {
		char *end;
		unsigned long v = strtoul(i, &end, 10);
		if (!*i || *end || v < 1 || v > DLVM_MAX_STRIPES)
			return dlvm_err_set(err, -EINVAL, "-i %s: stripes must be 1 to %d", i,
					    DLVM_MAX_STRIPES);
		*stripes = (uint16_t)v;
	}
	if (I) {
		uint64_t v;
		if ((r = dlvm_parse_size(I, 1 << 10, &v, NULL, err)))
			return dlvm_err_prefix(err, r, "-I: ");
		if (!dlvm_is_pow2(v) || v < 4096 || v > vg->info.extent_size)
			return dlvm_err_set(err, -EINVAL,
					    "-I %s: stripe size must be a power of two "
					    "from 4k to the extent size",
					    I);
		*ssize = (uint32_t)v;
	}
	if (*stripes > 1 && !*ssize)
		*ssize = (uint32_t)DLVM_MIN((uint64_t)DEFAULT_STRIPE_SIZE, vg->info.extent_size);
	return 0;
}

/* -a VALUE: y, ey, ay (exclusive in a shared VG), sy (shared), n. */
int parse_activate(const char *cmd, const char *a, bool *on, enum dlvm_hold_mode *mode,
		   struct dlvm_err *err)
{
	*mode = DLVM_HOLD_EXCLUSIVE;
	*on = true;
	if (!a || !strcmp(a, "y") || !strcmp(a, "ey") || !strcmp(a, "ay"))
		return 0;
	if (!strcmp(a, "sy")) {
		*mode = DLVM_HOLD_SHARED;
		return 0;
	}
	*on = false;
	if (!strcmp(a, "n"))
		return 0;
	return dlvm_err_set(err, -EINVAL, "%s: -a takes y, ey, sy or n, not \"%s\"", cmd, a);
}
