/* SPDX-License-Identifier: MIT */
/*
 * libc functions that dlvm does not call (docs/coding.md: "Banned
 * functions"). The C files of lib/, cli/ and daemon/ are compiled with this
 * header forced in before their first line (meson.build: banned_args), so a
 * call of one of these functions does not compile, and the error names it:
 *
 *     error: 'strcpy_is_banned_see_docs_coding_md' undeclared
 *
 * The system headers that declare them are included first: when a source
 * file includes them again their guards skip them, so no declaration meets
 * the macros below. The macros take arguments, so that only a call is
 * caught, never a struct field of the same name (lv->ctime).
 */
#ifndef DLVM_BANNED_H
#define DLVM_BANNED_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DLVM_BANNED(func) func##_is_banned_see_docs_coding_md

/* No bound on the destination: memcpy after a length check, or snprintf. */
#undef strcpy
#define strcpy(...) DLVM_BANNED(strcpy)
#undef strcat
#define strcat(...) DLVM_BANNED(strcat)
#undef sprintf
#define sprintf(...) DLVM_BANNED(sprintf)
#undef vsprintf
#define vsprintf(...) DLVM_BANNED(vsprintf)

/* Hidden state (strtok), and both write into the string and fold runs of
 * separators into one: a loop over strchr or strcspn. */
#undef strtok
#define strtok(...) DLVM_BANNED(strtok)
#undef strtok_r
#define strtok_r(...) DLVM_BANNED(strtok_r)

/* No error: "12x" reads as 12, an overflow is undefined. strtoull with an
 * end pointer and errno, or dlvm_parse_size. */
#undef atoi
#define atoi(...) DLVM_BANNED(atoi)
#undef atol
#define atol(...) DLVM_BANNED(atol)

/* A result in a static buffer that another thread may overwrite:
 * gmtime_r, localtime_r, strftime. */
#undef gmtime
#define gmtime(...) DLVM_BANNED(gmtime)
#undef localtime
#define localtime(...) DLVM_BANNED(localtime)
#undef ctime
#define ctime(...) DLVM_BANNED(ctime)
#undef asctime
#define asctime(...) DLVM_BANNED(asctime)

#endif
