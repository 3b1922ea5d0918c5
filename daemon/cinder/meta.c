/* SPDX-License-Identifier: MIT */
/* Metadata of volumes and snapshots (one property, a JSON object), and the
 * volume actions. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "daemon/cinder/cinder_int.h"
#include "dlvm/util.h"

/* Write md (taken) as lvname's metadata and answer {"metadata": md} or,
 * with one_key, {"meta": {key: value}}. */
static void meta_store(struct cn_req *rq, const char *lvname, json_t *md, const char *one_key)
{
	struct dlvm_err err = { 0 };
	json_t *props = json_object();
	char *text = json_dumps(md, JSON_COMPACT);

	json_object_set_new(props, P_META,
			    !json_object_size(md) ? json_null()
			    : text                ? json_string(text)
						  : NULL);
	free(text);
	int r = cn_props(rq, lvname, props, &err);
	if (r)
		cn_error(rq, cn_status_of(r), "Metadata update failed: %s", err.msg);
	else if (one_key)
		cn_reply(rq, 200,
			 json_pack("{s:{s:O}}", "meta", one_key, json_object_get(md, one_key)));
	else
		cn_reply(rq, 200, json_pack("{s:O}", "metadata", md));
	json_decref(md);
}

/* KIND/ID/metadata: GET, POST (merge), PUT (replace). */
static void meta_all(struct cn_req *rq, struct dlvm_lv *lv, const char *lvname)
{
	const char *m = rq->method;

	if (!strcmp(m, "GET")) {
		cn_reply(rq, 200, json_pack("{s:o}", "metadata", cn_metadata(lv)));
		return;
	}
	if (strcmp(m, "POST") && strcmp(m, "PUT")) {
		cn_error(rq, 405, "Method %s is not allowed on metadata.", m);
		return;
	}
	json_t *in = cn_body_object(rq, "metadata");
	if (!in || !cn_metadata_ok(rq, in))
		return;
	json_t *md = !strcmp(m, "PUT") ? json_object() : cn_metadata(lv);
	json_object_update(md, in);
	if (!cn_metadata_ok(rq, md)) {
		json_decref(md);
		return;
	}
	meta_store(rq, lvname, md, NULL);
}

/* KIND/ID/metadata/KEY: GET, PUT, DELETE. */
static void meta_key(struct cn_req *rq, struct dlvm_lv *lv, const char *lvname, const char *key)
{
	const char *m = rq->method;
	json_t *md = cn_metadata(lv), *v = json_object_get(md, key);

	if (!strcmp(m, "GET") || !strcmp(m, "DELETE")) {
		if (!v)
			cn_error(rq, 404, "Metadata item was not found: no key %.64s.", key);
		else if (!strcmp(m, "GET"))
			cn_reply(rq, 200, json_pack("{s:{s:O}}", "meta", key, v));
		if (!v || !strcmp(m, "GET")) {
			json_decref(md);
			return;
		}
		json_object_del(md, key);
		meta_store(rq, lvname, md, NULL);
		if (rq->status == 200)
			cn_reply(rq, 200, NULL);
		return;
	}
	if (strcmp(m, "PUT")) {
		cn_error(rq, 405, "Method %s is not allowed on a metadata item.", m);
		json_decref(md);
		return;
	}
	json_t *in = cn_body_object(rq, "meta");
	if (!in || !cn_metadata_ok(rq, in) || json_object_size(in) != 1 ||
	    !json_object_get(in, key)) {
		if (in && !rq->reply)
			cn_error(rq, 400,
				 "Request body and URI mismatch: give {\"meta\": {\"%.64s\": "
				 "VALUE}}.",
				 key);
		json_decref(md);
		return;
	}
	json_object_update(md, in);
	if (!cn_metadata_ok(rq, md)) {
		json_decref(md);
		return;
	}
	meta_store(rq, lvname, md, key);
}

void cn_meta(struct cn_req *rq, const char *kind)
{
	struct dlvm_lv *lv = cn_find(rq, cn_vg(rq), kind, rq->seg[1]);
	char lvname[DLVM_NAME_MAX + 1];

	if (!lv) {
		cn_error(rq, 404, "%s %.64s could not be found.",
			 !strcmp(kind, "volume") ? "Volume" : "Snapshot", rq->seg[1]);
		return;
	}
	snprintf(lvname, sizeof(lvname), "%s", lv->name);
	if (rq->nseg == 3)
		meta_all(rq, lv, lvname);
	else if (rq->nseg == 4)
		meta_key(rq, lv, lvname, rq->seg[3]);
	else
		cn_error(rq, 404, "The resource could not be found.");
}

/* os-extend: {"new_size": N}, larger than now; in-use from 3.42. */
static void volume_extend(struct cn_req *rq, struct dlvm_vg *vg, struct dlvm_lv *lv, json_t *a)
{
	const char *status = cn_volume_status(lv);
	uint64_t gib, cur = cn_gib(vg, lv);
	char size[32], full[2 * DLVM_NAME_MAX + 2];
	struct dlvm_err err = { 0 };

	if (!json_is_object(a)) {
		cn_error(rq, 400, "Invalid input: os-extend takes {\"new_size\": N}.");
		return;
	}
	if (!cn_size_ok(rq, json_object_get(a, "new_size"), "new_size", &gib))
		return;
	if (strcmp(status, "available") && !(rq->mv >= 42 && !strcmp(status, "in-use"))) {
		cn_error(rq, 400,
			 "Invalid volume: Volume status must be 'available'%s to extend, "
			 "not '%s'.",
			 rq->mv >= 42 ? " or 'in-use'" : " (or 'in-use' from microversion 3.42)",
			 status);
		return;
	}
	if (gib <= cur) {
		cn_error(rq, 400,
			 "Invalid input received: New size for extend must be greater "
			 "than current size. (current: %" PRIu64 ", extended: %" PRIu64 ").",
			 cur, gib);
		return;
	}
	snprintf(size, sizeof(size), "%" PRIu64 "g", gib);
	snprintf(full, sizeof(full), "%s/%s", rq->srv->vg, lv->name);
	int r = cn_cmd(rq, "lvextend", json_pack("{s:s}", "size", size), json_pack("[s]", full),
		       &err);
	if (r)
		cn_error(rq, cn_status_of(r), "Volume extend failed: %s", err.msg);
	else
		cn_reply(rq, 202, NULL);
}

/* A boolean of an action body: true/false, or the strings Cinder takes. */
static bool action_bool(struct cn_req *rq, json_t *a, const char *key, bool *out)
{
	json_t *v = json_is_object(a) ? json_object_get(a, key) : NULL;
	const char *s = json_string_value(v);

	if (json_is_boolean(v)) {
		*out = json_is_true(v);
		return true;
	}
	if (s && (!strcasecmp(s, "true") || !strcasecmp(s, "false") || !strcmp(s, "1") ||
		  !strcmp(s, "0"))) {
		*out = !strcasecmp(s, "true") || !strcmp(s, "1");
		return true;
	}
	cn_error(rq, 400, "Invalid input: give {\"%s\": true|false}.", key);
	return false;
}

/* os-set_bootable, os-update_readonly_flag: one boolean property; the
 * read-only flag also makes the LV read-only (the storage refuses writes). */
static void volume_flag(struct cn_req *rq, struct dlvm_lv *lv, json_t *a, const char *key,
			const char *prop)
{
	char lvname[DLVM_NAME_MAX + 1];
	struct dlvm_err err = { 0 };
	bool on;
	int r;

	if (!action_bool(rq, a, key, &on))
		return;
	snprintf(lvname, sizeof(lvname), "%s", lv->name);
	json_t *props = json_pack("{s:o}", prop, on ? json_string("true") : json_null());
	if ((r = cn_props(rq, lvname, props, &err)) ||
	    (!strcmp(prop, P_READONLY) && (r = cn_enforce_mode(rq, lvname, &err))))
		cn_error(rq, cn_status_of(r), "Volume update failed: %s", err.msg);
	else
		cn_reply(rq, 202, NULL);
}

/* os-reset_status: the recorded status (what an unattached volume shows). */
static void volume_reset(struct cn_req *rq, struct dlvm_lv *lv, json_t *a)
{
	static const char *const ok[] = {
		"available", "error",          "in-use",          "creating",    "deleting",
		"extending", "error_deleting", "error_extending", "maintenance", NULL
	};
	json_t *st = json_is_object(a) ? json_object_get(a, "status") : NULL;
	char lvname[DLVM_NAME_MAX + 1];
	struct dlvm_err err = { 0 };
	unsigned i = 0;

	while (ok[i] && (!json_is_string(st) || strcmp(ok[i], json_string_value(st))))
		i++;
	if (!ok[i]) {
		cn_error(rq, 400,
			 "Invalid input: os-reset_status takes {\"status\": S}, S one "
			 "of available, error, in-use, creating, deleting, extending, "
			 "error_deleting, error_extending, maintenance.");
		return;
	}
	snprintf(lvname, sizeof(lvname), "%s", lv->name);
	int r = cn_props(rq, lvname, json_pack("{s:s}", P_STATUS, ok[i]), &err);
	if (r)
		cn_error(rq, cn_status_of(r), "Volume update failed: %s", err.msg);
	else
		cn_reply(rq, 202, NULL);
}

void cn_volume_action(struct cn_req *rq, struct dlvm_vg *vg, struct dlvm_lv *lv)
{
	const char *name;
	json_t *a;

	if (!rq->body || json_object_size(rq->body) != 1) {
		cn_error(rq, 400, "Malformed request body: one action is expected.");
		return;
	}
	json_object_foreach(rq->body, name, a)
	{
		if (!strcmp(name, "os-extend"))
			volume_extend(rq, vg, lv, a);
		else if (!strcmp(name, "os-set_bootable"))
			volume_flag(rq, lv, a, "bootable", P_BOOTABLE);
		else if (!strcmp(name, "os-update_readonly_flag"))
			volume_flag(rq, lv, a, "readonly", P_READONLY);
		else if (!strcmp(name, "os-reset_status"))
			volume_reset(rq, lv, a);
		else if (!cn_legacy_action(rq, lv, name, a))
			cn_error(rq, 400, "There is no such action: %.64s", name);
	}
}
