#include "core/status.h"

#include <stdarg.h>
#include <string.h>

static _Thread_local char last_error[1024];

rn_status rn_error(rn_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}

rn_status rn_error_prefix(rn_status status, const char *fmt, ...)
{
    char prefix[512];
    char old[sizeof last_error];
    int n;
    va_list ap;

    if (status == RN_OK)
        return status;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, last_error, sizeof old);
    n = snprintf(last_error, sizeof last_error, "%s", prefix);
    if (n >= 0 && (size_t)n < sizeof last_error)
        snprintf(last_error + n, sizeof last_error - n, "%s", old);
    return status;
}

const char *rn_last_error(void)
{
    return last_error;
}

const char *rn_status_name(rn_status status)
{
    switch (status) {
    case RN_OK: return "RN_OK";
    case RN_ERR_INVALID: return "RN_ERR_INVALID";
    case RN_ERR_IO: return "RN_ERR_IO";
    case RN_ERR_FORMAT: return "RN_ERR_FORMAT";
    case RN_ERR_NOMEM: return "RN_ERR_NOMEM";
    case RN_ERR_NUMERIC: return "RN_ERR_NUMERIC";
    case RN_ERR_INTERRUPTED: return "RN_ERR_INTERRUPTED";
    }
    return "RN_ERR_UNKNOWN";
}

void *rn_alloc_aligned(size_t nbytes)
{
    size_t rounded = (nbytes + 63) & ~(size_t)63;
    void *ptr = NULL;

    if (rounded == 0)
        rounded = 64;
    if (posix_memalign(&ptr, 64, rounded) != 0)
        return NULL;
    memset(ptr, 0, rounded);
    return ptr;
}

void rn_free_aligned(void *ptr)
{
    free(ptr);
}
