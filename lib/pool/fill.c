/* SPDX-License-Identifier: MIT */
/* Fills in flight: an open-addressing table keyed by data chunk, linear
 * probing, entries removed by shifting back the ones after them. */
#include "fill.h"

#include <stdlib.h>

#include "dlvm/thin.h"

#define FILL_CAP 512u /* a power of two */
#define FILL_LIVE_MAX (FILL_CAP * 3 / 4)
#define SUB_MAX 16

struct fill {
	uint64_t chunk;      /* DLVM_THIN_NONE: a free entry */
	uint32_t n[SUB_MAX]; /* fills in flight per sub-block */
	uint16_t relied;     /* sub-blocks a partial write relies on */
};

struct dlvm_thin_fills {
	unsigned live;
	struct fill e[FILL_CAP];
};

static unsigned home(uint64_t c)
{
	c ^= c >> 33;
	c *= 0xff51afd7ed558ccdull;
	c ^= c >> 33;
	return (unsigned)(c & (FILL_CAP - 1));
}

struct dlvm_thin_fills *dlvm_thin_fills_new(void)
{
	struct dlvm_thin_fills *f = calloc(1, sizeof(*f));

	if (f)
		for (unsigned i = 0; i < FILL_CAP; i++)
			f->e[i].chunk = DLVM_THIN_NONE;
	return f;
}

void dlvm_thin_fills_free(struct dlvm_thin_fills *f)
{
	free(f);
}

static unsigned slot_of(const struct dlvm_thin_fills *f, uint64_t chunk)
{
	unsigned i = home(chunk);

	while (f->e[i].chunk != DLVM_THIN_NONE && f->e[i].chunk != chunk)
		i = (i + 1) & (FILL_CAP - 1);
	return i;
}

bool dlvm_thin_fill_add(struct dlvm_thin_fills *f, uint64_t chunk, uint16_t mask)
{
	struct fill *e = &f->e[slot_of(f, chunk)];

	if (e->chunk == DLVM_THIN_NONE) {
		if (f->live == FILL_LIVE_MAX)
			return false;
		f->live++;
		e->chunk = chunk;
	}
	for (unsigned b = 0; b < SUB_MAX; b++)
		if (mask & (1u << b))
			e->n[b]++;
	return true;
}

uint16_t dlvm_thin_fill_pending(const struct dlvm_thin_fills *f, uint64_t chunk)
{
	const struct fill *e = &f->e[slot_of(f, chunk)];
	uint16_t m = 0;

	if (e->chunk == DLVM_THIN_NONE)
		return 0;
	for (unsigned b = 0; b < SUB_MAX; b++)
		if (e->n[b])
			m |= (uint16_t)(1u << b);
	return m;
}

void dlvm_thin_fill_rely(struct dlvm_thin_fills *f, uint64_t chunk, uint16_t mask)
{
	struct fill *e = &f->e[slot_of(f, chunk)];

	if (e->chunk != DLVM_THIN_NONE)
		e->relied |= mask;
}

/* Free entry i, moving back the entries after it that probing would no
 * longer find. */
static void entry_remove(struct dlvm_thin_fills *f, unsigned i)
{
	unsigned j = i;

	for (;;) {
		j = (j + 1) & (FILL_CAP - 1);
		if (f->e[j].chunk == DLVM_THIN_NONE)
			break;
		unsigned h = home(f->e[j].chunk);
		/* e[j] stays if its home lies cyclically in (i, j] */
		if (i <= j ? (i < h && h <= j) : (i < h || h <= j))
			continue;
		f->e[i] = f->e[j];
		i = j;
	}
	f->e[i] = (struct fill){ .chunk = DLVM_THIN_NONE };
	f->live--;
}

uint16_t dlvm_thin_fill_drop(struct dlvm_thin_fills *f, uint64_t chunk, uint16_t mask)
{
	unsigned i = slot_of(f, chunk);
	struct fill *e = &f->e[i];
	uint16_t ended = 0;
	bool any = false;

	if (e->chunk == DLVM_THIN_NONE)
		return 0;
	for (unsigned b = 0; b < SUB_MAX; b++) {
		if ((mask & (1u << b)) && e->n[b] && --e->n[b] == 0)
			ended |= (uint16_t)(1u << b);
		any |= e->n[b] != 0;
	}
	uint16_t relied = e->relied & ended;
	e->relied &= (uint16_t)~ended;
	if (!any)
		entry_remove(f, i);
	return relied;
}
