/* SPDX-License-Identifier: MIT */
/* The input format of tests/fuzz/fuzz_nbd.c, shared with gen_corpus.c,
 * which writes its seeds. The format is described at the top of the
 * harness. */
#ifndef DLVM_FUZZ_NBD_INPUT_H
#define DLVM_FUZZ_NBD_INPUT_H

/* byte 0: the run */
enum {
	M_TRANSMIT = 1 << 0,     /* the transmission phase after the handshake */
	M_TLS = 1 << 1,          /* TLS offered (PSK) */
	M_TLS_REQUIRED = 1 << 2, /* ... and required */
	M_RESTRICTED = 1 << 3,   /* the access rules apply */
	M_TIGHT = 1 << 4,        /* tight buffer limits */
	M_STOP = 1 << 5,         /* the server is stopping */
};

/* byte 1: client flags bits 0-1; CF_UNKNOWN adds bits 2-6 of the byte */
#define CF_UNKNOWN 0x80

/* an option's op byte: bits 0-3 the kind, and these */
enum opt_kind {
	K_EXPORT_NAME, /* a name */
	K_ABORT,
	K_LIST,
	K_STARTTLS,
	K_INFO, /* a name, a count (mod 8), that many info types (mod 6) */
	K_GO,
	K_STRUCTURED,
	K_LIST_META, /* a name, a count (mod 6), that many queries */
	K_SET_META,
	K_UNKNOWN,    /* option number (u32), a count (mod 32) of data bytes, them */
	K_RAW_OPTION, /* magic fixed; option number, length (u32 each), a count, bytes */
	K_RAW_BYTES,  /* a count, that many bytes as they are (bad magic...) */
	K_END,        /* and up: requests follow */
};
#define OP_FUDGE 0x10 /* the length field is off by the signed byte that follows */
#define OP_STAY 0x80  /* after GO or EXPORT_NAME: more options, not requests */

/* a name byte: below NAME_OTHER one of the harness's exports in this
 * order; NAME_OTHER + 1 the default export (""), NAME_OTHER "vg0/nope"; from
 * NAME_RAW the low 6 bits are a count of bytes that follow, the name */
enum {
	N_LV0,
	N_LV1,
	N_STRIPED,
	N_RO,
	N_FENCED,
	N_LIVE,
	NAME_OTHER = 0x10,
	NAME_DEFAULT = 0x11,
	NAME_RAW = 0x40,
};
/* a query byte (meta contexts): below 64, one of base:allocation, base:,
 * qemu:dirty-bitmap:x and "" (mod 4); else a name byte follows */
enum { Q_ALLOCATION, Q_BASE, Q_OTHER, Q_EMPTY, Q_RAW = 0x40 };

/* a request's op byte: bits 0-2 the command, and these */
#define RQ_TYPE_RAW 0x08  /* the command is a u16 that follows instead */
#define RQ_MAGIC_RAW 0x10 /* the magic is a u32 that follows (else fixed up) */
#define RQ_FLAGS 0x20     /* a flags byte follows (else FUA from RQ_FUA) */
#define RQ_SHORT 0x40     /* a write's payload is cut to a u16 that follows */
#define RQ_FUA 0x80
/* then an offset choice byte (bits 0-2) and its bytes */
enum {
	OFF_0,
	OFF_U16_SECTORS, /* u16 * 512 */
	OFF_U16,
	OFF_END_MINUS_U16, /* 1 MiB - u16 */
	OFF_END,           /* 1 MiB */
	OFF_U64,
	OFF_MAX_MINUS_U16, /* UINT64_MAX - u16 */
	OFF_U8_PAGES,      /* u8 * 4096 */
};
/* then a length choice byte (bits 0-3) and its bytes */
enum {
	LEN_0,
	LEN_1,
	LEN_512,
	LEN_4K,
	LEN_64K,
	LEN_64K_1,
	LEN_256K,
	LEN_256K_1,
	LEN_1M,
	LEN_U16,
	LEN_U16_SECTORS,
	LEN_MAX_PAYLOAD,
	LEN_MAX_PAYLOAD_1,
	LEN_DISCARD_MAX_1,
	LEN_U32_MAX,
	LEN_U32,
};

#endif
