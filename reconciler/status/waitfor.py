"""What `wnr wait --for=…` waits for, and whether a published object meets it; pure.

The forms kubectl wait takes, on wnr's objects: `phase=Succeeded`,
`condition=SpecValid` (status True), `condition=SpecValid=False`, and
`delete` (the object is gone). reconciler.client polls; this decides.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from reconciler.model.errors import WnrError

FORMS = "phase=PHASE, condition=TYPE[=True|False|Unknown] or delete"


class WaitKind(StrEnum):
    """What is waited for."""

    PHASE = "phase"
    CONDITION = "condition"
    DELETE = "delete"


@dataclass(frozen=True)
class WaitFor:
    """One `--for`: a phase, a condition's status, or deletion."""

    kind: WaitKind
    name: str = ""
    value: str = ""

    @classmethod
    def parse(cls, text: str) -> WaitFor:
        """Parse `--for`; raises WnrError naming the forms on anything else."""
        what, _, rest = text.partition("=")
        if what == "delete" and not rest:
            return cls(WaitKind.DELETE)
        if what == "phase" and rest:
            return cls(WaitKind.PHASE, rest)
        if what == "condition" and rest:
            name, _, value = rest.partition("=")
            status = (value or "True").capitalize()
            if name and status in ("True", "False", "Unknown"):
                return cls(WaitKind.CONDITION, name, status)
        raise WnrError(f"invalid --for {text!r}: expected {FORMS}")

    def met(self, obj: Mapping[str, Any] | None) -> bool:
        """Whether the published object (None: there is none) meets this."""
        if self.kind is WaitKind.DELETE:
            return obj is None
        if obj is None:
            return False
        status = obj.get("status", {})
        if self.kind is WaitKind.PHASE:
            return bool(status.get("phase") == self.name)
        return any(
            c.get("type") == self.name and c.get("status") == self.value
            for c in status.get("conditions", ())
        )

    def describe(self, kind: str, name: str, obj: Mapping[str, Any] | None, timeout: float) -> str:
        """Why the wait ended unmet, with what the object shows now."""
        if obj is None:
            now = "it does not exist"
        else:
            status = obj.get("status", {})
            now = f"it is {status.get('phase', '?')}"
            if status.get("reason"):
                now += f"/{status['reason']}"
        wanted = {
            WaitKind.DELETE: "deleted",
            WaitKind.PHASE: f"phase={self.name}",
            WaitKind.CONDITION: f"condition={self.name}={self.value}",
        }[self.kind]
        return f"timed out after {timeout:g}s waiting for {kind}/{name} to be {wanted}: {now}"
