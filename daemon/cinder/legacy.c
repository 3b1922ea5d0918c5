/* SPDX-License-Identifier: MIT */
/*
 * The volume actions of the attach flow before 3.27, for older clients
 * (Nova's old flow: reserve, initialize_connection, attach, begin_detaching,
 * detach, terminate_connection). They work on the same attachment records
 * as /attachments: os-reserve makes a "reserved" one, os-attach completes it
 * (or makes an "attached" one), os-detach removes it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/cinder/cinder_int.h"
#include "dlvm/util.h"

/* The only attachment of lv in a given status (NULL: any), its id in aid
 * and its record (new reference); NULL when there is none. *n counts the
 * attachments. */
static json_t *only_att(const struct dlvm_lv *lv, const char *status, char aid[CN_ID_LEN + 1],
			unsigned *n)
{
	json_t *found = NULL;

	*n = 0;
	for (uint32_t i = 0; i < lv->props.n; i++) {
		const struct dlvm_prop *p = &lv->props.v[i];
		if (strncmp(p->key, P_ATT, strlen(P_ATT)))
			continue;
		json_t *a = json_loads(p->value, 0, NULL);
		const char *st = json_string_value(json_object_get(a, "status"));
		(*n)++;
		if (!found && a && (!status || (st && !strcmp(st, status)))) {
			found = a;
			snprintf(aid, CN_ID_LEN + 1, "%s", p->key + strlen(P_ATT));
			continue;
		}
		json_decref(a);
	}
	return found;
}

/* os-attach: {"instance_uuid", "mountpoint", "mode", "host_name"} */
static void legacy_attach(struct cn_req *rq, const char *lvname, const struct dlvm_lv *lv,
			  json_t *a)
{
	json_t *inst = json_object_get(a, "instance_uuid"), *mp = json_object_get(a, "mountpoint");
	json_t *mode = json_object_get(a, "mode"), *host = json_object_get(a, "host_name");
	char aid[CN_ID_LEN + 1], now[32];
	unsigned n;

	if (!json_is_object(a) || (inst && !json_is_null(inst) && !json_is_string(inst)) ||
	    !json_is_string(mp) || (host && !json_is_null(host) && !json_is_string(host)) ||
	    (mode && !json_is_null(mode) && !json_is_string(mode))) {
		cn_error(rq, 400,
			 "Invalid input: os-attach takes instance_uuid, host_name, "
			 "mountpoint (a string) and mode.");
		return;
	}
	const char *m = json_is_string(mode) ? json_string_value(mode) : "rw";
	if (strcmp(m, "rw") && strcmp(m, "ro")) {
		cn_error(rq, 400, "Invalid attaching mode '%.16s' for volume %s.", m, cn_lv_id(lv));
		return;
	}
	if (cn_prop(lv, P_READONLY) && !strcmp(m, "rw")) {
		cn_error(rq, 400, "Invalid attaching mode 'rw' for volume %s: it is read-only.",
			 cn_lv_id(lv));
		return;
	}
	json_t *rec = only_att(lv, "reserved", aid, &n);
	if (!rec && n) {
		cn_error(rq, 400,
			 "Invalid volume: Volume %s is attached already (the type does not "
			 "allow multiattach).",
			 cn_lv_id(lv));
		return;
	}
	if (!rec) {
		cn_uuid(aid);
		cn_now(now);
		rec = json_pack("{s:s}", "created_at", now);
	}
	cn_now(now);
	json_object_set(rec, "instance", inst ? inst : json_null());
	json_object_set_new(rec, "mode", json_string(m));
	json_object_set_new(rec, "status", json_string("attached"));
	json_object_set_new(rec, "attached_at", json_string(now));
	json_object_set_new(rec, "connector",
			    json_pack("{s:O,s:O}", "host", host ? host : json_null(), "mountpoint",
				      mp));
	if (cn_att_store(rq, lvname, aid, rec))
		cn_reply(rq, 202, NULL);
	json_decref(rec);
}

/* os-detach: {"attachment_id"}; without it the one attachment there is. */
static void legacy_detach(struct cn_req *rq, const char *lvname, const struct dlvm_lv *lv,
			  json_t *a)
{
	json_t *id = json_is_object(a) ? json_object_get(a, "attachment_id") : NULL;
	char aid[CN_ID_LEN + 1], key[DLVM_PROP_KEY_MAX + 1];
	unsigned n;

	if (id && !json_is_null(id)) {
		snprintf(key, sizeof(key), P_ATT "%.64s", json_string_value(id) ?: "");
		if (!json_is_string(id) || !cn_prop(lv, key)) {
			cn_error(rq, 404, "Attachment %.64s could not be found on volume %s.",
				 json_string_value(id) ?: "?", cn_lv_id(lv));
			return;
		}
		snprintf(aid, sizeof(aid), "%s", json_string_value(id));
	} else {
		json_t *rec = only_att(lv, NULL, aid, &n);
		json_decref(rec);
		if (n != 1) {
			cn_error(rq, 400,
				 n ? "Invalid volume: Volume %s is attached more than once: "
				     "attachment_id is required to detach it."
				   : "Invalid volume: Volume %s is not attached.",
				 cn_lv_id(lv));
			return;
		}
	}
	if (cn_att_store(rq, lvname, aid, NULL))
		cn_reply(rq, 202, NULL);
}

/* os-begin_detaching and os-roll_detaching: the attachment's status. */
static void legacy_detaching(struct cn_req *rq, const char *lvname, const struct dlvm_lv *lv,
			     bool begin)
{
	char aid[CN_ID_LEN + 1];
	unsigned n;
	json_t *rec = only_att(lv, begin ? "attached" : "detaching", aid, &n);

	if (!rec) {
		cn_error(rq, 400, "Invalid volume: Volume %s status must be %s, not %s.",
			 cn_lv_id(lv), begin ? "in-use" : "detaching", cn_volume_status(lv));
		return;
	}
	json_object_set_new(rec, "status", json_string(begin ? "detaching" : "attached"));
	if (cn_att_store(rq, lvname, aid, rec))
		cn_reply(rq, 202, NULL);
	json_decref(rec);
}

/* os-reserve: a "reserved" attachment; os-unreserve takes it away. */
static void legacy_reserve(struct cn_req *rq, const char *lvname, const struct dlvm_lv *lv,
			   bool reserve)
{
	char aid[CN_ID_LEN + 1], now[32];
	unsigned n;
	json_t *rec = only_att(lv, "reserved", aid, &n);

	if (reserve && n) {
		cn_error(rq, 400,
			 "Invalid volume: Volume %s status must be available to reserve, "
			 "but the current status is %s.",
			 cn_lv_id(lv), cn_volume_status(lv));
	} else if (reserve) {
		cn_uuid(aid);
		cn_now(now);
		json_t *r = json_pack("{s:n,s:s,s:s,s:n,s:n,s:s}", "instance", "mode",
				      cn_prop(lv, P_READONLY) ? "ro" : "rw", "status", "reserved",
				      "connector", "attached_at", "created_at", now);
		if (r && cn_att_store(rq, lvname, aid, r))
			cn_reply(rq, 202, NULL);
		json_decref(r);
	} else if (!rec || cn_att_store(rq, lvname, aid, NULL)) {
		cn_reply(rq, 202, NULL); /* nothing reserved: nothing to do */
	}
	json_decref(rec);
}

/* os-initialize_connection: {"connector": {...}} -> {"connection_info"};
 * os-terminate_connection: the connector is let go. In a shared VG the
 * first activates the volume here, the second deactivates it when it has
 * no attachment. */
static void legacy_connection(struct cn_req *rq, const char *lvname, const struct dlvm_lv *lv,
			      json_t *a, bool init)
{
	json_t *conn = json_is_object(a) ? json_object_get(a, "connector") : NULL;
	char aid[CN_ID_LEN + 1] = "", full[2 * DLVM_NAME_MAX + 2];
	struct dlvm_err err = { 0 };
	unsigned n;
	int r = 0;

	if (!json_is_object(conn)) {
		cn_error(rq, 400, "Invalid input: give {\"connector\": {...}}.");
		return;
	}
	json_t *rec = only_att(lv, NULL, aid, &n);
	const char *mode = rec ? json_string_value(json_object_get(rec, "mode")) : NULL;
	if (!mode)
		mode = cn_prop(lv, P_READONLY) ? "ro" : "rw";
	json_t *info = init ? cn_connection_info(rq, lv, rec ? aid : NULL, mode) : NULL;
	json_decref(rec);
	snprintf(full, sizeof(full), "%s/%s", rq->srv->vg, lvname);
	if (cn_shared(rq) && (init || !n))
		r = cn_cmd(rq, "lvchange",
			   init ? json_pack("{s:s}", "activate", "ey")
				: json_pack("{s:s,s:b}", "activate", "n", "force", 1),
			   json_pack("[s]", full), &err);
	if (r)
		cn_error(rq, r == -EBUSY ? 409 : cn_status_of(r), "%s failed: %s",
			 init ? "Initialize connection" : "Terminate connection", err.msg);
	else if (init)
		cn_reply(rq, 200, json_pack("{s:O}", "connection_info", info));
	else
		cn_reply(rq, 202, NULL);
	json_decref(info);
}

bool cn_legacy_action(struct cn_req *rq, const struct dlvm_lv *lv, const char *name, json_t *a)
{
	char lvname[DLVM_NAME_MAX + 1];

	snprintf(lvname, sizeof(lvname), "%s", lv->name);
	if (!strcmp(name, "os-attach"))
		legacy_attach(rq, lvname, lv, a);
	else if (!strcmp(name, "os-detach"))
		legacy_detach(rq, lvname, lv, a);
	else if (!strcmp(name, "os-begin_detaching") || !strcmp(name, "os-roll_detaching"))
		legacy_detaching(rq, lvname, lv, !strcmp(name, "os-begin_detaching"));
	else if (!strcmp(name, "os-reserve") || !strcmp(name, "os-unreserve"))
		legacy_reserve(rq, lvname, lv, !strcmp(name, "os-reserve"));
	else if (!strcmp(name, "os-initialize_connection") ||
		 !strcmp(name, "os-terminate_connection"))
		legacy_connection(rq, lvname, lv, a, !strcmp(name, "os-initialize_connection"));
	else
		return false;
	return true;
}
