"""How a probe agent signs a batch of observations, and how the hub checks it.

An agent token (`sidestep agent issue`) reads `ssa_<key id>_<secret>`. Both sides derive the
signing key from the secret with HMAC-SHA256; the token itself never crosses the network and
the hub keeps only the derived key, encrypted by the vault. Each batch carries four headers:

    X-Sidestep-Agent      the key id
    X-Sidestep-Timestamp  Unix seconds when it was signed
    X-Sidestep-Nonce      32 random hex characters, never reused
    X-Sidestep-Signature  v1=<hex HMAC-SHA256 of the material below>

The signed material is `v1`, the key id, timestamp, nonce, the purpose `POST observations`
and the SHA-256 of the body, one per line: a signature cannot be moved to another body,
another agent, another moment or another kind of request.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

__all__ = [
    "AGENT_HEADER", "NONCE_HEADER", "SIGNATURE_HEADER", "TIMESTAMP_HEADER", "AgentToken",
    "BadAgentToken", "new_agent_token", "sign", "signature_matches",
]

AGENT_HEADER = "X-Sidestep-Agent"
TIMESTAMP_HEADER = "X-Sidestep-Timestamp"
NONCE_HEADER = "X-Sidestep-Nonce"
SIGNATURE_HEADER = "X-Sidestep-Signature"
PURPOSE = "POST observations"
_TOKEN = re.compile(r"^ssa_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
_KEY_LABEL = b"sidestep agent signing key v1"


class BadAgentToken(ValueError):
    """The string is not an agent token of the form `ssa_<16 hex>_<43 url-safe characters>`."""


@dataclass(frozen=True, slots=True)
class AgentToken:
    """A parsed agent token; its repr hides the secret."""

    key_id: str
    secret: str

    def __repr__(self) -> str:
        return f"AgentToken(key_id={self.key_id!r}, secret='***')"

    @classmethod
    def parse(cls, text: str) -> AgentToken:
        match = _TOKEN.match(text.strip())
        if match is None:
            raise BadAgentToken("not an agent token: expected ssa_<key id>_<secret> as printed "
                                "by `sidestep agent issue`")
        return cls(match.group(1), match.group(2))

    @property
    def text(self) -> str:
        return f"ssa_{self.key_id}_{self.secret}"

    @property
    def signing_key(self) -> bytes:
        return hmac.new(self.secret.encode(), _KEY_LABEL, hashlib.sha256).digest()


def new_agent_token() -> AgentToken:
    return AgentToken(secrets.token_hex(8), secrets.token_urlsafe(32))


def _material(key_id: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    digest = hashlib.sha256(body).hexdigest()
    return "\n".join(("v1", key_id, timestamp, nonce, PURPOSE, digest)).encode()


def sign(key: bytes, *, key_id: str, timestamp: int, body: bytes,
         nonce: str | None = None) -> dict[str, str]:
    """The four headers that authenticate `body`; a fresh nonce unless one is given."""
    nonce = nonce or secrets.token_hex(16)
    mac = hmac.new(key, _material(key_id, str(timestamp), nonce, body), hashlib.sha256)
    return {AGENT_HEADER: key_id, TIMESTAMP_HEADER: str(timestamp), NONCE_HEADER: nonce,
            SIGNATURE_HEADER: f"v1={mac.hexdigest()}"}


def signature_matches(key: bytes, *, key_id: str, timestamp: str, nonce: str, body: bytes,
                      signature: str) -> bool:
    """True when `signature` (`v1=<hex>`) is the HMAC of this batch under `key`."""
    expected = hmac.new(key, _material(key_id, timestamp, nonce, body), hashlib.sha256)
    return hmac.compare_digest(f"v1={expected.hexdigest()}".encode(), signature.encode())
