/* SPDX-License-Identifier: MIT */
/*
 * The state directory of dlvmd (--state-dir): the lock that keeps one
 * daemon per directory (DIR/dlvmd.pid), the devices file (DIR/devices, one
 * path per line) and the owner name the daemon takes in lockspaces.
 */
#ifndef DLVMD_STATEDIR_H
#define DLVMD_STATEDIR_H

#include <stddef.h>

/* mkdir -p dir (mode 0755). 0, or -1 with errno set. */
int dlvmd_mkdir_p(const char *dir);

/*
 * Hold an exclusive lock on DIR/dlvmd.pid and write our pid in it. Returns
 * the file descriptor, to keep open for the daemon's lifetime, or -1 when
 * another dlvmd holds it or the file cannot be written (logged).
 */
int dlvmd_state_dir_lock(const char *dir);

/*
 * The PV directory, the only one where commands sent to dlvmd may create or
 * use files: `dir` (--pv-dir), or STATE_DIR/pv when NULL, created mode 0700
 * if missing. Refused when it is not a directory, another user owns it, or
 * group or others may write it (they could link anything there). Its
 * resolved path goes to out (len bytes). 0, or -1 (logged).
 */
int dlvmd_pv_dir_open(const char *state_dir, const char *dir, char *out, size_t len);

/*
 * Add the comma-separated `devices` (made absolute) to DIR/devices, keeping
 * the lines already there; a device already listed under another path is
 * not added twice. The file is replaced atomically. 0, or -1 (logged).
 */
int dlvmd_devices_file_add(const char *dir, const char *devices);

/*
 * The owner name in lockspaces, in out (len bytes): host name, ':', state
 * directory. The same daemon restarting finds its own name and rejoins at
 * once; another one does not. Long directories keep their tail (where test
 * directories differ) after a hash of the whole path.
 */
void dlvmd_lease_name(const char *dir, char *out, size_t len);

#endif
