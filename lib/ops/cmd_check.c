/* SPDX-License-Identifier: MIT */
/* dlvm check VG... [--repair] */
#include <stdlib.h>
#include <string.h>

#include "ops.h"

DLVM_CMD_FN(cmd_check)
{
	size_t n = json_array_size(args);
	bool repair = opt_flag(opts, "repair");
	unsigned problems = 0;
	int r;

	if (!n)
		return dlvm_err_set(err, -EINVAL, "check: give at least one VG");
	for (size_t i = 0; i < n; i++) {
		struct dlvm_vg *vg;
		struct dlvm_check_report rep;
		if ((r = dlvm_ctx_vg(ctx, arg_str(args, i), &vg, err)))
			goto done;
		if ((r = dlvm_vg_check(vg, repair, &rep, err)))
			goto done;
		/* thin pools: every tree, refcount and free chunk of each store */
		if ((r = thin_check_vg(ctx, vg, &rep, err))) {
			dlvm_check_report_release(&rep);
			goto done;
		}
		for (size_t l = 0; l < rep.nlines; l++)
			resp_message(resp, "%s: %s", vg->info.name, rep.lines[l]);
		/* each repaired copy was one of the problems found */
		problems += rep.problems - rep.repaired;
		if (!rep.problems)
			resp_message(resp, "%s: %zu PVs, %zu LVs, sequence %llu: metadata and extents "
				     "are consistent", vg->info.name, vg->npv, vg->nlv,
				     (unsigned long long)vg->seq);
		dlvm_check_report_release(&rep);
	}
	r = 0;
	if (problems)
		r = dlvm_err_set(err, -EBADMSG, "check found %u problem%s%s", problems,
				 problems == 1 ? "" : "s", repair ? "" : " (--repair rewrites stale "
				 "or damaged metadata copies)");
done:
	return r;
}
