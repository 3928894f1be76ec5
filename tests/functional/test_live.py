"""Live shows end to end (issue 19): a real nginx-rtmp server on 127.0.0.1, the stream
engine's real ffmpeg processes, and a viewer pulling the stream back with ffmpeg.

What airs are real stamped clips (labels, watermark in frames and audio, AIGC tag, C2PA),
registered in the content registry like renders: the session's ``stamped_media`` clip
(about 11 s) and two short GRID clips stamped here with the same keys. The render job
itself is tested in tests/functional/test_end_to_end.py; here the room's renders are
marked ready with these files, as tests/webapp/test_qa_api.py does for Q&A clips.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from compliance import media
from compliance.labels import find_label, find_mark
from pipeline.live import measure
from pipeline.live.local_rtmp import RtmpServer, missing
from webapp import jobs, registry
from webapp.billing import ledger
from webapp.extensions import db
from webapp.live.service import rooms_of_render as registry_rooms
from webapp.models import (
    AuditEvent,
    Avatar,
    CreditEntry,
    Job,
    LiveRoom,
    Order,
    QAClip,
    QADeployment,
    QASet,
    Render,
    Subject,
    utcnow,
)
from webapp.qa import service as qa_service
from webapp.storage import vault

from .. import factories
from ..conftest import SHARED_DATA

# The stream engine does not depend on the database: one backend is enough here (the
# live API's tests run on both).
pytestmark = [
    pytest.mark.slow,  # real-time streams: 10-25 s each
    pytest.mark.skipif(missing() is not None, reason=missing() or ""),
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]

QUESTION = "How long does delivery take?"
ANSWER = "Delivery takes two to three working days."


@dataclass(frozen=True)
class Stamped:
    path: Path
    record: object  # compliance.stamping.StampRecord


@dataclass(frozen=True)
class LiveClips:
    intro: Stamped  # stamped_media.stamped, about 11 s
    short: Stamped  # one GRID sentence, about 5.5 s with the spoken notice
    answer: Stamped
    idle: Stamped
    notice: Stamped  # the room's notice clip: 1 s of GRID after the spoken notice, about 3 s

    @property
    def notice_s(self) -> float:
        """Stream time at which the first programme clip starts (after the notice)."""
        return float(media.probe(self.notice.path).duration_s)


@pytest.fixture(scope="module")
def live_clips(stamped_media, tmp_path_factory) -> LiveClips:
    from compliance.payload import new_watermark_id
    from compliance.stamping import ContentSpec, stamp

    work = tmp_path_factory.mktemp("live-clips")
    grid = sorted((SHARED_DATA / "grid_s1" / "train").glob("*.mpg"))

    def one(source: Path, name: str) -> Stamped:
        out = work / f"{name}.mp4"
        spec = ContentSpec(uuid.uuid4().hex, new_watermark_id())
        return Stamped(out, stamp(source, out, spec, stamped_media.settings))

    second = measure.cut(grid[40], work / "one-second.mp4", 0.8, 1.0)
    return LiveClips(
        Stamped(stamped_media.stamped, stamped_media.record),
        one(grid[10], "short"),
        one(grid[20], "answer"),
        one(grid[30], "idle"),
        one(second, "notice"),
    )


@pytest.fixture
def rtmp(tmp_path):  # type: ignore[no-untyped-def]
    server = RtmpServer(tmp_path / "nginx").start()
    yield server
    server.stop()


def _live_app(make_app, stamped_media, **extra):  # type: ignore[no-untyped-def]
    """The app verifies with the keys the clips were stamped with."""
    return make_app(
        WATERMARK_KEYS=stamped_media.watermark_keys,
        SIGNING_DIR=str(stamped_media.settings.signing_dir),
        AIGC_PRODUCER="DHFTEST",
        LIVE_ALLOW_LOOPBACK=True,
        LIVE_RECONNECT_S="0.3,0.5,1",
        **extra,
    )


@pytest.fixture
def live_app(make_app, stamped_media):  # type: ignore[no-untyped-def]
    return _live_app(make_app, stamped_media)


def _owner(app):  # type: ignore[no-untyped-def]
    with app.app_context():
        owner = factories.user()
        subject, consent_token = factories.consented_subject(owner)
        avatar = factories.avatar(owner, subject)
        avatar.status = "ready"
        order = Order(
            owner_id=owner.id, item="render_credits", status="paid", quantity=10, amount_cents=100
        )
        db.session.add(order)
        db.session.flush()
        ledger.grant(order)
        db.session.commit()
        return factories.token_for(owner), avatar.id, consent_token


def _ready(app, render_id: str, clip: Stamped, *, register: bool = True) -> None:  # type: ignore[no-untyped-def]
    """Stand in for the render worker: the render is ready with a stamped file, and its
    ids are registered (as ``studio.tasks._publish`` does)."""
    with app.app_context():
        render = db.session.get(Render, render_id)
        avatar = db.session.get(Avatar, render.avatar_id)
        with open(clip.path, "rb") as fh:
            render.output_blob_id = vault().put(avatar.subject_id, fh)[0]
        render.content_id = uuid.uuid4().hex
        if register:
            registry.register(
                clip.record,  # type: ignore[arg-type]
                owner_id=render.owner_id,
                avatar_id=avatar.id,
                subject_id=avatar.subject_id,
                render_id=render.id,
            )
            render.content_id = clip.record.content_id  # type: ignore[attr-defined]
        render.status = "ready"
        db.session.commit()


def _qa_deployment(app, client, headers, avatar_id: str, clips: LiveClips) -> str:  # type: ignore[no-untyped-def]
    res = client.post(
        "/api/v1/qa-sets",
        json={"name": "Shop", "fallback": {"en": "Please email us."}},
        headers=headers,
    )
    set_id = res.json["id"]
    item = {"lang": "en", "answer": ANSWER, "questions": [QUESTION, "When will my order arrive?"]}
    assert client.post(f"/api/v1/qa-sets/{set_id}/items", json=item, headers=headers).status_code
    res = client.post(
        f"/api/v1/qa-sets/{set_id}/deployments", json={"avatar_id": avatar_id}, headers=headers
    )
    assert res.status_code == 202, res.json
    dep_id = res.json["id"]
    with app.app_context():
        rows = db.session.scalars(select(QAClip).where(QAClip.deployment_id == dep_id)).all()
        ids = {c.key: c.render_id for c in rows}
    for key, render_id in ids.items():
        # the fallback and the talk page's notice and idle clips are never aired here: not
        # registered (one stamped file registered twice would repeat its watermark id)
        aside = key.startswith(("fallback", "notice", "idle"))
        _ready(app, render_id, clips.short if aside else clips.answer, register=not aside)
    return dep_id


def _room(app, client, rtmp, clips, *, intro, max_seconds, qa=False, key="show"):  # type: ignore[no-untyped-def]
    headers, avatar_id, consent_token = _owner(app)
    body = {
        "avatar_id": avatar_id,
        "name": "Spring sale",
        "segments": [{"title": "Intro", "script": "Welcome to our spring sale."}],
        "idle_script": "Ask us anything in the comments.",
        "max_seconds": max_seconds,
        "outputs": [rtmp.url(key)],
    }
    if qa:
        body["qa_deployment_id"] = _qa_deployment(app, client, headers, avatar_id, clips)
        with app.app_context():  # the matcher's model loaded before the show, not during it
            dep = db.session.get(QADeployment, body["qa_deployment_id"])
            qa_service.matcher_for(db.session.get(QASet, dep.set_id)).answer_for("warm up")
    res = client.post("/api/v1/live-rooms", json=body, headers=headers)
    assert res.status_code == 202, res.json
    room = res.json
    assert room["status"] == "rendering"
    assert room["outputs"] == [f"rtmp://127.0.0.1:{rtmp.port}/live/****"]  # the key is secret
    _ready(app, room["notice"]["render_id"], clips.notice)
    _ready(app, room["idle"]["render_id"], clips.idle)
    _ready(app, room["segments"][0]["render_id"], intro)
    return headers, room["id"], consent_token


class ShowThread:
    """The ``live_show`` job run in this process, as a worker would run it."""

    def __init__(self, app, job_id: str):  # type: ignore[no-untyped-def]
        self.app, self.job_id = app, job_id
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with self.app.app_context():
            jobs.run_inline(db.session.get(Job, self.job_id))
            db.session.remove()

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the show did not end"


def _go_live(app, client, headers, room_id: str) -> ShowThread:  # type: ignore[no-untyped-def]
    res = client.post(f"/api/v1/live-rooms/{room_id}/start", headers=headers)
    assert res.status_code == 202, res.json
    return ShowThread(app, res.json["job_id"])


def _room_row(app, room_id: str) -> LiveRoom:  # type: ignore[no-untyped-def]
    with app.app_context():
        room = db.session.get(LiveRoom, room_id)
        db.session.expunge(room)
        return room


def test_show_is_pushed_labelled_watermarked_and_resolves_in_verify(
    live_app, rtmp, live_clips, tmp_path
):
    client = live_app.test_client()
    headers, room_id, _ = _room(
        live_app, client, rtmp, live_clips, intro=live_clips.intro, max_seconds=16
    )
    lead = live_clips.notice_s  # the room's notice clip airs first (about 3 s)
    viewer = measure.Puller(rtmp.url("show"), tmp_path / "pulled.ts")
    went_live = time.monotonic()
    show = _go_live(live_app, client, headers, room_id)
    first = rtmp.first_frame_at("show", 10)
    assert first is not None and first - went_live < 2.5  # README has the measured figure
    show.join(25)
    viewer.finish()

    room = _room_row(live_app, room_id)
    assert room.status == "ended" and room.stop_reason == "max_length"
    # what reached the RTMP server (its own recording): the whole show, 25 fps, no stall
    pushed = measure.stream_facts(rtmp.recording("show"))
    assert 15.9 <= pushed.video_s <= 16.5 and pushed.stalls == 0, pushed
    assert abs(pushed.fps - 25.0) < 0.05 and abs(pushed.audio_s - pushed.video_s) < 0.1, pushed
    # what the viewer pulled back: the same timing (nginx may not hand a viewer the last
    # second or two it holds when the publisher leaves: README, "Measured")
    facts = measure.stream_facts(tmp_path / "pulled.ts")
    assert abs(facts.fps - 25.0) < 0.2 and facts.stalls == 0, facts
    assert 13.5 <= facts.video_s <= pushed.video_s + 0.05, facts
    # sound and picture of the segment found independently in the recording: in step
    drift = measure.av_offset(tmp_path / "pulled.ts", live_clips.intro.path, 4.0, lead)
    assert drift["audio_score"] > 0.8 and abs(drift["video_s"] - lead) < 0.05, drift
    assert abs(drift["drift_s"]) <= 0.045, drift

    # the opening label at the start of the notice and of the segment, the corner mark on
    # every sampled frame (the notice's, the segment's and then the idle loop's, past the
    # 11.3 s segment)
    times = [0.5, lead + 0.5, lead + 2.0, lead + 4.0, lead + 7.0, lead + 10.0]
    frames = measure.frames_at(tmp_path / "pulled.ts", times)
    frames += measure.frames_at(rtmp.recording("show"), [lead + 11.8])
    assert len(frames) == 7
    assert all(find_label(frames[n]) is not None for n in (0, 1, 2))
    assert all(find_mark(f) is not None for f in frames), "a frame without the AI mark"
    unlabelled = next(media.frames(SHARED_DATA / "grid_s1" / "heldout" / "bbil3s.mpg"))
    assert find_mark(unlabelled) is None  # the check is not fooled by the plain footage

    # a 10-s excerpt a viewer recorded: the watermark decides, verify finds the room
    excerpt = measure.cut(tmp_path / "pulled.ts", tmp_path / "excerpt.mp4", lead + 0.6, 10.0)
    with live_app.app_context():
        result = registry.verify_path(excerpt)
    assert result["verdict"] == "ai_generated_by_us", result
    assert result["watermark"]["found"] and result["watermark"]["p_value"] < 1e-9
    assert result["content"]["content_id"] == live_clips.intro.record.content_id
    assert result["content"]["live_rooms"] == [room_id]
    assert result["content"]["consent_status"] == "active"


def test_a_comment_is_answered_inside_the_stream(live_app, rtmp, live_clips, tmp_path):
    client = live_app.test_client()
    headers, room_id, _ = _room(
        live_app, client, rtmp, live_clips, intro=live_clips.short, max_seconds=17, qa=True
    )
    viewer = measure.Puller(rtmp.url("show"), tmp_path / "pulled.ts")
    show = _go_live(live_app, client, headers, room_id)
    assert rtmp.first_frame_at("show", 10) is not None
    started = time.monotonic()
    time.sleep(live_clips.notice_s + 1.0)  # during the segment that follows the notice
    res = client.post(
        f"/api/v1/live-rooms/{room_id}/comments",
        json={"text": "how long will delivery take?", "author": "buyer42"},
        headers=headers,
    )
    assert res.status_code == 201, res.json
    assert res.json["status"] == "queued"
    asked_at = time.monotonic() - started
    unmatched = client.post(
        f"/api/v1/live-rooms/{room_id}/comments",
        json={"text": "Do you ship to the moon?"},
        headers=headers,
    )
    assert unmatched.json["status"] == "unmatched"
    show.join(25)
    viewer.finish()

    listed = client.get(f"/api/v1/live-rooms/{room_id}/comments", headers=headers).json
    by_text = {c["text"]: c for c in listed["comments"]}
    assert by_text["how long will delivery take?"]["status"] == "aired"
    operator = client.get(
        f"/api/v1/live-rooms/{room_id}/comments?status=unmatched", headers=headers
    ).json
    assert [c["text"] for c in operator["comments"]] == ["Do you ship to the moon?"]

    # the answer clip's own speech (after its spoken notice) is heard in the pulled stream,
    # after the comment, at the first boundary (the end of the notice and the 5 s segment)
    rate = 16000
    pulled = measure.audio(tmp_path / "pulled.ts", rate)
    theirs = media.audio(live_clips.answer.path, rate)
    speech = theirs[int(2.6 * rate) : int(4.4 * rate)]
    at, score = measure.find_audio(pulled, speech, rate)
    assert score > 0.8, (score, len(pulled) / rate, asked_at, _room_row(live_app, room_id).stats)
    answer_start = at - 2.6
    segment = media.probe(live_clips.short.path).duration_s
    assert answer_start > asked_at
    assert abs(answer_start - (live_clips.notice_s + segment)) < 0.2, (
        answer_start,
        segment,
        _room_row(live_app, room_id).stats,
    )
    # and the same speech is not in the intro clip: the match is the answer, not chance
    assert measure.find_audio(media.audio(live_clips.short.path, rate), speech, rate)[1] < 0.5


@pytest.mark.parametrize("gate", ["consent_revoked", "avatar_frozen"])
def test_withdrawal_or_a_freeze_stops_the_stream_within_2_seconds(
    live_app, rtmp, live_clips, tmp_path, gate
):
    client = live_app.test_client()
    headers, room_id, consent_token = _room(
        live_app, client, rtmp, live_clips, intro=live_clips.intro, max_seconds=60
    )
    viewer = measure.Puller(rtmp.url("show"), tmp_path / "pulled.ts")
    show = _go_live(live_app, client, headers, room_id)
    first = rtmp.first_frame_at("show", 10)
    assert first is not None
    time.sleep(3.0)
    if gate == "consent_revoked":  # the person's own link
        res = client.post(f"/api/v1/consent/{consent_token}/revoke")
        assert res.status_code == 200, res.json
    else:  # trust & safety freezes the avatar (an admin action or an urgent report)
        with live_app.app_context():
            avatar = db.session.scalar(select(Avatar))
            avatar.frozen_at, avatar.frozen_reason = utcnow(), "report under review"
            db.session.commit()
    revoked = time.monotonic()
    show.join(5)
    stopped = time.monotonic() - revoked
    assert stopped < 2.0, stopped
    viewer.finish()

    room = _room_row(live_app, room_id)
    assert room.status == "ended" and room.stop_reason == gate
    # nothing reached the server 2 s after the withdrawal: its recording of the stream is
    # at most 2 s longer than the time from its first frame to the withdrawal
    pushed = measure.stream_facts(rtmp.recording("show"))
    assert pushed.video_s <= (revoked - first) + 2.0, (pushed.video_s, revoked - first)
    assert pushed.video_s >= (revoked - first) - 1.0  # it was streaming until then
    with live_app.app_context():
        assert not (Path(live_app.config["WORK_DIR"]) / "live" / room_id / "clips").exists()
        subject = db.session.scalar(select(Subject))
        assert subject.status == ("revoked" if gate == "consent_revoked" else "active")


def test_the_stream_survives_the_rtmp_server_going_away(live_app, rtmp, live_clips, tmp_path):
    client = live_app.test_client()
    headers, room_id, _ = _room(
        live_app, client, rtmp, live_clips, intro=live_clips.intro, max_seconds=14
    )
    first_viewer = measure.Puller(rtmp.url("show"), tmp_path / "before.ts")
    show = _go_live(live_app, client, headers, room_id)
    assert rtmp.first_frame_at("show", 10) is not None
    time.sleep(2.0)
    rtmp.stop()  # the ingest drops every connection
    first_viewer.finish(quiet_s=0.5, timeout=2)
    time.sleep(1.5)
    rtmp.start()  # ... and comes back on the same port
    back = time.monotonic()
    second_viewer = measure.Puller(rtmp.url("show"), tmp_path / "after.ts")
    resumed = rtmp.first_frame_at("show", 8)
    assert resumed is not None, "the engine did not reconnect"
    show.join(20)
    second_viewer.finish()

    # re-dialled within the back-off (0.3, 0.5, 1 s), plus a key frame to start from
    assert resumed - back < 5.0
    # the stream after the reconnection, as the server recorded it and as a viewer got it
    pushed = measure.stream_facts(rtmp.recording("show"))
    assert pushed.video_s > 6.0 and abs(pushed.fps - 25.0) < 0.05 and pushed.stalls == 0, pushed
    after = measure.stream_facts(tmp_path / "after.ts")
    assert after.video_s > 4.0 and abs(after.fps - 25.0) < 0.3, after
    room = _room_row(live_app, room_id)
    assert room.stop_reason == "max_length"
    rtmp_stats = room.stats["outputs"]["rtmp0"]
    assert rtmp_stats["failures"] >= 1 and rtmp_stats["starts"] >= 2, rtmp_stats
    assert room.stats["outputs"]["hls"]["failures"] == 0  # the other output never noticed
    assert np.isclose(room.stats["frames"], 14 * 25, atol=25)  # the clock never stopped


def test_an_operator_line_and_the_repeated_notice_air_in_the_stream(
    make_app, stamped_media, rtmp, live_clips, tmp_path
):
    """An operator's line is refused by moderation or rendered (the render worker's part
    stood in for by ``_ready``) and spliced in at the next boundary, when the show said it
    would air, with who typed it in the audit log; the notice clip airs first and again at
    the first boundary after the interval; the first minute on air is paid."""
    app = _live_app(make_app, stamped_media, LIVE_NOTICE_INTERVAL_S=6)
    client = app.test_client()
    headers, room_id, _ = _room(
        app, client, rtmp, live_clips, intro=live_clips.short, max_seconds=13
    )
    viewer = measure.Puller(rtmp.url("show"), tmp_path / "pulled.ts")
    show = _go_live(app, client, headers, room_id)
    assert rtmp.first_frame_at("show", 10) is not None
    started = time.monotonic()
    url = f"/api/v1/live-rooms/{room_id}/lines"
    refused = client.post(
        url, json={"text": "Guaranteed returns: double your money tonight."}, headers=headers
    )
    assert refused.status_code == 422 and refused.json["error"].startswith("moderation_")
    res = client.post(url, json={"text": "Thanks for joining us, everyone."}, headers=headers)
    assert res.status_code == 201 and res.json["status"] == "rendering", res.json
    line = res.json
    _ready(app, line["render_id"], live_clips.answer)  # the gpu worker renders it
    ready_at = time.monotonic() - started
    show.join(30)
    viewer.finish()

    room = _room_row(app, room_id)
    assert room.stop_reason == "max_length", room.stats
    line = client.get(url, headers=headers).json["lines"][0]
    assert line["status"] == "aired", line
    # the show's estimate of when it would air (the rest of the notice on air) held
    estimate = datetime.fromisoformat(line["airs_at"])
    aired = datetime.fromisoformat(line["aired_at"])
    assert abs((aired - estimate).total_seconds()) < 1.0, (estimate, aired)
    # notice, the line at the notice's end, the notice again at the first boundary after
    # 6 s on air (the end of the line), then the planned segment
    keys = room.stats["aired"]
    assert keys[:4] == ["notice", f"line:{line['id']}", "notice", keys[3]], keys
    assert keys[3].startswith("segment:"), keys

    rate = 16000
    pulled = measure.audio(tmp_path / "pulled.ts", rate)
    notice = media.audio(live_clips.notice.path, rate)
    spoken = media.audio(live_clips.answer.path, rate)[int(2.6 * rate) : int(4.4 * rate)]
    at, score = measure.find_audio(pulled, spoken, rate)
    assert score > 0.8 and abs(at - 2.6 - live_clips.notice_s) < 0.2, (at, score)
    assert at - 2.6 > ready_at - 0.5  # not before the line was ready
    first, score1 = measure.find_audio(pulled[: 4 * rate], notice, rate)
    line_s = media.probe(live_clips.answer.path).duration_s
    again, score2 = measure.find_audio(pulled[6 * rate :], notice, rate)
    assert score1 > 0.8 and first < 0.2, (first, score1)
    assert score2 > 0.8 and abs(6 + again - (live_clips.notice_s + line_s)) < 0.2, again

    # who drove the show and when: the operator log and the audit chain, with their id
    log = client.get(f"/api/v1/live-rooms/{room_id}/log", headers=headers).json
    with app.app_context():
        owner_id = db.session.get(LiveRoom, room_id).owner_id
        events = db.session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        trail = [(e.tag, e.actor_id) for e in events if e.tag.startswith("live:")]
        paid = db.session.scalars(select(CreditEntry.delta).where(CreditEntry.kind == "live"))
        assert list(paid) == [-30]  # one started minute
        assert registry_rooms(line["render_id"]) == [room_id]  # verify resolves to the room
    for step in [
        ("live:started", owner_id),
        ("live:line", owner_id),
        ("live:line-aired", owner_id),
        ("live:ended", None),
    ]:
        assert step in trail, (step, trail)
    assert ("live:line-aired", owner_id) in [(e["event"], e["actor_id"]) for e in log["log"]]


def test_a_show_whose_credits_are_gone_ends_cleanly_as_it_goes_on_air(live_app, rtmp, live_clips):
    """The show pays its first minute when its first frame goes out; the order that paid
    for the credits is refunded between the start and then: the show ends (``credits``),
    closing its streams, without a minute paid."""
    client = live_app.test_client()
    headers, room_id, _ = _room(
        live_app, client, rtmp, live_clips, intro=live_clips.short, max_seconds=30
    )
    res = client.post(f"/api/v1/live-rooms/{room_id}/start", headers=headers)
    assert res.status_code == 202, res.json
    with live_app.app_context():
        ledger.refund(db.session.scalar(select(Order)))
        db.session.commit()
    show = ShowThread(live_app, res.json["job_id"])
    show.join(15)
    room = _room_row(live_app, room_id)
    assert room.stop_reason == "credits", room.stats
    assert room.stats["outputs"]["rtmp0"]["failures"] == 0  # closed, not cut
    with live_app.app_context():
        paid = db.session.scalars(select(CreditEntry).where(CreditEntry.kind == "live")).all()
        assert paid == []
        ended = db.session.scalar(select(AuditEvent).where(AuditEvent.tag == "live:ended"))
        assert ended.data["reason"] == "credits"
