/* SPDX-License-Identifier: MIT */
/* Cinder resources as LVs: a volume is the thin LV "volume-ID" of the pool,
 * a snapshot the thin snapshot "snap-ID" (LVM names may not start with
 * "snapshot"); what Cinder shows of them is
 * in their properties (cinder.*), written with lvchange --property so that
 * it is in the VG's journal. Also the checks of request fields and the
 * paging of lists. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "daemon/cinder/cinder_int.h"
#include "dlvm/log.h"
#include "dlvm/util.h"

#define GiB (1ull << 30)

struct dlvm_vg *cn_vg(struct cn_req *rq)
{
	struct dlvm_vg *vg = NULL;

	if (dlvm_ctx_vg(rq->srv->ctx, rq->srv->vg, &vg, NULL))
		return NULL;
	return vg;
}

bool cn_shared(struct cn_req *rq)
{
	struct dlvm_vg *vg = cn_vg(rq);

	return vg && (vg->info.flags & DLVM_VG_SHARED);
}

const char *cn_prop(const struct dlvm_lv *lv, const char *key)
{
	return dlvm_prop_get(&lv->props, key);
}

const char *cn_lv_id(const struct dlvm_lv *lv)
{
	const char *dash = strchr(lv->name, '-');

	return dash ? dash + 1 : lv->name;
}

bool cn_visible(struct cn_req *rq, const struct dlvm_lv *lv, const char *kind)
{
	const char *k = cn_prop(lv, P_KIND), *p = cn_prop(lv, P_PROJECT);

	if (!k || strcmp(k, kind) || !(lv->flags & DLVM_LV_THIN))
		return false;
	return rq->all_projects || (p && !strcmp(p, rq->project));
}

static bool is_uuid(const char *s)
{
	if (strlen(s) != CN_ID_LEN)
		return false;
	for (unsigned i = 0; i < CN_ID_LEN; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? s[i] != '-' : !strchr("0123456789abcdef", s[i]))
			return false;
	}
	return true;
}

struct dlvm_lv *cn_find(struct cn_req *rq, struct dlvm_vg *vg, const char *kind, const char *id)
{
	char name[DLVM_NAME_MAX + 1];
	struct dlvm_lv *lv;

	if (!vg || !is_uuid(id))
		return NULL;
	snprintf(name, sizeof(name), "%s-%s", strcmp(kind, "snapshot") ? kind : "snap", id);
	lv = dlvm_lv_find(vg, name);
	return lv && cn_visible(rq, lv, kind) ? lv : NULL;
}

int cn_cmd(struct cn_req *rq, const char *cmd, json_t *opts, json_t *args, struct dlvm_err *err)
{
	json_t *req = json_pack("{s:o,s:o}", "opts", opts, "args", args), *resp = json_object();
	json_t *m;
	size_t i;
	int r;

	if (!req || !resp) {
		json_decref(req);
		json_decref(resp);
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	}
	r = dlvm_cmd_run(rq->srv->ctx, cmd, req, resp, err);
	if (r < 0)
		log_warning(DLVM_LOG_API, "cinder %s: %s: %s", rq->id, cmd, err ? err->msg : "");
	json_array_foreach(json_object_get(resp, "messages"), i, m)
			log_info(DLVM_LOG_API, "cinder %s: %s: %s", rq->id, cmd,
				 json_string_value(m));
	json_decref(req);
	json_decref(resp);
	return r;
}

int cn_props(struct cn_req *rq, const char *lvname, json_t *set, struct dlvm_err *err)
{
	json_t *put = json_array(), *del = json_array(), *v;
	char now[32], full[2 * DLVM_NAME_MAX + 2];
	const char *key;

	cn_now(now);
	json_object_set_new(set, P_UPDATED, json_string(now));
	json_object_foreach(set, key, v)
	{
		if (json_is_null(v)) {
			json_array_append_new(del, json_string(key));
			continue;
		}
		char *kv = NULL;
		if (asprintf(&kv, "%s=%s", key, json_string_value(v)) < 0)
			kv = NULL;
		json_array_append_new(put, kv ? json_string(kv) : json_null());
		free(kv);
	}
	json_decref(set);
	snprintf(full, sizeof(full), "%s/%s", rq->srv->vg, lvname);
	return cn_cmd(rq, "lvchange", json_pack("{s:o,s:o}", "property", put, "delproperty", del),
		      json_pack("[s]", full), err);
}

json_t *cn_metadata(const struct dlvm_lv *lv)
{
	const char *m = cn_prop(lv, P_META);
	json_t *o = m ? json_loads(m, 0, NULL) : NULL;

	if (!json_is_object(o)) {
		json_decref(o);
		o = json_object();
	}
	return o;
}

static bool text_fits(const char *s, size_t len)
{
	/* characters, not bytes: UTF-8 continuation bytes do not count */
	size_t n = 0;

	for (size_t i = 0; i < len; i++)
		n += ((unsigned char)s[i] & 0xc0) != 0x80;
	return n <= CN_TEXT_MAX && strlen(s) == len;
}

bool cn_text_ok(struct cn_req *rq, json_t *v, const char *what)
{
	if (!v || json_is_null(v))
		return true;
	if (!json_is_string(v)) {
		cn_error(rq, 400, "Invalid input for field/attribute %s: not a string.", what);
		return false;
	}
	if (!text_fits(json_string_value(v), json_string_length(v))) {
		cn_error(rq, 400,
			 "Invalid input for field/attribute %s: longer than %u characters "
			 "or holds a NUL.",
			 what, CN_TEXT_MAX);
		return false;
	}
	return true;
}

bool cn_metadata_ok(struct cn_req *rq, json_t *md)
{
	const char *key;
	json_t *v;

	if (!json_is_object(md)) {
		cn_error(rq, 400, "Invalid input for field/attribute metadata: not an object.");
		return false;
	}
	json_object_foreach(md, key, v)
	{
		if (!*key || !text_fits(key, strlen(key))) {
			cn_error(rq, 400,
				 "Invalid metadata key: empty, or longer than %u characters.",
				 CN_TEXT_MAX);
			return false;
		}
		if (!json_is_string(v) || !text_fits(json_string_value(v), json_string_length(v))) {
			cn_error(rq, 400,
				 "Invalid metadata value of key '%.64s': a string of at most "
				 "%u characters is expected.",
				 key, CN_TEXT_MAX);
			return false;
		}
	}
	char *text = json_dumps(md, JSON_COMPACT | JSON_SORT_KEYS);
	size_t len = text ? strlen(text) : SIZE_MAX;
	free(text);
	if (len > DLVM_PROP_VALUE_MAX) {
		cn_error(rq, 413, "Metadata of %zu bytes exceeds the %u bytes a volume keeps.", len,
			 DLVM_PROP_VALUE_MAX);
		return false;
	}
	return true;
}

uint64_t cn_gib(const struct dlvm_vg *vg, const struct dlvm_lv *lv)
{
	return (dlvm_lv_bytes(vg, lv) + GiB - 1) / GiB;
}

bool cn_size_ok(struct cn_req *rq, json_t *v, const char *what, uint64_t *out)
{
	const uint64_t max = DLVM_THIN_MAX_VSIZE / GiB;
	json_int_t n = -1;

	if (json_is_integer(v)) {
		n = json_integer_value(v);
	} else if (json_is_string(v)) {
		const char *s = json_string_value(v);
		char *end;
		errno = 0;
		unsigned long long u = strtoull(s, &end, 10);
		if (!*s || *end || errno || *s == '-' || u > (unsigned long long)max + 1) {
			cn_error(rq, 400,
				 "Invalid input for field/attribute %s: '%.32s' is not an "
				 "integer.",
				 what, s);
			return false;
		}
		n = (json_int_t)u;
	} else {
		cn_error(rq, 400, "Invalid input for field/attribute %s: an integer is expected.",
			 what);
		return false;
	}
	if (n <= 0 || (uint64_t)n > max) {
		cn_error(rq, 400,
			 "Invalid input received: %s must be an integer between 1 and "
			 "%" PRIu64 " (GiB), not %lld.",
			 what, max, (long long)n);
		return false;
	}
	*out = (uint64_t)n;
	return true;
}

json_t *cn_links(struct cn_req *rq, const char *coll, const char *id)
{
	char self[1024], mark[1024];
	const char *v3 = strstr(rq->base, "/v3/");

	snprintf(self, sizeof(self), "%s/%s/%s", rq->base, coll, id);
	snprintf(mark, sizeof(mark), "%.*s%s/%s/%s", v3 ? (int)(v3 - rq->base) : 0, rq->base,
		 v3 ? v3 + 3 : "", coll, id);
	return json_pack("[{s:s,s:s},{s:s,s:s}]", "rel", "self", "href", self, "rel", "bookmark",
			 "href", mark);
}

/* ---- lists: sort, marker, limit, count ---- */

struct sort_key {
	char name[32];
	bool desc;
};
static _Thread_local struct sort_key sort_keys[4];
static _Thread_local unsigned nsort;

static int cmp_json(json_t *a, json_t *b)
{
	if (!a || json_is_null(a))
		return !b || json_is_null(b) ? 0 : -1;
	if (!b || json_is_null(b))
		return 1;
	if (json_is_integer(a) && json_is_integer(b))
		return (json_integer_value(a) > json_integer_value(b)) -
		       (json_integer_value(a) < json_integer_value(b));
	if (json_is_string(a) && json_is_string(b))
		return strcmp(json_string_value(a), json_string_value(b));
	return 0;
}

static int cmp_items(const void *pa, const void *pb)
{
	json_t *a = *(json_t *const *)pa, *b = *(json_t *const *)pb;

	for (unsigned i = 0; i < nsort; i++) {
		int c = cmp_json(json_object_get(a, sort_keys[i].name),
				 json_object_get(b, sort_keys[i].name));
		if (c)
			return sort_keys[i].desc ? -c : c;
	}
	return 0;
}

/* One "key[:asc|desc]" into sort_keys; false when it is not a key. */
static bool add_sort_key(const char *s, size_t n, const char *dir)
{
	const char *colon = memchr(s, ':', n);
	size_t kn = colon ? (size_t)(colon - s) : n;

	if (!kn || kn >= sizeof(sort_keys[0].name) || nsort >= DLVM_ARRAY_SIZE(sort_keys) - 1)
		return false;
	for (size_t i = 0; i < kn; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || s[i] == '_'))
			return false;
	struct sort_key *k = &sort_keys[nsort++];
	memcpy(k->name, s, kn);
	k->name[kn] = '\0';
	if (!strcmp(k->name, "name") || !strcmp(k->name, "display_name"))
		snprintf(k->name, sizeof(k->name), "name");
	const char *d = colon ? colon + 1 : dir;
	size_t dn = colon ? n - kn - 1 : (d ? strlen(d) : 0);
	if (d && dn && !(dn == 3 && !strncmp(d, "asc", 3)) && !(dn == 4 && !strncmp(d, "desc", 4)))
		return false;
	k->desc = !d || !dn || dn == 4;
	return true;
}

/* The sort of the request (sort=k:d,..., or sort_key and sort_dir), then
 * created_at and id, newest first, as Cinder's default. */
static bool parse_sort(struct cn_req *rq)
{
	const char *sort = cn_arg(rq, "sort"), *sk = cn_arg(rq, "sort_key");
	const char *sd = cn_arg(rq, "sort_dir");

	nsort = 0;
	if (sort) {
		for (const char *s = sort; *s;) {
			size_t n = strcspn(s, ",");
			if (!add_sort_key(s, n, NULL)) {
				cn_error(rq, 400, "Invalid sort '%.64s': give key[:asc|desc],...",
					 sort);
				return false;
			}
			s += n + (s[n] == ',');
		}
	} else if (sk && !add_sort_key(sk, strlen(sk), sd)) {
		cn_error(rq, 400, "Invalid sort_key '%.64s' or sort_dir", sk);
		return false;
	}
	add_sort_key("created_at:desc", 15, NULL);
	add_sort_key("id:desc", 7, NULL);
	return true;
}

static bool parse_count(struct cn_req *rq, const char *name, size_t *out)
{
	const char *s = cn_arg(rq, name);
	char *end;

	if (!s)
		return true;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (!*s || *end || errno || *s == '-') {
		cn_error(rq, 400, "Invalid %s '%.32s': a non-negative integer is expected", name,
			 s);
		return false;
	}
	*out = v > SIZE_MAX ? SIZE_MAX : (size_t)v;
	return true;
}

/* The page [from, from + n) of the sorted items; the next link if more. */
static bool page_bounds(struct cn_req *rq, json_t **v, size_t total, size_t *from, size_t *n)
{
	const char *marker = cn_arg(rq, "marker");
	size_t limit = CN_MAX_LIMIT, offset = 0;

	if (!parse_count(rq, "limit", &limit) || !parse_count(rq, "offset", &offset))
		return false;
	*from = 0;
	if (marker) {
		size_t i = 0;
		while (i < total && strcmp(json_string_value(json_object_get(v[i], "id")), marker))
			i++;
		if (i == total) {
			cn_error(rq, 400, "marker [%.64s] not found", marker);
			return false;
		}
		*from = i + 1;
	}
	*from = offset > total - *from ? total : *from + offset;
	*n = DLVM_MIN(DLVM_MIN(limit, (size_t)CN_MAX_LIMIT), total - *from);
	return true;
}

void cn_list_reply(struct cn_req *rq, const char *coll, json_t *items, bool summary)
{
	size_t total = json_array_size(items), from, n;
	json_t **v = calloc(total ? total : 1, sizeof(*v)), *out = json_array();

	if (!v || !out || !parse_sort(rq)) {
		if (!rq->reply)
			cn_error(rq, 500, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < total; i++)
		v[i] = json_array_get(items, i);
	qsort(v, total, sizeof(*v), cmp_items);
	if (!page_bounds(rq, v, total, &from, &n))
		goto out;
	for (size_t i = from; i < from + n; i++) {
		json_t *it = v[i];
		if (summary)
			it = json_pack("{s:O,s:O,s:O}", "id", json_object_get(it, "id"), "name",
				       json_object_get(it, "name"), "links",
				       json_object_get(it, "links"));
		else
			json_incref(it);
		json_array_append_new(out, it);
	}
	json_t *body = json_pack("{s:O}", coll, out);
	if (from + n < total && n) {
		char next[1200];
		snprintf(next, sizeof(next), "%s/%s%s?limit=%zu&marker=%s", rq->base, coll,
			 summary ? "" : "/detail", n,
			 json_string_value(json_object_get(v[from + n - 1], "id")));
		char key[64];
		snprintf(key, sizeof(key), "%s_links", coll);
		json_object_set_new(body, key,
				    json_pack("[{s:s,s:s}]", "rel", "next", "href", next));
	}
	const char *wc = cn_arg(rq, "with_count");
	if (rq->mv >= 45 && wc && (!strcasecmp(wc, "true") || !strcmp(wc, "1")))
		json_object_set_new(body, "count", json_integer((json_int_t)total));
	cn_reply(rq, 200, body);
out:
	json_decref(out);
	json_decref(items);
	free(v);
}
