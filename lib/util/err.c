/* SPDX-License-Identifier: MIT */
#include "dlvm/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int dlvm_err_set(struct dlvm_err *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (!err || err->code)
		return code;
	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return code;
}

int dlvm_err_prefix(struct dlvm_err *err, int code, const char *fmt, ...)
{
	char prefix[DLVM_ERR_MSG_MAX];
	char old[DLVM_ERR_MSG_MAX];
	va_list ap;

	if (!err)
		return code;
	if (!err->code) {
		err->code = code;
		snprintf(err->msg, sizeof(err->msg), "%s", strerror(-code));
	}
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	size_t pl = strnlen(prefix, sizeof(err->msg) - 1);
	memcpy(err->msg, prefix, pl);
	size_t ol = strnlen(old, sizeof(err->msg) - 1 - pl);
	memcpy(err->msg + pl, old, ol);
	err->msg[pl + ol] = '\0';
	return err->code;
}

void dlvm_err_clear(struct dlvm_err *err)
{
	if (err) {
		err->code = 0;
		err->msg[0] = '\0';
	}
}

const char *dlvm_errno_name(int code)
{
	switch (code < 0 ? -code : code) {
	case 0: return "OK";
	case EINVAL: return "EINVAL";
	case ENOENT: return "ENOENT";
	case EEXIST: return "EEXIST";
	case ENOSPC: return "ENOSPC";
	case EBUSY: return "EBUSY";
	case EBADMSG: return "EBADMSG";
	case ENOTSUP: return "ENOTSUP";
	case EROFS: return "EROFS";
	case EIO: return "EIO";
	case ENOMEM: return "ENOMEM";
	case EPERM: return "EPERM";
	case EACCES: return "EACCES";
	case ERANGE: return "ERANGE";
	case EOVERFLOW: return "EOVERFLOW";
	case ENODEV: return "ENODEV";
	case ENOTDIR: return "ENOTDIR";
	case EISDIR: return "EISDIR";
	case EAGAIN: return "EAGAIN";
	case ETIMEDOUT: return "ETIMEDOUT";
	case ECONNREFUSED: return "ECONNREFUSED";
	default: return "EUNKNOWN";
	}
}
