/* SPDX-License-Identifier: MIT */
/* The lockspace: delta leases, one per host id; acquire, renew, release and
 * the liveness view of the other hosts. The timing argument is in
 * include/dlvm/lease.h. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlvm/util.h"
#include "lib/lease/lease_int.h"

#define ACQUIRE_ATTEMPTS 3

int dlvm_lockspace_new(struct dlvm_lease_area *area, const struct dlvm_lease_clock *clock,
		       uint32_t io_timeout, struct dlvm_lockspace **out, struct dlvm_err *err)
{
	struct dlvm_lockspace *ls;
	uint32_t hosts = area->hdr.max_hosts;

	if (!io_timeout)
		io_timeout = area->hdr.io_timeout;
	ls = calloc(1, sizeof(*ls));
	if (!ls)
		return dlvm_err_set(err, -ENOMEM, "%s: out of memory", area->where);
	if (dlvm_lease_timeouts(io_timeout, &ls->to)) {
		free(ls);
		return dlvm_err_set(err, -EINVAL, "%s: io_timeout %u is not in 1..%u", area->where,
				    io_timeout, DLVM_LEASE_IO_TIMEOUT_MAX);
	}
	ls->area = area;
	area->io_timeout_ms = ls->to.io_timeout_ms;
	ls->clock = clock ? *clock : dlvm_lease_real_clock;
	ls->io_timeout = io_timeout;
	ls->view = calloc((size_t)hosts + 1, sizeof(*ls->view));
	ls->ls_buf = dlvm_io_alloc(area->hdr.lockspace_size);
	if (!ls->view || !ls->ls_buf) {
		free(ls->view);
		free(ls->ls_buf);
		free(ls);
		return dlvm_err_set(err, -ENOMEM, "%s: out of memory", area->where);
	}
	pthread_mutex_init(&ls->lock, NULL);
	atomic_init(&ls->deadline_ms, 0);
	*out = ls;
	return 0;
}

void dlvm_lockspace_free(struct dlvm_lockspace *ls)
{
	if (!ls)
		return;
	pthread_mutex_destroy(&ls->lock);
	free(ls->view);
	free(ls->ls_buf);
	free(ls);
}

uint64_t dlvm_lockspace_deadline_ms(const struct dlvm_lockspace *ls)
{
	return atomic_load_explicit(&ls->deadline_ms, memory_order_acquire);
}

uint32_t dlvm_lockspace_host_id(const struct dlvm_lockspace *ls)
{
	return ls->joined ? ls->host_id : 0;
}

uint64_t dlvm_lockspace_prev_generation(const struct dlvm_lockspace *ls)
{
	return ls->joined ? ls->prev_generation : 0;
}

uint64_t dlvm_lockspace_generation(const struct dlvm_lockspace *ls)
{
	return ls->joined ? ls->generation : 0;
}

const struct dlvm_lease_timeouts *dlvm_lockspace_timeouts(const struct dlvm_lockspace *ls)
{
	return &ls->to;
}

const char *dlvm_host_state_name(enum dlvm_host_state s)
{
	switch (s) {
	case DLVM_HOST_FREE: return "free";
	case DLVM_HOST_LIVE: return "live";
	case DLVM_HOST_FAIL: return "fail";
	case DLVM_HOST_DEAD: return "dead";
	case DLVM_HOST_BAD: return "bad";
	}
	return "unknown";
}

/* ---- liveness view ---- */

static bool same_record(const struct dlvm_delta_record *a, const struct dlvm_delta_record *b)
{
	return a->host_id == b->host_id && a->generation == b->generation &&
	       a->timestamp == b->timestamp && !strcmp(a->name, b->name);
}

void lease_view_update(struct dlvm_lockspace *ls, uint32_t host_id,
		       const struct dlvm_delta_record *rec, bool bad, uint64_t now)
{
	struct lease_view *v = &ls->view[host_id];

	if (bad) {
		v->bad = true;
		v->seen = true;
		return;
	}
	if (!v->seen || v->bad || !same_record(&v->rec, rec)) {
		v->rec = *rec;
		v->last_change_ms = now;
	}
	v->seen = true;
	v->bad = false;
}

enum dlvm_host_state lease_view_state(const struct dlvm_lockspace *ls, uint32_t host_id,
				      uint64_t now)
{
	const struct lease_view *v = &ls->view[host_id];
	struct dlvm_lease_timeouts t;

	if (v->bad)
		return DLVM_HOST_BAD;
	if (!v->seen || !v->rec.host_id || !v->rec.timestamp)
		return DLVM_HOST_FREE;
	if (ls->joined && host_id == ls->host_id && v->rec.generation == ls->generation)
		return now < dlvm_lockspace_deadline_ms(ls) ? DLVM_HOST_LIVE : DLVM_HOST_FAIL;
	if (dlvm_lease_timeouts(v->rec.io_timeout, &t))
		return DLVM_HOST_BAD;
	uint64_t age = now > v->last_change_ms ? now - v->last_change_ms : 0;
	if (age < t.renew_fail_ms)
		return DLVM_HOST_LIVE;
	if (age < t.host_dead_ms)
		return DLVM_HOST_FAIL;
	return DLVM_HOST_DEAD;
}

int dlvm_lockspace_hosts(struct dlvm_lockspace *ls, struct dlvm_host_info **out, size_t *n,
			 struct dlvm_err *err)
{
	uint32_t hosts = ls->area->hdr.max_hosts;
	struct dlvm_host_info *v;
	size_t k = 0;

	*out = NULL;
	*n = 0;
	if (!ls->joined)
		return dlvm_err_set(err, -EINVAL, "%s: not joined to the lockspace",
				    ls->area->where);
	pthread_mutex_lock(&ls->lock);
	for (uint32_t h = 1; h <= hosts; h++)
		if (ls->view[h].bad || ls->view[h].rec.host_id)
			k++;
	v = calloc(k ? k : 1, sizeof(*v));
	if (!v) {
		pthread_mutex_unlock(&ls->lock);
		return dlvm_err_set(err, -ENOMEM, "%s: out of memory", ls->area->where);
	}
	uint64_t now = ls_now(ls);
	k = 0;
	for (uint32_t h = 1; h <= hosts; h++) {
		const struct lease_view *lv = &ls->view[h];
		if (!lv->bad && !lv->rec.host_id)
			continue;
		struct dlvm_host_info *i = &v[k++];
		i->host_id = h;
		i->state = lease_view_state(ls, h, now);
		memcpy(i->name, lv->rec.name, sizeof(i->name));
		i->generation = lv->rec.generation;
		i->timestamp = lv->rec.timestamp;
		i->io_timeout = lv->rec.io_timeout;
		i->last_change_ms = lv->last_change_ms;
	}
	pthread_mutex_unlock(&ls->lock);
	*out = v;
	*n = k;
	return 0;
}

static bool lockspace_decodes(struct dlvm_lease_area *a, const uint8_t *buf)
{
	for (uint32_t h = 1; h <= a->hdr.max_hosts; h++) {
		struct dlvm_delta_record rec;
		struct dlvm_err e = { 0 };
		if (lease_decode_delta(a, buf + (size_t)(h - 1) * a->hdr.sector_size, h, &rec, &e))
			return false;
	}
	return true;
}

/* Read the whole lockspace into ls->ls_buf and update the view of every host
 * (a damaged sector of another host is marked bad, not an error). Our own
 * sector, when joined, is decoded into *own (an error if damaged). A sector
 * that does not decode is read again first, as in lease_read_checked. */
int lease_view_scan(struct dlvm_lockspace *ls, uint8_t *buf, struct dlvm_delta_record *own,
		    struct dlvm_err *err)
{
	struct dlvm_lease_area *a = ls->area;
	uint32_t ss = a->hdr.sector_size;
	struct dlvm_delta_record dummy;
	uint64_t start = 0;
	int r;

	if (!own)
		own = &dummy;
	for (int attempt = 1;; attempt++) {
		start = ls_now(ls);
		if ((r = lease_read(a, buf, a->hdr.max_hosts, lease_delta_off(a, 1), "lockspace",
				    err)))
			return r;
		if (attempt == LEASE_READ_ATTEMPTS || lockspace_decodes(a, buf))
			break;
		ls->clock.sleep_ms(ls->clock.priv, 1);
	}
	uint64_t now = ls_now(ls);
	pthread_mutex_lock(&ls->lock);
	for (uint32_t h = 1; h <= a->hdr.max_hosts; h++) {
		struct dlvm_delta_record rec;
		const uint8_t *p = buf + (size_t)(h - 1) * ss;
		bool mine = ls->joined && h == ls->host_id;
		struct dlvm_err e = { 0 };

		r = lease_decode_delta(a, p, h, &rec, mine ? err : &e);
		if (r && mine)
			break;
		lease_view_update(ls, h, &rec, r != 0, now);
		if (mine)
			*own = rec;
		r = 0;
	}
	if (!r && start > ls->scan_ms)
		ls->scan_ms = DLVM_MAX(start, (uint64_t)1);
	pthread_mutex_unlock(&ls->lock);
	return r;
}

static int read_delta(struct dlvm_lockspace *ls, uint8_t *buf, uint32_t host_id,
		      struct dlvm_delta_record *rec, struct dlvm_err *err)
{
	char what[48];

	snprintf(what, sizeof(what), "delta lease of host id %u", host_id);
	return lease_read_delta(ls->area, &ls->clock, buf, host_id, what, rec, err);
}

static int write_delta(struct dlvm_lockspace *ls, uint8_t *buf, const struct dlvm_delta_record *rec,
		       struct dlvm_err *err)
{
	char what[48];

	snprintf(what, sizeof(what), "delta lease of host id %u", rec->host_id);
	memset(buf, 0, ls->area->hdr.sector_size);
	dlvm_delta_encode(rec, buf);
	return lease_write(ls->area, buf, lease_delta_off(ls->area, rec->host_id), what, err);
}

static void leave(struct dlvm_lockspace *ls)
{
	atomic_store_explicit(&ls->deadline_ms, 0, memory_order_release);
	ls->joined = false;
}

int lease_check_deadline(struct dlvm_lockspace *ls, const char *op, struct dlvm_err *err)
{
	if (!ls->joined)
		return dlvm_err_set(err, -EINVAL, "%s: %s: not joined to the lockspace",
				    ls->area->where, op);
	uint64_t now = ls_now(ls), dl = dlvm_lockspace_deadline_ms(ls);
	if (now >= dl)
		return dlvm_err_set(err, -ETIMEDOUT,
				    "%s: host id %u: %s refused: the host's "
				    "lease expired %" PRIu64 " ms ago (no renewal for %" PRIu64
				    " ms)",
				    ls->area->where, ls->host_id, op, now - dl,
				    now - dl + ls->to.renew_fail_ms);
	return 0;
}

static int check_name(const char *name, struct dlvm_err *err)
{
	size_t n = strlen(name);

	if (n < 1 || n > DLVM_LEASE_NAME_MAX)
		return dlvm_err_set(err, -EINVAL, "host name '%s' must have 1..%u bytes", name,
				    DLVM_LEASE_NAME_MAX);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)name[i] < 0x20 || (unsigned char)name[i] > 0x7e)
			return dlvm_err_set(err, -EINVAL,
					    "host name has a non-printable byte "
					    "at %zu",
					    i);
	return 0;
}

/* A wait of a join, in slices when the host may be asked to stop: true
 * when it is. */
static bool join_wait(struct dlvm_lockspace *ls, uint64_t ms)
{
	if (!ls->clock.stopping) {
		ls->clock.sleep_ms(ls->clock.priv, ms);
		return false;
	}
	while (ms && !ls->clock.stopping(ls->clock.priv)) {
		uint64_t slice = DLVM_MIN(ms, (uint64_t)100);
		ls->clock.sleep_ms(ls->clock.priv, slice);
		ms -= slice;
	}
	return ls->clock.stopping(ls->clock.priv);
}

static int join_stopped(struct dlvm_lockspace *ls, uint32_t host_id, struct dlvm_err *err)
{
	return dlvm_err_set(err, -EINTR, "%s: host id %u: stopped while joining", ls->area->where,
			    host_id);
}

static bool held_by_other(const struct dlvm_delta_record *rec, const char *name)
{
	return rec->host_id && rec->timestamp && strcmp(rec->name, name);
}

/*
 * Watch a sector held by another name for its owner's dead-host time. Returns
 * 0 when the record is stale or was released (*cur then holds the last
 * record read and *r0 the time of that read), -EBUSY when it changed.
 */
static int watch_owner(struct dlvm_lockspace *ls, uint8_t *buf, uint32_t host_id, const char *name,
		       struct dlvm_delta_record *cur, uint64_t *r0, struct dlvm_err *err)
{
	struct dlvm_lease_timeouts ot;
	uint64_t start = *r0;
	int r;

	if (dlvm_lease_timeouts(cur->io_timeout, &ot))
		return dlvm_err_set(err, -EBADMSG, "%s: host id %u: bad io_timeout %u",
				    ls->area->where, host_id, cur->io_timeout);
	for (;;) {
		struct dlvm_delta_record next;

		if (join_wait(ls, ot.renew_interval_ms))
			return join_stopped(ls, host_id, err);
		*r0 = ls_now(ls);
		if ((r = read_delta(ls, buf, host_id, &next, err)))
			return r;
		if (!same_record(&next, cur)) {
			if (held_by_other(&next, name))
				return dlvm_err_set(err, -EBUSY,
						    "%s: host id %u is held by host "
						    "'%s' (generation %" PRIu64 ")",
						    ls->area->where, host_id, next.name,
						    next.generation);
			*cur = next; /* released, or now ours: take it */
			return 0;
		}
		if (*r0 - start >= ot.host_dead_ms)
			return 0;
	}
}

int dlvm_lockspace_acquire(struct dlvm_lockspace *ls, uint32_t host_id, const char *name,
			   uint64_t *generation, struct dlvm_err *err)
{
	struct dlvm_lease_area *a = ls->area;
	uint8_t *buf;
	int r;

	if (ls->joined)
		return dlvm_err_set(err, -EINVAL, "%s: already joined as host id %u", a->where,
				    ls->host_id);
	if (host_id < 1 || host_id > a->hdr.max_hosts)
		return dlvm_err_set(err, -EINVAL, "%s: host id %u is out of range 1..%u", a->where,
				    host_id, a->hdr.max_hosts);
	if ((r = check_name(name, err)))
		return dlvm_err_prefix(err, r, "%s: ", a->where);
	buf = dlvm_io_alloc(a->hdr.sector_size);
	if (!buf)
		return dlvm_err_set(err, -ENOMEM, "%s: out of memory", a->where);

	for (int attempt = 0; attempt < ACQUIRE_ATTEMPTS; attempt++) {
		struct dlvm_delta_record cur, mine, check;
		uint64_t r0 = ls_now(ls);

		if ((r = read_delta(ls, buf, host_id, &cur, err)))
			goto out;
		if (held_by_other(&cur, name) &&
		    (r = watch_owner(ls, buf, host_id, name, &cur, &r0, err)))
			goto out;
		/* Write within T of the read that judged the sector takeable
		 * (see the argument in lease.h), else read again. */
		if (ls_now(ls) - r0 > ls->to.io_timeout_ms)
			continue;
		memset(&mine, 0, sizeof(mine));
		mine.host_id = host_id;
		mine.io_timeout = ls->io_timeout;
		mine.generation = cur.generation + 1;
		mine.timestamp = DLVM_MAX(ls_now(ls), (uint64_t)1);
		if (mine.timestamp == cur.timestamp)
			mine.timestamp++;
		memcpy(mine.vg_uuid, a->hdr.vg_uuid, 16);
		snprintf(mine.name, sizeof(mine.name), "%s", name);
		uint64_t tw = ls_now(ls);
		if ((r = write_delta(ls, buf, &mine, err)))
			goto out;
		if (ls_now(ls) - r0 > ls->to.io_timeout_ms)
			continue; /* our write may have landed late: verify from scratch */
		bool stop = join_wait(ls, ls->to.acquire_wait_ms);
		if ((r = read_delta(ls, buf, host_id, &check, err)))
			goto out;
		if (stop) {
			/* give the id back, unless another host took it meanwhile */
			struct dlvm_err e2 = { 0 };
			if (same_record(&check, &mine)) {
				mine.timestamp = 0;
				write_delta(ls, buf, &mine, &e2);
			}
			r = join_stopped(ls, host_id, err);
			goto out;
		}
		if (!same_record(&check, &mine)) {
			r = dlvm_err_set(err, -EBUSY,
					 "%s: host id %u was taken by host '%s' "
					 "(generation %" PRIu64 ") while this host acquired it",
					 a->where, host_id, check.name, check.generation);
			goto out;
		}
		ls->joined = true;
		ls->host_id = host_id;
		ls->generation = mine.generation;
		ls->prev_generation = cur.host_id && !strcmp(cur.name, name) ? cur.generation : 0;
		ls->last_ts = mine.timestamp;
		ls->rand_state = host_id * 2654435761u ^ (unsigned)mine.generation;
		snprintf(ls->name, sizeof(ls->name), "%s", name);
		atomic_store_explicit(&ls->deadline_ms, tw + ls->to.renew_fail_ms,
				      memory_order_release);
		struct dlvm_delta_record own;
		if ((r = lease_view_scan(ls, ls->ls_buf, &own, err))) {
			leave(ls);
			goto out;
		}
		if (generation)
			*generation = mine.generation;
		r = 0;
		goto out;
	}
	r = dlvm_err_set(err, -ETIMEDOUT,
			 "%s: host id %u: lease I/O was slower than io_timeout "
			 "%u s on %d attempts",
			 a->where, host_id, ls->io_timeout, ACQUIRE_ATTEMPTS);
out:
	free(buf);
	return r;
}

/* Our sector must hold our record (any timestamp: a write reported failed
 * may still have landed). */
static int check_own(struct dlvm_lockspace *ls, const struct dlvm_delta_record *own,
		     struct dlvm_err *err)
{
	if (own->host_id == ls->host_id && own->generation == ls->generation &&
	    !strcmp(own->name, ls->name))
		return 0;
	if (!own->host_id)
		dlvm_err_set(err, -ESTALE, "%s: host id %u was cleared by another host",
			     ls->area->where, ls->host_id);
	else
		dlvm_err_set(err, -ESTALE,
			     "%s: host id %u was taken by host '%s' (generation %" PRIu64 ")",
			     ls->area->where, ls->host_id, own->name, own->generation);
	leave(ls);
	return -ESTALE;
}

static int renew_expired(struct dlvm_lockspace *ls, struct dlvm_err *err)
{
	int r = lease_check_deadline(ls, "renewal", err);
	if (r == -ETIMEDOUT)
		leave(ls);
	return r;
}

int dlvm_lockspace_renew(struct dlvm_lockspace *ls, struct dlvm_err *err)
{
	struct dlvm_delta_record own, mine;
	uint8_t *buf;
	int r;

	if ((r = renew_expired(ls, err)))
		return r;
	if ((r = lease_view_scan(ls, ls->ls_buf, &own, err)))
		return r;
	if ((r = check_own(ls, &own, err)))
		return r;
	if ((r = renew_expired(ls, err))) /* the read may have been slow */
		return r;
	buf = dlvm_io_alloc(ls->area->hdr.sector_size);
	if (!buf)
		return dlvm_err_set(err, -ENOMEM, "%s: out of memory", ls->area->where);
	mine = own;
	mine.timestamp = DLVM_MAX(ls_now(ls), ls->last_ts + 1);
	mine.io_timeout = ls->io_timeout;
	uint64_t tw = ls_now(ls);
	r = write_delta(ls, buf, &mine, err);
	free(buf);
	if (r)
		return r;
	ls->last_ts = mine.timestamp;
	uint64_t took = ls_now(ls) - tw;
	if (took > ls->to.io_timeout_ms)
		return dlvm_err_set(err, -ETIMEDOUT,
				    "%s: host id %u: renewal write took %" PRIu64
				    " ms, more than io_timeout %u s; deadline not extended",
				    ls->area->where, ls->host_id, took, ls->io_timeout);
	atomic_store_explicit(&ls->deadline_ms, tw + ls->to.renew_fail_ms, memory_order_release);
	pthread_mutex_lock(&ls->lock);
	lease_view_update(ls, ls->host_id, &mine, false, ls_now(ls));
	pthread_mutex_unlock(&ls->lock);
	return 0;
}

int dlvm_lockspace_release(struct dlvm_lockspace *ls, struct dlvm_err *err)
{
	struct dlvm_delta_record own;
	uint8_t *buf;
	int r;

	if ((r = lease_check_deadline(ls, "release", err)))
		return r;
	buf = dlvm_io_alloc(ls->area->hdr.sector_size);
	if (!buf)
		return dlvm_err_set(err, -ENOMEM, "%s: out of memory", ls->area->where);
	if ((r = read_delta(ls, buf, ls->host_id, &own, err)) || (r = check_own(ls, &own, err)))
		goto out;
	atomic_store_explicit(&ls->deadline_ms, 0, memory_order_release);
	own.timestamp = 0;
	r = write_delta(ls, buf, &own, err);
	leave(ls);
out:
	free(buf);
	return r;
}
