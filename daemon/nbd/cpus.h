/* SPDX-License-Identifier: MIT */
/*
 * Placing a connection's thread on the CPUs where its devices' I/O
 * completes (cpus.c).
 */
#ifndef DLVMD_NBD_CPUS_H
#define DLVMD_NBD_CPUS_H

struct nbd_conn;

/* Restrict the calling thread, c's, to the CPUs that take the completion
 * interrupts of every device of c->map and that it may run on now, when
 * there are fewer of those; logged the first time in the process. Nothing
 * changes when a device does not tell (a PV on tmpfs, a device without MSI
 * interrupts). */
void nbd_place_thread(struct nbd_conn *c);

#endif
