/* SPDX-License-Identifier: MIT */
#include "hmap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define TOMB ((void *)1)

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ull;
	return h;
}

static uint64_t hash_u64(uint64_t v)
{
	v ^= v >> 33;
	v *= 0xff51afd7ed558ccdull;
	v ^= v >> 33;
	return v;
}

static uint64_t obj_hash(const struct dlvm_hmap *h, const void *obj)
{
	const char *k = (const char *)obj + h->key_off;
	if (h->by_str)
		return hash_str(k);
	uint64_t v;
	memcpy(&v, k, sizeof(v));
	return hash_u64(v);
}

void dlvm_hmap_init_str(struct dlvm_hmap *h, size_t key_off)
{
	memset(h, 0, sizeof(*h));
	h->by_str = true;
	h->key_off = key_off;
}

void dlvm_hmap_init_u64(struct dlvm_hmap *h, size_t key_off)
{
	memset(h, 0, sizeof(*h));
	h->key_off = key_off;
}

void dlvm_hmap_release(struct dlvm_hmap *h)
{
	free(h->slots);
	h->slots = NULL;
	h->cap = h->count = h->tombs = 0;
}

static int grow(struct dlvm_hmap *h)
{
	size_t ncap = h->cap ? h->cap * 2 : 64;
	void **old = h->slots;
	size_t ocap = h->cap;

	if ((h->count + 1) * 4 < h->cap) /* mostly tombstones: rehash at same size */
		ncap = h->cap;
	h->slots = calloc(ncap, sizeof(void *));
	if (!h->slots) {
		h->slots = old;
		return -ENOMEM;
	}
	h->cap = ncap;
	h->tombs = 0;
	for (size_t i = 0; i < ocap; i++) {
		if (old[i] && old[i] != TOMB) {
			size_t j = obj_hash(h, old[i]) & (ncap - 1);
			while (h->slots[j])
				j = (j + 1) & (ncap - 1);
			h->slots[j] = old[i];
		}
	}
	free(old);
	return 0;
}

int dlvm_hmap_insert(struct dlvm_hmap *h, void *obj)
{
	if ((h->count + h->tombs + 1) * 4 >= h->cap * 3) {
		int r = grow(h);
		if (r)
			return r;
	}
	size_t j = obj_hash(h, obj) & (h->cap - 1);
	while (h->slots[j] && h->slots[j] != TOMB)
		j = (j + 1) & (h->cap - 1);
	if (h->slots[j] == TOMB)
		h->tombs--;
	h->slots[j] = obj;
	h->count++;
	return 0;
}

void dlvm_hmap_remove(struct dlvm_hmap *h, void *obj)
{
	if (!h->cap)
		return;
	size_t j = obj_hash(h, obj) & (h->cap - 1);
	while (h->slots[j]) {
		if (h->slots[j] == obj) {
			h->slots[j] = TOMB;
			h->count--;
			h->tombs++;
			return;
		}
		j = (j + 1) & (h->cap - 1);
	}
}

void *dlvm_hmap_find_str(const struct dlvm_hmap *h, const char *key)
{
	if (!h->cap)
		return NULL;
	size_t j = hash_str(key) & (h->cap - 1);
	while (h->slots[j]) {
		if (h->slots[j] != TOMB && !strcmp((const char *)h->slots[j] + h->key_off, key))
			return h->slots[j];
		j = (j + 1) & (h->cap - 1);
	}
	return NULL;
}

void *dlvm_hmap_find_u64(const struct dlvm_hmap *h, uint64_t key)
{
	if (!h->cap)
		return NULL;
	size_t j = hash_u64(key) & (h->cap - 1);
	while (h->slots[j]) {
		if (h->slots[j] != TOMB) {
			uint64_t v;
			memcpy(&v, (const char *)h->slots[j] + h->key_off, sizeof(v));
			if (v == key)
				return h->slots[j];
		}
		j = (j + 1) & (h->cap - 1);
	}
	return NULL;
}
