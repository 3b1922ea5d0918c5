/* SPDX-License-Identifier: MIT */
/*
 * Attachments (3.27+): each is the property "cinder.att.ID" of its volume's
 * LV, a JSON object {instance, mode, status, connector, attached_at,
 * created_at}. connection_info names the NBD export of the volume (VG/LV)
 * and how to reach it. The mode is enforced by the storage: while a volume
 * has attachments and all of them are read-only, its LV is read-only
 * (lvchange -p r, open writers disconnected), so its export refuses writes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/cinder/cinder_int.h"
#include "dlvm/util.h"

unsigned cn_attachment_count(const struct dlvm_lv *lv)
{
	unsigned n = 0;

	for (uint32_t i = 0; i < lv->props.n; i++)
		n += !strncmp(lv->props.v[i].key, P_ATT, strlen(P_ATT));
	return n;
}

/* The attachment record of property i of lv (new reference or NULL). */
static json_t *att_record(const struct dlvm_lv *lv, uint32_t i, const char **aid)
{
	const struct dlvm_prop *p = &lv->props.v[i];

	if (strncmp(p->key, P_ATT, strlen(P_ATT)))
		return NULL;
	*aid = p->key + strlen(P_ATT);
	json_t *a = json_loads(p->value, 0, NULL);
	if (!json_is_object(a)) {
		json_decref(a);
		return NULL;
	}
	return a;
}

json_t *cn_connection_info(struct cn_req *rq, const struct dlvm_lv *lv, const char *aid,
			   const char *mode)
{
	char export[2 * DLVM_NAME_MAX + 2], uri[PATH_MAX + 300], tcp[600];
	struct cn_server *s = rq->srv;

	snprintf(export, sizeof(export), "%s/%s", s->vg, lv->name);
	snprintf(uri, sizeof(uri), "nbd+unix:///%s?socket=%s", export, s->nbd_socket);
	json_t *d = json_pack("{s:s,s:s,s:s,s:s,s:b,s:s,s:o}", "export_name", export, "socket",
			      s->nbd_socket, "uri", uri, "access_mode", mode, "read_only",
			      !strcmp(mode, "ro"), "volume_id", cn_lv_id(lv), "attachment_id",
			      aid ? json_string(aid) : json_null());
	if (d && s->nbd_port) {
		snprintf(tcp, sizeof(tcp), "nbd://%s:%u/%s", s->nbd_host, s->nbd_port, export);
		json_object_set_new(d, "host", json_string(s->nbd_host));
		json_object_set_new(d, "port", json_integer(s->nbd_port));
		json_object_set_new(d, "tcp_uri", json_string(tcp));
		json_object_set_new(d, "tls", json_string(s->nbd_tls)); /* over TCP */
	}
	return json_pack("{s:s,s:o}", "driver_volume_type", "nbd", "data", d);
}

/* An attachment as the API shows it: summary, or with details and (conn)
 * its connection_info. */
static json_t *att_json(struct cn_req *rq, const struct dlvm_lv *lv, const char *aid, json_t *a,
			bool detail, bool conn)
{
	json_t *st = json_object_get(a, "status"), *mode = json_object_get(a, "mode");
	json_t *v = json_pack("{s:s,s:O,s:O,s:s}", "id", aid, "status", st, "instance",
			      json_object_get(a, "instance"), "volume_id", cn_lv_id(lv));

	if (!v || !detail)
		return v;
	json_object_set(v, "attached_at", json_object_get(a, "attached_at"));
	json_object_set_new(v, "detached_at", json_null());
	json_object_set(v, "attach_mode", mode);
	json_object_set(v, "created_at", json_object_get(a, "created_at"));
	json_object_set_new(v, "connection_info",
			    conn && json_is_object(json_object_get(a, "connector"))
					    ? cn_connection_info(rq, lv, aid,
								 json_string_value(mode))
					    : json_object());
	return v;
}

json_t *cn_volume_attachments(struct cn_req *rq, const struct dlvm_lv *lv)
{
	json_t *out = json_array();
	const char *aid;

	(void)rq;
	for (uint32_t i = 0; i < lv->props.n; i++) {
		json_t *a = att_record(lv, i, &aid);
		if (!a)
			continue;
		json_t *c = json_object_get(a, "connector");
		json_t *host = json_object_get(c, "host"), *dev = json_object_get(c, "mountpoint");
		json_array_append_new(out,
				      json_pack("{s:s,s:s,s:s,s:O,s:O,s:O,s:O}", "id", cn_lv_id(lv),
						"attachment_id", aid, "volume_id", cn_lv_id(lv),
						"server_id", json_object_get(a, "instance"),
						"host_name", host ? host : json_null(), "device",
						dev ? dev : json_null(), "attached_at",
						json_object_get(a, "attached_at")));
		json_decref(a);
	}
	return out;
}

int cn_enforce_mode(struct cn_req *rq, const char *lvname, struct dlvm_err *err)
{
	struct dlvm_vg *vg = cn_vg(rq);
	struct dlvm_lv *lv = vg ? dlvm_lv_find(vg, lvname) : NULL;
	unsigned n = 0, ro = 0;
	const char *aid;
	char full[2 * DLVM_NAME_MAX + 2];

	if (!lv)
		return dlvm_err_set(err, -ENOENT, "%s: gone", lvname);
	for (uint32_t i = 0; i < lv->props.n; i++) {
		json_t *a = att_record(lv, i, &aid);
		if (!a)
			continue;
		n++;
		ro += !strcmp(json_string_value(json_object_get(a, "mode")) ?: "", "ro");
		json_decref(a);
	}
	/* os-update_readonly_flag makes it read-only whatever its attachments */
	bool want_ro = (n && ro == n) || cn_prop(lv, P_READONLY),
	     is_ro = lv->flags & DLVM_LV_READONLY;
	if (want_ro == is_ro)
		return 0;
	snprintf(full, sizeof(full), "%s/%s", rq->srv->vg, lvname);
	/* to read-only: writers still connected are cut off */
	return cn_cmd(rq, "lvchange",
		      json_pack("{s:s,s:b}", "permission", want_ro ? "r" : "rw", "force", want_ro),
		      json_pack("[s]", full), err);
}

/* The volume LV holding attachment aid (visible to rq) and its record. */
static struct dlvm_lv *att_find(struct cn_req *rq, const char *aid, json_t **rec)
{
	struct dlvm_vg *vg = cn_vg(rq);
	char key[DLVM_PROP_KEY_MAX + 1];

	*rec = NULL;
	if (strlen(aid) != CN_ID_LEN)
		return NULL;
	snprintf(key, sizeof(key), P_ATT "%s", aid);
	for (size_t i = 0; vg && i < vg->nlv; i++) {
		const char *v = cn_prop(vg->lvs[i], key);
		if (v && cn_visible(rq, vg->lvs[i], "volume")) {
			*rec = json_loads(v, 0, NULL);
			return json_is_object(*rec) ? vg->lvs[i] : NULL;
		}
	}
	return NULL;
}

/* In a shared VG a volume is active (exclusively) on the host that serves
 * its attachment, and nowhere without one: -aey here, or -an (its clients
 * cut off) when its last attachment goes. */
static int shared_activation(struct cn_req *rq, const char *lvname, struct dlvm_err *err)
{
	struct dlvm_vg *vg = cn_vg(rq);
	struct dlvm_lv *lv = vg ? dlvm_lv_find(vg, lvname) : NULL;
	char full[2 * DLVM_NAME_MAX + 2];

	if (!lv || !(vg->info.flags & DLVM_VG_SHARED))
		return 0;
	snprintf(full, sizeof(full), "%s/%s", rq->srv->vg, lvname);
	if (cn_attachment_count(lv))
		return cn_cmd(rq, "lvchange", json_pack("{s:s}", "activate", "ey"),
			      json_pack("[s]", full), err);
	return cn_cmd(rq, "lvchange", json_pack("{s:s,s:b}", "activate", "n", "force", 1),
		      json_pack("[s]", full), err);
}

/* Write attachment aid's record (NULL: delete it) on lvname, then enforce
 * the mode (and in a shared VG the activation); a reply on failure. */
bool cn_att_store(struct cn_req *rq, const char *lvname, const char *aid, json_t *rec)
{
	char key[DLVM_PROP_KEY_MAX + 1], *text = rec ? json_dumps(rec, JSON_COMPACT) : NULL;
	struct dlvm_err err = { 0 };
	json_t *props = json_object();
	int r;

	snprintf(key, sizeof(key), P_ATT "%s", aid);
	if (rec && (!text || strlen(text) > DLVM_PROP_VALUE_MAX)) {
		free(text);
		json_decref(props);
		cn_error(rq, 400,
			 "Invalid input: the connector is too large (at most %u bytes "
			 "with the attachment).",
			 DLVM_PROP_VALUE_MAX);
		return false;
	}
	json_object_set_new(props, key, text ? json_string(text) : json_null());
	free(text);
	if ((r = cn_props(rq, lvname, props, &err)) || (r = cn_enforce_mode(rq, lvname, &err)) ||
	    (r = shared_activation(rq, lvname, &err))) {
		cn_error(rq, r == -EBUSY ? 409 : cn_status_of(r), "Attachment update failed: %s",
			 err.msg);
		return false;
	}
	return true;
}

/* Reply with attachment aid as stored now. */
static void reply_att(struct cn_req *rq, unsigned status, const char *aid)
{
	json_t *rec;
	struct dlvm_lv *lv = att_find(rq, aid, &rec);

	if (!lv)
		cn_error(rq, 500, "Attachment %s is gone after its change", aid);
	else
		cn_reply(rq, status,
			 json_pack("{s:o}", "attachment", att_json(rq, lv, aid, rec, true, true)));
	json_decref(rec);
}

/* The mode of a create body: rw unless 3.54's mode says ro. */
static bool att_mode(struct cn_req *rq, json_t *m, const char **mode)
{
	*mode = "rw";
	if (!m || json_is_null(m))
		return true;
	if (rq->mv < 54) {
		cn_error(rq, 400, "Invalid input: the attachment mode needs microversion 3.54.");
		return false;
	}
	if (!json_is_string(m) ||
	    (strcmp(json_string_value(m), "rw") && strcmp(json_string_value(m), "ro"))) {
		cn_error(rq, 400, "Invalid attachment mode: 'rw' or 'ro' is expected.");
		return false;
	}
	*mode = json_string_value(m);
	return true;
}

static void att_create(struct cn_req *rq)
{
	json_t *a = cn_body_object(rq, "attachment"), *conn, *inst, *vid;
	char aid[CN_ID_LEN + 1], now[32], lvname[DLVM_NAME_MAX + 1];
	const char *mode;
	struct dlvm_lv *lv;

	if (!a || !att_mode(rq, json_object_get(a, "mode"), &mode))
		return;
	bool mode_given = json_is_string(json_object_get(a, "mode"));
	vid = json_object_get(a, "volume_uuid");
	inst = json_object_get(a, "instance_uuid");
	conn = json_object_get(a, "connector");
	if (!json_is_string(vid) || (inst && !json_is_null(inst) && !json_is_string(inst)) ||
	    (conn && !json_is_null(conn) && !json_is_object(conn))) {
		cn_error(rq, 400,
			 "Invalid input: an attachment needs volume_uuid (a string), "
			 "instance_uuid (a string) and connector (an object).");
		return;
	}
	if (!(lv = cn_find(rq, cn_vg(rq), "volume", json_string_value(vid)))) {
		cn_error(rq, 404, "Volume %.64s could not be found.", json_string_value(vid));
		return;
	}
	if (cn_attachment_count(lv)) {
		cn_error(rq, 400,
			 "Invalid volume: Volume %s status must be available or "
			 "downloading to reserve, but the current status is %s (the type "
			 "does not allow multiattach).",
			 cn_lv_id(lv), cn_volume_status(lv));
		return;
	}
	if (cn_prop(lv, P_READONLY)) {
		/* a read-only volume is attached read-only, as Cinder does */
		if (mode_given && !strcmp(mode, "rw")) {
			cn_error(rq, 400,
				 "Invalid attach mode 'rw' for volume %s: it is read-only "
				 "(os-update_readonly_flag).",
				 cn_lv_id(lv));
			return;
		}
		mode = "ro";
	}
	bool has_conn = json_is_object(conn) && json_object_size(conn);
	cn_uuid(aid);
	cn_now(now);
	snprintf(lvname, sizeof(lvname), "%s", lv->name);
	json_t *rec = json_pack("{s:O,s:s,s:s,s:O,s:n,s:s}", "instance", inst ? inst : json_null(),
				"mode", mode, "status", has_conn ? "attaching" : "reserved",
				"connector", has_conn ? conn : json_null(), "attached_at",
				"created_at", now);
	bool ok = rec && cn_att_store(rq, lvname, aid, rec);
	json_decref(rec);
	if (ok) {
		reply_att(rq, 202, aid);
		return;
	}
	/* refused (by another host holding the volume, say): no record stays */
	struct dlvm_err e2 = { 0 };
	char key[DLVM_PROP_KEY_MAX + 1];
	snprintf(key, sizeof(key), P_ATT "%s", aid);
	if (!cn_props(rq, lvname, json_pack("{s:n}", key), &e2))
		cn_enforce_mode(rq, lvname, &e2);
}

/* PUT attachments/ID {"attachment": {"connector": {...}}} */
static void att_update(struct cn_req *rq, const char *lvname, const char *aid, json_t *rec)
{
	json_t *a = cn_body_object(rq, "attachment"),
	       *conn = a ? json_object_get(a, "connector") : NULL;

	if (!a)
		return;
	if (!json_is_object(conn)) {
		cn_error(rq, 400, "Invalid input: give the connector (an object).");
		return;
	}
	json_object_set(rec, "connector", conn);
	if (strcmp(json_string_value(json_object_get(rec, "status")) ?: "", "attached"))
		json_object_set_new(rec, "status", json_string("attaching"));
	if (cn_att_store(rq, lvname, aid, rec))
		reply_att(rq, 200, aid);
}

/* POST attachments/ID/action {"os-complete": ...} (3.44) */
static void att_action(struct cn_req *rq, const char *lvname, const char *aid, json_t *rec)
{
	char now[32];

	if (rq->mv < 44 || !rq->body || !json_object_get(rq->body, "os-complete") ||
	    json_object_size(rq->body) != 1) {
		cn_error(rq, rq->mv < 44 ? 404 : 400,
			 rq->mv < 44 ? "The resource could not be found (os-complete needs "
				       "microversion 3.44)."
				     : "There is no such action: only os-complete is known.");
		return;
	}
	cn_now(now);
	json_object_set_new(rec, "status", json_string("attached"));
	json_object_set_new(rec, "attached_at", json_string(now));
	if (cn_att_store(rq, lvname, aid, rec))
		cn_reply(rq, 202, NULL);
}

static void att_delete(struct cn_req *rq, const char *lvname, const char *aid)
{
	if (!cn_att_store(rq, lvname, aid, NULL))
		return;
	struct dlvm_vg *vg = cn_vg(rq);
	struct dlvm_lv *lv = vg ? dlvm_lv_find(vg, lvname) : NULL;
	json_t *left = json_array();
	const char *id;
	for (uint32_t i = 0; lv && i < lv->props.n; i++) {
		json_t *r = att_record(lv, i, &id);
		if (r)
			json_array_append_new(left, att_json(rq, lv, id, r, false, false));
		json_decref(r);
	}
	cn_reply(rq, 200, json_pack("{s:o}", "attachments", left));
}

static void att_list(struct cn_req *rq, bool detail)
{
	const char *vol = cn_arg(rq, "volume_id"), *inst = cn_arg(rq, "instance_id");
	const char *status = cn_arg(rq, "status"), *aid;
	struct dlvm_vg *vg = cn_vg(rq);
	json_t *items = json_array();

	for (size_t i = 0; vg && i < vg->nlv; i++) {
		const struct dlvm_lv *lv = vg->lvs[i];
		if (!cn_visible(rq, lv, "volume") || (vol && strcmp(vol, cn_lv_id(lv))))
			continue;
		for (uint32_t k = 0; k < lv->props.n; k++) {
			json_t *a = att_record(lv, k, &aid);
			const char *ai = a ? json_string_value(json_object_get(a, "instance"))
					   : NULL;
			const char *as = a ? json_string_value(json_object_get(a, "status")) : NULL;
			if (a && (!inst || (ai && !strcmp(ai, inst))) &&
			    (!status || (as && !strcmp(as, status))))
				json_array_append_new(items,
						      att_json(rq, lv, aid, a, detail, false));
			json_decref(a);
		}
	}
	cn_list_reply(rq, "attachments", items, false);
}

void cn_attachments(struct cn_req *rq)
{
	const char *m = rq->method;
	char lvname[DLVM_NAME_MAX + 1], aid[CN_ID_LEN + 1];
	json_t *rec = NULL;
	struct dlvm_lv *lv;

	if (rq->mv < 27)
		cn_error(rq, 404,
			 "The resource could not be found (attachments need microversion "
			 "3.27).");
	else if (rq->nseg == 1 && !strcmp(m, "GET"))
		att_list(rq, false);
	else if (rq->nseg == 1 && !strcmp(m, "POST"))
		att_create(rq);
	else if (rq->nseg == 2 && !strcmp(m, "GET") && !strcmp(rq->seg[1], "detail"))
		att_list(rq, true);
	else if (rq->nseg < 2 || rq->nseg > 3)
		cn_error(rq, rq->nseg < 2 ? 405 : 404, "Method or resource not found.");
	else if (!(lv = att_find(rq, rq->seg[1], &rec)))
		cn_error(rq, 404, "Attachment %.64s could not be found.", rq->seg[1]);
	else {
		snprintf(lvname, sizeof(lvname), "%s", lv->name);
		snprintf(aid, sizeof(aid), "%s", rq->seg[1]);
		if (rq->nseg == 3 && !strcmp(rq->seg[2], "action") && !strcmp(m, "POST"))
			att_action(rq, lvname, aid, rec);
		else if (rq->nseg == 3)
			cn_error(rq, 404, "The resource could not be found.");
		else if (!strcmp(m, "GET"))
			cn_reply(rq, 200,
				 json_pack("{s:o}", "attachment",
					   att_json(rq, lv, aid, rec, true, true)));
		else if (!strcmp(m, "PUT"))
			att_update(rq, lvname, aid, rec);
		else if (!strcmp(m, "DELETE"))
			att_delete(rq, lvname, aid);
		else
			cn_error(rq, 405, "Method %s is not allowed on an attachment.", m);
	}
	json_decref(rec);
}
