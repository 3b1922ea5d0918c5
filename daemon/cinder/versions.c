/* SPDX-License-Identifier: MIT */
/* Versions, microversions, the one volume type, and the small read-only
 * documents: limits, extensions, availability zones. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "daemon/cinder/cinder_int.h"
#include "dlvm/util.h"

static json_t *v3_doc(struct cn_req *rq)
{
	const char *host = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "Host");
	char self[512], ver[16];

	snprintf(self, sizeof(self), "http://%s/v3/", host ? host : "localhost");
	snprintf(ver, sizeof(ver), "3.%u", CN_MV_MAX);
	return json_pack("{s:s,s:s,s:s,s:s,s:s,s:[{s:s,s:s}],s:[{s:s,s:s}]}", "id", "v3.0",
			 "status", "CURRENT", "version", ver, "min_version", "3.0", "updated",
			 "2018-07-17T00:00:00Z", "links", "rel", "self", "href", self,
			 "media-types", "base", "application/json", "type",
			 "application/vnd.openstack.volume+json;version=3");
}

void cn_versions(struct cn_req *rq, bool all)
{
	/* "/" lists the versions with 300 Multiple Choices, as Cinder does */
	cn_reply(rq, all ? 300 : 200, json_pack("{s:[o]}", "versions", v3_doc(rq)));
}

/* "3.27" into its minor number; false when it is not 3.N. */
static bool parse_version(const char *s, unsigned *minor)
{
	char *end;

	if (strncmp(s, "3.", 2) || s[2] < '0' || s[2] > '9')
		return false;
	unsigned long m = strtoul(s + 2, &end, 10);
	if (*end || m > 1000)
		return false;
	*minor = (unsigned)m;
	return true;
}

bool cn_microversion(struct cn_req *rq)
{
	const char *h = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND,
						    "OpenStack-API-Version");
	char v[64];

	rq->mv = 0;
	if (!h)
		return true;
	/* "volume 3.27"; the service name is matched without case */
	while (*h == ' ')
		h++;
	if (strncasecmp(h, "volume", 6) || (h[6] != ' ' && h[6] != '\t')) {
		cn_error(rq, 400,
			 "Invalid OpenStack-API-Version header '%.64s': expected 'volume "
			 "3.X'",
			 h);
		return false;
	}
	h += 6;
	while (*h == ' ' || *h == '\t')
		h++;
	snprintf(v, sizeof(v), "%s", h);
	for (char *e = v + strlen(v); e > v && (e[-1] == ' ' || e[-1] == '\t');)
		*--e = '\0';
	if (!strcasecmp(v, "latest")) {
		rq->mv = CN_MV_MAX;
		return true;
	}
	unsigned m;
	if (!parse_version(v, &m)) {
		cn_error(rq, 400,
			 "API Version String %.32s is of invalid format. Must be of format "
			 "MajorNum.MinorNum.",
			 v);
		return false;
	}
	if (m > CN_MV_MAX) {
		/* Cinder answers an unsupported version with 406 */
		cn_error(rq, 406,
			 "Version 3.%u is not supported by the API. Minimum is 3.0 and "
			 "maximum is 3.%u.",
			 m, CN_MV_MAX);
		return false;
	}
	rq->mv = m;
	return true;
}

/* ---- the one volume type ---- */

void cn_type_id(struct cn_req *rq, const struct dlvm_vg *vg, char out[CN_ID_LEN + 1])
{
	const struct dlvm_lv *pool = vg ? dlvm_lv_find(vg, rq->srv->pool) : NULL;

	if (pool)
		dlvm_uuid_unparse(pool->uuid, out);
	else
		snprintf(out, CN_ID_LEN + 1, "00000000-0000-0000-0000-000000000000");
}

static json_t *type_json(struct cn_req *rq, const struct dlvm_vg *vg)
{
	char id[CN_ID_LEN + 1], backend[2 * DLVM_NAME_MAX + 2];

	cn_type_id(rq, vg, id);
	snprintf(backend, sizeof(backend), "%s/%s", rq->srv->vg, rq->srv->pool);
	return json_pack("{s:s,s:s,s:s,s:b,s:b,s:n,s:{s:s,s:s,s:s}}", "id", id, "name",
			 rq->srv->type_name, "description", "thin volumes of dlvm", "is_public", 1,
			 "os-volume-type-access:is_public", 1, "qos_specs_id", "extra_specs",
			 "volume_backend_name", backend, "thin_provisioning_support", "<is> True",
			 "multiattach", "<is> False");
}

/* GET /types, /types/default, /types/ID */
void cn_types(struct cn_req *rq)
{
	struct dlvm_vg *vg = cn_vg(rq);
	char id[CN_ID_LEN + 1];

	if (strcmp(rq->method, "GET")) {
		cn_error(rq, 405,
			 "Volume types are read-only here: one type, from dlvmd's "
			 "configuration.");
		return;
	}
	if (rq->nseg == 1) {
		cn_reply(rq, 200, json_pack("{s:[o]}", "volume_types", type_json(rq, vg)));
		return;
	}
	cn_type_id(rq, vg, id);
	if (rq->nseg == 2 && (!strcmp(rq->seg[1], id) || !strcmp(rq->seg[1], "default") ||
			      !strcmp(rq->seg[1], rq->srv->type_name))) {
		cn_reply(rq, 200, json_pack("{s:o}", "volume_type", type_json(rq, vg)));
		return;
	}
	if (rq->nseg == 2)
		cn_error(rq, 404, "Volume type %.64s could not be found.", rq->seg[1]);
	else
		cn_error(rq, 404, "The resource could not be found.");
}

/* GET /limits: no quotas yet (-1: unlimited), and what the project uses. */
void cn_limits(struct cn_req *rq)
{
	struct dlvm_vg *vg = cn_vg(rq);
	json_int_t vols = 0, gib = 0, snaps = 0;

	if (strcmp(rq->method, "GET") || rq->nseg != 1) {
		cn_error(rq, 404, "The resource could not be found.");
		return;
	}
	for (size_t i = 0; vg && i < vg->nlv; i++) {
		const struct dlvm_lv *lv = vg->lvs[i];
		if (cn_visible(rq, lv, "volume")) {
			vols++;
			gib += (json_int_t)cn_gib(vg, lv);
		} else if (cn_visible(rq, lv, "snapshot")) {
			snaps++;
		}
	}
	json_t *abs = json_pack("{s:i,s:i,s:i,s:i,s:i,s:I,s:I,s:I,s:i,s:i}", "maxTotalVolumes", -1,
				"maxTotalSnapshots", -1, "maxTotalVolumeGigabytes", -1,
				"maxTotalBackups", -1, "maxTotalBackupGigabytes", -1,
				"totalVolumesUsed", vols, "totalGigabytesUsed", gib,
				"totalSnapshotsUsed", snaps, "totalBackupsUsed", 0,
				"totalBackupGigabytesUsed", 0);
	cn_reply(rq, 200, json_pack("{s:{s:[],s:o}}", "limits", "rate", "absolute", abs));
}

/* GET /extensions (none) and /os-availability-zone (nova). */
void cn_small_docs(struct cn_req *rq)
{
	bool az = !strcmp(rq->seg[0], "os-availability-zone");

	if (strcmp(rq->method, "GET") || rq->nseg != 1)
		cn_error(rq, 404, "The resource could not be found.");
	else if (az)
		cn_reply(rq, 200,
			 json_pack("{s:[{s:s,s:{s:b}}]}", "availabilityZoneInfo", "zoneName",
				   "nova", "zoneState", "available", 1));
	else
		cn_reply(rq, 200, json_pack("{s:[]}", "extensions"));
}
