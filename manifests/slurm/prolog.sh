#!/bin/bash
# Slurm Prolog for wnr: delegate the job step's "user" cgroup to the job's user.
#
# Slurm's cgroup/v2 plugin makes .../job_<id>/step_<n>/user owned by the user
# but leaves cgroup.procs, cgroup.subtree_control and cgroup.threads owned by
# root, so an unprivileged pilot cannot move processes or enable controllers
# there (see the JAliEn cgroups-v2 talk). Run as root (slurm.conf:
# Prolog=/etc/slurm/wnr-prolog.sh, PrologFlags=Alloc,Contain), this script
# hands those files to the user and turns on the controllers below the job,
# never above it. wnr running as the user then finds the cgroup as its root
# (the nearest cgroup it may manage) and runs its slots and jobs inside.
#
# Variables: SLURM_JOB_ID, SLURM_JOB_UID, SLURM_JOB_GID (set by slurmd);
# WNR_SLURM_CGROUP_BASE (default: the slurmstepd scope), WNR_SLURM_STEP
# (default 0), WNR_SLURM_CONTROLLERS (default "cpu memory pids io"),
# WNR_SLURM_WAIT (seconds to wait for the step cgroup, default 0).
set -euo pipefail

die() { echo "wnr-prolog: $*" >&2; exit 1; }

[[ "${SLURM_JOB_ID:-}" =~ ^[0-9]+$ ]] || die "SLURM_JOB_ID is not a job number: '${SLURM_JOB_ID:-}'"
[[ "${SLURM_JOB_UID:-}" =~ ^[0-9]+$ ]] || die "SLURM_JOB_UID is not a uid: '${SLURM_JOB_UID:-}'"
gid="${SLURM_JOB_GID:-$SLURM_JOB_UID}"
[[ "$gid" =~ ^[0-9]+$ ]] || die "SLURM_JOB_GID is not a gid: '$gid'"
step="${WNR_SLURM_STEP:-0}"
[[ "$step" =~ ^([0-9]+|extern|batch)$ ]] || die "WNR_SLURM_STEP is not a step: '$step'"
base="${WNR_SLURM_CGROUP_BASE:-/sys/fs/cgroup/system.slice/slurmstepd.scope}"
controllers="${WNR_SLURM_CONTROLLERS:-cpu memory pids io}"

job="$base/job_$SLURM_JOB_ID"
target="$job/step_$step/user"
for ((waited = 0; waited < ${WNR_SLURM_WAIT:-0} && ! -d "$target"; waited++)); do sleep 1; done
[[ -d "$target" && ! -L "$target" ]] || die "no step cgroup at $target"
[[ "$(stat -f -c %T "$target")" == cgroup2fs ]] || die "$target is not on a cgroup2 filesystem"

# Enable the controllers from the job cgroup down to the delegated one, so that
# the user's cgroup offers them to wnr's slots. Only what the parent offers.
enable_down() {
    local dir="$job" part
    for part in "step_$step" user; do
        local offered want=""
        offered=" $(cat "$dir/cgroup.controllers") "
        for c in $controllers; do
            [[ "$offered" == *" $c "* ]] && want+=" +$c"
        done
        if [[ -n "$want" ]]; then
            # shellcheck disable=SC2086 # one token per controller
            echo $want > "$dir/cgroup.subtree_control" ||
                echo "wnr-prolog: could not enable$want in $dir (processes in it?)" >&2
        fi
        dir="$dir/$part"
    done
}
enable_down

chown "$SLURM_JOB_UID:$gid" "$target" "$target/cgroup.procs" "$target/cgroup.subtree_control" \
    "$target/cgroup.threads"
echo "wnr-prolog: delegated $target to uid $SLURM_JOB_UID"
