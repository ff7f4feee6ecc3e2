"""The shape shared by the host-only protocol errors (CPython only: the device never imports it)."""

from __future__ import annotations

HOST_ONLY = True  # never shipped to a device (tools/build.py reads this)


class ReasonError(ValueError):
    """Input that cannot be accepted; `reason` is a stable code (for quarantine, logs, reports),
    `detail` the human part."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
