"""Outgoing mail: password reset links and account notices.

``SMTPMailer`` talks to a real server with smtplib (STARTTLS, implicit TLS, or plain for
a relay on localhost). ``DevMailer`` (development without SMTP settings) writes each mail
to ``<instance>/mail/`` and logs where, under a TEST MODE banner. ``mailer()`` picks one
from the configuration.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from flask import current_app

TEST_MODE_BANNER = "TEST MODE: this mail was not sent; no SMTP server is configured."


class MailError(RuntimeError):
    """The mail could not be handed to the server."""


class Mailer(Protocol):
    def send(self, message: EmailMessage) -> None: ...


@dataclass(frozen=True)
class SMTPSettings:
    host: str
    port: int  # 587 for STARTTLS, 465 for implicit TLS, 25 for a local relay
    user: str | None  # log in when set
    password: str | None
    tls: str  # starttls | ssl | none
    timeout: float  # seconds for connect and each command

    @classmethod
    def from_url(cls, url: str, timeout: float) -> SMTPSettings:
        """``smtp://user:pass@host:587`` (STARTTLS; ``?tls=none`` for a plain local relay)
        or ``smtps://user:pass@host:465`` (implicit TLS)."""
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("DHF_SMTP_URL must look like smtp://user:pass@host:587")
        tls = "ssl" if parts.scheme == "smtps" else "starttls"
        if "tls=none" in parts.query:
            tls = "none"
        port = parts.port or (465 if tls == "ssl" else 587)
        user = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password else None
        return cls(parts.hostname, port, user, password, tls, timeout)


class SMTPMailer:
    def __init__(self, settings: SMTPSettings):
        self.settings = settings

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        context = ssl.create_default_context()
        if s.tls == "ssl":
            return smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=context)
        smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
        if s.tls == "starttls":
            smtp.starttls(context=context)
        return smtp

    def send(self, message: EmailMessage) -> None:
        try:
            with self._connect() as smtp:
                if self.settings.user:
                    smtp.login(self.settings.user, self.settings.password or "")
                smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            raise MailError(f"{type(exc).__name__}: {exc}") from exc


class DevMailer:
    """Development only: each mail becomes a file under ``directory``, and a log line."""

    def __init__(self, directory: Path):
        self.directory = directory
        current_app.logger.warning("DevMailer: mails go to %s, not sent (TEST MODE)", directory)

    def send(self, message: EmailMessage) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        message.set_content(f"{TEST_MODE_BANNER}\n\n{message.get_content()}")
        name = message["Message-ID"].strip("<>").split("@")[0] + ".eml"
        path = self.directory / name
        path.write_bytes(bytes(message))
        path.chmod(0o600)  # reset links inside
        current_app.logger.warning(
            "To: %s\nSubject: %s\n\n%s(saved as %s)",
            message["To"],
            message["Subject"],
            message.get_content(),
            path,
        )


def mailer() -> Mailer:
    cfg, ext = current_app.config, current_app.extensions
    if "dhf_mailer" not in ext:
        timeout = float(cfg["SMTP_TIMEOUT"])
        if cfg["SMTP_URL"]:
            ext["dhf_mailer"] = SMTPMailer(SMTPSettings.from_url(cfg["SMTP_URL"], timeout))
        elif cfg["SMTP_HOST"]:
            settings = SMTPSettings(
                cfg["SMTP_HOST"],
                int(cfg["SMTP_PORT"]),
                cfg["SMTP_USER"],
                cfg["SMTP_PASSWORD"],
                cfg["SMTP_TLS"],
                timeout,
            )
            ext["dhf_mailer"] = SMTPMailer(settings)
        else:
            ext["dhf_mailer"] = DevMailer(Path(current_app.instance_path) / "mail")
    return ext["dhf_mailer"]


def send(to: str, subject: str, body: str) -> None:
    """Compose and send one plain-text mail; a failure is logged, never shown to the
    requester (whose response must not depend on whether an account exists)."""
    message = EmailMessage()
    message["From"] = current_app.config["MAIL_FROM"]
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="dhf.local")
    message.set_content(body)
    try:
        mailer().send(message)
    except MailError as exc:
        current_app.logger.error("mail to %s (%s) failed: %s", to, subject, exc)
