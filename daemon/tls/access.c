/* SPDX-License-Identifier: MIT */
/* The access rules file of the NBD server (access.h). */
#include "daemon/tls/access.h"

#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rule {
	char *id;      /* "*": every client */
	char *pattern; /* over "VG/LV" */
};

struct nbd_access {
	struct rule *rules;
	size_t n, cap;
};

void nbd_access_free(struct nbd_access *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->n; i++) {
		free(a->rules[i].id);
		free(a->rules[i].pattern);
	}
	free(a->rules);
	free(a);
}

size_t nbd_access_count(const struct nbd_access *a)
{
	return a ? a->n : 0;
}

static int add_rule(struct nbd_access *a, const char *id, const char *pat, size_t plen)
{
	if (a->n == a->cap) {
		size_t cap = a->cap ? 2 * a->cap : 16;
		struct rule *r = realloc(a->rules, cap * sizeof(*r));
		if (!r)
			return -ENOMEM;
		a->rules = r;
		a->cap = cap;
	}
	a->rules[a->n].id = strdup(id);
	a->rules[a->n].pattern = strndup(pat, plen);
	if (!a->rules[a->n].id || !a->rules[a->n].pattern) {
		free(a->rules[a->n].id);
		free(a->rules[a->n].pattern);
		return -ENOMEM;
	}
	a->n++;
	return 0;
}

/* Export names hold [A-Za-z0-9+_.-] and one '/'; a pattern adds globs. */
static bool pattern_char(char ch)
{
	return isalnum((unsigned char)ch) || strchr("+_.-/*?[]!", ch);
}

static char *trim(char *s)
{
	char *e = s + strlen(s);

	while (isspace((unsigned char)*s))
		s++;
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

/* One line (comments and blanks already skipped): its rules into a. */
static int parse_line(struct nbd_access *a, char *line, const char *file, unsigned ln,
		      struct dlvm_err *err)
{
	char *colon = strrchr(line, ':'), *id, *p;
	int r;

	if (!colon)
		return dlvm_err_set(err, -EINVAL, "%s:%u: expected 'IDENTITY: PATTERN...'", file,
				    ln);
	*colon = '\0';
	id = trim(line);
	if (!*id)
		return dlvm_err_set(err, -EINVAL, "%s:%u: no identity before ':'", file, ln);
	for (p = colon + 1; *p;) {
		size_t n;
		p += strspn(p, " \t");
		n = strcspn(p, " \t");
		if (!n)
			break;
		for (size_t i = 0; i < n; i++)
			if (!pattern_char(p[i]))
				return dlvm_err_set(err, -EINVAL,
						    "%s:%u: pattern '%.*s': only the characters "
						    "of export names and * ? [ ] ! are allowed",
						    file, ln, (int)n, p);
		if ((r = add_rule(a, id, p, n)) < 0)
			return dlvm_err_set(err, r, "out of memory");
		p += n;
	}
	return 0;
}

int nbd_access_load(const char *file, struct nbd_access **out, struct dlvm_err *err)
{
	struct nbd_access *a = calloc(1, sizeof(*a));
	FILE *f = fopen(file, "re");
	char *line = NULL;
	size_t cap = 0;
	unsigned ln = 0;
	int r = 0;

	if (!a || !f) {
		r = a ? dlvm_err_set(err, -errno, "%s: %s", file, strerror(errno))
		      : dlvm_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	while (getline(&line, &cap, f) >= 0) {
		char *s = trim(line);
		ln++;
		if (!*s || *s == '#')
			continue;
		if ((r = parse_line(a, s, file, ln, err)) < 0)
			goto out;
	}
	if (ferror(f))
		r = dlvm_err_set(err, -EIO, "%s: read error", file);
out:
	free(line);
	if (f)
		fclose(f);
	if (r < 0) {
		nbd_access_free(a);
		return r;
	}
	*out = a;
	return 0;
}

static bool goes_by(const char *id, const char *const *ids, size_t nids)
{
	if (!strcmp(id, "*"))
		return true;
	for (size_t i = 0; i < nids; i++)
		if (ids[i] && !strcmp(id, ids[i]))
			return true;
	return false;
}

bool nbd_access_allows(const struct nbd_access *a, const char *const *ids, size_t nids,
		       const char *export)
{
	for (size_t i = 0; i < a->n; i++)
		if (goes_by(a->rules[i].id, ids, nids) &&
		    fnmatch(a->rules[i].pattern, export, 0) == 0)
			return true;
	return false;
}
