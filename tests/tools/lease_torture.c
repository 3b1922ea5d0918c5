/* SPDX-License-Identifier: MIT */
/*
 * lease_torture: several processes, each a "host" with its own host id, take
 * and release the Disk Paxos leases of one lease area in a file, and check
 * with an oracle on the same file that no two of them ever held a resource
 * in conflicting modes. Used by tests/system/test_lease_torture.py.
 *
 *   lease_torture format FILE [--max-hosts N] [--resources R] [--io-timeout T]
 *                 [--sector-size S]
 *   lease_torture run FILE --host-id N [--acquisitions K] [--mode ex|sh|mixed]
 *                 [--resources R | --resource R] [--hold-ms MS] [--hold-min-ms MS]
 *                 [--idle-ms MS] [--max-wait-ms MS] [--seed S] [--events] [--unsafe]
 *   lease_torture contend FILE --host-id N [--resource R] [--max-wait-ms MS]
 *   lease_torture dump FILE
 *
 * format: a fresh file (defaults: 8 hosts, 4 resources, io_timeout 1 s)
 * with a zero count record per resource; prints the layout, with the offset
 * of every delta lease and leader (for tests that damage them). dump: the
 * leaders, count records and shared markers.
 *
 * run: hold each lease for a random time in [--hold-min-ms, --hold-ms]
 * (default 0..2 ms), pause up to --idle-ms between acquisitions, use
 * resources 0..R-1 (or only --resource R), give up on one still busy after
 * --max-wait-ms (default 60 s). --events prints a line for each join,
 * acquisition, hold, renewal and the first busy reply. --unsafe takes no
 * lease at all, to show that the oracle catches that.
 *
 * ==== File layout ====
 *
 *   0             the lease area (dlvm_lease_area_format at offset 0)
 *   data_offset   = align4k(area_size): one data block per resource, of
 *                 data_stride = 4096 + align4k(max_hosts * 512) bytes:
 *     +0                        count record (512 bytes, rest of 4096 zero)
 *     +4096 + (h - 1) * 512     shared marker of host id h
 *
 * Count record: magic "dlvm.tcb" @0, count u64 @8, host_id u32 @16 (last
 * writer), generation u64 @24, lver u64 @32 (lease version the writer held),
 * crc32c of bytes 0..507 @508. Shared marker: magic "dlvm.tsm" @0, host_id
 * u32 @8, held u32 @12, generation u64 @16, lver u64 @24, crc @508; an
 * all-zero sector was never used.
 *
 * ==== The oracle ====
 *
 * An exclusive holder reads the data block, checks that the count record
 * was written under an older lease version and that no host is marked as a
 * shared holder, reads it again after a short pause (unchanged), increments
 * the count (after checking its lease deadline, as the data path does),
 * holds for a random time, reads again: the record must be exactly the one
 * it wrote and no shared marker may be set. A shared holder reads the count
 * record, sets its own marker, holds, and checks that the count record did
 * not change. Any difference while the holder's own lease was still valid is
 * a violation. A marker of a host that the lockspace shows gone (dead, free,
 * or restarted), left by a killed shared holder, is counted as stale and
 * ignored, as the leases ignore that host's SHARED flag. Every lease version
 * each process ran at is listed in the summary, so the test can check that
 * no version had two owners.
 *
 * `run` joins the lockspace (renewing every renew interval from a thread),
 * then performs K acquisitions of random resources, retrying a busy one
 * after a random 0.1-2 ms. A resource whose lease does not decode (-EBADMSG)
 * is no longer used. `contend` takes commands on stdin, one per line: "go K
 * T" (at monotonic millisecond T, acquire the resource for round K until it
 * is won or held by another host), "release" (the winner releases), "quit".
 *
 * Output: one JSON object per line on stdout; the last one is the summary
 * ("event": "summary"): acquisitions, busy replies (and the holders they
 * named), violations, errors, damaged leases, renewals, and the lease
 * versions this host held on each resource. Messages go to stderr. Exit status: 0, 1 on any
 * violation, 2 on other errors, 3 when a damaged lease stopped its use.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dlvm/dev.h"
#include "dlvm/lease.h"
#include "dlvm/util.h"

#define COUNT_MAGIC "dlvm.tcb"
#define MARKER_MAGIC "dlvm.tsm"
#define REC_SIZE 512u
#define REC_CRC 508u
#define MAX_MESSAGES 20

enum { EXIT_OK = 0, EXIT_VIOLATION = 1, EXIT_ERROR = 2, EXIT_DAMAGED = 3 };

/* ---- time and randomness ---- */

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* Milliseconds on the clock the lease library uses (CLOCK_BOOTTIME). */
static uint64_t now_ms(void)
{
	return now_us() / 1000;
}

static void sleep_us(uint64_t us)
{
	struct timespec ts = { .tv_sec = (time_t)(us / 1000000),
			       .tv_nsec = (long)(us % 1000000) * 1000 };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static void sleep_until_ms(uint64_t ms)
{
	struct timespec ts = { .tv_sec = (time_t)(ms / 1000),
			       .tv_nsec = (long)(ms % 1000) * 1000000 };

	while (clock_nanosleep(CLOCK_BOOTTIME, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1Dull;
}

/* Uniform in [lo, hi]. */
static uint64_t rng_range(uint64_t *s, uint64_t lo, uint64_t hi)
{
	return hi <= lo ? lo : lo + rng_next(s) % (hi - lo + 1);
}

/* ---- the data region: count records and shared markers ---- */

struct count_rec {
	uint64_t count;
	uint32_t host_id;
	uint64_t generation;
	uint64_t lver;
};

struct marker {
	uint32_t host_id;
	uint32_t held;
	uint64_t generation;
	uint64_t lver;
};

static void count_encode(const struct count_rec *c, uint8_t *buf)
{
	memset(buf, 0, REC_SIZE);
	memcpy(buf, COUNT_MAGIC, 8);
	dlvm_put_le64(buf + 8, c->count);
	dlvm_put_le32(buf + 16, c->host_id);
	dlvm_put_le64(buf + 24, c->generation);
	dlvm_put_le64(buf + 32, c->lver);
	dlvm_put_le32(buf + REC_CRC, dlvm_crc32c(buf, REC_CRC));
}

static int record_check(const uint8_t *buf, const char *magic, const char *what, char *msg,
			size_t len)
{
	if (memcmp(buf, magic, 8)) {
		snprintf(msg, len, "%s: bad magic", what);
		return -EBADMSG;
	}
	uint32_t want = dlvm_get_le32(buf + REC_CRC), got = dlvm_crc32c(buf, REC_CRC);
	if (want != got) {
		snprintf(msg, len, "%s: checksum mismatch (stored 0x%08x, computed 0x%08x)", what,
			 want, got);
		return -EBADMSG;
	}
	return 0;
}

static int count_decode(const uint8_t *buf, struct count_rec *c, char *msg, size_t len)
{
	int r = record_check(buf, COUNT_MAGIC, "count record", msg, len);
	if (r)
		return r;
	c->count = dlvm_get_le64(buf + 8);
	c->host_id = dlvm_get_le32(buf + 16);
	c->generation = dlvm_get_le64(buf + 24);
	c->lver = dlvm_get_le64(buf + 32);
	return 0;
}

static void marker_encode(const struct marker *m, uint8_t *buf)
{
	memset(buf, 0, REC_SIZE);
	memcpy(buf, MARKER_MAGIC, 8);
	dlvm_put_le32(buf + 8, m->host_id);
	dlvm_put_le32(buf + 12, m->held);
	dlvm_put_le64(buf + 16, m->generation);
	dlvm_put_le64(buf + 24, m->lver);
	dlvm_put_le32(buf + REC_CRC, dlvm_crc32c(buf, REC_CRC));
}

static int marker_decode(const uint8_t *buf, struct marker *m, char *msg, size_t len)
{
	static const uint8_t zero[REC_SIZE];

	memset(m, 0, sizeof(*m));
	if (!memcmp(buf, zero, REC_SIZE))
		return 0;
	int r = record_check(buf, MARKER_MAGIC, "shared marker", msg, len);
	if (r)
		return r;
	m->host_id = dlvm_get_le32(buf + 8);
	m->held = dlvm_get_le32(buf + 12);
	m->generation = dlvm_get_le64(buf + 16);
	m->lver = dlvm_get_le64(buf + 24);
	return 0;
}

struct layout {
	uint64_t data_offset, data_stride, file_size;
};

static struct layout layout_of(const struct dlvm_lease_area_header *h)
{
	struct layout l;

	l.data_offset = dlvm_align_up(h->area_size, 4096);
	l.data_stride = 4096 + dlvm_align_up((uint64_t)h->max_hosts * REC_SIZE, 4096);
	l.file_size = l.data_offset + (uint64_t)h->nres * l.data_stride;
	return l;
}

static json_t *layout_json(const struct dlvm_lease_area_header *h)
{
	struct layout l = layout_of(h);
	json_t *o = json_object(), *deltas = json_array(), *leaders = json_array();

	json_object_set_new(o, "sector_size", json_integer(h->sector_size));
	json_object_set_new(o, "max_hosts", json_integer(h->max_hosts));
	json_object_set_new(o, "resources", json_integer(h->nres));
	json_object_set_new(o, "io_timeout", json_integer(h->io_timeout));
	json_object_set_new(o, "area_size", json_integer((json_int_t)h->area_size));
	json_object_set_new(o, "data_offset", json_integer((json_int_t)l.data_offset));
	json_object_set_new(o, "data_stride", json_integer((json_int_t)l.data_stride));
	json_object_set_new(o, "file_size", json_integer((json_int_t)l.file_size));
	/* offsets of the records, as lease.h specifies them (area at 0) */
	for (uint32_t i = 1; i <= h->max_hosts; i++)
		json_array_append_new(deltas,
				      json_integer((json_int_t)(h->lockspace_offset +
								(uint64_t)(i - 1) *
										h->sector_size)));
	for (uint32_t r = 0; r < h->nres; r++)
		json_array_append_new(leaders,
				      json_integer((json_int_t)(h->resource_offset +
								(uint64_t)r * h->resource_stride)));
	json_object_set_new(o, "delta_offsets", deltas);
	json_object_set_new(o, "leader_offsets", leaders);
	json_object_set_new(o, "resource_stride", json_integer((json_int_t)h->resource_stride));
	return o;
}

/* ---- output ---- */

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

/* Print one JSON object as a line on stdout (takes the reference). */
static void emit(json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);

	json_decref(o);
	if (!s)
		return;
	pthread_mutex_lock(&out_lock);
	fputs(s, stdout);
	fputc('\n', stdout);
	fflush(stdout);
	pthread_mutex_unlock(&out_lock);
	free(s);
}

static json_t *event(const char *name)
{
	json_t *o = json_object();

	json_object_set_new(o, "event", json_string(name));
	json_object_set_new(o, "mono_ms", json_integer((json_int_t)now_ms()));
	return o;
}

/* ---- one host ---- */

struct u64vec {
	uint64_t *v;
	size_t n, cap;
};

static bool u64vec_push(struct u64vec *a, uint64_t x)
{
	if (a->n == a->cap) {
		size_t cap = a->cap ? 2 * a->cap : 64;
		uint64_t *v = realloc(a->v, cap * sizeof(*v));
		if (!v)
			return false;
		a->v = v;
		a->cap = cap;
	}
	a->v[a->n++] = x;
	return true;
}

struct msglist {
	unsigned long count;
	json_t *list; /* the first MAX_MESSAGES */
};

struct res_stats {
	unsigned long ex, sh;
	uint64_t last_count; /* the count this host last wrote */
	uint64_t last_lver;  /* the last version this host held */
	bool damaged;
	struct u64vec lvers; /* every version this host held, in order */
};

struct host {
	const char *file;
	struct dlvm_dev *dev;
	struct dlvm_lease_area *area;
	struct dlvm_lockspace *ls;
	const struct dlvm_lease_timeouts *to;
	struct layout lay;
	uint32_t id, nres;
	uint64_t generation;
	uint8_t *blk;  /* one data block */
	uint8_t *sbuf; /* one record */
	uint64_t rng;
	bool events;
	bool unsafe; /* take no lease: the oracle must report violations */
	uint64_t hold_min_us, hold_max_us, max_wait_ms;

	/* renewal thread */
	pthread_t renewer;
	bool renewing;
	pthread_mutex_t rlock;
	pthread_cond_t rcond;
	bool stop;
	atomic_bool lost;
	unsigned long renewals;
	uint64_t max_renew_gap_ms, max_renew_ms;

	/* results */
	struct res_stats *res;
	unsigned long acquisitions, ex, sh, busy, busy_no_ballot, shared_overlaps, stale_markers;
	uint64_t max_acquire_ms, join_ms, first_acquire_ms;
	struct msglist violations, errors, damaged, renew_failures;
	json_t *first_busy;
	unsigned long *busy_by[2]; /* [shared][host id]: busy replies naming a holder */
};

static void note(struct msglist *l, const char *kind, struct host *h, const char *fmt, ...)
		__attribute__((format(printf, 4, 5)));

static void note(struct msglist *l, const char *kind, struct host *h, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "lease_torture: host id %u: %s: %s\n", h->id, kind, msg);
	pthread_mutex_lock(&out_lock);
	if (++l->count <= MAX_MESSAGES)
		json_array_append_new(l->list, json_string(msg));
	pthread_mutex_unlock(&out_lock);
}

#define note_violation(h, ...) note(&(h)->violations, "VIOLATION", (h), __VA_ARGS__)
#define note_error(h, ...) note(&(h)->errors, "error", (h), __VA_ARGS__)

static uint64_t data_off(const struct host *h, uint32_t res)
{
	return h->lay.data_offset + (uint64_t)res * h->lay.data_stride;
}

static int read_block(struct host *h, uint32_t res, struct count_rec *c)
{
	struct dlvm_err e = { 0 };
	char msg[200];
	int r;

	if ((r = dlvm_dev_read(h->dev, h->blk, h->lay.data_stride, data_off(h, res), &e))) {
		note_error(h, "resource %u: data block: %s", res, e.msg);
		return r;
	}
	if ((r = count_decode(h->blk, c, msg, sizeof(msg)))) {
		note_violation(h, "resource %u: %s at offset %" PRIu64, res, msg, data_off(h, res));
		return r;
	}
	return 0;
}

/*
 * A marker left by a host that is gone, by the rule the leases use: its delta
 * lease is dead or free in this host's view, or of a newer generation (it
 * restarted). Only a killed shared holder leaves one.
 */
static bool marker_stale(struct host *h, const struct marker *m)
{
	struct dlvm_host_info *v;
	struct dlvm_err e = { 0 };
	bool stale = false;
	size_t n;

	if (dlvm_lockspace_hosts(h->ls, &v, &n, &e))
		return false;
	for (size_t i = 0; i < n; i++)
		if (v[i].host_id == m->host_id)
			stale = v[i].state == DLVM_HOST_DEAD || v[i].state == DLVM_HOST_FREE ||
				v[i].generation > m->generation;
	free(v);
	return stale;
}

/*
 * Is another host marked as a shared holder in the block just read? Returns
 * the number of such hosts; *who the first. A marker that does not decode is
 * a violation, except for a shared holder (shared): other shared holders may
 * be writing theirs, and a read racing a write can return a mix of two
 * versions, so the block is read again first.
 */
static unsigned shared_marked(struct host *h, uint32_t res, bool shared, struct marker *who)
{
	uint32_t bad = 0;
	unsigned n = 0;
	char msg[200];

	for (int attempt = 1; attempt <= 3; attempt++) {
		struct dlvm_err e = { 0 };
		bad = 0;
		for (uint32_t i = 1; i <= h->area->hdr.max_hosts && !bad; i++) {
			struct marker m;
			if (i != h->id && marker_decode(h->blk + 4096 + (size_t)(i - 1) * REC_SIZE,
							&m, msg, sizeof(msg)))
				bad = i;
		}
		if (!bad || !shared || attempt == 3)
			break;
		sleep_us(1000);
		if (dlvm_dev_read(h->dev, h->blk, h->lay.data_stride, data_off(h, res), &e)) {
			note_error(h, "resource %u: data block: %s", res, e.msg);
			return 0;
		}
	}
	for (uint32_t i = 1; i <= h->area->hdr.max_hosts; i++) {
		struct marker m;
		if (i == h->id)
			continue;
		if (marker_decode(h->blk + 4096 + (size_t)(i - 1) * REC_SIZE, &m, msg,
				  sizeof(msg))) {
			note_violation(h, "resource %u: host id %u: %s", res, i, msg);
			continue;
		}
		if (!m.held)
			continue;
		if (marker_stale(h, &m)) {
			h->stale_markers++;
			continue;
		}
		if (!n++)
			*who = m;
	}
	return n;
}

static int write_record(struct host *h, const uint8_t *rec, uint64_t off, const char *what,
			uint32_t res)
{
	struct dlvm_err e = { 0 };
	int r;

	memset(h->sbuf, 0, REC_SIZE);
	memcpy(h->sbuf, rec, REC_SIZE);
	if ((r = dlvm_dev_write(h->dev, h->sbuf, REC_SIZE, off, &e)))
		note_error(h, "resource %u: %s: %s", res, what, e.msg);
	return r;
}

/* The lease is still ours (the deadline only moves forward while renewals
 * succeed, so a deadline in the future means it never lapsed). */
static bool lease_valid(struct host *h)
{
	return now_ms() < dlvm_lockspace_deadline_ms(h->ls);
}

static bool count_equal(const struct count_rec *a, const struct count_rec *b)
{
	return a->count == b->count && a->host_id == b->host_id && a->generation == b->generation &&
	       a->lver == b->lver;
}

static void hold_pause(struct host *h, uint64_t max_us)
{
	sleep_us(rng_range(&h->rng, 0, max_us));
}

static void changed(struct host *h, uint32_t res, const struct dlvm_paxos_lease *lease,
		    const char *when, const struct count_rec *want, const struct count_rec *got)
{
	if (!lease_valid(h)) {
		note_error(h, "resource %u: lease lost (deadline passed) %s", res, when);
		return;
	}
	note_violation(h,
		       "resource %u: count record changed %s while held %s at version %" PRIu64
		       ": expected count %" PRIu64 " by host id %u (version %" PRIu64
		       "), found count %" PRIu64 " by host id %u (version %" PRIu64 ")",
		       res, when, lease->mode == DLVM_LEASE_SHARED ? "shared" : "exclusively",
		       lease->lver, want->count, want->host_id, want->lver, got->count,
		       got->host_id, got->lver);
}

/* The lease is held and the count record settled (events only). */
static void emit_holding(struct host *h, uint32_t res, uint64_t count)
{
	if (!h->events)
		return;
	json_t *o = event("holding");
	json_object_set_new(o, "res", json_integer(res));
	json_object_set_new(o, "count", json_integer((json_int_t)count));
	emit(o);
}

static void check_no_shared(struct host *h, const struct dlvm_paxos_lease *lease)
{
	struct marker m;

	if (shared_marked(h, lease->res_index, false, &m))
		note_violation(h,
			       "resource %u: host id %u holds it shared (version %" PRIu64
			       ") while "
			       "this host holds it exclusively at version %" PRIu64,
			       lease->res_index, m.host_id, m.lver, lease->lver);
}

/*
 * First half of an exclusive hold: check the data block, pause, check it is
 * unchanged, increment the count. *mine is the record written. Non-zero when
 * the run must stop.
 */
static int exclusive_begin(struct host *h, const struct dlvm_paxos_lease *lease,
			   struct count_rec *mine)
{
	uint32_t res = lease->res_index;
	struct res_stats *s = &h->res[res];
	struct count_rec c0, c1;
	uint8_t rec[REC_SIZE];

	if (read_block(h, res, &c0))
		return -EIO;
	if (c0.lver >= lease->lver)
		note_violation(h,
			       "resource %u: count record was written at version %" PRIu64
			       " by host id %u, not older than this host's version %" PRIu64,
			       res, c0.lver, c0.host_id, lease->lver);
	if (c0.count < s->last_count)
		note_violation(h,
			       "resource %u: count went back from %" PRIu64
			       " (written by this host "
			       "at version %" PRIu64 ") to %" PRIu64
			       " (host id %u, version %" PRIu64 ")",
			       res, s->last_count, s->last_lver, c0.count, c0.host_id, c0.lver);
	check_no_shared(h, lease);
	hold_pause(h, DLVM_MIN(h->hold_max_us / 4, (uint64_t)500));
	if (read_block(h, res, &c1))
		return -EIO;
	if (!count_equal(&c0, &c1))
		changed(h, res, lease, "before the increment", &c0, &c1);

	if (!lease_valid(h)) {
		note_error(h, "resource %u: lease deadline passed before the write; not written",
			   res);
		return -ETIMEDOUT;
	}
	*mine = (struct count_rec){ c1.count + 1, h->id, h->generation, lease->lver };
	count_encode(mine, rec);
	if (write_record(h, rec, data_off(h, res), "count record", res))
		return -EIO;
	s->last_count = mine->count;
	emit_holding(h, res, mine->count);
	return 0;
}

/* Second half: after the hold, the record must still be ours. */
static int exclusive_end(struct host *h, const struct dlvm_paxos_lease *lease,
			 const struct count_rec *mine)
{
	struct count_rec c;

	if (read_block(h, lease->res_index, &c))
		return -EIO;
	if (!count_equal(mine, &c))
		changed(h, lease->res_index, lease, "after the increment", mine, &c);
	check_no_shared(h, lease);
	return 0;
}

static int set_marker(struct host *h, uint32_t res, const struct dlvm_paxos_lease *lease, bool held)
{
	struct marker m = { h->id, held, h->generation, lease->lver };
	uint8_t rec[REC_SIZE];

	marker_encode(&m, rec);
	return write_record(h, rec, data_off(h, res) + 4096 + (uint64_t)(h->id - 1) * REC_SIZE,
			    "shared marker", res);
}

static int hold_shared(struct host *h, const struct dlvm_paxos_lease *lease)
{
	uint32_t res = lease->res_index;
	struct count_rec c0, c1;
	struct marker m;

	if (read_block(h, res, &c0))
		return -EIO;
	if (c0.lver >= lease->lver)
		note_violation(h,
			       "resource %u: count record was written at version %" PRIu64
			       " by host id %u, not older than this host's shared version %" PRIu64,
			       res, c0.lver, c0.host_id, lease->lver);
	if (set_marker(h, res, lease, true))
		return -EIO;
	emit_holding(h, res, c0.count);
	sleep_us(rng_range(&h->rng, h->hold_min_us, h->hold_max_us));
	int r = read_block(h, res, &c1);
	if (!r) {
		if (!count_equal(&c0, &c1))
			changed(h, res, lease, "during a shared hold", &c0, &c1);
		if (shared_marked(h, res, true, &m))
			h->shared_overlaps++;
	}
	if (set_marker(h, res, lease, false))
		return -EIO;
	return r ? -EIO : 0;
}

/* ---- lockspace membership and renewal ---- */

static void *renew_main(void *arg)
{
	struct host *h = arg;
	uint64_t next = now_ms() + h->to->renew_interval_ms, last = now_ms();

	pthread_mutex_lock(&h->rlock);
	while (!h->stop) {
		struct timespec ts = dlvm_mono_until(next * 1000000);
		if (pthread_cond_timedwait(&h->rcond, &h->rlock, &ts) != ETIMEDOUT && !h->stop &&
		    now_ms() < next)
			continue;
		if (h->stop)
			break;
		pthread_mutex_unlock(&h->rlock);

		struct dlvm_err e = { 0 };
		uint64_t t0 = now_ms();
		int r = dlvm_lockspace_renew(h->ls, &e);
		uint64_t t1 = now_ms();
		if (!r) {
			h->renewals++;
			h->max_renew_gap_ms = DLVM_MAX(h->max_renew_gap_ms, t0 - last);
			h->max_renew_ms = DLVM_MAX(h->max_renew_ms, t1 - t0);
			last = t0;
			if (h->events) {
				json_t *o = event("renewed");
				json_object_set_new(o, "start_ms", json_integer((json_int_t)t0));
				json_object_set_new(o, "end_ms", json_integer((json_int_t)t1));
				emit(o);
			}
		} else if (r == -EBADMSG) {
			/* our own sector: stop using the lease at once */
			note(&h->damaged, "damaged lease", h, "renewal: %s", e.msg);
			atomic_store(&h->lost, true);
			pthread_mutex_lock(&h->rlock);
			break;
		} else if (dlvm_lockspace_deadline_ms(h->ls)) {
			/* still joined (a slow write): the next renewal may succeed */
			note(&h->renew_failures, "renewal failed", h, "%s", e.msg);
		} else {
			note_error(h, "lease lost: %s", e.msg);
			atomic_store(&h->lost, true);
			pthread_mutex_lock(&h->rlock);
			break;
		}
		next += h->to->renew_interval_ms;
		if (next <= t1)
			next = t1 + 1; /* fell behind: renew at once, then on schedule */
		pthread_mutex_lock(&h->rlock);
	}
	pthread_mutex_unlock(&h->rlock);
	return NULL;
}

static int host_open(struct host *h, const char *file, struct dlvm_err *e)
{
	int r;

	h->file = file;
	if ((r = dlvm_dev_open(file, 0, &h->dev, e)) ||
	    (r = dlvm_lease_area_open(h->dev, 0, h->dev->size, &h->area, e)))
		return r;
	h->lay = layout_of(&h->area->hdr);
	h->nres = h->area->hdr.nres;
	if (h->lay.file_size > h->dev->size)
		return dlvm_err_set(e, -EINVAL, "%s: %" PRIu64 " bytes, the layout needs %" PRIu64,
				    file, h->dev->size, h->lay.file_size);
	h->blk = dlvm_io_alloc(h->lay.data_stride);
	h->sbuf = dlvm_io_alloc(REC_SIZE);
	h->res = calloc(h->area->hdr.nres ? h->area->hdr.nres : 1, sizeof(*h->res));
	for (int i = 0; i < 2; i++)
		h->busy_by[i] = calloc((size_t)h->area->hdr.max_hosts + 1, sizeof(unsigned long));
	if (!h->blk || !h->sbuf || !h->res || !h->busy_by[0] || !h->busy_by[1])
		return dlvm_err_set(e, -ENOMEM, "out of memory");
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* see dlvm_mono_until */
	pthread_mutex_init(&h->rlock, NULL);
	pthread_cond_init(&h->rcond, &ca);
	pthread_condattr_destroy(&ca);
	return 0;
}

static int host_join(struct host *h, uint32_t host_id, struct dlvm_err *e)
{
	char name[DLVM_LEASE_NAME_MAX + 1];
	uint64_t t0 = now_ms();
	int r;

	h->id = host_id;
	snprintf(name, sizeof(name), "torture-%u-%ld", host_id, (long)getpid());
	if ((r = dlvm_lockspace_new(h->area, NULL, 0, &h->ls, e)) ||
	    (r = dlvm_lockspace_acquire(h->ls, host_id, name, &h->generation, e)))
		return r;
	h->join_ms = now_ms() - t0;
	h->to = dlvm_lockspace_timeouts(h->ls);
	if ((r = pthread_create(&h->renewer, NULL, renew_main, h)))
		return dlvm_err_set(e, -r, "cannot start the renewal thread: %s", strerror(r));
	h->renewing = true;
	if (h->events) {
		json_t *o = event("joined");
		json_object_set_new(o, "host_id", json_integer(host_id));
		json_object_set_new(o, "generation", json_integer((json_int_t)h->generation));
		json_object_set_new(o, "join_ms", json_integer((json_int_t)h->join_ms));
		emit(o);
	}
	return 0;
}

static void host_leave(struct host *h)
{
	struct dlvm_err e = { 0 };

	if (h->renewing) {
		pthread_mutex_lock(&h->rlock);
		h->stop = true;
		pthread_cond_signal(&h->rcond);
		pthread_mutex_unlock(&h->rlock);
		pthread_join(h->renewer, NULL);
		h->renewing = false;
	}
	if (h->ls && dlvm_lockspace_deadline_ms(h->ls) && dlvm_lockspace_release(h->ls, &e))
		note_error(h, "leaving the lockspace: %s", e.msg);
}

static void host_close(struct host *h)
{
	if (h->res)
		for (uint32_t r = 0; r < h->nres; r++)
			free(h->res[r].lvers.v);
	free(h->res);
	free(h->busy_by[0]);
	free(h->busy_by[1]);
	dlvm_lockspace_free(h->ls);
	dlvm_lease_area_close(h->area);
	dlvm_dev_close(h->dev);
	free(h->blk);
	free(h->sbuf);
	json_decref(h->violations.list);
	json_decref(h->errors.list);
	json_decref(h->damaged.list);
	json_decref(h->renew_failures.list);
	json_decref(h->first_busy);
}

/* ---- acquisition ---- */

static const char *mode_name(enum dlvm_lease_mode m)
{
	return m == DLVM_LEASE_SHARED ? "sh" : "ex";
}

static void note_busy(struct host *h, uint32_t res, const struct dlvm_err *e)
{
	static const char *const held[2] = { "is held by host id ", "is held shared by host id " };
	unsigned id;

	for (int sh = 0; sh < 2; sh++) {
		const char *p = strstr(e->msg, held[sh]);
		if (p && sscanf(p + strlen(held[sh]), "%u", &id) == 1 &&
		    id <= h->area->hdr.max_hosts)
			h->busy_by[sh][id]++;
	}
	h->busy++;
	if (strstr(e->msg, "no ballot succeeded"))
		h->busy_no_ballot++;
	if (h->first_busy)
		return;
	h->first_busy = event("busy");
	json_object_set_new(h->first_busy, "res", json_integer(res));
	json_object_set_new(h->first_busy, "message", json_string(e->msg));
	if (h->events)
		emit(json_incref(h->first_busy));
}

/* Record a lease just acquired: its version must be new to this host. */
static void note_acquired(struct host *h, const struct dlvm_paxos_lease *lease, uint64_t t0)
{
	struct res_stats *s = &h->res[lease->res_index];
	uint64_t t = now_ms();

	if (lease->lver <= s->last_lver)
		note_violation(h,
			       "resource %u: acquired at version %" PRIu64
			       ", after holding version %" PRIu64,
			       lease->res_index, lease->lver, s->last_lver);
	s->last_lver = lease->lver;
	if (!u64vec_push(&s->lvers, lease->lver))
		note_error(h, "out of memory");
	h->acquisitions++;
	if (lease->mode == DLVM_LEASE_SHARED) {
		s->sh++;
		h->sh++;
	} else {
		s->ex++;
		h->ex++;
	}
	h->max_acquire_ms = DLVM_MAX(h->max_acquire_ms, t - t0);
	if (!h->first_acquire_ms)
		h->first_acquire_ms = t;
	if (h->events) {
		json_t *o = event("acquired");
		json_object_set_new(o, "res", json_integer(lease->res_index));
		json_object_set_new(o, "mode", json_string(mode_name(lease->mode)));
		json_object_set_new(o, "lver", json_integer((json_int_t)lease->lver));
		json_object_set_new(o, "wait_ms", json_integer((json_int_t)(t - t0)));
		emit(o);
	}
}

static void note_damaged(struct host *h, uint32_t res, const struct dlvm_err *e)
{
	h->res[res].damaged = true;
	note(&h->damaged, "damaged lease", h, "resource %u: %s", res, e->msg);
}

/*
 * Acquire res, retrying while it is busy for up to max_wait_ms. 0, or a
 * negative errno already reported: -EBADMSG (the resource is marked
 * damaged), -ETIMEDOUT (waited too long, or this host's lease is lost), others.
 */
static int acquire(struct host *h, uint32_t res, enum dlvm_lease_mode mode,
		   struct dlvm_paxos_lease *lease)
{
	uint64_t t0 = now_ms();

	if (h->unsafe) {
		struct count_rec c;
		if (read_block(h, res, &c))
			return -EIO;
		*lease = (struct dlvm_paxos_lease){ res, mode, c.lver + 1, h->id, h->generation };
		note_acquired(h, lease, t0);
		return 0;
	}
	for (;;) {
		struct dlvm_err e = { 0 };
		if (atomic_load(&h->lost))
			return -ETIMEDOUT; /* the renewal thread said why */
		int r = dlvm_paxos_acquire(h->ls, res, mode, lease, &e);
		if (!r) {
			note_acquired(h, lease, t0);
			return 0;
		}
		if (r == -EBADMSG) {
			note_damaged(h, res, &e);
			return r;
		}
		if (r != -EBUSY) {
			note_error(h, "resource %u: acquire %s: %s", res, mode_name(mode), e.msg);
			return r;
		}
		note_busy(h, res, &e);
		if (now_ms() - t0 > h->max_wait_ms) {
			note_error(h, "resource %u: still busy after %" PRIu64 " ms: %s", res,
				   h->max_wait_ms, e.msg);
			return -ETIMEDOUT;
		}
		sleep_us(rng_range(&h->rng, 100, 2000));
	}
}

static int release(struct host *h, const struct dlvm_paxos_lease *lease)
{
	struct dlvm_err e = { 0 };

	if (h->unsafe)
		return 0;
	int r = dlvm_paxos_release(h->ls, lease, &e);
	if (!r)
		return 0;
	if (r == -ESTALE && lease_valid(h))
		note_violation(h, "resource %u: release of version %" PRIu64 ": %s",
			       lease->res_index, lease->lver, e.msg);
	else if (r == -EBADMSG)
		note_damaged(h, lease->res_index, &e);
	else
		note_error(h, "resource %u: release: %s", lease->res_index, e.msg);
	return r;
}

/* ---- summary ---- */

static int exit_status(const struct host *h)
{
	if (h->violations.count)
		return EXIT_VIOLATION;
	if (h->errors.count)
		return EXIT_ERROR;
	if (h->damaged.count)
		return EXIT_DAMAGED;
	return EXIT_OK;
}

static void summary(struct host *h, const char *mode, uint64_t t_start, uint64_t t_end)
{
	json_t *o = event("summary"), *lvers = json_object(), *per = json_object(),
	       *damaged = json_array();
	uint64_t elapsed = t_end > t_start ? t_end - t_start : 0;

	json_object_set_new(o, "host_id", json_integer(h->id));
	json_object_set_new(o, "generation", json_integer((json_int_t)h->generation));
	json_object_set_new(o, "mode", json_string(mode));
	json_object_set_new(o, "direct", json_boolean(h->dev && h->dev->direct));
	json_object_set_new(o, "acquisitions", json_integer((json_int_t)h->acquisitions));
	json_object_set_new(o, "exclusive", json_integer((json_int_t)h->ex));
	json_object_set_new(o, "shared", json_integer((json_int_t)h->sh));
	json_object_set_new(o, "busy_retries", json_integer((json_int_t)h->busy));
	json_object_set_new(o, "busy_no_ballot", json_integer((json_int_t)h->busy_no_ballot));
	json_object_set_new(o, "shared_overlaps", json_integer((json_int_t)h->shared_overlaps));
	json_object_set_new(o, "stale_markers", json_integer((json_int_t)h->stale_markers));
	json_object_set_new(o, "violations", json_integer((json_int_t)h->violations.count));
	json_object_set_new(o, "violation_messages", json_incref(h->violations.list));
	json_object_set_new(o, "errors", json_integer((json_int_t)h->errors.count));
	json_object_set_new(o, "error_messages", json_incref(h->errors.list));
	json_object_set_new(o, "damaged", json_integer((json_int_t)h->damaged.count));
	json_object_set_new(o, "damaged_messages", json_incref(h->damaged.list));
	json_object_set_new(o, "renewals", json_integer((json_int_t)h->renewals));
	json_object_set_new(o, "renew_failures", json_integer((json_int_t)h->renew_failures.count));
	json_object_set_new(o, "renew_failure_messages", json_incref(h->renew_failures.list));
	json_object_set_new(o, "max_renew_gap_ms", json_integer((json_int_t)h->max_renew_gap_ms));
	json_object_set_new(o, "max_renew_ms", json_integer((json_int_t)h->max_renew_ms));
	json_object_set_new(o, "join_ms", json_integer((json_int_t)h->join_ms));
	json_object_set_new(o, "elapsed_ms", json_integer((json_int_t)elapsed));
	json_object_set_new(o, "acquisitions_per_s",
			    json_real(elapsed ? 1000.0 * (double)h->acquisitions / (double)elapsed
					      : 0.0));
	json_object_set_new(o, "max_acquire_ms", json_integer((json_int_t)h->max_acquire_ms));
	json_object_set_new(o, "first_acquire_ms", json_integer((json_int_t)h->first_acquire_ms));
	json_object_set_new(o, "first_busy",
			    h->first_busy ? json_incref(h->first_busy) : json_null());
	json_t *by = json_object();
	for (int sh = 0; h->busy_by[0] && sh < 2; sh++) {
		json_t *m = json_object();
		for (uint32_t id = 1; id <= h->area->hdr.max_hosts; id++) {
			char key[16];
			snprintf(key, sizeof(key), "%u", id);
			if (h->busy_by[sh][id])
				json_object_set_new(m, key,
						    json_integer((json_int_t)h->busy_by[sh][id]));
		}
		json_object_set_new(by, sh ? "sh" : "ex", m);
	}
	json_object_set_new(o, "busy_by_holder", by);
	for (uint32_t r = 0; h->res && r < h->nres; r++) {
		const struct res_stats *s = &h->res[r];
		char key[16];
		json_t *a = json_array(), *p = json_object();

		snprintf(key, sizeof(key), "%u", r);
		for (size_t i = 0; i < s->lvers.n; i++)
			json_array_append_new(a, json_integer((json_int_t)s->lvers.v[i]));
		json_object_set_new(lvers, key, a);
		json_object_set_new(p, "ex", json_integer((json_int_t)s->ex));
		json_object_set_new(p, "sh", json_integer((json_int_t)s->sh));
		json_object_set_new(per, key, p);
		if (s->damaged)
			json_array_append_new(damaged, json_integer(r));
	}
	json_object_set_new(o, "lvers", lvers);
	json_object_set_new(o, "per_resource", per);
	json_object_set_new(o, "damaged_resources", damaged);
	emit(o);
}

/* ---- options ---- */

struct opts {
	uint32_t host_id, max_hosts, resources, io_timeout, sector_size, resource;
	unsigned long acquisitions;
	const char *mode;
	uint64_t hold_ms, hold_min_ms, idle_ms, max_wait_ms, seed;
	bool one_resource, events, unsafe;
};

static __attribute__((noreturn)) void usage(void)
{
	fprintf(stderr,
		"usage: lease_torture format FILE [--max-hosts N] [--resources R] [--io-timeout "
		"T]\n"
		"                            [--sector-size S]\n"
		"       lease_torture run FILE --host-id N [--acquisitions K] [--mode "
		"ex|sh|mixed]\n"
		"                            [--resources R] [--hold-ms MS] [--hold-min-ms MS]\n"
		"                            [--resource R] [--idle-ms MS] [--max-wait-ms MS]\n"
		"                            [--seed S] [--events] [--unsafe]\n"
		"       lease_torture contend FILE --host-id N [--resource R]\n"
		"       lease_torture dump FILE\n");
	exit(EXIT_ERROR);
}

static uint64_t num(const char *s, const char *opt)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);

	if (errno || end == s || *end || *s == '-') {
		fprintf(stderr, "lease_torture: %s: bad number '%s'\n", opt, s);
		exit(EXIT_ERROR);
	}
	return v;
}

static void parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "host-id", required_argument, NULL, 'i' },
		{ "max-hosts", required_argument, NULL, 'H' },
		{ "resources", required_argument, NULL, 'r' },
		{ "resource", required_argument, NULL, 'R' },
		{ "io-timeout", required_argument, NULL, 't' },
		{ "sector-size", required_argument, NULL, 'S' },
		{ "acquisitions", required_argument, NULL, 'k' },
		{ "mode", required_argument, NULL, 'm' },
		{ "hold-ms", required_argument, NULL, 'h' },
		{ "hold-min-ms", required_argument, NULL, 'n' },
		{ "idle-ms", required_argument, NULL, 'I' },
		{ "max-wait-ms", required_argument, NULL, 'w' },
		{ "seed", required_argument, NULL, 's' },
		{ "events", no_argument, NULL, 'e' },
		{ "unsafe", no_argument, NULL, 'u' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	*o = (struct opts){ .max_hosts = 8,
			    .resources = 4,
			    .io_timeout = 1,
			    .sector_size = 512,
			    .acquisitions = 1000,
			    .mode = "ex",
			    .hold_ms = 2,
			    .max_wait_ms = 60000 };
	optind = 3;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'i': o->host_id = (uint32_t)num(optarg, "--host-id"); break;
		case 'H': o->max_hosts = (uint32_t)num(optarg, "--max-hosts"); break;
		case 'r': o->resources = (uint32_t)num(optarg, "--resources"); break;
		case 'R':
			o->resource = (uint32_t)num(optarg, "--resource");
			o->one_resource = true;
			break;
		case 't': o->io_timeout = (uint32_t)num(optarg, "--io-timeout"); break;
		case 'S': o->sector_size = (uint32_t)num(optarg, "--sector-size"); break;
		case 'k': o->acquisitions = (unsigned long)num(optarg, "--acquisitions"); break;
		case 'm': o->mode = optarg; break;
		case 'h': o->hold_ms = num(optarg, "--hold-ms"); break;
		case 'n': o->hold_min_ms = num(optarg, "--hold-min-ms"); break;
		case 'I': o->idle_ms = num(optarg, "--idle-ms"); break;
		case 'w': o->max_wait_ms = num(optarg, "--max-wait-ms"); break;
		case 's': o->seed = num(optarg, "--seed"); break;
		case 'e': o->events = true; break;
		case 'u': o->unsafe = true; break;
		default: usage();
		}
	}
	if (optind != argc)
		usage();
	if (strcmp(o->mode, "ex") && strcmp(o->mode, "sh") && strcmp(o->mode, "mixed")) {
		fprintf(stderr, "lease_torture: --mode must be ex, sh or mixed\n");
		exit(EXIT_ERROR);
	}
}

/* ---- subcommands ---- */

static int cmd_format(const char *file, const struct opts *o)
{
	struct dlvm_lease_format_opts fo = { .sector_size = o->sector_size,
					     .max_hosts = o->max_hosts,
					     .nres = o->resources,
					     .io_timeout = o->io_timeout };
	struct dlvm_lease_area_header h;
	struct dlvm_err e = { 0 };
	struct dlvm_dev *dev = NULL;
	uint8_t *buf = NULL;
	int fd, r;

	if ((r = dlvm_lease_area_geometry(o->sector_size, o->max_hosts, o->resources, &h, &e)))
		goto out;
	h.io_timeout = o->io_timeout;
	struct layout lay = layout_of(&h);
	fd = open(file, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || ftruncate(fd, (off_t)lay.file_size) < 0) {
		r = dlvm_err_set(&e, -errno, "%s: cannot create: %s", file, strerror(errno));
		if (fd >= 0)
			close(fd);
		goto out;
	}
	close(fd);
	dlvm_uuid_generate(fo.vg_uuid);
	if ((r = dlvm_dev_open(file, 0, &dev, &e)) ||
	    (r = dlvm_lease_area_format(dev, 0, h.area_size, &fo, &e)))
		goto out;
	buf = dlvm_io_alloc(REC_SIZE);
	if (!buf) {
		r = dlvm_err_set(&e, -ENOMEM, "out of memory");
		goto out;
	}
	for (uint32_t res = 0; res < o->resources; res++) {
		struct count_rec c = { 0 };
		count_encode(&c, buf);
		if ((r = dlvm_dev_write(dev, buf, REC_SIZE, lay.data_offset + res * lay.data_stride,
					&e)))
			goto out;
	}
	if ((r = dlvm_dev_flush(dev, &e)))
		goto out;
	json_t *ev = event("formatted");
	json_object_set_new(ev, "layout", layout_json(&h));
	emit(ev);
out:
	free(buf);
	dlvm_dev_close(dev);
	if (r) {
		fprintf(stderr, "lease_torture: format: %s\n", e.msg);
		return EXIT_ERROR;
	}
	return EXIT_OK;
}

static int cmd_dump(const char *file)
{
	struct dlvm_err e = { 0 };
	struct host h = { 0 };
	int r;

	if ((r = host_open(&h, file, &e))) {
		fprintf(stderr, "lease_torture: dump: %s\n", e.msg);
		host_close(&h);
		return r == -EBADMSG ? EXIT_DAMAGED : EXIT_ERROR;
	}
	json_t *ev = event("dump"), *res = json_array();
	json_object_set_new(ev, "layout", layout_json(&h.area->hdr));
	for (uint32_t i = 0; i < h.nres; i++) {
		json_t *o = json_object(), *lo = json_object(), *held = json_array();
		struct dlvm_paxos_leader l;
		struct count_rec c;
		char msg[200];

		dlvm_err_clear(&e);
		if (dlvm_paxos_read_leader(h.area, i, &l, &e)) {
			json_object_set_new(lo, "error", json_string(e.msg));
		} else {
			json_object_set_new(lo, "lver", json_integer((json_int_t)l.lver));
			json_object_set_new(lo, "owner_id", json_integer(l.owner_id));
			json_object_set_new(lo, "owner_generation",
					    json_integer((json_int_t)l.owner_generation));
			json_object_set_new(lo, "held", json_boolean(l.timestamp != 0));
			json_object_set_new(lo, "writer_id", json_integer(l.writer_id));
		}
		json_object_set_new(o, "leader", lo);
		if (dlvm_dev_read(h.dev, h.blk, h.lay.data_stride, data_off(&h, i), &e)) {
			json_object_set_new(o, "count_error", json_string(e.msg));
		} else if (count_decode(h.blk, &c, msg, sizeof(msg))) {
			json_object_set_new(o, "count_error", json_string(msg));
		} else {
			json_object_set_new(o, "count", json_integer((json_int_t)c.count));
			json_object_set_new(o, "count_host_id", json_integer(c.host_id));
			json_object_set_new(o, "count_lver", json_integer((json_int_t)c.lver));
			for (uint32_t k = 1; k <= h.area->hdr.max_hosts; k++) {
				struct marker m;
				if (!marker_decode(h.blk + 4096 + (size_t)(k - 1) * REC_SIZE, &m,
						   msg, sizeof(msg)) &&
				    m.held)
					json_array_append_new(held, json_integer(k));
			}
		}
		json_object_set_new(o, "shared_markers", held);
		json_array_append_new(res, o);
	}
	json_object_set_new(ev, "resources", res);
	emit(ev);
	host_close(&h);
	return EXIT_OK;
}

static void seed_rng(struct host *h, const struct opts *o)
{
	h->rng = o->seed ? o->seed : (uint64_t)getpid() * 0x9E3779B97F4A7C15ull ^ now_us();
	h->rng ^= (uint64_t)o->host_id << 32;
	if (!h->rng)
		h->rng = 1;
}

/*
 * Open the file and join as o->host_id: -1 when joined, -2 when that failed
 * (reported, a summary follows), an exit status for bad usage.
 */
static int start_host(struct host *h, const char *file, const struct opts *o)
{
	struct dlvm_err e = { 0 };
	int r;

	h->violations.list = json_array();
	h->errors.list = json_array();
	h->damaged.list = json_array();
	h->renew_failures.list = json_array();
	h->events = o->events;
	h->unsafe = o->unsafe;
	h->hold_min_us = o->hold_min_ms * 1000;
	h->hold_max_us = DLVM_MAX(o->hold_ms, o->hold_min_ms) * 1000;
	h->max_wait_ms = o->max_wait_ms;
	h->id = o->host_id;
	seed_rng(h, o);
	if (!o->host_id) {
		fprintf(stderr, "lease_torture: --host-id is required\n");
		return EXIT_ERROR;
	}
	if ((r = host_open(h, file, &e)) || (r = host_join(h, o->host_id, &e))) {
		if (r == -EBADMSG)
			note(&h->damaged, "damaged lease", h, "join: %s", e.msg);
		else
			note_error(h, "join: %s", e.msg);
		return -2;
	}
	return -1;
}

static int cmd_run(const char *file, const struct opts *o)
{
	struct host h = { 0 };
	uint64_t t0 = now_ms();
	int status = start_host(&h, file, o);

	if (status >= 0) {
		host_close(&h);
		return status;
	}
	if (status == -1) {
		uint32_t nres = o->one_resource ? h.nres : DLVM_MIN(o->resources, h.nres);
		t0 = now_ms();
		for (unsigned long i = 0; i < o->acquisitions && !atomic_load(&h.lost);) {
			uint32_t usable[DLVM_LEASE_MAX_RESOURCES], n = 0;
			for (uint32_t r = 0; r < nres; r++)
				if (!h.res[r].damaged && (!o->one_resource || r == o->resource))
					usable[n++] = r;
			if (!n)
				break; /* every lease is damaged: stop (reported) */
			uint32_t res = usable[rng_range(&h.rng, 0, n - 1)];
			enum dlvm_lease_mode mode = DLVM_LEASE_EXCLUSIVE;
			if (!strcmp(o->mode, "sh") ||
			    (!strcmp(o->mode, "mixed") && rng_range(&h.rng, 0, 1)))
				mode = DLVM_LEASE_SHARED;

			struct dlvm_paxos_lease lease;
			struct count_rec mine;
			int r = acquire(&h, res, mode, &lease);
			if (r == -EBADMSG)
				continue;
			if (r)
				break;
			i++;
			if (mode == DLVM_LEASE_SHARED) {
				r = hold_shared(&h, &lease);
			} else if (!(r = exclusive_begin(&h, &lease, &mine))) {
				sleep_us(rng_range(&h.rng, h.hold_min_us, h.hold_max_us));
				r = exclusive_end(&h, &lease, &mine);
			}
			int r2 = release(&h, &lease);
			if (r || (r2 && r2 != -EBADMSG))
				break;
			if (o->idle_ms)
				sleep_us(rng_range(&h.rng, 0, o->idle_ms * 1000));
		}
	}
	uint64_t t1 = now_ms();
	host_leave(&h);
	summary(&h, o->mode, t0, t1);
	status = exit_status(&h);
	host_close(&h);
	return status;
}

/* One round of `contend`: acquire until won or held by another host. */
static void contend_round(struct host *h, uint32_t res, unsigned long round, uint64_t start)
{
	json_t *o = event("round");
	uint64_t t0 = now_ms();
	unsigned tries = 0;
	struct dlvm_paxos_lease lease;
	struct count_rec mine;
	char line[128];
	int r;

	json_object_set_new(o, "round", json_integer((json_int_t)round));
	json_object_set_new(o, "late_ms", json_integer((json_int_t)(t0 > start ? t0 - start : 0)));
	for (;;) {
		struct dlvm_err e = { 0 };
		struct dlvm_paxos_leader l;
		tries++;
		r = dlvm_paxos_acquire(h->ls, res, DLVM_LEASE_EXCLUSIVE, &lease, &e);
		if (!r)
			break;
		if (r != -EBUSY) {
			note_error(h, "round %lu: acquire: %s", round, e.msg);
			json_object_set_new(o, "error", json_string(e.msg));
			goto out;
		}
		note_busy(h, res, &e);
		struct dlvm_err e2 = { 0 };
		if ((r = dlvm_paxos_read_leader(h->area, res, &l, &e2))) {
			note_error(h, "round %lu: %s", round, e2.msg);
			json_object_set_new(o, "error", json_string(e2.msg));
			goto out;
		}
		if (l.timestamp && l.owner_id != h->id) {
			json_object_set_new(o, "won", json_false());
			json_object_set_new(o, "holder", json_integer(l.owner_id));
			json_object_set_new(o, "lver", json_integer((json_int_t)l.lver));
			json_object_set_new(o, "message", json_string(e.msg));
			goto out;
		}
		if (now_ms() - t0 > h->max_wait_ms) {
			note_error(h, "round %lu: no host won in %" PRIu64 " ms: %s", round,
				   h->max_wait_ms, e.msg);
			json_object_set_new(o, "error", json_string(e.msg));
			goto out;
		}
		sleep_us(rng_range(&h->rng, 100, 1000));
	}
	note_acquired(h, &lease, t0);
	json_object_set_new(o, "won", json_true());
	json_object_set_new(o, "holder", json_integer(h->id));
	json_object_set_new(o, "lver", json_integer((json_int_t)lease.lver));
	r = exclusive_begin(h, &lease, &mine);
	json_object_set_new(o, "tries", json_integer(tries));
	json_object_set_new(o, "ms", json_integer((json_int_t)(now_ms() - t0)));
	emit(o);
	o = NULL;
	/* hold until told to release (every other host has reported) */
	if (!fgets(line, sizeof(line), stdin) || strncmp(line, "release", 7))
		note_error(h, "round %lu: expected \"release\" on stdin", round);
	if (!r)
		exclusive_end(h, &lease, &mine);
	release(h, &lease);
	emit(event("released"));
	return;
out:
	json_object_set_new(o, "tries", json_integer(tries));
	json_object_set_new(o, "ms", json_integer((json_int_t)(now_ms() - t0)));
	emit(o);
}

static int cmd_contend(const char *file, const struct opts *o)
{
	struct opts oo = *o;
	struct host h = { 0 };
	char line[128];
	int status;

	oo.events = true;
	status = start_host(&h, file, &oo);
	if (status >= 0) {
		host_close(&h);
		return status;
	}
	uint64_t t0 = now_ms();
	if (status == -1 && o->resource >= h.nres) {
		note_error(&h, "resource %u does not exist", o->resource);
	} else if (status == -1) {
		while (fgets(line, sizeof(line), stdin) && !atomic_load(&h.lost)) {
			unsigned long round;
			unsigned long long start;
			if (!strncmp(line, "quit", 4))
				break;
			if (sscanf(line, "go %lu %llu", &round, &start) != 2) {
				note_error(&h, "bad command on stdin: %s", line);
				break;
			}
			sleep_until_ms(start);
			contend_round(&h, o->resource, round, start);
		}
	}
	uint64_t t1 = now_ms();
	host_leave(&h);
	summary(&h, "contend", t0, t1);
	status = exit_status(&h);
	host_close(&h);
	return status;
}

int main(int argc, char **argv)
{
	struct opts o;

	if (argc < 3)
		usage();
	parse_opts(argc, argv, &o);
	if (!strcmp(argv[1], "format"))
		return cmd_format(argv[2], &o);
	if (!strcmp(argv[1], "run"))
		return cmd_run(argv[2], &o);
	if (!strcmp(argv[1], "contend"))
		return cmd_contend(argv[2], &o);
	if (!strcmp(argv[1], "dump"))
		return cmd_dump(argv[2]);
	usage();
}
