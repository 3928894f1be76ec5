"""Live shows (issue 19): a plan of pre-rendered segments streamed as one live stream.

``service`` (rooms, output URLs, start/stop, comments), ``control`` (operator lines, the
operator log, live-minute billing), ``show`` (the ``live_show`` job: the control loop and
the likeness gate around ``pipeline.live.engine``), ``views`` (the public watch page and
its HLS files; the operator's console).

Dependency rule: webapp.live -> webapp.studio, webapp.qa, webapp.likeness, pipeline.live.
"""

from .views import bp

__all__ = ["bp"]
