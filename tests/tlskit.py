"""Certificates for tests that speak TLS to kite_sim the way kta speaks it to the real Kite
(https://api.kite.trade): a throwaway certificate authority that the process's one TLS context
(``shared.kite.tls``) trusts, as certifi's bundle trusts Kite's, and server certificates it issues."""

from __future__ import annotations

import functools
from pathlib import Path

import trustme

from shared.kite import tls


@functools.cache
def trusted_ca() -> trustme.CA:
    """A CA trusted from now on by this process's TLS context, so the production code path (certificates
    and host names verified) accepts the certificates it issues for 127.0.0.1 and nothing else changes."""
    ca = trustme.CA()
    ca.configure_trust(tls.context())
    return ca


def server_files(ca: trustme.CA, directory: Path) -> tuple[Path, Path]:
    """(certificate chain, private key) PEM files for 127.0.0.1 issued by ``ca``, for kite_sim's --tls-cert/--tls-key."""
    cert = ca.issue_cert("127.0.0.1")
    chain, key = directory / "cert.pem", directory / "key.pem"
    chain.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(key))
    return chain, key
