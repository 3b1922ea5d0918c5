/* SPDX-License-Identifier: MIT */
/* Key/value properties of LVs and of the VG: the model's sorted lists, the
 * PROPERTY_SET edit applied to them, its undo and its checkpoint edits.
 * A property is what a front end (the Cinder API, tags) keeps with a volume
 * so that every host of a shared VG and a restarted daemon see it. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlvm/util.h"
#include "meta.h"

/* Index of key in p, or -(insertion point) - 1. */
static long prop_find(const struct dlvm_props *p, const char *key)
{
	long lo = 0, hi = (long)p->n - 1;

	while (lo <= hi) {
		long mid = lo + (hi - lo) / 2;
		int c = strcmp(p->v[mid].key, key);
		if (!c)
			return mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return -lo - 1;
}

const char *dlvm_prop_get(const struct dlvm_props *p, const char *key)
{
	long i = p ? prop_find(p, key) : -1;

	return i >= 0 ? p->v[i].value : NULL;
}

const struct dlvm_props *dlvm_props_of(const struct dlvm_vg *vg, uint64_t id)
{
	const struct dlvm_lv *lv;

	if (!id)
		return &vg->props;
	lv = dlvm_lv_find_id(vg, id);
	return lv ? &lv->props : NULL;
}

void dlvm_props_release(struct dlvm_props *p)
{
	for (uint32_t i = 0; i < p->n; i++) {
		free(p->v[i].key);
		free(p->v[i].value);
	}
	free(p->v);
	p->v = NULL;
	p->n = 0;
}

/* Set (value != NULL) or delete key in p; all or nothing. */
static int props_put(struct dlvm_props *p, const char *key, const char *value)
{
	long i = prop_find(p, key);
	char *v = NULL, *k = NULL;

	if (!value) {
		if (i < 0)
			return 0;
		free(p->v[i].key);
		free(p->v[i].value);
		memmove(&p->v[i], &p->v[i + 1], (p->n - (size_t)i - 1) * sizeof(*p->v));
		p->n--;
		return 0;
	}
	if (!(v = strdup(value)))
		return -ENOMEM;
	if (i >= 0) {
		free(p->v[i].value);
		p->v[i].value = v;
		return 0;
	}
	size_t at = (size_t)(-i - 1);
	struct dlvm_prop *arr = realloc(p->v, (p->n + 1) * sizeof(*arr));
	if (arr)
		p->v = arr;
	if (!arr || !(k = strdup(key))) {
		free(v);
		return -ENOMEM;
	}
	memmove(&p->v[at + 1], &p->v[at], (p->n - at) * sizeof(*p->v));
	p->v[at] = (struct dlvm_prop){ .key = k, .value = v };
	p->n++;
	return 0;
}

int dlvm_apply_prop(struct dlvm_vg *vg, const struct dlvm_edit *e, struct dlvm_err *err)
{
	const char *key = e->u.prop.key, *value = e->u.prop.value;
	bool del = e->u.prop.flags & DLVM_PROP_DELETE;
	struct dlvm_props *p;
	char what[DLVM_NAME_MAX + 8];

	if (e->u.prop.id) {
		struct dlvm_lv *lv = dlvm_lv_find_id(vg, e->u.prop.id);
		if (!lv)
			return dlvm_err_set(err, -EBADMSG,
					    "PROPERTY_SET: LV id %" PRIu64 " does not exist",
					    e->u.prop.id);
		p = &lv->props;
		snprintf(what, sizeof(what), "LV %s", lv->name);
	} else {
		p = &vg->props;
		snprintf(what, sizeof(what), "the VG");
	}
	if (e->u.prop.flags & ~DLVM_PROP_DELETE || del == !!value)
		return dlvm_err_set(err, -EBADMSG, "PROPERTY_SET: %s: property %s has %s value",
				    what, key, del ? "a delete with a" : "no");
	struct dlvm_err pe = { 0 };
	if (dlvm_prop_check(key, strnlen(key, DLVM_PROP_KEY_MAX + 1), value,
			    value ? strnlen(value, DLVM_PROP_VALUE_MAX + 1) : 0, &pe))
		return dlvm_err_set(err, -EBADMSG, "PROPERTY_SET: %s: %s", what, pe.msg);
	if (!del && p->n >= DLVM_PROP_MAX && prop_find(p, key) < 0)
		return dlvm_err_set(err, -EBADMSG,
				    "PROPERTY_SET: %s: a property %s beyond the %u it may have",
				    what, key, DLVM_PROP_MAX);
	if (props_put(p, key, del ? NULL : value))
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	return 0;
}

int dlvm_undo_prop(const struct dlvm_vg *vg, const struct dlvm_edit *e, struct dlvm_edit *inv)
{
	const struct dlvm_props *p = dlvm_props_of(vg, e->u.prop.id);
	const char *old = p ? dlvm_prop_get(p, e->u.prop.key) : NULL;

	if (!p)
		return 0; /* apply refuses it, or the LV comes in this transaction */
	*inv = (struct dlvm_edit){ .type = DLVM_EDIT_PROPERTY_SET, .flags = DLVM_EDIT_IGNORABLE };
	inv->u.prop.id = e->u.prop.id;
	memcpy(inv->u.prop.key, e->u.prop.key, sizeof(inv->u.prop.key));
	if (!old) {
		inv->u.prop.flags = DLVM_PROP_DELETE;
		return 0;
	}
	if (!(inv->u.prop.value = strdup(old))) {
		inv->type = 0;
		return -ENOMEM;
	}
	return 0;
}

int dlvm_props_edits(uint64_t id, const struct dlvm_props *p, struct dlvm_edit **out)
{
	struct dlvm_edit *v;

	*out = NULL;
	if (!p->n)
		return 0;
	if (!(v = calloc(p->n, sizeof(*v))))
		return -ENOMEM;
	for (uint32_t i = 0; i < p->n; i++) {
		v[i] = (struct dlvm_edit){ .type = DLVM_EDIT_PROPERTY_SET,
					   .flags = DLVM_EDIT_IGNORABLE };
		v[i].u.prop.id = id;
		snprintf(v[i].u.prop.key, sizeof(v[i].u.prop.key), "%s", p->v[i].key);
		if (!(v[i].u.prop.value = strdup(p->v[i].value))) {
			for (uint32_t k = 0; k <= i; k++)
				dlvm_edit_release(&v[k]);
			free(v);
			return -ENOMEM;
		}
	}
	*out = v;
	return (int)p->n;
}

int dlvm_props_encode(uint64_t id, const struct dlvm_props *p, struct dlvm_buf *out)
{
	struct dlvm_edit e = { .type = DLVM_EDIT_PROPERTY_SET, .flags = DLVM_EDIT_IGNORABLE };
	int r;

	e.u.prop.id = id;
	for (uint32_t i = 0; i < p->n; i++) {
		snprintf(e.u.prop.key, sizeof(e.u.prop.key), "%s", p->v[i].key);
		e.u.prop.value = p->v[i].value; /* borrowed: e is not released */
		if ((r = dlvm_edit_encode(&e, out)))
			return r;
	}
	return 0;
}

int dlvm_txn_push_prop(const struct dlvm_vg *vg, struct dlvm_txn *t, uint64_t id, const char *key,
		       const char *value, struct dlvm_err *err)
{
	struct dlvm_edit e = { .type = DLVM_EDIT_PROPERTY_SET, .flags = DLVM_EDIT_IGNORABLE };
	size_t kn = strlen(key), vn = value ? strlen(value) : 0;
	int r;

	if ((r = dlvm_prop_check(key, kn, value, vn, err)))
		return r;
	bool marked = vg->info.ro_compat & DLVM_RO_COMPAT_PROPERTIES;
	for (size_t i = 0; i < t->n && !marked; i++)
		marked = t->edits[i].type == DLVM_EDIT_VG_INFO &&
			 (t->edits[i].u.vg.ro_compat & DLVM_RO_COMPAT_PROPERTIES);
	if (!marked) {
		struct dlvm_edit vi = { .type = DLVM_EDIT_VG_INFO };
		vi.u.vg = vg->info;
		vi.u.vg.ro_compat |= DLVM_RO_COMPAT_PROPERTIES;
		if ((r = dlvm_txn_push(t, &vi, err)))
			return r;
	}
	e.u.prop.id = id;
	memcpy(e.u.prop.key, key, kn + 1);
	if (value) {
		if (!(e.u.prop.value = strdup(value)))
			return dlvm_err_set(err, -ENOMEM, "out of memory");
	} else {
		e.u.prop.flags = DLVM_PROP_DELETE;
	}
	if ((r = dlvm_txn_push(t, &e, err)))
		dlvm_edit_release(&e);
	return r;
}
