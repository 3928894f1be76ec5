from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import StringField, SubmitField, TextAreaField
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
