/*
 * The payload: the wrapper moves itself into the job cgroup, forks the payload held at a
 * gate, records it `running` (record.c) and opens the gate; then copies its output
 * (output.c) until it exits, heard of on a pidfd or a SIGCHLD self-pipe. Called by main.c.
 */
#include "wrapper.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* Where SIGCHLD is reported when the kernel has no pidfd_open (before 5.3): a self-pipe. */
static int sigchld_pipe = -1;

static void note_child(int signum) {
    (void)signum;
    int saved = errno;
    ssize_t ignored = write(sigchld_pipe, "c", 1); /* full pipe: a wake-up is pending anyway */
    (void)ignored;
    errno = saved;
}

/* The oom_score_adj the wrapper was started with ("0\n" unless its parent set one), for the
 * payload; empty while the wrapper is not protected (then the payload inherits it as is). */
static char inherited_oom_score[16];

static int write_oom_score(const char *value) {
    int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = write(fd, value, strlen(value));
    close(fd);
    return n == (ssize_t)strlen(value) ? 0 : -1;
}

void protect_from_oom(void) {
    char score[sizeof inherited_oom_score] = "";
    int fd = open("/proc/self/oom_score_adj", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    ssize_t n = read(fd, score, sizeof score - 1);
    close(fd);
    if (n <= 0) return;
    score[n] = '\0';
    /* Lowering the score needs CAP_SYS_RESOURCE: an unprivileged wrapper stays as it was
     * (and a job OOM may then take it too; the daemon reports the record it left). */
    if (write_oom_score("-1000") == 0) memcpy(inherited_oom_score, score, sizeof score);
}

int enter_cgroup(const char *procs) {
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

/* The payload gets the soft RLIMIT_NOFILE the daemon started with back (the daemon raised
 * its own to the hard limit for the pidfds it holds), so it sees what it would elsewhere;
 * never above the hard limit, which stays as inherited. Lowering it needs no privilege. */
static int restore_nofile(long long soft) {
    struct rlimit lim;
    if (soft < 0) return 0;
    if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return -1;
    if (lim.rlim_max == RLIM_INFINITY || (rlim_t)soft < lim.rlim_max)
        lim.rlim_cur = (rlim_t)soft;
    else
        lim.rlim_cur = lim.rlim_max;
    return setrlimit(RLIMIT_NOFILE, &lim);
}

/* What the child reports on the exec-error pipe when it cannot run the payload. */
enum { FAILED_EXEC, FAILED_SWITCH };
struct child_error {
    int stage, error;
};

static void child_failed(int exec_errors, int stage) {
    struct child_error failed = {stage, errno};
    ssize_t ignored = write(exec_errors, &failed, sizeof failed);
    (void)ignored;
    _exit(127);
}

/* In the child: wait at the gate, switch to the job's user, then exec the payload with its
 * output on `out`. It starts as from a login: every signal at its default disposition (the
 * daemon's Python ignores SIGPIPE and SIGXFSZ, the wrapper SIGHUP) and none blocked. */
static void run_child(const struct args *a, int out, int gate, int exec_errors) {
    sigset_t none;
    for (int s = 1; s < NSIG; s++)
        if (s != SIGKILL && s != SIGSTOP) signal(s, SIG_DFL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    char go;
    ssize_t n;
    while ((n = read(gate, &go, 1)) < 0 && errno == EINTR) continue;
    if (n != 1) _exit(EXIT_SPAWN); /* the wrapper died before the start was recorded */
    /* Raising one's own score needs no privilege; a payload left at -1000 would be spared
     * by the OOM killer, which would then kill the wrapper's neighbours instead. */
    if (inherited_oom_score[0] != '\0' && write_oom_score(inherited_oom_score) != 0)
        _exit(EXIT_SPAWN);
    if (restore_nofile(a->nofile) != 0) _exit(EXIT_SPAWN);
    if (switch_credentials(&a->user) != 0) child_failed(exec_errors, FAILED_SWITCH);
    if (dup2(out, STDOUT_FILENO) >= 0 && dup2(out, STDERR_FILENO) >= 0)
        execvp(a->command[0], a->command);
    child_failed(exec_errors, FAILED_EXEC);
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
static int fork_payload(const struct args *a, struct io *io, struct payload *p) {
    int out[2], gate[2], errors[2];
    if (pipe2(out, O_CLOEXEC) != 0) return -1;
    if (pipe2(gate, O_CLOEXEC) != 0 || pipe2(errors, O_CLOEXEC) != 0) return -1;
    p->pid = fork();
    if (p->pid < 0) return -1;
    if (p->pid == 0) run_child(a, out[1], gate[0], errors[1]);
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

/* Open the gate; returns once the payload runs (all zero), or with the stage and errno that
 * stopped it (the exec-error pipe is close-on-exec: end of file means the exec succeeded). A
 * child that died at the gate (the daemon's SIGTERM) fails the write; wait_payload records
 * how it died. */
static struct child_error release(struct payload *p) {
    ssize_t n = write(p->gate, "g", 1);
    (void)n;
    close(p->gate);
    struct child_error failed = {0, 0};
    while ((n = read(p->exec_errors, &failed, sizeof failed)) < 0 && errno == EINTR) continue;
    close(p->exec_errors);
    return n == (ssize_t)sizeof failed ? failed : (struct child_error){0, 0};
}

/* Start the payload: fork it at its gate, record `running` (retried until it lands), open
 * the gate. Returns 0, or the errno of a start that failed (recorded as failed-start). */
int start_payload(struct record *r, const struct args *a, struct payload *p) {
    char message[8192];
    struct child_error failed = {FAILED_EXEC, chdir(a->workdir) == 0 ? 0 : errno};
    if (failed.error == 0 && fork_payload(a, r->io, p) != 0) failed.error = errno;
    if (failed.error == 0) {
        addf(&r->members,
             "\"phase\": \"running\", \"pid\": %d, \"wrapperPid\": %d, \"startedAt\": %.6f",
             (int)p->pid, (int)getpid(), now());
        record_write(r, 0);
        failed = release(p);
        if (failed.error != 0) waitpid(p->pid, NULL, 0);
    }
    if (failed.error == 0) return 0;
    if (failed.stage == FAILED_SWITCH)
        snprintf(message, sizeof message, "cannot run '%s' as uid %u gid %u: %s", a->command[0],
                 (unsigned)a->user.uid, (unsigned)a->user.gid, strerror(failed.error));
    else
        snprintf(message, sizeof message, "cannot run '%s' in %s: %s", a->command[0],
                 a->workdir, strerror(failed.error));
    failed_start(r, message, 1);
    return failed.error;
}

/* Whether the payload has ended (reaping it); 0 while it runs. */
static int reap(struct payload *p, struct ending *e) {
    pid_t got;
    while ((got = wait4(p->pid, &e->status, WNOHANG, &e->usage)) < 0 && errno == EINTR) continue;
    if (got < 0) e->reaped = 0;
    return got != 0;
}

/* Copy output until the payload exits; then copy what the pipe still holds (bounded: a
 * grandchild may keep it open and full forever). */
void wait_payload(struct io *io, struct payload *p, struct ending *e) {
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
