/* SPDX-License-Identifier: MIT */
/*
 * Thin devices: the device tree (id -> root of the mapping tree, counts,
 * flags) and the calls of the data path on the mapping trees.
 *
 * Every change first checks what can fail without harm (the device exists,
 * enough free chunks and metadata blocks for the worst case) and only then
 * changes anything; an error after that point (damage, I/O) makes the store
 * refuse further changes, since the trees in memory may be half changed.
 */
#include <inttypes.h>
#include <string.h>

#include "dlvm/util.h"
#include "thin_int.h"

int th_dev_find(struct dlvm_thin_store *s, uint64_t id, struct th_devrec *rec, struct dlvm_err *err)
{
	bool found;
	int r;

	if (id > DLVM_THIN_MAX_ID)
		return dlvm_err_set(err, -ENOENT, "%s: thin device %" PRIu64 " does not exist",
				    s->name, id);
	r = th_btree_lookup(s, s->sb.dev_root, TH_TREE_DEV, id, &found, NULL, rec, NULL, err);
	if (r)
		return r;
	if (!found)
		return dlvm_err_set(err, -ENOENT, "%s: thin device %" PRIu64 " does not exist",
				    s->name, id);
	return 0;
}

/* Refuse with -ENOSPC unless the worst case of one change to the device tree
 * (plus `extra` blocks) and, with map_root, one to that mapping tree fits. */
static int reserve(struct dlvm_thin_store *s, uint64_t map_root, uint64_t extra,
		   struct dlvm_err *err)
{
	unsigned dd, md = 0;
	int r;

	if ((r = th_tree_depth(s, s->sb.dev_root, TH_TREE_DEV, &dd, err)))
		return r;
	if (map_root && (r = th_tree_depth(s, map_root, TH_TREE_MAP, &md, err)))
		return r;
	uint64_t need = th_insert_cost(dd) + extra + (map_root ? th_insert_cost(md) : 0);
	if (th_meta_avail(s) < need)
		return dlvm_err_set(err, -ENOSPC,
				    "%s: thin metadata is full: %" PRIu64 " free "
				    "blocks, the change may need %" PRIu64 " (%" PRIu64 " more are "
				    "free after the next commit)",
				    s->name, th_meta_avail(s), need, s->mpending + s->mpending_c);
	return 0;
}

static int dev_store(struct dlvm_thin_store *s, uint64_t id, const struct th_devrec *rec,
		     struct dlvm_err *err)
{
	struct th_devrec old;
	bool had;

	return th_btree_insert(s, &s->sb.dev_root, TH_TREE_DEV, id, 0, rec, &had, NULL, &old, err);
}

static int check_id(struct dlvm_thin_store *s, uint64_t id, struct dlvm_err *err)
{
	if (id > DLVM_THIN_MAX_ID)
		return dlvm_err_set(err, -EINVAL,
				    "%s: thin device id %" PRIu64 " is above %" PRIu64, s->name, id,
				    (uint64_t)DLVM_THIN_MAX_ID);
	return 0;
}

/* -EEXIST when id is taken. */
static int check_free_id(struct dlvm_thin_store *s, uint64_t id, struct dlvm_err *err)
{
	struct th_devrec rec;
	bool found;
	int r;

	if ((r = check_id(s, id, err)))
		return r;
	r = th_btree_lookup(s, s->sb.dev_root, TH_TREE_DEV, id, &found, NULL, &rec, NULL, err);
	if (!r && found)
		r = dlvm_err_set(err, -EEXIST, "%s: thin device %" PRIu64 " exists", s->name, id);
	return r;
}

int dlvm_thin_create(struct dlvm_thin_store *s, uint64_t id, uint32_t flags, struct dlvm_err *err)
{
	struct th_cnode *c;
	int r;

	if ((r = th_writable(s, err)) || (r = check_free_id(s, id, err)))
		return r;
	if (flags & ~DLVM_THIN_DEV_READONLY)
		return dlvm_err_set(err, -EINVAL,
				    "%s: thin device %" PRIu64 ": flags 0x%x cannot "
				    "be set",
				    s->name, id, flags);
	if ((r = reserve(s, 0, 1, err)))
		return r;
	if ((r = th_node_new(s, TH_TREE_MAP, 0, &c, err)))
		return th_fail(s, r, err);
	struct th_devrec rec = { .root = c->n.blocknr,
				 .created_txn = s->sb.txn + 1,
				 .flags = flags };
	th_node_put(s, c);
	s->changed = true;
	if ((r = dev_store(s, id, &rec, err)))
		return th_fail(s, r, err);
	s->sb.ndevs++;
	return 0;
}

int dlvm_thin_snapshot(struct dlvm_thin_store *s, uint64_t origin, uint64_t id, uint32_t flags,
		       struct dlvm_err *err)
{
	struct th_devrec o;
	int r;

	if ((r = th_writable(s, err)) || (r = th_dev_find(s, origin, &o, err)) ||
	    (r = check_free_id(s, id, err)))
		return r;
	if (flags & ~DLVM_THIN_DEV_READONLY)
		return dlvm_err_set(err, -EINVAL,
				    "%s: thin device %" PRIu64 ": flags 0x%x cannot "
				    "be set",
				    s->name, id, flags);
	if (s->mref[o.root] >= UINT32_MAX - 1)
		return dlvm_err_set(err, -ENOSPC,
				    "%s: thin device %" PRIu64 " has too many "
				    "snapshots",
				    s->name, origin);
	if ((r = reserve(s, 0, 0, err)))
		return r;
	struct th_devrec rec = { .root = o.root,
				 .mapped = o.mapped,
				 .created_txn = s->sb.txn + 1,
				 .snapshot_of = origin,
				 .flags = flags | DLVM_THIN_DEV_SNAPSHOT };
	th_meta_inc(s, o.root);
	s->changed = true;
	if ((r = dev_store(s, id, &rec, err)))
		return th_fail(s, r, err);
	s->sb.ndevs++;
	return 0;
}

int dlvm_thin_delete(struct dlvm_thin_store *s, uint64_t id, struct dlvm_err *err)
{
	struct th_devrec rec;
	uint64_t removed, next;
	int r;

	if ((r = th_writable(s, err)) || (r = th_dev_find(s, id, &rec, err)) ||
	    (r = reserve(s, 0, 0, err)))
		return r;
	s->changed = true;
	r = th_btree_remove_step(s, &s->sb.dev_root, TH_TREE_DEV, id, id, NULL, NULL, &removed,
				 &next, err);
	if (!r && removed != 1)
		r = dlvm_err_set(err, -EBADMSG,
				 "%s: thin device %" PRIu64 " vanished from the "
				 "device tree",
				 s->name, id);
	if (r)
		return th_fail(s, r, err);
	s->sb.ndevs--;
	if ((r = th_tree_release(s, rec.root, TH_TREE_MAP, -1, err)))
		return th_fail(s, r, err);
	return 0;
}

int dlvm_thin_set_flags(struct dlvm_thin_store *s, uint64_t id, uint32_t flags,
			struct dlvm_err *err)
{
	struct th_devrec rec;
	int r;

	if ((r = th_writable(s, err)) || (r = th_dev_find(s, id, &rec, err)))
		return r;
	if (flags & ~DLVM_THIN_DEV_READONLY)
		return dlvm_err_set(err, -EINVAL,
				    "%s: thin device %" PRIu64 ": flags 0x%x cannot "
				    "be set",
				    s->name, id, flags);
	uint32_t nf = (rec.flags & ~DLVM_THIN_DEV_READONLY) | flags;
	if (nf == rec.flags)
		return 0;
	if ((r = reserve(s, 0, 0, err)))
		return r;
	rec.flags = nf;
	s->changed = true;
	if ((r = dev_store(s, id, &rec, err)))
		return th_fail(s, r, err);
	return 0;
}

int dlvm_thin_info(struct dlvm_thin_store *s, uint64_t id, struct dlvm_thin_dev_info *out,
		   struct dlvm_err *err)
{
	struct th_devrec rec;
	int r = th_dev_find(s, id, &rec, err);

	if (r)
		return r;
	*out = (struct dlvm_thin_dev_info){ .id = id,
					    .mapped = rec.mapped,
					    .created_txn = rec.created_txn,
					    .snapshot_of = rec.snapshot_of,
					    .flags = rec.flags };
	return 0;
}

int dlvm_thin_next_dev(struct dlvm_thin_store *s, uint64_t from, uint64_t *id, struct dlvm_err *err)
{
	*id = DLVM_THIN_NONE;
	if (from > DLVM_THIN_MAX_ID)
		return 0;
	return th_btree_next(s, s->sb.dev_root, TH_TREE_DEV, from, id, NULL, NULL, err);
}

static int check_vchunk(struct dlvm_thin_store *s, uint64_t vchunk, struct dlvm_err *err)
{
	if (vchunk > DLVM_THIN_MAX_ID)
		return dlvm_err_set(err, -EINVAL, "%s: virtual chunk %" PRIu64 " is above %" PRIu64,
				    s->name, vchunk, (uint64_t)DLVM_THIN_MAX_ID);
	return 0;
}

bool dlvm_thin_tracks_unwritten(const struct dlvm_thin_store *s)
{
	return s->sb.incompat & TH_INCOMPAT_UNWRITTEN;
}

int dlvm_thin_lookup_mapping(struct dlvm_thin_store *s, uint64_t id, uint64_t vchunk,
			     struct dlvm_thin_mapping *m, struct dlvm_err *err)
{
	struct th_devrec rec;
	bool found, sh;
	uint64_t v;
	int r;

	*m = (struct dlvm_thin_mapping){ .chunk = DLVM_THIN_NONE, .copy_from = DLVM_THIN_NONE };
	if ((r = check_vchunk(s, vchunk, err)) || (r = th_dev_find(s, id, &rec, err)))
		return r;
	r = th_btree_lookup(s, rec.root, TH_TREE_MAP, vchunk, &found, &v, NULL, &sh, err);
	if (r || !found)
		return r;
	m->chunk = th_map_chunk(v);
	m->unwritten = th_map_unwritten(v);
	m->shared = sh || s->dref[m->chunk] > 1;
	return 0;
}

int dlvm_thin_lookup(struct dlvm_thin_store *s, uint64_t id, uint64_t vchunk, uint64_t *chunk,
		     bool *shared, struct dlvm_err *err)
{
	struct dlvm_thin_mapping m;
	int r = dlvm_thin_lookup_mapping(s, id, vchunk, &m, err);

	*chunk = m.chunk;
	if (shared)
		*shared = m.shared;
	return r;
}

int dlvm_thin_provision_mapping(struct dlvm_thin_store *s, uint64_t id, uint64_t vchunk,
				uint16_t unwritten, struct dlvm_thin_mapping *m,
				struct dlvm_err *err)
{
	struct th_devrec rec, old_rec;
	uint64_t cur, fresh, old;
	bool shared, had;
	int r;

	*m = (struct dlvm_thin_mapping){ .chunk = DLVM_THIN_NONE, .copy_from = DLVM_THIN_NONE };
	if ((r = th_writable(s, err)) || (r = check_vchunk(s, vchunk, err)) ||
	    (r = th_dev_find(s, id, &rec, err)))
		return r;
	if (rec.flags & DLVM_THIN_DEV_READONLY)
		return dlvm_err_set(err, -EROFS, "%s: thin device %" PRIu64 " is read-only",
				    s->name, id);
	r = th_btree_lookup(s, rec.root, TH_TREE_MAP, vchunk, &had, &cur, NULL, &shared, err);
	if (r)
		return r;
	if (had && !shared && s->dref[th_map_chunk(cur)] == 1) {
		m->chunk = th_map_chunk(cur);
		m->unwritten = th_map_unwritten(cur);
		return 0;
	}
	if (s->dfree == 0)
		return dlvm_err_set(err, -ENOSPC,
				    "%s: no free data chunk for thin device %" PRIu64 " (%" PRIu64
				    " chunks, %" PRIu64 " free after the next commit, %" PRIu64
				    " cooling)",
				    s->name, id, s->sb.data_chunks, s->dpending + s->dpending_c,
				    dlvm_thin_cooling(s));
	if ((r = reserve(s, rec.root, 0, err)))
		return r;
	if ((r = th_data_alloc(s, &fresh, err)))
		return r;
	s->changed = true;
	unwritten &= (uint16_t)th_map_flags_allowed(&s->sb);
	r = th_btree_insert(s, &rec.root, TH_TREE_MAP, vchunk, th_map_value(fresh, unwritten), NULL,
			    &had, &old, &old_rec, err);
	if (r)
		return th_fail(s, r, err);
	if (had)
		th_data_dec(s, th_map_chunk(old));
	else
		rec.mapped++;
	if ((r = dev_store(s, id, &rec, err)))
		return th_fail(s, r, err);
	m->chunk = fresh;
	m->unwritten = unwritten;
	m->is_new = true;
	if (had) {
		m->copy_from = th_map_chunk(old);
		m->from_unwritten = th_map_unwritten(old);
	}
	return 0;
}

int dlvm_thin_provision(struct dlvm_thin_store *s, uint64_t id, uint64_t vchunk, uint64_t *chunk,
			bool *is_new, uint64_t *copy_from, struct dlvm_err *err)
{
	struct dlvm_thin_mapping m;
	int r = dlvm_thin_provision_mapping(s, id, vchunk, 0, &m, err);

	*chunk = m.chunk;
	*is_new = m.is_new;
	if (copy_from)
		*copy_from = m.copy_from;
	return r;
}

int dlvm_thin_set_unwritten(struct dlvm_thin_store *s, uint64_t id, uint64_t vchunk, uint64_t chunk,
			    uint16_t set, uint16_t clear, struct dlvm_err *err)
{
	struct th_devrec rec, old_rec;
	uint64_t cur, old;
	bool found, shared, had;
	int r;

	if ((r = th_writable(s, err)) || (r = check_vchunk(s, vchunk, err)) ||
	    (r = th_dev_find(s, id, &rec, err)))
		return r;
	if (rec.flags & DLVM_THIN_DEV_READONLY)
		return dlvm_err_set(err, -EROFS, "%s: thin device %" PRIu64 " is read-only",
				    s->name, id);
	uint16_t allowed = (uint16_t)th_map_flags_allowed(&s->sb);
	if (!allowed)
		return 0;
	r = th_btree_lookup(s, rec.root, TH_TREE_MAP, vchunk, &found, &cur, NULL, &shared, err);
	if (r || !found || th_map_chunk(cur) != chunk)
		return r;
	uint16_t mask = (uint16_t)((th_map_unwritten(cur) | set) & ~clear & allowed);
	if (mask == th_map_unwritten(cur))
		return 0;
	if ((r = reserve(s, rec.root, 0, err)))
		return r;
	s->changed = true;
	uint64_t root = rec.root;
	r = th_btree_insert(s, &rec.root, TH_TREE_MAP, vchunk, th_map_value(chunk, mask), NULL,
			    &had, &old, &old_rec, err);
	if (r)
		return th_fail(s, r, err);
	/* a path already copied in this transaction changes in place */
	if (rec.root != root && (r = dev_store(s, id, &rec, err)))
		return th_fail(s, r, err);
	return 0;
}

static void chunk_removed(struct dlvm_thin_store *s, uint64_t key, uint64_t val,
			  const struct th_devrec *rec, void *ctx)
{
	(void)key;
	(void)rec;
	(void)ctx;
	th_data_dec(s, th_map_chunk(val));
}

int dlvm_thin_unmap(struct dlvm_thin_store *s, uint64_t id, uint64_t first, uint64_t count,
		    uint64_t *unmapped, struct dlvm_err *err)
{
	struct th_devrec rec;
	uint64_t last, lo = first, total = 0;
	int r;

	if (unmapped)
		*unmapped = 0;
	if ((r = th_writable(s, err)) || (r = check_vchunk(s, first, err)) ||
	    (r = th_dev_find(s, id, &rec, err)))
		return r;
	if (rec.flags & DLVM_THIN_DEV_READONLY)
		return dlvm_err_set(err, -EROFS, "%s: thin device %" PRIu64 " is read-only",
				    s->name, id);
	if (count == 0)
		return 0;
	if (dlvm_add_overflow(first, count - 1, &last) || last > DLVM_THIN_MAX_ID)
		last = DLVM_THIN_MAX_ID;
	while (lo <= last) {
		uint64_t k, n, next;
		if ((r = th_btree_next(s, rec.root, TH_TREE_MAP, lo, &k, NULL, NULL, err)))
			break;
		if (k == DLVM_THIN_NONE || k > last)
			break;
		if ((r = reserve(s, rec.root, 0, err)))
			break;
		s->changed = true;
		r = th_btree_remove_step(s, &rec.root, TH_TREE_MAP, k, last, chunk_removed, NULL,
					 &n, &next, err);
		if (r)
			return th_fail(s, r, err);
		total += n;
		rec.mapped -= n;
		if ((r = dev_store(s, id, &rec, err)))
			return th_fail(s, r, err);
		if (next == DLVM_THIN_NONE)
			break;
		lo = next;
	}
	if (unmapped)
		*unmapped = total;
	return r;
}

int dlvm_thin_next_mapped(struct dlvm_thin_store *s, uint64_t id, uint64_t from, uint64_t *vchunk,
			  uint64_t *chunk, struct dlvm_err *err)
{
	struct th_devrec rec;
	uint64_t v = 0;
	int r;

	*vchunk = DLVM_THIN_NONE;
	if (chunk)
		*chunk = DLVM_THIN_NONE;
	if ((r = th_dev_find(s, id, &rec, err)))
		return r;
	if (from > DLVM_THIN_MAX_ID)
		return 0;
	if ((r = th_btree_next(s, rec.root, TH_TREE_MAP, from, vchunk, &v, NULL, err)))
		return r;
	if (chunk && *vchunk != DLVM_THIN_NONE)
		*chunk = th_map_chunk(v);
	return 0;
}

int dlvm_thin_iterate(struct dlvm_thin_store *s, uint64_t id, uint64_t from, dlvm_thin_map_fn fn,
		      void *ctx, struct dlvm_err *err)
{
	struct th_devrec rec;
	int r;

	if ((r = th_dev_find(s, id, &rec, err)))
		return r;
	if (from > DLVM_THIN_MAX_ID)
		return 0;
	return th_btree_iterate(s, rec.root, TH_TREE_MAP, from, fn, ctx, err);
}
