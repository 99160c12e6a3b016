"""Object identity across passes (reconciler.plan.identity), plain data: pure code.

The daemon's loader hands out the very same Desired while no spec changes, and the
registry then looks only at what the store lacks or holds as deleted; these passes
register the same Desired again and again, as the daemon does.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Collection, Mapping

from reconciler.model.desired import Desired
from reconciler.model.stored import ObjectKey, StoredObject
from reconciler.plan.identity import Registration, register
from tests.builders import desired, job, slot


def uids() -> Callable[[], str]:
    """Numbered uids, so that a new object is told from its predecessor."""
    counter = itertools.count(1)
    return lambda: f"uid-{next(counter)}"


def again(
    specs: Desired,
    stored: Mapping[ObjectKey, StoredObject],
    remains: Collection[ObjectKey],
    now: float,
    new_uid: Callable[[], str],
) -> Registration:
    """A pass that registers the same Desired as the last one (`seen` is its own mapping)."""
    return register(specs, stored, remains, now, new_uid=new_uid, seen=specs.by_key)


def test_the_same_desired_again_saves_nothing_and_keeps_every_entry() -> None:
    """Registering the very Desired of the last pass saves and removes nothing, and each object keeps its entry."""
    specs, new_uid = desired(slot("s"), job("a", "s")), uids()
    first = register(specs, {}, frozenset(), 10.0, new_uid=new_uid, seen={})

    second = again(specs, first.objects, frozenset(), 20.0, new_uid)

    assert ((), ()) == (second.saved, second.removed)
    assert first.objects == second.objects


def test_a_spec_back_while_its_predecessor_stops_is_held_then_new() -> None:
    """A job deleted and written again is held while its predecessor is on the node, and becomes a new object (new uid, generation 1) once it is gone, with the Desired unchanged all along."""
    specs, new_uid = desired(slot("s"), job("a", "s")), uids()
    first = register(specs, {}, frozenset(), 10.0, new_uid=new_uid, seen={})
    without = desired(slot("s"))
    deleted = register(without, first.objects, {("Job", "a")}, 20.0, new_uid=new_uid, seen={})
    assert 20.0 == deleted.objects[("Job", "a")].deleted_at

    held = register(specs, deleted.objects, {("Job", "a")}, 30.0, new_uid=new_uid, seen={})
    still = again(specs, held.objects, {("Job", "a")}, 40.0, new_uid)
    gone = again(specs, still.objects, frozenset(), 50.0, new_uid)

    assert {("Job", "a")} == held.held == still.held
    assert frozenset() == gone.held
    entry = gone.objects[("Job", "a")]
    old = first.objects[("Job", "a")]
    assert (None, 1, 50.0) == (entry.deleted_at, entry.generation, entry.created_at)
    assert old.uid != entry.uid
    assert [("Job", "a")] == [e.key for e in gone.saved]


def test_an_entry_the_store_lost_is_registered_again() -> None:
    """An object the store no longer holds is registered anew even when the Desired is the very one of the last pass."""
    specs, new_uid = desired(slot("s"), job("a", "s")), uids()
    first = register(specs, {}, frozenset(), 10.0, new_uid=new_uid, seen={})
    lost = {k: v for k, v in first.objects.items() if k != ("Job", "a")}

    second = again(specs, lost, frozenset(), 20.0, new_uid)

    assert [("Job", "a")] == [e.key for e in second.saved]
