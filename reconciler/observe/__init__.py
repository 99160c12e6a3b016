"""Observe: read the kernel, /proc and the state dir into the model's frozen types, once per pass.

Reads only (the host layer does the reading); the planner gets plain data.

    snapshot    the owned cgroup tree and the job records, as `Observed`
    membership  who is in which cgroup: a job's escapees and intruders
    usage       what running jobs use, sampled for limits the kernel cannot enforce and idleness
    liveusage   what a job's or slot's cgroup uses now, for `wnr top`, `get -o wide`, `describe`
    nodefacts   what the node is: architecture, CPU features, runtimes, GPUs, site overrides
    mounts      where wnr's cgroup root is (the cgroup2 mount), found once at start-up
"""
