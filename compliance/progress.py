"""The progress callback every long-running stage accepts.

``progress(fraction, stage)`` is called with ``fraction`` in [0, 1] (how much of the work
is done) and a short human-readable ``stage`` ("training", "stamping", ...). It returns
nothing; a caller that wants to stop the work raises from inside it. It lives here, in the
lowest layer, so that compliance, pipeline and webapp all share the one definition.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

Progress: TypeAlias = Callable[[float, str], None]
