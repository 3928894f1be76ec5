"""The audit log in the database: append-only triggers and tamper detection (R22)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from compliance.audit import EventTag
from webapp.audit import record_event, verify_log
from webapp.cli import main
from webapp.extensions import db


def _events(app, n: int = 4) -> None:
    with app.app_context():
        for i in range(n):
            record_event(EventTag.ADMIN_ACTION, actor_id=f"admin{i}", data={"i": i})
        db.session.commit()


def _cli_env(app) -> dict[str, str]:
    cfg = app.config
    return {
        "DATABASE_URL": cfg["DATABASE_URL"],
        "REDIS_URL": cfg["REDIS_URL"],
        "DHF_SECRET_KEY": cfg["SECRET_KEY"],
        "DHF_MASTER_KEYS": cfg["MASTER_KEYS"],
        "DHF_WATERMARK_KEYS": cfg["WATERMARK_KEYS"],
    }


def test_signup_and_login_are_logged_and_chain_verifies(app, client):
    from .. import factories

    factories.api_signup(client, "ada@example.com")
    with app.app_context():
        report = verify_log()
        tags = [r[0] for r in db.session.execute(text("SELECT tag FROM audit_events ORDER BY id"))]
    assert report.ok and report.rows == 3
    assert tags == ["auth:signup", "auth:login", "auth:token-issued"]
    result = CliRunner().invoke(main, ["audit", "verify"], env=_cli_env(app))
    assert result.exit_code == 0, result.output
    assert "audit log intact: 3 rows" in result.output


@pytest.mark.parametrize(
    "statement", ["UPDATE audit_events SET tag = 'x'", "DELETE FROM audit_events"]
)
def test_database_refuses_changes_to_the_log(app, statement):
    _events(app)
    with app.app_context():
        with pytest.raises(DBAPIError, match="append-only"):
            db.session.execute(text(statement))
        db.session.rollback()
        assert verify_log().ok


def _drop_guards(app) -> None:
    """What an attacker with owner rights on the database would do first."""
    if app.config["DATABASE_URL"].startswith("sqlite"):
        db.session.execute(text("DROP TRIGGER audit_events_no_update"))
        db.session.execute(text("DROP TRIGGER audit_events_no_delete"))
    else:
        db.session.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))


def test_edited_row_is_detected_even_without_the_triggers(app):
    _events(app)
    with app.app_context():
        _drop_guards(app)
        db.session.execute(text("UPDATE audit_events SET data = '{\"i\": 99}' WHERE id = 2"))
        db.session.commit()
        assert verify_log().problems == ("row 2: content does not match its hash (edited row)",)
    result = CliRunner().invoke(main, ["audit", "verify"], env=_cli_env(app))
    assert result.exit_code == 1
    assert "row 2: content does not match its hash (edited row)" in result.output


def test_deleted_row_is_detected(app):
    _events(app)
    with app.app_context():
        _drop_guards(app)
        db.session.execute(text("DELETE FROM audit_events WHERE id = 3"))
        db.session.commit()
        report = verify_log()
    assert report.problems == ("row 4: does not follow the previous row (deleted or inserted row)",)


def test_concurrent_writers_extend_one_chain(app):
    """Many web threads (verifications, under load) appending at once: none fails, and the
    chain stays one line (found by ``dhf bench load``: the unique predecessor refused them)."""
    from concurrent.futures import ThreadPoolExecutor

    def write(i: int) -> None:
        with app.app_context():
            record_event(EventTag.ADMIN_ACTION, actor_id=f"w{i}", data={"i": i})
            db.session.commit()
            db.session.remove()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(40)))
    with app.app_context():
        report = verify_log()
        assert report.ok, report
        count = db.session.scalar(
            text("SELECT count(*) FROM audit_events WHERE tag = :t"),
            {"t": str(EventTag.ADMIN_ACTION)},
        )
        assert count == 40
