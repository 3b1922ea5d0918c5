/* SPDX-License-Identifier: MIT */
/*
 * Resource leases: Disk Paxos on one disk. A resource is a leader record and
 * one dblock per host. Acquiring runs a ballot for the next lease version:
 * write our dblock with a ballot number mbal larger than any seen, read all
 * dblocks (abort if a larger mbal appeared), adopt the value of the highest
 * accepted ballot or propose ourselves, write it as accepted (bal = mbal),
 * read all again, and the winner writes the leader. Holders are judged alive
 * or gone through the lockspace (lease.h: timing argument).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlvm/util.h"
#include "lib/lease/lease_int.h"

#define PAXOS_ROUNDS 6

/* A proposed or chosen owner. */
struct owner {
	uint32_t id;
	uint64_t generation;
	uint64_t timestamp;
};

struct resource_io {
	struct dlvm_lockspace *ls;
	struct dlvm_lease_area *a;
	uint32_t res;
	uint8_t *sbuf;                    /* one sector */
	uint8_t *dbuf;                    /* all dblocks */
	struct dlvm_paxos_dblock *blocks; /* [1..max_hosts] */
	uint32_t lo, hi;                  /* the host ids a check_dblocks decodes */
};

/*
 * A ballot reads the dblocks of the host ids whose delta lease sector has
 * ever been written (or is unreadable, or not seen yet), not all max_hosts
 * of them: a host writes its delta sector before it may run a ballot, and
 * a sector, once written, is never zero again. A host that joins has its
 * sector on disk at least the acquire wait A = 2T_join >= 2 s (T >= 1 s on
 * any host) before it is joined, so before it writes a dblock. If its dblock
 * write comes before our read, its sector was on disk A before that read;
 * a lockspace read that started less than VIEW_VALID_MS (well below A)
 * before our read ended has seen it. If its dblock write comes after our
 * read, its own read comes later still and sees our dblock: the Disk Paxos
 * argument for two hosts of one ballot holds either way. The view is read
 * again first when older than VIEW_FRESH_MS; when the reads took so long
 * that it is older than VIEW_VALID_MS at the end, every dblock is read.
 */
#define VIEW_FRESH_MS 400u
#define VIEW_VALID_MS 1000u
#define DBLOCK_GAP 8u /* excluded sectors read through rather than split a read */

static int rio_init(struct resource_io *io, struct dlvm_lockspace *ls, uint32_t res,
		    struct dlvm_err *err)
{
	struct dlvm_lease_area *a = ls->area;

	memset(io, 0, sizeof(*io));
	io->ls = ls;
	io->a = a;
	io->res = res;
	io->sbuf = dlvm_io_alloc(a->hdr.sector_size);
	io->dbuf = dlvm_io_alloc((size_t)a->hdr.max_hosts * a->hdr.sector_size);
	io->blocks = calloc((size_t)a->hdr.max_hosts + 1, sizeof(*io->blocks));
	if (!io->sbuf || !io->dbuf || !io->blocks)
		return dlvm_err_set(err, -ENOMEM, "%s: out of memory", a->where);
	return 0;
}

static void rio_release(struct resource_io *io)
{
	free(io->sbuf);
	free(io->dbuf);
	free(io->blocks);
}

static int check_res(struct dlvm_lease_area *a, uint32_t res, struct dlvm_err *err)
{
	if (res >= a->hdr.nres)
		return dlvm_err_set(err, -EINVAL,
				    "%s: resource %u does not exist (the area has "
				    "%u)",
				    a->where, res, a->hdr.nres);
	return 0;
}

struct leader_check {
	struct dlvm_lease_area *a;
	uint32_t res;
	struct dlvm_paxos_leader *l;
};

static int check_leader(void *ctx, const uint8_t *buf, struct dlvm_err *err)
{
	struct leader_check *c = ctx;
	struct dlvm_lease_area *a = c->a;
	struct dlvm_paxos_leader *l = c->l;
	uint32_t res = c->res;

	int r = dlvm_paxos_leader_decode(buf, l, err);
	if (!r && l->res_index != res)
		r = dlvm_err_set(err, -EBADMSG, "field res_index is %u", l->res_index);
	if (!r && l->max_hosts != a->hdr.max_hosts)
		r = dlvm_err_set(err, -EBADMSG, "field max_hosts is %u, the area's is %u",
				 l->max_hosts, a->hdr.max_hosts);
	if (!r && memcmp(l->vg_uuid, a->hdr.vg_uuid, 16))
		r = dlvm_err_set(err, -EBADMSG, "leader belongs to another VG");
	if (r)
		return dlvm_err_prefix(err, r, "%s: resource %u leader at offset %" PRIu64 ": ",
				       a->where, res, lease_leader_off(a, res));
	return 0;
}

/* clock: of the lockspace, NULL for the real one */
static int read_leader_buf(struct dlvm_lease_area *a, const struct dlvm_lease_clock *clock,
			   uint32_t res, uint8_t *buf, struct dlvm_paxos_leader *l,
			   struct dlvm_err *err)
{
	struct leader_check c = { a, res, l };
	char what[48];

	snprintf(what, sizeof(what), "resource %u leader", res);
	return lease_read_checked(a, clock, buf, 1, lease_leader_off(a, res), what, check_leader,
				  &c, err);
}

int dlvm_paxos_read_leader(struct dlvm_lease_area *area, uint32_t res_index,
			   struct dlvm_paxos_leader *leader, struct dlvm_err *err)
{
	uint8_t *buf;
	int r;

	if ((r = check_res(area, res_index, err)))
		return r;
	buf = dlvm_io_alloc(area->hdr.sector_size);
	if (!buf)
		return dlvm_err_set(err, -ENOMEM, "%s: out of memory", area->where);
	r = read_leader_buf(area, NULL, res_index, buf, leader, err);
	free(buf);
	return r;
}

static int write_leader(struct resource_io *io, const struct owner *o, uint64_t lver, bool held,
			struct dlvm_err *err)
{
	struct dlvm_paxos_leader l = {
		.res_index = io->res,
		.owner_id = o->id,
		.owner_generation = o->generation,
		.lver = lver,
		.timestamp = held ? DLVM_MAX(o->timestamp, (uint64_t)1) : 0,
		.writer_id = io->ls->host_id,
		.max_hosts = io->a->hdr.max_hosts,
	};
	char what[48];

	memcpy(l.vg_uuid, io->a->hdr.vg_uuid, 16);
	memset(io->sbuf, 0, io->a->hdr.sector_size);
	dlvm_paxos_leader_encode(&l, io->sbuf);
	snprintf(what, sizeof(what), "resource %u leader", io->res);
	return lease_write(io->a, io->sbuf, lease_leader_off(io->a, io->res), what, err);
}

static int check_dblocks(void *ctx, const uint8_t *buf, struct dlvm_err *err)
{
	struct resource_io *io = ctx;
	struct dlvm_lease_area *a = io->a;
	int r;

	for (uint32_t h = io->lo; h <= io->hi; h++) {
		struct dlvm_paxos_dblock *b = &io->blocks[h];
		r = dlvm_paxos_dblock_decode(buf + (size_t)(h - io->lo) * a->hdr.sector_size, b,
					     err);
		if (!r && b->host_id && b->host_id != h)
			r = dlvm_err_set(err, -EBADMSG, "field host_id is %u", b->host_id);
		if (r)
			return dlvm_err_prefix(err, r,
					       "%s: resource %u dblock of host id %u at "
					       "offset %" PRIu64 ": ",
					       a->where, io->res, h,
					       lease_dblock_off(a, io->res, h));
	}
	return 0;
}

/* Read and decode the dblocks of host ids lo..hi. */
static int read_dblock_run(struct resource_io *io, uint32_t lo, uint32_t hi, struct dlvm_err *err)
{
	struct dlvm_lease_area *a = io->a;
	char what[64];

	io->lo = lo;
	io->hi = hi;
	if (lo == 1 && hi == a->hdr.max_hosts)
		snprintf(what, sizeof(what), "resource %u dblocks", io->res);
	else
		snprintf(what, sizeof(what), "resource %u dblocks of host ids %u-%u", io->res, lo,
			 hi);
	return lease_read_checked(a, &io->ls->clock,
				  io->dbuf + (size_t)(lo - 1) * a->hdr.sector_size, hi - lo + 1,
				  lease_dblock_off(a, io->res, lo), what, check_dblocks, io, err);
}

static int read_dblocks(struct resource_io *io, struct dlvm_err *err)
{
	struct dlvm_lockspace *ls = io->ls;
	uint32_t n = io->a->hdr.max_hosts;
	int r;

	if (!ls->joined || n <= DBLOCK_GAP)
		return read_dblock_run(io, 1, n, err);
	pthread_mutex_lock(&ls->lock);
	uint64_t scan = ls->scan_ms;
	pthread_mutex_unlock(&ls->lock);
	if (!scan || ls_now(ls) - scan > VIEW_FRESH_MS) {
		if ((r = lease_view_scan(ls, io->dbuf, NULL, err)))
			return r;
		pthread_mutex_lock(&ls->lock);
		scan = ls->scan_ms;
		pthread_mutex_unlock(&ls->lock);
	}
	/* the runs of host ids to read, judged under the lock, read without */
	uint32_t *run = calloc(2 * (size_t)n, sizeof(*run)), nrun = 0;
	if (!run)
		return dlvm_err_set(err, -ENOMEM, "%s: out of memory", io->a->where);
	pthread_mutex_lock(&ls->lock);
	for (uint32_t h = 1; h <= n; h++) {
		const struct lease_view *v = &ls->view[h];
		if (h != ls->host_id && v->seen && !v->bad && !v->rec.host_id)
			continue;
		if (nrun && h - run[2 * nrun - 1] <= DBLOCK_GAP + 1) {
			run[2 * nrun - 1] = h;
		} else {
			run[2 * nrun] = h;
			run[2 * nrun + 1] = h;
			nrun++;
		}
	}
	pthread_mutex_unlock(&ls->lock);
	memset(io->blocks, 0, ((size_t)n + 1) * sizeof(*io->blocks));
	r = 0;
	for (uint32_t i = 0; i < nrun && !r; i++)
		r = read_dblock_run(io, run[2 * i], run[2 * i + 1], err);
	free(run);
	if (!r && ls_now(ls) - scan > VIEW_VALID_MS)
		r = read_dblock_run(io, 1, n, err); /* too slow to trust the view */
	return r;
}

static int write_own_dblock(struct resource_io *io, const struct dlvm_paxos_dblock *b,
			    struct dlvm_err *err)
{
	char what[64];

	memset(io->sbuf, 0, io->a->hdr.sector_size);
	dlvm_paxos_dblock_encode(b, io->sbuf);
	snprintf(what, sizeof(what), "resource %u dblock of host id %u", io->res, b->host_id);
	return lease_write(io->a, io->sbuf, lease_dblock_off(io->a, io->res, b->host_id), what,
			   err);
}

/* ---- holders ---- */

enum holder { HOLDER_ALIVE, HOLDER_GONE };

/*
 * Judge whether the holder (id, generation) still holds: reads its delta
 * lease now and consults the liveness view. Returns HOLDER_ALIVE or
 * HOLDER_GONE, or a negative errno; *rec receives the delta record read.
 */
static int judge_holder(struct dlvm_lockspace *ls, uint8_t *buf, uint32_t id, uint64_t gen,
			struct dlvm_delta_record *rec, struct dlvm_err *err)
{
	struct dlvm_lease_area *a = ls->area;
	struct dlvm_err e = { 0 };
	int r;

	memset(rec, 0, sizeof(*rec));
	if (!id)
		return HOLDER_GONE;
	if (id == ls->host_id) {
		snprintf(rec->name, sizeof(rec->name), "%s", ls->name);
		rec->generation = gen;
		return gen < ls->generation ? HOLDER_GONE : HOLDER_ALIVE;
	}
	r = lease_read_delta(a, &ls->clock, buf, id, "delta lease of a holder", rec, &e);
	if (r && r != -EBADMSG && r != -ENOTSUP) { /* an I/O error, not a record */
		dlvm_err_set(err, e.code, "%s", e.msg);
		return r;
	}
	uint64_t now = ls_now(ls);
	pthread_mutex_lock(&ls->lock);
	lease_view_update(ls, id, rec, r != 0, now);
	enum dlvm_host_state st = lease_view_state(ls, id, now);
	pthread_mutex_unlock(&ls->lock);
	if (r) {
		dlvm_err_set(err, e.code, "%s", e.msg);
		return r;
	}
	if (!rec->host_id || rec->generation > gen || !rec->timestamp)
		return HOLDER_GONE; /* never joined, restarted, or left cleanly */
	if (rec->generation < gen)
		return dlvm_err_set(err, -EBADMSG,
				    "%s: host id %u has generation %" PRIu64
				    " on disk, older than the holder's %" PRIu64,
				    a->where, id, rec->generation, gen);
	return st == DLVM_HOST_DEAD ? HOLDER_GONE : HOLDER_ALIVE;
}

static int busy(struct dlvm_lockspace *ls, uint32_t res, const char *how, uint32_t id,
		const struct dlvm_delta_record *rec, struct dlvm_err *err)
{
	return dlvm_err_set(err, -EBUSY,
			    "%s: resource %u is held %sby host id %u '%s' "
			    "(generation %" PRIu64 ")",
			    ls->area->where, res, how, id, rec->name, rec->generation);
}

/* ---- ballot ---- */

static bool overtaken(struct resource_io *io, uint64_t lver, uint64_t mbal, struct dlvm_err *err)
{
	uint32_t me = io->ls->host_id;

	for (uint32_t h = 1; h <= io->a->hdr.max_hosts; h++) {
		const struct dlvm_paxos_dblock *b = &io->blocks[h];
		if (h == me || !b->host_id)
			continue;
		if (b->lver > lver || (b->lver == lver && b->mbal > mbal)) {
			dlvm_err_set(err, -EAGAIN,
				     "resource %u: ballot %" PRIu64 " for version %" PRIu64
				     " was overtaken by host id %u (ballot %" PRIu64
				     ", version %" PRIu64 ")",
				     io->res, mbal, lver, h, b->mbal, b->lver);
			return true;
		}
	}
	return false;
}

/*
 * Run one ballot for lease version lver proposing `mine`. On success *chosen
 * is the value this ballot committed to (ours or an earlier accepted one) and
 * *own the dblock we wrote. -EAGAIN (message in err) when overtaken.
 */
static int run_ballot(struct resource_io *io, uint64_t lver, const struct owner *mine,
		      struct owner *chosen, struct dlvm_paxos_dblock *own, bool *offered,
		      struct dlvm_err *err)
{
	uint32_t me = io->ls->host_id, hosts = io->a->hdr.max_hosts;
	uint64_t max_mbal = 0;
	int r;

	*offered = false; /* until our value goes out in phase 2 */
	if ((r = read_dblocks(io, err)))
		return r;
	for (uint32_t h = 1; h <= hosts; h++) {
		const struct dlvm_paxos_dblock *b = &io->blocks[h];
		if (h != me && b->lver > lver)
			return dlvm_err_set(err, -EAGAIN,
					    "resource %u: host id %u is already at "
					    "version %" PRIu64,
					    io->res, h, b->lver);
		if (b->lver == lver)
			max_mbal = DLVM_MAX(max_mbal, b->mbal);
	}
	*own = io->blocks[me]; /* keeps our SHARED flag */
	if (own->lver != lver) {
		own->bal = 0;
		own->inp_id = 0;
		own->inp_generation = 0;
		own->inp_timestamp = 0;
	}
	own->host_id = me;
	own->lver = lver;
	/* ballot numbers k * hosts + me are unique per host */
	own->mbal = max_mbal / hosts * hosts + me;
	if (own->mbal <= max_mbal)
		own->mbal += hosts;
	if ((r = write_own_dblock(io, own, err)) || (r = read_dblocks(io, err)))
		return r;
	if (overtaken(io, lver, own->mbal, err))
		return -EAGAIN;

	uint64_t best = 0;
	*chosen = *mine;
	for (uint32_t h = 1; h <= hosts; h++) {
		const struct dlvm_paxos_dblock *b = &io->blocks[h];
		if (h != me && b->lver == lver && b->bal > best && b->inp_id) {
			best = b->bal;
			chosen->id = b->inp_id;
			chosen->generation = b->inp_generation;
			chosen->timestamp = b->inp_timestamp;
		}
	}
	if (own->bal > best && own->inp_id) {
		chosen->id = own->inp_id;
		chosen->generation = own->inp_generation;
		chosen->timestamp = own->inp_timestamp;
	}
	own->bal = own->mbal;
	own->inp_id = chosen->id;
	own->inp_generation = chosen->generation;
	own->inp_timestamp = chosen->timestamp;
	/* from this write on, our value may be the one chosen for lver */
	*offered = chosen->id == mine->id && chosen->generation == mine->generation;
	if ((r = write_own_dblock(io, own, err)) || (r = read_dblocks(io, err)))
		return r;
	if (overtaken(io, lver, own->mbal, err))
		return -EAGAIN;
	return 0;
}

/* After taking the leader exclusively: refuse if another live host holds the
 * resource shared. */
static int check_shared(struct resource_io *io, struct dlvm_err *err)
{
	struct dlvm_lockspace *ls = io->ls;
	int r;

	if ((r = read_dblocks(io, err)))
		return r;
	for (uint32_t h = 1; h <= io->a->hdr.max_hosts; h++) {
		const struct dlvm_paxos_dblock *b = &io->blocks[h];
		struct dlvm_delta_record rec;
		if (h == ls->host_id || !(b->flags & DLVM_DBLOCK_SHARED))
			continue;
		r = judge_holder(ls, io->sbuf, h, b->shared_generation, &rec, err);
		if (r < 0)
			return r;
		if (r == HOLDER_ALIVE)
			return busy(ls, io->res, "shared ", h, &rec, err);
	}
	return 0;
}

static bool same_owner(const struct owner *a, const struct owner *b)
{
	return a->id == b->id && a->generation == b->generation;
}

static void backoff(struct dlvm_lockspace *ls)
{
	uint64_t span = DLVM_MAX(ls->to.io_timeout_ms / 10, (uint64_t)2);
	ls->clock.sleep_ms(ls->clock.priv, 1 + (uint64_t)rand_r(&ls->rand_state) % span);
}

/*
 * An acquire that fails after offering our own value for version lver
 * (written in a ballot's second phase) may leave that value chosen with no
 * leader written: every other host would find it, see this host alive and
 * refuse, until this host acquired the resource again. Settle it: finish a
 * ballot for lver and, if it chooses our value, write the leader free at
 * lver, so that the next acquire anywhere takes lver + 1. A ballot for lver
 * that chooses another value, a leader at lver or later, an error or the
 * deadline end it; nothing is written after the deadline. Errors here are
 * secondary to the acquire's own.
 */
static void settle(struct resource_io *io, uint64_t lver, const struct owner *mine)
{
	struct dlvm_lockspace *ls = io->ls;

	for (int round = 0; round < PAXOS_ROUNDS; round++) {
		struct dlvm_err e = { 0 };
		struct dlvm_paxos_leader l, l2;
		struct dlvm_paxos_dblock own;
		struct owner chosen;
		bool offered = false;

		if (lease_check_deadline(ls, "paxos settle", &e) ||
		    read_leader_buf(ls->area, &ls->clock, io->res, io->sbuf, &l, &e))
			return;
		if (l.lver >= lver) {
			/* committed: if for us and held, it is not ours to keep */
			struct owner o = { l.owner_id, l.owner_generation, 0 };
			if (l.lver == lver && l.timestamp && same_owner(&o, mine))
				write_leader(io, mine, lver, false, &e);
			return;
		}
		if (l.lver + 1 != lver)
			return;
		int r = run_ballot(io, lver, mine, &chosen, &own, &offered, &e);
		if (r == -EAGAIN) {
			backoff(ls);
			continue;
		}
		if (r || !same_owner(&chosen, mine))
			return; /* another value: its owner, or whoever finds it gone, commits it */
		if (read_leader_buf(ls->area, &ls->clock, io->res, io->sbuf, &l2, &e))
			return;
		if (l2.lver != l.lver || l2.timestamp != l.timestamp)
			continue;
		if (!lease_check_deadline(ls, "paxos settle", &e))
			write_leader(io, mine, lver, false, &e);
		return;
	}
}

int dlvm_paxos_acquire(struct dlvm_lockspace *ls, uint32_t res_index, enum dlvm_lease_mode mode,
		       struct dlvm_paxos_lease *lease, struct dlvm_err *err)
{
	struct dlvm_err last = { 0 };
	struct resource_io io;
	uint64_t offered_lver = 0; /* our value offered, no leader written yet */
	struct owner me = { ls->host_id, ls->generation, 0 };
	int r;

	if (mode != DLVM_LEASE_EXCLUSIVE && mode != DLVM_LEASE_SHARED)
		return dlvm_err_set(err, -EINVAL, "%s: bad lease mode %d", ls->area->where, mode);
	if ((r = check_res(ls->area, res_index, err)) ||
	    (r = lease_check_deadline(ls, "paxos acquire", err)))
		return r;
	if ((r = rio_init(&io, ls, res_index, err)))
		goto out;

	for (int round = 0; round < PAXOS_ROUNDS; round++) {
		struct dlvm_paxos_leader l, l2;
		struct dlvm_delta_record rec;
		struct dlvm_paxos_dblock own;
		struct owner mine = { ls->host_id, ls->generation, ls_now(ls) }, chosen;

		if ((r = read_leader_buf(ls->area, &ls->clock, res_index, io.sbuf, &l, err)))
			goto out;
		bool ours = l.owner_id == ls->host_id && l.owner_generation == ls->generation;
		if (l.timestamp && ours && mode == DLVM_LEASE_EXCLUSIVE) {
			*lease = (struct dlvm_paxos_lease){ res_index, mode, l.lver, ls->host_id,
							    ls->generation };
			goto out;
		}
		if (l.timestamp && !ours) {
			r = judge_holder(ls, io.sbuf, l.owner_id, l.owner_generation, &rec, err);
			if (r < 0)
				goto out;
			if (r == HOLDER_ALIVE) {
				r = busy(ls, res_index, "", l.owner_id, &rec, err);
				goto out;
			}
		}
		if ((r = lease_check_deadline(ls, "paxos acquire", err)))
			goto out;
		dlvm_err_clear(&last);
		bool offered = false;
		r = run_ballot(&io, l.lver + 1, &mine, &chosen, &own, &offered, &last);
		if (offered)
			offered_lver = l.lver + 1;
		if (r == -EAGAIN) {
			backoff(ls);
			continue;
		}
		if (r) {
			dlvm_err_set(err, r, "%s", last.msg);
			goto out;
		}
		if ((r = read_leader_buf(ls->area, &ls->clock, res_index, io.sbuf, &l2, err)))
			goto out;
		if (l2.lver != l.lver || l2.timestamp != l.timestamp) {
			dlvm_err_set(&last, -EAGAIN,
				     "resource %u: the leader changed during the "
				     "ballot",
				     res_index);
			continue; /* someone committed meanwhile: judge again */
		}
		if (!same_owner(&chosen, &mine)) {
			/* another host won this version (not ours, even if offered
			 * in an earlier round) */
			offered_lver = 0;
			r = judge_holder(ls, io.sbuf, chosen.id, chosen.generation, &rec, err);
			if (r < 0)
				goto out;
			if (r == HOLDER_ALIVE) {
				r = busy(ls, res_index, "", chosen.id, &rec, err);
				goto out;
			}
			/* the winner is gone without committing: commit for it, then
			 * the next round takes the next version */
			if ((r = write_leader(&io, &chosen, l.lver + 1, true, err)))
				goto out;
			continue;
		}
		if ((r = lease_check_deadline(ls, "paxos acquire", err)) ||
		    (r = write_leader(&io, &mine, l.lver + 1, true, err)))
			goto out;
		offered_lver = 0; /* the leader names us: freed below on an error */
		*lease = (struct dlvm_paxos_lease){ res_index, mode, l.lver + 1, ls->host_id,
						    ls->generation };
		if (mode == DLVM_LEASE_EXCLUSIVE) {
			r = check_shared(&io, err);
		} else {
			own.flags |= DLVM_DBLOCK_SHARED;
			own.shared_generation = ls->generation;
			r = write_own_dblock(&io, &own, err);
		}
		if (r || mode == DLVM_LEASE_SHARED) {
			/* free the leader; an error here is secondary to r */
			struct dlvm_err e2 = { 0 };
			int r2 = write_leader(&io, &mine, l.lver + 1, false, r ? &e2 : err);
			if (!r)
				r = r2;
		}
		goto out;
	}
	r = dlvm_err_set(err, -EBUSY, "%s: resource %u: no ballot succeeded in %d rounds: %s",
			 ls->area->where, res_index, PAXOS_ROUNDS, last.msg);
out:
	if (r && offered_lver)
		settle(&io, offered_lver, &me);
	rio_release(&io);
	return r;
}

int dlvm_paxos_release(struct dlvm_lockspace *ls, const struct dlvm_paxos_lease *lease,
		       struct dlvm_err *err)
{
	struct dlvm_lease_area *a = ls->area;
	struct resource_io io;
	uint32_t res = lease->res_index;
	int r;

	if ((r = check_res(a, res, err)) || (r = lease_check_deadline(ls, "paxos release", err)))
		return r;
	if ((r = rio_init(&io, ls, res, err)))
		goto out;
	if (lease->mode == DLVM_LEASE_SHARED) {
		char what[64];
		struct dlvm_paxos_dblock b;
		snprintf(what, sizeof(what), "resource %u dblock of host id %u", res, ls->host_id);
		if ((r = lease_read(a, io.sbuf, 1, lease_dblock_off(a, res, ls->host_id), what,
				    err)))
			goto out;
		if ((r = dlvm_paxos_dblock_decode(io.sbuf, &b, err))) {
			dlvm_err_prefix(err, r, "%s: %s: ", a->where, what);
			goto out;
		}
		if (!(b.flags & DLVM_DBLOCK_SHARED) || b.shared_generation != ls->generation) {
			r = dlvm_err_set(err, -ESTALE,
					 "%s: resource %u is not held shared by this "
					 "host (generation %" PRIu64 ")",
					 a->where, res, ls->generation);
			goto out;
		}
		b.flags &= ~DLVM_DBLOCK_SHARED;
		b.shared_generation = 0;
		r = write_own_dblock(&io, &b, err);
		goto out;
	}
	struct dlvm_paxos_leader l;
	if ((r = read_leader_buf(a, &ls->clock, res, io.sbuf, &l, err)))
		goto out;
	if (!l.timestamp || l.owner_id != ls->host_id || l.owner_generation != ls->generation ||
	    l.lver != lease->lver) {
		if (l.timestamp)
			r = dlvm_err_set(err, -ESTALE,
					 "%s: resource %u was taken by host id %u "
					 "(generation %" PRIu64 ", version %" PRIu64 ")",
					 a->where, res, l.owner_id, l.owner_generation, l.lver);
		else
			r = dlvm_err_set(err, -ESTALE,
					 "%s: resource %u is no longer held (version %" PRIu64 ")",
					 a->where, res, l.lver);
		goto out;
	}
	struct owner mine = { ls->host_id, ls->generation, 0 };
	r = write_leader(&io, &mine, l.lver, false, err);
out:
	rio_release(&io);
	return r;
}

int dlvm_paxos_shared_holders(struct dlvm_lockspace *ls, uint32_t res_index, uint32_t *ids,
			      size_t max, size_t *n, struct dlvm_err *err)
{
	struct resource_io io;
	size_t k = 0;
	int r;

	*n = 0;
	if ((r = check_res(ls->area, res_index, err)))
		return r;
	if (!ls->joined)
		return dlvm_err_set(err, -EINVAL, "%s: not joined to the lockspace",
				    ls->area->where);
	if ((r = rio_init(&io, ls, res_index, err)) || (r = read_dblocks(&io, err)))
		goto out;
	for (uint32_t h = 1; h <= ls->area->hdr.max_hosts; h++) {
		const struct dlvm_paxos_dblock *b = &io.blocks[h];
		struct dlvm_delta_record rec;
		if (!(b->flags & DLVM_DBLOCK_SHARED))
			continue;
		r = judge_holder(ls, io.sbuf, h, b->shared_generation, &rec, err);
		if (r < 0)
			goto out;
		if (r == HOLDER_ALIVE) {
			if (k < max)
				ids[k] = h;
			k++;
		}
	}
	*n = k;
	r = 0;
out:
	rio_release(&io);
	return r;
}
