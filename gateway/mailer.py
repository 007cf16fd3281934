"""Sending the login code: SMTP when ``smtp_host`` is set (smtplib in a worker thread, STARTTLS and
login when configured). The code itself never reaches a log line."""

from __future__ import annotations

import asyncio
import smtplib
from email.message import EmailMessage

from shared.config import Settings


class MailError(RuntimeError):
    pass


def _message(settings: Settings, to: str, code: str, ttl_minutes: int) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = settings.smtp_from
    msg["To"] = to
    msg["Subject"] = f"kta login code: {code}"
    msg.set_content(f"Your kta login code is {code}.\n\nIt is valid for {ttl_minutes} minutes and works once.\n"
                    "If you did not ask for it, ignore this email.\n")
    return msg


def _send(settings: Settings, msg: EmailMessage) -> None:
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=10) as smtp:
        if settings.smtp_starttls:
            smtp.starttls()
        if settings.smtp_user:
            smtp.login(settings.smtp_user, settings.smtp_password)
        smtp.send_message(msg)


async def send_code(settings: Settings, to: str, code: str) -> None:
    msg = _message(settings, to, code, max(1, settings.otp_ttl_seconds // 60))
    try:
        await asyncio.to_thread(_send, settings, msg)
    except (OSError, smtplib.SMTPException) as e:
        raise MailError(f"could not send the login email ({type(e).__name__})") from None
