/*
 * Whom the payload runs as: the CREDENTIALS argument (`UID:GID:G1,G2,...`, or `-` to keep
 * the wrapper's own), parsed by main.c and switched to by payload.c in the payload's child,
 * after the wrapper entered the job cgroup and before anything of the job's is exec'd. The
 * wrapper itself keeps wnr's identity, so it can write the records the payload cannot.
 */
#include "wrapper.h"

#include <errno.h>
#include <grp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One unsigned id below 2^32 - 1 ((uid_t)-1 means "unchanged" to the kernel); `end` is
 * where it stopped. */
static int parse_id(const char *s, char **end, unsigned long *id) {
    if (*s < '0' || *s > '9') return -1;
    errno = 0;
    *id = strtoul(s, end, 10);
    return errno != 0 || *id >= 0xffffffffUL ? -1 : 0;
}

int parse_credentials(const char *text, struct credentials *c) {
    *c = (struct credentials){0};
    if (strcmp(text, "-") == 0) return 0;
    char *end;
    unsigned long uid, gid, group;
    if (parse_id(text, &end, &uid) != 0 || *end != ':') return -1;
    if (parse_id(end + 1, &end, &gid) != 0 || *end != ':') return -1;
    size_t cap = 1 + strlen(end) / 2;
    c->groups = malloc(cap * sizeof *c->groups);
    if (c->groups == NULL) return -1;
    for (const char *s = end + 1; *s != '\0'; s = end + (*end == ',')) {
        if (parse_id(s, &end, &group) != 0 || (*end != ',' && *end != '\0')) return -1;
        if (c->count == cap) return -1;
        c->groups[c->count++] = (gid_t)group;
    }
    c->uid = (uid_t)uid;
    c->gid = (gid_t)gid;
    c->set = 1;
    return 0;
}

int switch_credentials(const struct credentials *c) {
    if (!c->set) return 0;
    /* Groups first: once the uid is dropped, nothing else can be changed. */
    if (setgroups(c->count, c->groups) != 0) return -1;
    if (setresgid(c->gid, c->gid, c->gid) != 0) return -1;
    if (setresuid(c->uid, c->uid, c->uid) != 0) return -1;
    uid_t ruid, euid, suid;
    if (getresuid(&ruid, &euid, &suid) != 0 || ruid != c->uid || euid != c->uid ||
        suid != c->uid) {
        errno = EPERM;
        return -1;
    }
    /* A dropped root must not be able to take it back (as runc checks). */
    if (c->uid != 0 && setuid(0) == 0) {
        errno = EPERM;
        return -1;
    }
    return 0;
}
