/* SPDX-License-Identifier: MIT */
/* Snapshots: a snapshot is the read-only thin snapshot "snap-ID" of its
 * volume's LV (lvcreate -s), its Cinder fields in its properties. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "daemon/cinder/cinder_int.h"
#include "dlvm/util.h"

/* s as JSON; null when absent or not UTF-8 (set by hand with lvchange). */
static json_t *str_or_null(const char *s)
{
	json_t *j = s ? json_string(s) : NULL;

	return j ? j : json_null();
}

static json_t *snapshot_json(struct cn_req *rq, const struct dlvm_vg *vg, const struct dlvm_lv *lv)
{
	const char *id = cn_lv_id(lv), *st = cn_prop(lv, P_STATUS);
	json_t *v = json_pack("{s:s,s:o,s:o,s:o,s:I,s:o,s:o,s:o,s:o,s:s,s:o,s:o}", "id", id, "name",
			      str_or_null(cn_prop(lv, P_NAME)), "description",
			      str_or_null(cn_prop(lv, P_DESC)), "status",
			      str_or_null(st ? st : "error"), "size", (json_int_t)cn_gib(vg, lv),
			      "volume_id", str_or_null(cn_prop(lv, P_VOLUME)), "created_at",
			      str_or_null(cn_prop(lv, P_CREATED)), "updated_at",
			      str_or_null(cn_prop(lv, P_UPDATED)), "metadata", cn_metadata(lv),
			      "os-extended-snapshot-attributes:progress", "100%",
			      "os-extended-snapshot-attributes:project_id",
			      str_or_null(cn_prop(lv, P_PROJECT)), "links",
			      cn_links(rq, "snapshots", id));
	if (v && rq->mv >= 14)
		json_object_set_new(v, "group_snapshot_id", json_null());
	if (v && rq->mv >= 41)
		json_object_set_new(v, "user_id", str_or_null(cn_prop(lv, P_USER)));
	return v;
}

unsigned cn_snapshot_count(struct cn_req *rq, const struct dlvm_vg *vg, const char *id)
{
	unsigned n = 0;

	(void)rq;
	for (size_t i = 0; i < vg->nlv; i++) {
		const char *v = cn_prop(vg->lvs[i], P_VOLUME), *k = cn_prop(vg->lvs[i], P_KIND);
		n += v && k && !strcmp(k, "snapshot") && !strcmp(v, id);
	}
	return n;
}

static bool snapshot_matches(struct cn_req *rq, const struct dlvm_lv *lv)
{
	const char *vol = cn_arg(rq, "volume_id"), *status = cn_arg(rq, "status");
	const char *name = cn_arg(rq, "name"), *n = cn_prop(lv, P_NAME);
	const char *v = cn_prop(lv, P_VOLUME), *s = cn_prop(lv, P_STATUS);

	return (!vol || (v && !strcmp(v, vol))) && (!status || (s && !strcasecmp(s, status))) &&
	       (!name || (n && !strcmp(n, name)));
}

static void snapshot_list(struct cn_req *rq, bool detail)
{
	struct dlvm_vg *vg = cn_vg(rq);
	json_t *items = json_array();

	for (size_t i = 0; vg && i < vg->nlv; i++)
		if (cn_visible(rq, vg->lvs[i], "snapshot") && snapshot_matches(rq, vg->lvs[i]))
			json_array_append_new(items, snapshot_json(rq, vg, vg->lvs[i]));
	cn_list_reply(rq, "snapshots", items, !detail);
}

static void reply_snapshot(struct cn_req *rq, unsigned status, const char *lvname)
{
	struct dlvm_vg *vg = cn_vg(rq);
	struct dlvm_lv *lv = vg ? dlvm_lv_find(vg, lvname) : NULL;

	if (!lv)
		cn_error(rq, 500, "Snapshot %s is gone after its change", lvname);
	else
		cn_reply(rq, status, json_pack("{s:o}", "snapshot", snapshot_json(rq, vg, lv)));
}

/* name, description and metadata of a create or update body into props. */
static bool snapshot_fields(struct cn_req *rq, json_t *s, json_t *props)
{
	json_t *name = json_object_get(s, "name"), *desc = json_object_get(s, "description");
	json_t *md = json_object_get(s, "metadata");

	if (!name || json_is_null(name))
		name = json_object_get(s, "display_name");
	if (!desc || json_is_null(desc))
		desc = json_object_get(s, "display_description");
	if (!cn_text_ok(rq, name, "name") || !cn_text_ok(rq, desc, "description") ||
	    (md && !json_is_null(md) && !cn_metadata_ok(rq, md)))
		return false;
	if (name)
		json_object_set(props, P_NAME, name);
	if (desc)
		json_object_set(props, P_DESC, desc);
	if (json_is_object(md)) {
		char *t = json_dumps(md, JSON_COMPACT);
		json_object_set_new(props, P_META,
				    json_object_size(md) && t ? json_string(t) : json_null());
		free(t);
	}
	return true;
}

/* force: a boolean, or a string Cinder takes for one. */
static bool force_ok(struct cn_req *rq, json_t *f, bool *out)
{
	const char *s = json_string_value(f);

	*out = false;
	if (!f || json_is_null(f))
		return true;
	if (json_is_boolean(f)) {
		*out = json_is_true(f);
		return true;
	}
	if (s && (!strcasecmp(s, "true") || !strcasecmp(s, "false") || !strcmp(s, "1") ||
		  !strcmp(s, "0"))) {
		*out = !strcasecmp(s, "true") || !strcmp(s, "1");
		return true;
	}
	cn_error(rq, 400, "Invalid input for field/attribute force: a boolean is expected.");
	return false;
}

static void snapshot_create(struct cn_req *rq)
{
	json_t *s = cn_body_object(rq, "snapshot"), *props = json_object(), *vid;
	char id[CN_ID_LEN + 1], lvname[DLVM_NAME_MAX + 1], src[2 * DLVM_NAME_MAX + 2], now[32];
	struct dlvm_err err = { 0 };
	struct dlvm_lv *vol;
	bool force;
	int r;

	if (!s || !snapshot_fields(rq, s, props) ||
	    !force_ok(rq, json_object_get(s, "force"), &force))
		goto out;
	vid = json_object_get(s, "volume_id");
	if (!json_is_string(vid)) {
		cn_error(rq, 400, "Invalid input: snapshot needs a volume_id string.");
		goto out;
	}
	if (!(vol = cn_find(rq, cn_vg(rq), "volume", json_string_value(vid)))) {
		cn_error(rq, 404, "Volume %.64s could not be found.", json_string_value(vid));
		goto out;
	}
	const char *st = cn_volume_status(vol);
	if (strcmp(st, "available") && !(force && !strcmp(st, "in-use"))) {
		cn_error(rq, 400, "Invalid volume: Volume %s status must be available%s, not %s.",
			 json_string_value(vid),
			 !strcmp(st, "in-use") ? " (or in-use with force)" : "", st);
		goto out;
	}
	cn_uuid(id);
	cn_now(now);
	snprintf(lvname, sizeof(lvname), "snap-%s", id);
	snprintf(src, sizeof(src), "%s/%s", rq->srv->vg, vol->name);
	json_object_set_new(props, P_KIND, json_string("snapshot"));
	json_object_set_new(props, P_PROJECT, json_string(rq->project));
	json_object_set_new(props, P_USER, json_string(rq->user));
	json_object_set(props, P_VOLUME, vid);
	json_object_set_new(props, P_STATUS, json_string("available"));
	json_object_set_new(props, P_CREATED, json_string(now));
	if ((r = cn_cmd(rq, "lvcreate", json_pack("{s:s,s:b}", "name", lvname, "snapshot", 1),
			json_pack("[s]", src), &err))) {
		cn_error(rq, cn_status_of(r), "Snapshot creation failed: %s", err.msg);
		goto out;
	}
	r = cn_props(rq, lvname, props, &err);
	props = NULL;
	if (r) {
		struct dlvm_err e2 = { 0 };
		snprintf(src, sizeof(src), "%s/%s", rq->srv->vg, lvname);
		cn_cmd(rq, "lvremove", json_object(), json_pack("[s]", src), &e2);
		cn_error(rq, cn_status_of(r), "Snapshot creation failed: %s", err.msg);
		goto out;
	}
	reply_snapshot(rq, 202, lvname);
out:
	json_decref(props);
}

static void snapshot_update(struct cn_req *rq, const char *lvname)
{
	json_t *s = cn_body_object(rq, "snapshot"), *props = json_object();
	struct dlvm_err err = { 0 };

	if (!s || !snapshot_fields(rq, s, props)) {
		json_decref(props);
		return;
	}
	if (!json_object_size(props)) {
		json_decref(props);
		cn_error(rq, 400, "Invalid input: give name, description or metadata.");
		return;
	}
	int r = cn_props(rq, lvname, props, &err);
	if (r)
		cn_error(rq, cn_status_of(r), "Snapshot update failed: %s", err.msg);
	else
		reply_snapshot(rq, 200, lvname);
}

static void snapshot_delete(struct cn_req *rq, const char *lvname)
{
	char full[2 * DLVM_NAME_MAX + 2];
	struct dlvm_err err = { 0 };

	snprintf(full, sizeof(full), "%s/%s", rq->srv->vg, lvname);
	int r = cn_cmd(rq, "lvremove", json_pack("{s:b}", "force", 1), json_pack("[s]", full),
		       &err);
	if (r)
		cn_error(rq, cn_status_of(r), "Invalid snapshot: %s", err.msg);
	else
		cn_reply(rq, 202, NULL);
}

void cn_snapshots(struct cn_req *rq)
{
	const char *m = rq->method;
	char lvname[DLVM_NAME_MAX + 1];
	struct dlvm_vg *vg = cn_vg(rq);
	struct dlvm_lv *lv;

	if (rq->nseg == 1 && !strcmp(m, "GET"))
		snapshot_list(rq, false);
	else if (rq->nseg == 1 && !strcmp(m, "POST"))
		snapshot_create(rq);
	else if (rq->nseg == 2 && !strcmp(m, "GET") && !strcmp(rq->seg[1], "detail"))
		snapshot_list(rq, true);
	else if (rq->nseg < 2)
		cn_error(rq, 405, "Method %s is not allowed on snapshots.", m);
	else if (!(lv = cn_find(rq, vg, "snapshot", rq->seg[1])))
		cn_error(rq, 404, "Snapshot %.64s could not be found.", rq->seg[1]);
	else if (rq->nseg >= 3 && !strcmp(rq->seg[2], "metadata"))
		cn_meta(rq, "snapshot");
	else if (rq->nseg != 2)
		cn_error(rq, 404, "The resource could not be found.");
	else if (!strcmp(m, "GET"))
		cn_reply(rq, 200, json_pack("{s:o}", "snapshot", snapshot_json(rq, vg, lv)));
	else if (snprintf(lvname, sizeof(lvname), "%s", lv->name) && !strcmp(m, "PUT"))
		snapshot_update(rq, lvname);
	else if (!strcmp(m, "DELETE"))
		snapshot_delete(rq, lvname);
	else
		cn_error(rq, 405, "Method %s is not allowed on a snapshot.", m);
}
