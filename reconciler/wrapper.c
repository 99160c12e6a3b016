/*
 * The job wrapper: one per attempt, the last step of apply's StartJob and the payload's parent.
 *
 * Started by the process layer as
 *
 *     wnr-wrapper RECORD CGROUP_PROCS WORKDIR BASE -- ARGV...
 *
 * in a session of its own, so it outlives the daemon. It moves itself into the
 * job cgroup before anything else, so the payload and everything it forks are in
 * the cgroup from their first instruction; then it records `running`, runs the
 * payload, waits for it, and records how it ended (exit code or signal, CPU
 * seconds, peak RSS, OOM kills, core files), each record replacing the last
 * atomically (write, rename). BASE holds the JSON members the daemon recorded
 * before the spawn ("spawnedAt", "gpus", "restarts"); every record keeps them.
 *
 * C, not Python: a CPython interpreter is ~8 MiB of RSS before it imports anything
 * and ~20 ms of CPU to start, per job; this is ~1 MiB and well under a millisecond.
 * Built by setup.py (the package's build step) into reconciler/_bin/wnr-wrapper.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* Exit codes of the wrapper itself when it never got to run the payload. */
enum { EXIT_USAGE = 2, EXIT_CGROUP = 121, EXIT_SPAWN = 122 };

/* The first SIGTERM or SIGINT: the daemon signals every process in the cgroup, and the
 * wrapper stays to record the end (the payload got the same signal). */
static volatile sig_atomic_t terminating;

static void note_signal(int signum) {
    if (!terminating) terminating = signum;
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

/* Replace `path` with the text, atomically; `durable` also syncs it and its directory. */
static int write_record(const char *path, const struct text *t, int durable) {
    char tmp[4096], dir_buf[4096];
    char *copy = strdup(path);
    if (copy == NULL) return -1;
    char *base = basename(copy);
    snprintf(dir_buf, sizeof dir_buf, "%s", path);
    char *dir = dirname(dir_buf);
    int n = snprintf(tmp, sizeof tmp, "%s/.%s.%d.tmp", dir, base, (int)getpid());
    free(copy);
    if (n < 0 || (size_t)n >= sizeof tmp) return -1;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    size_t done = 0;
    while (done < t->len) {
        ssize_t w = write(fd, t->data + done, t->len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
            close(fd);
            unlink(tmp);
            return -1;
        }
        done += (size_t)w;
    }
    if (durable && fsync(fd) != 0) {
        close(fd);
        unlink(tmp);
        return -1;
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        unlink(tmp);
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
};

static void record_write(struct record *r, int durable) {
    struct text t = {0};
    ADD_LITERAL(&t, "{");
    add(&t, r->members.data, r->members.len);
    if (r->base[0] != '\0') {
        ADD_LITERAL(&t, ", ");
        add(&t, r->base, strlen(r->base));
    }
    ADD_LITERAL(&t, "}");
    if (write_record(r->path, &t, durable) != 0)
        fprintf(stderr, "wnr-wrapper: cannot write %s: %s\n", r->path, strerror(errno));
    free(t.data);
}

static void failed_start(struct record *r, const char *message, int finished) {
    ADD_LITERAL(&r->members, "\"phase\": \"failed-start\", \"message\": ");
    add_string(&r->members, message);
    if (finished) addf(&r->members, ", \"finishedAt\": %.6f", now());
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

int main(int argc, char **argv) {
    if (argc < 7 || strcmp(argv[5], "--") != 0) {
        fputs("usage: wnr-wrapper RECORD CGROUP_PROCS WORKDIR BASE -- ARGV...\n", stderr);
        return EXIT_USAGE;
    }
    struct record r = {.path = argv[1], .base = argv[4]};
    const char *procs = argv[2], *workdir = argv[3];
    char **command = argv + 6;
    char message[8192];

    if (enter_cgroup(procs) != 0) {
        int error = errno;
        snprintf(message, sizeof message, "cannot enter cgroup %s: [Errno %d] %s", procs, error,
                 strerror(error));
        failed_start(&r, message, 0);
        return EXIT_CGROUP;
    }

    struct sigaction keep = {.sa_handler = note_signal};
    sigemptyset(&keep.sa_mask);
    sigaction(SIGTERM, &keep, NULL);
    sigaction(SIGINT, &keep, NULL);
    signal(SIGHUP, SIG_IGN);
    /* An inherited SIG_IGN would make the kernel reap the payload before wait4 sees it. */
    signal(SIGCHLD, SIG_DFL);

    pid_t pid;
    int error = chdir(workdir) == 0 ? 0 : errno;
    if (error == 0) {
        /* The payload starts as from a login: every signal at its default disposition (the
         * daemon's Python ignores SIGPIPE and SIGXFSZ, the wrapper SIGHUP) and none blocked. */
        posix_spawnattr_t attr;
        sigset_t defaults, unblocked;
        posix_spawnattr_init(&attr);
        sigfillset(&defaults);
        sigdelset(&defaults, SIGKILL);
        sigdelset(&defaults, SIGSTOP);
        sigemptyset(&unblocked);
        posix_spawnattr_setsigdefault(&attr, &defaults);
        posix_spawnattr_setsigmask(&attr, &unblocked);
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
        error = posix_spawnp(&pid, command[0], NULL, &attr, command, environ);
        posix_spawnattr_destroy(&attr);
    }
    if (error != 0) {
        snprintf(message, sizeof message, "cannot run '%s' in %s: %s", command[0], workdir,
                 strerror(error));
        failed_start(&r, message, 1);
        return EXIT_SPAWN;
    }
    addf(&r.members, "\"phase\": \"running\", \"pid\": %d, \"wrapperPid\": %d, \"startedAt\": %.6f",
         (int)pid, (int)getpid(), now());
    record_write(&r, 0);
    size_t running = sizeof("\"phase\": \"running\"") - 1;

    int status = 0;
    struct rusage usage;
    int reaped = 1;
    while (wait4(pid, &status, 0, &usage) < 0) {
        if (errno == EINTR) continue;
        reaped = 0; /* something else reaped it: how it ended is unknown */
        break;
    }

    /* Everything after the phase carries over: pid, wrapperPid, startedAt. */
    struct text ended = {0};
    ADD_LITERAL(&ended, "\"phase\": \"exited\"");
    add(&ended, r.members.data + running, r.members.len - running);
    if (!reaped)
        ADD_LITERAL(&ended, ", \"exitCode\": null, \"signal\": null, \"coreDumped\": false");
    else if (WIFSIGNALED(status))
        addf(&ended, ", \"exitCode\": null, \"signal\": %d, \"coreDumped\": %s", WTERMSIG(status),
             WCOREDUMP(status) ? "true" : "false");
    else
        addf(&ended, ", \"exitCode\": %d, \"signal\": null, \"coreDumped\": false",
             WEXITSTATUS(status));
    if (reaped) {
        double cpu = (double)usage.ru_utime.tv_sec + (double)usage.ru_utime.tv_usec / 1e6 +
                     (double)usage.ru_stime.tv_sec + (double)usage.ru_stime.tv_usec / 1e6;
        addf(&ended, ", \"cpuSeconds\": %.3f, \"peakMemoryBytes\": %ld", cpu,
             (long)usage.ru_maxrss * 1024L);
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
    free(r.members.data);
    r.members = ended;
    record_write(&r, 1);
    free(ended.data);
    return 0;
}
