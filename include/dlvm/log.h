/* SPDX-License-Identifier: MIT */
/*
 * Logging of libdlvm and its front ends.
 *
 * A line has a level, a subsystem and a message. The library never writes to
 * stderr itself: every line goes to the sink the front end installed
 * (dlvmd: stderr or the systemd journal, and its ring buffer; the CLI: stderr
 * at warning level unless -v). Without a sink, lines go to stderr as
 * "IDENT: [WARNING: ]message".
 *
 * Messages name the object they concern first ("vg0/lv1: ..."). Bytes that
 * could forge a line (control characters, newlines) are escaped as \xNN
 * before the sink sees them, so a name chosen by a client cannot start a
 * line of its own.
 *
 * Debug lines are kept per subsystem and cost one load when off:
 * log_debug(DLVM_LOG_LEASE, ...) prints only when that subsystem's debug
 * flag is on (dlvm_log_set_debug("lease,thin")).
 *
 * Every function here may be called from any thread.
 */
#ifndef DLVM_LOG_H
#define DLVM_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "dlvm/err.h"

enum dlvm_log_level {
	DLVM_LOG_ERROR,
	DLVM_LOG_WARNING,
	DLVM_LOG_INFO,
	DLVM_LOG_DEBUG,
};

/* Subsystems; their names (dlvm_log_sub_name) are what --debug takes. */
enum dlvm_log_sub {
	DLVM_LOG_MAIN,    /* "main": start, stop, configuration */
	DLVM_LOG_LEASE,   /* "lease": lockspace, VG lease, activation records */
	DLVM_LOG_THIN,    /* "thin": thin pools, families, slabs */
	DLVM_LOG_NBD,     /* "nbd": the NBD server */
	DLVM_LOG_JOURNAL, /* "journal": metadata commits and replay */
	DLVM_LOG_API,     /* "api": the HTTP APIs */
	DLVM_LOG_JOBS,    /* "jobs": background jobs */
	DLVM_LOG_AGENT,   /* "agent": the periodic pass: refresh, adopt, pools */
	DLVM_LOG_NSUB
};

/* The longest line a sink sees, NUL included (longer messages are cut). */
#define DLVM_LOG_LINE_MAX 1024

/*
 * A sink receives every line at or above the threshold (and debug lines of
 * the subsystems whose flag is on). line is escaped, has no newline, and is
 * valid only during the call. Sinks are called with no lock of the logger
 * held and may be called from several threads at once.
 */
typedef void (*dlvm_log_sink_fn)(void *arg, enum dlvm_log_level level, enum dlvm_log_sub sub,
				 const char *line);

/* Install sink (NULL: back to stderr). Not thread-safe against logging: call
 * it at start, before threads run. */
void dlvm_log_set_sink(dlvm_log_sink_fn sink, void *arg);

/* The prefix of the stderr sink ("dlvmd", "dlvm"); the string is not copied. */
void dlvm_log_set_ident(const char *ident);
const char *dlvm_log_ident(void);

/* Lines below `level` are dropped (debug lines also need their flag). */
void dlvm_log_set_level(enum dlvm_log_level level);

/*
 * Turn on debug lines of the subsystems named in list, comma separated
 * ("lease,thin", "all"); an empty list turns them all off. -EINVAL with a
 * message naming the unknown subsystem (nothing changed then).
 */
int dlvm_log_set_debug(const char *list, struct dlvm_err *err);

/* Is subsystem sub's debug flag on? */
bool dlvm_log_debug_on(enum dlvm_log_sub sub);

/* "lease", ...; NULL for a value out of range. */
const char *dlvm_log_sub_name(enum dlvm_log_sub sub);
/* "error", "warning", "info", "debug". */
const char *dlvm_log_level_name(enum dlvm_log_level level);

/* Log one line. */
void dlvm_log(enum dlvm_log_level level, enum dlvm_log_sub sub, const char *fmt, ...)
		__attribute__((format(printf, 3, 4)));
void dlvm_vlog(enum dlvm_log_level level, enum dlvm_log_sub sub, const char *fmt, va_list ap)
		__attribute__((format(printf, 3, 0)));

/*
 * Escape src into dst (size len, always NUL-terminated): bytes below 0x20,
 * 0x7f and backslash become \xNN. Returns dst.
 */
char *dlvm_log_escape(char *dst, size_t len, const char *src);

/* The level named name ("error", "warning", "info", "debug") in *out;
 * -EINVAL for any other name. */
int dlvm_log_level_parse(const char *name, enum dlvm_log_level *out);

/*
 * A ring of the last lines logged, for a front end to show them again
 * (dlvmd: GET /v1/log). Each line gets the next sequence number (the first
 * is 1) and the wall-clock time it was added; once full, the oldest line
 * goes. All calls may come from any thread at once.
 */
struct dlvm_log_ring;

struct dlvm_log_entry {
	uint64_t seq;
	struct timespec time; /* CLOCK_REALTIME */
	enum dlvm_log_level level;
	enum dlvm_log_sub sub;
	const char *line; /* escaped as the sink saw it */
};

/* A ring of cap lines (cap > 0) in *out; -EINVAL (cap 0), -ENOMEM. Free it
 * with dlvm_log_ring_free (NULL is a no-op). */
int dlvm_log_ring_new(size_t cap, struct dlvm_log_ring **out);
void dlvm_log_ring_free(struct dlvm_log_ring *ring);

/* Add a line (cut to DLVM_LOG_LINE_MAX - 1 bytes); returns its sequence
 * number. */
uint64_t dlvm_log_ring_add(struct dlvm_log_ring *ring, enum dlvm_log_level level,
			   enum dlvm_log_sub sub, const char *line);

/*
 * Call fn, oldest first, for every line kept whose sequence number is above
 * since and whose level is `level` or more severe (DLVM_LOG_DEBUG: all).
 * fn runs with the ring locked: it must not log nor touch the ring, and
 * the entry is valid only during the call. Returns the sequence number of
 * the last line added so far (0: none), so that a reader can ask again
 * with since set to it.
 */
uint64_t dlvm_log_ring_read(struct dlvm_log_ring *ring, uint64_t since, enum dlvm_log_level level,
			    void (*fn)(void *arg, const struct dlvm_log_entry *e), void *arg);

#define log_error(sub, ...) dlvm_log(DLVM_LOG_ERROR, (sub), __VA_ARGS__)
#define log_warning(sub, ...) dlvm_log(DLVM_LOG_WARNING, (sub), __VA_ARGS__)
#define log_info(sub, ...) dlvm_log(DLVM_LOG_INFO, (sub), __VA_ARGS__)
#define log_debug(sub, ...) \
	do { \
		if (dlvm_log_debug_on(sub)) \
			dlvm_log(DLVM_LOG_DEBUG, (sub), __VA_ARGS__); \
	} while (0)

#endif
