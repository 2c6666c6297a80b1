/* A structural XML check for the SVG files resnet.c writes: one root
 * element, balanced and properly nested tags, quoted attributes and valid
 * entity references. It is not a validating parser (no DTD, no namespaces,
 * no CDATA), which the SVG writer never produces. */
#ifndef RN_TESTS_XML_CHECK_H
#define RN_TESTS_XML_CHECK_H

#include <stddef.h>

/* Returns 1 if text is well-formed; otherwise 0 with the reason and the
 * byte offset in error. */
int xml_well_formed(const char *text, char *error, size_t error_size);

/* Read a whole file into a malloc'ed, NUL-terminated string, or NULL. */
char *read_text_file(const char *path);

#endif
