/* SPDX-License-Identifier: MIT */
/* dlvm hosts VG: the hosts of a shared VG and their leases. */
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
#include "lib/cmd/cmd_int.h"

DLVM_CMD_FN(cmd_hosts)
{
	json_t *rep = json_object(), *rows = json_array();
	struct dlvm_vg *vg;
	int r;

	(void)opts;
	json_object_set_new(rep, "kind", json_string("host"));
	json_object_set_new(rep, "rows", rows);
	json_object_set_new(resp, "report", rep);
	if (json_array_size(args) != 1)
		return dlvm_err_set(err, -EINVAL, "hosts: give one shared VG");
	if ((r = dlvm_ctx_vg(ctx, arg_str(args, 0), &vg, err)))
		return r;
	if (!(vg->info.flags & DLVM_VG_SHARED))
		return dlvm_err_set(err, -EINVAL, "%s: not a shared VG", vg->info.name);
	return shared_hosts_rows(ctx, vg, rows, resp, err);
}
