"""Q&A avatars (issue 18): sets of approved answers, deployed on avatars, and the visitors'
conversations. ``service`` (sets, items, import/export, matching), ``deploy`` (clips
pre-rendered through the studio's render path), ``talk`` (visitors), ``views`` (pages),
``bench`` (``dhf bench qa``).

Dependency rule: webapp.qa -> webapp.studio, webapp.likeness, pipeline.qa, pipeline.asr.
"""

from .views import bp

__all__ = ["bp"]
