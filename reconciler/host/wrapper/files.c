/*
 * The wrapper's file primitives: write all of a buffer, recreate the directories above a
 * path that vanished, replace a file atomically. Used by output.c (the log) and record.c
 * (the attempt records).
 */
#include "wrapper.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

/* mkdir every directory above `path` (mkdir -p of its dirname): the state dir, or a job's
 * directory in it, was deleted under a running wrapper. Errors show in the retried write. */
void make_parents(const char *path) {
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        mkdir(buf, 0755);
        *p = '/';
    }
}

/* Write all of buf unless the file refuses; returns how much was written (errno says why
 * when that is less than n). */
size_t write_all(int fd, const char *buf, size_t n) {
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(fd, buf + done, n - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            if (w == 0) errno = ENOSPC;
            break;
        }
        done += (size_t)w;
    }
    return done;
}

/* Replace `path` with the text, atomically; `durable` also syncs it and its directory.
 * On failure nothing is left behind (the temp file is removed) and errno says why. */
int write_record(const char *path, const struct text *t, int durable) {
    char tmp[PATH_MAX], dir_buf[PATH_MAX], base_buf[PATH_MAX];
    snprintf(dir_buf, sizeof dir_buf, "%s", path);
    snprintf(base_buf, sizeof base_buf, "%s", path);
    char *dir = dirname(dir_buf);
    int n = snprintf(tmp, sizeof tmp, "%s/.%s.%d.tmp", dir, basename(base_buf), (int)getpid());
    if (n < 0 || (size_t)n >= sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    int failed = write_all(fd, t->data, t->len) != t->len || (durable && fsync(fd) != 0);
    int saved = errno;
    /* close reports a delayed write error (NFS, or a quota) that write did not. */
    if (close(fd) != 0 && !failed) {
        failed = 1;
        saved = errno;
    }
    if (!failed && rename(tmp, path) != 0) {
        failed = 1;
        saved = errno;
    }
    if (failed) {
        unlink(tmp);
        errno = saved;
        return -1;
    }
    if (durable) {
        int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir_fd >= 0) {
            fsync(dir_fd);
            close(dir_fd);
        }
    }
    return 0;
}
