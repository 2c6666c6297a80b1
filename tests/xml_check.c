#include "xml_check.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { DEPTH_MAX = 64, NAME_MAX_LEN = 64 };

static int fail(char *error, size_t size, const char *text, const char *p, const char *what)
{
    snprintf(error, size, "%s at byte %ld", what, (long)(p - text));
    return 0;
}

static int name_char(char c)
{
    return isalnum((unsigned char)c) || c == '-' || c == '_' || c == ':' || c == '.';
}

/* Check an entity reference at p ('&'); returns its length or 0. */
static size_t entity_length(const char *p)
{
    static const char *const named[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;"};
    for (size_t k = 0; k < sizeof named / sizeof named[0]; k++)
        if (!strncmp(p, named[k], strlen(named[k])))
            return strlen(named[k]);
    if (p[1] == '#') {
        size_t n = 2;
        int hex = p[2] == 'x';
        n += hex;
        size_t digits = 0;
        while (hex ? isxdigit((unsigned char)p[n]) : isdigit((unsigned char)p[n])) {
            n++;
            digits++;
        }
        if (digits && p[n] == ';')
            return n + 1;
    }
    return 0;
}

int xml_well_formed(const char *text, char *error, size_t size)
{
    char stack[DEPTH_MAX][NAME_MAX_LEN];
    int depth = 0, roots = 0;
    const char *p = text;

    if (!strncmp(p, "<?xml", 5)) {
        p = strstr(p, "?>");
        if (!p)
            return fail(error, size, text, text, "unterminated XML declaration");
        p += 2;
    }
    while (*p) {
        if (*p == '&') {
            size_t n = entity_length(p);
            if (!n)
                return fail(error, size, text, p, "invalid entity reference");
            p += n;
            continue;
        }
        if (*p == '>')
            return fail(error, size, text, p, "'>' outside a tag");
        if (*p != '<') {
            if (depth == 0 && !isspace((unsigned char)*p))
                return fail(error, size, text, p, "text outside the root element");
            p++;
            continue;
        }
        if (!strncmp(p, "<!--", 4)) {
            const char *end = strstr(p, "-->");
            if (!end)
                return fail(error, size, text, p, "unterminated comment");
            p = end + 3;
            continue;
        }
        int closing = p[1] == '/';
        const char *q = p + 1 + closing;
        char name[NAME_MAX_LEN];
        size_t len = 0;
        while (name_char(*q) && len + 1 < sizeof name)
            name[len++] = *q++;
        name[len] = '\0';
        if (len == 0)
            return fail(error, size, text, p, "tag without a name");
        if (closing) {
            while (isspace((unsigned char)*q))
                q++;
            if (*q != '>')
                return fail(error, size, text, q, "malformed closing tag");
            if (depth == 0 || strcmp(stack[depth - 1], name) != 0)
                return fail(error, size, text, p, "closing tag does not match the open one");
            depth--;
            p = q + 1;
            continue;
        }
        /* Attributes: name="value" or name='value'. */
        for (;;) {
            while (isspace((unsigned char)*q))
                q++;
            if (*q == '>' || (q[0] == '/' && q[1] == '>'))
                break;
            if (!name_char(*q))
                return fail(error, size, text, q, "invalid attribute name");
            while (name_char(*q))
                q++;
            if (*q++ != '=')
                return fail(error, size, text, q, "attribute without '='");
            char quote = *q++;
            if (quote != '"' && quote != '\'')
                return fail(error, size, text, q, "unquoted attribute value");
            while (*q && *q != quote) {
                if (*q == '<')
                    return fail(error, size, text, q, "'<' in an attribute value");
                if (*q == '&' && !entity_length(q))
                    return fail(error, size, text, q, "invalid entity in an attribute value");
                q++;
            }
            if (!*q)
                return fail(error, size, text, q, "unterminated attribute value");
            q++;
        }
        if (depth == 0 && ++roots > 1)
            return fail(error, size, text, p, "a second root element");
        if (*q == '/') {
            p = q + 2;
            continue;
        }
        if (depth == DEPTH_MAX)
            return fail(error, size, text, p, "elements nested too deeply");
        strcpy(stack[depth++], name);
        p = q + 1;
    }
    if (depth != 0)
        return fail(error, size, text, p, "unclosed element at the end");
    if (roots != 1)
        return fail(error, size, text, p, "no root element");
    return 1;
}

char *read_text_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (text && fread(text, 1, (size_t)n, f) != (size_t)n) {
        free(text);
        text = NULL;
    }
    if (text)
        text[n] = '\0';
    fclose(f);
    return text;
}
