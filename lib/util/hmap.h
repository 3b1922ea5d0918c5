/* SPDX-License-Identifier: MIT */
/* Open-addressing hash sets of pointers, keyed by a string or a u64 that the
 * caller's objects carry. Used for LV lookup by name and by id. */
#ifndef DLVM_HMAP_H
#define DLVM_HMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dlvm_hmap {
	void **slots;
	size_t cap, count, tombs;
	bool by_str;    /* key is a string at key_off, else a u64 */
	size_t key_off; /* offset of the key inside the object */
};

void dlvm_hmap_init_str(struct dlvm_hmap *h, size_t key_off);
void dlvm_hmap_init_u64(struct dlvm_hmap *h, size_t key_off);
void dlvm_hmap_release(struct dlvm_hmap *h);
/* Insert obj (its key must not be present). 0 or -ENOMEM. */
int dlvm_hmap_insert(struct dlvm_hmap *h, void *obj);
/* Remove obj (by identity). */
void dlvm_hmap_remove(struct dlvm_hmap *h, void *obj);
void *dlvm_hmap_find_str(const struct dlvm_hmap *h, const char *key);
void *dlvm_hmap_find_u64(const struct dlvm_hmap *h, uint64_t key);

#endif
