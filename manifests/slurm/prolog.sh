#!/bin/bash
# Slurm Prolog for wnr (slurm.conf: Prolog=/etc/slurm/wnr/prolog.sh): start the helper
# that delegates the job's step cgroup once slurmstepd has made it.
#
# slurmd runs the Prolog before it starts slurmstepd, so no job_<id> cgroup exists yet
# and waiting for it here would only delay the step. Instead this starts wnr-delegate
# detached: in a session of its own (slurmd kills the Prolog's process group when it
# returns) with its stdio away from slurmd's pipe (slurmd reads it until EOF), and it
# returns only once the helper leads its own session. Any error is logged and the
# Prolog still exits 0: a Prolog failure would drain the node.
# Configuration: /etc/slurm/wnr.conf (see wnr-slurm.sh).
trap 'exit 0' EXIT
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
. "$HERE/wnr-slurm.sh" || exit 0

main() {
    local helper stat rest sid tries=0
    wnr_read_conf
    wnr_job_ids || return 0
    setsid "$HERE/wnr-delegate" "$job_id" "$job_uid" "$job_gid" "$(wnr_scope)" \
        </dev/null >>/dev/null 2>&1 &
    helper=$!
    while [ $tries -lt 100 ]; do
        stat=$(cat "/proc/$helper/stat" 2>/dev/null) || break
        rest=${stat##*\) }
        read -r _ _ _ sid _ <<<"$rest"
        [ "$sid" = "$helper" ] && return 0
        tries=$((tries + 1))
        sleep 0.05
    done
    wnr_log "the helper (pid $helper) did not start its own session; not delegating"
}

main
