"""Planner step: which pending jobs fit their slot's free CPUs and memory, first come first served.

Pure bookkeeping. Jobs are admitted in spec order; the first that does not
fit blocks the ones after it (so a big job is not starved by small ones),
while a job that could never fit is refused without blocking anyone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.model.api import Job, Slot
from reconciler.model.quantity import format_bytes, format_millicpus


@dataclass
class SlotQueue:
    """The free resources of one slot while the planner walks its jobs."""

    slot: str
    cpus: int | None  # millicores; None: the slot sets no limit
    memory: int | None  # bytes
    used_cpus: int = 0
    used_memory: int = 0
    blocked_by: str | None = None
    gpus: tuple[str, ...] = ()  # the slot's devices
    used_gpus: set[str] = field(default_factory=set)
    granted: tuple[str, ...] = ()  # the devices of the job admitted last

    @classmethod
    def of(cls, slot: Slot) -> SlotQueue:
        """An empty queue for a slot."""
        r = slot.spec.resources
        return cls(slot.metadata.name, r.cpus, r.memory, gpus=tuple(slot.spec.gpus))

    def take(self, job: Job, gpus: tuple[str, ...] = ()) -> None:
        """Count a job that is already starting or running, with the devices it holds."""
        self.used_cpus += job.spec.resources.cpus or 0
        self.used_memory += job.spec.resources.memory or 0
        self.used_gpus.update(gpus)

    def admit(self, job: Job) -> str | None:
        """Allocate for a pending job (its devices in `granted`), or say why it must wait."""
        want_cpus = job.spec.resources.cpus or 0
        want_memory = job.spec.resources.memory or 0
        want_gpus = job.spec.resources.gpus or 0
        never = _never_fits(self, want_cpus, want_memory)
        if never is None and want_gpus > len(self.gpus):
            never = f"requests {want_gpus} GPUs; slot {self.slot} has {len(self.gpus)}"
        if never is not None:
            return never
        if self.blocked_by is not None:
            return f"queued behind Job/{self.blocked_by} in slot {self.slot}"
        short: list[str] = []
        if self.cpus is not None and self.used_cpus + want_cpus > self.cpus:
            free = format_millicpus(max(0, self.cpus - self.used_cpus))
            short.append(f"{format_millicpus(want_cpus)} CPUs ({free} free)")
        if self.memory is not None and self.used_memory + want_memory > self.memory:
            free = format_bytes(max(0, self.memory - self.used_memory))
            short.append(f"{format_bytes(want_memory)} memory ({free} free)")
        free_gpus = [g for g in self.gpus if g not in self.used_gpus]
        if want_gpus > len(free_gpus):
            short.append(f"{want_gpus} GPUs ({len(free_gpus)} free)")
        if short:
            self.blocked_by = job.metadata.name
            return f"waiting for {' and '.join(short)} in slot {self.slot}"
        self.used_cpus += want_cpus
        self.used_memory += want_memory
        self.granted = tuple(free_gpus[:want_gpus])
        self.used_gpus.update(self.granted)
        return None


def _never_fits(queue: SlotQueue, cpus: int, memory: int) -> str | None:
    if queue.cpus is not None and cpus > queue.cpus:
        has = format_millicpus(queue.cpus)
        return f"requests {format_millicpus(cpus)} CPUs; slot {queue.slot} has {has}"
    if queue.memory is not None and memory > queue.memory:
        has = format_bytes(queue.memory)
        return f"requests {format_bytes(memory)} memory; slot {queue.slot} has {has}"
    return None
