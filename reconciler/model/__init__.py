"""The pure types below the whole pipeline: what every layer passes to the next.

No I/O, no clock and nothing above it (the import contracts in pyproject.toml
enforce it): spec loading produces these, observe fills them, the planner and
status read them, apply and the host layer act on them.

    api        the API objects (Node, Slot, Job) as pydantic models, the one source of the CRDs
    fields     their field types: names, exec(2) texts, bounded numbers, CPU lists
    quantity   Kubernetes quantities (8Gi, 500m) to integers and back
    quoting    an admin's value quoted, cut short, in a message
    desired    the desired state and where each object came from (Source, SpecError)
    observed   what observe saw: the owned cgroup tree, placements, state-dir faults
    records    the state dir's records (attempts and their phases, stops, slots, agents)
    layout     the names wnr owns: cgroups under its root, paths in its state dir
    limits     resources rendered as the (file, value) writes of a cgroup; the controllers
    actions    what a plan is made of, and how a failed one retries (Failure, FailureKind)
    event      one thing that happened to one object (the event log's line)
    errors     errors classified by how they retry, with the errno and the object
"""
