/* resnet.c public API.
 *
 * Every call that can fail returns an rn_status; on failure rn_last_error()
 * returns a message that names the value, the file and the fix. The library
 * never exits the process. */
#ifndef RESNET_H
#define RESNET_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RN_VERSION "0.1.0"

typedef enum rn_status {
    RN_OK = 0,
    RN_ERR_INVALID,     /* an argument or configuration value is invalid */
    RN_ERR_IO,          /* a file could not be opened, read or written */
    RN_ERR_FORMAT,      /* a file is malformed or does not fit the model */
    RN_ERR_NOMEM,       /* an allocation failed */
    RN_ERR_NUMERIC,     /* a loss or value became NaN or infinite */
    RN_ERR_INTERRUPTED, /* the user asked to stop (SIGINT) */
} rn_status;

/* Message of the most recent failure on this thread ("" if none). */
const char *rn_last_error(void);

/* Name of a status value, such as "RN_ERR_IO". */
const char *rn_status_name(rn_status status);

#ifdef __cplusplus
}
#endif
#endif
