from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import BooleanField, StringField, SubmitField, TextAreaField
from wtforms.validators import DataRequired, Length


class ReviewForm(FlaskForm):
    reason = TextAreaField(
        "Reason (kept in the audit log)",
        validators=[DataRequired("Give the reason for your decision."), Length(max=2000)],
    )
    approve = SubmitField("Approve")
    reject = SubmitField("Reject")


class ProtectedPersonForm(FlaskForm):
    name = StringField(
        "Name", validators=[DataRequired("Give the person's name."), Length(max=120)]
    )
    face = FileField("Face photo (only its face template is kept)")
    voice = FileField("Voice clip (only its voice template is kept)")


class DeleteForm(FlaskForm):
    pass


class ReportActionForm(FlaskForm):
    """One moderator action on a report; the service checks the action and the step."""

    action = StringField("Action", validators=[DataRequired("Choose an action."), Length(max=16)])
    step = StringField("Sanction step", validators=[Length(max=16)])
    reason = TextAreaField(
        "Reason (kept in the audit log)",
        validators=[DataRequired("Give the reason for your decision."), Length(max=2000)],
    )
    close = BooleanField("Close the report with this decision", default=True)


# what the queue's menus offer (webapp.reports.moderation.ACTIONS, sanctions.LADDER)
REPORT_ACTIONS = [
    ("dismiss", "Dismiss (no action; lifts this report's own freeze)"),
    ("take_down", "Take down the render"),
    ("freeze", "Freeze the avatar"),
    ("unfreeze", "Unfreeze the avatar"),
    ("sanction", "Sanction the account"),
]
SANCTION_STEPS = [
    ("", "one step up the ladder"),
    ("warning", "warning"),
    ("restricted", "restricted"),
    ("suspended", "suspended"),
    ("closed", "closed"),
    ("none", "none (lift)"),
]
