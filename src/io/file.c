#include "io/file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/status.h"

/* A suggestion for the user that fits the system error, or "". */
static const char *errno_hint(int err)
{
    switch (err) {
    case ENOENT: return " (create the directory first)";
    case EACCES:
    case EPERM: return " (check the permissions of the file and its directory)";
    case EROFS: return " (the file system is read-only; choose another directory)";
    case ENOSPC:
    case EDQUOT: return " (free some disk space or choose another directory)";
    default: return "";
    }
}

static rn_status write_all(int fd, const void *data, size_t nbytes)
{
    const char *p = data;

    while (nbytes > 0) {
        ssize_t written = write(fd, p, nbytes);
        if (written < 0) {
            if (errno == EINTR)
                continue;
            return RN_ERR_IO;
        }
        p += written;
        nbytes -= (size_t)written;
    }
    return RN_OK;
}

/* Flushes the directory entry of path, so that a completed rename survives a
 * crash. */
static rn_status sync_parent_directory(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');

    if (slash == NULL) {
        strcpy(dir, ".");
    } else if (slash == path) {
        strcpy(dir, "/");
    } else {
        size_t length = (size_t)(slash - path);
        if (length >= sizeof dir)
            return rn_error(RN_ERR_IO, "path '%s' is longer than %d bytes", path, PATH_MAX);
        memcpy(dir, path, length);
        dir[length] = '\0';
    }

    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return rn_error(RN_ERR_IO, "failed to open directory '%s' to sync it: %s", dir,
                        strerror(errno));
    int failed = fsync(fd) != 0;
    int err = errno;
    close(fd);

    /* Some file systems cannot fsync a directory, and the rename is done by
     * then anyway, so those errors are ignored. */
    if (failed && err != EINVAL && err != ENOTSUP)
        return rn_error(RN_ERR_IO, "failed to sync directory '%s' after writing '%s': %s",
                        dir, path, strerror(err));
    return RN_OK;
}

rn_status rn_file_write_atomic(const char *path, const void *const *chunks,
                               const size_t *sizes, int count)
{
    char tmp_path[PATH_MAX];
    int length = snprintf(tmp_path, sizeof tmp_path, "%s.tmp.%ld", path, (long)getpid());
    if (length < 0 || (size_t)length >= sizeof tmp_path)
        return rn_error(RN_ERR_IO, "path '%s' is longer than %d bytes", path, PATH_MAX);

    /* O_NOFOLLOW keeps a symbolic link planted at the temporary name from
     * redirecting the write. O_TRUNC reuses a stale file left by a crash. */
    int fd = open(tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (fd < 0) {
        int err = errno;
        return rn_error(RN_ERR_IO, "failed to create '%s' to write '%s': %s%s", tmp_path,
                        path, strerror(err), errno_hint(err));
    }

    const char *step = "write";
    int failed = 0;
    for (int i = 0; i < count && !failed; i++)
        failed = write_all(fd, chunks[i], sizes[i]) != RN_OK;
    if (!failed) {
        step = "sync";
        failed = fsync(fd) != 0;
    }
    int err = errno;
    if (close(fd) != 0 && !failed) {
        step = "close";
        failed = 1;
        err = errno;
    }
    if (!failed) {
        step = "rename";
        failed = rename(tmp_path, path) != 0;
        err = errno;
    }
    if (failed) {
        unlink(tmp_path);
        return rn_error(RN_ERR_IO, "failed to write '%s' (%s of '%s' failed): %s%s", path, step,
                        tmp_path, strerror(err), errno_hint(err));
    }
    return sync_parent_directory(path);
}

rn_status rn_file_read_all(const char *path, void **data, size_t *nbytes)
{
    *data = NULL;
    *nbytes = 0;

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        return rn_error(RN_ERR_IO, "failed to open '%s': %s%s", path, strerror(err),
                        err == ENOENT ? "" : errno_hint(err));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int err = errno;
        close(fd);
        return rn_error(RN_ERR_IO, "failed to stat '%s': %s", path, strerror(err));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return rn_error(RN_ERR_IO, "failed to read '%s': it is a directory, not a file", path);
    }

    /* The size from fstat is only a first guess: pipes and files under /proc
     * report 0, and a file may grow while it is read. */
    size_t capacity = (size_t)st.st_size + 1;
    if (capacity < 4096)
        capacity = 4096;
    char *buffer = rn_alloc_aligned(capacity);
    size_t used = 0;
    rn_status status = RN_OK;

    for (;;) {
        if (buffer == NULL) {
            status = rn_error(RN_ERR_NOMEM, "out of memory reading '%s' (%zu bytes)", path,
                              capacity);
            break;
        }
        if (used + 1 == capacity) {
            char *larger = rn_alloc_aligned(capacity * 2);
            if (larger != NULL)
                memcpy(larger, buffer, used);
            rn_free_aligned(buffer);
            buffer = larger;
            capacity *= 2;
            continue;
        }
        ssize_t got = read(fd, buffer + used, capacity - 1 - used);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            status = rn_error(RN_ERR_IO, "failed to read '%s': %s", path, strerror(errno));
            break;
        }
        if (got == 0)
            break;
        used += (size_t)got;
    }
    close(fd);

    if (status != RN_OK) {
        rn_free_aligned(buffer);
        return status;
    }
    buffer[used] = '\0';
    *data = buffer;
    *nbytes = used;
    return RN_OK;
}

static rn_status make_one_directory(const char *path, const char *full_path)
{
    if (mkdir(path, 0777) == 0)
        return RN_OK;

    int err = errno;
    struct stat st;
    if (err == EEXIST && stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            return RN_OK;
        return rn_error(RN_ERR_IO,
                        "failed to create directory '%s': '%s' exists and is not a directory",
                        full_path, path);
    }
    return rn_error(RN_ERR_IO, "failed to create directory '%s': %s%s", path, strerror(err),
                    errno_hint(err));
}

rn_status rn_mkdir_p(const char *path)
{
    char partial[PATH_MAX];
    size_t length = strlen(path);

    if (length == 0)
        return rn_error(RN_ERR_INVALID, "directory path is empty");
    if (length >= sizeof partial)
        return rn_error(RN_ERR_INVALID, "directory path '%s' is longer than %d bytes", path,
                        PATH_MAX);
    memcpy(partial, path, length + 1);

    /* Create each prefix that ends before a '/', then the whole path. */
    for (size_t i = 1; i < length; i++) {
        if (partial[i] != '/' || partial[i - 1] == '/')
            continue;
        partial[i] = '\0';
        rn_status status = make_one_directory(partial, path);
        partial[i] = '/';
        RN_TRY(status);
    }
    return make_one_directory(partial, path);
}
