#!/bin/bash
# Slurm Epilog for wnr: undo prolog.sh once the job has ended.
#
# Kills and removes what wnr created below the delegated cgroup (wnr.daemon,
# slot.*, their agent.* and job.* children), bottom-up, and gives the
# delegation files back to root. Slurm's own cgroups (task_*) are left to
# Slurm. Same variables as prolog.sh.
set -euo pipefail

die() { echo "wnr-epilog: $*" >&2; exit 1; }

[[ "${SLURM_JOB_ID:-}" =~ ^[0-9]+$ ]] || die "SLURM_JOB_ID is not a job number: '${SLURM_JOB_ID:-}'"
step="${WNR_SLURM_STEP:-0}"
[[ "$step" =~ ^([0-9]+|extern|batch)$ ]] || die "WNR_SLURM_STEP is not a step: '$step'"
base="${WNR_SLURM_CGROUP_BASE:-/sys/fs/cgroup/system.slice/slurmstepd.scope}"
target="$base/job_$SLURM_JOB_ID/step_$step/user"
[[ -d "$target" ]] || exit 0  # Slurm already removed it: nothing of ours can be left
[[ ! -L "$target" ]] || die "$target is a symbolic link"

remove_tree() {
    local dir="$1" child
    if [[ -e "$dir/cgroup.kill" ]]; then
        echo 1 > "$dir/cgroup.kill"
    fi
    for child in "$dir"/*/; do
        [[ -d "$child" ]] && remove_tree "${child%/}"
    done
    for _ in $(seq 50); do
        rmdir "$dir" 2> /dev/null && return 0
        [[ -d "$dir" ]] || return 0
        sleep 0.1
    done
    echo "wnr-epilog: could not remove $dir" >&2
    return 1
}

status=0
shopt -s nullglob
for owned in "$target"/wnr.daemon "$target"/slot.*; do
    [[ -d "$owned" && ! -L "$owned" ]] && { remove_tree "$owned" || status=1; }
done
chown 0:0 "$target" "$target/cgroup.procs" "$target/cgroup.subtree_control" "$target/cgroup.threads"
echo "wnr-epilog: cleaned $target"
exit "$status"
