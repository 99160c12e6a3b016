"""The daemon (`wnr run`): the loop of passes and everything it sleeps on, in one place.

loop       level-triggered passes, woken by file events, exits, timers and resyncs
passguard  a pass that raises is contained: backed off, reported once, its object quarantined
waker      poll(2) on a wake-up pipe, wrappers' pidfds and emptying cgroups' `cgroup.events`
inotify    the spec directory's events straight from the kernel
"""
