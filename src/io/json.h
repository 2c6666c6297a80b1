/* A small JSON reader (RFC 8259) that builds a tree, and helpers to write
 * JSON text into a growable string buffer. */
#ifndef RN_IO_JSON_H
#define RN_IO_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "resnet.h"

/* Arrays and objects nested deeper than this are rejected, which bounds the
 * parser's recursion. */
#define RN_JSON_MAX_DEPTH 64

typedef enum rn_json_type {
    RN_JSON_NULL,
    RN_JSON_BOOL,
    RN_JSON_INT,    /* a number without fraction or exponent that fits int64_t */
    RN_JSON_NUMBER, /* any other number, including integers outside int64_t */
    RN_JSON_STRING,
    RN_JSON_ARRAY,
    RN_JSON_OBJECT,
} rn_json_type;

typedef struct rn_json rn_json;

/* One member of an object. Duplicate keys are kept, in input order. */
typedef struct rn_json_member {
    char *key; /* UTF-8 and NUL-terminated, like rn_json.string */
    size_t key_length;
    rn_json *value;
} rn_json_member;

struct rn_json {
    rn_json_type type;
    size_t offset; /* byte offset of the value's first character in the input */

    int boolean;     /* RN_JSON_BOOL */
    int64_t integer; /* RN_JSON_INT */
    double number;   /* RN_JSON_NUMBER, and RN_JSON_INT converted to double */

    /* RN_JSON_STRING: UTF-8, NUL-terminated, and may contain NUL bytes
     * written as "\u0000", so length is authoritative. */
    char *string;
    size_t string_length;

    rn_json **items; /* RN_JSON_ARRAY */
    size_t item_count;

    rn_json_member *members; /* RN_JSON_OBJECT, in input order */
    size_t member_count;
};

/* Parses `length` bytes of UTF-8 JSON text holding exactly one value, with
 * optional whitespace around it. On failure returns RN_ERR_FORMAT with a
 * message such as "invalid JSON at byte 17: expected ':' after object key",
 * and *out is NULL. Free the tree with rn_json_free(). */
rn_status rn_json_parse(const char *text, size_t length, rn_json **out);

void rn_json_free(rn_json *value);

/* The value of the first member named key, or NULL if value is not an object
 * or has no such member. */
const rn_json *rn_json_get(const rn_json *value, const char *key);

/* Name of a type for messages, such as "string" or "object". */
const char *rn_json_type_name(rn_json_type type);

/* Checks that bytes are valid UTF-8 (no overlong forms, no surrogates, nothing
 * above U+10FFFF). Returns the offset of the first invalid byte, or length if
 * all are valid. */
size_t rn_utf8_validate(const char *bytes, size_t length);

/* ------------------------------------------------------------------------ */
/* Writing */

/* A growable byte buffer whose data is always NUL-terminated once anything
 * has been appended. Zero-initialise it, and release it with rn_strbuf_free(). */
typedef struct rn_strbuf {
    char *data;
    size_t length;
    size_t capacity;
} rn_strbuf;

rn_status rn_strbuf_append(rn_strbuf *buf, const void *bytes, size_t length);
rn_status rn_strbuf_appendf(rn_strbuf *buf, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void rn_strbuf_free(rn_strbuf *buf);

/* Appends a JSON string literal: quotes around the text, with '"', '\\' and
 * control characters escaped. Returns RN_ERR_INVALID if text is not valid
 * UTF-8, since the result would not be valid JSON. */
rn_status rn_json_append_string(rn_strbuf *buf, const char *text, size_t length);

#endif
