/*
 * The job wrapper: one per attempt, the last step of apply's StartJob and the payload's parent.
 * This file holds its command line, its own signals and main, which calls the other files
 * (wrapper.h lists them).
 *
 * Started by the process layer as
 *
 *     wnr-wrapper RECORD CGROUP_PROCS WORKDIR BASE LOG MAX_SIZE MAX_FILES CREDENTIALS NOFILE \
 *         -- ARGV...
 *
 * in a session of its own, so it outlives the daemon. It moves itself into the
 * job cgroup before anything else, so the payload and everything it forks are in
 * the cgroup from their first instruction; then it forks the payload, held at a
 * gate until the attempt is recorded `running` (so a payload never runs unrecorded,
 * and a daemon never runs it twice) and switched to the user CREDENTIALS names
 * (identity.c) with the soft RLIMIT_NOFILE that NOFILE names (`-`: the wrapper's own; the
 * daemon raised its own for its pidfds and gives its starting one back), copies the
 * payload's stdout and stderr from a pipe into LOG, waits for it, and records how it
 * ended (exit code or signal, CPU seconds, peak RSS, OOM kills, core files), each record
 * replacing the last atomically (write, rename). BASE holds the JSON members the daemon
 * recorded before the spawn ("spawnedAt", "gpus", "restarts"); every record keeps them.
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
 * Built by setup.py (the package's build step) from the .c files of this directory into
 * reconciler/host/_bin/wnr-wrapper.
 */
#include "wrapper.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The first SIGTERM or SIGINT (wrapper.h says why it is kept). */
volatile sig_atomic_t terminating;

static void note_signal(int signum) {
    if (!terminating) terminating = signum;
}

static int parse_args(int argc, char **argv, struct args *a) {
    if (argc < 12 || strcmp(argv[10], "--") != 0) return -1;
    char *end_size, *end_files, *end_nofile;
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
    a->nofile = -1;
    if (strcmp(argv[9], "-") != 0) {
        errno = 0;
        a->nofile = strtoll(argv[9], &end_nofile, 10);
        if (errno != 0 || *end_nofile != '\0' || argv[9][0] < '0' || argv[9][0] > '9') return -1;
    }
    a->command = argv + 11;
    return parse_credentials(argv[8], &a->user);
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

int main(int argc, char **argv) {
    struct args a;
    if (parse_args(argc, argv, &a) != 0) {
        fputs("usage: wnr-wrapper RECORD CGROUP_PROCS WORKDIR BASE LOG MAX_SIZE MAX_FILES "
              "CREDENTIALS NOFILE -- ARGV...\n",
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
    protect_from_oom();
    keep_signals();
    struct payload p = {.pid = -1, .gate = -1, .exec_errors = -1, .exit_fd = -1};
    if (start_payload(&r, &a, &p) != 0) return EXIT_SPAWN;
    struct ending e;
    wait_payload(&io, &p, &e);
    record_end(&r, &e, a.workdir, a.procs);
    free(r.members.data);
    return 0;
}
