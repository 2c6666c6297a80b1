/* Whole-file reads, crash-safe writes and directory creation. */
#ifndef RN_IO_FILE_H
#define RN_IO_FILE_H

#include <stddef.h>

#include "resnet.h"

/* Writes the concatenation of `count` chunks to path so that a crash or a
 * failure leaves either the old file or the complete new one, never a partial
 * file. The data goes to "<path>.tmp.<pid>" in the same directory, which is
 * fsynced, renamed over path, and then the directory is fsynced. A chunk with
 * size 0 may have a NULL pointer. On failure the temporary file is removed and
 * RN_ERR_IO names the path and the system error. */
rn_status rn_file_write_atomic(const char *path, const void *const *chunks,
                               const size_t *sizes, int count);

/* Reads a whole file into a new 64-byte aligned buffer with a NUL byte after
 * the last one, so text can be used as a C string. Free *data with
 * rn_free_aligned(). Returns RN_ERR_IO naming the path if the file cannot be
 * read, or RN_ERR_NOMEM. */
rn_status rn_file_read_all(const char *path, void **data, size_t *nbytes);

/* Creates a directory and its missing parents, like `mkdir -p`. An existing
 * directory is not an error, but an existing file of another kind is. */
rn_status rn_mkdir_p(const char *path);

#endif
