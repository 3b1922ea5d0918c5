/* SPDX-License-Identifier: MIT */
/* Volumes: list, show, create (empty, from a snapshot, from a volume),
 * update, delete, metadata and the os-extend action. */
#include <inttypes.h>
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

/* A metadata object as the text of its property. */
static json_t *md_text(json_t *md)
{
	char *t = json_dumps(md, JSON_COMPACT);
	json_t *s = t ? json_string(t) : NULL;

	free(t);
	return s;
}

/* A volume's status: what its attachments say, else what is recorded. */
const char *cn_volume_status(const struct dlvm_lv *lv)
{
	bool attached = false, attaching = false, detaching = false, any = false;

	for (uint32_t i = 0; i < lv->props.n; i++) {
		const struct dlvm_prop *p = &lv->props.v[i];
		if (strncmp(p->key, P_ATT, strlen(P_ATT)))
			continue;
		json_t *a = json_loads(p->value, 0, NULL);
		const char *st = json_string_value(json_object_get(a, "status"));
		any = true;
		attached |= st && !strcmp(st, "attached");
		attaching |= st && !strcmp(st, "attaching");
		detaching |= st && !strcmp(st, "detaching");
		json_decref(a);
	}
	if (any)
		return detaching   ? "detaching"
		       : attached  ? "in-use"
		       : attaching ? "attaching"
				   : "reserved";
	const char *s = cn_prop(lv, P_STATUS);
	return s ? s : "error";
}

json_t *cn_volume_json(struct cn_req *rq, const struct dlvm_vg *vg, const struct dlvm_lv *lv)
{
	const char *id = cn_lv_id(lv);
	char host[512], type_id[CN_ID_LEN + 1];
	json_t *v;

	snprintf(host, sizeof(host), "%s@dlvm#%s/%s", rq->srv->host, rq->srv->vg, rq->srv->pool);
	cn_type_id(rq, vg, type_id);
	v = json_pack("{s:s,s:o,s:o,s:o,s:I,s:s,s:o,s:o,s:o,s:o,s:o,s:s,s:b,s:b,s:n,s:n}", "id", id,
		      "name", str_or_null(cn_prop(lv, P_NAME)), "description",
		      str_or_null(cn_prop(lv, P_DESC)), "status", str_or_null(cn_volume_status(lv)),
		      "size", (json_int_t)cn_gib(vg, lv), "availability_zone", "nova", "created_at",
		      str_or_null(cn_prop(lv, P_CREATED)), "updated_at",
		      str_or_null(cn_prop(lv, P_UPDATED)), "attachments",
		      cn_volume_attachments(rq, lv), "links", cn_links(rq, "volumes", id),
		      "metadata", cn_metadata(lv), "bootable",
		      cn_prop(lv, P_BOOTABLE) ? "true" : "false", "encrypted", 0, "multiattach", 0,
		      "replication_status", "consistencygroup_id");
	if (!v)
		return NULL;
	json_object_set_new(v, "source_volid", str_or_null(cn_prop(lv, P_SRCVOL)));
	json_object_set_new(v, "snapshot_id", str_or_null(cn_prop(lv, P_SNAP)));
	json_object_set_new(v, "volume_type", json_string(rq->srv->type_name));
	json_object_set_new(v, "user_id", str_or_null(cn_prop(lv, P_USER)));
	json_object_set_new(v, "os-vol-tenant-attr:tenant_id", str_or_null(cn_prop(lv, P_PROJECT)));
	json_object_set_new(v, "os-vol-host-attr:host", json_string(host));
	json_object_set_new(v, "os-vol-mig-status-attr:migstat", json_null());
	json_object_set_new(v, "os-vol-mig-status-attr:name_id", json_null());
	json_object_set_new(v, "migration_status", json_null());
	if (rq->mv >= 13)
		json_object_set_new(v, "group_id", json_null());
	if (rq->mv >= 21)
		json_object_set_new(v, "provider_id", json_null());
	if (rq->mv >= 48) {
		json_object_set_new(v, "service_uuid", json_null());
		json_object_set_new(v, "shared_targets", json_false());
	}
	if (rq->mv >= 63)
		json_object_set_new(v, "volume_type_id", json_string(type_id));
	return v;
}

/* Does lv pass the list filters (name, status; name~ from 3.34)? */
static bool volume_matches(struct cn_req *rq, const struct dlvm_lv *lv)
{
	const char *name = cn_arg(rq, "name"), *status = cn_arg(rq, "status");
	const char *like = rq->mv >= 34 ? cn_arg(rq, "name~") : NULL, *n = cn_prop(lv, P_NAME);

	if (name && (!n || strcmp(n, name)))
		return false;
	if (like && (!n || !strstr(n, like)))
		return false;
	return !status || !strcasecmp(cn_volume_status(lv), status);
}

static void volume_list(struct cn_req *rq, bool detail)
{
	struct dlvm_vg *vg = cn_vg(rq);
	json_t *items = json_array();

	for (size_t i = 0; vg && i < vg->nlv; i++) {
		const struct dlvm_lv *lv = vg->lvs[i];
		if (cn_visible(rq, lv, "volume") && volume_matches(rq, lv))
			json_array_append_new(items, cn_volume_json(rq, vg, lv));
	}
	cn_list_reply(rq, "volumes", items, !detail);
}

/* Reply with the volume named lvname as it is now. */
static void reply_volume(struct cn_req *rq, unsigned status, const char *lvname)
{
	struct dlvm_vg *vg = cn_vg(rq);
	struct dlvm_lv *lv = vg ? dlvm_lv_find(vg, lvname) : NULL;

	if (!lv)
		cn_error(rq, 500, "Volume %s is gone after its change", lvname);
	else
		cn_reply(rq, status, json_pack("{s:o}", "volume", cn_volume_json(rq, vg, lv)));
}

/* The source of a new volume: a snapshot or a volume of the project, in
 * `src` ("VG/LV") with its size. false with a reply when it is not one. */
static bool create_source(struct cn_req *rq, json_t *vol, char *src, size_t len, uint64_t *src_gib,
			  json_t *props)
{
	json_t *sid = json_object_get(vol, "snapshot_id"),
	       *vid = json_object_get(vol, "source_volid");
	struct dlvm_vg *vg = cn_vg(rq);
	bool snap = sid && !json_is_null(sid);
	json_t *id = snap ? sid : vid;

	if (!id || json_is_null(id))
		return true;
	if (snap && vid && !json_is_null(vid)) {
		cn_error(rq, 400, "Give snapshot_id or source_volid, not both.");
		return false;
	}
	if (!json_is_string(id)) {
		cn_error(rq, 400, "Invalid input for field/attribute %s: not a string.",
			 snap ? "snapshot_id" : "source_volid");
		return false;
	}
	const char *s = json_string_value(id);
	struct dlvm_lv *lv = cn_find(rq, vg, snap ? "snapshot" : "volume", s);
	if (!lv) {
		cn_error(rq, 404, "%s %.64s could not be found.", snap ? "Snapshot" : "Volume", s);
		return false;
	}
	const char *st = cn_prop(lv, P_STATUS);
	if (!st || (strcmp(st, "available") && (snap || strcmp(cn_volume_status(lv), "in-use")))) {
		cn_error(rq, 400, "Invalid %s: %s %s must be available, not %s.",
			 snap ? "snapshot" : "volume", snap ? "snapshot" : "volume", s,
			 st ? st : "error");
		return false;
	}
	snprintf(src, len, "%s/%s", rq->srv->vg, lv->name);
	*src_gib = cn_gib(vg, lv);
	json_object_set_new(props, snap ? P_SNAP : P_SRCVOL, json_string(s));
	return true;
}

/* Checks of a create body that change nothing: name, description,
 * metadata, type, zone, multiattach; their properties into props. */
static bool create_fields(struct cn_req *rq, json_t *vol, json_t *props)
{
	json_t *name = json_object_get(vol, "name"), *desc = json_object_get(vol, "description");
	json_t *md = json_object_get(vol, "metadata"), *type = json_object_get(vol, "volume_type");
	json_t *az = json_object_get(vol, "availability_zone");
	json_t *ma = json_object_get(vol, "multiattach");
	char type_id[CN_ID_LEN + 1];

	if (!name || json_is_null(name))
		name = json_object_get(vol, "display_name");
	if (!cn_text_ok(rq, name, "name") || !cn_text_ok(rq, desc, "description"))
		return false;
	if (md && !json_is_null(md) && !cn_metadata_ok(rq, md))
		return false;
	cn_type_id(rq, cn_vg(rq), type_id);
	if (type && !json_is_null(type) &&
	    (!json_is_string(type) || (strcmp(json_string_value(type), rq->srv->type_name) &&
				       strcmp(json_string_value(type), type_id)))) {
		cn_error(rq, 404, "Volume type with name %.64s could not be found.",
			 json_is_string(type) ? json_string_value(type) : "?");
		return false;
	}
	if (az && !json_is_null(az) &&
	    (!json_is_string(az) || strcmp(json_string_value(az), "nova"))) {
		cn_error(rq, 400, "Invalid input received: Availability zone '%.64s' is invalid.",
			 json_is_string(az) ? json_string_value(az) : "?");
		return false;
	}
	if (ma && json_is_true(ma)) {
		cn_error(rq, 400,
			 "Invalid input received: volume type %s does not allow "
			 "multiattach.",
			 rq->srv->type_name);
		return false;
	}
	if (json_is_string(name))
		json_object_set(props, P_NAME, name);
	if (json_is_string(desc))
		json_object_set(props, P_DESC, desc);
	if (json_is_object(md) && json_object_size(md))
		json_object_set_new(props, P_META, md_text(md));
	return true;
}

/* The LV of a new volume: lvcreate (-V in the pool, or --clone of src),
 * then lvextend when the size asked for is larger than the source's. */
static int create_lv(struct cn_req *rq, const char *lvname, const char *src, uint64_t gib,
		     uint64_t src_gib, struct dlvm_err *err)
{
	char size[32], full[2 * DLVM_NAME_MAX + 2];
	int r;

	/* in a shared VG a volume is active only where it is attached */
	const char *act = cn_shared(rq) ? "n" : "y";
	snprintf(size, sizeof(size), "%" PRIu64 "g", gib);
	snprintf(full, sizeof(full), "%s/%s", rq->srv->vg, lvname);
	if (!*src)
		return cn_cmd(rq, "lvcreate",
			      json_pack("{s:s,s:s,s:s,s:s}", "name", lvname, "virtualsize", size,
					"thinpool", rq->srv->pool, "activate", act),
			      json_pack("[s]", rq->srv->vg), err);
	r = cn_cmd(rq, "lvcreate",
		   json_pack("{s:s,s:b,s:s}", "name", lvname, "clone", 1, "activate", act),
		   json_pack("[s]", src), err);
	if (!r && gib > src_gib)
		r = cn_cmd(rq, "lvextend", json_pack("{s:s}", "size", size), json_pack("[s]", full),
			   err);
	return r;
}

static void volume_create(struct cn_req *rq)
{
	json_t *vol = cn_body_object(rq, "volume"), *props = json_object();
	char id[CN_ID_LEN + 1], lvname[DLVM_NAME_MAX + 1], src[2 * DLVM_NAME_MAX + 2] = "";
	char now[32];
	uint64_t gib = 0, src_gib = 0;
	struct dlvm_err err = { 0 };
	json_t *size;
	int r;

	if (!vol || !create_fields(rq, vol, props) ||
	    !create_source(rq, vol, src, sizeof(src), &src_gib, props))
		goto out;
	size = json_object_get(vol, "size");
	if ((!size || json_is_null(size)) && *src)
		gib = src_gib;
	else if (!cn_size_ok(rq, size, "size", &gib))
		goto out;
	if (*src && gib < src_gib) {
		cn_error(rq, 400,
			 "Invalid input received: size %" PRIu64 " is smaller than the "
			 "source's %" PRIu64 " GiB.",
			 gib, src_gib);
		goto out;
	}
	if (!cn_vg(rq) || !dlvm_lv_find(cn_vg(rq), rq->srv->pool)) {
		cn_error(rq, 503, "The pool %s/%s of volume type %s is not there.", rq->srv->vg,
			 rq->srv->pool, rq->srv->type_name);
		goto out;
	}
	cn_uuid(id);
	snprintf(lvname, sizeof(lvname), "volume-%s", id);
	cn_now(now);
	json_object_set_new(props, P_KIND, json_string("volume"));
	json_object_set_new(props, P_PROJECT, json_string(rq->project));
	json_object_set_new(props, P_USER, json_string(rq->user));
	json_object_set_new(props, P_STATUS, json_string("available"));
	json_object_set_new(props, P_CREATED, json_string(now));
	if ((r = create_lv(rq, lvname, src, gib, src_gib, &err))) {
		cn_error(rq, cn_status_of(r), "Volume creation failed: %s", err.msg);
		goto out;
	}
	r = cn_props(rq, lvname, props, &err);
	props = NULL;
	if (r) {
		/* a volume without its record is not left behind */
		struct dlvm_err e2 = { 0 };
		char full[2 * DLVM_NAME_MAX + 2];
		snprintf(full, sizeof(full), "%s/%s", rq->srv->vg, lvname);
		cn_cmd(rq, "lvremove", json_pack("{s:b}", "force", 1), json_pack("[s]", full), &e2);
		cn_error(rq, cn_status_of(r), "Volume creation failed: %s", err.msg);
		goto out;
	}
	reply_volume(rq, 202, lvname);
out:
	json_decref(props);
}

static void volume_update(struct cn_req *rq, struct dlvm_lv *lv)
{
	json_t *vol = cn_body_object(rq, "volume"), *props = json_object();
	char lvname[DLVM_NAME_MAX + 1];
	struct dlvm_err err = { 0 };

	snprintf(lvname, sizeof(lvname), "%s", lv->name);
	if (!vol)
		goto out;
	json_t *name = json_object_get(vol, "name"), *desc = json_object_get(vol, "description");
	json_t *md = json_object_get(vol, "metadata");
	if (!name)
		name = json_object_get(vol, "display_name");
	if (!desc)
		desc = json_object_get(vol, "display_description");
	if (!cn_text_ok(rq, name, "name") || !cn_text_ok(rq, desc, "description") ||
	    (md && !cn_metadata_ok(rq, md)))
		goto out;
	if (!name && !desc && !md) {
		cn_error(rq, 400, "Invalid input: give name, description or metadata.");
		goto out;
	}
	if (name)
		json_object_set(props, P_NAME, name);
	if (desc)
		json_object_set(props, P_DESC, desc);
	if (md)
		json_object_set_new(props, P_META,
				    json_object_size(md) ? md_text(md) : json_null());
	int r = cn_props(rq, lvname, props, &err);
	props = NULL;
	if (r)
		cn_error(rq, cn_status_of(r), "Volume update failed: %s", err.msg);
	else
		reply_volume(rq, 200, lvname);
out:
	json_decref(props);
}

/* Remove the volume (and with cascade its snapshots). */
static void volume_delete(struct cn_req *rq, struct dlvm_vg *vg, struct dlvm_lv *lv)
{
	const char *cascade = cn_arg(rq, "cascade"), *id = cn_lv_id(lv);
	bool casc = cascade && (!strcasecmp(cascade, "true") || !strcmp(cascade, "1"));
	unsigned nsnap = cn_snapshot_count(rq, vg, id);
	json_t *args = json_array();
	struct dlvm_err err = { 0 };
	char full[2 * DLVM_NAME_MAX + 2];

	if (cn_attachment_count(lv)) {
		cn_error(rq, 400,
			 "Invalid volume: Volume %s is attached (status %s): delete its "
			 "attachments first.",
			 id, cn_volume_status(lv));
		json_decref(args);
		return;
	}
	if (nsnap && !casc) {
		cn_error(rq, 400, "Invalid volume: Volume %s still has %u dependent snapshots.", id,
			 nsnap);
		json_decref(args);
		return;
	}
	for (size_t i = 0; nsnap && i < vg->nlv; i++) {
		const char *v = cn_prop(vg->lvs[i], P_VOLUME);
		if (v && !strcmp(v, id) && cn_visible(rq, vg->lvs[i], "snapshot")) {
			snprintf(full, sizeof(full), "%s/%s", rq->srv->vg, vg->lvs[i]->name);
			json_array_append_new(args, json_string(full));
		}
	}
	snprintf(full, sizeof(full), "%s/%s", rq->srv->vg, lv->name);
	json_array_append_new(args, json_string(full));
	/* no attachment: a client still connected is a stray one */
	int r = cn_cmd(rq, "lvremove", json_pack("{s:b}", "force", 1), args, &err);
	if (r)
		cn_error(rq, cn_status_of(r), "Volume deletion failed: %s", err.msg);
	else
		cn_reply(rq, 202, NULL);
}

/* volumes/ID[/...] */
static void volume_one(struct cn_req *rq)
{
	const char *m = rq->method;
	struct dlvm_vg *vg = cn_vg(rq);
	struct dlvm_lv *lv = cn_find(rq, vg, "volume", rq->seg[1]);

	if (!lv)
		cn_error(rq, 404, "Volume %.64s could not be found.", rq->seg[1]);
	else if (rq->nseg >= 3 && !strcmp(rq->seg[2], "metadata"))
		cn_meta(rq, "volume");
	else if (rq->nseg == 3 && !strcmp(rq->seg[2], "action") && !strcmp(m, "POST"))
		cn_volume_action(rq, vg, lv);
	else if (rq->nseg != 2)
		cn_error(rq, 404, "The resource could not be found.");
	else if (!strcmp(m, "GET"))
		cn_reply(rq, 200, json_pack("{s:o}", "volume", cn_volume_json(rq, vg, lv)));
	else if (!strcmp(m, "PUT"))
		volume_update(rq, lv);
	else if (!strcmp(m, "DELETE"))
		volume_delete(rq, vg, lv);
	else
		cn_error(rq, 405, "Method %s is not allowed on a volume.", m);
}

void cn_volumes(struct cn_req *rq)
{
	const char *m = rq->method;
	bool get = !strcmp(m, "GET");

	if (rq->nseg == 1 && get)
		volume_list(rq, false);
	else if (rq->nseg == 1 && !strcmp(m, "POST"))
		volume_create(rq);
	else if (rq->nseg == 2 && get && !strcmp(rq->seg[1], "detail"))
		volume_list(rq, true);
	else if (rq->nseg < 2)
		cn_error(rq, 405, "Method %s is not allowed on volumes.", m);
	else
		volume_one(rq);
}
