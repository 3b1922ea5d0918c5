/* SPDX-License-Identifier: MIT */
/*
 * The table of active LVs that dlvmd serves over NBD, keyed by export name
 * "VG/LV". Thread safe: the API thread changes it while NBD connections look
 * exports up and hold maps.
 */
#ifndef DLVMD_EXPORTS_H
#define DLVMD_EXPORTS_H

#include <stdbool.h>
#include <stddef.h>

#include "dlvm/map.h"

struct dlvm_exports;

struct dlvm_exports *dlvm_exports_new(void);
/* Free the table; every connection must have ended (see nbd_server_stop). */
void dlvm_exports_free(struct dlvm_exports *ex);

/* Add export `name`, or replace its map: connections already open keep the
 * map they have (its size), new connections get this one. The permission is
 * the exception: it is the export's, and a request that arrives after this
 * returns is checked against map->readonly whatever connection carries it.
 * Takes a reference on map. */
int dlvm_exports_set(struct dlvm_exports *ex, const char *name, struct dlvm_lv_map *map);

/* Remove export `name`. -ENOENT if absent. -EBUSY when connections are open
 * and !force; with force, those connections are shut down and every request
 * they had in flight has completed when this returns. */
int dlvm_exports_remove(struct dlvm_exports *ex, const char *name, bool force);

/* Rename an export; open connections stay open. -ENOENT, -EEXIST. */
int dlvm_exports_rename(struct dlvm_exports *ex, const char *old_name, const char *new_name);

struct dlvm_export;
/* Whether export e is read-only now (the map last set). Lock-free, for the
 * data path: e is the export a connection is attached to (client.exp), valid
 * until it detaches. A request already accepted when the permission changes
 * completes as it was accepted. */
bool dlvm_export_readonly(const struct dlvm_export *e);

bool dlvm_exports_has(struct dlvm_exports *ex, const char *name);
/* Number of open connections to `name` (0 if absent). */
unsigned dlvm_exports_clients(struct dlvm_exports *ex, const char *name);

#endif
