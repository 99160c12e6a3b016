"""Object identity across passes: which spec is a new object, a new generation, or gone; pure.

Runs before the planner (reconciler.apply.registry calls it with what the
store holds and what the node still holds). Kubernetes' rules, on the
node's object store:

- an object seen for the first time gets a new `uid` and its
  `creationTimestamp`; a changed normalized spec bumps `generation`;
- a stored object whose spec is gone (from a complete desired state: a file
  that fails to parse keeps its last good objects) is marked deleted, and
  forgotten once nothing of it is left on the node (no cgroup, no records);
- a spec written again while its predecessor is still being stopped or
  drained is *held*: the planner does not see it (so the old object's stop
  runs to its end and is recorded as `Deleted`), and once the old one is gone
  it is a new object with a new uid and no old records.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace

from reconciler.model.api import ApiObject
from reconciler.model.desired import Desired, Source
from reconciler.model.stored import ObjectKey, StoredObject, document_of, spec_hash


@dataclass(frozen=True)
class Registration:
    """The store after this pass's specs, and the changes that get it there."""

    objects: Mapping[ObjectKey, StoredObject]
    saved: tuple[StoredObject, ...] = ()
    removed: tuple[ObjectKey, ...] = ()
    # Desired objects held back while their deleted predecessor is still on the node.
    held: frozenset[ObjectKey] = frozenset()


def register(
    desired: Desired,
    stored: Mapping[ObjectKey, StoredObject],
    remains: Collection[ObjectKey],
    now: float,
    *,
    new_uid: Callable[[], str],
    seen: Mapping[ObjectKey, ApiObject],
) -> Registration:
    """The next store, given the desired state and the objects still on the node; `seen`
    are the objects of the previous registration: the very same object (the spec loader
    hands out one per unchanged file) is not looked at again, and where `seen` is this
    Desired's very mapping (`Desired.by_key`) only the objects the store lacks or holds as
    deleted (held, or back) are."""
    objects = dict(stored)
    saved: list[StoredObject] = []
    removed: list[ObjectKey] = []
    held: set[ObjectKey] = set()
    wanted = desired.by_key
    todo: Mapping[ObjectKey, ApiObject] = wanted
    if seen is wanted:
        looked = [key for key, old in stored.items() if old.deleted_at is not None]
        looked += wanted.keys() - stored.keys()
        todo = {key: wanted[key] for key in sorted(looked) if key in wanted}
    for key, obj in todo.items():
        source = desired.sources.get(key, Source("", 0))
        old = stored.get(key)
        if old is not None and old.deleted_at is not None and key in remains:
            held.add(key)
            continue
        if old is not None and old.deleted_at is None and seen.get(key) is obj:
            continue
        entry = _next(old, key, obj, source, now, new_uid)
        if entry is not old:
            objects[key] = entry
            saved.append(entry)
    if desired.complete:
        for key in sorted(stored.keys() - wanted.keys()):
            old = stored[key]
            if key not in remains:
                del objects[key]
                removed.append(key)
            elif old.deleted_at is None:
                objects[key] = replace(old, deleted_at=now)
                saved.append(objects[key])
    return Registration(objects, tuple(saved), tuple(removed), frozenset(held))


def _next(  # noqa: PLR0917 - one object's inputs
    old: StoredObject | None,
    key: ObjectKey,
    obj: ApiObject,
    source: Source,
    now: float,
    new_uid: Callable[[], str],
) -> StoredObject:
    """The entry of one desired object: new, a new generation, relabelled or moved, or `old`
    unchanged."""
    document, digest = document_of(obj), spec_hash(obj)
    if old is None or old.deleted_at is not None:
        return StoredObject(key[0], key[1], new_uid(), now, 1, digest, document, source)
    if old.spec_hash != digest:
        generation = old.generation + 1
        return replace(
            old, generation=generation, spec_hash=digest, document=document, source=source
        )
    if old.source != source or old.document != document:
        return replace(old, document=document, source=source)
    return old


def without_held(desired: Desired, held: Collection[ObjectKey]) -> Desired:
    """The desired state the planner sees: held objects left out (their predecessors, no
    longer wanted, are stopped and forgotten first)."""
    if not held:
        return desired
    return replace(
        desired,
        slots={n: s for n, s in desired.slots.items() if ("Slot", n) not in held},
        jobs={n: j for n, j in desired.jobs.items() if ("Job", n) not in held},
        held=frozenset(held),
    )


def remaining(jobs: Collection[str], slots: Collection[str]) -> frozenset[ObjectKey]:
    """The objects with something left on the node, from the names observed."""
    return frozenset({("Job", n) for n in jobs} | {("Slot", n) for n in slots})
