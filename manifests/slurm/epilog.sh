#!/bin/bash
# Slurm Epilog for wnr (slurm.conf: Epilog=/etc/slurm/wnr/epilog.sh): remove what a
# pilot left in the job's cgroups.
#
# slurmstepd's proctrack/cgroup kills only the processes in task_* and slurm/, so a
# pilot's wrappers and payloads in cgroups it made below step_*/user outlive the job,
# and slurmstepd gives up removing the step ("cgroup is not empty"). Run after the
# steps have ended, this kills (cgroup.kill) and removes, deepest first, every cgroup
# below each step's user/ but Slurm's task_*, then whatever of job_<id> Slurm left.
# Errors are logged; the Epilog exits 0 (a failing Epilog would drain the node).
# Configuration: /etc/slurm/wnr.conf (see wnr-slurm.sh).
trap 'exit 0' EXIT
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
. "$HERE/wnr-slurm.sh" || exit 0

main() {
    local job step task
    wnr_read_conf
    wnr_job_ids || return 0
    job=$(wnr_scope)/job_$job_id
    [ -d "$job" ] || return 0 # Slurm removed it all: nothing was left
    [ "$(stat -f -c %T "$job")" = cgroup2fs ] || { wnr_log "$job is not on cgroup2"; return 0; }
    for step in "$job"/step_*; do
        [ -d "$step/user" ] || continue
        wnr_clean_user "$step/user"
        for task in "$step"/user/task_*; do # Slurm's own, emptied when the step ended
            [ -d "$task" ] && wnr_populated "$task" && wnr_kill_remove "$task"
        done
    done
    find "$job" -depth -type d -exec rmdir {} + 2>/dev/null
    if [ -d "$job" ]; then wnr_log "could not remove all of $job"; else wnr_log "removed $job"; fi
}

main
