/* SPDX-License-Identifier: MIT */
/* Report fields: names and headings as LVM's, so scripts written for lvs,
 * vgs and pvs find what they expect. */
#include <string.h>

#include "dlvm/cmd.h"

static const struct dlvm_field_def pv_fields[] = {
	{ "pv_name", "PV", DLVM_FIELD_STR },
	{ "vg_name", "VG", DLVM_FIELD_STR },
	{ "pv_fmt", "Fmt", DLVM_FIELD_STR },
	{ "pv_attr", "Attr", DLVM_FIELD_STR },
	{ "pv_size", "PSize", DLVM_FIELD_SIZE },
	{ "pv_free", "PFree", DLVM_FIELD_SIZE },
	{ "pv_used", "Used", DLVM_FIELD_SIZE },
	{ "pv_uuid", "PV UUID", DLVM_FIELD_STR },
	{ "dev_size", "DevSize", DLVM_FIELD_SIZE },
	{ "pe_start", "1st PE", DLVM_FIELD_SIZE },
	{ "pv_pe_count", "PE", DLVM_FIELD_NUM },
	{ "pv_pe_alloc_count", "Alloc", DLVM_FIELD_NUM },
	{ "pv_mda_size", "PMdaSize", DLVM_FIELD_SIZE },
	{ "pv_mda_state", "MdaState", DLVM_FIELD_STR },
	{ NULL, NULL, 0 },
};

static const struct dlvm_field_def vg_fields[] = {
	{ "vg_name", "VG", DLVM_FIELD_STR },
	{ "pv_count", "#PV", DLVM_FIELD_NUM },
	{ "lv_count", "#LV", DLVM_FIELD_NUM },
	{ "snap_count", "#SN", DLVM_FIELD_NUM },
	{ "vg_attr", "Attr", DLVM_FIELD_STR },
	{ "vg_size", "VSize", DLVM_FIELD_SIZE },
	{ "vg_free", "VFree", DLVM_FIELD_SIZE },
	{ "vg_uuid", "VG UUID", DLVM_FIELD_STR },
	{ "vg_extent_size", "Ext", DLVM_FIELD_SIZE },
	{ "vg_extent_count", "#Ext", DLVM_FIELD_NUM },
	{ "vg_free_count", "Free", DLVM_FIELD_NUM },
	{ "vg_seqno", "Seq", DLVM_FIELD_NUM },
	{ "vg_mda_count", "#VMda", DLVM_FIELD_NUM },
	{ "vg_mda_in_sync", "#InSync", DLVM_FIELD_NUM },
	{ NULL, NULL, 0 },
};

static const struct dlvm_field_def lv_fields[] = {
	{ "lv_name", "LV", DLVM_FIELD_STR },
	{ "vg_name", "VG", DLVM_FIELD_STR },
	{ "lv_attr", "Attr", DLVM_FIELD_STR },
	{ "lv_size", "LSize", DLVM_FIELD_SIZE },
	{ "lv_uuid", "LV UUID", DLVM_FIELD_STR },
	{ "lv_full_name", "LV", DLVM_FIELD_STR },
	{ "seg_count", "#Seg", DLVM_FIELD_NUM },
	{ "stripes", "#Str", DLVM_FIELD_NUM },
	{ "stripe_size", "Stripe", DLVM_FIELD_SIZE },
	{ "segtype", "Type", DLVM_FIELD_STR },
	{ "devices", "Devices", DLVM_FIELD_STR },
	{ "lv_active", "Active", DLVM_FIELD_STR },
	{ "lv_permissions", "LPerms", DLVM_FIELD_STR },
	{ "lv_device_open", "DevOpen", DLVM_FIELD_STR },
	{ "nbd_clients", "#Clients", DLVM_FIELD_NUM },
	{ "nbd_export", "Export", DLVM_FIELD_STR },
	{ "active_hosts", "ActiveHosts", DLVM_FIELD_STR },
	{ "pool_lv", "Pool", DLVM_FIELD_STR },
	{ "origin", "Origin", DLVM_FIELD_STR },
	{ "data_percent", "Data%", DLVM_FIELD_STR },
	{ "metadata_percent", "Meta%", DLVM_FIELD_STR },
	{ "chunk_size", "Chunk", DLVM_FIELD_SIZE },
	{ "lv_time", "CTime", DLVM_FIELD_STR },
	{ "copy_percent", "Cpy%Sync", DLVM_FIELD_STR },
	{ "lv_tags", "LV Tags", DLVM_FIELD_STR },
	{ "lv_properties", "LV Properties", DLVM_FIELD_STR },
	{ NULL, NULL, 0 },
};

/* dlvm hosts: the lockspace of a shared VG as this host sees it */
static const struct dlvm_field_def host_fields[] = {
	{ "host_id", "HostID", DLVM_FIELD_NUM },
	{ "host_name", "Name", DLVM_FIELD_STR },
	{ "host_state", "State", DLVM_FIELD_STR },
	{ "host_generation", "Gen", DLVM_FIELD_NUM },
	{ "host_last_renewal", "Renewed(s ago)", DLVM_FIELD_NUM },
	{ "host_this", "This", DLVM_FIELD_STR },
	{ "vg_name", "VG", DLVM_FIELD_STR },
	{ NULL, NULL, 0 },
};

/* dlvm jobs: dlvmd's background jobs */
static const struct dlvm_field_def job_fields[] = {
	{ "job_id", "ID", DLVM_FIELD_NUM },
	{ "job_type", "Type", DLVM_FIELD_STR },
	{ "job_lv", "LV", DLVM_FIELD_STR },
	{ "job_state", "State", DLVM_FIELD_STR },
	{ "copy_percent", "Cpy%Sync", DLVM_FIELD_STR },
	{ "job_copied", "Copied", DLVM_FIELD_SIZE },
	{ "job_seconds", "Time(s)", DLVM_FIELD_NUM },
	{ "job_rate", "MaxRate", DLVM_FIELD_SIZE },
	{ "job_message", "Message", DLVM_FIELD_STR },
	{ NULL, NULL, 0 },
};

const struct dlvm_field_def *dlvm_report_fields(const char *kind, const char **defaults)
{
	if (!strcmp(kind, "pv")) {
		if (defaults)
			*defaults = "pv_name,vg_name,pv_fmt,pv_attr,pv_size,pv_free";
		return pv_fields;
	}
	if (!strcmp(kind, "vg")) {
		if (defaults)
			*defaults = "vg_name,pv_count,lv_count,snap_count,vg_attr,vg_size,vg_free";
		return vg_fields;
	}
	if (!strcmp(kind, "lv")) {
		if (defaults)
			*defaults = "lv_name,vg_name,lv_attr,lv_size";
		return lv_fields;
	}
	if (!strcmp(kind, "host")) {
		if (defaults)
			*defaults = "host_id,host_name,host_state,host_generation,host_last_"
				    "renewal,"
				    "host_this";
		return host_fields;
	}
	if (!strcmp(kind, "job")) {
		if (defaults)
			*defaults = "job_id,job_type,job_lv,job_state,copy_percent,job_message";
		return job_fields;
	}
	return NULL;
}
