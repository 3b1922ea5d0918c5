/* SPDX-License-Identifier: MIT */
/*
 * Placing a connection's thread on the CPUs where its devices' I/O
 * completes (cpus.c).
 */
#ifndef DLVMD_NBD_CPUS_H
#define DLVMD_NBD_CPUS_H

#include <sched.h> /* cpu_set_t: the build defines _GNU_SOURCE */
#include <stdbool.h>

#include "dlvm/map.h"

struct nbd_conn;

/* Parse a kernel CPU list ("0-3,8,10-11", a newline may end it) into set.
 * Returns 0, or -EINVAL. */
int nbd_parse_cpulist(const char *s, cpu_set_t *set);

/* The CPUs that take the I/O completion interrupts of every device of m, in
 * set; false when that is not known for each of them (a PV on tmpfs, a
 * device without MSI interrupts). */
bool nbd_map_irq_cpus(const struct dlvm_lv_map *m, cpu_set_t *set);

/* Restrict the calling thread, c's, to the CPUs of nbd_map_irq_cpus(c->map)
 * that it may run on now, when there are fewer of those; logged the first
 * time in the process. */
void nbd_place_thread(struct nbd_conn *c);

#endif
