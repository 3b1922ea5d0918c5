/* SPDX-License-Identifier: MIT */
/*
 * The access rules of the NBD server (--tls-access FILE): which client
 * identities may open which exports. Read once at start, then read-only.
 *
 * The file holds lines "IDENTITY: PATTERN PATTERN...", '#' comments and
 * blank lines. IDENTITY is everything before the line's last ':' (so it may
 * hold spaces, '=' and ',', as a certificate's DN does), or "*" for every
 * client; the PATTERNs are fnmatch(3) globs without flags over export names
 * "VG/LV" ("*" matches '/' too). A line may name no pattern; lines of the
 * same identity add up.
 */
#ifndef DLVMD_NBD_ACCESS_H
#define DLVMD_NBD_ACCESS_H

#include <stdbool.h>
#include <stddef.h>

#include "dlvm/err.h"

struct nbd_access;

/* Read `file`. Returns 0 and *out (free with nbd_access_free), or a negative
 * errno with a message naming the file and line. */
int nbd_access_load(const char *file, struct nbd_access **out, struct dlvm_err *err);
void nbd_access_free(struct nbd_access *a);

/* How many rules (identity, pattern) the file gave. */
size_t nbd_access_count(const struct nbd_access *a);

/*
 * May a client that goes by any of ids[0..nids) (none: a client without an
 * identity) open `export`? True when a rule for one of its ids or for "*"
 * has a pattern that matches.
 */
bool nbd_access_allows(const struct nbd_access *a, const char *const *ids, size_t nids,
		       const char *export);

#endif
