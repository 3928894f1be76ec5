"""``python -m webapp.cli``: how ``dhf serve`` starts its workers."""

from __future__ import annotations

from . import main

main()
