"""The host layer, at the bottom: the only code touching the kernel, processes and state dir.

Knows the model and nothing above it (an import contract): every read and
write goes through here, errno handled at this layer with the data in the
message.

    cgroupfs    cgroupfs reads and writes, through one path chokepoint that cannot leave the root
    process     spawning the job wrapper and agents, signalling, reaping
    procfs      reading /proc: sessions, parents, start times, cgroups
    statedir    the state dir: attempts, exit codes, stop requests, slot and agent records
    statefault  a full, read-only, vanished or failing state dir, told apart from other errors
    atomicfile  JSON and spec files written atomically (write, rename, fsync where durable)
    eventlog    the event log, `<state>/events.jsonl`, appended under a lock and rotated
    nodelock    one wnr per state dir and cgroup root (flocks)
    wrapper/    the per-attempt job wrapper, in C (compiled into _bin/wnr-wrapper by setup.py):
      main.c      its command line, its own signals, main
      payload.c   entering the job cgroup, the payload forked at its gate, waiting for its exit
      record.c    the attempt records (running, exited, failed-start), retried until they land
      output.c    the payload's output pipe and its bounded, rotated log
      text.c      the text buffer records are built in, JSON strings
      files.c     writing all of a buffer, recreating vanished directories, atomic replacement
      wrapper.h   the limits, structs and functions the files share
"""
