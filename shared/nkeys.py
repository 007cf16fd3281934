"""NATS nkeys (Ed25519 key pairs in NATS's base32 text form) with ``cryptography``: generate them,
read a seed back, sign. What ``shared/natsjwt.py`` signs JWTs with and what ``Bus.connect`` answers
the server's nonce with, so kta needs no extra package to authenticate."""

from __future__ import annotations

import base64
import binascii

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

PREFIX_SEED = 18 << 3  # "S"
PREFIXES = {"operator": 14 << 3, "account": 0, "user": 20 << 3}  # "O", "A", "U"
_KIND_OF = {v: k for k, v in PREFIXES.items()}


class NkeyError(ValueError):
    pass


def _crc16(data: bytes) -> int:
    return binascii.crc_hqx(data, 0)  # CRC-16/XMODEM, as nkeys use


def _b32(raw: bytes) -> str:
    body = raw + _crc16(raw).to_bytes(2, "little")
    return base64.b32encode(body).decode().rstrip("=")


def _unb32(text: str) -> bytes:
    try:
        body = base64.b32decode(text + "=" * (-len(text) % 8))
    except (binascii.Error, ValueError) as e:
        raise NkeyError(f"not an nkey: {e}") from None
    raw, crc = body[:-2], int.from_bytes(body[-2:], "little")
    if len(body) < 3 or _crc16(raw) != crc:
        raise NkeyError("nkey checksum mismatch")
    return raw


class KeyPair:
    """One nkey: ``public`` (O…/A…/U…), ``seed`` (S…, the secret) and ``sign``."""

    def __init__(self, kind: str, private: Ed25519PrivateKey) -> None:
        self.kind = kind
        self._private = private
        raw_pub = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.public = _b32(bytes([PREFIXES[kind]]) + raw_pub)

    @classmethod
    def create(cls, kind: str) -> "KeyPair":
        if kind not in PREFIXES:
            raise NkeyError(f"unknown nkey kind {kind!r}")
        return cls(kind, Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: str) -> "KeyPair":
        raw = _unb32(seed.strip())
        if len(raw) != 34 or raw[0] & 0xF8 != PREFIX_SEED:
            raise NkeyError("not an nkey seed")
        prefix = ((raw[0] & 0x07) << 5) | ((raw[1] & 0xF8) >> 3)
        if prefix not in _KIND_OF:
            raise NkeyError("seed of an unsupported key kind")
        return cls(_KIND_OF[prefix], Ed25519PrivateKey.from_private_bytes(raw[2:]))

    @property
    def seed(self) -> str:
        raw = self._private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                          serialization.NoEncryption())
        prefix = PREFIXES[self.kind]
        return _b32(bytes([PREFIX_SEED | (prefix >> 5), (prefix & 31) << 3]) + raw)

    def sign(self, data: bytes) -> bytes:
        return self._private.sign(data)
