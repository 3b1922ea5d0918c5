/* SPDX-License-Identifier: MIT */
/*
 * Printing responses as LVM does: messages on stdout, "  WARNING: ..." and
 * "  error" on stderr, reports as aligned columns under LVM's headings or as
 * LVM's JSON ({"report": [{"lv": [{"lv_name": "disk1", ...}]}]}, every value
 * a string).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "dlvm/util.h"

void cli_print_error(const char *fmt, ...)
{
	va_list ap;

	fputs("  ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* ---- columns ---- */

static const struct dlvm_field_def *find_field(const struct dlvm_field_def *fields,
					       const char *kind, const char *name, size_t len)
{
	char prefixed[128];

	for (const struct dlvm_field_def *f = fields; f->name; f++)
		if (strlen(f->name) == len && !strncmp(f->name, name, len))
			return f;
	/* LVM accepts a field without its prefix: "size" for "lv_size". */
	snprintf(prefixed, sizeof(prefixed), "%s_%.*s", kind, (int)len, name);
	for (const struct dlvm_field_def *f = fields; f->name; f++)
		if (!strcmp(f->name, prefixed))
			return f;
	return NULL;
}

/* Append the comma-separated fields of spec to cols. */
static int add_fields(const struct dlvm_field_def *fields, const char *kind, const char *spec,
		      const struct dlvm_field_def ***cols, size_t *n)
{
	while (*spec) {
		size_t len = strcspn(spec, ",");
		const struct dlvm_field_def *f, **p;

		if (len) {
			f = find_field(fields, kind, spec, len);
			if (!f) {
				cli_print_error("Unrecognised field: %.*s", (int)len, spec);
				fprintf(stderr, "  Valid %s fields:", kind);
				for (const struct dlvm_field_def *v = fields; v->name; v++)
					fprintf(stderr, "%s %s", v == fields ? "" : ",", v->name);
				fputc('\n', stderr);
				return -EINVAL;
			}
			p = realloc(*cols, (*n + 1) * sizeof(**cols));
			if (!p)
				return -ENOMEM;
			*cols = p;
			(*cols)[(*n)++] = f;
		}
		spec += len;
		if (*spec == ',')
			spec++;
	}
	return 0;
}

int cli_report_columns(const char *kind, const struct cli_report_opts *rep,
		       const struct dlvm_field_def ***out)
{
	const struct dlvm_field_def *fields, **cols = NULL;
	const char *defaults = NULL;
	size_t n = 0;
	int r = 0;

	fields = dlvm_report_fields(kind, &defaults);
	if (!fields)
		return -ENOENT;
	/* LVM: -o replaces the default columns, -o +FIELDS adds to them. */
	if (!rep->nfields || rep->fields[0][0] == '+')
		r = add_fields(fields, kind, defaults ? defaults : "", &cols, &n);
	for (size_t i = 0; i < rep->nfields && !r; i++) {
		const char *spec = rep->fields[i];

		r = add_fields(fields, kind, spec[0] == '+' ? spec + 1 : spec, &cols, &n);
	}
	if (r < 0) {
		free(cols);
		return r;
	}
	*out = cols;
	return (int)n;
}

/* ---- values ---- */

/* Sizes in SI units (upper-case --units), as LVM prints them. */
static void format_si(uint64_t bytes, char unit, char *out, size_t len)
{
	static const char units[] = "BKMGTPE";
	const char *pos;
	double div = 1;
	int k = 0;

	if (unit == 'S') {
		snprintf(out, len, "%" PRIu64 "S", bytes / 512);
		return;
	}
	if (unit == 'H') {
		while (k < 6 && (double)bytes >= div * 1000) {
			div *= 1000;
			k++;
		}
	} else if ((pos = strchr(units, unit))) {
		k = (int)(pos - units);
		for (int i = 0; i < k; i++)
			div *= 1000;
	}
	if (k == 0)
		snprintf(out, len, "%" PRIu64 "B", bytes);
	else
		snprintf(out, len, "%.2f%c", (double)bytes / div, units[k]);
}

static void format_size(uint64_t bytes, const struct cli_report_opts *rep, char *out, size_t len)
{
	size_t n;

	if (rep->units >= 'A' && rep->units <= 'Z') {
		format_si(bytes, rep->units, out, len);
	} else {
		dlvm_format_size(bytes, rep->units, out, len);
		n = strlen(out);
		/* bytes and sectors carry an upper-case letter, as in LVM */
		if (n && (out[n - 1] == 'b' || out[n - 1] == 's'))
			out[n - 1] = (char)(out[n - 1] - 'a' + 'A');
	}
	n = strlen(out);
	if (rep->nosuffix && n && (out[n - 1] < '0' || out[n - 1] > '9'))
		out[n - 1] = '\0';
}

/* The text of one report cell (owned by the caller). */
static char *cell_text(json_t *v, const struct dlvm_field_def *f, const struct cli_report_opts *rep)
{
	char buf[64];

	if (!v || json_is_null(v))
		return strdup("");
	if (json_is_string(v))
		return strdup(json_string_value(v));
	if (json_is_integer(v)) {
		json_int_t i = json_integer_value(v);

		if (f->type == DLVM_FIELD_SIZE && i >= 0)
			format_size((uint64_t)i, rep, buf, sizeof(buf));
		else
			snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, i);
		return strdup(buf);
	}
	if (json_is_real(v)) {
		snprintf(buf, sizeof(buf), "%g", json_real_value(v));
		return strdup(buf);
	}
	if (json_is_boolean(v))
		return strdup(json_is_true(v) ? "1" : "0");
	return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

/* ---- reports ---- */

static int print_json_report(const char *kind, json_t *rows, const struct dlvm_field_def **cols,
			     size_t ncol, const struct cli_report_opts *rep)
{
	json_t *out, *list, *row;
	size_t i;
	char *text;

	list = json_array();
	out = json_pack("{s:[{s:o}]}", "report", kind, list);
	if (!out)
		return -ENOMEM;
	json_array_foreach(rows, i, row)
	{
		json_t *o = json_object();

		for (size_t c = 0; c < ncol; c++) {
			char *t = cell_text(json_object_get(row, cols[c]->name), cols[c], rep);

			json_object_set_new(o, cols[c]->name, json_string(t ? t : ""));
			free(t);
		}
		json_array_append_new(list, o);
	}
	text = json_dumps(out, JSON_INDENT(4) | JSON_PRESERVE_ORDER);
	json_decref(out);
	if (!text)
		return -ENOMEM;
	puts(text);
	free(text);
	return 0;
}

static void print_cell(const char *s, size_t width, bool right, bool last)
{
	if (right)
		printf("%*s", (int)width, s);
	else if (last)
		fputs(s, stdout);
	else
		printf("%-*s", (int)width, s);
}

static int print_basic_report(json_t *rows, const struct dlvm_field_def **cols, size_t ncol,
			      const struct cli_report_opts *rep)
{
	size_t nrow = json_array_size(rows), *width;
	char **cells;
	const char *sep = rep->separator ? rep->separator : " ";

	cells = calloc(nrow * ncol + 1, sizeof(*cells));
	width = calloc(ncol + 1, sizeof(*width));
	if (!cells || !width) {
		free(cells);
		free(width);
		return -ENOMEM;
	}
	for (size_t c = 0; c < ncol; c++)
		width[c] = rep->noheadings ? 0 : strlen(cols[c]->heading);
	for (size_t r = 0; r < nrow; r++)
		for (size_t c = 0; c < ncol; c++) {
			char *t = cell_text(json_object_get(json_array_get(rows, r), cols[c]->name),
					    cols[c], rep);

			cells[r * ncol + c] = t;
			if (t && strlen(t) > width[c])
				width[c] = strlen(t);
		}
	if (rep->separator)
		memset(width, 0, ncol * sizeof(*width)); /* LVM: a separator, no alignment */

	if (!rep->noheadings) {
		fputs("  ", stdout);
		for (size_t c = 0; c < ncol; c++) {
			if (c)
				fputs(sep, stdout);
			print_cell(cols[c]->heading, width[c], cols[c]->type != DLVM_FIELD_STR,
				   c + 1 == ncol);
		}
		putchar('\n');
	}
	for (size_t r = 0; r < nrow; r++) {
		fputs("  ", stdout);
		for (size_t c = 0; c < ncol; c++) {
			const char *t = cells[r * ncol + c];

			if (c)
				fputs(sep, stdout);
			print_cell(t ? t : "", width[c], cols[c]->type != DLVM_FIELD_STR,
				   c + 1 == ncol);
		}
		putchar('\n');
	}
	for (size_t i = 0; i < nrow * ncol; i++)
		free(cells[i]);
	free(cells);
	free(width);
	return 0;
}

static int print_report(json_t *report, const struct cli_report_opts *rep)
{
	const struct dlvm_field_def **cols = NULL;
	const char *kind = json_string_value(json_object_get(report, "kind"));
	json_t *rows = json_object_get(report, "rows");
	int n, r;

	if (!kind || !json_is_array(rows)) {
		cli_print_error("Malformed report in the response");
		return CLI_EXIT_FAILED;
	}
	n = cli_report_columns(kind, rep, &cols);
	if (n == -EINVAL)
		return CLI_EXIT_USAGE;
	if (n < 0) {
		cli_print_error("Report of unknown kind \"%s\"", kind);
		return CLI_EXIT_FAILED;
	}
	if (rep->json)
		r = print_json_report(kind, rows, cols, (size_t)n, rep);
	else
		r = print_basic_report(rows, cols, (size_t)n, rep);
	free(cols);
	if (r < 0) {
		cli_print_error("Out of memory");
		return CLI_EXIT_FAILED;
	}
	return 0;
}

int cli_print_response(json_t *resp, const struct cli_report_opts *rep)
{
	json_t *v, *report;
	const char *text;
	size_t i;

	json_array_foreach(json_object_get(resp, "warnings"), i, v) if (json_is_string(v))
			fprintf(stderr, "  WARNING: %s\n", json_string_value(v));
	json_array_foreach(json_object_get(resp, "messages"), i, v) if (json_is_string(v))
			printf("  %s\n", json_string_value(v));
	text = json_string_value(json_object_get(resp, "text"));
	if (text) {
		fputs(text, stdout);
		if (*text && text[strlen(text) - 1] != '\n')
			putchar('\n');
	}
	report = json_object_get(resp, "report");
	if (json_is_object(report))
		return print_report(report, rep);
	return 0;
}
