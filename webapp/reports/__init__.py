"""Public reports, their status pages and sanction appeals (R20, R21).

Dependency rule: used by webapp.api and webapp.admin; imports the registry, the vault,
webhooks and mail, never the other way round.
"""

from flask import Blueprint

bp = Blueprint("reports", __name__)


@bp.app_context_processor
def _sanction_message() -> dict[str, object]:
    from ..sanctions import message

    return {"sanction_message": message}


from . import views  # noqa: E402,F401
