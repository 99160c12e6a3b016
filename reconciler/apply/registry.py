"""The object store across passes: identities registered before the planner runs.

Runs in every pass between observe and plan (reconciler.reconcile). The pure
rules are reconciler.plan.identity's; this module feeds them what the store
holds (reconciler.host.objectstore) and what the node still holds, and, in a
real pass, writes what changed. A dry pass (`wnr plan`, `get` with no daemon)
computes the same but writes nothing and gives new objects no uid.

A write that fails leaves that object as the store last held it: the next
pass tries again (the store's memory follows only successful writes).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping

from reconciler.host.objectstore import ObjectStore
from reconciler.host.statefault import fault_of
from reconciler.model.api import ApiObject
from reconciler.model.desired import Desired
from reconciler.model.observed import Observed
from reconciler.model.stored import ObjectKey
from reconciler.plan.identity import Registration, register, remaining

log = logging.getLogger("wnr.store")


def _no_uid() -> str:
    return ""


def _new_uid() -> str:
    return str(uuid.uuid4())


def on_node(observed: Observed) -> frozenset[ObjectKey]:
    """The jobs and slots of which the node still holds something: a cgroup or records."""
    slots = set(observed.slots) | set(observed.slot_records)
    slots |= {slot for slot, _ in observed.agent_records}
    return remaining(set(observed.jobs) | set(observed.records), slots)


class Registry:
    """Keeps the store's identities in step with the specs, one pass at a time."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        # The objects the last real pass registered: the very same one is not looked at again.
        self._seen: Mapping[ObjectKey, ApiObject] = {}
        self._failing: set[ObjectKey] = set()

    def register(
        self, desired: Desired, observed: Observed, now: float, dry_run: bool
    ) -> Registration:
        """The store after this pass's specs; written unless `dry_run`."""
        stored = self.store.objects()
        if dry_run:
            return register(desired, stored, on_node(observed), now, new_uid=_no_uid, seen={})
        registration = register(
            desired, stored, on_node(observed), now, new_uid=_new_uid, seen=self._seen
        )
        failed: set[ObjectKey] = set()
        for entry in registration.saved:
            try:
                self.store.save(entry)
            except OSError as exc:
                failed.add(entry.key)
                self._report(entry.key, exc)
        for key in registration.removed:
            try:
                self.store.remove(key)
            except OSError as exc:
                failed.add(key)
                self._report(key, exc)
        self._failing &= failed
        # The very mapping of this Desired, so that while it stays the same only deleted
        # objects are looked at (plan.identity.register).
        seen = desired.by_key
        self._seen = {k: v for k, v in seen.items() if k not in failed} if failed else seen
        if failed:
            # What could not be written is registered again from the store's memory next time.
            kept = {**registration.objects, **{k: v for k, v in stored.items() if k in failed}}
            registration = Registration(kept, (), (), registration.held)
        return registration

    def restore(self) -> None:
        """Write every object the store holds in memory again (the state dir was deleted
        under the daemon): the same uids, generations and last good specs."""
        for stored in list(self.store.objects().values()):
            try:
                self.store.save(stored)
            except OSError as exc:
                self._report(stored.key, exc)

    def _report(self, key: ObjectKey, exc: OSError) -> None:
        """Logged once per object while its file cannot be written. A state dir that cannot
        record at all is the Node's StateDirWritable condition (reconciler.apply.statekeeper),
        not one warning per object."""
        if key in self._failing:
            return
        self._failing.add(key)
        level = logging.DEBUG if fault_of(exc, self.store.directory) else logging.WARNING
        log.log(level, "%s/%s: cannot record the object in %s: %s", *key, self.store.path(key), exc)
