/*
 * The attempt's records: `running` (payload.c builds its members), how the payload ended
 * (exit code or signal, CPU seconds, peak RSS, OOM kills, core files) and failed-start, each
 * written atomically (files.c) and retried until it lands. Called by main.c and payload.c.
 */
#include "wrapper.h"

#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Write the record, trying again until it lands: a record lost to a full (ENOSPC, EDQUOT),
 * read-only (EROFS), failing (EIO) or deleted (ENOENT) state dir would make the daemon judge
 * the attempt wrongly: a finished job as killed, a started one as never started (and run it
 * again). Meanwhile the wrapper stays alive, so the daemon sees the job running, and keeps
 * copying output. Only a path too long to ever work is given up on. */
void record_write(struct record *r, int durable) {
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
void failed_start(struct record *r, const char *message, int finished) {
    free(r->members.data);
    r->members = (struct text){0};
    ADD_LITERAL(&r->members, "\"phase\": \"failed-start\", \"message\": ");
    add_string(&r->members, message);
    if (finished) addf(&r->members, ", \"finishedAt\": %.6f", now());
    log_note(r->io->log, "wnr-wrapper: %s\n", message);
    record_write(r, 1);
}

/* One key of a flat-keyed interface file (`memory.events`); -1 when absent (no memory
 * controller, or an older kernel without that key). */
static long event_count(const char *dir, const char *file, const char *wanted) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "re");
    if (f == NULL) return -1;
    char key[64];
    long value, found = -1;
    while (fscanf(f, "%63s %ld", key, &value) == 2)
        if (strcmp(key, wanted) == 0) found = value;
    fclose(f);
    return found;
}

/* Add the kernel's count of OOM kills in the job cgroup and, when there were any, whose
 * limit was hit: the job's own (its memory.events.local counts an `oom`), else its slot's
 * (the slot's own counter), else one above the slot (wnr's root, the node). */
static void add_oom(struct text *t, const char *procs) {
    /* dirname() may change its argument and return a pointer into it: copy each step. */
    char procs_copy[4096], job[4096], job_copy[4096], slot[4096];
    snprintf(procs_copy, sizeof procs_copy, "%s", procs);
    snprintf(job, sizeof job, "%s", dirname(procs_copy));
    snprintf(job_copy, sizeof job_copy, "%s", job);
    snprintf(slot, sizeof slot, "%s", dirname(job_copy));
    long kills = event_count(job, "memory.events", "oom_kill");
    if (kills < 0) {
        ADD_LITERAL(t, ", \"oomKills\": null");
        return;
    }
    addf(t, ", \"oomKills\": %ld", kills);
    if (kills == 0) return;
    const char *level = "above";
    if (event_count(job, "memory.events.local", "oom") > 0)
        level = "job";
    else if (event_count(slot, "memory.events.local", "oom") > 0)
        level = "slot";
    addf(t, ", \"oomLevel\": \"%s\"", level);
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

/* The record of how the payload ended, written durably. Of the `running` members r holds,
 * everything after the phase carries over (pid, wrapperPid, startedAt). */
void record_end(struct record *r, const struct ending *e, const char *workdir,
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
    add_oom(&ended, procs);
    ADD_LITERAL(&ended, ", \"coreFiles\": ");
    add_core_files(&ended, workdir);
    free(r->members.data);
    r->members = ended;
    record_write(r, 1);
}
