"""The one rule by which the face and voice pipelines pick their settings profile.

A profile is a frozen settings dataclass (``FaceProfile``, ``VoiceSettings``) registered
under a name ("tiny", "cpu", "gpu"). Callers pass either the name or a settings object of
their own (an experiment's variant); both ``train()`` functions resolve it here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

S = TypeVar("S")


def lookup(kind: str, profiles: Mapping[str, S], chosen: str | S) -> S:
    """``chosen`` itself when it is already settings, else the profile of that name."""
    if not isinstance(chosen, str):
        return chosen
    if chosen not in profiles:
        raise ValueError(f"unknown {kind} profile {chosen!r}: one of {', '.join(profiles)}")
    return profiles[chosen]
