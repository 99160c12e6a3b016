"""Apply: the only place that acts, executing a plan's actions through the host layer.

applier      each action through cgroupfs, processes and the state dir; failures classified
statekeeper  the state dir across a real pass: recreated when it vanishes, lost records kept
"""
