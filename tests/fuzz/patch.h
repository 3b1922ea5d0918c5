/* SPDX-License-Identifier: MIT */
/* The input format the decoder harnesses share: a pristine image patched by
 * the fuzzer. The input is a list of patches, each an offset of off_bytes
 * bytes (little-endian, taken modulo reach), a length byte and that many
 * bytes to write there; a patch that runs past the input or the image is
 * cut short. The harness then fixes up checksums (or not, as its first byte
 * says), so that the structural checks behind them are reached. */
#ifndef DLVM_FUZZ_PATCH_H
#define DLVM_FUZZ_PATCH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline void fuzz_patch(uint8_t *img, size_t img_size, size_t reach, unsigned off_bytes,
			      const uint8_t *data, size_t size)
{
	size_t p = 0;

	while (p + off_bytes + 1 <= size) {
		uint64_t off = 0;
		for (unsigned i = 0; i < off_bytes; i++)
			off |= (uint64_t)data[p + i] << (8 * i);
		off %= reach;
		size_t len = data[p + off_bytes];
		p += off_bytes + 1;
		if (len > size - p)
			len = size - p;
		if (len > img_size - off)
			len = img_size - off;
		memcpy(img + off, data + p, len);
		p += len;
	}
}

#endif
