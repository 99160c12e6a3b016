"""The object store's entries: an object's identity, generation and last good spec; pure.

The state dir is the node's object store (DESIGN §5), as the API server is
Kubernetes'. Each Node, Slot and Job wnr has seen gets one `StoredObject`:
a `uid` and `creationTimestamp` set when first seen, a `generation` bumped
on each change of its normalized spec, and that spec itself, so that any
process meeting the object's file broken plans with the last good version.
`plan.identity` derives the next entries from the desired state;
`host.objectstore` reads and writes them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from reconciler.model.api import KINDS, ApiObject
from reconciler.model.desired import Source

# (kind, name): "Job", "hello".
ObjectKey = tuple[str, str]


def document_of(obj: ApiObject) -> dict[str, Any]:
    """The object as the admin wrote it, quantities in their usual form; it validates back to
    an equal object (reconciler.model.quantity's JSON serializers)."""
    return obj.model_dump(mode="json", by_alias=True, exclude_unset=True)


def spec_hash(obj: ApiObject) -> str:
    """The hash of the normalized spec, defaults included: `cpus: 1` written out or left to
    its default is the same spec, and labels or annotations are not the spec at all."""
    spec = obj.spec.model_dump(mode="json", by_alias=True)
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()[:32]


@dataclass(frozen=True)
class StoredObject:
    """One object of the store: who it is, which spec it is at, and where it was written."""

    kind: str
    name: str
    uid: str
    created_at: float
    generation: int
    spec_hash: str
    document: dict[str, Any]
    source: Source
    # Set when its spec went away: it is being stopped (a Job) or drained (a Slot); a spec
    # written again meanwhile waits for it to be gone, and then is a new object.
    deleted_at: float | None = None

    @property
    def key(self) -> ObjectKey:
        """(kind, name)."""
        return (self.kind, self.name)

    def api_object(self) -> ApiObject:
        """The stored spec as a validated object (raises pydantic's ValidationError when a
        newer wnr no longer accepts it)."""
        return KINDS[self.kind].model_validate(self.document)

    def to_json(self) -> dict[str, Any]:
        """The camelCase JSON form of `<state>/objects/<kind>/<name>.json`."""
        data: dict[str, Any] = {
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
            "creationTimestamp": self.created_at,
            "generation": self.generation,
            "specHash": self.spec_hash,
            "source": {"path": self.source.path, "document": self.source.document},
            "object": self.document,
        }
        if self.deleted_at is not None:
            data["deletionTimestamp"] = self.deleted_at
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StoredObject:
        """Parse the JSON form (raises KeyError, TypeError or ValueError when malformed)."""
        source = data["source"]
        deleted = data.get("deletionTimestamp")
        document = data["object"]
        if not isinstance(document, dict) or data["kind"] not in KINDS:
            raise ValueError("not a stored object")
        return cls(
            kind=str(data["kind"]),
            name=str(data["name"]),
            uid=str(data["uid"]),
            created_at=float(data["creationTimestamp"]),
            generation=int(data["generation"]),
            spec_hash=str(data["specHash"]),
            document=document,
            source=Source(str(source["path"]), int(source["document"])),
            deleted_at=float(deleted) if deleted is not None else None,
        )
