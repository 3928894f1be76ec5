"""The notice a subject reads before consenting (R3): versioned, and hashed into the record."""

from __future__ import annotations

import hashlib

VERSION = "2026-11-24"
USES = ("marketing_videos", "qa_chatbot", "live_streams")
TEXT = """\
Digital Human Factory will create a digital likeness of your face and voice (a "digital
human") from the video and voice recordings you or the account holder upload.

Purpose and uses: videos that present scripts (marketing videos), answers to questions
(Q&A chatbot) and live-streamed product presentations, for the account that invited you.
Every output is labelled as AI-generated, watermarked and signed.

Retention: your recordings and the trained model are kept, encrypted under a key of your
own, until you withdraw or the account is closed; audit records are kept 6 months.

Recipients: the inviting account holder and the viewers of the videos they publish. We do
not sell your data or use it to train other models.

Withdrawal: at any time, with the link you used to consent. New videos stop at once, queued
work is cancelled and your encryption key is destroyed, which makes your recordings and
model unreadable. Published files then verify as "consent withdrawn".
"""
SHA256 = hashlib.sha256(TEXT.encode()).hexdigest()
