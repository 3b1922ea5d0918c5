/* SPDX-License-Identifier: MIT */
/* Internals of the Cinder API shared by its files: the server, one request,
 * the replies, and the mapping between Cinder resources and LVs. */
#ifndef DLVMD_CINDER_INT_H
#define DLVMD_CINDER_INT_H

#include <jansson.h>
#include <limits.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdbool.h>

#include "daemon/cinder/cinder.h"
#include "dlvm/format.h"
#include "dlvm/vg.h"

/* Microversions served: 3.0 to CN_MV_MAX (the minor number). */
#define CN_MV_MAX 54
#define CN_MAX_LIMIT 1000 /* the most items one list answers (osapi_max_limit) */
#define CN_TEXT_MAX 255   /* names, descriptions, metadata keys and values */
#define CN_ID_LEN 36      /* a UUID in text */

/* Property keys of a volume or snapshot LV (docs/api.md). */
#define P_KIND "cinder.kind" /* "volume" or "snapshot" */
#define P_PROJECT "cinder.project"
#define P_USER "cinder.user"
#define P_NAME "cinder.name"
#define P_DESC "cinder.description"
#define P_STATUS "cinder.status"
#define P_CREATED "cinder.created_at"
#define P_UPDATED "cinder.updated_at"
#define P_META "cinder.metadata"       /* a JSON object */
#define P_SNAP "cinder.snapshot_id"    /* volume made from that snapshot */
#define P_SRCVOL "cinder.source_volid" /* volume cloned from that volume */
#define P_VOLUME "cinder.volume_id"    /* a snapshot's volume */
#define P_BOOTABLE "cinder.bootable"   /* "true" (absent: false) */
#define P_READONLY "cinder.readonly"   /* "true": os-update_readonly_flag */
#define P_ATT "cinder.att."            /* + attachment id: a JSON object */

struct cn_server {
	struct dlvm_ctx *ctx;
	pthread_mutex_t *lock; /* the context's command lock */
	struct MHD_Daemon *mhd;
	char vg[DLVM_NAME_MAX + 1], pool[DLVM_NAME_MAX + 1];
	char type_name[CN_TEXT_MAX + 1];
	char host[256]; /* this host's name, for os-vol-host-attr:host */
	char nbd_socket[PATH_MAX];
	char nbd_host[256];
	unsigned nbd_port; /* 0: no TCP listener */
	char nbd_tls[16];
};

/* One request while it is served. */
struct cn_req {
	struct cn_server *srv;
	struct MHD_Connection *conn;
	const char *method;
	char id[48];                   /* x-openstack-request-id: "req-" + UUID */
	char project[CN_TEXT_MAX + 2]; /* the project the request acts for */
	char user[CN_TEXT_MAX + 2];
	char base[512];     /* "http://HOST/v3/PROJECT": links */
	unsigned mv;        /* the microversion's minor number */
	const char *seg[5]; /* the path after /v3[/PROJECT], split at '/' */
	unsigned nseg;
	json_t *body;      /* the request's JSON body, or NULL */
	bool all_projects; /* all_tenants=1 */
	/* the reply */
	unsigned status;
	json_t *reply; /* NULL: no body */
};

/* ---- replies (server.c) ---- */
/* A Cinder error: {"badRequest": {"code": 400, "message": ...}}. */
void cn_error(struct cn_req *rq, unsigned status, const char *fmt, ...)
		__attribute__((format(printf, 3, 4)));
/* status and body (taken) of the reply. */
void cn_reply(struct cn_req *rq, unsigned status, json_t *body);
/* The HTTP status a command's -errno is answered with. */
unsigned cn_status_of(int r);
/* A query argument, or NULL. */
const char *cn_arg(struct cn_req *rq, const char *name);
/* The time now as Cinder writes it: "2024-01-31T12:00:00.000000". */
void cn_now(char out[32]);
/* A new UUID in text. */
void cn_uuid(char out[CN_ID_LEN + 1]);
/* The JSON member `name` of the request body, which must be an object:
 * NULL (and a 400 reply) when it is missing or not an object. */
json_t *cn_body_object(struct cn_req *rq, const char *name);

/* ---- the store: resources as LVs (store.c) ---- */
/* The VG of the pool (reloaded by commands: look it up again after one). */
struct dlvm_vg *cn_vg(struct cn_req *rq);
/* "volume-ID" / "snapshot-ID": the LV of a resource of kind, visible to the
 * request's project; NULL when the id does not name one. */
struct dlvm_lv *cn_find(struct cn_req *rq, struct dlvm_vg *vg, const char *kind, const char *id);
/* Is the pool's VG shared (volumes are active only where attached)? */
bool cn_shared(struct cn_req *rq);
/* A property of lv, or NULL. */
const char *cn_prop(const struct dlvm_lv *lv, const char *key);
/* The resource id of a volume or snapshot LV (after "volume-"). */
const char *cn_lv_id(const struct dlvm_lv *lv);
/* Is the LV a volume or snapshot of this API (kind) that rq may see? */
bool cn_visible(struct cn_req *rq, const struct dlvm_lv *lv, const char *kind);
/* Run a dlvm command (opts, args taken); messages go to the log with the
 * request id. 0 or -errno with err set. */
int cn_cmd(struct cn_req *rq, const char *cmd, json_t *opts, json_t *args, struct dlvm_err *err);
/* Set (string values) and delete (null values) properties of LV `lvname`
 * in one transaction; `updated_at` is set too. set is taken. */
int cn_props(struct cn_req *rq, const char *lvname, json_t *set, struct dlvm_err *err);
/* The metadata JSON object of lv (new reference; {} when none). */
json_t *cn_metadata(const struct dlvm_lv *lv);
/* Check a metadata object from a request (keys and values strings of at
 * most 255 characters, the whole at most DLVM_PROP_VALUE_MAX bytes); a
 * 400 or 413 reply and false when it is not right. */
bool cn_metadata_ok(struct cn_req *rq, json_t *md);
/* Check an optional string member (name, description): NULL or a string of
 * at most 255 characters without NUL. false with a 400 reply. */
bool cn_text_ok(struct cn_req *rq, json_t *v, const char *what);
/* The size of an LV in GiB (rounded up). */
uint64_t cn_gib(const struct dlvm_vg *vg, const struct dlvm_lv *lv);
/* Parse a size in GiB from JSON (integer or digits): 1..the largest thin
 * volume; false with a 400 reply. */
bool cn_size_ok(struct cn_req *rq, json_t *v, const char *what, uint64_t *out);
/* Sort, page and count a list reply (docs/api.md): items (taken) are full
 * objects; `summary` keeps only id, name and links. */
void cn_list_reply(struct cn_req *rq, const char *coll, json_t *items, bool summary);
/* links of a resource: self and bookmark. */
json_t *cn_links(struct cn_req *rq, const char *coll, const char *id);

/* ---- resources ---- */
void cn_volumes(struct cn_req *rq); /* volumes.c */
/* KIND/ID/metadata[/KEY] of a volume or snapshot (meta.c) */
void cn_meta(struct cn_req *rq, const char *kind);
/* volumes/ID/action (meta.c) */
void cn_volume_action(struct cn_req *rq, struct dlvm_vg *vg, struct dlvm_lv *lv);
/* A volume's status: from its attachments, else as recorded (volumes.c). */
const char *cn_volume_status(const struct dlvm_lv *lv);
void cn_snapshots(struct cn_req *rq);   /* snapshots.c */
void cn_attachments(struct cn_req *rq); /* attachments.c */
void cn_types(struct cn_req *rq);       /* versions.c */
void cn_limits(struct cn_req *rq);      /* versions.c */
void cn_small_docs(struct cn_req *rq);  /* /extensions, /os-availability-zone */
/* The version document of v3 ("/v3/") or of every version ("/"). */
void cn_versions(struct cn_req *rq, bool all);
/* Parse OpenStack-API-Version; false with a reply when it is refused. */
bool cn_microversion(struct cn_req *rq);
/* A volume as the API shows it. */
json_t *cn_volume_json(struct cn_req *rq, const struct dlvm_vg *vg, const struct dlvm_lv *lv);
/* The attachments of a volume LV, as volume "attachments" entries. */
json_t *cn_volume_attachments(struct cn_req *rq, const struct dlvm_lv *lv);
/* Does the volume have attachments (count)? */
unsigned cn_attachment_count(const struct dlvm_lv *lv);
/* The snapshots of volume `id` (count). */
unsigned cn_snapshot_count(struct cn_req *rq, const struct dlvm_vg *vg, const char *id);
/* The type's id: the pool LV's UUID. */
void cn_type_id(struct cn_req *rq, const struct dlvm_vg *vg, char out[CN_ID_LEN + 1]);
/* Write attachment aid's record (NULL: delete it) on lvname, then enforce
 * the mode and, in a shared VG, the activation; false with a reply when
 * that fails (attachments.c). */
bool cn_att_store(struct cn_req *rq, const char *lvname, const char *aid, json_t *rec);
/* The connection_info of volume lv for attachment aid (NULL: none) in
 * mode "rw" or "ro". */
json_t *cn_connection_info(struct cn_req *rq, const struct dlvm_lv *lv, const char *aid,
			   const char *mode);
/* The actions of the attach flow before 3.27 (legacy.c): false when name is
 * not one of them. */
bool cn_legacy_action(struct cn_req *rq, const struct dlvm_lv *lv, const char *name, json_t *a);
/* Make the LV read-only when it has attachments and all are read-only,
 * writable otherwise (lvchange -p). */
int cn_enforce_mode(struct cn_req *rq, const char *lvname, struct dlvm_err *err);

#endif
