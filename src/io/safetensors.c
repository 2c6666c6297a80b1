#include "io/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/status.h"
#include "io/file.h"
#include "io/json.h"

/* Tensor data is copied between memory and file byte for byte, which is only
 * correct on a little-endian machine. */
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host"
#endif

static const struct {
    const char *name;
    size_t size;
} dtype_table[RN_DTYPE_COUNT] = {
    [RN_DTYPE_F32] = {"F32", 4}, [RN_DTYPE_F64] = {"F64", 8}, [RN_DTYPE_F16] = {"F16", 2},
    [RN_DTYPE_BF16] = {"BF16", 2}, [RN_DTYPE_I64] = {"I64", 8}, [RN_DTYPE_I32] = {"I32", 4},
    [RN_DTYPE_U8] = {"U8", 1},
};

size_t rn_dtype_size(rn_dtype dtype)
{
    RN_ASSERT(dtype >= 0 && dtype < RN_DTYPE_COUNT);
    return dtype_table[dtype].size;
}

const char *rn_dtype_name(rn_dtype dtype)
{
    RN_ASSERT(dtype >= 0 && dtype < RN_DTYPE_COUNT);
    return dtype_table[dtype].name;
}

static int dtype_from_name(const char *name, rn_dtype *dtype)
{
    for (int i = 0; i < RN_DTYPE_COUNT; i++) {
        if (strcmp(name, dtype_table[i].name) == 0) {
            *dtype = (rn_dtype)i;
            return 1;
        }
    }
    return 0;
}

/* Multiplies the dimensions and the element size into a byte count. Returns
 * 0 if the product does not fit in size_t. */
static int tensor_nbytes(rn_dtype dtype, int ndim, const int64_t *shape, size_t *nbytes)
{
    size_t total = rn_dtype_size(dtype);
    for (int i = 0; i < ndim; i++)
        if (__builtin_mul_overflow(total, (uint64_t)shape[i], &total))
            return 0;
    *nbytes = total;
    return 1;
}

/* Formats a shape as "[16, 16, 3, 3]". */
static const char *format_shape(char *out, size_t size, int ndim, const int64_t *shape)
{
    size_t used = (size_t)snprintf(out, size, "[");
    for (int i = 0; i < ndim && used < size; i++)
        used += (size_t)snprintf(out + used, size - used, "%s%lld", i ? ", " : "",
                                 (long long)shape[i]);
    if (used < size)
        snprintf(out + used, size - used, "]");
    return out;
}

/* ------------------------------------------------------------------------ */
/* Reading */

/* A tensor while the header is validated, with its offsets into the data
 * buffer. */
typedef struct parsed_tensor {
    rn_st_tensor tensor;
    uint64_t begin;
    uint64_t end;
} parsed_tensor;

static rn_status format_error(const char *path, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static rn_status format_error(const char *path, const char *fmt, ...)
{
    char detail[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    return rn_error(RN_ERR_FORMAT, "%s: invalid safetensors file: %s", path, detail);
}

static rn_status read_exact(int fd, void *buffer, size_t nbytes, const char *path)
{
    char *p = buffer;
    while (nbytes > 0) {
        ssize_t got = read(fd, p, nbytes);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return rn_error(RN_ERR_IO, "failed to read '%s': %s", path, strerror(errno));
        if (got == 0)
            return rn_error(RN_ERR_IO, "failed to read '%s': the file shrank while it was read",
                            path);
        p += got;
        nbytes -= (size_t)got;
    }
    return RN_OK;
}

/* Reads the header size, the header text (NUL-terminated) and the data buffer
 * (64-byte aligned) of an open file. */
static rn_status read_sections(int fd, const char *path, char **header, size_t *header_nbytes,
                               void **data, size_t *data_nbytes)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return rn_error(RN_ERR_IO, "failed to stat '%s': %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return rn_error(RN_ERR_IO, "failed to read '%s': not a regular file", path);

    uint64_t file_nbytes = (uint64_t)st.st_size;
    if (file_nbytes < 8)
        return format_error(path, "the file is %llu bytes, shorter than the 8-byte header size; "
                            "it is truncated or not a safetensors file",
                            (unsigned long long)file_nbytes);

    unsigned char size_bytes[8];
    RN_TRY(read_exact(fd, size_bytes, 8, path));
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | size_bytes[i];
    if (n > RN_ST_MAX_HEADER_NBYTES)
        return format_error(path, "header size %llu exceeds the limit of %d bytes; "
                            "the file is corrupt or not a safetensors file",
                            (unsigned long long)n, RN_ST_MAX_HEADER_NBYTES);
    if (n > file_nbytes - 8)
        return format_error(path, "header size %llu exceeds the %llu bytes that follow it; "
                            "the file is truncated or not a safetensors file",
                            (unsigned long long)n, (unsigned long long)(file_nbytes - 8));

    *header_nbytes = (size_t)n;
    *header = malloc(*header_nbytes + 1);
    if (*header == NULL)
        return rn_error(RN_ERR_NOMEM, "out of memory reading the %zu-byte header of '%s'",
                        *header_nbytes, path);
    RN_TRY(read_exact(fd, *header, *header_nbytes, path));
    (*header)[*header_nbytes] = '\0';

    *data_nbytes = (size_t)(file_nbytes - 8 - n);
    *data = rn_alloc_aligned(*data_nbytes);
    if (*data == NULL)
        return rn_error(RN_ERR_NOMEM, "out of memory reading the %zu-byte data buffer of '%s'",
                        *data_nbytes, path);
    return read_exact(fd, *data, *data_nbytes, path);
}

/* Describes a field's JSON value for a message: "missing", "an integer"... */
static const char *describe_field(const rn_json *value)
{
    if (value == NULL)
        return "missing";
    switch (value->type) {
    case RN_JSON_NULL: return "null";
    case RN_JSON_BOOL: return "a boolean";
    case RN_JSON_INT: return "an integer";
    case RN_JSON_NUMBER: return "a number";
    case RN_JSON_STRING: return "a string";
    case RN_JSON_ARRAY: return "an array";
    case RN_JSON_OBJECT: return "an object";
    }
    return "of unknown type";
}

/* Reads a JSON integer that must be in [0, INT64_MAX]. */
static int get_non_negative(const rn_json *value, uint64_t *out)
{
    if (value->type != RN_JSON_INT || value->integer < 0)
        return 0;
    *out = (uint64_t)value->integer;
    return 1;
}

static rn_status parse_tensor_entry(const char *path, const rn_json_member *member,
                                    size_t data_nbytes, parsed_tensor *out)
{
    const char *name = member->key;
    const rn_json *info = member->value;
    rn_st_tensor *t = &out->tensor;

    t->name = name;
    if (info->type != RN_JSON_OBJECT)
        return format_error(path, "tensor '%s': expected an object with dtype, shape and "
                            "data_offsets, found %s", name, describe_field(info));

    const rn_json *dtype = rn_json_get(info, "dtype");
    if (dtype == NULL || dtype->type != RN_JSON_STRING)
        return format_error(path, "tensor '%s': \"dtype\" must be a string such as \"F32\", "
                            "but it is %s", name, describe_field(dtype));
    if (!dtype_from_name(dtype->string, &t->dtype))
        return format_error(path, "tensor '%s': dtype \"%s\" is not supported "
                            "(supported: F32, F64, F16, BF16, I64, I32, U8)", name,
                            dtype->string);

    const rn_json *shape = rn_json_get(info, "shape");
    if (shape == NULL || shape->type != RN_JSON_ARRAY)
        return format_error(path, "tensor '%s': \"shape\" must be an array of integers, but "
                            "it is %s", name, describe_field(shape));
    if (shape->item_count > RN_ST_MAX_DIMS)
        return format_error(path, "tensor '%s': shape has %zu dimensions, more than the %d "
                            "supported", name, shape->item_count, RN_ST_MAX_DIMS);
    t->ndim = (int)shape->item_count;
    for (int i = 0; i < t->ndim; i++) {
        uint64_t dim;
        if (!get_non_negative(shape->items[i], &dim))
            return format_error(path, "tensor '%s': shape[%d] must be a non-negative integer",
                                name, i);
        t->shape[i] = (int64_t)dim;
    }

    const rn_json *offsets = rn_json_get(info, "data_offsets");
    if (offsets == NULL || offsets->type != RN_JSON_ARRAY || offsets->item_count != 2 ||
        !get_non_negative(offsets->items[0], &out->begin) ||
        !get_non_negative(offsets->items[1], &out->end))
        return format_error(path, "tensor '%s': \"data_offsets\" must be an array of two "
                            "non-negative integers [begin, end]", name);
    if (out->begin > out->end)
        return format_error(path, "tensor '%s': data_offsets [%llu, %llu] end before they "
                            "begin", name, (unsigned long long)out->begin,
                            (unsigned long long)out->end);
    if (out->end > data_nbytes)
        return format_error(path, "tensor '%s': data_offsets [%llu, %llu] extend past the end "
                            "of the %zu-byte data buffer", name, (unsigned long long)out->begin,
                            (unsigned long long)out->end, data_nbytes);

    char shape_text[256];
    if (!tensor_nbytes(t->dtype, t->ndim, t->shape, &t->nbytes))
        return format_error(path, "tensor '%s': the byte size of shape %s overflows", name,
                            format_shape(shape_text, sizeof shape_text, t->ndim, t->shape));
    if (t->nbytes != out->end - out->begin)
        return format_error(path, "tensor '%s': dtype %s and shape %s need %zu bytes, but "
                            "data_offsets [%llu, %llu] hold %llu", name, dtype->string,
                            format_shape(shape_text, sizeof shape_text, t->ndim, t->shape),
                            t->nbytes, (unsigned long long)out->begin,
                            (unsigned long long)out->end,
                            (unsigned long long)(out->end - out->begin));
    return RN_OK;
}

static rn_status parse_metadata(const char *path, const rn_json *metadata, rn_safetensors *out)
{
    if (out->metadata_keys != NULL)
        return format_error(path, "the header has more than one \"__metadata__\" entry");
    if (metadata->type != RN_JSON_OBJECT)
        return format_error(path, "\"__metadata__\" must be an object of strings, but it is %s",
                            describe_field(metadata));

    size_t count = metadata->member_count;
    out->metadata_keys = calloc(count + 1, sizeof *out->metadata_keys);
    out->metadata_values = calloc(count + 1, sizeof *out->metadata_values);
    if (out->metadata_keys == NULL || out->metadata_values == NULL)
        return rn_error(RN_ERR_NOMEM, "out of memory reading the metadata of '%s'", path);

    for (size_t i = 0; i < count; i++) {
        const rn_json_member *member = &metadata->members[i];
        const rn_json *value = member->value;
        if (strlen(member->key) != member->key_length)
            return format_error(path, "metadata key '%s' contains a NUL character",
                                member->key);
        if (value->type != RN_JSON_STRING)
            return format_error(path, "metadata key '%s': the value is %s, but "
                                "\"__metadata__\" values must be strings", member->key,
                                describe_field(value));
        if (strlen(value->string) != value->string_length)
            return format_error(path, "metadata key '%s': the value contains a NUL character",
                                member->key);
        for (size_t j = 0; j < i; j++)
            if (strcmp(out->metadata_keys[j], member->key) == 0)
                return format_error(path, "metadata key '%s' appears more than once",
                                    member->key);
        out->metadata_keys[i] = member->key;
        out->metadata_values[i] = value->string;
        out->metadata_count = (int)i + 1;
    }
    return RN_OK;
}

static int compare_offsets(const void *a, const void *b)
{
    const parsed_tensor *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return strcmp(x->tensor.name, y->tensor.name);
}

static int compare_names(const void *a, const void *b)
{
    const rn_st_tensor *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

/* Checks that the tensors, sorted by offset, tile the data buffer exactly. */
static rn_status check_coverage(const char *path, const parsed_tensor *parsed, int count,
                                size_t data_nbytes)
{
    uint64_t covered = 0;
    for (int i = 0; i < count; i++) {
        const parsed_tensor *p = &parsed[i];
        if (p->begin > covered)
            return format_error(path, "bytes [%llu, %llu) of the data buffer belong to no "
                                "tensor (the next tensor is '%s')", (unsigned long long)covered,
                                (unsigned long long)p->begin, p->tensor.name);
        if (p->begin < covered)
            return format_error(path, "tensor '%s': data_offsets [%llu, %llu] overlap tensor "
                                "'%s' [%llu, %llu]", p->tensor.name,
                                (unsigned long long)p->begin, (unsigned long long)p->end,
                                parsed[i - 1].tensor.name,
                                (unsigned long long)parsed[i - 1].begin,
                                (unsigned long long)parsed[i - 1].end);
        covered = p->end;
    }
    if (covered != data_nbytes)
        return format_error(path, "the data buffer has %zu bytes, but the tensors cover only "
                            "the first %llu", data_nbytes, (unsigned long long)covered);
    return RN_OK;
}

/* Moves every tensor to a 64-byte aligned place in a new buffer. This is
 * needed when a tensor's offset is not a multiple of its element size, as
 * when a U8 tensor of odd length precedes an F32 one. */
static rn_status realign_data(const char *path, rn_safetensors *out)
{
    int count = out->count;
    size_t total = 0;
    for (int i = 0; i < count; i++)
        total += (out->tensors[i].nbytes + 63) & ~(size_t)63;

    char *aligned = rn_alloc_aligned(total);
    if (aligned == NULL)
        return rn_error(RN_ERR_NOMEM, "out of memory realigning the %zu bytes of tensors in '%s'",
                        total, path);
    size_t offset = 0;
    for (int i = 0; i < count; i++) {
        memcpy(aligned + offset, out->tensors[i].data, out->tensors[i].nbytes);
        out->tensors[i].data = aligned + offset;
        offset += (out->tensors[i].nbytes + 63) & ~(size_t)63;
    }
    rn_free_aligned(out->data);
    out->data = aligned;
    return RN_OK;
}

/* Validates the parsed header and fills the tensor and metadata tables. */
static rn_status build_tables(const char *path, size_t data_nbytes, rn_safetensors *out)
{
    const rn_json *root = out->header;
    if (root->type != RN_JSON_OBJECT)
        return format_error(path, "the header must be a JSON object, but it is %s",
                            describe_field(root));

    size_t member_count = root->member_count;
    parsed_tensor *parsed = calloc(member_count + 1, sizeof *parsed);
    out->tensors = calloc(member_count + 1, sizeof *out->tensors);
    out->by_name = calloc(member_count + 1, sizeof *out->by_name);
    if (parsed == NULL || out->tensors == NULL || out->by_name == NULL) {
        free(parsed);
        return rn_error(RN_ERR_NOMEM, "out of memory reading the header of '%s'", path);
    }

    rn_status status = RN_OK;
    int count = 0;
    for (size_t i = 0; i < member_count && status == RN_OK; i++) {
        const rn_json_member *member = &root->members[i];
        if (strcmp(member->key, "__metadata__") == 0)
            status = parse_metadata(path, member->value, out);
        else if (strlen(member->key) != member->key_length)
            status = format_error(path, "tensor name '%s' contains a NUL character",
                                  member->key);
        else
            status = parse_tensor_entry(path, member, data_nbytes, &parsed[count++]);
    }

    if (status == RN_OK) {
        qsort(parsed, (size_t)count, sizeof *parsed, compare_offsets);
        status = check_coverage(path, parsed, count, data_nbytes);
    }

    int misaligned = 0;
    for (int i = 0; i < count && status == RN_OK; i++) {
        out->tensors[i] = parsed[i].tensor;
        out->tensors[i].data = (const char *)out->data + parsed[i].begin;
        out->by_name[i] = &out->tensors[i];
        misaligned |= parsed[i].begin % rn_dtype_size(parsed[i].tensor.dtype) != 0;
    }
    if (status == RN_OK) {
        out->count = count;
        qsort(out->by_name, (size_t)count, sizeof *out->by_name, compare_names);
        for (int i = 1; i < count && status == RN_OK; i++)
            if (strcmp(out->by_name[i - 1]->name, out->by_name[i]->name) == 0)
                status = format_error(path, "tensor name '%s' appears more than once",
                                      out->by_name[i]->name);
    }
    if (status == RN_OK && misaligned)
        status = realign_data(path, out);
    free(parsed);
    return status;
}

rn_status rn_safetensors_read(const char *path, rn_safetensors *out)
{
    memset(out, 0, sizeof *out);

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return rn_error(RN_ERR_IO, "failed to open '%s': %s", path, strerror(errno));

    char *header_text = NULL;
    size_t header_nbytes = 0, data_nbytes = 0;
    rn_status status = read_sections(fd, path, &header_text, &header_nbytes, &out->data,
                                     &data_nbytes);
    close(fd);

    if (status == RN_OK) {
        status = rn_json_parse(header_text, header_nbytes, &out->header);
        if (status == RN_ERR_FORMAT)
            rn_error_prefix(status, "%s: invalid safetensors file: header: ", path);
    }
    free(header_text);

    if (status == RN_OK) {
        out->path = strdup(path);
        if (out->path == NULL)
            status = rn_error(RN_ERR_NOMEM, "out of memory reading '%s'", path);
    }
    if (status == RN_OK)
        status = build_tables(path, data_nbytes, out);
    if (status != RN_OK)
        rn_safetensors_free(out);
    return status;
}

const rn_st_tensor *rn_safetensors_find(const rn_safetensors *file, const char *name)
{
    int low = 0, high = file->count;
    while (low < high) {
        int mid = low + (high - low) / 2;
        int order = strcmp(file->by_name[mid]->name, name);
        if (order == 0)
            return file->by_name[mid];
        if (order < 0)
            low = mid + 1;
        else
            high = mid;
    }
    return NULL;
}

const char *rn_safetensors_metadata(const rn_safetensors *file, const char *key)
{
    for (int i = 0; i < file->metadata_count; i++)
        if (strcmp(file->metadata_keys[i], key) == 0)
            return file->metadata_values[i];
    return NULL;
}

rn_status rn_safetensors_get_f32(const rn_safetensors *file, const char *name, int ndim,
                                 const int64_t *shape, const float **data)
{
    *data = NULL;
    const char *path = file->path ? file->path : "(no file read)";
    const rn_st_tensor *t = rn_safetensors_find(file, name);
    if (t == NULL)
        return rn_error(RN_ERR_FORMAT, "%s: key '%s' not found among the file's %d tensors",
                        path, name, file->count);
    if (t->dtype != RN_DTYPE_F32)
        return rn_error(RN_ERR_FORMAT, "%s: key '%s': dtype %s in file, model expects F32",
                        path, name, rn_dtype_name(t->dtype));

    int same = t->ndim == ndim;
    for (int i = 0; i < ndim && same; i++)
        same = t->shape[i] == shape[i];
    if (!same) {
        char found[256], expected[256];
        return rn_error(RN_ERR_FORMAT, "%s: key '%s': shape %s in file, model expects %s",
                        path, name, format_shape(found, sizeof found, t->ndim, t->shape),
                        format_shape(expected, sizeof expected, ndim, shape));
    }
    *data = t->data;
    return RN_OK;
}

void rn_safetensors_free(rn_safetensors *file)
{
    free(file->path);
    free(file->tensors);
    free(file->metadata_keys);
    free(file->metadata_values);
    rn_json_free(file->header);
    free(file->by_name);
    rn_free_aligned(file->data);
    memset(file, 0, sizeof *file);
}

/* ------------------------------------------------------------------------ */
/* Writing */

void rn_st_writer_init(rn_st_writer *writer)
{
    memset(writer, 0, sizeof *writer);
}

static rn_status check_utf8(const char *field, const char *text)
{
    size_t length = strlen(text);
    size_t invalid = rn_utf8_validate(text, length);
    if (invalid != length)
        return rn_error(RN_ERR_INVALID, "%s is not valid UTF-8 (byte 0x%02x at offset %zu)",
                        field, (unsigned char)text[invalid], invalid);
    return RN_OK;
}

rn_status rn_st_writer_add(rn_st_writer *writer, const char *name, rn_dtype dtype, int ndim,
                           const int64_t *shape, const void *data)
{
    RN_ASSERT(name != NULL);
    RN_ASSERT(dtype >= 0 && dtype < RN_DTYPE_COUNT);

    if (name[0] == '\0')
        return rn_error(RN_ERR_INVALID, "tensor name is empty");
    if (strcmp(name, "__metadata__") == 0)
        return rn_error(RN_ERR_INVALID, "tensor name '__metadata__' is reserved for metadata");
    RN_TRY(check_utf8("tensor name", name));
    for (int i = 0; i < writer->count; i++)
        if (strcmp(writer->entries[i].name, name) == 0)
            return rn_error(RN_ERR_INVALID, "tensor '%s' was already added", name);
    if (ndim < 0 || ndim > RN_ST_MAX_DIMS)
        return rn_error(RN_ERR_INVALID, "tensor '%s' has %d dimensions; 0 to %d are supported",
                        name, ndim, RN_ST_MAX_DIMS);
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0)
            return rn_error(RN_ERR_INVALID, "tensor '%s': shape[%d] is %lld, must not be "
                            "negative", name, i, (long long)shape[i]);

    rn_st_writer_entry entry = {.dtype = dtype, .ndim = ndim, .data = data};
    for (int i = 0; i < ndim; i++)
        entry.shape[i] = shape[i];
    if (!tensor_nbytes(dtype, ndim, shape, &entry.nbytes))
        return rn_error(RN_ERR_INVALID, "tensor '%s': the byte size of its shape overflows",
                        name);
    RN_ASSERT(data != NULL || entry.nbytes == 0);

    if (writer->count == writer->capacity) {
        int grown = writer->capacity ? writer->capacity * 2 : 16;
        rn_st_writer_entry *larger = realloc(writer->entries, (size_t)grown * sizeof *larger);
        if (larger == NULL)
            return rn_error(RN_ERR_NOMEM, "out of memory adding tensor '%s'", name);
        writer->entries = larger;
        writer->capacity = grown;
    }
    entry.name = strdup(name);
    if (entry.name == NULL)
        return rn_error(RN_ERR_NOMEM, "out of memory adding tensor '%s'", name);
    writer->entries[writer->count++] = entry;
    return RN_OK;
}

rn_status rn_st_writer_metadata(rn_st_writer *writer, const char *key, const char *value)
{
    RN_ASSERT(key != NULL && value != NULL);
    RN_TRY(check_utf8("metadata key", key));
    RN_TRY(check_utf8("metadata value", value));

    char *value_copy = strdup(value);
    if (value_copy == NULL)
        return rn_error(RN_ERR_NOMEM, "out of memory setting metadata '%s'", key);
    for (int i = 0; i < writer->metadata_count; i++) {
        if (strcmp(writer->metadata_keys[i], key) == 0) {
            free(writer->metadata_values[i]);
            writer->metadata_values[i] = value_copy;
            return RN_OK;
        }
    }

    if (writer->metadata_count == writer->metadata_capacity) {
        int grown = writer->metadata_capacity ? writer->metadata_capacity * 2 : 8;
        char **keys = realloc(writer->metadata_keys, (size_t)grown * sizeof *keys);
        if (keys != NULL)
            writer->metadata_keys = keys;
        char **values = realloc(writer->metadata_values, (size_t)grown * sizeof *values);
        if (values != NULL)
            writer->metadata_values = values;
        if (keys == NULL || values == NULL) {
            free(value_copy);
            return rn_error(RN_ERR_NOMEM, "out of memory setting metadata '%s'", key);
        }
        writer->metadata_capacity = grown;
    }
    char *key_copy = strdup(key);
    if (key_copy == NULL) {
        free(value_copy);
        return rn_error(RN_ERR_NOMEM, "out of memory setting metadata '%s'", key);
    }
    writer->metadata_keys[writer->metadata_count] = key_copy;
    writer->metadata_values[writer->metadata_count] = value_copy;
    writer->metadata_count++;
    return RN_OK;
}

/* Builds the compact JSON header, padded with spaces to a multiple of 8. */
static rn_status build_header(const rn_st_writer *writer, rn_strbuf *header)
{
    RN_TRY(rn_strbuf_append(header, "{", 1));
    if (writer->metadata_count > 0) {
        RN_TRY(rn_strbuf_append(header, "\"__metadata__\":{", 16));
        for (int i = 0; i < writer->metadata_count; i++) {
            if (i > 0)
                RN_TRY(rn_strbuf_append(header, ",", 1));
            const char *key = writer->metadata_keys[i];
            const char *value = writer->metadata_values[i];
            RN_TRY(rn_json_append_string(header, key, strlen(key)));
            RN_TRY(rn_strbuf_append(header, ":", 1));
            RN_TRY(rn_json_append_string(header, value, strlen(value)));
        }
        RN_TRY(rn_strbuf_append(header, "}", 1));
    }

    size_t offset = 0;
    for (int i = 0; i < writer->count; i++) {
        const rn_st_writer_entry *e = &writer->entries[i];
        if (i > 0 || writer->metadata_count > 0)
            RN_TRY(rn_strbuf_append(header, ",", 1));
        RN_TRY(rn_json_append_string(header, e->name, strlen(e->name)));
        RN_TRY(rn_strbuf_appendf(header, ":{\"dtype\":\"%s\",\"shape\":[", rn_dtype_name(e->dtype)));
        for (int d = 0; d < e->ndim; d++)
            RN_TRY(rn_strbuf_appendf(header, "%s%lld", d ? "," : "", (long long)e->shape[d]));
        RN_TRY(rn_strbuf_appendf(header, "],\"data_offsets\":[%zu,%zu]}", offset,
                                 offset + e->nbytes));
        offset += e->nbytes;
    }
    RN_TRY(rn_strbuf_append(header, "}", 1));

    while (header->length % 8 != 0)
        RN_TRY(rn_strbuf_append(header, " ", 1));
    return RN_OK;
}

rn_status rn_st_writer_write(const rn_st_writer *writer, const char *path)
{
    rn_strbuf header = {0};
    rn_status status = build_header(writer, &header);
    if (status != RN_OK) {
        rn_strbuf_free(&header);
        return rn_error_prefix(status, "failed to write '%s': ", path);
    }
    if (header.length > RN_ST_MAX_HEADER_NBYTES) {
        rn_strbuf_free(&header);
        return rn_error(RN_ERR_INVALID, "failed to write '%s': the header would be %zu bytes, "
                        "over the %d-byte limit that readers accept", path, header.length,
                        RN_ST_MAX_HEADER_NBYTES);
    }

    unsigned char size_bytes[8];
    for (int i = 0; i < 8; i++)
        size_bytes[i] = (unsigned char)((uint64_t)header.length >> (8 * i));

    int chunk_count = 2 + writer->count;
    const void **chunks = calloc((size_t)chunk_count, sizeof *chunks);
    size_t *sizes = calloc((size_t)chunk_count, sizeof *sizes);
    if (chunks == NULL || sizes == NULL) {
        status = rn_error(RN_ERR_NOMEM, "out of memory writing '%s'", path);
    } else {
        chunks[0] = size_bytes;
        sizes[0] = 8;
        chunks[1] = header.data;
        sizes[1] = header.length;
        for (int i = 0; i < writer->count; i++) {
            chunks[2 + i] = writer->entries[i].data;
            sizes[2 + i] = writer->entries[i].nbytes;
        }
        status = rn_file_write_atomic(path, chunks, sizes, chunk_count);
    }
    free(chunks);
    free(sizes);
    rn_strbuf_free(&header);
    return status;
}

void rn_st_writer_free(rn_st_writer *writer)
{
    for (int i = 0; i < writer->count; i++)
        free(writer->entries[i].name);
    free(writer->entries);
    for (int i = 0; i < writer->metadata_count; i++) {
        free(writer->metadata_keys[i]);
        free(writer->metadata_values[i]);
    }
    free(writer->metadata_keys);
    free(writer->metadata_values);
    memset(writer, 0, sizeof *writer);
}
