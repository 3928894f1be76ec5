"""The admin area: the self-hosted KYC review queue, the consent review queue, the report
and appeal queue (trust & safety) and the protected-person gallery.

Only accounts with ``User.is_admin`` (``dhf admin grant EMAIL``) get in; everyone else
gets 403, and every decision is written to the audit log (R22).
"""

from flask import Blueprint

bp = Blueprint("admin", __name__, url_prefix="/admin")

from . import views  # noqa: E402,F401
