/* SPDX-License-Identifier: MIT */
/*
 * Reference counts of metadata blocks and data chunks, kept in memory only
 * (rebuilt at open by walk.c), and the allocator on top of them.
 *
 * A block or chunk with count zero is free unless it was freed in the
 * current transaction: the last commit may still use it, so it stays
 * "pending" until the next commit. A commit seals its transaction before it
 * writes it (th_space_seal), and the next transaction starts at once: what
 * the sealed one freed stays pending, apart, until the commit ends. The
 * exception is a metadata block allocated in this transaction: no commit
 * knows it, so it is free again at once.
 *
 * Metadata blocks are handed out lowest first in each transaction; data
 * chunks round robin from where the last one was taken (a scan from chunk 0
 * on every commit would cost a pass over every used chunk).
 */
#include <assert.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "dlvm/util.h"
#include "thin_int.h"

static void *grow_array(void *p, size_t old_bytes, size_t new_bytes)
{
	uint8_t *np = realloc(p, new_bytes ? new_bytes : 1);

	if (np && new_bytes > old_bytes)
		memset(np + old_bytes, 0, new_bytes - old_bytes);
	return np;
}

int th_space_resize(struct dlvm_thin_store *s, uint64_t meta_blocks, uint64_t data_chunks)
{
	uint64_t om = s->mref ? s->sb.meta_blocks : 0, od = s->dref ? s->sb.data_chunks : 0;
	void *p;

	if (meta_blocks > SIZE_MAX / sizeof(uint32_t) || data_chunks > SIZE_MAX / sizeof(uint32_t))
		return -ENOMEM;
	if (!(p = grow_array(s->mref, om * sizeof(uint32_t), meta_blocks * sizeof(uint32_t))))
		return -ENOMEM;
	s->mref = p;
	if (!(p = grow_array(s->mnew, th_bitmap_bytes(om), th_bitmap_bytes(meta_blocks))))
		return -ENOMEM;
	s->mnew = p;
	if (!(p = grow_array(s->mheld, th_bitmap_bytes(om), th_bitmap_bytes(meta_blocks))))
		return -ENOMEM;
	s->mheld = p;
	if (!(p = grow_array(s->mcommit, th_bitmap_bytes(om), th_bitmap_bytes(meta_blocks))))
		return -ENOMEM;
	s->mcommit = p;
	if (!(p = grow_array(s->dref, od * sizeof(uint32_t), data_chunks * sizeof(uint32_t))))
		return -ENOMEM;
	s->dref = p;
	if (!(p = grow_array(s->dheld, th_bitmap_bytes(od), th_bitmap_bytes(data_chunks))))
		return -ENOMEM;
	s->dheld = p;
	if (!(p = grow_array(s->dcommit, th_bitmap_bytes(od), th_bitmap_bytes(data_chunks))))
		return -ENOMEM;
	s->dcommit = p;
	if (!(p = grow_array(s->dcool, th_bitmap_bytes(od), th_bitmap_bytes(data_chunks))))
		return -ENOMEM;
	s->dcool = p;
	if (!(p = grow_array(s->dsealed, th_bitmap_bytes(od), th_bitmap_bytes(data_chunks))))
		return -ENOMEM;
	s->dsealed = p;
	return 0;
}

/* Is free chunk c still cooling? */
static bool cooling(const struct dlvm_thin_store *s, uint64_t c)
{
	return (s->ncool || s->nsealed) && (th_bit(s->dcool, c) || th_bit(s->dsealed, c));
}

void th_space_count(struct dlvm_thin_store *s)
{
	s->mfree = s->dfree = s->mpending = s->dpending = 0;
	for (uint64_t b = TH_FIRST_NODE; b < s->sb.meta_blocks; b++)
		s->mfree += s->mref[b] == 0;
	for (uint64_t c = 0; c < s->sb.data_chunks; c++)
		s->dfree += s->dref[c] == 0;
	s->mcursor = TH_FIRST_NODE;
	s->dcursor = 0;
}

int th_meta_alloc(struct dlvm_thin_store *s, uint64_t *blk, struct dlvm_err *err)
{
	uint64_t n = s->sb.meta_blocks, b = s->mcursor;

	if (s->mfree == 0)
		return dlvm_err_set(err, -ENOSPC,
				    "%s: thin metadata is full (%" PRIu64 " blocks, %" PRIu64
				    " free after the next commit)",
				    s->name, n, s->mpending);
	for (uint64_t i = 0; i < n; i++, b++) {
		if (b >= n)
			b = TH_FIRST_NODE;
		if (b >= TH_FIRST_NODE && s->mref[b] == 0 && !th_bit(s->mheld, b) &&
		    !th_bit(s->mcommit, b)) {
			s->mref[b] = 1;
			th_bit_set(s->mnew, b);
			s->mfree--;
			s->mcursor = b + 1;
			*blk = b;
			return 0;
		}
	}
	assert(!"free metadata block count is wrong");
	return dlvm_err_set(err, -ENOSPC, "%s: thin metadata is full", s->name);
}

void th_meta_inc(struct dlvm_thin_store *s, uint64_t blk)
{
	assert(s->mref[blk] > 0 && s->mref[blk] < UINT32_MAX);
	s->mref[blk]++;
}

bool th_meta_dec(struct dlvm_thin_store *s, uint64_t blk)
{
	assert(s->mref[blk] > 0);
	if (--s->mref[blk])
		return false;
	th_cache_drop(s, blk);
	if (th_bit(s->mnew, blk)) {
		th_bit_clear(s->mnew, blk);
		s->mfree++;
	} else {
		th_bit_set(s->mheld, blk);
		s->mpending++;
	}
	return true;
}

int th_data_alloc(struct dlvm_thin_store *s, uint64_t *chunk, struct dlvm_err *err)
{
	uint64_t n = s->sb.data_chunks, c = s->dcursor;

	if (s->dfree == 0)
		return dlvm_err_set(err, -ENOSPC,
				    "%s: no free data chunk (%" PRIu64 " chunks, %" PRIu64
				    " free after the next commit, %" PRIu64 " cooling)",
				    s->name, n, s->dpending, dlvm_thin_cooling(s));
	for (uint64_t i = 0; i < n; i++, c++) {
		if (c >= n)
			c = 0;
		if (s->dref[c] == 0 && !th_bit(s->dheld, c) && !th_bit(s->dcommit, c) &&
		    !cooling(s, c)) {
			s->dref[c] = 1;
			s->dfree--;
			s->dcursor = c + 1;
			*chunk = c;
			return 0;
		}
	}
	assert(!"free data chunk count is wrong");
	return dlvm_err_set(err, -ENOSPC, "%s: no free data chunk", s->name);
}

uint64_t dlvm_thin_free_run(const struct dlvm_thin_store *s, uint64_t chunk, uint64_t max)
{
	uint64_t n = 0;

	while (n < max && chunk + n < s->sb.data_chunks && s->dref[chunk + n] == 0 &&
	       !th_bit(s->dheld, chunk + n) && !th_bit(s->dcommit, chunk + n) &&
	       !cooling(s, chunk + n))
		n++;
	return n;
}

void th_data_inc(struct dlvm_thin_store *s, uint64_t chunk)
{
	assert(s->dref[chunk] > 0 && s->dref[chunk] < UINT32_MAX);
	s->dref[chunk]++;
}

void th_data_dec(struct dlvm_thin_store *s, uint64_t chunk)
{
	assert(s->dref[chunk] > 0);
	if (--s->dref[chunk])
		return;
	th_bit_set(s->dheld, chunk);
	s->dpending++;
}

/* The runs of chunks held by the transaction just committed, to the hook. */
static void report_freed(struct dlvm_thin_store *s)
{
	uint64_t n = s->sb.data_chunks, words = (n + 63) / 64, start = 0;
	bool in_run = false;

	if (!s->freed || !s->dpending_c)
		return;
	for (uint64_t w = 0; w < words; w++) {
		uint64_t bits = s->dcommit[w];
		if (!bits && !in_run)
			continue;
		if (bits == ~0ull && in_run)
			continue;
		for (uint64_t c = w * 64; c < DLVM_MIN(n, w * 64 + 64); c++) {
			bool held = bits >> (c % 64) & 1;
			if (held && !in_run) {
				start = c;
				in_run = true;
			} else if (!held && in_run) {
				s->freed(s->freed_arg, start, c - start);
				in_run = false;
			}
		}
	}
	if (in_run)
		s->freed(s->freed_arg, start, n - start);
}

void dlvm_thin_set_freed_hook(struct dlvm_thin_store *s, dlvm_thin_freed_fn fn, void *arg)
{
	s->freed = fn;
	s->freed_arg = arg;
}

void th_space_seal(struct dlvm_thin_store *s)
{
	uint64_t *m = s->mcommit, *d = s->dcommit;

	assert(!s->mpending_c && !s->dpending_c);
	s->mcommit = s->mheld;
	s->mheld = m;
	s->dcommit = s->dheld;
	s->dheld = d;
	s->mpending_c = s->mpending;
	s->dpending_c = s->dpending;
	s->mpending = s->dpending = 0;
	/* what the sealed transaction made is referenced by it: from now on a
	 * change copies it */
	memset(s->mnew, 0, th_bitmap_bytes(s->sb.meta_blocks));
	/* each transaction takes the lowest free metadata blocks first: the
	 * metadata stays at the front of its device */
	s->mcursor = TH_FIRST_NODE;
}

void th_space_committed(struct dlvm_thin_store *s)
{
	report_freed(s);
	if (s->cooling && s->dpending_c) {
		for (uint64_t w = 0; w < (s->sb.data_chunks + 63) / 64; w++)
			s->dcool[w] |= s->dcommit[w];
		s->ncool += s->dpending_c;
	} else {
		s->dfree += s->dpending_c;
	}
	memset(s->dcommit, 0, th_bitmap_bytes(s->sb.data_chunks));
	memset(s->mcommit, 0, th_bitmap_bytes(s->sb.meta_blocks));
	s->mfree += s->mpending_c;
	s->mpending_c = s->dpending_c = 0;
}

void dlvm_thin_set_cooling(struct dlvm_thin_store *s, bool on)
{
	s->cooling = on;
	if (!on) {
		dlvm_thin_cool_seal(s);
		dlvm_thin_cool_release(s);
	}
}

uint64_t dlvm_thin_cooling(const struct dlvm_thin_store *s)
{
	return s->ncool + s->nsealed;
}

void dlvm_thin_cool_seal(struct dlvm_thin_store *s)
{
	if (!s->ncool)
		return;
	for (uint64_t w = 0; w < (s->sb.data_chunks + 63) / 64; w++) {
		s->dsealed[w] |= s->dcool[w];
		s->dcool[w] = 0;
	}
	s->nsealed += s->ncool;
	s->ncool = 0;
}

uint64_t dlvm_thin_cool_release(struct dlvm_thin_store *s)
{
	uint64_t n = s->nsealed;

	if (!n)
		return 0;
	memset(s->dsealed, 0, th_bitmap_bytes(s->sb.data_chunks));
	s->dfree += n;
	s->nsealed = 0;
	return n;
}
