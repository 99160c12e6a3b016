/*
 * The job wrapper's one header: the limits, structs and functions its files share.
 *
 * The wrapper (one per attempt; main.c says what it does) is built from the .c files beside
 * this one into the one program reconciler/host/_bin/wnr-wrapper, by setup.py:
 *
 *     main.c     the command line, the wrapper's own signals, main
 *     payload.c  entering the job cgroup, the payload forked at its gate, waiting for its exit
 *     record.c   the attempt records (running, exited, failed-start), retried until they land
 *     output.c   the payload's output: the pipe it writes to, the log it goes to, rotation
 *     text.c     the growing text buffer the records are built in, JSON strings
 *     files.c    writing all of a buffer, recreating vanished directories, atomic replacement
 *     identity.c the user the payload runs as (CREDENTIALS), switched to in the payload's child
 *
 * Every .c file includes this header first: _GNU_SOURCE must precede any system header.
 */
#ifndef WNR_WRAPPER_H
#define WNR_WRAPPER_H

#define _GNU_SOURCE
#include <signal.h>
#include <stddef.h>
#include <sys/resource.h>
#include <sys/types.h>

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
 * wrapper stays to record the end (the payload got the same signal). Set in main.c,
 * recorded by record.c. */
extern volatile sig_atomic_t terminating;

/* text.c */

/* A growing text buffer; running out of memory here ends the wrapper (nothing to record). */
struct text {
    char *data;
    size_t len, cap;
};

void add(struct text *t, const char *s, size_t n);
/* A string literal, its length known at compile time. */
#define ADD_LITERAL(t, literal) add((t), (literal), sizeof(literal) - 1)
void addf(struct text *t, const char *format, ...);
void add_string(struct text *t, const char *s);

/* files.c */

void make_parents(const char *path);
size_t write_all(int fd, const char *buf, size_t n);
int write_record(const char *path, const struct text *t, int durable);

/* output.c */

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

/* The payload's side of things: its output pipe (-1 once closed) and the log it goes to. */
struct io {
    int pipe_fd;
    struct log *log;
};

int log_open(struct log *lg, int truncate);
void log_note(struct log *lg, const char *format, ...);
size_t pump_once(struct io *io);
void wait_ms(struct io *io, long ms);

/* record.c */

/* What the record holds beyond BASE, member by member ("phase" first). */
struct record {
    const char *path, *base;
    struct text members;
    struct io *io;
};

/* How the payload ended; `reaped` is 0 when something else reaped it (the end is unknown). */
struct ending {
    int status, reaped;
    struct rusage usage;
};

double now(void);
void record_write(struct record *r, int durable);
void failed_start(struct record *r, const char *message, int finished);
void record_end(struct record *r, const struct ending *e, const char *workdir,
                const char *procs);

/* identity.c */

/* The user the payload runs as; `set` is 0 when it keeps the wrapper's own identity. */
struct credentials {
    int set;
    uid_t uid;
    gid_t gid;
    gid_t *groups;
    size_t count;
};

int parse_credentials(const char *text, struct credentials *c);
/* setgroups, setresgid, setresuid, checked; -1 with errno when any fails. */
int switch_credentials(const struct credentials *c);

/* main.c */

/* The command line, checked. */
struct args {
    const char *record, *procs, *workdir, *base, *log;
    long long max_size;
    int max_files;
    struct credentials user;
    long long nofile; /* the payload's soft RLIMIT_NOFILE; -1: the wrapper's own */
    char **command;
};

/* payload.c */

/* The payload as forked: its pid, the gate that lets it exec, the pipe it reports a failed
 * exec on, and how its exit is noticed (a pidfd, or the SIGCHLD self-pipe). */
struct payload {
    pid_t pid;
    int gate, exec_errors, exit_fd;
};

int enter_cgroup(const char *procs);
/* Exempt the wrapper from the OOM killer (oom_score_adj -1000), which memory.oom.group
 * honours: a job's OOM kills its payload whole, never the wrapper that records how it
 * ended. The payload gets the score the wrapper had back before it execs. */
void protect_from_oom(void);
int start_payload(struct record *r, const struct args *a, struct payload *p);
void wait_payload(struct io *io, struct payload *p, struct ending *e);

#endif
