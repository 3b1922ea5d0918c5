/* SPDX-License-Identifier: MIT */
/*
 * Error convention of libdlvm.
 *
 * Every fallible function returns 0 on success or a negative errno. Where a
 * person needs to know what went wrong, the function also fills a
 * struct dlvm_err (if the caller passes one) with a message that names the
 * object and the operation: "pv0.img: metadata copy 2 at offset 8192:
 * checksum mismatch". The code in the struct equals the returned value.
 *
 * Codes used across the library:
 *   -EINVAL    bad argument (name, size, option)
 *   -ENOENT    no such VG, LV, PV or device
 *   -EEXIST    name already in use
 *   -ENOSPC    not enough free extents or metadata space
 *   -EBUSY     object in use (open exports, locked device)
 *   -EBADMSG   corrupted on-disk structure (bad checksum, bad field)
 *   -ENOTSUP   on-disk feature or version this build does not know
 *   -EROFS     read-only object written to
 *   -EIO       device I/O error
 */
#ifndef DLVM_ERR_H
#define DLVM_ERR_H

#include <errno.h>
#include <stddef.h>

#define DLVM_ERR_MSG_MAX 512

struct dlvm_err {
	int code;                   /* 0 or a negative errno */
	char msg[DLVM_ERR_MSG_MAX]; /* human readable, never ends in '\n' */
};

/*
 * Record an error. Formats the message printf-style into err (if err is not
 * NULL and holds no error yet: the innermost message wins) and returns code,
 * so callers can write `return dlvm_err_set(err, -EINVAL, "...")`.
 */
int dlvm_err_set(struct dlvm_err *err, int code, const char *fmt, ...)
		__attribute__((format(printf, 3, 4)));

/*
 * Prefix the message already in err with more context ("vg0: " + msg).
 * Returns err->code (or `code` when err is NULL).
 */
int dlvm_err_prefix(struct dlvm_err *err, int code, const char *fmt, ...)
		__attribute__((format(printf, 3, 4)));

/* Clear err for reuse. */
void dlvm_err_clear(struct dlvm_err *err);

/* Short symbolic name of an errno value ("ENOSPC"); "EUNKNOWN" if unknown. */
const char *dlvm_errno_name(int code);

#endif
