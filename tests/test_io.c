/* Tests of src/io: atomic file writes, the JSON reader and writer helpers,
 * and safetensors reading and writing, including byte-exact compatibility
 * with the reference implementation and every malformed-file check. */
#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/status.h"
#include "io/file.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "test.h"

/* ------------------------------------------------------------------------ */
/* Helpers */

/* A path under the test run's temporary directory. */
static const char *tmp_path(char *out, size_t size, const char *name)
{
    snprintf(out, size, "%s/%s", rn_test_tmpdir(), name);
    return out;
}

static void write_bytes(const char *path, const void *data, size_t nbytes)
{
    FILE *f = fopen(path, "wb");
    CHECK_MSG(f != NULL, "cannot create %s", path);
    if (f == NULL)
        return;
    CHECK(fwrite(data, 1, nbytes, f) == nbytes);
    fclose(f);
}

/* Writes a safetensors file from a header text (unpadded) and a data buffer
 * of data_nbytes bytes counting 0, 1, 2, ... */
static void write_safetensors(const char *path, const char *header, size_t data_nbytes)
{
    size_t header_nbytes = strlen(header);
    size_t total = 8 + header_nbytes + data_nbytes;
    unsigned char *bytes = malloc(total);
    for (int i = 0; i < 8; i++)
        bytes[i] = (unsigned char)((uint64_t)header_nbytes >> (8 * i));
    memcpy(bytes + 8, header, header_nbytes);
    for (size_t i = 0; i < data_nbytes; i++)
        bytes[8 + header_nbytes + i] = (unsigned char)i;
    write_bytes(path, bytes, total);
    free(bytes);
}

/* Counts directory entries whose name contains part. */
static int count_entries_containing(const char *dir, const char *part)
{
    DIR *d = opendir(dir);
    int count = 0;
    if (d == NULL)
        return -1;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (strstr(e->d_name, part) != NULL)
            count++;
    closedir(d);
    return count;
}

#define CHECK_ERROR_CONTAINS(expr, expected_status, part)                      \
    do {                                                                       \
        rn_status got_ = (expr);                                               \
        CHECK_MSG(got_ == (expected_status), "%s returned %s, expected %s",    \
                  #expr, rn_status_name(got_), rn_status_name(expected_status)); \
        CHECK_MSG(strstr(rn_last_error(), (part)) != NULL,                     \
                  "message \"%s\" does not contain \"%s\"", rn_last_error(),   \
                  (part));                                                     \
    } while (0)

/* ------------------------------------------------------------------------ */
/* Files */

TEST(atomic_write_replaces_existing_file)
{
    char dir[512], path[600];
    tmp_path(dir, sizeof dir, "atomic");
    CHECK_OK(rn_mkdir_p(dir));
    snprintf(path, sizeof path, "%s/out.bin", dir);
    write_bytes(path, "old contents that are longer", 28);

    const void *chunks[] = {"new", NULL, "data"};
    size_t sizes[] = {3, 0, 4};
    CHECK_OK(rn_file_write_atomic(path, chunks, sizes, 3));

    void *data = NULL;
    size_t nbytes = 0;
    CHECK_OK(rn_file_read_all(path, &data, &nbytes));
    CHECK(nbytes == 7);
    CHECK(data != NULL);
    if (data != NULL)
        CHECK(memcmp(data, "newdata", 8) == 0); /* 8 bytes: the NUL after the data too */
    rn_free_aligned(data);

    CHECK(count_entries_containing(dir, ".tmp.") == 0);
    CHECK(count_entries_containing(dir, "out.bin") == 1);
}

TEST(atomic_write_failure_removes_temp_file)
{
    char dir[512], path[600];
    tmp_path(dir, sizeof dir, "atomic_fail");
    CHECK_OK(rn_mkdir_p(dir));

    /* Renaming a file over a non-empty directory fails after the temporary
     * file was written, so the cleanup path runs. */
    snprintf(path, sizeof path, "%s/target", dir);
    CHECK_OK(rn_mkdir_p(path));
    char inner[700];
    snprintf(inner, sizeof inner, "%s/keep", path);
    write_bytes(inner, "x", 1);

    const void *chunks[] = {"abc"};
    size_t sizes[] = {3};
    CHECK_ERROR_CONTAINS(rn_file_write_atomic(path, chunks, sizes, 1), RN_ERR_IO, path);
    CHECK_MSG(strstr(rn_last_error(), "rename") != NULL, "message: %s", rn_last_error());
    CHECK(count_entries_containing(dir, ".tmp.") == 0);

    /* A missing directory fails when the temporary file is created. */
    snprintf(path, sizeof path, "%s/missing/out.bin", dir);
    CHECK_ERROR_CONTAINS(rn_file_write_atomic(path, chunks, sizes, 1), RN_ERR_IO,
                         "No such file or directory");
    CHECK_MSG(strstr(rn_last_error(), path) != NULL, "message: %s", rn_last_error());
}

TEST(file_read_all_reports_missing_file)
{
    char path[512];
    tmp_path(path, sizeof path, "does_not_exist.bin");
    void *data = (void *)1;
    size_t nbytes = 1;
    CHECK_ERROR_CONTAINS(rn_file_read_all(path, &data, &nbytes), RN_ERR_IO, path);
    CHECK(data == NULL);
    CHECK(nbytes == 0);

    CHECK_ERROR_CONTAINS(rn_file_read_all(rn_test_tmpdir(), &data, &nbytes), RN_ERR_IO,
                         "directory");
}

TEST(file_read_all_empty_and_unsized_files)
{
    char path[512];
    tmp_path(path, sizeof path, "empty.bin");
    write_bytes(path, "", 0);

    void *data = NULL;
    size_t nbytes = 99;
    CHECK_OK(rn_file_read_all(path, &data, &nbytes));
    CHECK(nbytes == 0);
    CHECK(data != NULL);
    if (data != NULL)
        CHECK(((char *)data)[0] == '\0');
    rn_free_aligned(data);

    /* Files under /proc report size 0, so the buffer must grow as it reads. */
    CHECK_OK(rn_file_read_all("/proc/self/maps", &data, &nbytes));
    CHECK(nbytes > 0);
    CHECK(data != NULL);
    if (data != NULL)
        CHECK(strlen(data) == nbytes);
    rn_free_aligned(data);
}

TEST(file_mkdir_p_creates_parents)
{
    char path[512], file[512];
    tmp_path(path, sizeof path, "mk/a//b/c/");
    CHECK_OK(rn_mkdir_p(path));
    CHECK_OK(rn_mkdir_p(path)); /* existing directories are fine */

    struct stat st;
    tmp_path(path, sizeof path, "mk/a/b/c");
    CHECK(stat(path, &st) == 0);
    CHECK(S_ISDIR(st.st_mode));

    tmp_path(file, sizeof file, "mk/plain");
    write_bytes(file, "x", 1);
    tmp_path(path, sizeof path, "mk/plain/sub");
    CHECK_ERROR_CONTAINS(rn_mkdir_p(path), RN_ERR_IO, "is not a directory");
    CHECK_ERROR_CONTAINS(rn_mkdir_p(""), RN_ERR_INVALID, "empty");
}

/* ------------------------------------------------------------------------ */
/* JSON */

static rn_json *parse_ok(const char *text)
{
    rn_json *root = NULL;
    CHECK_OK(rn_json_parse(text, strlen(text), &root));
    return root;
}

TEST(json_parses_nested_values)
{
    const char *text = " {\"a\": [1, -2.5, true, false, null, \"s\"],\n"
                       "  \"b\": {\"c\": {}}, \"e\": [], \"a\": 7} ";
    rn_json *root = parse_ok(text);
    if (root == NULL)
        return;
    CHECK(root->type == RN_JSON_OBJECT);
    CHECK(root->offset == 1);
    CHECK(root->member_count == 4);

    /* Duplicate keys are kept, and lookups find the first. */
    const rn_json *a = rn_json_get(root, "a");
    CHECK(a == root->members[0].value);
    CHECK(root->members[3].value->integer == 7);
    CHECK(a->type == RN_JSON_ARRAY);
    CHECK(a->item_count == 6);
    if (a->item_count == 6) {
        CHECK(a->items[0]->type == RN_JSON_INT);
        CHECK(a->items[0]->integer == 1);
        CHECK(a->items[1]->type == RN_JSON_NUMBER);
        CHECK(a->items[1]->number == -2.5);
        CHECK(a->items[2]->type == RN_JSON_BOOL);
        CHECK(a->items[2]->boolean == 1);
        CHECK(a->items[3]->type == RN_JSON_BOOL);
        CHECK(a->items[3]->boolean == 0);
        CHECK(a->items[4]->type == RN_JSON_NULL);
        CHECK(a->items[5]->type == RN_JSON_STRING);
        CHECK(strcmp(a->items[5]->string, "s") == 0);
        CHECK(a->items[5]->offset == (size_t)(strstr(text, "\"s\"") - text));
    }

    const rn_json *c = rn_json_get(rn_json_get(root, "b"), "c");
    CHECK(c != NULL);
    if (c != NULL) {
        CHECK(c->type == RN_JSON_OBJECT);
        CHECK(c->member_count == 0);
    }
    const rn_json *e = rn_json_get(root, "e");
    CHECK(e != NULL);
    if (e != NULL) {
        CHECK(e->type == RN_JSON_ARRAY);
        CHECK(e->item_count == 0);
    }
    CHECK(rn_json_get(root, "missing") == NULL);
    CHECK(rn_json_get(a, "a") == NULL); /* not an object */
    rn_json_free(root);
}

TEST(json_string_escapes_and_unicode)
{
    static const struct {
        const char *json;
        const char *expected;
        size_t expected_length;
    } cases[] = {
        {"\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"\\/\b\f\n\r\t", 8},
        {"\"\\u00e9\"", "\xc3\xa9", 2},                      /* U+00E9, 2 bytes */
        {"\"\\u20AC\"", "\xe2\x82\xac", 3},                  /* U+20AC, 3 bytes */
        {"\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80", 4},       /* U+1F600, a surrogate pair */
        {"\"a\\u0000b\"", "a\0b", 3},                        /* NUL inside a string */
        {"\"caf\xc3\xa9 \xf0\x9f\x98\x80\"", "caf\xc3\xa9 \xf0\x9f\x98\x80", 10}, /* raw UTF-8 */
        {"\"\"", "", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rn_json *value = parse_ok(cases[i].json);
        if (value == NULL)
            continue;
        CHECK_MSG(value->type == RN_JSON_STRING, "case %zu: type %s", i,
                  rn_json_type_name(value->type));
        CHECK_MSG(value->string_length == cases[i].expected_length, "case %zu: length %zu", i,
                  value->string_length);
        CHECK_MSG(memcmp(value->string, cases[i].expected, cases[i].expected_length + 1) == 0,
                  "case %zu: wrong bytes", i);
        rn_json_free(value);
    }
}

TEST(json_rejects_invalid_strings)
{
    static const struct {
        const char *json;
        const char *message;
    } cases[] = {
        {"\"\\ud83d\"", "at byte 1: \\uD83D is a high surrogate without a low"},
        {"\"\\ud83dx\"", "high surrogate without a low surrogate"},
        {"\"\\ud83d\\u0041\"", "followed by \\u0041"},
        {"\"\\ude00\"", "low surrogate without a high"},
        {"\"\\x\"", "at byte 1: invalid escape sequence: backslash followed by 'x'"},
        {"\"\\u12G4\"", "four hex digits"},
        {"\"\\u12\"", "four hex digits"},
        {"\"a\tb\"", "at byte 2: control character 0x09"},
        {"\"\xff\"", "at byte 1: byte 0xff in a string is not valid UTF-8"},
        {"\"\xc0\x80\"", "byte 0xc0 in a string is not valid UTF-8"},     /* overlong NUL */
        {"\"\xed\xa0\x80\"", "byte 0xed in a string is not valid UTF-8"}, /* encoded surrogate */
        {"\"\xf4\x90\x80\x80\"", "byte 0xf4"},                             /* above U+10FFFF */
        {"\"\xe2\x82\"", "byte 0xe2"},                                     /* cut short */
        {"\"abc", "at byte 0: unterminated string"},
        {"\"abc\\", "unterminated escape sequence"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rn_json *value = (rn_json *)1;
        rn_status status = rn_json_parse(cases[i].json, strlen(cases[i].json), &value);
        CHECK_MSG(status == RN_ERR_FORMAT, "case %zu returned %s", i, rn_status_name(status));
        CHECK_MSG(value == NULL, "case %zu left a value", i);
        CHECK_MSG(strstr(rn_last_error(), cases[i].message) != NULL,
                  "case %zu: message \"%s\" does not contain \"%s\"", i, rn_last_error(),
                  cases[i].message);
    }
}

/* Parses json, which must be a single number, and checks its type and value. */
static void check_number(const char *json, rn_json_type type, int64_t integer, double number)
{
    rn_json *v = parse_ok(json);
    if (v == NULL)
        return;
    CHECK_MSG(v->type == type, "%s: type %s, expected %s", json, rn_json_type_name(v->type),
              rn_json_type_name(type));
    if (type == RN_JSON_INT)
        CHECK_MSG(v->integer == integer, "%s: integer %lld", json, (long long)v->integer);
    CHECK_MSG(v->number == number, "%s: number %.17g, expected %.17g", json, v->number, number);
    rn_json_free(v);
}

TEST(json_integers_and_overflow)
{
    check_number("9223372036854775807", RN_JSON_INT, INT64_MAX, 9223372036854775807.0);
    check_number("-9223372036854775808", RN_JSON_INT, INT64_MIN, -9223372036854775808.0);

    /* One past either end no longer fits and becomes a double. */
    check_number("9223372036854775808", RN_JSON_NUMBER, 0, 9223372036854775808.0);
    check_number("-9223372036854775809", RN_JSON_NUMBER, 0, -9223372036854775809.0);
    check_number("123456789012345678901234567890", RN_JSON_NUMBER, 0,
                 123456789012345678901234567890.0);

    check_number("-0", RN_JSON_INT, 0, 0.0);
    check_number("1e3", RN_JSON_NUMBER, 0, 1000.0);
    check_number("-1.25E-2", RN_JSON_NUMBER, 0, -0.0125);
    check_number("1e-400", RN_JSON_NUMBER, 0, 0.0); /* underflows to zero, which is allowed */

    static const struct {
        const char *json;
        const char *message;
    } bad[] = {
        {"1e999", "too large for a double"},
        {"01", "leading zeros"},
        {"-01", "leading zeros"},
        {"1.", "at byte 2: expected a digit after the decimal point"},
        {"1.e5", "digit after the decimal point"},
        {"1e", "digit in the exponent"},
        {"-", "at byte 1: expected a digit, found the end of the input"},
        {"+1", "expected a value, found '+'"},
        {".5", "expected a value, found '.'"},
        {"NaN", "expected a value, found 'N'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rn_json *value = NULL;
        rn_status status = rn_json_parse(bad[i].json, strlen(bad[i].json), &value);
        CHECK_MSG(status == RN_ERR_FORMAT, "'%s' returned %s", bad[i].json,
                  rn_status_name(status));
        CHECK_MSG(strstr(rn_last_error(), bad[i].message) != NULL,
                  "'%s': message \"%s\" does not contain \"%s\"", bad[i].json, rn_last_error(),
                  bad[i].message);
        rn_json_free(value);
    }
}

TEST(json_nesting_depth_limit)
{
    char text[2 * (RN_JSON_MAX_DEPTH + 1) + 1];

    /* Exactly the limit parses. */
    memset(text, '[', RN_JSON_MAX_DEPTH);
    memset(text + RN_JSON_MAX_DEPTH, ']', RN_JSON_MAX_DEPTH);
    rn_json *root = NULL;
    CHECK_OK(rn_json_parse(text, 2 * RN_JSON_MAX_DEPTH, &root));
    rn_json_free(root);

    /* One more level fails at the innermost bracket, without recursing on. */
    memset(text, '[', RN_JSON_MAX_DEPTH + 1);
    memset(text + RN_JSON_MAX_DEPTH + 1, ']', RN_JSON_MAX_DEPTH + 1);
    root = (rn_json *)1;
    CHECK_ERROR_CONTAINS(rn_json_parse(text, 2 * (RN_JSON_MAX_DEPTH + 1), &root), RN_ERR_FORMAT,
                         "at byte 64: arrays and objects are nested deeper than 64 levels");
    CHECK(root == NULL);

    /* A deep input far past the limit fails the same way. */
    size_t levels = 20000;
    char *deep = malloc(5 * levels);
    for (size_t i = 0; i < levels; i++)
        memcpy(deep + 5 * i, "{\"k\":", 5);
    CHECK_ERROR_CONTAINS(rn_json_parse(deep, 5 * levels, &root), RN_ERR_FORMAT,
                         "at byte 320: arrays and objects are nested deeper than 64 levels");
    free(deep);
}

TEST(json_rejects_malformed_structure)
{
    static const struct {
        const char *json;
        const char *message;
    } cases[] = {
        {"", "at byte 0: expected a value, found the end of the input"},
        {"   ", "at byte 3: expected a value"},
        {"{} x", "at byte 3: unexpected 'x' after the end of the JSON value"},
        {"[1] [2]", "at byte 4: unexpected '['"},
        {"{}\x01", "unexpected byte 0x01"},
        {"[1,]", "at byte 3: expected a value, found ']'"},
        {"[1 2]", "at byte 3: expected ',' or ']' after an array item, found '2'"},
        {"{\"a\":1,}", "at byte 7: expected a string key in an object, found '}'"},
        {"{\"a\" 1}", "at byte 5: expected ':' after object key, found '1'"},
        {"{\"a\":1 \"b\":2}", "expected ',' or '}' after an object member"},
        {"{a:1}", "expected a string key"},
        {"{\"a\": tru}", "at byte 6: expected a value, found 't'"},
        {"[nul", "at byte 1: expected a value, found 'n'"},
        {"[", "at byte 1: expected a value, found the end of the input"},
        {"{\"a\":", "expected a value, found the end of the input"},
        {"'a'", "expected a value, found '''"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rn_json *value = (rn_json *)1;
        rn_status status = rn_json_parse(cases[i].json, strlen(cases[i].json), &value);
        CHECK_MSG(status == RN_ERR_FORMAT, "'%s' returned %s", cases[i].json,
                  rn_status_name(status));
        CHECK_MSG(value == NULL, "'%s' left a value", cases[i].json);
        CHECK_MSG(strstr(rn_last_error(), cases[i].message) != NULL,
                  "'%s': message \"%s\" does not contain \"%s\"", cases[i].json,
                  rn_last_error(), cases[i].message);
    }

    /* The length bounds the input: a NUL inside it is an error, bytes after
     * it are never read. */
    rn_json *value = NULL;
    CHECK_ERROR_CONTAINS(rn_json_parse("1\0", 2, &value), RN_ERR_FORMAT, "byte 0x00");
    CHECK_OK(rn_json_parse("12345", 2, &value));
    CHECK(value != NULL);
    if (value != NULL)
        CHECK(value->integer == 12);
    rn_json_free(value);
}

TEST(json_append_string_escapes)
{
    rn_strbuf buf = {0};
    const char text[] = "a\"b\\c\n\t\x01\x1f/\xc3\xa9";
    CHECK_OK(rn_json_append_string(&buf, text, sizeof text - 1));
    const char *expected = "\"a\\\"b\\\\c\\n\\t\\u0001\\u001f/\xc3\xa9\"";
    CHECK_MSG(strcmp(buf.data, expected) == 0, "got %s", buf.data);
    CHECK(buf.length == strlen(expected));

    /* The escaped text parses back to the original bytes. */
    rn_json *back = NULL;
    CHECK_OK(rn_json_parse(buf.data, buf.length, &back));
    if (back != NULL) {
        CHECK(back->string_length == sizeof text - 1);
        CHECK(memcmp(back->string, text, sizeof text - 1) == 0);
    }
    rn_json_free(back);

    /* An embedded NUL is written as \u0000. */
    rn_strbuf_free(&buf);
    CHECK_OK(rn_json_append_string(&buf, "x\0y", 3));
    CHECK(strcmp(buf.data, "\"x\\u0000y\"") == 0);

    /* Invalid UTF-8 would make invalid JSON, so it is rejected. */
    size_t before = buf.length;
    CHECK_ERROR_CONTAINS(rn_json_append_string(&buf, "ok\xff", 3), RN_ERR_INVALID,
                         "byte 0xff at offset 2");
    CHECK(buf.length == before);

    CHECK_OK(rn_strbuf_appendf(&buf, "[%d,%s]", 42, "z"));
    CHECK(strcmp(buf.data + before, "[42,z]") == 0);
    rn_strbuf_free(&buf);
    CHECK(buf.data == NULL);
    CHECK(buf.length == 0);
}

TEST(json_utf8_validate)
{
    CHECK(rn_utf8_validate("", 0) == 0);
    CHECK(rn_utf8_validate("abc", 3) == 3);
    CHECK(rn_utf8_validate("\xf4\x8f\xbf\xbf", 4) == 4); /* U+10FFFF */
    CHECK(rn_utf8_validate("\xef\xbf\xbf", 3) == 3);     /* U+FFFF */
    CHECK(rn_utf8_validate("ab\x80", 3) == 2);           /* stray continuation byte */
    CHECK(rn_utf8_validate("a\xe0\x80\x80", 4) == 1);    /* overlong 3-byte form */
    CHECK(rn_utf8_validate("\xf0\x80\x80\x80", 4) == 0); /* overlong 4-byte form */
    CHECK(rn_utf8_validate("\xf5\x80\x80\x80", 4) == 0); /* lead byte past U+10FFFF */
}

/* ------------------------------------------------------------------------ */
/* Safetensors: writing and reading back */

TEST(safetensors_round_trip_dtypes)
{
    char path[512];
    tmp_path(path, sizeof path, "round_trip.safetensors");

    const float f32[6] = {0.5f, -1.0f, 3.25f, 1e-30f, -0.0f, 65504.0f};
    const double f64[2] = {3.141592653589793, -1e300};
    const uint16_t f16[3] = {0x3c00, 0xc000, 0x7bff}; /* 1, -2, 65504 as IEEE half */
    const uint16_t bf16[2] = {0x3f80, 0xff80};        /* 1, -inf as bfloat16 */
    const int64_t i64[3] = {INT64_MIN, 0, INT64_MAX};
    const int32_t i32[4] = {-7, 1 << 30, 0, 42};
    const uint8_t u8[5] = {0, 1, 127, 128, 255}; /* odd size, so later tensors are misaligned */
    const float scalar = 2.0f;

    rn_st_writer w;
    rn_st_writer_init(&w);
    CHECK_OK(rn_st_writer_add(&w, "u8", RN_DTYPE_U8, 1, (int64_t[]){5}, u8));
    CHECK_OK(rn_st_writer_add(&w, "conv.weight", RN_DTYPE_F32, 2, (int64_t[]){2, 3}, f32));
    CHECK_OK(rn_st_writer_add(&w, "f64", RN_DTYPE_F64, 1, (int64_t[]){2}, f64));
    CHECK_OK(rn_st_writer_add(&w, "f16", RN_DTYPE_F16, 1, (int64_t[]){3}, f16));
    CHECK_OK(rn_st_writer_add(&w, "bf16", RN_DTYPE_BF16, 2, (int64_t[]){1, 2}, bf16));
    CHECK_OK(rn_st_writer_add(&w, "bn.num_batches_tracked", RN_DTYPE_I64, 1, (int64_t[]){3},
                              i64));
    CHECK_OK(rn_st_writer_add(&w, "i32", RN_DTYPE_I32, 2, (int64_t[]){2, 2}, i32));
    CHECK_OK(rn_st_writer_add(&w, "scalar", RN_DTYPE_F32, 0, NULL, &scalar));
    CHECK_OK(rn_st_writer_add(&w, "empty", RN_DTYPE_F32, 2, (int64_t[]){0, 4}, NULL));
    CHECK_OK(rn_st_writer_metadata(&w, "format", "pt"));
    CHECK_OK(rn_st_writer_metadata(&w, "arch", "resnet18"));
    CHECK_OK(rn_st_writer_metadata(&w, "note", "caf\xc3\xa9 \"quoted\"\nline"));
    CHECK_OK(rn_st_writer_write(&w, path));
    rn_st_writer_free(&w);

    rn_safetensors st;
    CHECK_OK(rn_safetensors_read(path, &st));
    CHECK(st.count == 9);
    CHECK(st.metadata_count == 3);

    /* Tensors come back in the order they were added, which is offset order. */
    static const char *const order[] = {"u8", "conv.weight", "f64", "f16", "bf16",
                                        "bn.num_batches_tracked", "i32", "scalar", "empty"};
    for (int i = 0; i < st.count && i < 9; i++)
        CHECK_MSG(strcmp(st.tensors[i].name, order[i]) == 0, "tensor %d is %s, expected %s", i,
                  st.tensors[i].name, order[i]);

    const struct {
        const char *name;
        rn_dtype dtype;
        int ndim;
        int64_t shape[2];
        const void *data;
        size_t nbytes;
    } expected[] = {
        {"u8", RN_DTYPE_U8, 1, {5}, u8, sizeof u8},
        {"conv.weight", RN_DTYPE_F32, 2, {2, 3}, f32, sizeof f32},
        {"f64", RN_DTYPE_F64, 1, {2}, f64, sizeof f64},
        {"f16", RN_DTYPE_F16, 1, {3}, f16, sizeof f16},
        {"bf16", RN_DTYPE_BF16, 2, {1, 2}, bf16, sizeof bf16},
        {"bn.num_batches_tracked", RN_DTYPE_I64, 1, {3}, i64, sizeof i64},
        {"i32", RN_DTYPE_I32, 2, {2, 2}, i32, sizeof i32},
        {"scalar", RN_DTYPE_F32, 0, {0}, &scalar, sizeof scalar},
        {"empty", RN_DTYPE_F32, 2, {0, 4}, NULL, 0},
    };
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++) {
        const rn_st_tensor *t = rn_safetensors_find(&st, expected[i].name);
        CHECK_MSG(t != NULL, "tensor %s not found", expected[i].name);
        if (t == NULL)
            continue;
        CHECK_MSG(t->dtype == expected[i].dtype, "%s: dtype %s", t->name,
                  rn_dtype_name(t->dtype));
        CHECK_MSG(t->ndim == expected[i].ndim, "%s: ndim %d", t->name, t->ndim);
        for (int d = 0; d < t->ndim && d < 2; d++)
            CHECK_MSG(t->shape[d] == expected[i].shape[d], "%s: shape[%d] = %lld", t->name, d,
                      (long long)t->shape[d]);
        CHECK_MSG(t->nbytes == expected[i].nbytes, "%s: nbytes %zu", t->name, t->nbytes);
        CHECK_MSG((uintptr_t)t->data % rn_dtype_size(t->dtype) == 0, "%s: data misaligned",
                  t->name);
        if (expected[i].nbytes > 0)
            CHECK_MSG(memcmp(t->data, expected[i].data, expected[i].nbytes) == 0,
                      "%s: data differs", t->name);
    }

    CHECK(rn_safetensors_find(&st, "missing") == NULL);
    CHECK(rn_safetensors_find(&st, "") == NULL);
    const char *arch = rn_safetensors_metadata(&st, "arch");
    CHECK(arch != NULL);
    if (arch != NULL)
        CHECK(strcmp(arch, "resnet18") == 0);
    const char *note = rn_safetensors_metadata(&st, "note");
    CHECK(note != NULL);
    if (note != NULL)
        CHECK(strcmp(note, "caf\xc3\xa9 \"quoted\"\nline") == 0);
    CHECK(rn_safetensors_metadata(&st, "epoch") == NULL);
    CHECK(strcmp(st.metadata_keys[0], "format") == 0);
    rn_safetensors_free(&st);
    CHECK(st.count == 0);
    CHECK(st.tensors == NULL);
    rn_safetensors_free(&st); /* freeing twice is harmless */
}

/* The reference implementation's own serialization tests expect exactly
 * these bytes (huggingface/safetensors, safetensors/src/tensor.rs:
 * test_serialization, test_serialization_forced_alignement, test_empty). */
TEST(safetensors_writer_matches_reference_bytes)
{
    char path[512];
    tmp_path(path, sizeof path, "exact.safetensors");
    const float values[6] = {0, 1, 2, 3, 4, 5};
    static const unsigned char values_le[24] = {
        0, 0, 0, 0, 0, 0, 0x80, 0x3f, 0, 0, 0, 0x40, 0, 0, 0x40, 0x40, 0, 0, 0x80, 0x40,
        0, 0, 0xa0, 0x40,
    };
    static const struct {
        const char *name;
        int ndim;
        int64_t shape[4];
        const char *header; /* exactly as the file must contain it, padding included */
    } cases[] = {
        /* 64 bytes already: no padding. */
        {"attn.0", 3, {1, 2, 3},
         "{\"attn.0\":{\"dtype\":\"F32\",\"shape\":[1,2,3],\"data_offsets\":[0,24]}}"},
        /* 65 bytes: seven spaces of padding. */
        {"attn0", 4, {1, 1, 2, 3},
         "{\"attn0\":{\"dtype\":\"F32\",\"shape\":[1,1,2,3],\"data_offsets\":[0,24]}}       "},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rn_st_writer w;
        rn_st_writer_init(&w);
        CHECK_OK(rn_st_writer_add(&w, cases[i].name, RN_DTYPE_F32, cases[i].ndim,
                                  cases[i].shape, values));
        CHECK_OK(rn_st_writer_write(&w, path));
        rn_st_writer_free(&w);

        size_t header_nbytes = strlen(cases[i].header);
        unsigned char expected[256] = {(unsigned char)header_nbytes};
        memcpy(expected + 8, cases[i].header, header_nbytes);
        memcpy(expected + 8 + header_nbytes, values_le, sizeof values_le);
        size_t expected_nbytes = 8 + header_nbytes + sizeof values_le;

        void *data = NULL;
        size_t nbytes = 0;
        CHECK_OK(rn_file_read_all(path, &data, &nbytes));
        CHECK_MSG(nbytes == expected_nbytes, "case %zu: %zu bytes, expected %zu", i, nbytes,
                  expected_nbytes);
        if (data != NULL && nbytes == expected_nbytes)
            CHECK_MSG(memcmp(data, expected, nbytes) == 0, "case %zu: bytes differ, header is %.*s",
                      i, (int)(nbytes - 8), (char *)data + 8);
        rn_free_aligned(data);
    }

    /* No tensors, with and without metadata. */
    static const struct {
        const char *metadata_key;
        const char *bytes;
        size_t nbytes;
    } empty_cases[] = {
        {NULL, "\x08\0\0\0\0\0\0\0{}      ", 16},
        {"framework", "\x28\0\0\0\0\0\0\0{\"__metadata__\":{\"framework\":\"pt\"}}     ", 48},
    };
    for (size_t i = 0; i < sizeof empty_cases / sizeof empty_cases[0]; i++) {
        rn_st_writer w;
        rn_st_writer_init(&w);
        if (empty_cases[i].metadata_key)
            CHECK_OK(rn_st_writer_metadata(&w, empty_cases[i].metadata_key, "pt"));
        CHECK_OK(rn_st_writer_write(&w, path));
        rn_st_writer_free(&w);

        void *data = NULL;
        size_t nbytes = 0;
        CHECK_OK(rn_file_read_all(path, &data, &nbytes));
        CHECK_MSG(nbytes == empty_cases[i].nbytes, "empty case %zu: %zu bytes, expected %zu", i,
                  nbytes, empty_cases[i].nbytes);
        if (data != NULL && nbytes == empty_cases[i].nbytes)
            CHECK_MSG(memcmp(data, empty_cases[i].bytes, nbytes) == 0,
                      "empty case %zu: bytes differ, header is %.*s", i, (int)(nbytes - 8),
                      (char *)data + 8);
        rn_free_aligned(data);

        rn_safetensors st;
        CHECK_OK(rn_safetensors_read(path, &st));
        CHECK(st.count == 0);
        rn_safetensors_free(&st);
    }
}

/* A file laid out by hand as the format describes, written the way other
 * tools may write it: whitespace in the JSON, keys not in offset order,
 * metadata last, and an F64 tensor after a 1-byte one. */
TEST(safetensors_reads_hand_built_file)
{
    char path[512];
    tmp_path(path, sizeof path, "hand_built.safetensors");

    const char *header = "{\n"
                         "  \"fc.bias\": {\"dtype\": \"F32\", \"shape\": [2],\n"
                         "              \"data_offsets\": [9, 17]},\n"
                         "  \"flag\": {\"data_offsets\": [8, 9], \"shape\": [1], \"dtype\": \"U8\","
                         " \"extra\": null},\n"
                         "  \"step\": {\"dtype\": \"I64\", \"shape\": [], \"data_offsets\": [0, 8]},\n"
                         "  \"weight\": {\"dtype\": \"F64\", \"shape\": [1, 1],"
                         " \"data_offsets\": [17, 25]},\n"
                         "  \"__metadata__\": {\"format\": \"pt\", \"classes\": \"10\"}\n"
                         "}";
    size_t header_nbytes = strlen(header); /* not a multiple of 8 on purpose */
    CHECK(header_nbytes % 8 != 0);

    unsigned char data[25];
    int64_t step = 1234567890123;
    float bias[2] = {1.5f, -2.5f};
    double weight = -0.125;
    memcpy(data, &step, 8);
    data[8] = 0xab;
    memcpy(data + 9, bias, 8);
    memcpy(data + 17, &weight, 8);

    unsigned char file[1024];
    for (int i = 0; i < 8; i++)
        file[i] = (unsigned char)((uint64_t)header_nbytes >> (8 * i));
    memcpy(file + 8, header, header_nbytes);
    memcpy(file + 8 + header_nbytes, data, sizeof data);
    write_bytes(path, file, 8 + header_nbytes + sizeof data);

    rn_safetensors st;
    CHECK_OK(rn_safetensors_read(path, &st));
    CHECK(st.count == 4);
    if (st.count == 4) {
        CHECK(strcmp(st.tensors[0].name, "step") == 0);
        CHECK(strcmp(st.tensors[1].name, "flag") == 0);
        CHECK(strcmp(st.tensors[2].name, "fc.bias") == 0);
        CHECK(strcmp(st.tensors[3].name, "weight") == 0);
    }

    const rn_st_tensor *t = rn_safetensors_find(&st, "step");
    CHECK(t != NULL);
    if (t != NULL) {
        CHECK(t->dtype == RN_DTYPE_I64);
        CHECK(t->ndim == 0);
        CHECK(t->nbytes == 8);
        CHECK(*(const int64_t *)t->data == step);
    }
    t = rn_safetensors_find(&st, "flag");
    CHECK(t != NULL);
    if (t != NULL) {
        CHECK(t->dtype == RN_DTYPE_U8);
        CHECK(*(const uint8_t *)t->data == 0xab);
    }

    /* fc.bias and weight start at odd offsets, so the reader must move them. */
    const float *b = NULL;
    CHECK_OK(rn_safetensors_get_f32(&st, "fc.bias", 1, (int64_t[]){2}, &b));
    if (b != NULL) {
        CHECK((uintptr_t)b % 4 == 0);
        CHECK(b[0] == 1.5f);
        CHECK(b[1] == -2.5f);
    }
    t = rn_safetensors_find(&st, "weight");
    CHECK(t != NULL);
    if (t != NULL) {
        CHECK(t->dtype == RN_DTYPE_F64);
        CHECK((uintptr_t)t->data % 8 == 0);
        CHECK(*(const double *)t->data == weight);
    }

    const char *classes = rn_safetensors_metadata(&st, "classes");
    CHECK(classes != NULL);
    if (classes != NULL)
        CHECK(strcmp(classes, "10") == 0);
    rn_safetensors_free(&st);
}

/* ------------------------------------------------------------------------ */
/* Safetensors: malformed files */

TEST(safetensors_rejects_malformed_headers)
{
    /* Each case is a header, a data buffer size, and part of the message. */
    static const struct {
        const char *header;
        size_t data_nbytes;
        const char *message;
    } cases[] = {
        {"{\"a\": ", 0, "header: invalid JSON at byte 6"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}} x", 4,
         "header: invalid JSON at byte 55: unexpected 'x'"},
        {"{\"a\":\"\xff\"}", 0, "not valid UTF-8"},
        {"[]", 0, "the header must be a JSON object, but it is an array"},
        {"{\"a\": [1]}", 0, "tensor 'a': expected an object with dtype, shape and data_offsets"},
        {"{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
         "tensor 'a': \"dtype\" must be a string such as \"F32\", but it is missing"},
        {"{\"a\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
         "\"dtype\" must be a string such as \"F32\", but it is an integer"},
        {"{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
         "tensor 'a': dtype \"F8_E4M3\" is not supported"},
        {"{\"a\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
         "dtype \"f32\" is not supported"},
        {"{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4,
         "tensor 'a': \"shape\" must be an array of integers, but it is missing"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":4,\"data_offsets\":[0,4]}}", 4,
         "\"shape\" must be an array of integers, but it is an integer"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2,-1],\"data_offsets\":[0,4]}}", 4,
         "tensor 'a': shape[1] must be a non-negative integer"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,4]}}", 4,
         "shape[0] must be a non-negative integer"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,4]}}", 4,
         "shape[0] must be a non-negative integer"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1,
         "tensor 'a': shape has 9 dimensions, more than the 8 supported"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4611686018427387904],"
         "\"data_offsets\":[0,4]}}",
         4, "tensor 'a': the byte size of shape [4611686018427387904, 4611686018427387904] "
            "overflows"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", 20,
         "tensor 'a': dtype F32 and shape [2, 3] need 24 bytes, but data_offsets [0, 20] hold 20"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4,
         "tensor 'a': \"data_offsets\" must be an array of two non-negative integers"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4,
         "\"data_offsets\" must be an array of two"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 4,
         "\"data_offsets\" must be an array of two"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4,
         "\"data_offsets\" must be an array of two non-negative integers"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],"
         "\"data_offsets\":[0,18446744073709551616]}}",
         4, "\"data_offsets\" must be an array of two non-negative integers"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8,
         "tensor 'a': data_offsets [8, 4] end before they begin"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[16],\"data_offsets\":[0,64]}}", 16,
         "tensor 'a': data_offsets [0, 64] extend past the end of the 16-byte data buffer"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
         12, "tensor 'b': data_offsets [4, 12] overlap tensor 'a' [0, 8]"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}",
         20, "bytes [8, 12) of the data buffer belong to no tensor (the next tensor is 'b')"},
        {"{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
         "bytes [0, 4) of the data buffer belong to no tensor"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 12,
         "the data buffer has 12 bytes, but the tensors cover only the first 8"},
        {"{}", 3, "the data buffer has 3 bytes, but the tensors cover only the first 0"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
         8, "tensor name 'a' appears more than once"},
        {"{\"a\\u0000b\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
         "contains a NUL character"},
        {"{\"__metadata__\":{\"epoch\":3}}", 0,
         "metadata key 'epoch': the value is an integer, but \"__metadata__\" values must be "
         "strings"},
        {"{\"__metadata__\":{\"a\":\"x\",\"b\":null}}", 0, "metadata key 'b': the value is null"},
        {"{\"__metadata__\":[\"x\"]}", 0,
         "\"__metadata__\" must be an object of strings, but it is an array"},
        {"{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0,
         "metadata key 'k' appears more than once"},
        {"{\"__metadata__\":{},\"__metadata__\":{}}", 0,
         "more than one \"__metadata__\" entry"},
    };

    char path[512];
    tmp_path(path, sizeof path, "malformed.safetensors");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_safetensors(path, cases[i].header, cases[i].data_nbytes);
        rn_safetensors st;
        rn_status status = rn_safetensors_read(path, &st);
        CHECK_MSG(status == RN_ERR_FORMAT, "case %zu (%s) returned %s", i, cases[i].message,
                  rn_status_name(status));
        CHECK_MSG(strstr(rn_last_error(), cases[i].message) != NULL,
                  "case %zu: message \"%s\" does not contain \"%s\"", i, rn_last_error(),
                  cases[i].message);
        CHECK_MSG(strstr(rn_last_error(), path) != NULL, "case %zu: message \"%s\" lacks the path",
                  i, rn_last_error());
        CHECK_MSG(st.count == 0, "case %zu: count %d after a failed read", i, st.count);
        CHECK_MSG(st.data == NULL, "case %zu: data buffer kept after a failed read", i);
        rn_safetensors_free(&st);
    }
}

TEST(safetensors_rejects_bad_header_size)
{
    char path[512];
    tmp_path(path, sizeof path, "bad_size.safetensors");
    rn_safetensors st;

    write_bytes(path, "", 0);
    CHECK_ERROR_CONTAINS(rn_safetensors_read(path, &st), RN_ERR_FORMAT,
                         "the file is 0 bytes, shorter than the 8-byte header size");

    write_bytes(path, "\x02\0\0\0\0\0\0", 7);
    CHECK_ERROR_CONTAINS(rn_safetensors_read(path, &st), RN_ERR_FORMAT,
                         "the file is 7 bytes, shorter than the 8-byte header size");
    CHECK_MSG(strstr(rn_last_error(), path) != NULL, "message: %s", rn_last_error());

    /* 100 bytes of header announced, 2 present. */
    write_bytes(path, "\x64\0\0\0\0\0\0\0{}", 10);
    CHECK_ERROR_CONTAINS(rn_safetensors_read(path, &st), RN_ERR_FORMAT,
                         "header size 100 exceeds the 2 bytes that follow it");

    /* 2^40 bytes, over the 100 MB limit: rejected before any allocation. */
    write_bytes(path, "\0\0\0\0\0\x01\0\0{}", 10);
    CHECK_ERROR_CONTAINS(rn_safetensors_read(path, &st), RN_ERR_FORMAT,
                         "header size 1099511627776 exceeds the limit of 100000000 bytes");

    /* The largest 64-bit value must not wrap around in any size arithmetic. */
    write_bytes(path, "\xff\xff\xff\xff\xff\xff\xff\xff{}", 10);
    CHECK_ERROR_CONTAINS(rn_safetensors_read(path, &st), RN_ERR_FORMAT,
                         "header size 18446744073709551615 exceeds the limit");

    /* A text file is not mistaken for one. */
    write_bytes(path, "hello, world\n", 13);
    CHECK_ERROR_CONTAINS(rn_safetensors_read(path, &st), RN_ERR_FORMAT, "exceeds the");

    tmp_path(path, sizeof path, "no_such.safetensors");
    CHECK_ERROR_CONTAINS(rn_safetensors_read(path, &st), RN_ERR_IO, path);
    CHECK_ERROR_CONTAINS(rn_safetensors_read(rn_test_tmpdir(), &st), RN_ERR_IO,
                         "not a regular file");
    rn_safetensors_free(&st);
}

/* ------------------------------------------------------------------------ */
/* Safetensors: typed access and writer input checks */

TEST(safetensors_get_f32_reports_mismatches)
{
    char path[512];
    tmp_path(path, sizeof path, "get_f32.safetensors");

    static float weight[16 * 16 * 3 * 3];
    for (int i = 0; i < 16 * 16 * 3 * 3; i++)
        weight[i] = (float)i;
    const int64_t steps = 5;
    const int64_t weight_shape[4] = {16, 16, 3, 3};

    rn_st_writer w;
    rn_st_writer_init(&w);
    CHECK_OK(rn_st_writer_add(&w, "layer1.0.conv1.weight", RN_DTYPE_F32, 4, weight_shape,
                              weight));
    CHECK_OK(rn_st_writer_add(&w, "bn1.num_batches_tracked", RN_DTYPE_I64, 0, NULL, &steps));
    CHECK_OK(rn_st_writer_write(&w, path));
    rn_st_writer_free(&w);

    rn_safetensors st;
    CHECK_OK(rn_safetensors_read(path, &st));

    const float *data = NULL;
    CHECK_OK(rn_safetensors_get_f32(&st, "layer1.0.conv1.weight", 4, weight_shape, &data));
    if (data != NULL) {
        CHECK(data[0] == 0.0f);
        CHECK(data[2303] == 2303.0f);
    }

    CHECK_ERROR_CONTAINS(rn_safetensors_get_f32(&st, "layer1.0.conv1.weight", 4,
                                                (int64_t[]){32, 16, 3, 3}, &data),
                         RN_ERR_FORMAT,
                         "key 'layer1.0.conv1.weight': shape [16, 16, 3, 3] in file, model "
                         "expects [32, 16, 3, 3]");
    CHECK(data == NULL);
    CHECK_MSG(strstr(rn_last_error(), path) != NULL, "message: %s", rn_last_error());

    CHECK_ERROR_CONTAINS(rn_safetensors_get_f32(&st, "layer1.0.conv1.weight", 3,
                                                (int64_t[]){16, 16, 9}, &data),
                         RN_ERR_FORMAT, "shape [16, 16, 3, 3] in file, model expects [16, 16, 9]");

    CHECK_ERROR_CONTAINS(rn_safetensors_get_f32(&st, "fc.weight", 2, (int64_t[]){10, 512}, &data),
                         RN_ERR_FORMAT, "key 'fc.weight' not found among the file's 2 tensors");

    CHECK_ERROR_CONTAINS(rn_safetensors_get_f32(&st, "bn1.num_batches_tracked", 0, NULL, &data),
                         RN_ERR_FORMAT,
                         "key 'bn1.num_batches_tracked': dtype I64 in file, model expects F32");
    rn_safetensors_free(&st);
}

TEST(safetensors_writer_rejects_bad_input)
{
    const float x[2] = {1, 2};
    rn_st_writer w;
    rn_st_writer_init(&w);

    CHECK_OK(rn_st_writer_add(&w, "x", RN_DTYPE_F32, 1, (int64_t[]){2}, x));
    CHECK_ERROR_CONTAINS(rn_st_writer_add(&w, "x", RN_DTYPE_F32, 1, (int64_t[]){2}, x),
                         RN_ERR_INVALID, "tensor 'x' was already added");
    CHECK_ERROR_CONTAINS(rn_st_writer_add(&w, "", RN_DTYPE_F32, 1, (int64_t[]){2}, x),
                         RN_ERR_INVALID, "tensor name is empty");
    CHECK_ERROR_CONTAINS(rn_st_writer_add(&w, "__metadata__", RN_DTYPE_F32, 1, (int64_t[]){2},
                                          x),
                         RN_ERR_INVALID, "reserved");
    CHECK_ERROR_CONTAINS(rn_st_writer_add(&w, "bad\xff", RN_DTYPE_F32, 1, (int64_t[]){2}, x),
                         RN_ERR_INVALID, "tensor name is not valid UTF-8");
    CHECK_ERROR_CONTAINS(rn_st_writer_add(&w, "y", RN_DTYPE_F32, 9,
                                          (int64_t[]){1, 1, 1, 1, 1, 1, 1, 1, 1}, x),
                         RN_ERR_INVALID, "tensor 'y' has 9 dimensions");
    CHECK_ERROR_CONTAINS(rn_st_writer_add(&w, "y", RN_DTYPE_F32, 2, (int64_t[]){2, -1}, x),
                         RN_ERR_INVALID, "tensor 'y': shape[1] is -1");
    CHECK_ERROR_CONTAINS(rn_st_writer_add(&w, "y", RN_DTYPE_F64, 2,
                                          (int64_t[]){INT64_MAX, INT64_MAX}, x),
                         RN_ERR_INVALID, "overflows");
    CHECK(w.count == 1);

    CHECK_ERROR_CONTAINS(rn_st_writer_metadata(&w, "k", "\xc3"), RN_ERR_INVALID,
                         "metadata value is not valid UTF-8");
    CHECK(w.metadata_count == 0);

    /* Setting a key again replaces its value in place. */
    CHECK_OK(rn_st_writer_metadata(&w, "epoch", "1"));
    CHECK_OK(rn_st_writer_metadata(&w, "arch", "resnet18"));
    CHECK_OK(rn_st_writer_metadata(&w, "epoch", "2"));
    CHECK(w.metadata_count == 2);
    CHECK(strcmp(w.metadata_values[0], "2") == 0);

    /* A failed write names the path and leaves nothing behind. */
    char dir[512], path[600];
    tmp_path(dir, sizeof dir, "writer_missing_dir");
    snprintf(path, sizeof path, "%s/w.safetensors", dir);
    CHECK_ERROR_CONTAINS(rn_st_writer_write(&w, path), RN_ERR_IO, path);

    tmp_path(path, sizeof path, "writer_ok.safetensors");
    CHECK_OK(rn_st_writer_write(&w, path));
    rn_st_writer_free(&w);

    rn_safetensors st;
    CHECK_OK(rn_safetensors_read(path, &st));
    const char *epoch = rn_safetensors_metadata(&st, "epoch");
    CHECK(epoch != NULL);
    if (epoch != NULL)
        CHECK(strcmp(epoch, "2") == 0);
    CHECK(st.count == 1);
    rn_safetensors_free(&st);
}

TEST(safetensors_dtype_table)
{
    static const struct {
        rn_dtype dtype;
        const char *name;
        size_t size;
    } expected[] = {
        {RN_DTYPE_F32, "F32", 4}, {RN_DTYPE_F64, "F64", 8}, {RN_DTYPE_F16, "F16", 2},
        {RN_DTYPE_BF16, "BF16", 2}, {RN_DTYPE_I64, "I64", 8}, {RN_DTYPE_I32, "I32", 4},
        {RN_DTYPE_U8, "U8", 1},
    };
    CHECK(sizeof expected / sizeof expected[0] == RN_DTYPE_COUNT);
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++) {
        CHECK(strcmp(rn_dtype_name(expected[i].dtype), expected[i].name) == 0);
        CHECK(rn_dtype_size(expected[i].dtype) == expected[i].size);
    }
}
