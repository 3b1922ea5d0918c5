/* SPDX-License-Identifier: MIT */
/* The VG model: construction, lookup, loading from devices, creation. */
#include <inttypes.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dlvm/util.h"
#include "meta.h"

struct dlvm_vg *dlvm_vg_new(void)
{
	struct dlvm_vg *vg = calloc(1, sizeof(*vg));
	struct dlvm_hmap *n = calloc(1, sizeof(*n)), *i = calloc(1, sizeof(*i));

	if (!vg || !n || !i) {
		free(vg);
		free(n);
		free(i);
		return NULL;
	}
	dlvm_hmap_init_str(n, offsetof(struct dlvm_lv, name));
	dlvm_hmap_init_u64(i, offsetof(struct dlvm_lv, id));
	vg->by_name = n;
	vg->by_id = i;
	return vg;
}

void dlvm_lv_free(struct dlvm_lv *lv)
{
	if (!lv)
		return;
	dlvm_segs_free(lv->segs, lv->nseg);
	free(lv->holders);
	dlvm_props_release(&lv->props);
	free(lv);
}

int dlvm_vg_add_lv(struct dlvm_vg *vg, struct dlvm_lv *lv)
{
	if (vg->nlv == vg->caplv) {
		size_t ncap = vg->caplv ? vg->caplv * 2 : 64;
		struct dlvm_lv **p = realloc(vg->lvs, ncap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		vg->lvs = p;
		vg->caplv = ncap;
	}
	if (dlvm_hmap_insert(vg->by_name, lv))
		return -ENOMEM;
	if (dlvm_hmap_insert(vg->by_id, lv)) {
		dlvm_hmap_remove(vg->by_name, lv);
		return -ENOMEM;
	}
	lv->index = vg->nlv;
	vg->lvs[vg->nlv++] = lv;
	return 0;
}

void dlvm_vg_del_lv(struct dlvm_vg *vg, struct dlvm_lv *lv)
{
	dlvm_hmap_remove(vg->by_name, lv);
	dlvm_hmap_remove(vg->by_id, lv);
	vg->lvs[lv->index] = vg->lvs[--vg->nlv];
	vg->lvs[lv->index]->index = lv->index;
}

void dlvm_vg_free(struct dlvm_vg *vg)
{
	if (!vg)
		return;
	if (vg->runtime_release)
		vg->runtime_release(vg->runtime); /* commits stores: before the devices close */
	for (size_t i = 0; i < vg->nlv; i++)
		dlvm_lv_free(vg->lvs[i]);
	free(vg->lvs);
	for (size_t i = 0; i < vg->npv; i++) {
		dlvm_dev_close(vg->pvs[i]->dev);
		free(vg->pvs[i]->free);
		free(vg->pvs[i]);
	}
	free(vg->pvs);
	dlvm_props_release(&vg->props);
	if (vg->by_name) {
		dlvm_hmap_release(vg->by_name);
		dlvm_hmap_release(vg->by_id);
	}
	free(vg->by_name);
	free(vg->by_id);
	free(vg);
}

void dlvm_vg_attach_runtime(struct dlvm_vg *vg, struct dlvm_vg_runtime *rt,
			    void (*release)(struct dlvm_vg_runtime *rt))
{
	vg->runtime = rt;
	vg->runtime_release = release;
}

void dlvm_vg_move_runtime(struct dlvm_vg *from, struct dlvm_vg *to)
{
	dlvm_vg_attach_runtime(to, from->runtime, from->runtime_release);
	dlvm_vg_attach_runtime(from, NULL, NULL);
}

struct dlvm_lv *dlvm_lv_find(const struct dlvm_vg *vg, const char *name)
{
	return dlvm_hmap_find_str(vg->by_name, name);
}

struct dlvm_lv *dlvm_lv_find_id(const struct dlvm_vg *vg, uint64_t id)
{
	return dlvm_hmap_find_u64(vg->by_id, id);
}

struct dlvm_pv *dlvm_pv_find_id(const struct dlvm_vg *vg, uint32_t id)
{
	for (size_t i = 0; i < vg->npv; i++)
		if (vg->pvs[i]->d.id == id)
			return vg->pvs[i];
	return NULL;
}

uint64_t dlvm_vg_free_extents(const struct dlvm_vg *vg)
{
	uint64_t n = 0;
	for (size_t i = 0; i < vg->npv; i++)
		n += vg->pvs[i]->d.pe_count - vg->pvs[i]->pe_alloc;
	return n;
}

uint64_t dlvm_vg_total_extents(const struct dlvm_vg *vg)
{
	uint64_t n = 0;
	for (size_t i = 0; i < vg->npv; i++)
		n += vg->pvs[i]->d.pe_count;
	return n;
}

unsigned dlvm_lv_attr_edits(const struct dlvm_lv *lv, struct dlvm_edit out[3])
{
	const struct dlvm_lv_thin *t = &lv->thin;
	unsigned n = 0;

	/* an LV of a thin kind whose LV_SET_THIN never came has none:
	 * writing an empty one would not replay */
	bool has_thin = t->pool_id || t->origin_id || t->virtual_size || t->meta_id ||
			t->chunk_size || t->slab_extents;
	if (has_thin && ((lv->flags & (DLVM_LV_THIN_POOL | DLVM_LV_THIN | DLVM_LV_THIN_DATA)) ||
			 ((lv->flags & DLVM_LV_THIN_META) && t->pool_id))) {
		out[n] = (struct dlvm_edit){ .type = DLVM_EDIT_LV_SET_THIN };
		out[n].u.lv.id = lv->id;
		out[n++].u.lv.thin = *t;
	}
	if (lv->copy_rate) {
		out[n] = (struct dlvm_edit){ .type = DLVM_EDIT_LV_SET_COPY_RATE,
					     .flags = DLVM_EDIT_IGNORABLE };
		out[n].u.lv.id = lv->id;
		out[n++].u.lv.copy_rate = lv->copy_rate;
	}
	if (lv->nholders) {
		out[n] = (struct dlvm_edit){ .type = DLVM_EDIT_LV_SET_HOLDERS };
		out[n].u.lv.id = lv->id;
		out[n].u.lv.nholders = lv->nholders;
		out[n++].u.lv.holders = lv->holders;
	}
	return n;
}

int dlvm_vg_encode_state(const struct dlvm_vg *vg, struct dlvm_buf *out)
{
	struct dlvm_edit e = { .type = DLVM_EDIT_VG_INFO };
	int r;

	e.u.vg = vg->info;
	if ((r = dlvm_edit_encode(&e, out)) || (r = dlvm_props_encode(0, &vg->props, out)))
		return r;
	for (size_t i = 0; i < vg->npv; i++) {
		e = (struct dlvm_edit){ .type = DLVM_EDIT_PV_ADD };
		e.u.pv = vg->pvs[i]->d;
		if ((r = dlvm_edit_encode(&e, out)))
			return r;
	}
	for (size_t i = 0; i < vg->nlv; i++) {
		const struct dlvm_lv *lv = vg->lvs[i];
		e = (struct dlvm_edit){ .type = DLVM_EDIT_LV_CREATE };
		e.u.lv.id = lv->id;
		memcpy(e.u.lv.uuid, lv->uuid, 16);
		memcpy(e.u.lv.name, lv->name, sizeof(lv->name));
		e.u.lv.flags = lv->flags;
		e.u.lv.ctime = lv->ctime;
		e.u.lv.nseg = lv->nseg;
		e.u.lv.segs = lv->segs;
		if ((r = dlvm_edit_encode(&e, out)))
			return r;
		struct dlvm_edit more[3];
		unsigned n = dlvm_lv_attr_edits(lv, more);
		for (unsigned k = 0; k < n; k++)
			if ((r = dlvm_edit_encode(&more[k], out)))
				return r;
		if ((r = dlvm_props_encode(lv->id, &lv->props, out)))
			return r;
	}
	return 0;
}

/* ---- loading ---- */

struct cand {
	struct dlvm_dev *dev;
	struct dlvm_pv_header ph;
	struct dlvm_mda mda;
	int hdr_r;  /* label decode result */
	int mda_r;  /* MDA header result */
	size_t idx; /* index in the caller's devs */
	struct dlvm_err e;
};

static void read_cand(struct cand *c)
{
	c->hdr_r = dlvm_pv_read_header(c->dev, &c->ph, &c->e);
	if (c->hdr_r)
		return;
	c->mda_r = dlvm_mda_read_header(c->dev, &c->mda, &c->e);
	if (!c->mda_r && memcmp(c->mda.hdr.pv_uuid, c->ph.pv_uuid, 16))
		c->mda_r = dlvm_err_set(&c->e, -EBADMSG, "%s: metadata area belongs to another PV",
					c->dev->name);
}

/* Load the VG with uuid from the candidates; moves its devices into it. */
static int load_uuid(struct cand *cs, size_t n, const uint8_t uuid[16], struct dlvm_dev **devs,
		     struct dlvm_vg **out, struct dlvm_err *err)
{
	struct dlvm_vg *vg = NULL;
	ssize_t best = -1;
	char problems[DLVM_ERR_MSG_MAX] = "";
	int r;

	for (size_t i = 0; i < n; i++) {
		struct cand *c = &cs[i];
		if (c->hdr_r || c->mda_r || memcmp(c->mda.hdr.vg_uuid, uuid, 16) || !devs[c->idx])
			continue;
		struct dlvm_err e = { 0 };
		if (dlvm_mda_replay(c->dev, &c->mda, NULL, &e)) {
			snprintf(c->mda.problem, sizeof(c->mda.problem), "%s", e.msg);
			size_t l = strlen(problems);
			snprintf(problems + l, sizeof(problems) - l, "%s%s", l ? "; " : "", e.msg);
			continue;
		}
		if (best < 0 || c->mda.tail_seq > cs[best].mda.tail_seq)
			best = (ssize_t)i;
	}
	if (best < 0)
		return dlvm_err_set(err, -EBADMSG, "no readable metadata copy: %s", problems);

	vg = dlvm_vg_new();
	if (!vg)
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	{
		struct dlvm_mda tmp = cs[best].mda;
		if ((r = dlvm_mda_replay(cs[best].dev, &tmp, vg, err)))
			goto fail;
	}
	if (memcmp(vg->info.uuid, uuid, 16)) {
		r = dlvm_err_set(err, -EBADMSG,
				 "%s: metadata describes VG %s, not the one its header "
				 "names",
				 cs[best].dev->name, vg->info.name);
		goto fail;
	}
	if (vg->info.incompat & ~DLVM_INCOMPAT_KNOWN) {
		r = dlvm_err_set(err, -ENOTSUP,
				 "%s: VG uses unknown incompatible features 0x%" PRIx64,
				 vg->info.name, vg->info.incompat & ~DLVM_INCOMPAT_KNOWN);
		goto fail;
	}
	if (vg->info.ro_compat & ~DLVM_RO_COMPAT_KNOWN) {
		vg->readonly = true;
		snprintf(vg->readonly_why, sizeof(vg->readonly_why),
			 "%s: unknown read-only-"
			 "compatible features 0x%" PRIx64 " (written by a newer dlvm): the VG is "
			 "read-only",
			 vg->info.name, (uint64_t)(vg->info.ro_compat & ~DLVM_RO_COMPAT_KNOWN));
	}

	/* attach devices to PVs (not those another VG took already) */
	for (size_t i = 0; i < n; i++) {
		struct cand *c = &cs[i];
		if (c->hdr_r || !devs[c->idx])
			continue;
		for (size_t k = 0; k < vg->npv; k++) {
			struct dlvm_pv *pv = vg->pvs[k];
			if (memcmp(pv->d.uuid, c->ph.pv_uuid, 16) || pv->dev)
				continue;
			pv->dev = c->dev;
			pv->hdr = c->ph;
			if (c->mda_r) {
				dlvm_mda_geometry(c->ph.mda_size, &pv->mda.hdr);
				pv->mda.valid = false;
				snprintf(pv->mda.problem, sizeof(pv->mda.problem), "%s", c->e.msg);
			} else if (dlvm_uuid_is_zero(c->mda.hdr.vg_uuid)) {
				/* vgextend stopped before the new PV got its copy:
				 * stale, rewritten by the next change */
				pv->mda = c->mda;
				pv->mda.valid = true;
				pv->mda.tail_seq = 0;
			} else {
				pv->mda = c->mda;
				if (memcmp(c->mda.hdr.vg_uuid, uuid, 16)) {
					pv->mda.valid = false;
					snprintf(pv->mda.problem, sizeof(pv->mda.problem),
						 "%s: metadata area does not belong to VG %s",
						 c->dev->name, vg->info.name);
				}
			}
			pv->mda.in_sync = pv->mda.valid && pv->mda.tail_seq == vg->seq &&
					  !pv->mda.fallback;
			if (pv->mda.fallback)
				; /* the problem says why */
			else if (pv->mda.valid && !pv->mda.in_sync)
				snprintf(pv->mda.problem, sizeof(pv->mda.problem),
					 "%s: metadata copy is stale (sequence %" PRIu64
					 ", VG is at %" PRIu64 ")",
					 c->dev->name, pv->mda.tail_seq, vg->seq);
			/* a PV header or metadata header slot of a newer dlvm: the
			 * VG is read, never rewritten */
			struct dlvm_err fe = { 0 };
			if (dlvm_pv_check_ro_compat(c->dev, &c->ph, c->mda_r ? NULL : &c->mda,
						    &fe) &&
			    !vg->readonly) {
				vg->readonly = true;
				snprintf(vg->readonly_why, sizeof(vg->readonly_why),
					 "%.*s: the VG "
					 "is read-only",
					 (int)sizeof(vg->readonly_why) - 32, fe.msg);
			}
			devs[c->idx] = NULL;
			break;
		}
	}
	*out = vg;
	return 0;
fail:
	dlvm_vg_free(vg);
	return r;
}

static int read_cands(struct dlvm_dev **devs, size_t n, struct cand **out)
{
	struct cand *cs = calloc(n ? n : 1, sizeof(*cs));
	size_t k = 0;

	if (!cs)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (!devs[i])
			continue;
		cs[k].dev = devs[i];
		cs[k].idx = i;
		read_cand(&cs[k]);
		k++;
	}
	*out = cs;
	return (int)k;
}

int dlvm_scan(struct dlvm_dev **devs, size_t n, char **vg_names, struct dlvm_err *problems)
{
	struct cand *cs;
	int k = read_cands(devs, n, &cs);

	if (k < 0)
		return k;
	for (size_t i = 0; i < n; i++)
		vg_names[i] = NULL;
	for (int i = 0; i < k; i++) {
		struct cand *c = &cs[i];
		if (c->hdr_r || c->mda_r) {
			if (problems && c->hdr_r != -ENODATA)
				problems[c->idx] = c->e;
			continue;
		}
		if (dlvm_uuid_is_zero(c->mda.hdr.vg_uuid) || vg_names[c->idx])
			continue;
		/* load this VG on a copy of the device array to learn its name */
		struct dlvm_dev **tmp = calloc(n, sizeof(*tmp));
		struct dlvm_vg *vg = NULL;
		struct dlvm_err e = { 0 };
		if (!tmp)
			break;
		memcpy(tmp, devs, n * sizeof(*tmp));
		if (!load_uuid(cs, (size_t)k, c->mda.hdr.vg_uuid, tmp, &vg, &e)) {
			for (size_t j = 0; j < n; j++)
				if (devs[j] && !tmp[j])
					vg_names[j] = strdup(vg->info.name);
			for (size_t p = 0; p < vg->npv; p++)
				vg->pvs[p]->dev = NULL; /* not ours to close */
			dlvm_vg_free(vg);
		} else if (problems) {
			problems[c->idx] = e;
		}
		free(tmp);
	}
	free(cs);
	return 0;
}

/* Where the first of vg's devices is in the caller's devs. */
static size_t first_dev(const struct dlvm_vg *vg, const struct cand *cs, size_t k)
{
	size_t first = SIZE_MAX;

	for (size_t p = 0; p < vg->npv; p++)
		for (size_t j = 0; vg->pvs[p]->dev && j < k; j++)
			if (cs[j].dev == vg->pvs[p]->dev && cs[j].idx < first)
				first = cs[j].idx;
	return first;
}

int dlvm_vg_load_all(struct dlvm_dev **devs, size_t n, struct dlvm_vg ***vgs_out, size_t *nvg_out,
		     struct dlvm_err *problems)
{
	struct cand *cs;
	int k = read_cands(devs, n, &cs);

	*vgs_out = NULL;
	*nvg_out = 0;
	if (k < 0)
		return -ENOMEM;
	size_t nc = (size_t)k, nvg = 0;
	/* at most one VG per candidate; first[v]: where VG v's first device
	 * is in devs, the order the VGs are given in */
	struct dlvm_vg **vgs = calloc(nc ? nc : 1, sizeof(*vgs));
	size_t *first = calloc(nc ? nc : 1, sizeof(*first));
	bool *done = calloc(nc ? nc : 1, sizeof(*done));
	if (!vgs || !first || !done) {
		free(vgs);
		free(first);
		free(done);
		free(cs);
		return -ENOMEM;
	}
	for (size_t i = 0; i < nc; i++) {
		struct cand *c = &cs[i];
		if (c->hdr_r || c->mda_r) {
			if (problems && c->hdr_r != -ENODATA)
				problems[c->idx] = c->e;
			continue;
		}
		if (done[i] || dlvm_uuid_is_zero(c->mda.hdr.vg_uuid))
			continue;
		struct dlvm_vg *vg = NULL;
		struct dlvm_err e = { 0 };
		int lr = load_uuid(cs, nc, c->mda.hdr.vg_uuid, devs, &vg, &e);
		/* every copy of this VG is dealt with now: those of a VG that
		 * does not load carry its error, so none passes for an orphan */
		for (size_t j = i; j < nc; j++) {
			struct cand *d = &cs[j];
			if (d->hdr_r || d->mda_r ||
			    memcmp(d->mda.hdr.vg_uuid, c->mda.hdr.vg_uuid, 16))
				continue;
			done[j] = true;
			if (lr && problems)
				problems[d->idx] = e;
		}
		if (lr)
			continue;
		size_t at = nvg++, f = first_dev(vg, cs, nc);
		for (; at && first[at - 1] > f; at--) {
			vgs[at] = vgs[at - 1];
			first[at] = first[at - 1];
		}
		vgs[at] = vg;
		first[at] = f;
	}
	if (problems) /* a device in a VG reports through its PV (pv->mda.problem) */
		for (size_t i = 0; i < n; i++)
			if (!devs[i])
				problems[i] = (struct dlvm_err){ 0 };
	free(first);
	free(done);
	free(cs);
	*vgs_out = vgs;
	*nvg_out = nvg;
	return 0;
}

int dlvm_vg_load(struct dlvm_dev **devs, size_t n, const char *name, struct dlvm_vg **out,
		 struct dlvm_err *err)
{
	struct cand *cs;
	int k = read_cands(devs, n, &cs), r = -ENOENT;
	uint8_t(*seen)[16] = calloc(n ? n : 1, 16);
	size_t nseen = 0;
	struct dlvm_vg *found = NULL;

	if (k < 0 || !seen) {
		free(seen);
		if (k >= 0)
			free(cs);
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	}
	for (int i = 0; i < k && !found; i++) {
		struct cand *c = &cs[i];
		if (c->hdr_r || c->mda_r || dlvm_uuid_is_zero(c->mda.hdr.vg_uuid))
			continue;
		bool dup = false;
		for (size_t s = 0; s < nseen; s++)
			dup |= !memcmp(seen[s], c->mda.hdr.vg_uuid, 16);
		if (dup)
			continue;
		memcpy(seen[nseen++], c->mda.hdr.vg_uuid, 16);
		/* Try on a scratch copy so a non-matching VG leaves devs alone. */
		struct dlvm_dev **tmp = calloc(n, sizeof(*tmp));
		struct dlvm_vg *vg = NULL;
		struct dlvm_err e = { 0 };
		if (!tmp) {
			r = dlvm_err_set(err, -ENOMEM, "out of memory");
			break;
		}
		memcpy(tmp, devs, n * sizeof(*tmp));
		int lr = load_uuid(cs, (size_t)k, c->mda.hdr.vg_uuid, tmp, &vg, &e);
		if (lr) {
			if (!name) {
				r = dlvm_err_set(err, lr, "%s", e.msg);
				free(tmp);
				break;
			}
			r = lr == -ENOENT ? r : dlvm_err_set(err, lr, "%s", e.msg);
			free(tmp);
			continue;
		}
		if (!name || !strcmp(vg->info.name, name)) {
			memcpy(devs, tmp, n * sizeof(*tmp));
			found = vg;
		} else {
			for (size_t p = 0; p < vg->npv; p++)
				vg->pvs[p]->dev = NULL;
			dlvm_vg_free(vg);
		}
		free(tmp);
	}
	free(cs);
	free(seen);
	if (found) {
		dlvm_err_clear(err);
		*out = found;
		return 0;
	}
	if (r == -ENOENT)
		return dlvm_err_set(err, -ENOENT, "Volume group \"%s\" not found",
				    name ? name : "");
	return r;
}

/* ---- creation ---- */

void dlvm_vg_create_undo(struct dlvm_dev **devs, size_t n, const struct dlvm_vg_info *info,
			 struct dlvm_err *err)
{
	char held[DLVM_ERR_MSG_MAX] = "";
	struct dlvm_err first = { 0 };
	size_t nheld = 0;

	for (size_t i = 0; i < n; i++) {
		struct dlvm_err e = { 0 };
		struct dlvm_mda m = { 0 };
		if (!dlvm_pv_make_orphan(devs[i], &e))
			continue;
		/* a PV whose header never named the VG holds nothing */
		if (!dlvm_mda_read_header(devs[i], &m, NULL) &&
		    memcmp(m.hdr.vg_uuid, info->uuid, 16))
			continue;
		size_t l = strlen(held);
		snprintf(held + l, sizeof(held) - l, "%s%s", l ? ", " : "", devs[i]->name);
		if (!nheld++)
			first = e;
	}
	if (!nheld || !err)
		return;
	struct dlvm_err why = *err;
	dlvm_err_clear(err);
	dlvm_err_set(err, why.code ? why.code : first.code,
		     "%s; giving the PVs back failed, so "
		     "VG %s is left on %s (%s): vgremove %s removes it",
		     why.msg, info->name, held, first.msg, info->name);
}

int dlvm_vg_create(const char *name, uint64_t extent_size, struct dlvm_dev **devs, size_t n,
		   struct dlvm_vg **out, struct dlvm_err *err)
{
	struct dlvm_vg *vg = dlvm_vg_new();
	struct dlvm_edit e = { .type = DLVM_EDIT_VG_INFO };
	uint8_t *blob = NULL;
	size_t blob_len;
	int r;

	if (!vg)
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	snprintf(e.u.vg.name, sizeof(e.u.vg.name), "%s", name);
	dlvm_uuid_generate(e.u.vg.uuid);
	e.u.vg.extent_size = extent_size;
	e.u.vg.ctime = (uint64_t)time(NULL);
	e.u.vg.next_lv_id = 1;
	e.u.vg.next_pv_id = 1;
	if ((r = dlvm_vg_apply(vg, &e, err)))
		goto fail;
	for (size_t i = 0; i < n; i++) {
		struct dlvm_pv_header ph;
		struct dlvm_mda mda = { 0 };
		if ((r = dlvm_pv_read_header(devs[i], &ph, err)))
			goto fail;
		if ((r = dlvm_mda_read_header(devs[i], &mda, err)))
			goto fail;
		if (!dlvm_uuid_is_zero(mda.hdr.vg_uuid)) {
			r = dlvm_err_set(err, -EBUSY, "%s: already belongs to a volume group",
					 devs[i]->name);
			goto fail;
		}
		struct dlvm_err fe = { 0 };
		if ((r = dlvm_pv_check_ro_compat(devs[i], &ph, &mda, &fe))) {
			r = dlvm_err_set(err, r,
					 "%s: it cannot join a VG (pvcreate -f "
					 "reinitialises it)",
					 fe.msg);
			goto fail;
		}
		uint64_t pe_count = ph.data_size / extent_size;
		if (!pe_count) {
			r = dlvm_err_set(err, -EINVAL,
					 "%s: data area of %" PRIu64 " bytes is smaller "
					 "than one extent",
					 devs[i]->name, ph.data_size);
			goto fail;
		}
		struct dlvm_edit pe = { .type = DLVM_EDIT_PV_ADD };
		pe.u.pv.id = vg->info.next_pv_id;
		memcpy(pe.u.pv.uuid, ph.pv_uuid, 16);
		pe.u.pv.pe_start = ph.data_offset;
		pe.u.pv.pe_count = pe_count;
		pe.u.pv.dev_size = ph.device_size;
		pe.u.pv.sector_size = ph.sector_size;
		if ((r = dlvm_vg_apply(vg, &pe, err)))
			goto fail;
		struct dlvm_pv *pv = vg->pvs[vg->npv - 1];
		pv->dev = devs[i];
		pv->hdr = ph;
		pv->mda = mda;
		pv->mda.valid = true;
	}
	vg->seq = 1;
	if ((r = dlvm_vg_checkpoint_blob(vg, &blob, &blob_len, err)))
		goto fail;
	for (size_t i = 0; i < vg->npv; i++) {
		if ((r = dlvm_mda_write_checkpoint(vg, vg->pvs[i], blob, blob_len, err))) {
			/* give the PVs written so far back to no VG, so a failed
			 * vgcreate leaves no VG behind; this one too: a failed
			 * header write may have landed */
			dlvm_vg_create_undo(devs, i + 1, &vg->info, err);
			goto fail;
		}
	}
	free(blob);
	*out = vg;
	return 0;
fail:
	free(blob);
	for (size_t i = 0; i < vg->npv; i++)
		vg->pvs[i]->dev = NULL; /* still the caller's */
	dlvm_vg_free(vg);
	return r;
}

/* ---- transactions ---- */

void dlvm_txn_init(struct dlvm_txn *t)
{
	memset(t, 0, sizeof(*t));
}

int dlvm_txn_add(struct dlvm_txn *t, struct dlvm_edit *e)
{
	if (t->n == t->cap) {
		size_t ncap = t->cap ? t->cap * 2 : 4;
		struct dlvm_edit *p = realloc(t->edits, ncap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		t->edits = p;
		t->cap = ncap;
	}
	t->edits[t->n++] = *e;
	return 0;
}

void dlvm_txn_release(struct dlvm_txn *t)
{
	for (size_t i = 0; i < t->n; i++)
		dlvm_edit_release(&t->edits[i]);
	free(t->edits);
	memset(t, 0, sizeof(*t));
}

int dlvm_txn_commit_edit(struct dlvm_vg *vg, struct dlvm_edit *e, struct dlvm_err *err)
{
	struct dlvm_txn t;
	int r;

	dlvm_txn_init(&t);
	if (dlvm_txn_add(&t, e)) {
		dlvm_edit_release(e);
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	}
	r = dlvm_txn_commit(vg, &t, err);
	dlvm_txn_release(&t);
	return r;
}
