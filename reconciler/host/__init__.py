"""The host layer, at the bottom: the only code touching the kernel, processes and state dir.

Knows the model and nothing above it (an import contract): every read and
write goes through here, errno handled at this layer with the data in the
message.

    cgroupfs    cgroupfs reads and writes, through one path chokepoint that cannot leave the root
    process     spawning the job wrapper and agents, signalling, reaping
    procfs      reading /proc: sessions, parents, start times, cgroups
    statedir    the state dir: attempts, exit codes, stop requests, slot and agent records
    statefault  a full, read-only, vanished or failing state dir, told apart from other errors
    atomicfile  JSON files written atomically (write, rename, fsync where durable)
    eventlog    the event log, `<state>/events.jsonl`, appended under a lock and rotated
    nodelock    one wnr per state dir and cgroup root (flocks)
    wrapper.c   the per-attempt job wrapper (compiled into _bin/ by setup.py)
"""
