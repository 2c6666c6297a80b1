#include "io/json.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"

/* ------------------------------------------------------------------------ */
/* UTF-8 */

/* Length of the valid UTF-8 sequence at the start of bytes, or 0 if it is
 * invalid or cut short. The byte ranges exclude overlong forms, UTF-16
 * surrogates and code points above U+10FFFF. */
static size_t utf8_sequence_length(const unsigned char *s, size_t available)
{
    unsigned char lead = s[0];
    size_t length;
    unsigned char low = 0x80, high = 0xBF; /* allowed range of the second byte */

    if (lead < 0x80)
        return 1;
    if (lead >= 0xC2 && lead <= 0xDF) {
        length = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
        length = 3;
        if (lead == 0xE0)
            low = 0xA0; /* overlong below U+0800 */
        if (lead == 0xED)
            high = 0x9F; /* UTF-16 surrogates U+D800..U+DFFF */
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        length = 4;
        if (lead == 0xF0)
            low = 0x90; /* overlong below U+10000 */
        if (lead == 0xF4)
            high = 0x8F; /* above U+10FFFF */
    } else {
        return 0;
    }
    if (available < length || s[1] < low || s[1] > high)
        return 0;
    for (size_t i = 2; i < length; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return length;
}

size_t rn_utf8_validate(const char *bytes, size_t length)
{
    const unsigned char *s = (const unsigned char *)bytes;
    size_t pos = 0;

    while (pos < length) {
        size_t n = utf8_sequence_length(s + pos, length - pos);
        if (n == 0)
            return pos;
        pos += n;
    }
    return length;
}

/* Writes code point cp (at most U+10FFFF, not a surrogate) as UTF-8 into out
 * and returns the number of bytes. */
static size_t utf8_encode(uint32_t cp, char out[4])
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* ------------------------------------------------------------------------ */
/* Growable string buffer */

static rn_status strbuf_reserve(rn_strbuf *buf, size_t extra)
{
    if (extra > SIZE_MAX / 2 - buf->length)
        return rn_error(RN_ERR_NOMEM, "string buffer of %zu bytes cannot grow by %zu bytes",
                        buf->length, extra);
    size_t needed = buf->length + extra + 1; /* + 1 for the NUL */
    if (needed <= buf->capacity)
        return RN_OK;

    size_t capacity = buf->capacity ? buf->capacity : 64;
    while (capacity < needed)
        capacity *= 2;
    char *data = realloc(buf->data, capacity);
    if (data == NULL)
        return rn_error(RN_ERR_NOMEM, "out of memory growing a string buffer to %zu bytes",
                        capacity);
    buf->data = data;
    buf->capacity = capacity;
    return RN_OK;
}

rn_status rn_strbuf_append(rn_strbuf *buf, const void *bytes, size_t length)
{
    RN_TRY(strbuf_reserve(buf, length));
    if (length > 0)
        memcpy(buf->data + buf->length, bytes, length);
    buf->length += length;
    buf->data[buf->length] = '\0';
    return RN_OK;
}

rn_status rn_strbuf_appendf(rn_strbuf *buf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int needed = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (needed < 0)
        return rn_error(RN_ERR_INVALID, "invalid format string '%s'", fmt);

    RN_TRY(strbuf_reserve(buf, (size_t)needed));
    va_start(ap, fmt);
    vsnprintf(buf->data + buf->length, (size_t)needed + 1, fmt, ap);
    va_end(ap);
    buf->length += (size_t)needed;
    return RN_OK;
}

void rn_strbuf_free(rn_strbuf *buf)
{
    free(buf->data);
    buf->data = NULL;
    buf->length = 0;
    buf->capacity = 0;
}

rn_status rn_json_append_string(rn_strbuf *buf, const char *text, size_t length)
{
    size_t invalid = rn_utf8_validate(text, length);
    if (invalid != length)
        return rn_error(RN_ERR_INVALID,
                        "string is not valid UTF-8: byte 0x%02x at offset %zu is invalid",
                        (unsigned char)text[invalid], invalid);

    RN_TRY(rn_strbuf_append(buf, "\"", 1));
    size_t run_start = 0;
    for (size_t i = 0; i < length; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;

        /* Flush the bytes that need no escape, then write this one escaped. */
        RN_TRY(rn_strbuf_append(buf, text + run_start, i - run_start));
        run_start = i + 1;
        switch (c) {
        case '"': RN_TRY(rn_strbuf_append(buf, "\\\"", 2)); break;
        case '\\': RN_TRY(rn_strbuf_append(buf, "\\\\", 2)); break;
        case '\b': RN_TRY(rn_strbuf_append(buf, "\\b", 2)); break;
        case '\f': RN_TRY(rn_strbuf_append(buf, "\\f", 2)); break;
        case '\n': RN_TRY(rn_strbuf_append(buf, "\\n", 2)); break;
        case '\r': RN_TRY(rn_strbuf_append(buf, "\\r", 2)); break;
        case '\t': RN_TRY(rn_strbuf_append(buf, "\\t", 2)); break;
        default: RN_TRY(rn_strbuf_appendf(buf, "\\u%04x", c)); break;
        }
    }
    RN_TRY(rn_strbuf_append(buf, text + run_start, length - run_start));
    return rn_strbuf_append(buf, "\"", 1);
}

/* ------------------------------------------------------------------------ */
/* Parser */

typedef struct parser {
    const char *text;
    size_t length;
    size_t pos;
    int depth;
} parser;

static rn_status parse_value(parser *p, rn_json **out);

static rn_status fail_at(size_t offset, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static rn_status fail_at(size_t offset, const char *fmt, ...)
{
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    return rn_error(RN_ERR_FORMAT, "invalid JSON at byte %zu: %s", offset, detail);
}

static rn_status out_of_memory(void)
{
    return rn_error(RN_ERR_NOMEM, "out of memory while parsing JSON");
}

/* Describes the byte at pos for an error message: 'x', byte 0xC3, or the end
 * of the input. */
static const char *describe_byte(const parser *p, char out[32])
{
    if (p->pos >= p->length)
        return "the end of the input";
    unsigned char c = (unsigned char)p->text[p->pos];
    if (c >= 0x20 && c < 0x7F)
        snprintf(out, 32, "'%c'", c);
    else
        snprintf(out, 32, "byte 0x%02x", c);
    return out;
}

static void skip_whitespace(parser *p)
{
    while (p->pos < p->length) {
        char c = p->text[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        p->pos++;
    }
}

static rn_json *new_value(rn_json_type type, size_t offset)
{
    rn_json *value = calloc(1, sizeof *value);
    if (value != NULL) {
        value->type = type;
        value->offset = offset;
    }
    return value;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Reads the four hex digits of a \uXXXX escape whose backslash is at pos. */
static rn_status parse_hex4(parser *p, uint32_t *unit)
{
    size_t start = p->pos;
    *unit = 0;
    if (p->length - p->pos < 6)
        return fail_at(start, "\\u escape needs four hex digits");
    for (size_t i = 2; i < 6; i++) {
        int digit = hex_digit(p->text[p->pos + i]);
        if (digit < 0)
            return fail_at(start, "\\u escape needs four hex digits");
        *unit = *unit * 16 + (uint32_t)digit;
    }
    p->pos += 6;
    return RN_OK;
}

/* Decodes a \uXXXX escape, or a surrogate pair of two, into UTF-8. */
static rn_status parse_unicode_escape(parser *p, rn_strbuf *buf)
{
    size_t start = p->pos;
    uint32_t cp;
    RN_TRY(parse_hex4(p, &cp));

    if (cp >= 0xDC00 && cp <= 0xDFFF)
        return fail_at(start, "\\u%04X is a low surrogate without a high surrogate before it",
                       (unsigned)cp);
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        uint32_t low = 0;
        if (p->length - p->pos < 2 || p->text[p->pos] != '\\' || p->text[p->pos + 1] != 'u')
            return fail_at(start, "\\u%04X is a high surrogate without a low surrogate after it",
                           (unsigned)cp);
        RN_TRY(parse_hex4(p, &low));
        if (low < 0xDC00 || low > 0xDFFF)
            return fail_at(start, "\\u%04X is a high surrogate followed by \\u%04X, "
                           "not by a low surrogate", (unsigned)cp, (unsigned)low);
        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
    }

    char encoded[4];
    size_t n = utf8_encode(cp, encoded);
    return rn_strbuf_append(buf, encoded, n);
}

static rn_status parse_escape(parser *p, rn_strbuf *buf)
{
    if (p->pos + 1 >= p->length)
        return fail_at(p->pos, "unterminated escape sequence");

    char c = p->text[p->pos + 1];
    const char *replacement = NULL;
    switch (c) {
    case '"': replacement = "\""; break;
    case '\\': replacement = "\\"; break;
    case '/': replacement = "/"; break;
    case 'b': replacement = "\b"; break;
    case 'f': replacement = "\f"; break;
    case 'n': replacement = "\n"; break;
    case 'r': replacement = "\r"; break;
    case 't': replacement = "\t"; break;
    case 'u': return parse_unicode_escape(p, buf);
    default: {
        char shown[32];
        p->pos++;
        return fail_at(p->pos - 1, "invalid escape sequence: backslash followed by %s",
                       describe_byte(p, shown));
    }
    }
    p->pos += 2;
    return rn_strbuf_append(buf, replacement, 1);
}

/* Parses a string literal whose opening quote is at pos into a new
 * NUL-terminated buffer. */
static rn_status parse_string(parser *p, char **data, size_t *length)
{
    size_t start = p->pos;
    rn_strbuf buf = {0};
    rn_status status = rn_strbuf_append(&buf, "", 0); /* a non-NULL data even for "" */

    p->pos++;
    while (status == RN_OK) {
        size_t run_start = p->pos;
        while (p->pos < p->length) {
            unsigned char c = (unsigned char)p->text[p->pos];
            if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80)
                break;
            p->pos++;
        }
        status = rn_strbuf_append(&buf, p->text + run_start, p->pos - run_start);
        if (status != RN_OK)
            break;

        if (p->pos >= p->length) {
            status = fail_at(start, "unterminated string");
            break;
        }
        unsigned char c = (unsigned char)p->text[p->pos];
        if (c == '"') {
            p->pos++;
            *data = buf.data;
            *length = buf.length;
            return RN_OK;
        }
        if (c == '\\') {
            status = parse_escape(p, &buf);
        } else if (c < 0x20) {
            status = fail_at(p->pos, "control character 0x%02x in a string must be escaped", c);
        } else {
            size_t n = utf8_sequence_length((const unsigned char *)p->text + p->pos,
                                            p->length - p->pos);
            if (n == 0) {
                status = fail_at(p->pos, "byte 0x%02x in a string is not valid UTF-8", c);
            } else {
                status = rn_strbuf_append(&buf, p->text + p->pos, n);
                p->pos += n;
            }
        }
    }
    rn_strbuf_free(&buf);
    return status;
}

static size_t skip_digits(parser *p)
{
    size_t count = 0;
    while (p->pos < p->length && p->text[p->pos] >= '0' && p->text[p->pos] <= '9') {
        p->pos++;
        count++;
    }
    return count;
}

/* Converts a number literal already checked against the JSON grammar. strtod
 * reads the decimal point of the current locale, so '.' is replaced by it. */
static rn_status convert_double(const char *literal, size_t length, size_t offset,
                                double *value)
{
    const char *point = localeconv()->decimal_point;
    size_t point_length = strlen(point);
    char stack_copy[128];
    size_t copy_size = length * (point_length > 0 ? point_length : 1) + 1;
    char *copy = copy_size <= sizeof stack_copy ? stack_copy : malloc(copy_size);
    if (copy == NULL)
        return out_of_memory();

    size_t n = 0;
    for (size_t i = 0; i < length; i++) {
        if (literal[i] == '.') {
            memcpy(copy + n, point, point_length);
            n += point_length;
        } else {
            copy[n++] = literal[i];
        }
    }
    copy[n] = '\0';

    errno = 0;
    *value = strtod(copy, NULL);
    int overflow = errno == ERANGE && isinf(*value);
    if (copy != stack_copy)
        free(copy);
    if (overflow)
        return fail_at(offset, "number %.*s is too large for a double", (int)length, literal);
    return RN_OK;
}

/* Accumulates the digits of an integer literal into int64_t. Returns 0 on
 * overflow. Negative values accumulate downwards so that INT64_MIN fits. */
static int convert_int64(const char *literal, size_t length, int64_t *value)
{
    int negative = literal[0] == '-';
    int64_t result = 0;

    for (size_t i = negative ? 1 : 0; i < length; i++) {
        int digit = literal[i] - '0';
        if (negative) {
            if (result < (INT64_MIN + digit) / 10)
                return 0;
            result = result * 10 - digit;
        } else {
            if (result > (INT64_MAX - digit) / 10)
                return 0;
            result = result * 10 + digit;
        }
    }
    *value = result;
    return 1;
}

static rn_status parse_number(parser *p, rn_json *value)
{
    size_t start = p->pos;
    int is_integer = 1;
    char shown[32];

    if (p->text[p->pos] == '-')
        p->pos++;
    if (p->pos < p->length && p->text[p->pos] == '0') {
        p->pos++;
        if (p->pos < p->length && p->text[p->pos] >= '0' && p->text[p->pos] <= '9')
            return fail_at(start, "numbers must not have leading zeros");
    } else if (skip_digits(p) == 0) {
        return fail_at(p->pos, "expected a digit, found %s", describe_byte(p, shown));
    }
    if (p->pos < p->length && p->text[p->pos] == '.') {
        is_integer = 0;
        p->pos++;
        if (skip_digits(p) == 0)
            return fail_at(p->pos, "expected a digit after the decimal point, found %s",
                           describe_byte(p, shown));
    }
    if (p->pos < p->length && (p->text[p->pos] == 'e' || p->text[p->pos] == 'E')) {
        is_integer = 0;
        p->pos++;
        if (p->pos < p->length && (p->text[p->pos] == '+' || p->text[p->pos] == '-'))
            p->pos++;
        if (skip_digits(p) == 0)
            return fail_at(p->pos, "expected a digit in the exponent, found %s",
                           describe_byte(p, shown));
    }

    const char *literal = p->text + start;
    size_t length = p->pos - start;
    if (is_integer && convert_int64(literal, length, &value->integer)) {
        value->type = RN_JSON_INT;
        value->number = (double)value->integer;
        return RN_OK;
    }
    value->type = RN_JSON_NUMBER;
    return convert_double(literal, length, start, &value->number);
}

static rn_status parse_literal(parser *p, rn_json *value)
{
    static const struct {
        const char *word;
        rn_json_type type;
        int boolean;
    } literals[] = {
        {"true", RN_JSON_BOOL, 1},
        {"false", RN_JSON_BOOL, 0},
        {"null", RN_JSON_NULL, 0},
    };

    for (size_t i = 0; i < sizeof literals / sizeof literals[0]; i++) {
        size_t n = strlen(literals[i].word);
        if (p->length - p->pos >= n && memcmp(p->text + p->pos, literals[i].word, n) == 0) {
            value->type = literals[i].type;
            value->boolean = literals[i].boolean;
            p->pos += n;
            return RN_OK;
        }
    }
    char shown[32];
    return fail_at(p->pos, "expected a value, found %s", describe_byte(p, shown));
}

static rn_status push_item(rn_json *array, size_t *capacity, rn_json *item)
{
    if (array->item_count == *capacity) {
        size_t grown = *capacity ? *capacity * 2 : 4;
        rn_json **larger = realloc(array->items, grown * sizeof *larger);
        if (larger == NULL)
            return out_of_memory();
        array->items = larger;
        *capacity = grown;
    }
    array->items[array->item_count++] = item;
    return RN_OK;
}

static rn_status parse_array(parser *p, rn_json *array)
{
    size_t capacity = 0;
    char shown[32];

    p->pos++; /* '[' */
    skip_whitespace(p);
    if (p->pos < p->length && p->text[p->pos] == ']') {
        p->pos++;
        return RN_OK;
    }
    for (;;) {
        rn_json *item = NULL;
        RN_TRY(parse_value(p, &item));
        rn_status status = push_item(array, &capacity, item);
        if (status != RN_OK) {
            rn_json_free(item);
            return status;
        }

        skip_whitespace(p);
        if (p->pos < p->length && p->text[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->length && p->text[p->pos] == ']') {
            p->pos++;
            return RN_OK;
        }
        return fail_at(p->pos, "expected ',' or ']' after an array item, found %s",
                       describe_byte(p, shown));
    }
}

static rn_status push_member(rn_json *object, size_t *capacity, rn_json_member member)
{
    if (object->member_count == *capacity) {
        size_t grown = *capacity ? *capacity * 2 : 4;
        rn_json_member *larger = realloc(object->members, grown * sizeof *larger);
        if (larger == NULL)
            return out_of_memory();
        object->members = larger;
        *capacity = grown;
    }
    object->members[object->member_count++] = member;
    return RN_OK;
}

static rn_status parse_object(parser *p, rn_json *object)
{
    size_t capacity = 0;
    char shown[32];

    p->pos++; /* '{' */
    skip_whitespace(p);
    if (p->pos < p->length && p->text[p->pos] == '}') {
        p->pos++;
        return RN_OK;
    }
    for (;;) {
        rn_json_member member = {0};

        skip_whitespace(p);
        if (p->pos >= p->length || p->text[p->pos] != '"')
            return fail_at(p->pos, "expected a string key in an object, found %s",
                           describe_byte(p, shown));
        RN_TRY(parse_string(p, &member.key, &member.key_length));

        skip_whitespace(p);
        rn_status status = RN_OK;
        if (p->pos >= p->length || p->text[p->pos] != ':')
            status = fail_at(p->pos, "expected ':' after object key, found %s",
                             describe_byte(p, shown));
        if (status == RN_OK) {
            p->pos++;
            status = parse_value(p, &member.value);
        }
        if (status == RN_OK)
            status = push_member(object, &capacity, member);
        if (status != RN_OK) {
            free(member.key);
            rn_json_free(member.value);
            return status;
        }

        skip_whitespace(p);
        if (p->pos < p->length && p->text[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->length && p->text[p->pos] == '}') {
            p->pos++;
            return RN_OK;
        }
        return fail_at(p->pos, "expected ',' or '}' after an object member, found %s",
                       describe_byte(p, shown));
    }
}

static rn_status parse_value(parser *p, rn_json **out)
{
    char shown[32];

    *out = NULL;
    skip_whitespace(p);
    if (p->pos >= p->length)
        return fail_at(p->pos, "expected a value, found the end of the input");

    char c = p->text[p->pos];
    rn_json *value = new_value(RN_JSON_NULL, p->pos);
    if (value == NULL)
        return out_of_memory();

    rn_status status;
    if (c == '{' || c == '[') {
        if (p->depth == RN_JSON_MAX_DEPTH) {
            status = fail_at(p->pos, "arrays and objects are nested deeper than %d levels",
                             RN_JSON_MAX_DEPTH);
        } else {
            p->depth++;
            value->type = c == '{' ? RN_JSON_OBJECT : RN_JSON_ARRAY;
            status = c == '{' ? parse_object(p, value) : parse_array(p, value);
            p->depth--;
        }
    } else if (c == '"') {
        value->type = RN_JSON_STRING;
        status = parse_string(p, &value->string, &value->string_length);
    } else if (c == '-' || (c >= '0' && c <= '9')) {
        status = parse_number(p, value);
    } else if (c == 't' || c == 'f' || c == 'n') {
        status = parse_literal(p, value);
    } else {
        status = fail_at(p->pos, "expected a value, found %s", describe_byte(p, shown));
    }

    if (status != RN_OK) {
        rn_json_free(value);
        return status;
    }
    *out = value;
    return RN_OK;
}

rn_status rn_json_parse(const char *text, size_t length, rn_json **out)
{
    parser p = {.text = text, .length = length};
    char shown[32];

    RN_TRY(parse_value(&p, out));
    skip_whitespace(&p);
    if (p.pos < p.length) {
        rn_json_free(*out);
        *out = NULL;
        return fail_at(p.pos, "unexpected %s after the end of the JSON value",
                       describe_byte(&p, shown));
    }
    return RN_OK;
}

void rn_json_free(rn_json *value)
{
    if (value == NULL)
        return;
    free(value->string);
    for (size_t i = 0; i < value->item_count; i++)
        rn_json_free(value->items[i]);
    free(value->items);
    for (size_t i = 0; i < value->member_count; i++) {
        free(value->members[i].key);
        rn_json_free(value->members[i].value);
    }
    free(value->members);
    free(value);
}

const rn_json *rn_json_get(const rn_json *value, const char *key)
{
    if (value == NULL || value->type != RN_JSON_OBJECT)
        return NULL;
    size_t key_length = strlen(key);
    for (size_t i = 0; i < value->member_count; i++) {
        const rn_json_member *member = &value->members[i];
        if (member->key_length == key_length && memcmp(member->key, key, key_length) == 0)
            return member->value;
    }
    return NULL;
}

const char *rn_json_type_name(rn_json_type type)
{
    switch (type) {
    case RN_JSON_NULL: return "null";
    case RN_JSON_BOOL: return "boolean";
    case RN_JSON_INT: return "integer";
    case RN_JSON_NUMBER: return "number";
    case RN_JSON_STRING: return "string";
    case RN_JSON_ARRAY: return "array";
    case RN_JSON_OBJECT: return "object";
    }
    return "unknown";
}
