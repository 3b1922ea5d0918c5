/* SPDX-License-Identifier: MIT */
/* The thin store as a whole: format, open (pick the superblock, rebuild the
 * reference counts), commit, usage and growth. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dlvm/dev.h"
#include "dlvm/util.h"
#include "thin_int.h"

#define DEFAULT_CACHE_BLOCKS 4096

int th_writable(struct dlvm_thin_store *s, struct dlvm_err *err)
{
	if (s->readonly)
		return dlvm_err_set(err, -EROFS, "%s: thin store is read-only", s->name);
	if (s->failed)
		return dlvm_err_set(err, -EROFS,
				    "%s: thin store refuses changes after an earlier "
				    "error (%s); reopen it to continue from the last commit",
				    s->name, s->why);
	return 0;
}

int th_fail(struct dlvm_thin_store *s, int r, struct dlvm_err *err)
{
	if (!s->failed) {
		s->failed = true;
		snprintf(s->why, sizeof(s->why), "%s", err && err->code ? err->msg : strerror(-r));
	}
	return r;
}

static int write_block(struct dlvm_dev *dev, const void *buf, uint64_t blk, struct dlvm_err *err)
{
	return dlvm_dev_write(dev, buf, TH_BLOCK, blk * TH_BLOCK, err);
}

int dlvm_thin_store_format(struct dlvm_dev *dev, const struct dlvm_thin_format_opts *o,
			   struct dlvm_err *err)
{
	uint64_t dev_blocks = dev->size / TH_BLOCK;
	uint64_t max_mb = DLVM_MIN(dev_blocks, DLVM_THIN_MAX_META_BLOCKS);
	uint64_t mb = o->meta_blocks ? o->meta_blocks : max_mb;
	uint8_t *buf;
	int r;

	if (!dlvm_is_pow2(o->chunk_size) || o->chunk_size < 4096 || o->chunk_size > (1u << 30))
		return dlvm_err_set(err, -EINVAL,
				    "%s: thin chunk size %" PRIu64 " is not a power "
				    "of two from 4 KiB to 1 GiB",
				    dev->name, o->chunk_size);
	if (o->data_chunks == 0 || o->data_chunks > DLVM_THIN_MAX_CHUNKS)
		return dlvm_err_set(err, -EINVAL, "%s: %" PRIu64 " data chunks: not 1 to %" PRIu64,
				    dev->name, o->data_chunks, (uint64_t)DLVM_THIN_MAX_CHUNKS);
	if (mb < TH_FIRST_NODE + 1 || mb > max_mb)
		return dlvm_err_set(err, -EINVAL,
				    "%s: %" PRIu64 " metadata blocks: not 3 to %" PRIu64
				    " (the device holds %" PRIu64 " blocks of 4096 bytes)",
				    dev->name, mb, max_mb, dev_blocks);
	if (!(buf = dlvm_io_alloc(TH_BLOCK)))
		return dlvm_err_set(err, -ENOMEM, "out of memory");

	struct th_sb sb = { .major = TH_MAJOR,
			    .minor = TH_MINOR,
			    .txn = 1,
			    .slot = 0,
			    .chunk_size = o->chunk_size,
			    .data_chunks = o->data_chunks,
			    .meta_blocks = mb,
			    .dev_root = TH_FIRST_NODE,
			    .ndevs = 0,
			    .incompat = o->zero_new ? 0 : TH_INCOMPAT_UNWRITTEN,
			    .ctime = (uint64_t)time(NULL) };
	memcpy(sb.uuid, o->uuid, 16);
	if (dlvm_uuid_is_zero(sb.uuid))
		dlvm_uuid_generate(sb.uuid);
	struct th_node root = { .blocknr = TH_FIRST_NODE, .txn = 1, .type = TH_TREE_DEV };

	/* no slot may survive from an earlier store: it could win by its txn */
	if ((r = write_block(dev, buf, 0, err)) || (r = write_block(dev, buf, 1, err)) ||
	    (r = dlvm_dev_flush(dev, err)))
		goto out;
	th_node_encode(&root, buf);
	if ((r = write_block(dev, buf, TH_FIRST_NODE, err)) || (r = dlvm_dev_flush(dev, err)))
		goto out;
	th_sb_encode(&sb, buf);
	if ((r = write_block(dev, buf, 0, err)) || (r = dlvm_dev_flush(dev, err)))
		goto out;
out:
	free(buf);
	return r;
}

/* Read and decode both slots; pick the valid one with the higher txn. */
static int pick_superblock(struct dlvm_dev *dev, uint8_t *buf, struct th_sb *sb, unsigned *slot,
			   struct dlvm_err *err)
{
	struct dlvm_err e[2] = { { 0 }, { 0 } };
	struct th_sb cand[2];
	int r[2];

	if (dev->size < 2 * (uint64_t)TH_BLOCK)
		return dlvm_err_set(err, -ENODATA,
				    "%s: too small for a thin store (%" PRIu64 " bytes)", dev->name,
				    dev->size);
	for (unsigned i = 0; i < 2; i++) {
		r[i] = dlvm_dev_read(dev, buf, TH_BLOCK, (uint64_t)i * TH_BLOCK, &e[i]);
		if (r[i])
			return dlvm_err_set(err, r[i], "%s", e[i].msg);
		r[i] = th_sb_decode(buf, i, &cand[i], &e[i]);
	}
	if (r[0] && r[1]) {
		if (r[0] == -ENODATA && r[1] == -ENODATA)
			return dlvm_err_set(err, -ENODATA,
					    "%s: no thin store (no superblock magic "
					    "in blocks 0 and 1)",
					    dev->name);
		int code = r[0] == -ENOTSUP || r[1] == -ENOTSUP ? -ENOTSUP : -EBADMSG;
		return dlvm_err_set(err, code, "%s: both superblock slots are unreadable: %s; %s",
				    dev->name, e[0].msg, e[1].msg);
	}
	/* a slot this version cannot read may be the newer commit: opening
	 * the other one would let the next commit overwrite it */
	for (unsigned i = 0; i < 2; i++)
		if (r[i] == -ENOTSUP)
			return dlvm_err_set(err, -ENOTSUP, "%s: superblock slot %u (block %u): %s",
					    dev->name, i, i, e[i].msg);
	*slot = r[0] ? 1 : r[1] ? 0 : cand[1].txn > cand[0].txn ? 1 : 0;
	*sb = cand[*slot];
	if (sb->meta_blocks > dev->size / TH_BLOCK)
		return dlvm_err_set(err, -EBADMSG,
				    "%s: superblock slot %u (block %u): field "
				    "meta_blocks is %" PRIu64 " but the device holds %" PRIu64
				    " blocks",
				    dev->name, *slot, *slot, sb->meta_blocks, dev->size / TH_BLOCK);
	return 0;
}

int dlvm_thin_store_open(struct dlvm_dev *dev, const struct dlvm_thin_open_opts *o,
			 struct dlvm_thin_store **out, struct dlvm_err *err)
{
	struct dlvm_thin_open_opts def = { 0 };
	struct dlvm_thin_store *s;
	int r;

	if (!o)
		o = &def;
	if (!(s = calloc(1, sizeof(*s))))
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	s->dev = dev;
	s->name = dev->name;
	if (th_cache_init(&s->cache, o->cache_blocks ? o->cache_blocks : DEFAULT_CACHE_BLOCKS) ||
	    !(s->iobuf = dlvm_io_alloc(TH_BLOCK))) {
		r = dlvm_err_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	if ((r = pick_superblock(dev, s->iobuf, &s->sb, &s->slot, err)))
		goto fail;
	s->readonly = (o->flags & (DLVM_THIN_RDONLY | DLVM_THIN_SALVAGE)) || dev->readonly ||
		      (s->sb.ro_compat & ~TH_RO_COMPAT_KNOWN);

	struct th_walk w = { .s = s,
			     .dev_root = s->sb.dev_root,
			     .lim = { .meta_blocks = s->sb.meta_blocks,
				      .data_chunks = s->sb.data_chunks,
				      .max_txn = s->sb.txn,
				      .map_flags = th_map_flags_allowed(&s->sb) } };
	r = th_walk_run(&w, err);
	if (!r && w.ndevs != s->sb.ndevs)
		r = dlvm_err_set(err, -EBADMSG,
				 "%s: superblock slot %u: field ndevs is %" PRIu64
				 " but the device tree holds %" PRIu64 " devices",
				 s->name, s->slot, s->sb.ndevs, w.ndevs);
	if (r == -EBADMSG && (o->flags & DLVM_THIN_SALVAGE)) {
		dlvm_err_clear(err);
		s->failed = true;
		snprintf(s->why, sizeof(s->why), "opened to salvage a damaged store");
		r = 0;
	}
	if (r) {
		th_walk_release(&w);
		goto fail;
	}
	s->mref = w.mref;
	s->dref = w.dref;
	w.mref = NULL;
	w.dref = NULL;
	uint64_t mb = s->sb.meta_blocks, dc = s->sb.data_chunks;
	if (!(s->mnew = calloc(1, th_bitmap_bytes(mb))) ||
	    !(s->mheld = calloc(1, th_bitmap_bytes(mb))) ||
	    !(s->mcommit = calloc(1, th_bitmap_bytes(mb))) ||
	    !(s->dheld = calloc(1, th_bitmap_bytes(dc))) ||
	    !(s->dcommit = calloc(1, th_bitmap_bytes(dc))) ||
	    !(s->dcool = calloc(1, th_bitmap_bytes(dc))) ||
	    !(s->dsealed = calloc(1, th_bitmap_bytes(dc)))) {
		r = dlvm_err_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	th_space_count(s);
	*out = s;
	return 0;
fail:
	dlvm_thin_store_close(s);
	return r;
}

void dlvm_thin_store_close(struct dlvm_thin_store *s)
{
	if (!s)
		return;
	th_cache_release(&s->cache);
	free(s->iobuf);
	free(s->mref);
	free(s->mnew);
	free(s->mheld);
	free(s->mcommit);
	free(s->dcommit);
	free(s->dref);
	free(s->dheld);
	free(s->dcool);
	free(s->dsealed);
	free(s);
}

/* The most blocks of a commit that go out in one write. */
#define RUN_BLOCKS 256

struct dlvm_thin_job {
	struct dlvm_dev *dev;
	size_t n;
	uint64_t *blk; /* the sealed transaction's nodes, in block order */
	uint8_t *buf;  /* their encodings, n blocks */
	uint8_t *sb;   /* its superblock, encoded */
	unsigned slot; /* where that goes */
};

static void job_free(struct dlvm_thin_job *j)
{
	if (j) {
		free(j->blk);
		free(j->buf);
		free(j->sb);
		free(j);
	}
}

int dlvm_thin_commit_start(struct dlvm_thin_store *s, struct dlvm_thin_job **out,
			   struct dlvm_err *err)
{
	struct dlvm_thin_job *j;
	int r;

	*out = NULL;
	/* nothing to commit is no change, even for a read-only store */
	if (!s->changed && !s->failed)
		return 0;
	if ((r = th_writable(s, err)))
		return r;
	if (s->committing)
		return dlvm_err_set(err, -EBUSY, "%s: a commit is still being written", s->name);
	if ((j = calloc(1, sizeof(*j))) &&
	    (j->blk = malloc((s->cache.count ? s->cache.count : 1) * sizeof(*j->blk))))
		j->n = th_cache_dirty(s, j->blk);
	if (!j || !j->blk || !(j->buf = dlvm_io_alloc((j->n ? j->n : 1) * TH_BLOCK)) ||
	    !(j->sb = dlvm_io_alloc(TH_BLOCK))) {
		job_free(j);
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	}
	j->dev = s->dev;
	th_cache_seal(s, j->blk, j->n, j->buf);
	struct th_sb sb = s->sb;
	sb.txn++;
	sb.slot = !s->slot;
	th_sb_encode(&sb, j->sb);
	j->slot = sb.slot;
	/* the next transaction builds on this one */
	s->sb = sb;
	s->slot = sb.slot;
	s->changed = false;
	s->committing = true;
	th_space_seal(s);
	*out = j;
	return 0;
}

int dlvm_thin_commit_write(struct dlvm_thin_job *j, struct dlvm_err *err)
{
	struct dlvm_dev_wr *w = malloc((j->n ? j->n : 1) * sizeof(*w));
	size_t nw = 0;
	int r;

	if (!w)
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	/* every run at once: they may lie apart, and none waits for another */
	for (size_t i = 0; i < j->n;) {
		size_t k = 1;
		while (k < RUN_BLOCKS && i + k < j->n && j->blk[i + k] == j->blk[i] + k)
			k++;
		w[nw++] = (struct dlvm_dev_wr){ .buf = j->buf + i * TH_BLOCK,
						.len = k * TH_BLOCK,
						.off = j->blk[i] * TH_BLOCK };
		i += k;
	}
	r = dlvm_dev_write_many(j->dev, w, nw, err);
	free(w);
	if (!r && !(r = dlvm_dev_flush(j->dev, err)) &&
	    !(r = write_block(j->dev, j->sb, j->slot, err)))
		r = dlvm_dev_flush(j->dev, err);
	return r;
}

int dlvm_thin_commit_end(struct dlvm_thin_store *s, struct dlvm_thin_job *j, int r,
			 struct dlvm_err *err)
{
	if (!j)
		return r;
	s->committing = false;
	if (r) {
		/* the device holds the last commit or this one: which, only a
		 * reopen finds out. Nodes of this one stay cached. */
		th_fail(s, r, err);
	} else {
		th_cache_written(s, j->blk, j->n);
		th_space_committed(s);
	}
	job_free(j);
	return r;
}

int dlvm_thin_commit(struct dlvm_thin_store *s, struct dlvm_err *err)
{
	struct dlvm_thin_job *j;
	int r = dlvm_thin_commit_start(s, &j, err);

	if (r || !j)
		return r;
	return dlvm_thin_commit_end(s, j, dlvm_thin_commit_write(j, err), err);
}

bool dlvm_thin_changed(const struct dlvm_thin_store *s)
{
	return s->changed || s->failed;
}

void dlvm_thin_usage(const struct dlvm_thin_store *s, struct dlvm_thin_usage *u)
{
	memset(u, 0, sizeof(*u));
	u->transaction = s->sb.txn;
	u->chunk_size = s->sb.chunk_size;
	u->devices = s->sb.ndevs;
	u->data_chunks = s->sb.data_chunks;
	u->data_free = s->dfree;
	u->data_pending = s->dpending + s->dpending_c + dlvm_thin_cooling(s);
	u->meta_blocks = s->sb.meta_blocks;
	u->meta_free = s->mfree;
	u->meta_pending = s->mpending + s->mpending_c;
	u->readonly = s->readonly || s->failed;
	memcpy(u->uuid, s->sb.uuid, 16);
}

int dlvm_thin_grow_data(struct dlvm_thin_store *s, uint64_t new_count, struct dlvm_err *err)
{
	int r;

	if ((r = th_writable(s, err)))
		return r;
	if (new_count < s->sb.data_chunks || new_count > DLVM_THIN_MAX_CHUNKS)
		return dlvm_err_set(err, -EINVAL,
				    "%s: cannot change the data chunk count from %" PRIu64
				    " to %" PRIu64 " (it only grows, up to %" PRIu64 ")",
				    s->name, s->sb.data_chunks, new_count,
				    (uint64_t)DLVM_THIN_MAX_CHUNKS);
	if ((r = th_space_resize(s, s->sb.meta_blocks, new_count)))
		return dlvm_err_set(err, r, "%s: out of memory for %" PRIu64 " data chunks",
				    s->name, new_count);
	s->dfree += new_count - s->sb.data_chunks;
	s->sb.data_chunks = new_count;
	s->changed = true;
	return 0;
}

int dlvm_thin_grow_meta(struct dlvm_thin_store *s, uint64_t new_count, struct dlvm_err *err)
{
	uint64_t dev_blocks = s->dev->size / TH_BLOCK;
	int r;

	if ((r = th_writable(s, err)))
		return r;
	if (new_count < s->sb.meta_blocks || new_count > dev_blocks ||
	    new_count > DLVM_THIN_MAX_META_BLOCKS)
		return dlvm_err_set(err, -EINVAL,
				    "%s: cannot change the metadata block count from %" PRIu64
				    " to %" PRIu64 " (it only grows, up to the %" PRIu64
				    " blocks of the device)",
				    s->name, s->sb.meta_blocks, new_count,
				    DLVM_MIN(dev_blocks, DLVM_THIN_MAX_META_BLOCKS));
	if ((r = th_space_resize(s, new_count, s->sb.data_chunks)))
		return dlvm_err_set(err, r, "%s: out of memory for %" PRIu64 " metadata blocks",
				    s->name, new_count);
	s->mfree += new_count - s->sb.meta_blocks;
	s->sb.meta_blocks = new_count;
	s->changed = true;
	return 0;
}
