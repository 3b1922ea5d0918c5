/* SPDX-License-Identifier: MIT */
/* What the files of lib/cluster/ and the host agent (lib/agent/) share
 * about a joined lockspace. Nothing else includes this. */
#ifndef DLVM_CLUSTER_INT_H
#define DLVM_CLUSTER_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "dlvm/lease.h"
#include "dlvm/map.h"
#include "dlvm/vg.h"

struct dlvm_ctx;

/* How long a change waits for a busy VG lease: other hosts may send changes
 * back to back, and the lease has no queue. */
#define VG_LEASE_WAIT_MS 10000u

#define SHARED_NRES 4u /* resource 0: the VG lease; 1..3 reserved */

struct shared_vg {
	uint8_t vg_uuid[16];
	char vg_name[DLVM_NAME_MAX + 1]; /* for messages */
	struct dlvm_lease_area *area;
	struct dlvm_lockspace *ls;        /* NULL when refused */
	char refused[DLVM_ERR_MSG_MAX];   /* why this host cannot change the VG */
	struct dlvm_paxos_lease vg_lease; /* while held */
	bool holding;
	struct dlvm_fence *fence; /* deadline of this VG's data path */
	uint64_t prev_generation; /* our record replaced at join (same name), or 0 */
	pthread_t thread;
	bool thread_running;
	pthread_mutex_t mu; /* guards stop, lost, lost_msg */
	pthread_cond_t cv;
	bool stop;
	bool lost;
	char lost_msg[DLVM_ERR_MSG_MAX];
};

/* Give every PV device of vg the I/O timeout T of s's lockspace
 * (dlvm/timedio.h): a hung PV fails metadata and lease I/O instead of
 * blocking. After a join and after each reload (new PVs). */
void shared_set_timeouts(struct shared_vg *s, struct dlvm_vg *vg);

/* Where the lease area is: the one linear segment of the lockspace LV. */
int area_where(const struct dlvm_vg *vg, struct dlvm_dev **dev, uint64_t *off, uint64_t *size,
	       struct dlvm_err *err);
/* Stop renewing and, when `release`, leave the lockspace; then free s. */
void shared_leave_one(struct shared_vg *s, bool release);
void shared_free(struct shared_vg *s);
/* The lockspace state of vg in ctx, or NULL (lockspace.c). */
struct shared_vg *shared_find(struct dlvm_ctx *ctx, const struct dlvm_vg *vg);

/* Reload vg from its devices (vglease.c); with resync, rewrite stale copies.
 * reload_if_changed: only when another host committed since it was loaded. */
int reload_vg(struct dlvm_ctx *ctx, struct dlvm_vg *vg, bool resync, struct dlvm_err *err);
int reload_if_changed(struct dlvm_ctx *ctx, struct dlvm_vg *vg, bool resync, struct dlvm_err *err);
/* Take the VG lease of shared VG vg for this command or step; drop_vg_leases
 * lets every lease taken go (warnings in resp, which may be NULL). */
int take_vg_lease(struct dlvm_ctx *ctx, struct dlvm_vg *vg, struct dlvm_err *err);
void drop_vg_leases(struct dlvm_ctx *ctx, json_t *resp);
/* Commit lv's new holder list (n entries of hs, sorted by host id) if it
 * differs from the standing one (holders.c). */
int commit_holders(struct dlvm_vg *vg, struct dlvm_lv *lv, const struct dlvm_lv_holder *hs,
		   uint32_t n, struct dlvm_err *err);
/* A thin LV of a shared VG that writes its family's store. */
bool family_writer(const struct dlvm_lv *lv);

#endif
