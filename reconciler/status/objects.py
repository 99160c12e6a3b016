"""Jobs and slots as Kubernetes objects (apiVersion, kind, metadata, spec, status); pure.

The last step before `wnr get -o json|yaml` serialises them; the spec is
shown as the admin wrote it, quantities in their usual form.
"""

from __future__ import annotations

from typing import Any

from reconciler.model.api import API_VERSION, Job, Slot
from reconciler.status.jobs import JobStatus, timestamp
from reconciler.status.slots import SlotStatus


def spec_data(obj: Slot | Job | None) -> dict[str, Any]:
    """The spec as the admin wrote it, quantities in their usual form (`500m`, `4Gi`)."""
    if obj is None:
        return {}
    return obj.spec.model_dump(mode="json", by_alias=True, exclude_unset=True)


def _metadata(obj: Slot | Job | None, name: str, created: float | None) -> dict[str, Any]:
    data: dict[str, Any] = {"name": name}
    if obj is not None:
        data.update(obj.metadata.model_dump(mode="json", by_alias=True, exclude_defaults=True))
    if created is not None:
        data["creationTimestamp"] = timestamp(created)
    return data


def api_object(
    kind: str, obj: Slot | Job | None, status: JobStatus | SlotStatus, created: float | None = None
) -> dict[str, Any]:
    """A Slot or Job as `wnr get KIND -o json|yaml` prints it: metadata, spec, status."""
    data: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": _metadata(obj, status.name, created),
    }
    if obj is not None:
        data["spec"] = spec_data(obj)
    data["status"] = status.to_dict()
    return data
