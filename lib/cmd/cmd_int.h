/* SPDX-License-Identifier: MIT */
/* Internal API of the commands (lib/cmd/): the functions the command table
 * names, and the helpers several command files share. No command file
 * calls another one except through this header. */
#ifndef DLVM_CMD_INT_H
#define DLVM_CMD_INT_H

#include <jansson.h>
#include <stdbool.h>

#include "dlvm/cmd.h"
#include "dlvm/vg.h"

#include "lib/lvops/lvops.h"

/* lv_attr string (10 characters + NUL) (lv.c) */
void lv_attr(struct dlvm_ctx *ctx, const struct dlvm_vg *vg, const struct dlvm_lv *lv,
	     char out[11]);

/* ---- tags and properties of LVs (prop.c) ---- */
/* The property marking a clone made read-only by lvchange -p r, which is
 * then not taken for a snapshot (lv.c). */
#define PROP_RO_CLONE "dlvm.readonly-clone"
/* Does opts hold --addtag, --deltag, --property or --delproperty? */
bool lv_props_given(json_t *opts);
/* Check the values of those options without a VG (lvcreate checks them
 * before it creates anything). -EINVAL with the message. */
int lv_props_check(json_t *opts, struct dlvm_err *err);
/* Those options of lv in one transaction (deletes first); -EINVAL for a bad
 * key, value or tag, nothing changed; errors of dlvm_txn_commit. */
int lv_props_change(struct dlvm_vg *vg, struct dlvm_lv *lv, json_t *opts, json_t *resp,
		    struct dlvm_err *err);
/* lvs fields lv_tags and lv_properties of lv in row. -ENOMEM. */
int lv_props_report(const struct dlvm_lv *lv, json_t *row);

/* Command implementations (one file per object) */
#define DLVM_CMD_FN(name) \
	int name(struct dlvm_ctx *ctx, json_t *opts, json_t *args, json_t *resp, \
		 struct dlvm_err *err)
DLVM_CMD_FN(cmd_pvcreate);
DLVM_CMD_FN(cmd_pvremove);
DLVM_CMD_FN(cmd_pvs);
DLVM_CMD_FN(cmd_vgcreate);
DLVM_CMD_FN(cmd_vgextend);
DLVM_CMD_FN(cmd_vgreduce);
DLVM_CMD_FN(cmd_vgremove);
DLVM_CMD_FN(cmd_vgrename);
DLVM_CMD_FN(cmd_vgs);
DLVM_CMD_FN(cmd_vgchange);
DLVM_CMD_FN(cmd_lvcreate);
DLVM_CMD_FN(cmd_lvremove);
DLVM_CMD_FN(cmd_lvextend);
DLVM_CMD_FN(cmd_lvresize);
DLVM_CMD_FN(cmd_lvreduce);
DLVM_CMD_FN(cmd_lvrename);
DLVM_CMD_FN(cmd_lvchange);
DLVM_CMD_FN(cmd_lvconvert);
DLVM_CMD_FN(cmd_lvs);
DLVM_CMD_FN(cmd_check);
DLVM_CMD_FN(cmd_hosts);
DLVM_CMD_FN(cmd_jobs);
DLVM_CMD_FN(cmd_dump);

#endif
