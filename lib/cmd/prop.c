/* SPDX-License-Identifier: MIT */
/* Tags and key/value properties of LVs (lvchange --addtag, --deltag,
 * --property, --delproperty; lvs -o lv_tags,lv_properties). A tag T is the
 * property "tag.T" with an empty value, so both live in the VG journal
 * (PROPERTY_SET) and every host of a shared VG sees them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlvm/util.h"
#include "lib/ctx/ctx.h"
#include "lib/cmd/cmd_int.h"

#define TAG_PREFIX "tag."

/* The values of a list option: an array of strings, or one string. */
static size_t opt_count(json_t *opts, const char *name)
{
	json_t *v = json_object_get(opts, name);

	return json_is_array(v) ? json_array_size(v) : json_is_string(v) ? 1 : 0;
}

static const char *opt_at(json_t *opts, const char *name, size_t i)
{
	json_t *v = json_object_get(opts, name);

	return json_string_value(json_is_array(v) ? json_array_get(v, i) : v);
}

bool lv_props_given(json_t *opts)
{
	return opt_count(opts, "addtag") || opt_count(opts, "deltag") ||
	       opt_count(opts, "property") || opt_count(opts, "delproperty");
}

/* The key and value (NULL: a delete) of value i of option `name`. */
static int opt_prop(json_t *opts, const char *name, size_t i, char key[DLVM_PROP_KEY_MAX + 2],
		    const char **value, struct dlvm_err *err)
{
	bool tag = strstr(name, "tag"), del = !strncmp(name, "del", 3);
	const char *v = opt_at(opts, name, i);

	*value = del ? NULL : "";
	if (!v)
		return dlvm_err_set(err, -EINVAL, "--%s takes strings", name);
	if (tag) {
		if (!*v || snprintf(key, DLVM_PROP_KEY_MAX + 2, TAG_PREFIX "%s", v) >=
					   DLVM_PROP_KEY_MAX + 1)
			return dlvm_err_set(err, -EINVAL,
					    "tag \"%.40s\" is empty or longer than %zu characters",
					    v, DLVM_PROP_KEY_MAX - strlen(TAG_PREFIX));
	} else if (del) {
		snprintf(key, DLVM_PROP_KEY_MAX + 2, "%.*s", DLVM_PROP_KEY_MAX + 1, v);
	} else {
		const char *eq = strchr(v, '=');
		if (!eq)
			return dlvm_err_set(err, -EINVAL,
					    "--property takes KEY=VALUE, not \"%.40s\"", v);
		snprintf(key, DLVM_PROP_KEY_MAX + 2, "%.*s",
			 (int)DLVM_MIN((size_t)(eq - v), (size_t)DLVM_PROP_KEY_MAX + 1), v);
		*value = eq + 1;
	}
	return 0;
}

static const char *const prop_opts[] = { "deltag", "delproperty", "addtag", "property" };

int lv_props_check(json_t *opts, struct dlvm_err *err)
{
	char key[DLVM_PROP_KEY_MAX + 2];
	const char *value;
	int r;

	for (size_t k = 0; k < DLVM_ARRAY_SIZE(prop_opts); k++)
		for (size_t i = 0; i < opt_count(opts, prop_opts[k]); i++)
			if ((r = opt_prop(opts, prop_opts[k], i, key, &value, err)) ||
			    (r = dlvm_prop_check(key, strlen(key), value, value ? strlen(value) : 0,
						 err)))
				return r;
	return 0;
}

int lv_props_change(struct dlvm_vg *vg, struct dlvm_lv *lv, json_t *opts, json_t *resp,
		    struct dlvm_err *err)
{
	char key[DLVM_PROP_KEY_MAX + 2];
	const char *value;
	struct dlvm_txn t;
	int r = 0;

	dlvm_txn_init(&t);
	for (size_t k = 0; k < DLVM_ARRAY_SIZE(prop_opts) && !r; k++)
		for (size_t i = 0; i < opt_count(opts, prop_opts[k]) && !r; i++)
			if (!(r = opt_prop(opts, prop_opts[k], i, key, &value, err)))
				r = dlvm_txn_push_prop(vg, &t, lv->id, key, value, err);
	if (r)
		dlvm_err_prefix(err, r, "%s/%s: ", vg->info.name, lv->name);
	if (!r && t.n)
		r = dlvm_txn_commit(vg, &t, err);
	dlvm_txn_release(&t);
	if (!r)
		resp_message(resp, "Logical volume %s/%s changed.", vg->info.name, lv->name);
	return r;
}

/* "a,b" of the tags, or "k=v,k2=v2" of the other properties; NULL on
 * ENOMEM. */
static char *props_join(const struct dlvm_props *p, bool tags)
{
	size_t len = 0, pl = strlen(TAG_PREFIX);
	char *out = NULL;
	FILE *f = open_memstream(&out, &len);
	bool first = true;

	if (!f)
		return NULL;
	for (uint32_t i = 0; i < p->n; i++) {
		bool is_tag = !strncmp(p->v[i].key, TAG_PREFIX, pl);
		if (is_tag != tags)
			continue;
		if (tags)
			fprintf(f, "%s%s", first ? "" : ",", p->v[i].key + pl);
		else
			fprintf(f, "%s%s=%s", first ? "" : ",", p->v[i].key, p->v[i].value);
		first = false;
	}
	if (fclose(f)) {
		free(out);
		return NULL;
	}
	return out;
}

int lv_props_report(const struct dlvm_lv *lv, json_t *row)
{
	char *tags = props_join(&lv->props, true), *props = props_join(&lv->props, false);
	int r = tags && props ? 0 : -ENOMEM;

	if (!r) {
		json_object_set_new(row, "lv_tags", json_string(tags));
		json_object_set_new(row, "lv_properties", json_string(props));
	}
	free(tags);
	free(props);
	return r;
}
