/* SPDX-License-Identifier: MIT */
/* Field offsets of the lease area records of lib/lease/codec.c, in bytes
 * from the start of each 512-byte structure. docs/format/lease.md documents
 * them, and tests/unit/test_format_spec.c checks that it does so truly. */
#ifndef DLVM_LEASE_LAYOUT_H
#define DLVM_LEASE_LAYOUT_H

/* common prefix of every record */
enum { R_MAGIC = 0, R_MAJOR = 8, R_MINOR = 10, R_SIZE = 12, R_CRC = 508 };

/* area header */
enum {
	AH_COMPAT = 16,
	AH_RO_COMPAT = 24,
	AH_INCOMPAT = 32,
	AH_VG_UUID = 40,
	AH_SECTOR = 56,
	AH_MAX_HOSTS = 60,
	AH_NRES = 64,
	AH_IO_TIMEOUT = 68,
	AH_AREA_SIZE = 72,
	AH_LS_OFF = 80,
	AH_LS_SIZE = 88,
	AH_RES_OFF = 96,
	AH_RES_STRIDE = 104,
	AH_END = 112,
};

/* delta lease */
enum {
	DL_HOST_ID = 16,
	DL_IO_TIMEOUT = 20,
	DL_GEN = 24,
	DL_TS = 32,
	DL_VG_UUID = 40,
	DL_NAME = 56,
	DL_NAME_LEN = 64,
	DL_END = 120,
};

/* paxos leader */
enum {
	PL_RES = 16,
	PL_OWNER = 20,
	PL_OWNER_GEN = 24,
	PL_LVER = 32,
	PL_TS = 40,
	PL_VG_UUID = 48,
	PL_WRITER = 64,
	PL_MAX_HOSTS = 68,
	PL_END = 72,
};

/* paxos dblock */
enum {
	DB_HOST_ID = 16,
	DB_FLAGS = 20,
	DB_LVER = 24,
	DB_MBAL = 32,
	DB_BAL = 40,
	DB_INP_ID = 48,
	DB_RSVD = 52,
	DB_INP_GEN = 56,
	DB_INP_TS = 64,
	DB_SHARED_GEN = 72,
	DB_END = 80,
};

#endif
