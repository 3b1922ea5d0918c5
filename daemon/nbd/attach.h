/* SPDX-License-Identifier: MIT */
/*
 * How NBD connections use the exports table (daemon/exports.h): the part of
 * its interface that only the NBD server needs.
 *
 * A connection that enters the transmission phase attaches to its export. The
 * table counts attached connections (dlvm_exports_clients) and, when the
 * export is removed with force, asks each one to stop through kick() and waits
 * until every one has detached. A connection detaches only once the device
 * I/O it had in flight has completed, and touches neither the export nor the
 * lock it got from the table after detaching.
 */
#ifndef DLVMD_NBD_ATTACH_H
#define DLVMD_NBD_ATTACH_H

#include <pthread.h>
#include <stddef.h>

#include "daemon/exports.h"

struct dlvm_export;

struct dlvm_export_client {
	/* Set by the connection. Called with the table locked: must only make
	 * the connection stop soon (shutdown() its socket), never block. */
	void (*kick)(struct dlvm_export_client *c);
	/* Owned by the table while attached. */
	struct dlvm_export *exp;
	struct dlvm_export_client *prev, *next;
};

/*
 * Attach c to export `name`. On success *map holds a new reference on the
 * export's current map (the caller puts it) and *rmw_lock is the export's
 * lock for read-modify-write of partial sectors, valid until detach.
 * -ENOENT if there is no such export.
 */
int dlvm_exports_attach(struct dlvm_exports *ex, const char *name, struct dlvm_export_client *c,
			struct dlvm_lv_map **map, pthread_mutex_t **rmw_lock);

/* Detach c (attached before); wakes a dlvm_exports_remove waiting for it. */
void dlvm_exports_detach(struct dlvm_exports *ex, struct dlvm_export_client *c);

/* A new reference on the current map of `name`, or NULL if absent. */
struct dlvm_lv_map *dlvm_exports_map(struct dlvm_exports *ex, const char *name);

/*
 * The names of all exports, sorted, as one allocation: *names is an array of
 * *count pointers followed by the strings. The caller frees *names.
 * 0 or -ENOMEM.
 */
int dlvm_exports_names(struct dlvm_exports *ex, char ***names, size_t *count);

#endif
