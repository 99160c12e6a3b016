"""The desired state and where it came from: pure types below the whole pipeline.

Spec loading (`specs`) produces a `Desired`; the planner, status and
rendering read it. No YAML loader, no I/O: the planner imports this, not the
spec loader.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple

from reconciler.model.api import Job, Node, NodeSpec, Slot
from reconciler.model.limits import Limits


class Source(NamedTuple):
    """Where an object was written: the file and the index of its document in that file (a
    tuple, so hashed, compared and ordered in C: every load sorts and sets every object's)."""

    path: str
    document: int


@dataclass(frozen=True)
class SpecError:
    """A problem with a spec, formatted as `file:line:col: Kind/name: field: message`."""

    path: str
    line: int
    column: int
    message: str
    kind: str = ""
    name: str = ""
    field: str = ""

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}:{self.column}"
        parts = [where]
        if self.kind or self.name:
            parts.append(f"{self.kind or '?'}/{self.name or '?'}")
        if self.field:
            parts.append(self.field)
        parts.append(self.message)
        return ": ".join(parts)


@dataclass(frozen=True)
class Desired:
    """What the admin asked for, as validated objects in spec order (file path, then document)."""

    node: Node | None = None
    slots: Mapping[str, Slot] = field(default_factory=dict)
    jobs: Mapping[str, Job] = field(default_factory=dict)
    sources: Mapping[tuple[str, str], Source] = field(default_factory=dict)
    errors: tuple[SpecError, ...] = ()
    # False when objects may exist that we cannot see (a file never parsed, an
    # unreadable directory): the planner then deletes nothing.
    complete: bool = True
    # (kind, name) of objects whose spec is back while their deleted predecessor is still
    # being stopped or drained (reconciler.plan.identity): left out of slots and jobs.
    held: frozenset[tuple[str, str]] = frozenset()

    @cached_property
    def by_key(self) -> dict[tuple[str, str], Node | Slot | Job]:
        """Every object by (kind, name), once per Desired: the object store registers them in
        every pass, and the loader hands out the same Desired while no spec changes."""
        found: dict[tuple[str, str], Node | Slot | Job] = {}
        if self.node is not None:
            found[("Node", self.node.metadata.name)] = self.node
        found.update({("Slot", name): slot for name, slot in self.slots.items()})
        found.update({("Job", name): job for name, job in self.jobs.items()})
        return found

    @property
    def wrappers(self) -> int:
        """How many wrappers the specs can have running at once: one per job, one per agent
        replica (each a pidfd for the daemon's waker)."""
        agents = (s.spec.agents for s in self.slots.values())
        return len(self.jobs) + sum(a.replicas for a in agents if a is not None)

    def slot_jobs(self, slot: str) -> list[Job]:
        """A slot's jobs in spec order: file, then document, then name (a job whose source
        is unknown sorts first, by name). The planner admits them in this order and status
        lists them in it."""
        return list(self._in_spec_order.get(slot, ()))

    @cached_property
    def _in_spec_order(self) -> dict[str, tuple[Job, ...]]:
        # Grouped once per Desired: the loader hands out the same one while no spec changes,
        # and every slot's planning and status asks for its jobs.
        by_slot: dict[str, list[Job]] = {}
        for job in sorted(self.jobs.values(), key=self._position):
            by_slot.setdefault(job.spec.slot, []).append(job)
        return {slot: tuple(jobs) for slot, jobs in by_slot.items()}

    def _position(self, job: Job) -> tuple[str, int, str]:
        source = self.sources.get(("Job", job.metadata.name))
        name = job.metadata.name
        return (source.path, source.document, name) if source is not None else ("", 0, name)

    def job_limits(self, name: str) -> Limits | None:
        """A job's limits (`Limits.of_job` in its slot), once per Desired: the loader hands out
        the same one while no spec changes, and the planner and every metrics scrape ask;
        None for a job or slot without a spec."""
        found = self._job_limits.get(name)
        if found is None:
            job = self.jobs.get(name)
            slot = self.slots.get(job.spec.slot) if job is not None else None
            if job is None or slot is None:
                return None
            found = self._job_limits[name] = Limits.of_job(job, slot)
        return found

    @cached_property
    def _job_limits(self) -> dict[str, Limits]:
        return {}

    def errors_of(self, kind: str, name: str) -> tuple[SpecError, ...]:
        """The errors that concern one object: its own, and those of the file its last good
        spec came from (a file that no longer parses names no object)."""
        source = self.sources.get((kind, name))
        if source is None or source.path not in self._error_paths:
            return self._errors_by_object.get((kind, name), ())
        return tuple(
            e for e in self.errors if (e.kind, e.name) == (kind, name) or e.path == source.path
        )

    @cached_property
    def _errors_by_object(self) -> dict[tuple[str, str], tuple[SpecError, ...]]:
        # Grouped once per Desired: every object's status asks for its errors, and the
        # status memo compares them, so one object's error must not make all others new.
        grouped: dict[tuple[str, str], list[SpecError]] = {}
        for error in self.errors:
            grouped.setdefault((error.kind, error.name), []).append(error)
        return {key: tuple(errors) for key, errors in grouped.items()}

    @cached_property
    def _error_paths(self) -> frozenset[str]:
        return frozenset(error.path for error in self.errors)

    @property
    def node_spec(self) -> NodeSpec:
        """The Node's spec, or every default when no Node object exists (all fields have one)."""
        return self.node.spec if self.node is not None else _DEFAULT_NODE


_DEFAULT_NODE = NodeSpec()
