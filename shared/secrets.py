"""Secrets at rest: Fernet (AES-128-CBC + HMAC-SHA256) with one key per deployment, and SHA-256
hashing for values we only ever compare (OTPs, session tokens)."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken


class SecretError(ValueError):
    pass


def load_key(secret_key: str, data_dir: str | os.PathLike) -> bytes:
    """The configured key, or one generated once into ``<data_dir>/secret.key`` (mode 600)."""
    if secret_key:
        return secret_key.encode()
    path = Path(data_dir) / "secret.key"
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return key


class Vault:
    def __init__(self, key: bytes) -> None:
        try:
            self._f = Fernet(key)
        except ValueError as e:
            raise SecretError("KTA_SECRET_KEY is not a valid Fernet key (32 url-safe base64 bytes)") from e

    def encrypt(self, plaintext: str) -> str:
        return self._f.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._f.decrypt(token.encode()).decode()
        except InvalidToken as e:
            raise SecretError("cannot decrypt: wrong key or tampered value") from e


def vault_for(settings) -> Vault:
    """The installation's vault: ``settings.secret_key``, else the key kept in its data dir."""
    return Vault(load_key(settings.secret_key, settings.data_dir))


def hash_secret(value: str, salt: str = "") -> str:
    return hashlib.sha256((salt + value).encode()).hexdigest()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def new_token(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)
