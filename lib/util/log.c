/* SPDX-License-Identifier: MIT */
/* Logging: levels, per-subsystem debug flags, escaping, one sink. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlvm/log.h"
#include "dlvm/util.h"

static const char *const sub_names[DLVM_LOG_NSUB] = {
	[DLVM_LOG_MAIN] = "main", [DLVM_LOG_LEASE] = "lease",     [DLVM_LOG_THIN] = "thin",
	[DLVM_LOG_NBD] = "nbd",   [DLVM_LOG_JOURNAL] = "journal", [DLVM_LOG_API] = "api",
	[DLVM_LOG_JOBS] = "jobs", [DLVM_LOG_AGENT] = "agent",
};

static const char *const level_names[] = {
	[DLVM_LOG_ERROR] = "error",
	[DLVM_LOG_WARNING] = "warning",
	[DLVM_LOG_INFO] = "info",
	[DLVM_LOG_DEBUG] = "debug",
};

static dlvm_log_sink_fn log_sink;
static void *log_sink_arg;
static const char *log_ident = "dlvm";
static _Atomic int log_threshold = DLVM_LOG_INFO;
static _Atomic unsigned log_debug_mask;

void dlvm_log_set_sink(dlvm_log_sink_fn sink, void *arg)
{
	log_sink = sink;
	log_sink_arg = arg;
}

void dlvm_log_set_ident(const char *ident)
{
	log_ident = ident ? ident : "dlvm";
}

const char *dlvm_log_ident(void)
{
	return log_ident;
}

void dlvm_log_set_level(enum dlvm_log_level level)
{
	atomic_store(&log_threshold, (int)level);
}

const char *dlvm_log_sub_name(enum dlvm_log_sub sub)
{
	return (unsigned)sub < DLVM_LOG_NSUB ? sub_names[sub] : NULL;
}

const char *dlvm_log_level_name(enum dlvm_log_level level)
{
	return (unsigned)level < DLVM_ARRAY_SIZE(level_names) ? level_names[level] : "?";
}

int dlvm_log_level_parse(const char *name, enum dlvm_log_level *out)
{
	for (unsigned i = 0; name && i < DLVM_ARRAY_SIZE(level_names); i++) {
		if (!strcmp(name, level_names[i])) {
			*out = (enum dlvm_log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

bool dlvm_log_debug_on(enum dlvm_log_sub sub)
{
	return (unsigned)sub < DLVM_LOG_NSUB &&
	       (atomic_load_explicit(&log_debug_mask, memory_order_relaxed) & (1u << sub));
}

int dlvm_log_set_debug(const char *list, struct dlvm_err *err)
{
	unsigned mask = 0;
	const char *p = list ? list : "";

	while (*p) {
		size_t n = strcspn(p, ",");
		bool found = false;

		if (n == 3 && !strncmp(p, "all", 3)) {
			mask = (1u << DLVM_LOG_NSUB) - 1;
			found = true;
		}
		for (unsigned i = 0; !found && i < DLVM_LOG_NSUB; i++) {
			if (strlen(sub_names[i]) == n && !strncmp(p, sub_names[i], n)) {
				mask |= 1u << i;
				found = true;
			}
		}
		if (!found && n)
			return dlvm_err_set(err, -EINVAL,
					    "--debug: unknown subsystem '%.*s' (known: main, "
					    "lease, "
					    "thin, nbd, journal, api, jobs, agent, all)",
					    (int)DLVM_MIN(n, 64), p);
		p += n;
		if (*p == ',')
			p++;
	}
	atomic_store(&log_debug_mask, mask);
	return 0;
}

char *dlvm_log_escape(char *dst, size_t len, const char *src)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	if (!len)
		return dst;
	for (const unsigned char *s = (const unsigned char *)src; *s; s++) {
		if (*s < 0x20 || *s == 0x7f || *s == '\\') {
			if (o + 4 >= len)
				break;
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[*s >> 4];
			dst[o++] = hex[*s & 15];
		} else {
			if (o + 1 >= len)
				break;
			dst[o++] = (char)*s;
		}
	}
	dst[o] = '\0';
	return dst;
}

void dlvm_vlog(enum dlvm_log_level level, enum dlvm_log_sub sub, const char *fmt, va_list ap)
{
	char raw[DLVM_LOG_LINE_MAX], line[DLVM_LOG_LINE_MAX];

	if (level == DLVM_LOG_DEBUG ? !dlvm_log_debug_on(sub)
				    : (int)level > atomic_load_explicit(&log_threshold,
									memory_order_relaxed))
		return;
	vsnprintf(raw, sizeof(raw), fmt, ap);
	dlvm_log_escape(line, sizeof(line), raw);
	if (log_sink) {
		log_sink(log_sink_arg, level, sub, line);
		return;
	}
	if (level == DLVM_LOG_WARNING)
		fprintf(stderr, "%s: WARNING: %s\n", log_ident, line);
	else if (level == DLVM_LOG_DEBUG)
		fprintf(stderr, "%s: debug: %s: %s\n", log_ident, sub_names[sub], line);
	else
		fprintf(stderr, "%s: %s\n", log_ident, line);
}

void dlvm_log(enum dlvm_log_level level, enum dlvm_log_sub sub, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	dlvm_vlog(level, sub, fmt, ap);
	va_end(ap);
}

/* ---- ring of the last lines ---- */

struct ring_slot {
	uint64_t seq;
	struct timespec time;
	enum dlvm_log_level level;
	enum dlvm_log_sub sub;
	char line[DLVM_LOG_LINE_MAX];
};

struct dlvm_log_ring {
	pthread_mutex_t lock;
	size_t cap;
	uint64_t last;           /* sequence number of the newest line, 0: none */
	struct ring_slot *slots; /* line seq is in slots[(seq - 1) % cap] */
};

int dlvm_log_ring_new(size_t cap, struct dlvm_log_ring **out)
{
	struct dlvm_log_ring *r;

	if (!cap)
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->slots = calloc(cap, sizeof(*r->slots));
	if (!r->slots) {
		free(r);
		return -ENOMEM;
	}
	r->cap = cap;
	pthread_mutex_init(&r->lock, NULL);
	*out = r;
	return 0;
}

void dlvm_log_ring_free(struct dlvm_log_ring *ring)
{
	if (!ring)
		return;
	pthread_mutex_destroy(&ring->lock);
	free(ring->slots);
	free(ring);
}

uint64_t dlvm_log_ring_add(struct dlvm_log_ring *ring, enum dlvm_log_level level,
			   enum dlvm_log_sub sub, const char *line)
{
	struct ring_slot *s;
	struct timespec now;
	uint64_t seq;

	clock_gettime(CLOCK_REALTIME, &now);
	pthread_mutex_lock(&ring->lock);
	seq = ++ring->last;
	s = &ring->slots[(seq - 1) % ring->cap];
	s->seq = seq;
	s->time = now;
	s->level = level;
	s->sub = sub;
	snprintf(s->line, sizeof(s->line), "%s", line);
	pthread_mutex_unlock(&ring->lock);
	return seq;
}

uint64_t dlvm_log_ring_read(struct dlvm_log_ring *ring, uint64_t since, enum dlvm_log_level level,
			    void (*fn)(void *arg, const struct dlvm_log_entry *e), void *arg)
{
	uint64_t first, last;

	pthread_mutex_lock(&ring->lock);
	last = ring->last;
	first = last > ring->cap ? last - ring->cap + 1 : 1;
	if (since >= first)
		first = since + 1;
	for (uint64_t seq = first; seq <= last; seq++) {
		const struct ring_slot *s = &ring->slots[(seq - 1) % ring->cap];
		struct dlvm_log_entry e = {
			.seq = s->seq,
			.time = s->time,
			.level = s->level,
			.sub = s->sub,
			.line = s->line,
		};

		if (s->level <= level)
			fn(arg, &e);
	}
	pthread_mutex_unlock(&ring->lock);
	return last;
}
