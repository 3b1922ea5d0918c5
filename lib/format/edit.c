/* SPDX-License-Identifier: MIT */
/* Codec of metadata edits: the TLV stream inside journal records and
 * checkpoints. Each edit: u16 type, u16 flags, u32 length, payload
 * (docs/format/journal.md). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "dlvm/format.h"
#include "dlvm/util.h"

#define EDIT_HDR 8u

int dlvm_buf_reserve(struct dlvm_buf *b, size_t more)
{
	if (b->len + more <= b->cap)
		return 0;
	size_t ncap = b->cap ? b->cap : 256;
	while (ncap < b->len + more)
		ncap *= 2;
	uint8_t *p = realloc(b->data, ncap);
	if (!p)
		return -ENOMEM;
	b->data = p;
	b->cap = ncap;
	return 0;
}

void dlvm_buf_release(struct dlvm_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

size_t dlvm_seg_desc_size(uint16_t stripes)
{
	return sizeof(struct dlvm_seg_desc) + (size_t)stripes * sizeof(struct dlvm_area);
}

/* ---- writer ---- */
struct wr {
	struct dlvm_buf *b;
	int err;
};

static void w_bytes(struct wr *w, const void *p, size_t n)
{
	if (w->err || (w->err = dlvm_buf_reserve(w->b, n)))
		return;
	memcpy(w->b->data + w->b->len, p, n);
	w->b->len += n;
}
static void w16(struct wr *w, uint16_t v)
{
	uint8_t t[2];
	dlvm_put_le16(t, v);
	w_bytes(w, t, 2);
}
static void w32(struct wr *w, uint32_t v)
{
	uint8_t t[4];
	dlvm_put_le32(t, v);
	w_bytes(w, t, 4);
}
static void w64(struct wr *w, uint64_t v)
{
	uint8_t t[8];
	dlvm_put_le64(t, v);
	w_bytes(w, t, 8);
}
static void wstr(struct wr *w, const char *s)
{
	size_t n = strnlen(s, DLVM_NAME_MAX);
	w16(w, (uint16_t)n);
	w_bytes(w, s, n);
}

static void w_segs(struct wr *w, uint32_t nseg, struct dlvm_seg_desc *const *segs)
{
	w32(w, nseg);
	for (uint32_t i = 0; i < nseg; i++) {
		const struct dlvm_seg_desc *s = segs[i];
		w64(w, s->le_start);
		w64(w, s->le_count);
		w16(w, s->type);
		w16(w, s->stripes);
		w32(w, s->stripe_size);
		for (uint16_t k = 0; k < s->stripes; k++) {
			w32(w, s->area[k].pv_id);
			w32(w, 0);
			w64(w, s->area[k].pe_start);
		}
	}
}

static void w_prop(struct wr *w, const struct dlvm_edit *e)
{
	size_t kn = strnlen(e->u.prop.key, DLVM_PROP_KEY_MAX);
	size_t vn = e->u.prop.value ? strnlen(e->u.prop.value, DLVM_PROP_VALUE_MAX) : 0;

	w64(w, e->u.prop.id);
	w32(w, e->u.prop.flags);
	w16(w, (uint16_t)kn);
	w_bytes(w, e->u.prop.key, kn);
	w32(w, (uint32_t)vn);
	w_bytes(w, e->u.prop.value ? e->u.prop.value : "", vn);
}

int dlvm_edit_encode(const struct dlvm_edit *e, struct dlvm_buf *out)
{
	struct wr w = { .b = out };
	size_t start = out->len;

	w16(&w, e->type);
	w16(&w, e->flags);
	w32(&w, 0); /* length, patched below */
	switch (e->type) {
	case DLVM_EDIT_VG_INFO:
		wstr(&w, e->u.vg.name);
		w_bytes(&w, e->u.vg.uuid, 16);
		w64(&w, e->u.vg.extent_size);
		w64(&w, e->u.vg.flags);
		w64(&w, e->u.vg.compat);
		w64(&w, e->u.vg.ro_compat);
		w64(&w, e->u.vg.incompat);
		w64(&w, e->u.vg.ctime);
		w64(&w, e->u.vg.next_lv_id);
		w32(&w, e->u.vg.next_pv_id);
		w32(&w, e->u.vg.max_lv);
		break;
	case DLVM_EDIT_PV_ADD:
		w32(&w, e->u.pv.id);
		w_bytes(&w, e->u.pv.uuid, 16);
		w64(&w, e->u.pv.pe_start);
		w64(&w, e->u.pv.pe_count);
		w64(&w, e->u.pv.dev_size);
		w32(&w, e->u.pv.sector_size);
		w64(&w, e->u.pv.flags);
		break;
	case DLVM_EDIT_PV_REMOVE: w32(&w, e->u.pv_id); break;
	case DLVM_EDIT_LV_CREATE:
		w64(&w, e->u.lv.id);
		w_bytes(&w, e->u.lv.uuid, 16);
		wstr(&w, e->u.lv.name);
		w64(&w, e->u.lv.flags);
		w64(&w, e->u.lv.ctime);
		w_segs(&w, e->u.lv.nseg, e->u.lv.segs);
		break;
	case DLVM_EDIT_LV_REMOVE: w64(&w, e->u.lv.id); break;
	case DLVM_EDIT_LV_RENAME:
		w64(&w, e->u.lv.id);
		wstr(&w, e->u.lv.name);
		break;
	case DLVM_EDIT_LV_SET_FLAGS:
		w64(&w, e->u.lv.id);
		w64(&w, e->u.lv.flags);
		break;
	case DLVM_EDIT_LV_SET_SEGMENTS:
		w64(&w, e->u.lv.id);
		w_segs(&w, e->u.lv.nseg, e->u.lv.segs);
		break;
	case DLVM_EDIT_LV_SET_THIN:
		w64(&w, e->u.lv.id);
		w64(&w, e->u.lv.thin.pool_id);
		w64(&w, e->u.lv.thin.origin_id);
		w64(&w, e->u.lv.thin.virtual_size);
		w64(&w, e->u.lv.thin.meta_id);
		w32(&w, e->u.lv.thin.chunk_size);
		w32(&w, e->u.lv.thin.slab_extents);
		break;
	case DLVM_EDIT_LV_SET_COPY_RATE:
		w64(&w, e->u.lv.id);
		w64(&w, e->u.lv.copy_rate);
		break;
	case DLVM_EDIT_LV_SET_HOLDERS:
		w64(&w, e->u.lv.id);
		w32(&w, e->u.lv.nholders);
		for (uint32_t i = 0; i < e->u.lv.nholders; i++) {
			w32(&w, e->u.lv.holders[i].host_id);
			w32(&w, e->u.lv.holders[i].mode);
			w64(&w, e->u.lv.holders[i].generation);
		}
		break;
	case DLVM_EDIT_PROPERTY_SET: w_prop(&w, e); break;
	default: w_bytes(&w, e->u.raw.data, e->u.raw.len); break;
	}
	if (w.err) {
		out->len = start;
		return w.err;
	}
	dlvm_put_le32(out->data + start + 4, (uint32_t)(out->len - start - EDIT_HDR));
	return 0;
}

/* ---- reader ---- */
struct rd {
	const uint8_t *p;
	size_t len, pos;
	const char *field; /* first field that ran short */
};

static bool r_need(struct rd *r, size_t n, const char *field)
{
	if (r->field)
		return false;
	if (n > r->len - r->pos) {
		r->field = field;
		return false;
	}
	return true;
}
static uint16_t r16(struct rd *r, const char *f)
{
	if (!r_need(r, 2, f))
		return 0;
	r->pos += 2;
	return dlvm_get_le16(r->p + r->pos - 2);
}
static uint32_t r32(struct rd *r, const char *f)
{
	if (!r_need(r, 4, f))
		return 0;
	r->pos += 4;
	return dlvm_get_le32(r->p + r->pos - 4);
}
static uint64_t r64(struct rd *r, const char *f)
{
	if (!r_need(r, 8, f))
		return 0;
	r->pos += 8;
	return dlvm_get_le64(r->p + r->pos - 8);
}
static void r_bytes(struct rd *r, void *out, size_t n, const char *f)
{
	if (!r_need(r, n, f))
		return;
	memcpy(out, r->p + r->pos, n);
	r->pos += n;
}
static int rstr(struct rd *r, char *out, const char *f, struct dlvm_err *err)
{
	uint16_t n = r16(r, f);
	if (n > DLVM_NAME_MAX)
		return dlvm_err_set(err, -EBADMSG, "field %s: length %u exceeds %u", f, n,
				    DLVM_NAME_MAX);
	r_bytes(r, out, n, f);
	out[r->field ? 0 : n] = '\0';
	if (!r->field && memchr(out, '\0', n))
		return dlvm_err_set(err, -EBADMSG, "field %s contains a NUL byte", f);
	return 0;
}

static int r_segs(struct rd *r, uint32_t *nseg_out, struct dlvm_seg_desc ***segs_out,
		  struct dlvm_err *err)
{
	uint32_t nseg = r32(r, "nseg");
	struct dlvm_seg_desc **segs = NULL;
	uint32_t i;

	*nseg_out = 0;
	*segs_out = NULL;
	if (r->field)
		return 0;
	/* each segment takes at least 24 bytes: bound nseg by what is left */
	if ((uint64_t)nseg * 24 > r->len - r->pos)
		return dlvm_err_set(err, -EBADMSG, "field nseg %u exceeds the edit length", nseg);
	segs = calloc(nseg ? nseg : 1, sizeof(*segs));
	if (!segs)
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	for (i = 0; i < nseg; i++) {
		uint64_t le_start = r64(r, "le_start"), le_count = r64(r, "le_count");
		uint16_t type = r16(r, "seg_type"), stripes = r16(r, "stripes");
		uint32_t ssize = r32(r, "stripe_size");
		if (r->field)
			break;
		if (type != DLVM_SEG_LINEAR && type != DLVM_SEG_STRIPED) {
			dlvm_err_set(err, -ENOTSUP, "segment %u: unknown type %u", i, type);
			goto fail;
		}
		if (stripes == 0 || stripes > DLVM_MAX_STRIPES ||
		    (type == DLVM_SEG_LINEAR && stripes != 1)) {
			dlvm_err_set(err, -EBADMSG, "segment %u: field stripes is %u", i, stripes);
			goto fail;
		}
		if (type == DLVM_SEG_STRIPED && (!dlvm_is_pow2(ssize) || ssize < 4096)) {
			dlvm_err_set(err, -EBADMSG,
				     "segment %u: field stripe_size %u is not a "
				     "power of two >= 4096",
				     i, ssize);
			goto fail;
		}
		if (le_count == 0 || le_count % stripes) {
			dlvm_err_set(err, -EBADMSG,
				     "segment %u: field le_count %" PRIu64 " is zero "
				     "or not a multiple of %u stripes",
				     i, le_count, stripes);
			goto fail;
		}
		struct dlvm_seg_desc *s = calloc(1, dlvm_seg_desc_size(stripes));
		if (!s) {
			dlvm_err_set(err, -ENOMEM, "out of memory");
			goto fail;
		}
		segs[i] = s;
		s->le_start = le_start;
		s->le_count = le_count;
		s->type = type;
		s->stripes = stripes;
		s->stripe_size = ssize;
		for (uint16_t k = 0; k < stripes; k++) {
			s->area[k].pv_id = r32(r, "area pv_id");
			(void)r32(r, "area padding");
			s->area[k].pe_start = r64(r, "area pe_start");
		}
	}
	*nseg_out = nseg;
	*segs_out = segs;
	return 0;
fail:
	dlvm_segs_free(segs, nseg);
	return err ? err->code : -EBADMSG;
}

void dlvm_segs_free(struct dlvm_seg_desc **segs, uint32_t n)
{
	if (!segs)
		return;
	for (uint32_t i = 0; i < n; i++)
		free(segs[i]);
	free(segs);
}

int dlvm_segs_dup(struct dlvm_seg_desc *const *segs, uint32_t n, struct dlvm_seg_desc ***out)
{
	struct dlvm_seg_desc **c = calloc(n ? n : 1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		size_t sz = dlvm_seg_desc_size(segs[i]->stripes);
		c[i] = malloc(sz);
		if (!c[i]) {
			dlvm_segs_free(c, i);
			return -ENOMEM;
		}
		memcpy(c[i], segs[i], sz);
	}
	*out = c;
	return 0;
}

void dlvm_edit_release(struct dlvm_edit *e)
{
	if (e->type == DLVM_EDIT_LV_CREATE || e->type == DLVM_EDIT_LV_SET_SEGMENTS)
		dlvm_segs_free(e->u.lv.segs, e->u.lv.nseg);
	if (e->type == DLVM_EDIT_LV_SET_HOLDERS)
		free(e->u.lv.holders);
	if (e->type == DLVM_EDIT_PROPERTY_SET)
		free(e->u.prop.value);
	memset(e, 0, sizeof(*e));
}

static int decode_vg_info(struct rd *r, struct dlvm_edit *e, struct dlvm_err *err)
{
	int ret = rstr(r, e->u.vg.name, "vg name", err);

	r_bytes(r, e->u.vg.uuid, 16, "vg uuid");
	e->u.vg.extent_size = r64(r, "extent_size");
	e->u.vg.flags = r64(r, "vg flags");
	e->u.vg.compat = r64(r, "compat");
	e->u.vg.ro_compat = r64(r, "ro_compat");
	e->u.vg.incompat = r64(r, "incompat");
	e->u.vg.ctime = r64(r, "ctime");
	e->u.vg.next_lv_id = r64(r, "next_lv_id");
	e->u.vg.next_pv_id = r32(r, "next_pv_id");
	e->u.vg.max_lv = r32(r, "max_lv");
	return ret;
}

static void decode_pv_add(struct rd *r, struct dlvm_edit *e)
{
	e->u.pv.id = r32(r, "pv id");
	r_bytes(r, e->u.pv.uuid, 16, "pv uuid");
	e->u.pv.pe_start = r64(r, "pe_start");
	e->u.pv.pe_count = r64(r, "pe_count");
	e->u.pv.dev_size = r64(r, "dev_size");
	e->u.pv.sector_size = r32(r, "sector_size");
	e->u.pv.flags = r64(r, "pv flags");
}

static int decode_lv_create(struct rd *r, struct dlvm_edit *e, struct dlvm_err *err)
{
	int ret;

	e->u.lv.id = r64(r, "lv id");
	r_bytes(r, e->u.lv.uuid, 16, "lv uuid");
	ret = rstr(r, e->u.lv.name, "lv name", err);
	e->u.lv.flags = r64(r, "lv flags");
	e->u.lv.ctime = r64(r, "ctime");
	if (!ret)
		ret = r_segs(r, &e->u.lv.nseg, &e->u.lv.segs, err);
	return ret;
}

static void decode_lv_thin(struct rd *r, struct dlvm_edit *e)
{
	e->u.lv.id = r64(r, "lv id");
	e->u.lv.thin.pool_id = r64(r, "pool id");
	e->u.lv.thin.origin_id = r64(r, "origin id");
	e->u.lv.thin.virtual_size = r64(r, "virtual size");
	e->u.lv.thin.meta_id = r64(r, "meta id");
	e->u.lv.thin.chunk_size = r32(r, "chunk size");
	e->u.lv.thin.slab_extents = r32(r, "slab extents");
}

/* LV_SET_HOLDERS of the edit at byte pos: at most DLVM_MAX_HOLDERS. */
static int decode_holders(struct rd *r, struct dlvm_edit *e, size_t pos, struct dlvm_err *err)
{
	e->u.lv.id = r64(r, "lv id");
	e->u.lv.nholders = r32(r, "holder count");
	if (r->field)
		return 0;
	if (e->u.lv.nholders > DLVM_MAX_HOLDERS)
		return dlvm_err_set(err, -EBADMSG,
				    "edit LV_SET_HOLDERS at byte %zu: holder count "
				    "%u is above %u",
				    pos, e->u.lv.nholders, DLVM_MAX_HOLDERS);
	if (!r_need(r, (size_t)e->u.lv.nholders * 16, "holders"))
		return 0;
	if (e->u.lv.nholders &&
	    !(e->u.lv.holders = calloc(e->u.lv.nholders, sizeof(*e->u.lv.holders))))
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	for (uint32_t i = 0; i < e->u.lv.nholders; i++) {
		e->u.lv.holders[i].host_id = r32(r, "holder host id");
		e->u.lv.holders[i].mode = r32(r, "holder mode");
		e->u.lv.holders[i].generation = r64(r, "holder generation");
	}
	return 0;
}

static bool prop_key_byte(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       strchr("_.:+/@%#-", c);
}

int dlvm_prop_check(const char *key, size_t klen, const char *value, size_t vlen,
		    struct dlvm_err *err)
{
	if (klen == 0 || klen > DLVM_PROP_KEY_MAX)
		return dlvm_err_set(err, -EINVAL, "property key length %zu is not 1 to %u", klen,
				    DLVM_PROP_KEY_MAX);
	for (size_t i = 0; i < klen; i++)
		if (!key[i] || !prop_key_byte((unsigned char)key[i]))
			return dlvm_err_set(err, -EINVAL,
					    "property key \"%.*s\": byte %zu (0x%02x) is not one "
					    "of A-Z a-z 0-9 _ . : + / @ %% # -",
					    (int)klen, key, i, (unsigned char)key[i]);
	if (vlen > DLVM_PROP_VALUE_MAX)
		return dlvm_err_set(err, -EINVAL,
				    "property %.*s: value of %zu bytes is longer than %u",
				    (int)klen, key, vlen, DLVM_PROP_VALUE_MAX);
	if (value && memchr(value, '\0', vlen))
		return dlvm_err_set(err, -EINVAL, "property %.*s: value contains a NUL byte",
				    (int)klen, key);
	return 0;
}

/* PROPERTY_SET: the key and the value bounded and checked before they are
 * copied; a delete carries no value, and no flag but DLVM_PROP_DELETE. */
static int decode_prop(struct rd *r, struct dlvm_edit *e, size_t pos, struct dlvm_err *err)
{
	e->u.prop.id = r64(r, "object id");
	e->u.prop.flags = r32(r, "property flags");
	uint16_t kn = r16(r, "key length");
	if (r->field)
		return 0;
	if (kn == 0 || kn > DLVM_PROP_KEY_MAX)
		return dlvm_err_set(err, -EBADMSG,
				    "edit PROPERTY_SET at byte %zu: key length %u is not 1 to %u",
				    pos, kn, DLVM_PROP_KEY_MAX);
	r_bytes(r, e->u.prop.key, kn, "key");
	uint32_t vn = r32(r, "value length");
	if (r->field)
		return 0;
	e->u.prop.key[kn] = '\0';
	if (e->u.prop.flags & ~DLVM_PROP_DELETE)
		return dlvm_err_set(err, -EBADMSG,
				    "edit PROPERTY_SET at byte %zu: unknown flags 0x%x", pos,
				    e->u.prop.flags & ~DLVM_PROP_DELETE);
	if (vn > DLVM_PROP_VALUE_MAX || ((e->u.prop.flags & DLVM_PROP_DELETE) && vn))
		return dlvm_err_set(err, -EBADMSG,
				    "edit PROPERTY_SET at byte %zu: value length %u is above %u "
				    "or given with a delete",
				    pos, vn, DLVM_PROP_VALUE_MAX);
	if (!r_need(r, vn, "value"))
		return 0;
	const char *v = (const char *)r->p + r->pos;
	struct dlvm_err pe = { 0 };
	if (dlvm_prop_check(e->u.prop.key, kn, v, vn, &pe))
		return dlvm_err_set(err, -EBADMSG, "edit PROPERTY_SET at byte %zu: %s", pos,
				    pe.msg);
	if (!(e->u.prop.flags & DLVM_PROP_DELETE)) {
		if (!(e->u.prop.value = malloc((size_t)vn + 1)))
			return dlvm_err_set(err, -ENOMEM, "out of memory");
		memcpy(e->u.prop.value, v, vn);
		e->u.prop.value[vn] = '\0';
	}
	r->pos += vn;
	return 0;
}

int dlvm_edit_decode(const uint8_t *buf, size_t len, size_t *pos, struct dlvm_edit *e,
		     struct dlvm_err *err)
{
	struct rd r;
	int ret = 0;

	memset(e, 0, sizeof(*e));
	if (len - *pos < EDIT_HDR)
		return dlvm_err_set(err, -EBADMSG, "edit at byte %zu: truncated header", *pos);
	e->type = dlvm_get_le16(buf + *pos);
	e->flags = dlvm_get_le16(buf + *pos + 2);
	uint32_t elen = dlvm_get_le32(buf + *pos + 4);
	if (elen > len - *pos - EDIT_HDR)
		return dlvm_err_set(err, -EBADMSG, "edit at byte %zu: length %u runs past the end",
				    *pos, elen);
	r = (struct rd){ .p = buf + *pos + EDIT_HDR, .len = elen };

	switch (e->type) {
	case DLVM_EDIT_VG_INFO: ret = decode_vg_info(&r, e, err); break;
	case DLVM_EDIT_PV_ADD: decode_pv_add(&r, e); break;
	case DLVM_EDIT_PV_REMOVE: e->u.pv_id = r32(&r, "pv id"); break;
	case DLVM_EDIT_LV_CREATE: ret = decode_lv_create(&r, e, err); break;
	case DLVM_EDIT_LV_REMOVE: e->u.lv.id = r64(&r, "lv id"); break;
	case DLVM_EDIT_LV_RENAME:
		e->u.lv.id = r64(&r, "lv id");
		ret = rstr(&r, e->u.lv.name, "lv name", err);
		break;
	case DLVM_EDIT_LV_SET_FLAGS:
		e->u.lv.id = r64(&r, "lv id");
		e->u.lv.flags = r64(&r, "lv flags");
		break;
	case DLVM_EDIT_LV_SET_SEGMENTS:
		e->u.lv.id = r64(&r, "lv id");
		ret = r_segs(&r, &e->u.lv.nseg, &e->u.lv.segs, err);
		break;
	case DLVM_EDIT_LV_SET_THIN: decode_lv_thin(&r, e); break;
	case DLVM_EDIT_LV_SET_COPY_RATE:
		e->u.lv.id = r64(&r, "lv id");
		e->u.lv.copy_rate = r64(&r, "copy rate");
		break;
	case DLVM_EDIT_LV_SET_HOLDERS: ret = decode_holders(&r, e, *pos, err); break;
	case DLVM_EDIT_PROPERTY_SET: ret = decode_prop(&r, e, *pos, err); break;
	default:
		if (!(e->flags & DLVM_EDIT_IGNORABLE))
			return dlvm_err_set(err, -ENOTSUP,
					    "edit at byte %zu: unknown type %u "
					    "(written by a newer dlvm)",
					    *pos, e->type);
		e->u.raw.len = elen;
		e->u.raw.data = r.p;
		r.pos = elen;
		break;
	}
	if (!ret && r.field)
		ret = dlvm_err_set(err, -EBADMSG, "edit %s at byte %zu: field %s is truncated",
				   dlvm_edit_type_name(e->type), *pos, r.field);
	if (!ret && r.pos != r.len)
		ret = dlvm_err_set(err, -EBADMSG, "edit %s at byte %zu: %zu trailing bytes",
				   dlvm_edit_type_name(e->type), *pos, r.len - r.pos);
	if (ret) {
		dlvm_edit_release(e);
		return ret;
	}
	*pos += EDIT_HDR + elen;
	return 0;
}

const char *dlvm_edit_type_name(uint16_t type)
{
	switch (type) {
	case DLVM_EDIT_VG_INFO: return "VG_INFO";
	case DLVM_EDIT_PV_ADD: return "PV_ADD";
	case DLVM_EDIT_PV_REMOVE: return "PV_REMOVE";
	case DLVM_EDIT_LV_CREATE: return "LV_CREATE";
	case DLVM_EDIT_LV_REMOVE: return "LV_REMOVE";
	case DLVM_EDIT_LV_RENAME: return "LV_RENAME";
	case DLVM_EDIT_LV_SET_FLAGS: return "LV_SET_FLAGS";
	case DLVM_EDIT_LV_SET_SEGMENTS: return "LV_SET_SEGMENTS";
	case DLVM_EDIT_LV_SET_HOLDERS: return "LV_SET_HOLDERS";
	case DLVM_EDIT_LV_SET_THIN: return "LV_SET_THIN";
	case DLVM_EDIT_LV_SET_COPY_RATE: return "LV_SET_COPY_RATE";
	case DLVM_EDIT_PROPERTY_SET: return "PROPERTY_SET";
	default: return "UNKNOWN";
	}
}
