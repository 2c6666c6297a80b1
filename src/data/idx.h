/* IDX files, the array format of MNIST and Fashion-MNIST.
 *
 * Layout (all integers big-endian): two zero bytes, a data-type code, the
 * number of dimensions, one uint32 per dimension, then the elements in
 * row-major order. Files may be gzip-compressed. Only the unsigned-byte type
 * (code 0x08) is supported, which covers images and labels of both data sets. */
#ifndef RN_DATA_IDX_H
#define RN_DATA_IDX_H

#include <stddef.h>
#include <stdint.h>

#include "resnet.h"

enum { RN_IDX_MAX_NDIM = 4 };

/* Largest data section rn_idx_read accepts. The largest Fashion-MNIST file
 * contains 47 MB of data, so a header near this limit is corrupt. */
#define RN_IDX_MAX_NBYTES ((size_t)1 << 30)

typedef struct rn_idx {
    int ndim;
    int64_t dims[RN_IDX_MAX_NDIM]; /* dims[ndim..] are 0 */
    uint8_t *data;                 /* row-major, malloc'ed */
    size_t nbytes;                 /* product of dims[0..ndim) */
} rn_idx;

/* Reads a raw or gzip-compressed IDX file of unsigned bytes into out.
 * Returns RN_ERR_IO if the file cannot be opened or read, RN_ERR_FORMAT for a
 * malformed header, a truncated or oversized data section, trailing bytes or
 * a corrupt gzip stream, and RN_ERR_NOMEM. The message names the file. On
 * failure *out is zeroed, so rn_idx_free(out) is always safe. */
rn_status rn_idx_read(const char *path, rn_idx *out);

/* Frees the data and zeroes the struct. Accepts a zeroed struct. */
void rn_idx_free(rn_idx *idx);

#endif
