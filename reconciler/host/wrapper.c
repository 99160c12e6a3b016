/*
 * The job wrapper: one per attempt, the last step of apply's StartJob and the payload's parent.
 *
 * Started by the process layer as
 *
 *     wnr-wrapper RECORD CGROUP_PROCS WORKDIR BASE LOG MAX_SIZE MAX_FILES -- ARGV...
 *
 * in a session of its own, so it outlives the daemon. It moves itself into the
 * job cgroup before anything else, so the payload and everything it forks are in
 * the cgroup from their first instruction; then it forks the payload, held at a
 * gate until the attempt is recorded `running` (so a payload never runs unrecorded,
 * and a daemon never runs it twice), copies the payload's stdout and stderr from a
 * pipe into LOG, waits for it, and records how it ended (exit code or signal, CPU
 * seconds, peak RSS, OOM kills, core files), each record replacing the last
 * atomically (write, rename). BASE holds the JSON members the daemon recorded
 * before the spawn ("spawnedAt", "gpus", "restarts"); every record keeps them.
 *
 * The log is bounded like the kubelet's container logs (containerLogMaxSize,
 * containerLogMaxFiles): LOG never grows past MAX_SIZE bytes; it is rotated to
 * LOG.1, LOG.2, ... keeping MAX_FILES files in all. A record that cannot be written
 * (full, read-only or vanished state dir) is retried with a capped back-off while
 * the wrapper stays alive, so the daemon sees the job still running; output that
 * cannot be written meanwhile is read and counted, never left to block the payload.
 *
 * C, not Python: a CPython interpreter is ~8 MiB of RSS before it imports anything
 * and ~20 ms of CPU to start, per job; this is ~1 MiB and well under a millisecond.
 * Built by setup.py (the package's build step) into reconciler/host/_bin/wnr-wrapper.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Exit codes of the wrapper itself when it never got to run the payload. */
enum { EXIT_USAGE = 2, EXIT_CGROUP = 121, EXIT_SPAWN = 122 };

/* A record write that failed is tried again after 50 ms, doubling up to 5 s. */
enum { RETRY_FIRST_MS = 50, RETRY_MAX_MS = 5000 };

/* Below this a rotated file would hold little but its marker line (models.py has the same
 * minimum for policies.logs.maxSize). */
#define LOG_MIN_SIZE 4096LL

/* After the payload exits, at most this much more is read from the pipe: a grandchild that
 * keeps writing must not keep the wrapper from recording the end. */
#define DRAIN_MAX (1 << 20)

/* The first SIGTERM or SIGINT: the daemon signals every process in the cgroup, and the
 * wrapper stays to record the end (the payload got the same signal). */
static volatile sig_atomic_t terminating;

static void note_signal(int signum) {
    if (!terminating) terminating = signum;
}

/* Where SIGCHLD is reported when the kernel has no pidfd_open (before 5.3): a self-pipe. */
static int sigchld_pipe = -1;

static void note_child(int signum) {
    (void)signum;
    int saved = errno;
    ssize_t ignored = write(sigchld_pipe, "c", 1); /* full pipe: a wake-up is pending anyway */
    (void)ignored;
    errno = saved;
}

/* A growing text buffer; running out of memory here ends the wrapper (nothing to record). */
struct text {
    char *data;
    size_t len, cap;
};

static void add(struct text *t, const char *s, size_t n) {
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 512;
        while (t->len + n + 1 > cap) cap *= 2;
        char *grown = realloc(t->data, cap);
        if (grown == NULL) abort();
        t->data = grown;
        t->cap = cap;
    }
    memcpy(t->data + t->len, s, n);
    t->len += n;
    t->data[t->len] = '\0';
}

/* A string literal, its length known at compile time. */
#define ADD_LITERAL(t, literal) add((t), (literal), sizeof(literal) - 1)

static void addf(struct text *t, const char *format, ...) {
    char small[256];
    va_list args;
    va_start(args, format);
    int n = vsnprintf(small, sizeof small, format, args);
    va_end(args);
    if (n < 0) abort();
    if ((size_t)n < sizeof small) {
        add(t, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (big == NULL) abort();
    va_start(args, format);
    vsnprintf(big, (size_t)n + 1, format, args);
    va_end(args);
    add(t, big, (size_t)n);
    free(big);
}

/* The length of the well-formed UTF-8 sequence at s (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF), or 0 when it is not one: Python's json refuses those. */
static size_t utf8_length(const unsigned char *s) {
    unsigned char low = 0x80, high = 0xbf;
    size_t n;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        n = 2;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        n = 3;
        if (s[0] == 0xe0) low = 0xa0;
        if (s[0] == 0xed) high = 0x9f;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        n = 4;
        if (s[0] == 0xf0) low = 0x90;
        if (s[0] == 0xf4) high = 0x8f;
    } else {
        return 0;
    }
    if (s[1] < low || s[1] > high) return 0;
    for (size_t i = 2; i < n; i++)
        if ((s[i] & 0xc0) != 0x80) return 0;
    return n;
}

/* A JSON string; bytes that are not UTF-8 (a file name, say) become U+FFFD. */
static void add_string(struct text *t, const char *s) {
    ADD_LITERAL(t, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        if (*p == '"' || *p == '\\') {
            ADD_LITERAL(t, "\\");
            add(t, (const char *)p++, 1);
        } else if (*p < 0x20) {
            addf(t, "\\u%04x", *p++);
        } else if (*p < 0x80) {
            add(t, (const char *)p++, 1);
        } else {
            size_t n = utf8_length(p);
            if (n == 0) {
                ADD_LITERAL(t, "\\ufffd");
                p++;
            } else {
                add(t, (const char *)p, n);
                p += n;
            }
        }
    }
    ADD_LITERAL(t, "\"");
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Milliseconds on a clock that wall-clock changes do not move, for back-off deadlines. */
static long long monotonic_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* mkdir every directory above `path` (mkdir -p of its dirname): the state dir, or a job's
 * directory in it, was deleted under a running wrapper. Errors show in the retried write. */
static void make_parents(const char *path) {
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
static size_t write_all(int fd, const char *buf, size_t n) {
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

/* The payload's log: LOG, rotated to LOG.1 .. LOG.<max_files - 1>. `size` counts what the
 * open file holds, markers included, so no file ever exceeds max_size. */
struct log {
    const char *path;
    int fd; /* -1 while it cannot be opened: opening is tried again on the next write */
    long long size, max_size;
    int max_files;
    unsigned long long dropped; /* bytes read from the payload and not written since */
    int error;                  /* why they were dropped */
};

static int log_open(struct log *lg, int truncate) {
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
static void log_note(struct log *lg, const char *format, ...) {
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

/* The payload's side of things: its output pipe (-1 once closed) and the log it goes to. */
struct io {
    int pipe_fd;
    struct log *log;
};

/* Copy what the pipe holds now (one read, non-blocking); returns how much. Closes the pipe
 * at end of file: the payload and all its descendants are done with it. */
static size_t pump_once(struct io *io) {
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
static void wait_ms(struct io *io, long ms) {
    long long deadline = monotonic_ms() + ms;
    for (long long left = ms; left > 0; left = deadline - monotonic_ms()) {
        struct pollfd fds = {.fd = io->pipe_fd, .events = POLLIN};
        if (poll(&fds, 1, (int)left) > 0) pump_once(io);
    }
    log_settle(io->log);
}

/* Replace `path` with the text, atomically; `durable` also syncs it and its directory.
 * On failure nothing is left behind (the temp file is removed) and errno says why. */
static int write_record(const char *path, const struct text *t, int durable) {
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

/* What the record holds beyond BASE, member by member ("phase" first). */
struct record {
    const char *path, *base;
    struct text members;
    struct io *io;
};

/* Write the record, trying again until it lands: a record lost to a full (ENOSPC, EDQUOT),
 * read-only (EROFS), failing (EIO) or deleted (ENOENT) state dir would make the daemon judge
 * the attempt wrongly: a finished job as killed, a started one as never started (and run it
 * again). Meanwhile the wrapper stays alive, so the daemon sees the job running, and keeps
 * copying output. Only a path too long to ever work is given up on. */
static void record_write(struct record *r, int durable) {
    struct text t = {0};
    ADD_LITERAL(&t, "{");
    add(&t, r->members.data, r->members.len);
    if (r->base[0] != '\0') {
        ADD_LITERAL(&t, ", ");
        add(&t, r->base, strlen(r->base));
    }
    ADD_LITERAL(&t, "}");
    long delay = RETRY_FIRST_MS;
    int last_error = 0;
    while (write_record(r->path, &t, durable) != 0) {
        int error = errno;
        if (error != last_error)
            log_note(r->io->log, "wnr-wrapper: cannot write %s: %s; retrying\n", r->path,
                     strerror(error));
        last_error = error;
        if (error == ENAMETOOLONG) break;
        if (error == ENOENT) make_parents(r->path);
        wait_ms(r->io, delay);
        delay = delay * 2 < RETRY_MAX_MS ? delay * 2 : RETRY_MAX_MS;
    }
    if (last_error != 0 && last_error != ENAMETOOLONG)
        log_note(r->io->log, "wnr-wrapper: wrote %s\n", r->path);
    free(t.data);
}

/* Record that the attempt could not start (replacing any `running` members), durably, and
 * say why in the log; `finished` adds when it gave up. */
static void failed_start(struct record *r, const char *message, int finished) {
    free(r->members.data);
    r->members = (struct text){0};
    ADD_LITERAL(&r->members, "\"phase\": \"failed-start\", \"message\": ");
    add_string(&r->members, message);
    if (finished) addf(&r->members, ", \"finishedAt\": %.6f", now());
    log_note(r->io->log, "wnr-wrapper: %s\n", message);
    record_write(r, 1);
}

/* The kernel's count of OOM kills in the job cgroup; -1 without the memory controller. */
static long oom_kills(const char *procs) {
    char path[4096], dir_buf[4096];
    snprintf(dir_buf, sizeof dir_buf, "%s", procs);
    snprintf(path, sizeof path, "%s/memory.events", dirname(dir_buf));
    FILE *f = fopen(path, "re");
    if (f == NULL) return -1;
    char key[64];
    long value, found = -1;
    while (fscanf(f, "%63s %ld", key, &value) == 2)
        if (strcmp(key, "oom_kill") == 0) found = value;
    fclose(f);
    return found;
}

static int is_core_file(const char *name) {
    if (strcmp(name, "core") == 0) return 1;
    if (strncmp(name, "core.", 5) != 0 || name[5] == '\0') return 0;
    for (const char *p = name + 5; *p; p++)
        if (*p < '0' || *p > '9') return 0;
    return 1;
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Core dumps the payload left in its working directory (`core`, `core.<pid>`), sorted. */
static void add_core_files(struct text *t, const char *workdir) {
    char **names = NULL;
    size_t count = 0, cap = 0;
    DIR *dir = opendir(workdir);
    if (dir != NULL) {
        struct dirent *entry;
        while ((entry = readdir(dir)) != NULL) {
            if (!is_core_file(entry->d_name)) continue;
            if (count == cap) {
                size_t grown_cap = cap ? cap * 2 : 8;
                char **grown = realloc(names, grown_cap * sizeof *names);
                if (grown == NULL) break;
                names = grown;
                cap = grown_cap;
            }
            char *name = strdup(entry->d_name);
            if (name == NULL) break;
            names[count++] = name;
        }
        closedir(dir);
    }
    if (count > 1) qsort(names, count, sizeof names[0], by_name);
    ADD_LITERAL(t, "[");
    for (size_t i = 0; i < count; i++) {
        if (i) ADD_LITERAL(t, ", ");
        add_string(t, names[i]);
        free(names[i]);
    }
    ADD_LITERAL(t, "]");
    free(names);
}

static int enter_cgroup(const char *procs) {
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%d", (int)getpid());
    int fd = open(procs, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t w = write(fd, pid, (size_t)n);
    int saved = errno;
    close(fd);
    errno = saved;
    return w == n ? 0 : -1;
}

/* The payload as forked: its pid, the gate that lets it exec, the pipe it reports a failed
 * exec on, and how its exit is noticed (a pidfd, or the SIGCHLD self-pipe). */
struct payload {
    pid_t pid;
    int gate, exec_errors, exit_fd;
};

/* In the child: wait at the gate, then exec the payload with its output on `out`. It starts
 * as from a login: every signal at its default disposition (the daemon's Python ignores
 * SIGPIPE and SIGXFSZ, the wrapper SIGHUP) and none blocked. */
static void run_child(char **command, int out, int gate, int exec_errors) {
    sigset_t none;
    for (int s = 1; s < NSIG; s++)
        if (s != SIGKILL && s != SIGSTOP) signal(s, SIG_DFL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    char go;
    ssize_t n;
    while ((n = read(gate, &go, 1)) < 0 && errno == EINTR) continue;
    if (n != 1) _exit(EXIT_SPAWN); /* the wrapper died before the start was recorded */
    if (dup2(out, STDOUT_FILENO) >= 0 && dup2(out, STDERR_FILENO) >= 0)
        execvp(command[0], command);
    int error = errno;
    ssize_t ignored = write(exec_errors, &error, sizeof error);
    (void)ignored;
    _exit(127);
}

/* The wrapper hears of the payload's exit on a pidfd (Linux 5.3+), else on a self-pipe
 * that a SIGCHLD handler writes to; either way it can poll the output pipe and the exit
 * together, so a grandchild holding the pipe open cannot delay the recorded end. */
static int watch_exit(pid_t pid) {
#if defined(SYS_pidfd_open) && !defined(WNR_NO_PIDFD)
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd >= 0) return fd; /* close-on-exec already */
#else
    (void)pid;
#endif
    int self[2];
    if (pipe2(self, O_CLOEXEC | O_NONBLOCK) != 0) return -1;
    sigchld_pipe = self[1];
    struct sigaction child = {.sa_handler = note_child, .sa_flags = SA_RESTART | SA_NOCLDSTOP};
    sigemptyset(&child.sa_mask);
    sigaction(SIGCHLD, &child, NULL);
    /* A child that ended before the handler existed is found by the first wait4(WNOHANG). */
    return self[0];
}

/* Fork the payload, held at its gate, with stdout and stderr on a pipe that io reads. */
static int fork_payload(char **command, struct io *io, struct payload *p) {
    int out[2], gate[2], errors[2];
    if (pipe2(out, O_CLOEXEC) != 0) return -1;
    if (pipe2(gate, O_CLOEXEC) != 0 || pipe2(errors, O_CLOEXEC) != 0) return -1;
    p->pid = fork();
    if (p->pid < 0) return -1;
    if (p->pid == 0) run_child(command, out[1], gate[0], errors[1]);
    close(out[1]);
    close(gate[0]);
    close(errors[1]);
    fcntl(out[0], F_SETFL, O_NONBLOCK);
    io->pipe_fd = out[0];
    p->gate = gate[1];
    p->exec_errors = errors[0];
    p->exit_fd = watch_exit(p->pid);
    return p->exit_fd < 0 ? -1 : 0;
}

/* Open the gate; returns 0 once the payload runs, or the errno its exec failed with (the
 * exec-error pipe is close-on-exec: end of file means the exec succeeded). A child that died
 * at the gate (the daemon's SIGTERM) fails the write; wait_payload records how it died. */
static int release(struct payload *p) {
    ssize_t n = write(p->gate, "g", 1);
    (void)n;
    close(p->gate);
    int error = 0;
    while ((n = read(p->exec_errors, &error, sizeof error)) < 0 && errno == EINTR) continue;
    close(p->exec_errors);
    return n == (ssize_t)sizeof error ? error : 0;
}

/* How the payload ended; `reaped` is 0 when something else reaped it (the end is unknown). */
struct ending {
    int status, reaped;
    struct rusage usage;
};

/* Whether the payload has ended (reaping it); 0 while it runs. */
static int reap(struct payload *p, struct ending *e) {
    pid_t got;
    while ((got = wait4(p->pid, &e->status, WNOHANG, &e->usage)) < 0 && errno == EINTR) continue;
    if (got < 0) e->reaped = 0;
    return got != 0;
}

/* Copy output until the payload exits; then copy what the pipe still holds (bounded: a
 * grandchild may keep it open and full forever). */
static void wait_payload(struct io *io, struct payload *p, struct ending *e) {
    char wakeups[64];
    e->reaped = 1;
    /* wait4 only when the exit fd says so (a chatty payload costs a poll, a read and a write
     * per wake-up, no more), and once first: a child that died before the SIGCHLD handler
     * existed sent no wake-up. */
    for (int exited = 1; !exited || !reap(p, e);) {
        struct pollfd fds[2] = {{.fd = io->pipe_fd, .events = POLLIN},
                                {.fd = p->exit_fd, .events = POLLIN}};
        exited = 0;
        if (poll(fds, 2, -1) < 0) continue; /* EINTR: a SIGTERM, noted by its handler */
        if (fds[0].revents) pump_once(io);
        exited = fds[1].revents != 0;
        if (exited && sigchld_pipe >= 0)
            while (read(p->exit_fd, wakeups, sizeof wakeups) > 0) continue;
    }
    for (size_t drained = 0, got = 1; io->pipe_fd >= 0 && got > 0 && drained < DRAIN_MAX;)
        drained += got = pump_once(io);
}

/* The record of how the payload ended, written durably. Of the `running` members r holds,
 * everything after the phase carries over (pid, wrapperPid, startedAt). */
static void record_end(struct record *r, const struct ending *e, const char *workdir,
                       const char *procs) {
    size_t phase = sizeof("\"phase\": \"running\"") - 1;
    struct text ended = {0};
    ADD_LITERAL(&ended, "\"phase\": \"exited\"");
    add(&ended, r->members.data + phase, r->members.len - phase);
    if (!e->reaped)
        ADD_LITERAL(&ended, ", \"exitCode\": null, \"signal\": null, \"coreDumped\": false");
    else if (WIFSIGNALED(e->status))
        addf(&ended, ", \"exitCode\": null, \"signal\": %d, \"coreDumped\": %s",
             WTERMSIG(e->status), WCOREDUMP(e->status) ? "true" : "false");
    else
        addf(&ended, ", \"exitCode\": %d, \"signal\": null, \"coreDumped\": false",
             WEXITSTATUS(e->status));
    if (e->reaped) {
        const struct rusage *u = &e->usage;
        double cpu = (double)u->ru_utime.tv_sec + (double)u->ru_utime.tv_usec / 1e6 +
                     (double)u->ru_stime.tv_sec + (double)u->ru_stime.tv_usec / 1e6;
        addf(&ended, ", \"cpuSeconds\": %.3f, \"peakMemoryBytes\": %ld", cpu,
             (long)u->ru_maxrss * 1024L);
    } else {
        ADD_LITERAL(&ended, ", \"cpuSeconds\": null, \"peakMemoryBytes\": null");
    }
    addf(&ended, ", \"finishedAt\": %.6f", now());
    if (terminating)
        addf(&ended, ", \"terminatedBy\": %d", (int)terminating);
    else
        ADD_LITERAL(&ended, ", \"terminatedBy\": null");
    long kills = oom_kills(procs);
    if (kills >= 0)
        addf(&ended, ", \"oomKills\": %ld", kills);
    else
        ADD_LITERAL(&ended, ", \"oomKills\": null");
    ADD_LITERAL(&ended, ", \"coreFiles\": ");
    add_core_files(&ended, workdir);
    free(r->members.data);
    r->members = ended;
    record_write(r, 1);
}

/* The command line, checked. */
struct args {
    const char *record, *procs, *workdir, *base, *log;
    long long max_size;
    int max_files;
    char **command;
};

static int parse_args(int argc, char **argv, struct args *a) {
    if (argc < 10 || strcmp(argv[8], "--") != 0) return -1;
    char *end_size, *end_files;
    a->max_size = strtoll(argv[6], &end_size, 10);
    long files = strtol(argv[7], &end_files, 10);
    if (*end_size != '\0' || *end_files != '\0' || a->max_size <= 0 || files < 1 ||
        files > 1000)
        return -1;
    /* The daemon's model refuses less; a wrapper run by hand gets the minimum. */
    if (a->max_size < LOG_MIN_SIZE) a->max_size = LOG_MIN_SIZE;
    a->max_files = (int)files;
    a->record = argv[1];
    a->procs = argv[2];
    a->workdir = argv[3];
    a->base = argv[4];
    a->log = argv[5];
    a->command = argv + 9;
    return 0;
}

static void keep_signals(void) {
    struct sigaction keep = {.sa_handler = note_signal};
    sigemptyset(&keep.sa_mask);
    sigaction(SIGTERM, &keep, NULL);
    sigaction(SIGINT, &keep, NULL);
    signal(SIGHUP, SIG_IGN);
    /* A gate or log write to a pipe whose reader is gone must fail, not kill the wrapper. */
    signal(SIGPIPE, SIG_IGN);
    /* An inherited SIG_IGN would make the kernel reap the payload before wait4 sees it. */
    signal(SIGCHLD, SIG_DFL);
}

/* Start the payload: fork it at its gate, record `running` (retried until it lands), open
 * the gate. Returns 0, or the errno of a start that failed (recorded as failed-start). */
static int start_payload(struct record *r, const struct args *a, struct payload *p) {
    char message[8192];
    int error = chdir(a->workdir) == 0 ? 0 : errno;
    if (error == 0 && fork_payload(a->command, r->io, p) != 0) error = errno;
    if (error == 0) {
        addf(&r->members,
             "\"phase\": \"running\", \"pid\": %d, \"wrapperPid\": %d, \"startedAt\": %.6f",
             (int)p->pid, (int)getpid(), now());
        record_write(r, 0);
        error = release(p);
        if (error != 0) waitpid(p->pid, NULL, 0);
    }
    if (error != 0) {
        snprintf(message, sizeof message, "cannot run '%s' in %s: %s", a->command[0],
                 a->workdir, strerror(error));
        failed_start(r, message, 1);
    }
    return error;
}

int main(int argc, char **argv) {
    struct args a;
    if (parse_args(argc, argv, &a) != 0) {
        fputs("usage: wnr-wrapper RECORD CGROUP_PROCS WORKDIR BASE LOG MAX_SIZE MAX_FILES -- "
              "ARGV...\n",
              stderr);
        return EXIT_USAGE;
    }
    /* The log exists from the start (empty when the payload writes nothing), as readers
     * expect; should it fail to open, each write tries again. */
    struct log lg = {.path = a.log, .fd = -1, .max_size = a.max_size, .max_files = a.max_files};
    log_open(&lg, 0);
    struct io io = {.pipe_fd = -1, .log = &lg};
    struct record r = {.path = a.record, .base = a.base, .io = &io};

    if (enter_cgroup(a.procs) != 0) {
        char message[8192];
        int error = errno;
        snprintf(message, sizeof message, "cannot enter cgroup %s: [Errno %d] %s", a.procs, error,
                 strerror(error));
        failed_start(&r, message, 0);
        return EXIT_CGROUP;
    }
    keep_signals();
    struct payload p = {.pid = -1, .gate = -1, .exec_errors = -1, .exit_fd = -1};
    if (start_payload(&r, &a, &p) != 0) return EXIT_SPAWN;
    struct ending e;
    wait_payload(&io, &p, &e);
    record_end(&r, &e, a.workdir, a.procs);
    free(r.members.data);
    return 0;
}
