"""RQ tasks of the studio: ``train_avatar`` and ``render`` on the gpu queue.

Each runs under :func:`webapp.jobs.job_function`: the likeness gate (KYC, verified
consent, not withdrawn) is re-checked before every stage.
"""

from __future__ import annotations

from typing import Any

from ..jobs import Progress, job_function
from ..models import Job


@job_function
def train_avatar(job: Job, report: Progress) -> dict[str, Any]:
    raise NotImplementedError("train_avatar lands with the end-to-end issue")


@job_function
def render(job: Job, report: Progress) -> dict[str, Any]:
    raise NotImplementedError("render lands with the end-to-end issue")
