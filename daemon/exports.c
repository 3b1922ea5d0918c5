/* SPDX-License-Identifier: MIT */
/*
 * The exports table: a list of entries under one mutex, indexed by name
 * (every lvcreate, lvs row and activation looks an export up, so lookups must
 * not grow with the number of LVs); the data path never takes the table lock.
 *
 * An entry removed with force leaves the list at once (new clients can no
 * longer find it, and the name can be reused) but lives until its last client
 * has detached, because connections hold its rmw_lock.
 */
#include "daemon/exports.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/nbd/attach.h"
#include "lib/util/hmap.h"

struct dlvm_export {
	char name[2 * DLVM_NAME_MAX + 2]; /* "VG/LV" */
	struct dlvm_lv_map *map;
	/* the permission of the map last set: open connections read it at
	 * every request, so that a switch reaches them (their map is older) */
	atomic_bool readonly;
	pthread_mutex_t rmw_lock;
	struct dlvm_export_client *clients;
	unsigned nclients;
	struct dlvm_export *next, *prev;
};

struct dlvm_exports {
	pthread_mutex_t lock;
	pthread_cond_t detached;
	struct dlvm_export *head;
	struct dlvm_hmap by_name;
};

struct dlvm_exports *dlvm_exports_new(void)
{
	struct dlvm_exports *ex = calloc(1, sizeof(*ex));

	if (!ex)
		return NULL;
	pthread_mutex_init(&ex->lock, NULL);
	pthread_cond_init(&ex->detached, NULL);
	dlvm_hmap_init_str(&ex->by_name, offsetof(struct dlvm_export, name));
	return ex;
}

static void export_free(struct dlvm_export *e)
{
	dlvm_lv_map_put(e->map);
	pthread_mutex_destroy(&e->rmw_lock);
	free(e);
}

void dlvm_exports_free(struct dlvm_exports *ex)
{
	if (!ex)
		return;
	while (ex->head) {
		struct dlvm_export *e = ex->head;
		ex->head = e->next;
		export_free(e);
	}
	dlvm_hmap_release(&ex->by_name);
	pthread_cond_destroy(&ex->detached);
	pthread_mutex_destroy(&ex->lock);
	free(ex);
}

/* With ex->lock held. */
static struct dlvm_export **find(struct dlvm_exports *ex, const char *name)
{
	struct dlvm_export *e = dlvm_hmap_find_str(&ex->by_name, name);

	if (!e)
		return NULL;
	return e->prev ? &e->prev->next : &ex->head;
}

/* With ex->lock held: take e out of the list and the index. */
static void unlink_export(struct dlvm_exports *ex, struct dlvm_export *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		ex->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	e->next = e->prev = NULL;
	dlvm_hmap_remove(&ex->by_name, e);
}

int dlvm_exports_set(struct dlvm_exports *ex, const char *name, struct dlvm_lv_map *map)
{
	struct dlvm_export **pp, *e;
	int ret = 0;

	if (!name || !*name || !map)
		return -EINVAL;
	if (strlen(name) >= sizeof(((struct dlvm_export *)0)->name))
		return -ENAMETOOLONG;
	pthread_mutex_lock(&ex->lock);
	pp = find(ex, name);
	if (pp) {
		struct dlvm_lv_map *old = (*pp)->map;
		(*pp)->map = dlvm_lv_map_get(map);
		atomic_store(&(*pp)->readonly, map->readonly);
		dlvm_lv_map_put(old);
		goto out;
	}
	e = calloc(1, sizeof(*e));
	if (!e) {
		ret = -ENOMEM;
		goto out;
	}
	snprintf(e->name, sizeof(e->name), "%s", name);
	if (dlvm_hmap_insert(&ex->by_name, e)) {
		free(e);
		ret = -ENOMEM;
		goto out;
	}
	e->map = dlvm_lv_map_get(map);
	atomic_init(&e->readonly, map->readonly);
	pthread_mutex_init(&e->rmw_lock, NULL);
	e->next = ex->head;
	if (ex->head)
		ex->head->prev = e;
	ex->head = e;
out:
	pthread_mutex_unlock(&ex->lock);
	return ret;
}

int dlvm_exports_remove(struct dlvm_exports *ex, const char *name, bool force)
{
	struct dlvm_export **pp, *e;
	int ret = 0;

	pthread_mutex_lock(&ex->lock);
	pp = find(ex, name);
	if (!pp) {
		ret = -ENOENT;
		goto out;
	}
	e = *pp;
	if (e->nclients && !force) {
		ret = -EBUSY;
		goto out;
	}
	unlink_export(ex, e);
	for (struct dlvm_export_client *c = e->clients; c; c = c->next)
		c->kick(c);
	while (e->nclients)
		pthread_cond_wait(&ex->detached, &ex->lock);
	export_free(e);
out:
	pthread_mutex_unlock(&ex->lock);
	return ret;
}

int dlvm_exports_rename(struct dlvm_exports *ex, const char *old_name, const char *new_name)
{
	struct dlvm_export **pp, *e;
	int ret = 0;

	if (!new_name || !*new_name)
		return -EINVAL;
	if (strlen(new_name) >= sizeof(((struct dlvm_export *)0)->name))
		return -ENAMETOOLONG;
	pthread_mutex_lock(&ex->lock);
	pp = find(ex, old_name);
	if (!pp) {
		ret = -ENOENT;
		goto out;
	}
	if (find(ex, new_name)) {
		ret = -EEXIST;
		goto out;
	}
	e = *pp;
	dlvm_hmap_remove(&ex->by_name, e);
	snprintf(e->name, sizeof(e->name), "%s", new_name);
	if (dlvm_hmap_insert(&ex->by_name, e)) {
		/* cannot index it: drop it from the list too, never half-known */
		unlink_export(ex, e);
		ret = -ENOMEM;
	}
out:
	pthread_mutex_unlock(&ex->lock);
	return ret;
}

bool dlvm_export_readonly(const struct dlvm_export *e)
{
	return atomic_load(&e->readonly);
}

bool dlvm_exports_has(struct dlvm_exports *ex, const char *name)
{
	bool has;

	pthread_mutex_lock(&ex->lock);
	has = find(ex, name) != NULL;
	pthread_mutex_unlock(&ex->lock);
	return has;
}

unsigned dlvm_exports_clients(struct dlvm_exports *ex, const char *name)
{
	struct dlvm_export **pp;
	unsigned n = 0;

	pthread_mutex_lock(&ex->lock);
	pp = find(ex, name);
	if (pp)
		n = (*pp)->nclients;
	pthread_mutex_unlock(&ex->lock);
	return n;
}

int dlvm_exports_attach(struct dlvm_exports *ex, const char *name, struct dlvm_export_client *c,
			struct dlvm_lv_map **map, pthread_mutex_t **rmw_lock)
{
	struct dlvm_export **pp, *e;
	int ret = 0;

	pthread_mutex_lock(&ex->lock);
	pp = find(ex, name);
	if (!pp) {
		ret = -ENOENT;
		goto out;
	}
	e = *pp;
	c->exp = e;
	c->prev = NULL;
	c->next = e->clients;
	if (e->clients)
		e->clients->prev = c;
	e->clients = c;
	e->nclients++;
	*map = dlvm_lv_map_get(e->map);
	*rmw_lock = &e->rmw_lock;
out:
	pthread_mutex_unlock(&ex->lock);
	return ret;
}

void dlvm_exports_detach(struct dlvm_exports *ex, struct dlvm_export_client *c)
{
	struct dlvm_export *e = c->exp;

	pthread_mutex_lock(&ex->lock);
	if (c->prev)
		c->prev->next = c->next;
	else
		e->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	e->nclients--;
	c->exp = NULL;
	pthread_cond_broadcast(&ex->detached);
	pthread_mutex_unlock(&ex->lock);
}

struct dlvm_lv_map *dlvm_exports_map(struct dlvm_exports *ex, const char *name)
{
	struct dlvm_export **pp;
	struct dlvm_lv_map *m = NULL;

	pthread_mutex_lock(&ex->lock);
	pp = find(ex, name);
	if (pp)
		m = dlvm_lv_map_get((*pp)->map);
	pthread_mutex_unlock(&ex->lock);
	return m;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int dlvm_exports_names(struct dlvm_exports *ex, char ***names, size_t *count)
{
	size_t n = 0, bytes = 0;
	char **v, *p;

	pthread_mutex_lock(&ex->lock);
	for (struct dlvm_export *e = ex->head; e; e = e->next) {
		n++;
		bytes += strlen(e->name) + 1;
	}
	v = malloc(n * sizeof(*v) + bytes + 1);
	if (!v) {
		pthread_mutex_unlock(&ex->lock);
		return -ENOMEM;
	}
	p = (char *)(v + n);
	n = 0;
	for (struct dlvm_export *e = ex->head; e; e = e->next) {
		size_t len = strlen(e->name) + 1;
		memcpy(p, e->name, len);
		v[n++] = p;
		p += len;
	}
	pthread_mutex_unlock(&ex->lock);
	qsort(v, n, sizeof(*v), cmp_names);
	*names = v;
	*count = n;
	return 0;
}
