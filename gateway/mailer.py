"""Email over SMTP when ``smtp_host`` is set (smtplib in a worker thread, STARTTLS and login when
configured): the login code, and the alerts and end-of-day report of the notifier. A code or a
password never reaches a log line."""

from __future__ import annotations

import asyncio
import smtplib
from email.message import EmailMessage

from shared.config import Settings


class MailError(RuntimeError):
    pass


def message(settings: Settings, to: str, subject: str, text: str, html: str = "") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = settings.smtp_from
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(text)
    if html:
        msg.add_alternative(html, subtype="html")
    return msg


def _send(settings: Settings, msg: EmailMessage) -> None:
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=10) as smtp:
        if settings.smtp_starttls:
            smtp.starttls()
        if settings.smtp_user:
            smtp.login(settings.smtp_user, settings.smtp_password)
        smtp.send_message(msg)


async def send(settings: Settings, msg: EmailMessage, what: str = "email") -> None:
    if not settings.smtp_host:
        raise MailError("no mail server: set KTA_SMTP_HOST (and _PORT, _USER, _PASSWORD, _FROM)")
    try:
        await asyncio.to_thread(_send, settings, msg)
    except (OSError, smtplib.SMTPException) as e:
        raise MailError(f"could not send the {what} ({type(e).__name__}: {_reason(e)})") from None


def _reason(e: Exception) -> str:
    if isinstance(e, smtplib.SMTPResponseException):
        return f"{e.smtp_code} {e.smtp_error.decode(errors='replace')[:120]}"
    return str(e)[:120]


async def send_code(settings: Settings, to: str, code: str) -> None:
    ttl = max(1, settings.otp_ttl_seconds // 60)
    text = (f"Your kta login code is {code}.\n\nIt is valid for {ttl} minutes and works once.\n"
            "If you did not ask for it, ignore this email.\n")
    await send(settings, message(settings, to, f"kta login code: {code}", text), "login email")
