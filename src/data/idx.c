#include "data/idx.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "core/status.h"

enum {
    IDX_TYPE_UBYTE = 0x08,
    IDX_PREFIX_NBYTES = 4, /* two zero bytes, type code, ndim */
    GZ_BUFFER_NBYTES = 1 << 18,
    DATA_CHUNK_NBYTES = 1 << 20,
};

static const char *idx_type_name(int code)
{
    switch (code) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "int16";
    case 0x0C: return "int32";
    case 0x0D: return "float32";
    case 0x0E: return "float64";
    }
    return "not an IDX type";
}

/* Formats dims as "10000x28x28". */
static void format_dims(char *text, size_t size, int ndim, const int64_t *dims)
{
    size_t used = 0;
    text[0] = '\0';
    for (int d = 0; d < ndim && used < size; d++)
        used += snprintf(text + used, size - used, d ? "x%" PRId64 : "%" PRId64, dims[d]);
}

/* Reads until nbytes are read or the stream ends. Returns the byte count,
 * or -1 on a zlib or system error (see stream_status). */
static int64_t read_fully(gzFile file, uint8_t *dst, size_t nbytes)
{
    size_t total = 0;

    while (total < nbytes) {
        size_t chunk = nbytes - total;
        if (chunk > (1u << 30))
            chunk = 1u << 30;
        int got = gzread(file, dst + total, (unsigned)chunk);
        if (got < 0)
            return -1;
        if (got == 0)
            break;
        total += (size_t)got;
    }
    return (int64_t)total;
}

/* Turns the error state of the last read into a status. A gzip stream that
 * ends early leaves Z_BUF_ERROR, and a plain end of file leaves Z_OK. */
static rn_status stream_status(gzFile file, const char *path)
{
    int errnum = Z_OK;
    const char *message = gzerror(file, &errnum);
    size_t path_len = strlen(path);

    /* zlib prefixes its messages with the path, which ours already has. */
    if (strncmp(message, path, path_len) == 0 && strncmp(message + path_len, ": ", 2) == 0)
        message += path_len + 2;
    switch (errnum) {
    case Z_OK:
        return RN_OK;
    case Z_ERRNO:
        return rn_error(RN_ERR_IO, "%s: read failed: %s", path, message);
    case Z_MEM_ERROR:
        return rn_error(RN_ERR_NOMEM, "%s: out of memory while decompressing", path);
    default:
        return rn_error(RN_ERR_FORMAT,
                        "%s: truncated or corrupt gzip stream (zlib: %s); "
                        "download the file again",
                        path, message);
    }
}

static rn_status read_header(gzFile file, const char *path, rn_idx *out)
{
    uint8_t header[4 * RN_IDX_MAX_NDIM];
    int64_t got = read_fully(file, header, IDX_PREFIX_NBYTES);

    if (got < IDX_PREFIX_NBYTES) {
        RN_TRY(stream_status(file, path));
        return rn_error(RN_ERR_FORMAT,
                        "%s: truncated: the file has %" PRId64 " bytes, "
                        "less than the 4-byte IDX header prefix",
                        path, got < 0 ? 0 : got);
    }
    if (header[0] != 0 || header[1] != 0)
        return rn_error(RN_ERR_FORMAT,
                        "%s: not an IDX file: the first two bytes are 0x%02x 0x%02x, "
                        "expected 0x00 0x00",
                        path, header[0], header[1]);
    if (header[2] != IDX_TYPE_UBYTE)
        return rn_error(RN_ERR_FORMAT,
                        "%s: unsupported IDX data type 0x%02x (%s); "
                        "only 0x08 (unsigned byte) is supported",
                        path, header[2], idx_type_name(header[2]));

    int ndim = header[3];
    if (ndim < 1 || ndim > RN_IDX_MAX_NDIM)
        return rn_error(RN_ERR_FORMAT,
                        "%s: invalid IDX header: %d dimensions, expected 1 to %d",
                        path, ndim, RN_IDX_MAX_NDIM);

    got = read_fully(file, header, 4 * (size_t)ndim);
    if (got < 4 * ndim) {
        RN_TRY(stream_status(file, path));
        return rn_error(RN_ERR_FORMAT,
                        "%s: truncated: an IDX header with %d dimensions takes %d bytes, "
                        "but the file has only %" PRId64,
                        path, ndim, IDX_PREFIX_NBYTES + 4 * ndim,
                        IDX_PREFIX_NBYTES + (got < 0 ? 0 : got));
    }

    out->ndim = ndim;
    for (int d = 0; d < ndim; d++) {
        const uint8_t *be = header + 4 * d;
        out->dims[d] = ((int64_t)be[0] << 24) | ((int64_t)be[1] << 16) |
                       ((int64_t)be[2] << 8) | (int64_t)be[3];
    }

    char dims_text[96];
    format_dims(dims_text, sizeof dims_text, ndim, out->dims);

    /* Multiply in double too, so that the message can show a product that
     * overflows size_t. */
    size_t nbytes = 1;
    double nbytes_approx = 1.0;
    int oversized = 0;
    for (int d = 0; d < ndim; d++) {
        if (out->dims[d] == 0)
            return rn_error(RN_ERR_FORMAT,
                            "%s: invalid IDX header: dimension %d of %s is 0",
                            path, d, dims_text);
        nbytes_approx *= (double)out->dims[d];
        if ((uint64_t)out->dims[d] > RN_IDX_MAX_NBYTES / nbytes)
            oversized = 1;
        else
            nbytes *= (size_t)out->dims[d];
    }
    if (oversized)
        return rn_error(RN_ERR_FORMAT,
                        "%s: invalid IDX header: dimensions %s need %.4g bytes, "
                        "more than the %zu-byte (1 GiB) limit; the header is corrupt",
                        path, dims_text, nbytes_approx, (size_t)RN_IDX_MAX_NBYTES);
    out->nbytes = nbytes;
    return RN_OK;
}

/* Counts the bytes left in the stream, so that the message can report how
 * many trail the data. */
static rn_status check_no_trailing_bytes(gzFile file, const char *path, const rn_idx *idx)
{
    uint8_t scratch[4096];
    int64_t trailing = 0;

    for (;;) {
        int64_t got = read_fully(file, scratch, sizeof scratch);
        if (got < 0)
            return stream_status(file, path);
        trailing += got;
        if (got < (int64_t)sizeof scratch)
            break;
    }
    RN_TRY(stream_status(file, path));
    if (trailing > 0) {
        char dims_text[96];
        format_dims(dims_text, sizeof dims_text, idx->ndim, idx->dims);
        return rn_error(RN_ERR_FORMAT,
                        "%s: %" PRId64 " unexpected trailing bytes after the %zu bytes "
                        "of data that the header declares (shape %s); the file is corrupt",
                        path, trailing, idx->nbytes, dims_text);
    }
    return RN_OK;
}

/* Reads the data section into a buffer that grows with the bytes actually
 * present, so that a corrupt header cannot make a short file allocate the
 * full declared size. Returns the byte count read, or -1 on a stream error
 * or a failed allocation (*nomem set). */
static int64_t read_data(gzFile file, rn_idx *out, int *nomem)
{
    size_t capacity = out->nbytes < DATA_CHUNK_NBYTES ? out->nbytes : DATA_CHUNK_NBYTES;
    size_t total = 0;

    *nomem = 0;
    out->data = malloc(capacity);
    if (!out->data) {
        *nomem = 1;
        return -1;
    }
    while (total < out->nbytes) {
        if (total == capacity) {
            capacity = capacity > out->nbytes / 2 ? out->nbytes : 2 * capacity;
            uint8_t *grown = realloc(out->data, capacity);
            if (!grown) {
                *nomem = 1;
                return -1;
            }
            out->data = grown;
        }
        int64_t got = read_fully(file, out->data + total, capacity - total);
        if (got < 0)
            return -1;
        total += (size_t)got;
        if (total < capacity)
            break; /* end of stream */
    }
    return (int64_t)total;
}

static rn_status read_contents(gzFile file, const char *path, rn_idx *out)
{
    int nomem;

    RN_TRY(read_header(file, path, out));

    int64_t got = read_data(file, out, &nomem);
    if (nomem)
        return rn_error(RN_ERR_NOMEM, "%s: cannot allocate %zu bytes for the IDX data",
                        path, out->nbytes);
    if (got < 0 || (size_t)got < out->nbytes) {
        RN_TRY(stream_status(file, path));
        char dims_text[96];
        format_dims(dims_text, sizeof dims_text, out->ndim, out->dims);
        return rn_error(RN_ERR_FORMAT,
                        "%s: truncated: header says %s = %zu bytes of data, "
                        "%s has only %" PRId64 " after the header; download the file again",
                        path, dims_text, out->nbytes,
                        gzdirect(file) ? "the file" : "the decompressed file",
                        got < 0 ? 0 : got);
    }
    return check_no_trailing_bytes(file, path, out);
}

rn_status rn_idx_read(const char *path, rn_idx *out)
{
    memset(out, 0, sizeof *out);

    /* gzopen reads gzip streams (magic 1f 8b) and passes other files through
     * unchanged, so one code path handles both. */
    errno = 0;
    gzFile file = gzopen(path, "rb");
    if (!file)
        return rn_error(RN_ERR_IO, "%s: cannot open: %s", path,
                        errno ? strerror(errno) : "out of memory");
    gzbuffer(file, GZ_BUFFER_NBYTES);

    rn_status status = read_contents(file, path, out);
    gzclose_r(file);
    if (status != RN_OK)
        rn_idx_free(out);
    return status;
}

void rn_idx_free(rn_idx *idx)
{
    free(idx->data);
    memset(idx, 0, sizeof *idx);
}
