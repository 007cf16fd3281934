"""NATS JWTs (v2) and ``.creds`` files, signed with ``shared/nkeys.py``.

nats-server runs in operator mode: it trusts one operator, which signs kta's account, which signs
each identity (a service, the ops probe, a trader's read-only key). A user JWT carries its
permissions, so a new identity needs no server change. Only the fields the server reads are
written; claims are JSON, base64url without padding, signed ``header.claims`` with Ed25519."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import dataclass

from shared.nkeys import KeyPair

_HEADER = {"typ": "JWT", "alg": "ed25519-nkey"}
UNLIMITED = -1


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode(claims: dict, signer: KeyPair) -> str:
    body = dict(claims)
    body.setdefault("iat", int(time.time()))
    body["iss"] = signer.public
    body.pop("jti", None)
    body["jti"] = base64.b32encode(hashlib.sha256(json.dumps(body, sort_keys=True).encode()).digest()).decode().rstrip("=")
    head = _b64(json.dumps(_HEADER, separators=(",", ":")).encode())
    payload = _b64(json.dumps(body, separators=(",", ":")).encode())
    signature = signer.sign(f"{head}.{payload}".encode())
    return f"{head}.{payload}.{_b64(signature)}"


def claims_of(token: str) -> dict:
    """The claims of a JWT (not verified: for reading back what kta issued)."""
    return json.loads(_unb64(token.split(".")[1]))


def operator(name: str, key: KeyPair, system_account: str) -> str:
    return encode({"name": name, "sub": key.public,
                   "nats": {"type": "operator", "version": 2, "system_account": system_account}}, key)


def account(name: str, key: KeyPair, operator_key: KeyPair, *, jetstream: bool = True,
            revocations: dict[str, int] | None = None) -> str:
    limits = {"subs": UNLIMITED, "data": UNLIMITED, "payload": UNLIMITED, "imports": UNLIMITED,
              "exports": UNLIMITED, "wildcards": True, "conn": UNLIMITED, "leaf": UNLIMITED}
    if jetstream:
        limits.update({"mem_storage": UNLIMITED, "disk_storage": UNLIMITED, "streams": UNLIMITED,
                       "consumer": UNLIMITED, "max_ack_pending": UNLIMITED, "mem_max_stream_bytes": UNLIMITED,
                       "disk_max_stream_bytes": UNLIMITED, "max_bytes_required": False})
    nats = {"type": "account", "version": 2, "limits": limits, "default_permissions": {"pub": {}, "sub": {}}}
    if revocations:
        nats["revocations"] = revocations
    return encode({"name": name, "sub": key.public, "nats": nats}, operator_key)


@dataclass(frozen=True)
class Permissions:
    """What an identity may publish and subscribe to; ``responses`` lets it answer requests it got."""
    publish: tuple[str, ...] = ()
    subscribe: tuple[str, ...] = ()
    responses: bool = False


def user(name: str, key: KeyPair, account_key: KeyPair, perms: Permissions, *, expires: int = 0) -> str:
    nats: dict = {"type": "user", "version": 2, "subs": UNLIMITED, "data": UNLIMITED, "payload": UNLIMITED,
                  "pub": {"allow": list(perms.publish)} if perms.publish else {"deny": [">"]},
                  "sub": {"allow": list(perms.subscribe)} if perms.subscribe else {"deny": [">"]}}
    if perms.responses:
        nats["resp"] = {"max": 1, "ttl": 0}
    claims: dict = {"name": name, "sub": key.public, "nats": nats}
    if expires:
        claims["exp"] = expires
    return encode(claims, account_key)


def creds(jwt: str, key: KeyPair) -> str:
    """The standard ``.creds`` text every NATS client and the ``nats`` CLI read."""
    return (f"-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n"
            "************************* IMPORTANT *************************\n"
            "NKEY Seed printed below can be used to sign and prove identity.\n"
            "NKEYs are sensitive and should be treated as secrets.\n\n"
            f"-----BEGIN USER NKEY SEED-----\n{key.seed}\n------END USER NKEY SEED------\n\n"
            "*************************************************************\n")


def read_creds(text: str) -> tuple[str, KeyPair]:
    """The JWT and the key pair of a ``.creds`` file."""
    lines = [ln.strip() for ln in text.splitlines()]
    try:
        jwt = lines[lines.index("-----BEGIN NATS USER JWT-----") + 1]
        seed = lines[lines.index("-----BEGIN USER NKEY SEED-----") + 1]
    except (ValueError, IndexError):
        raise ValueError("not a NATS .creds file") from None
    return jwt, KeyPair.from_seed(seed)


def signature(key: KeyPair, nonce: str) -> bytes:
    """The server's connect nonce signed, as nats-py sends it."""
    return base64.b64encode(key.sign(nonce.encode()))
