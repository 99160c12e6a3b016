"""wnr: a Kubernetes-style reconciler for grid worker-node slots.

Pipeline: specs (YAML -> models) -> observe (cgroup tree + state dir) ->
plan (pure) -> apply (cgroupfs, processes, state dir). Kept empty of imports
so the job wrapper can import `reconciler.atomicfile` without site-packages.
"""
