"""Structured logging: one JSON line per event with a ``service`` field, or readable text on a
terminal. Secrets never reach a log line: values of secret-looking keys are masked, and the
``access_token=...`` / ``api_secret=...`` patterns are scrubbed from messages."""

from __future__ import annotations

import logging
import re
import sys
import time

import msgspec

SECRET_KEYS = frozenset(
    {"access_token", "api_secret", "otp", "password", "session", "token", "checksum", "request_token",
     "secret_key", "smtp_password", "enctoken", "refresh_token", "authorization", "cookie"}
)
_SECRET_RE = re.compile(
    r"(?i)\b(access_token|api_secret|request_token|checksum|otp|password|enctoken|refresh_token|kta_session)"
    r"([\"']?\s*[:=]\s*[\"']?)([^\s&\"',;}]+)"
)
_AUTH_RE = re.compile(r"(?i)(authorization:?\s*token\s+[^:\s]+:)(\S+)")
_STD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def scrub(text: str) -> str:
    text = _SECRET_RE.sub(lambda mt: mt.group(1) + mt.group(2) + "***", text)
    return _AUTH_RE.sub(lambda mt: mt.group(1) + "***", text)


def _extras(record: logging.LogRecord) -> dict:
    out = {}
    for k, v in record.__dict__.items():
        if k in _STD or k.startswith("_"):
            continue
        out[k] = "***" if k.lower() in SECRET_KEYS else v
    return out


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service
        self.enc = msgspec.json.Encoder()

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": scrub(record.getMessage()),
        }
        doc.update(_extras(record))
        if record.exc_info:
            doc["exc"] = scrub(self.formatException(record.exc_info))
        doc["service"] = doc.get("service") or self.service
        return self.enc.encode(doc).decode("utf-8", "replace") if True else ""

    def formatException(self, ei) -> str:  # noqa: N802
        return super().formatException(ei)


class TextFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__("%(asctime)s %(levelname)-7s " + service + " %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = scrub(super().format(record))
        extras = {k: v for k, v in _extras(record).items() if k != "service"}
        if extras:
            line += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        return line


def setup(service: str, level: str = "INFO", fmt: str = "auto", stream=None) -> None:
    stream = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(service) if use_json else TextFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("nats", "websockets", "httpx", "httpcore", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
