/* SPDX-License-Identifier: MIT */
/*
 * The log sink of dlvmd. Every line goes to stderr as it always did:
 *
 *   dlvmd: <message>              error and info
 *   dlvmd: WARNING: <message>     warning
 *   dlvmd: debug: <sub>: <message>
 *   nbd: <message>                lines of the NBD server (subsystem nbd)
 *
 * Under systemd (JOURNAL_STREAM names the device and inode of stderr) each
 * line starts with its syslog priority, "<3>" error, "<4>" warning, "<6>"
 * info, "<7>" debug, so that the journal records the level. The last
 * DLVMD_LOG_RING_LINES lines are also kept in a ring for GET /v1/log.
 */
#ifndef DLVMD_LOG_H
#define DLVMD_LOG_H

#include "dlvm/log.h"

#define DLVMD_LOG_RING_LINES 1000

/*
 * Install the sink with ident "dlvmd". Call it first in main, before any
 * thread runs. Returns 0 or -ENOMEM (then lines still go to stderr, and
 * dlvmd_log_ring returns NULL).
 */
int dlvmd_log_init(void);

/* The ring of the last lines (NULL before dlvmd_log_init or without
 * memory). Owned by the sink, lives until dlvmd_log_release. */
struct dlvm_log_ring *dlvmd_log_ring(void);

/* Back to the library's stderr sink and free the ring. No thread may log
 * at the same time. */
void dlvmd_log_release(void);

#endif
