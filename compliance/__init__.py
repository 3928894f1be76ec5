"""Compliance library: every output labelled, watermarked, tagged and signed; every file
verifiable. Imports nothing else of ours.

``compliance.stamp(source, output, content, settings)`` and ``compliance.verify(path,
settings)`` are the two entry points; they load lazily so that light modules such as
``compliance.audit`` do not pull in the media stack.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "stamp": "stamping",
    "ComplianceSettings": "stamping",
    "ContentSpec": "stamping",
    "StampRecord": "stamping",
    "verify": "verification",
    "Verification": "verification",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        from importlib import import_module

        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'compliance' has no attribute {name!r}")
