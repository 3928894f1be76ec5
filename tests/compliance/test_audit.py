"""The hash chain rules of compliance.audit on plain rows."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from compliance.audit import GENESIS, EventTag, row_hash, verify_chain


@dataclass(frozen=True)
class Row:
    id: int
    created_at: datetime
    tag: str
    actor_id: str | None
    data: dict[str, Any] = field(default_factory=dict)
    prev_hash: str = ""
    hash: str = ""


def _chain(n: int) -> list[Row]:
    rows, prev = [], GENESIS
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(1, n + 1):
        at = start + timedelta(seconds=i)
        data = {"n": i}
        h = row_hash(prev, EventTag.AUTH_LOGIN, "u1", at, data)
        rows.append(Row(i, at, str(EventTag.AUTH_LOGIN), "u1", data, prev, h))
        prev = h
    return rows


def test_intact_chain_verifies():
    report = verify_chain(_chain(5))
    assert report.ok and report.rows == 5


def test_known_answer_vector():
    at = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert row_hash(GENESIS, "auth:login", "u1", at, {"a": 1}) == row_hash(
        GENESIS, "auth:login", "u1", at.astimezone(timezone(timedelta(hours=8))), {"a": 1}
    ), "the same instant in another zone must hash the same"
    # The stored format: SHA-256 of compact, key-sorted JSON with the UTC wall time.
    canonical = (
        '{"actor":"u1","at":"2026-01-01T12:00:00.000000","data":{"a":1},'
        '"prev":"' + GENESIS + '","tag":"auth:login"}'
    )
    assert (
        row_hash(GENESIS, "auth:login", "u1", at, {"a": 1})
        == hashlib.sha256(canonical.encode()).hexdigest()
    )


def test_edited_row_is_detected():
    rows = _chain(5)
    rows[2] = replace(rows[2], data={"n": 999})
    report = verify_chain(rows)
    assert report.problems == ("row 3: content does not match its hash (edited row)",)


def test_deleted_row_is_detected():
    rows = _chain(5)
    del rows[2]
    assert verify_chain(rows).problems == (
        "row 4: does not follow the previous row (deleted or inserted row)",
    )


def test_deleted_first_row_is_detected():
    assert not verify_chain(_chain(3)[1:]).ok


def test_rehashed_edit_still_breaks_the_next_row():
    rows = _chain(4)
    forged = replace(rows[1], data={"n": 0})
    forged = replace(
        forged,
        hash=row_hash(
            forged.prev_hash, forged.tag, forged.actor_id, forged.created_at, forged.data
        ),
    )
    rows[1] = forged
    assert verify_chain(rows).problems == (
        "row 3: does not follow the previous row (deleted or inserted row)",
    )
