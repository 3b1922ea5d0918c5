/* SPDX-License-Identifier: MIT */
/* The hosts of a shared VG's lockspace, as report rows. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>

#include "dlvm/lease.h"
#include "dlvm/log.h"
#include "dlvm/map.h"
#include "dlvm/thinpool.h"
#include "dlvm/util.h"
#include "lib/ctx/ctx.h"
#include "lib/cluster/cluster.h"
#include "lib/cluster/cluster_int.h"

/* ---- hosts ---- */

static void host_row(json_t *rows, const char *vg, uint32_t id, const char *name, const char *state,
		     uint64_t gen, json_int_t ago_s, bool me)
{
	json_t *row = json_object();
	json_object_set_new(row, "vg_name", json_string(vg));
	json_object_set_new(row, "host_id", json_integer(id));
	json_object_set_new(row, "host_name", json_string(name));
	json_object_set_new(row, "host_state", json_string(state));
	json_object_set_new(row, "host_generation", json_integer((json_int_t)gen));
	json_object_set_new(row, "host_last_renewal",
			    ago_s < 0 ? json_null() : json_integer(ago_s));
	json_object_set_new(row, "host_this", json_string(me ? "yes" : ""));
	json_array_append_new(rows, row);
}

/* Without a joined lockspace: one read of every sector. Liveness needs two
 * reads some time apart, so written hosts show as "unknown". */
static int hosts_from_disk(const struct dlvm_vg *vg, json_t *rows, struct dlvm_err *err)
{
	struct dlvm_lease_area *area;
	struct dlvm_dev *dev;
	uint64_t off, size;
	int r;

	if ((r = area_where(vg, &dev, &off, &size, err)) ||
	    (r = dlvm_lease_area_open(dev, off, size, &area, err)))
		return r;
	const struct dlvm_lease_area_header *h = &area->hdr;
	uint8_t *buf = dlvm_io_alloc(h->lockspace_size);
	if (!buf) {
		dlvm_lease_area_close(area);
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	}
	r = dlvm_dev_read(dev, buf, h->lockspace_size, off + h->lockspace_offset, err);
	for (uint32_t id = 1; !r && id <= h->max_hosts; id++) {
		struct dlvm_delta_record d;
		struct dlvm_err e = { 0 };
		if (dlvm_delta_decode(buf + (uint64_t)(id - 1) * h->sector_size, &d, &e)) {
			host_row(rows, vg->info.name, id, "", "bad", 0, -1, false);
			continue;
		}
		if (!d.host_id)
			continue;
		host_row(rows, vg->info.name, id, d.name, d.timestamp ? "unknown" : "free",
			 d.generation, -1, false);
	}
	free(buf);
	dlvm_lease_area_close(area);
	return r;
}

int shared_hosts_rows(struct dlvm_ctx *ctx, const struct dlvm_vg *vg, json_t *rows, json_t *resp,
		      struct dlvm_err *err)
{
	int r;

	struct shared_vg *s = shared_find(ctx, vg);
	if (s && s->refused[0])
		return dlvm_err_set(err, -EBADMSG, "%s", s->refused);
	if (!s || !s->ls || !dlvm_lockspace_deadline_ms(s->ls)) {
		if (ctx->daemon)
			resp_warning(resp,
				     "%s: this host is not in the lockspace: host states are "
				     "not known",
				     vg->info.name);
		return hosts_from_disk(vg, rows, err);
	}
	struct dlvm_host_info *h = NULL;
	size_t n = 0;
	if ((r = dlvm_lockspace_hosts(s->ls, &h, &n, err)))
		return r;
	uint64_t now = dlvm_lease_real_clock.now_ms(dlvm_lease_real_clock.priv);
	for (size_t i = 0; i < n; i++)
		host_row(rows, vg->info.name, h[i].host_id, h[i].name,
			 dlvm_host_state_name(h[i].state), h[i].generation,
			 h[i].state == DLVM_HOST_FREE
					 ? -1
					 : (json_int_t)((now - DLVM_MIN(now, h[i].last_change_ms)) /
							1000),
			 h[i].host_id == ctx->host_id);
	free(h);
	return 0;
}
