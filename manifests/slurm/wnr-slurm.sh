# wnr-slurm.sh: shared by prolog.sh, wnr-delegate and epilog.sh (the no-compiler way to
# delegate a Slurm job step's `user` cgroup to the job's user; wnr_spank.c is the other).
# Sourced, never run. Every function logs its errors and returns; the scripts exit 0.
#
# Configuration: /etc/slurm/wnr.conf (a fixed path: slurmd gives a Prolog a fresh
# environment and no arguments), `key = value` lines, `#` comments:
#   scope = /sys/fs/cgroup/system.slice/NODE_slurmstepd.scope
#           (default: the scope slurmd itself runs in, i.e. the parent of its `slurmd`
#           cgroup; else system.slice/$SLURMD_NODENAME_slurmstepd.scope; else
#           system.slice/slurmstepd.scope)
#   controllers = cpu memory pids io     (default; enabled from the scope down)
#   wait = 300                           (seconds the helper waits for the step's task_0)
#   log = /var/log/wnr-slurm.log         (default; or `syslog`)

PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
WNR_CONF=/etc/slurm/wnr.conf
MOUNT=/sys/fs/cgroup
conf_scope=""
conf_controllers="cpu memory pids io"
conf_wait=300
conf_log=/var/log/wnr-slurm.log

wnr_log() { # $*: one line, with the script's name and the job
    local line
    line="$(date '+%F %T') ${0##*/}[$$] job ${SLURM_JOB_ID:-?}: $*"
    if [ "$conf_log" = syslog ]; then
        logger -t wnr-slurm -p daemon.notice -- "$line" 2>/dev/null
    else
        printf '%s\n' "$line" >>"$conf_log" 2>/dev/null
    fi
}

wnr_read_conf() {
    local key value
    [ -r "$WNR_CONF" ] || return 0
    while IFS='=' read -r key value; do
        key=$(printf '%s' "$key" | tr -d ' \t')
        value=$(printf '%s' "$value" | sed 's/^[[:space:]]*//; s/[[:space:]]*$//')
        case "$key" in
        "" | \#*) ;;
        scope)
            if [[ "$value" =~ ^/sys/fs/cgroup/[A-Za-z0-9._/-]+$ && "$value" != *..* ]]; then
                conf_scope=$value
            else
                wnr_log "$WNR_CONF: scope must be a path under $MOUNT: '$value'"
            fi
            ;;
        controllers)
            if [[ "$value" =~ ^[a-z_\ ,]+$ ]]; then
                conf_controllers=${value//,/ }
            else
                wnr_log "$WNR_CONF: controllers must be names like 'cpu memory': '$value'"
            fi
            ;;
        wait)
            if [[ "$value" =~ ^[0-9]{1,6}$ ]]; then conf_wait=$value; else
                wnr_log "$WNR_CONF: wait must be whole seconds: '$value'"
            fi
            ;;
        log) conf_log=$value ;;
        *) wnr_log "$WNR_CONF: unknown key '$key' ignored" ;;
        esac
    done <"$WNR_CONF"
}

# The slurmstepd scope: configured, else the parent of our own cgroup when that is
# `<scope>/slurmd` (a Prolog or Epilog runs in slurmd's cgroup), else by name.
wnr_scope() {
    local own
    if [ -n "$conf_scope" ]; then
        echo "$conf_scope"
        return
    fi
    own=$(sed -n 's/^0:://p' /proc/self/cgroup)
    case "$own" in
    */slurmd)
        echo "$MOUNT${own%/slurmd}"
        return
        ;;
    esac
    if [ -n "${SLURMD_NODENAME:-}" ] && [ -d "$MOUNT/system.slice/${SLURMD_NODENAME}_slurmstepd.scope" ]; then
        echo "$MOUNT/system.slice/${SLURMD_NODENAME}_slurmstepd.scope"
    else
        echo "$MOUNT/system.slice/slurmstepd.scope"
    fi
}

wnr_populated() { # $1 cgroup: whether a process is in it or below
    grep -qx 'populated 1' "$1/cgroup.events" 2>/dev/null
}

# SIGKILL everything in a cgroup and below, wait until it is empty, remove it deepest first.
wnr_kill_remove() {
    local dir=$1 tries=0 pid
    echo 1 >"$dir/cgroup.kill" 2>/dev/null ||
        find "$dir" -name cgroup.procs -exec cat {} + 2>/dev/null | while read -r pid; do
            kill -9 "$pid" 2>/dev/null
        done
    while wnr_populated "$dir" && [ $tries -lt 100 ]; do
        tries=$((tries + 1))
        sleep 0.1
    done
    find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null
    [ ! -d "$dir" ] || wnr_log "could not remove $dir (still populated?)"
}

# What the user made below a step's user/: every cgroup but Slurm's task_*, and
# everything inside a task_*.
wnr_clean_user() {
    local user=$1 child inner
    for child in "$user"/*/; do
        child=${child%/}
        [ -d "$child" ] || continue
        case "${child##*/}" in
        task_*)
            for inner in "$child"/*/; do
                [ -d "$inner" ] && wnr_kill_remove "${inner%/}"
            done
            ;;
        *) wnr_kill_remove "$child" ;;
        esac
    done
}

# Enable the configured controllers that a level offers in its subtree_control.
wnr_enable() {
    local dir=$1 c
    for c in $conf_controllers; do
        grep -qw -- "$c" "$dir/cgroup.subtree_control" 2>/dev/null && continue
        if ! grep -qw -- "$c" "$dir/cgroup.controllers" 2>/dev/null; then
            wnr_log "$dir does not offer $c"
        elif ! echo "+$c" >"$dir/cgroup.subtree_control" 2>/dev/null; then
            wnr_log "could not enable $c in $dir"
        fi
    done
}

wnr_job_ids() { # checks SLURM_JOB_ID/UID/GID; sets job_id, job_uid, job_gid
    job_id=${SLURM_JOB_ID:-}
    job_uid=${SLURM_JOB_UID:-}
    job_gid=${SLURM_JOB_GID:-}
    if ! [[ "$job_id" =~ ^[0-9]+$ && "$job_uid" =~ ^[0-9]+$ ]]; then
        wnr_log "SLURM_JOB_ID '$job_id' or SLURM_JOB_UID '$job_uid' is not a number"
        return 1
    fi
    [[ "$job_gid" =~ ^[0-9]+$ ]] || job_gid=$(getent passwd "$job_uid" | cut -d: -f4)
    [[ "$job_gid" =~ ^[0-9]+$ ]] || job_gid=$job_uid
}
