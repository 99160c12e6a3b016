/*
 * The payload's output: the pipe the payload writes its stdout and stderr to, copied into
 * LOG, which is bounded and rotated (struct log in wrapper.h), and the wrapper's own notes
 * in it. Called by payload.c (copying while the payload runs), record.c (notes, and copying
 * while a record write is retried) and main.c (opening the log).
 */
#include "wrapper.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Milliseconds on a clock that wall-clock changes do not move, for back-off deadlines. */
static long long monotonic_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int log_open(struct log *lg, int truncate) {
    int flags = O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (truncate ? O_TRUNC : 0);
    lg->fd = open(lg->path, flags, 0644);
    if (lg->fd < 0 && errno == ENOENT) {
        make_parents(lg->path);
        lg->fd = open(lg->path, flags, 0644);
    }
    if (lg->fd < 0) {
        lg->error = errno;
        return -1;
    }
    /* An agent's run.log is appended to across restarts: its bound counts what is there. */
    struct stat st;
    lg->size = fstat(lg->fd, &st) == 0 ? (long long)st.st_size : 0;
    return 0;
}

/* Write a line of the wrapper's own to the open log; 0 when all of it went in. */
static int log_put(struct log *lg, const char *line, size_t n) {
    size_t w = write_all(lg->fd, line, n);
    lg->size += (long long)w;
    if (w == n) return 0;
    lg->error = errno;
    return -1;
}

/* Start a fresh LOG: shift LOG.i to LOG.i+1 (rename over the oldest drops it), LOG to LOG.1,
 * then open LOG empty and say so in its first line. With max_files 1 LOG is emptied. */
static void log_rotate(struct log *lg) {
    char from[PATH_MAX], to[PATH_MAX], line[PATH_MAX + 128];
    int n;
    if (lg->max_files > 1) {
        for (int i = lg->max_files - 1; i >= 1; i--) {
            if (i == 1)
                snprintf(from, sizeof from, "%s", lg->path);
            else
                snprintf(from, sizeof from, "%s.%d", lg->path, i - 1);
            snprintf(to, sizeof to, "%s.%d", lg->path, i);
            rename(from, to); /* ENOENT: fewer files so far, or the directory is gone */
        }
        if (lg->fd >= 0) close(lg->fd);
        /* O_TRUNC: should the rename have failed, the bound still holds. */
        if (log_open(lg, 1) != 0) return;
        char copy[PATH_MAX];
        snprintf(copy, sizeof copy, "%s", lg->path);
        n = snprintf(line, sizeof line, "wnr-wrapper: log rotated; earlier output is in %s.1\n",
                     basename(copy));
    } else {
        if (ftruncate(lg->fd, 0) != 0) {
            lg->error = errno;
            return;
        }
        lg->size = 0;
        n = snprintf(line, sizeof line,
                     "wnr-wrapper: log rotated; earlier output was discarded (maxFiles 1)\n");
    }
    log_put(lg, line, (size_t)n);
}

/* Make room for n more bytes in the open file, rotating when it would pass max_size. */
static void log_reserve(struct log *lg, size_t n) {
    if (lg->size > 0 && lg->size + (long long)n > lg->max_size) log_rotate(lg);
}

/* Once the log takes writes again, say how much output it missed; 0 when nothing is owed. */
static int log_settle(struct log *lg) {
    if (lg->fd < 0 && log_open(lg, 0) != 0) return -1;
    if (lg->dropped == 0) return 0;
    char line[256];
    int n = snprintf(line, sizeof line, "wnr-wrapper: %llu bytes of output dropped: %s\n",
                     lg->dropped, strerror(lg->error));
    log_reserve(lg, (size_t)n);
    if (lg->fd < 0 || log_put(lg, line, (size_t)n) != 0) return -1;
    lg->dropped = 0;
    return 0;
}

/* Copy payload output into the log; what cannot be written is counted, never waited for. */
static void log_output(struct log *lg, const char *buf, size_t n) {
    while (n > 0) {
        if (log_settle(lg) != 0) break;
        if (lg->size >= lg->max_size) log_rotate(lg);
        if (lg->fd < 0) break;
        size_t room = (size_t)(lg->max_size - lg->size);
        size_t chunk = n < room ? n : room;
        size_t w = write_all(lg->fd, buf, chunk);
        lg->size += (long long)w;
        buf += w;
        n -= w;
        if (w < chunk) {
            lg->error = errno;
            break;
        }
    }
    lg->dropped += n;
}

/* A message of the wrapper's own (it has no stderr: the daemon gives it /dev/null). */
void log_note(struct log *lg, const char *format, ...) {
    char line[PATH_MAX + 256];
    va_list args;
    va_start(args, format);
    int n = vsnprintf(line, sizeof line, format, args);
    va_end(args);
    if (n < 0) return;
    if ((size_t)n >= sizeof line) n = (int)sizeof line - 1;
    if (log_settle(lg) != 0) return;
    log_reserve(lg, (size_t)n);
    if (lg->fd >= 0) log_put(lg, line, (size_t)n);
}

/* Copy what the pipe holds now (one read, non-blocking); returns how much. Closes the pipe
 * at end of file: the payload and all its descendants are done with it. */
size_t pump_once(struct io *io) {
    static char buffer[65536];
    ssize_t n = read(io->pipe_fd, buffer, sizeof buffer);
    if (n > 0) {
        log_output(io->log, buffer, (size_t)n);
        return (size_t)n;
    }
    if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        close(io->pipe_fd);
        io->pipe_fd = -1;
    }
    return 0;
}

/* Wait `ms` milliseconds, copying output meanwhile (the payload must never block on a full
 * pipe while a record is being retried). */
void wait_ms(struct io *io, long ms) {
    long long deadline = monotonic_ms() + ms;
    for (long long left = ms; left > 0; left = deadline - monotonic_ms()) {
        struct pollfd fds = {.fd = io->pipe_fd, .events = POLLIN};
        if (poll(&fds, 1, (int)left) > 0) pump_once(io);
    }
    log_settle(io->log);
}
