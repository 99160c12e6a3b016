"""wnr: a Kubernetes-style reconciler for grid worker-node slots.

The folders are the pipeline, top to bottom (import-linter's layers contract
in pyproject.toml keeps each importing only what is below it):

    cli, inspection   the `wnr` command line and `wnr get`/`describe`
    top               `wnr top`: which cgroups' live usage to read, in which order
    daemon/           `wnr run`: the loop and what it sleeps on
    reconcile         one pass: specs -> observe -> plan -> apply, shared by every command
    render/           plans, tables and descriptions as text, JSON or YAML
    apply/            the only place that acts
    status/           job and slot status and the pass's events, derived (pure)
    plan/             the planner, plan(desired, observed, now) (pure)
    specs/, observe/  what is desired (YAML) and what is (kernel, /proc, state dir)
    host/             cgroupfs, processes, /proc, the state dir, the job wrapper
    model/            the pure types every layer passes along

Beside the pipeline: `doctor` (node checks) and `crds` (CRDs from the models).
"""
