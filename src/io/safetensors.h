/* Safetensors files, the Hugging Face tensor format that PyTorch users
 * exchange weights in.
 *
 * Layout: an 8-byte little-endian unsigned header size N, N bytes of UTF-8
 * JSON, then the data buffer. The JSON maps each tensor name to
 * {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, with offsets
 * relative to the data buffer, and may hold "__metadata__", an object of
 * string values. Tensors are stored row-major and little-endian, and must
 * cover the data buffer exactly, with no gaps or overlaps. */
#ifndef RN_IO_SAFETENSORS_H
#define RN_IO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "resnet.h"

#define RN_ST_MAX_DIMS 8

/* Headers larger than this are rejected as corrupt, the same limit as the
 * reference implementation (huggingface/safetensors, MAX_HEADER_SIZE). */
#define RN_ST_MAX_HEADER_NBYTES 100000000

/* Element types, named in files by the strings rn_dtype_name() returns. */
typedef enum rn_dtype {
    RN_DTYPE_F32,
    RN_DTYPE_F64,
    RN_DTYPE_F16,
    RN_DTYPE_BF16,
    RN_DTYPE_I64,
    RN_DTYPE_I32,
    RN_DTYPE_U8,
    RN_DTYPE_COUNT
} rn_dtype;

/* Bytes per element of dtype, such as 4 for RN_DTYPE_F32. */
size_t rn_dtype_size(rn_dtype dtype);

/* The safetensors name of dtype, such as "F32". */
const char *rn_dtype_name(rn_dtype dtype);

/* One tensor of a file that was read. The data is aligned to at least its
 * element size and lives until rn_safetensors_free(). */
typedef struct rn_st_tensor {
    const char *name;
    rn_dtype dtype;
    int ndim;
    int64_t shape[RN_ST_MAX_DIMS];
    const void *data;
    size_t nbytes;
} rn_st_tensor;

/* A file read into memory. Callers read the fields up to metadata_values and
 * leave the rest to the implementation. */
typedef struct rn_safetensors {
    char *path;
    int count;
    rn_st_tensor *tensors; /* count entries in the order of their data offsets */

    int metadata_count;
    const char **metadata_keys;
    const char **metadata_values;

    struct rn_json *header;           /* owns the name and metadata strings */
    const rn_st_tensor **by_name;     /* tensors sorted by name, for lookups */
    void *data;                       /* the data buffer, 64-byte aligned */
} rn_safetensors;

/* Reads and validates a whole file. Every defect of the format is reported
 * as RN_ERR_FORMAT with a message that names the file and the tensor or key.
 * A file that cannot be read is RN_ERR_IO. On failure *out is left empty, and
 * calling rn_safetensors_free() on it is harmless. */
rn_status rn_safetensors_read(const char *path, rn_safetensors *out);

/* The tensor called name, or NULL if the file has none. */
const rn_st_tensor *rn_safetensors_find(const rn_safetensors *file, const char *name);

/* The "__metadata__" value for key, or NULL if it is absent. */
const char *rn_safetensors_metadata(const rn_safetensors *file, const char *key);

/* Looks up an F32 tensor that must have the given shape. A missing name, a
 * different dtype or a different shape is RN_ERR_FORMAT with a message like
 * "key 'layer1.0.conv1.weight': shape [16, 16, 3, 3] in file, model expects
 * [32, 16, 3, 3]". */
rn_status rn_safetensors_get_f32(const rn_safetensors *file, const char *name, int ndim,
                                 const int64_t *shape, const float **data);

void rn_safetensors_free(rn_safetensors *file);

/* ------------------------------------------------------------------------ */
/* Writing */

typedef struct rn_st_writer_entry {
    char *name;
    rn_dtype dtype;
    int ndim;
    int64_t shape[RN_ST_MAX_DIMS];
    const void *data; /* borrowed from the caller until rn_st_writer_write() */
    size_t nbytes;
} rn_st_writer_entry;

/* Collects tensors and metadata, then writes them as one file. Tensors are
 * laid out in the order they were added, with no padding between them
 * because the format allows none. Adding wider dtypes first keeps every
 * tensor aligned in the file, as the reference writer does by sorting.
 * Otherwise the reader has to copy the misaligned ones. */
typedef struct rn_st_writer {
    rn_st_writer_entry *entries;
    int count;
    int capacity;

    char **metadata_keys;
    char **metadata_values;
    int metadata_count;
    int metadata_capacity;
} rn_st_writer;

void rn_st_writer_init(rn_st_writer *writer);

/* Adds a tensor of ndim dimensions whose row-major, little-endian data the
 * caller keeps alive and unchanged until rn_st_writer_write() returns. The
 * name is copied. Returns RN_ERR_INVALID for an empty, duplicate or non-UTF-8
 * name, the reserved name "__metadata__", a negative size, or more than
 * RN_ST_MAX_DIMS dimensions. */
rn_status rn_st_writer_add(rn_st_writer *writer, const char *name, rn_dtype dtype, int ndim,
                           const int64_t *shape, const void *data);

/* Sets a "__metadata__" entry, replacing an earlier value for the same key.
 * Both strings are copied and must be UTF-8. */
rn_status rn_st_writer_metadata(rn_st_writer *writer, const char *key, const char *value);

/* Writes the file atomically (see rn_file_write_atomic). The JSON header is
 * compact and padded with spaces to a multiple of 8 bytes, so that the data
 * buffer starts 8-byte aligned, as the reference implementation does. */
rn_status rn_st_writer_write(const rn_st_writer *writer, const char *path);

void rn_st_writer_free(rn_st_writer *writer);

#endif
