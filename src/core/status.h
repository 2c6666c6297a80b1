/* Error reporting shared by every layer of the library. */
#ifndef RN_CORE_STATUS_H
#define RN_CORE_STATUS_H

#include <stdio.h>
#include <stdlib.h>

#include "resnet.h"

/* Record a failure message for rn_last_error() and return status, so that
 * callers can write `return rn_error(RN_ERR_IO, "cannot open %s", path);`. */
rn_status rn_error(rn_status status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prefix the current message with more context ("loading x.safetensors: ")
 * when status is a failure. Returns status unchanged. */
rn_status rn_error_prefix(rn_status status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Always-on assertion for programmer mistakes (never for user input). */
#define RN_ASSERT(cond)                                                        \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: internal error: assertion `%s` failed\n",  \
                    __FILE__, __LINE__, #cond);                                \
            abort();                                                           \
        }                                                                      \
    } while (0)

/* Propagate a non-OK status to the caller. */
#define RN_TRY(expr)                                                           \
    do {                                                                       \
        rn_status rn_try_status_ = (expr);                                     \
        if (rn_try_status_ != RN_OK)                                           \
            return rn_try_status_;                                             \
    } while (0)

/* malloc/calloc that abort with a message on failure are deliberately not
 * offered: allocation failures are reported as RN_ERR_NOMEM. */
void *rn_alloc_aligned(size_t nbytes); /* 64-byte aligned, zeroed; NULL on failure */
void rn_free_aligned(void *ptr);

#endif
