/* SPDX-License-Identifier: MIT */
/* Small helpers shared by all of libdlvm: byte order, checksums, UUIDs,
 * overflow-checked arithmetic, size and name parsing. */
#ifndef DLVM_UTIL_H
#define DLVM_UTIL_H

#include <endian.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "dlvm/err.h"

#define DLVM_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define DLVM_MIN(a, b) ((a) < (b) ? (a) : (b))
#define DLVM_MAX(a, b) ((a) > (b) ? (a) : (b))

/* ---- explicit little-endian field access (unaligned safe): memcpy and
 * the byte-order conversions compile to one load or store ---- */
static inline void dlvm_put_le16(uint8_t *p, uint16_t v)
{
	v = htole16(v);
	memcpy(p, &v, sizeof(v));
}
static inline void dlvm_put_le32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, sizeof(v));
}
static inline void dlvm_put_le64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, sizeof(v));
}
static inline uint16_t dlvm_get_le16(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, sizeof(v));
	return le16toh(v);
}
static inline uint32_t dlvm_get_le32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}
static inline uint64_t dlvm_get_le64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

/* ---- overflow-checked arithmetic: return true on overflow ---- */
#define dlvm_add_overflow(a, b, r) __builtin_add_overflow((a), (b), (r))
#define dlvm_mul_overflow(a, b, r) __builtin_mul_overflow((a), (b), (r))

static inline bool dlvm_is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}
static inline uint64_t dlvm_align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

/* ---- CRC32C (Castagnoli), as used by every on-disk block ---- */
uint32_t dlvm_crc32c(const void *buf, size_t len);
/* Continue a running CRC32C: start with crc = 0, feed pieces in order. */
uint32_t dlvm_crc32c_update(uint32_t crc, const void *buf, size_t len);

/* ---- UUIDs: 16 raw bytes; text form is the canonical 36-char one ---- */
#define DLVM_UUID_STR 37
void dlvm_uuid_generate(uint8_t uuid[16]);
void dlvm_uuid_unparse(const uint8_t uuid[16], char out[DLVM_UUID_STR]);
bool dlvm_uuid_is_zero(const uint8_t uuid[16]);

/*
 * Parse a size as LVM does: a number with an optional fraction and a suffix
 * b/s/k/m/g/t/p/e (binary multiples; upper or lower case; 's' = 512-byte
 * sectors). A bare number is in default_unit bytes (LVM: MiB). A leading '+'
 * or '-' is returned in *sign ('+', '-' or 0) when sign is not NULL, and is an
 * error when sign is NULL. Returns 0, or -EINVAL (not a number, bad suffix)
 * or -ERANGE (overflows 64 bits), with a message naming the text.
 */
int dlvm_parse_size(const char *text, uint64_t default_unit, uint64_t *bytes, char *sign,
		    struct dlvm_err *err);

/* Format bytes with a unit letter as LVM's --units does ("h" picks one). */
void dlvm_format_size(uint64_t bytes, char unit, char *out, size_t outlen);

/*
 * Check a VG or LV name by LVM's rules: 1..127 characters from
 * [a-zA-Z0-9+_.-], not starting with '-', not "." or "..", and (for LVs) not
 * starting with "snapshot" or "pvmove" nor containing "_mlog" etc. `what` is
 * "VG" or "LV" and appears in the message.
 */
int dlvm_check_name(const char *name, const char *what, struct dlvm_err *err);

/* ---- time: every clock read of the library goes through these ----
 * dlvm_now_ns and dlvm_now_ms read CLOCK_BOOTTIME: it never jumps with the
 * wall clock and, unlike CLOCK_MONOTONIC, goes on while the system is
 * suspended, so a lease deadline (dlvm/lease.h, dlvm/fence.h) that passed
 * during a suspend has passed when the host wakes up. Deadlines, timeouts
 * and durations are on this clock. */
uint64_t dlvm_now_ns(void);
uint64_t dlvm_now_ms(void);
/* CLOCK_MONOTONIC now, and `ms` milliseconds after t: only for the absolute
 * times of timed waits on condition variables set to CLOCK_MONOTONIC
 * (glibc's pthread_condattr_setclock takes no CLOCK_BOOTTIME). A deadline
 * on dlvm_now_ms is waited for as a relative time from dlvm_mono_now(), in
 * steps short enough that a suspend cannot stretch one much (see
 * dlvm_mono_until). */
struct timespec dlvm_mono_now(void);
struct timespec dlvm_timespec_add_ms(struct timespec t, uint64_t ms);
/* The CLOCK_MONOTONIC time at which dlvm_now_ns() will be until_ns (now if
 * it is past), for a condition variable wait: a suspend in between makes the
 * wait end late by the suspend's length, so waiters re-check dlvm_now_ns(). */
struct timespec dlvm_mono_until(uint64_t until_ns);

/* ---- the report of a consistency check (report.c) ---- */
struct dlvm_check_report {
	unsigned problems; /* number of problems found */
	unsigned repaired;
	char **lines; /* one message per problem or repair, owned */
	size_t nlines;
};
/* Add a line (printf-style) to rep, counting it as a problem when
 * `problem`. A line that cannot be stored (out of memory) is still counted. */
void dlvm_check_report_add(struct dlvm_check_report *rep, bool problem, const char *fmt, ...)
		__attribute__((format(printf, 3, 4)));
/* Free the lines; rep is empty again. */
void dlvm_check_report_release(struct dlvm_check_report *rep);

/* ---- Unix sockets (sock.c) ---- */
/*
 * Listen on a Unix socket at path, for the local users a daemon serves: the
 * socket file is mode 0660 with group `group` when that group exists, else
 * 0600 (owner only); it is bound under umask 0177, so no one else can reach
 * it even between bind and chmod. A socket file left by a daemon that is
 * gone is replaced. flags: more socket() flags (SOCK_NONBLOCK). Returns 0
 * and the listening fd in *fd_out; -EADDRINUSE when a daemon answers on
 * path, -EEXIST when path is not a socket, -ENAMETOOLONG, or the errno of
 * socket, bind, chown, chmod or listen, with a message naming path.
 */
/* The group whose members may reach dlvmd's sockets (the API and NBD), when
 * it exists. */
#define DLVM_SOCKET_GROUP "dlvm"
int dlvm_unix_listen(const char *path, int backlog, int flags, const char *group, int *fd_out,
		     struct dlvm_err *err);
/* Remove the socket file at path, and nothing else: what another user put
 * there in its place (a link, a file) stays. */
void dlvm_unix_unlink(const char *path);

#endif
