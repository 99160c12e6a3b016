/*
 * wnr_spank.c: a Slurm SPANK plugin that hands each job step's `user` cgroup to the
 * job's user, so that a pilot running `wnr run --root auto` in the step can manage
 * it, and removes what the pilot left there when the step ends.
 *
 * Slurm's cgroup/v2 plugin (22.05) leaves job_<id>/step_<s>/user and its delegation
 * files owned by root and enables only `cpuset cpu memory`. In slurmstepd (remote
 * context, as root) this plugin:
 *  - slurm_spank_task_post_fork (after task_0 exists, before the task execs): enables
 *    the configured controllers from the slurmstepd scope down to the step, so that
 *    `user/` offers them, and chowns `user/` with its cgroup.procs,
 *    cgroup.subtree_control and cgroup.threads to the job's user;
 *  - slurm_spank_exit (after Slurm has killed the tasks, before slurmstepd removes
 *    the step's cgroups): cgroup.kills and removes, deepest first, every cgroup the
 *    user made below `user/` (never Slurm's own task_* directories), so that
 *    Slurm's own cleanup succeeds and no Epilog is needed.
 * The extern step is skipped. On any error it logs and returns success: the job then
 * runs undelegated; it never fails a job or drains a node.
 *
 * plugstack.conf:  required /usr/lib/x86_64-linux-gnu/slurm-wlm/wnr_spank.so [ARG...]
 *   controllers=cpu,memory,pids,io   (default) controllers to enable, comma-separated
 *   scope=/sys/fs/cgroup/...scope     the slurmstepd scope; default: found from
 *                                     slurmstepd's own cgroup, else
 *                                     system.slice/<host>_slurmstepd.scope or
 *                                     system.slice/slurmstepd.scope
 * Build: `make spank` (needs libslurm-dev for <slurm/spank.h>).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include <slurm/slurm.h>
#include <slurm/spank.h>

SPANK_PLUGIN(wnr_delegate, 1);

#define MOUNT "/sys/fs/cgroup"
#define CGROUP2_MAGIC 0x63677270
#define MAX_CONTROLLERS 8
#define KILL_WAIT_MS 10000

static char controllers[MAX_CONTROLLERS][16] = {"cpu", "memory", "pids", "io"};
static int n_controllers = 4;
static char scope_arg[PATH_MAX];
/* The step's user cgroup, found in task_post_fork and cleaned in exit (same process). */
static char user_dir[PATH_MAX];
static int delegated;

static void parse_args(int ac, char **av) {
    for (int i = 0; i < ac; i++) {
        if (strncmp(av[i], "controllers=", 12) == 0) {
            char list[256], *save = NULL;
            snprintf(list, sizeof list, "%s", av[i] + 12);
            n_controllers = 0;
            for (char *c = strtok_r(list, ",", &save); c && n_controllers < MAX_CONTROLLERS;
                 c = strtok_r(NULL, ",", &save)) {
                if (strspn(c, "abcdefghijklmnopqrstuvwxyz_") != strlen(c) || strlen(c) > 15) {
                    slurm_error("wnr_spank: ignoring controller '%s'", c);
                    continue;
                }
                snprintf(controllers[n_controllers++], 16, "%s", c);
            }
        } else if (strncmp(av[i], "scope=", 6) == 0 && av[i][6] == '/') {
            snprintf(scope_arg, sizeof scope_arg, "%s", av[i] + 6);
        } else {
            slurm_error("wnr_spank: ignoring unknown argument '%s'", av[i]);
        }
    }
}

/* DIR/NAME into a PATH_MAX buffer; -1 when it does not fit. */
static int join(char *out, const char *dir, const char *name) {
    return snprintf(out, PATH_MAX, "%s/%s", dir, name) < PATH_MAX ? 0 : -1;
}

static int is_cgroup2(const char *path) {
    struct statfs fs;
    return statfs(path, &fs) == 0 && fs.f_type == CGROUP2_MAGIC;
}

static void step_name(uint32_t step, char *out, size_t size) {
    if (step == SLURM_BATCH_SCRIPT)
        snprintf(out, size, "step_batch");
    else if (step == SLURM_INTERACTIVE_STEP)
        snprintf(out, size, "step_interactive");
    else
        snprintf(out, size, "step_%u", step);
}

/* slurmstepd lives in <scope>/job_<id>/step_<s>/slurm: its scope is what precedes job_<id>. */
static int scope_of_self(uint32_t job, char *out, size_t size) {
    char line[PATH_MAX + 8], marker[32];
    int found = 0;
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (!f)
        return 0;
    snprintf(marker, sizeof marker, "/job_%u/", job);
    while (!found && fgets(line, sizeof line, f)) {
        char *at = strstr(line, marker);
        if (strncmp(line, "0::/", 4) == 0 && at) {
            *at = '\0';
            found = snprintf(out, size, "%s%s", MOUNT, line + 3) < (int)size;
        }
    }
    fclose(f);
    return found;
}

static int find_scope(uint32_t job, char *out, size_t size) {
    char host[256] = "";
    if (scope_arg[0])
        return snprintf(out, size, "%s", scope_arg) < (int)size;
    if (scope_of_self(job, out, size))
        return 1;
    gethostname(host, sizeof host - 1);
    host[strcspn(host, ".")] = '\0';
    snprintf(out, size, "%s/system.slice/%s_slurmstepd.scope", MOUNT, host);
    if (host[0] && access(out, F_OK) == 0)
        return 1;
    snprintf(out, size, "%s/system.slice/slurmstepd.scope", MOUNT);
    return access(out, F_OK) == 0;
}

static int write_file(const char *dir, const char *name, const char *text) {
    char path[PATH_MAX];
    int fd = join(path, dir, name) == 0 ? open(path, O_WRONLY | O_CLOEXEC) : -1;
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, text, strlen(text));
    int saved = errno;
    close(fd);
    errno = saved;
    return n == (ssize_t)strlen(text) ? 0 : -1;
}

static int has_word(const char *dir, const char *name, const char *word) {
    char path[PATH_MAX], text[512], *save = NULL;
    FILE *f = join(path, dir, name) == 0 ? fopen(path, "r") : NULL;
    if (!f)
        return 0;
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    for (char *w = strtok_r(text, " \n", &save); w; w = strtok_r(NULL, " \n", &save))
        if (strcmp(w, word) == 0)
            return 1;
    return 0;
}

/* Whether a cgroup or one below it holds a process (cgroup.events says `populated 1`). */
static int populated(const char *dir) {
    char path[PATH_MAX], text[256];
    FILE *f = join(path, dir, "cgroup.events") == 0 ? fopen(path, "r") : NULL;
    if (!f)
        return 0;
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    return strstr(text, "populated 1") != NULL;
}

/* Enable each controller in one level's subtree_control, when that level offers it. */
static void enable_level(const char *dir) {
    char token[20];
    for (int i = 0; i < n_controllers; i++) {
        if (has_word(dir, "cgroup.subtree_control", controllers[i]))
            continue;
        if (!has_word(dir, "cgroup.controllers", controllers[i])) {
            slurm_info("wnr_spank: %s does not offer %s", dir, controllers[i]);
            continue;
        }
        snprintf(token, sizeof token, "+%s", controllers[i]);
        if (write_file(dir, "cgroup.subtree_control", token) < 0)
            slurm_error("wnr_spank: enabling %s in %s: %m", controllers[i], dir);
    }
}

static int delegate(const char *scope, const char *job, const char *step, uid_t uid, gid_t gid) {
    static const char *files[] = {"", "/cgroup.subtree_control", "/cgroup.threads",
                                  "/cgroup.procs"};
    char path[PATH_MAX];
    enable_level(scope);
    enable_level(job);
    enable_level(step);
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        if (snprintf(path, sizeof path, "%s%s", user_dir, files[i]) >= (int)sizeof path ||
            fchownat(AT_FDCWD, path, uid, gid, AT_SYMLINK_NOFOLLOW) < 0) {
            slurm_error("wnr_spank: chown %u:%u %s: %m", uid, gid, path);
            return -1;
        }
    }
    return 0;
}

int slurm_spank_task_post_fork(spank_t sp, int ac, char **av) {
    uint32_t job = 0, step = 0;
    uid_t uid;
    gid_t gid;
    char scope[PATH_MAX], job_dir[PATH_MAX], step_dir[PATH_MAX], name[32];

    if (!spank_remote(sp) || delegated)
        return ESPANK_SUCCESS;
    delegated = 1; /* once per step, whether it works or not */
    parse_args(ac, av);
    if (spank_get_item(sp, S_JOB_ID, &job) != ESPANK_SUCCESS ||
        spank_get_item(sp, S_JOB_STEPID, &step) != ESPANK_SUCCESS ||
        spank_get_item(sp, S_JOB_UID, &uid) != ESPANK_SUCCESS ||
        spank_get_item(sp, S_JOB_GID, &gid) != ESPANK_SUCCESS) {
        slurm_error("wnr_spank: cannot read the job's id, step or user; not delegating");
        return ESPANK_SUCCESS;
    }
    if (step == SLURM_EXTERN_CONT || uid == 0)
        return ESPANK_SUCCESS;
    if (!find_scope(job, scope, sizeof scope)) {
        slurm_error("wnr_spank: no slurmstepd scope found (set scope=); not delegating");
        return ESPANK_SUCCESS;
    }
    step_name(step, name, sizeof name);
    if (snprintf(job_dir, sizeof job_dir, "%s/job_%u", scope, job) >= (int)sizeof job_dir ||
        snprintf(step_dir, sizeof step_dir, "%s/%s", job_dir, name) >= (int)sizeof step_dir ||
        snprintf(user_dir, sizeof user_dir, "%s/user", step_dir) >= (int)sizeof user_dir ||
        !is_cgroup2(user_dir)) {
        slurm_error("wnr_spank: %s is not a cgroup2 directory; not delegating", user_dir);
        user_dir[0] = '\0';
        return ESPANK_SUCCESS;
    }
    if (delegate(scope, job_dir, step_dir, uid, gid) == 0)
        slurm_info("wnr_spank: delegated %s to uid %u", user_dir, uid);
    return ESPANK_SUCCESS;
}

static void sleep_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

/* SIGKILL every process below a cgroup (for kernels without cgroup.kill). */
static void kill_procs(const char *dir) {
    char path[PATH_MAX];
    FILE *f = join(path, dir, "cgroup.procs") == 0 ? fopen(path, "r") : NULL;
    for (int pid; f && fscanf(f, "%d", &pid) == 1;)
        if (pid > 1)
            kill(pid, SIGKILL);
    if (f)
        fclose(f);
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        if (e->d_type == DT_DIR && e->d_name[0] != '.') {
            if (join(path, dir, e->d_name) == 0)
                kill_procs(path);
        }
    }
    if (d)
        closedir(d);
}

/* rmdir a cgroup and everything below it, deepest first; 0 when it is gone. */
static int remove_tree(const char *dir) {
    char path[PATH_MAX];
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        if (e->d_type == DT_DIR && e->d_name[0] != '.') {
            if (join(path, dir, e->d_name) == 0)
                remove_tree(path);
        }
    }
    if (d)
        closedir(d);
    return rmdir(dir) == 0 || errno == ENOENT ? 0 : -1;
}

/* Kill everything in a cgroup the user made, wait until it is empty, and remove it. */
static void kill_and_remove(const char *dir) {
    int waited;
    if (write_file(dir, "cgroup.kill", "1") < 0)
        kill_procs(dir);
    for (waited = 0; waited < KILL_WAIT_MS; waited += 20) {
        if (!populated(dir) && remove_tree(dir) == 0)
            return;
        if (waited % 1000 == 0)
            kill_procs(dir);
        sleep_ms(20);
    }
    if (remove_tree(dir) < 0)
        slurm_error("wnr_spank: could not remove %s: %m", dir);
}

/* What the user made below user/: any cgroup but task_*, and anything inside a task_*. */
static void clean_below(const char *dir, int top) {
    char path[PATH_MAX];
    DIR *d = opendir(dir);
    if (!d)
        return;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_type != DT_DIR || e->d_name[0] == '.')
            continue;
        if (join(path, dir, e->d_name) < 0)
            continue;
        if (top && strncmp(e->d_name, "task_", 5) == 0)
            clean_below(path, 0);
        else
            kill_and_remove(path);
    }
    closedir(d);
}

int slurm_spank_exit(spank_t sp, int ac, char **av) {
    (void)ac;
    (void)av;
    if (!spank_remote(sp) || !user_dir[0] || !is_cgroup2(user_dir))
        return ESPANK_SUCCESS;
    clean_below(user_dir, 1);
    slurm_info("wnr_spank: cleaned %s", user_dir);
    return ESPANK_SUCCESS;
}
