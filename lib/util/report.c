/* SPDX-License-Identifier: MIT */
/* The report of a consistency check: its lines and its problem count. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlvm/util.h"

void dlvm_check_report_add(struct dlvm_check_report *rep, bool problem, const char *fmt, ...)
{
	char **l = realloc(rep->lines, (rep->nlines + 1) * sizeof(*l));
	va_list ap;

	if (problem)
		rep->problems++;
	if (!l)
		return;
	rep->lines = l;
	va_start(ap, fmt);
	if (vasprintf(&l[rep->nlines], fmt, ap) >= 0)
		rep->nlines++;
	va_end(ap);
}

void dlvm_check_report_release(struct dlvm_check_report *rep)
{
	for (size_t i = 0; i < rep->nlines; i++)
		free(rep->lines[i]);
	free(rep->lines);
	memset(rep, 0, sizeof(*rep));
}
