"""The error Kite answers synchronously: a message, Kite's ``error_type`` and the HTTP status."""

from __future__ import annotations


class KiteError(Exception):
    def __init__(self, message: str, error_type: str = "InputException", status: int = 400) -> None:
        super().__init__(message)
        self.message, self.error_type, self.status = message, error_type, status
