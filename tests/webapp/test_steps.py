"""``studio.service.steps``: each step's state and detail on the self-service path."""

from __future__ import annotations

from types import SimpleNamespace

from webapp.extensions import db
from webapp.models import Job, Order, Upload
from webapp.studio import service
from webapp.studio.service import STEPS, _Facts

from .. import factories


def _facts(**changes: object) -> _Facts:
    """Everything up to payment done: a verified owner and consent, 3 of 3 sentences, a
    valid video, a paid order; no training job, no render."""
    facts = _Facts(
        owner=SimpleNamespace(kyc_status="verified"),  # type: ignore[arg-type]
        consent=SimpleNamespace(status="verified"),  # type: ignore[arg-type]
        samples=3,
        need=3,
        video=SimpleNamespace(status="valid", reasons=[]),  # type: ignore[arg-type]
        train=None,
        paid=True,
        rendered=False,
    )
    return _Facts(**{**facts.__dict__, **changes})


def _steps(monkeypatch, facts: _Facts, status: str = "draft") -> dict[str, dict]:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(service, "_facts", lambda avatar: facts)
    return service.steps(SimpleNamespace(status=status))  # type: ignore[arg-type]


def _states(out: dict[str, dict]) -> list[str]:  # type: ignore[type-arg]
    return [out[step]["state"] for step in STEPS]


def test_a_new_avatar_starts_at_identity(monkeypatch):
    facts = _facts(
        owner=SimpleNamespace(kyc_status="unverified"),
        consent=None,
        samples=0,
        video=None,
        paid=False,
    )
    out = _steps(monkeypatch, facts)
    assert _states(out) == ["active", "todo", "todo", "todo", "todo", "todo", "todo"]
    assert {step: out[step]["detail"] for step in STEPS} == {
        "identity": "unverified",
        "consent": "missing",
        "voice": "0 / 3",
        "video": "missing",
        "payment": "unpaid",
        "training": "draft",
        "render": "",
    }
    assert out["video"]["reasons"] == [] and out["training"]["job"] is None
    assert all("reason" not in step for step in out.values())


def test_the_first_open_step_is_active_wherever_it_is(monkeypatch):
    out = _steps(monkeypatch, _facts(consent=SimpleNamespace(status="pending"), samples=1))
    assert _states(out) == ["done", "active", "todo", "done", "done", "todo", "todo"]
    assert (out["consent"]["detail"], out["voice"]["detail"]) == ("pending", "1 / 3")


def test_ready_to_train(monkeypatch):
    out = _steps(monkeypatch, _facts())
    assert _states(out) == ["done", "done", "done", "done", "done", "active", "todo"]
    assert (out["payment"]["detail"], out["video"]["detail"]) == ("paid", "valid")


def test_an_invalid_video_shows_its_reasons(monkeypatch):
    video = SimpleNamespace(status="invalid", reasons=["two_faces", "too_short"])
    out = _steps(monkeypatch, _facts(video=video))
    assert out["video"] == {
        "state": "active",
        "detail": "invalid",
        "reasons": ["two_faces", "too_short"],
    }


def test_training_shows_its_job(monkeypatch):
    train = SimpleNamespace(
        id="j1", status="started", progress=0.426, stage="face model", error=None
    )
    out = _steps(monkeypatch, _facts(train=train), status="training")
    assert out["training"] == {
        "state": "active",
        "detail": "face model 43%",
        "job": {
            "id": "j1",
            "status": "started",
            "progress": 0.426,
            "stage": "face model",
            "error": None,
        },
    }


def test_trained_then_rendered(monkeypatch):
    assert _states(_steps(monkeypatch, _facts(), status="ready"))[-2:] == ["done", "active"]
    out = _steps(monkeypatch, _facts(rendered=True), status="ready")
    assert _states(out) == ["done"] * len(STEPS)


def test_withdrawn_consent_blocks_every_step_with_its_reason(monkeypatch):
    out = _steps(monkeypatch, _facts(consent=SimpleNamespace(status="revoked")), status="revoked")
    assert _states(out) == ["blocked"] * len(STEPS)
    assert {step["reason"] for step in out.values()} == {"consent_revoked"}
    assert out["consent"]["detail"] == "revoked"


def test_facts_come_from_the_database(make_app):
    """The queries behind the steps: the newest video, every sentence, a paid order, a job."""
    app = make_app(VOICE_MIN_SAMPLES=2)
    with app.app_context():
        owner = factories.user()
        subject = factories.consented_subject(owner)[0]
        avatar = factories.avatar(owner, subject)

        def upload(kind: str, status: str) -> None:
            reasons = [] if status == "valid" else ["dark"]
            db.session.add(
                Upload(
                    owner_id=owner.id,
                    subject_id=subject.id,
                    avatar_id=avatar.id,
                    kind=kind,
                    blob_id="b",
                    filename="f",
                    size=1,
                    sha256="0" * 64,
                    status=status,
                    reasons=reasons,
                )
            )
            db.session.commit()

        upload("voice_sample", "valid")
        upload("voice_sample", "invalid")  # counted: the page shows uploads, the gate checks
        upload("training_video", "valid")
        upload("training_video", "invalid")  # the newest decides
        db.session.add(
            Order(
                owner_id=owner.id,
                item="avatar_training",
                avatar_id=avatar.id,
                status="paid",
                amount_cents=100,
            )
        )
        db.session.add(
            Job(
                owner_id=owner.id,
                kind="train_avatar",
                queue="gpu",
                target_id=avatar.id,
                stage="ingest",
                progress=0.1,
            )
        )
        db.session.commit()
        out = service.steps(avatar)
    assert _states(out) == ["done", "done", "done", "active", "done", "todo", "todo"]
    assert (out["voice"]["detail"], out["video"]["reasons"]) == ("2 / 2", ["dark"])
    assert out["training"]["detail"] == "ingest 10%"
