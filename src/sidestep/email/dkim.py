"""DKIM signatures (RFC 6376) with RSA-SHA256 and Ed25519-SHA256 (RFC 8463).

Signing goes through `cryptography` (OpenSSL): dkimpy's pure-Python RSA is about ten times
slower. Canonicalization is relaxed/relaxed and written here (a few regular expressions);
the tests verify every signature with dkimpy. With both keys configured a message carries
two DKIM-Signature headers, Ed25519 and RSA: receivers that do not know Ed25519 yet use the
RSA one.

`SIGNED_HEADERS` covers what RFC 8058 requires (List-Unsubscribe and List-Unsubscribe-Post)
besides the usual ones; From, Subject and the two List-Unsubscribe headers are listed once
more than they occur ("over-signing"), so a relay cannot add a second copy that a mail
client would show instead.

Private keys live in the database sealed by the vault (`store/campaigns.py`); `SigningPool`
spreads signing over worker processes for large campaigns.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from enum import StrEnum

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

__all__ = [
    "SIGNED_HEADERS",
    "DkimAlgorithm",
    "DkimError",
    "DkimKey",
    "DkimSigner",
    "SigningPool",
    "dns_record",
    "generate_key",
]

SIGNED_HEADERS = (
    "from", "to", "subject", "date", "message-id", "mime-version", "content-type", "reply-to",
    "list-unsubscribe", "list-unsubscribe-post",
)
OVERSIGNED = ("from", "subject", "list-unsubscribe", "list-unsubscribe-post")
_WSP_RUN = re.compile(rb"[ \t]+")
_TRAILING_WSP = re.compile(rb"[ \t]+\r\n")
_TRAILING_LINES = re.compile(rb"(\r\n)+$")
_FOLD = re.compile(rb"\r\n(?![ \t])")


class DkimError(ValueError):
    """A key cannot be used, or a message cannot be signed (the text says why)."""


class DkimAlgorithm(StrEnum):
    RSA = "rsa-sha256"
    ED25519 = "ed25519-sha256"


@dataclass(frozen=True, slots=True)
class DkimKey:
    """A signing identity: domain, selector and the private key as PKCS#8 PEM."""

    domain: str
    selector: str
    algorithm: DkimAlgorithm
    private_pem: bytes

    def __repr__(self) -> str:
        return f"DkimKey({self.domain!r}, {self.selector!r}, {self.algorithm.value}, pem=***)"


def generate_key(algorithm: DkimAlgorithm) -> bytes:
    """A new private key as unencrypted PKCS#8 PEM (seal it before storing)."""
    key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    if algorithm is DkimAlgorithm.RSA:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        key = ed25519.Ed25519PrivateKey.generate()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def dns_record(key: DkimKey) -> str:
    """The TXT record to publish at `<selector>._domainkey.<domain>`."""
    private = _load(key)
    if isinstance(private, rsa.RSAPrivateKey):
        der = private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"
    raw = private.public_key().public_bytes(serialization.Encoding.Raw,
                                            serialization.PublicFormat.Raw)
    return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode()}"


def _load(key: DkimKey) -> rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey:
    try:
        private = serialization.load_pem_private_key(key.private_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise DkimError(f"the DKIM key for {key.selector}._domainkey.{key.domain} cannot "
                        "be read as a PEM private key") from exc
    if key.algorithm is DkimAlgorithm.RSA and isinstance(private, rsa.RSAPrivateKey):
        if private.key_size < 2048:
            raise DkimError("RSA DKIM keys must have at least 2048 bits")
        return private
    if key.algorithm is DkimAlgorithm.ED25519 and isinstance(private,
                                                             ed25519.Ed25519PrivateKey):
        return private
    raise DkimError(f"the key for selector {key.selector!r} is not a {key.algorithm} key")


def _split(message: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Headers as (name, raw value with folding) in order, and the body."""
    head, sep, body = message.partition(b"\r\n\r\n")
    if not sep:
        raise DkimError("the message has no blank line between headers and body")
    headers: list[tuple[bytes, bytes]] = []
    for line in _FOLD.split(head):
        name, colon, value = line.partition(b":")
        if not colon:
            raise DkimError("the message has a header line without a colon")
        headers.append((name, value))
    return headers, body


def _relaxed_header(name: bytes, value: bytes) -> bytes:
    value = _WSP_RUN.sub(b" ", value.replace(b"\r\n", b"")).strip(b" ")
    return name.strip().lower() + b":" + value


def _relaxed_body(body: bytes) -> bytes:
    body = _TRAILING_WSP.sub(b"\r\n", _WSP_RUN.sub(b" ", body))
    body = _TRAILING_LINES.sub(b"", body)
    if body and not body.endswith(b"\r\n"):
        body += b"\r\n"
    return body


class DkimSigner:
    """Signs messages with one or two keys (one per algorithm) of the sending domain."""

    def __init__(self, keys: Sequence[DkimKey]) -> None:
        if not keys:
            raise DkimError("no DKIM key given")
        if len({k.algorithm for k in keys}) != len(keys):
            raise DkimError("give at most one DKIM key per algorithm")
        # Ed25519 first: the RSA signature ends on top, where older verifiers look first.
        ordered = sorted(keys, key=lambda k: k.algorithm is DkimAlgorithm.RSA)
        self._keys = [(k, _load(k)) for k in ordered]

    def sign(self, message: bytes, *, now: float | None = None) -> bytes:
        """Return `message` with a DKIM-Signature header per key prepended.

        Raises `DkimError` if the message has no From header (DKIM requires signing it).
        """
        headers, body = _split(message)
        present = [name.strip().lower() for name, _ in headers]
        if b"from" not in present:
            raise DkimError("the message has no From header")
        body_hash = base64.b64encode(hashlib.sha256(_relaxed_body(body)).digest()).decode()
        names = [n for n in SIGNED_HEADERS if n.encode() in present] + list(OVERSIGNED)
        canonical = _signed_headers(headers, names)
        stamp = int(now if now is not None else time.time())
        added = b""
        for key, private in self._keys:
            value = (f" v=1; a={key.algorithm.value}; c=relaxed/relaxed; d={key.domain};"
                     f" s={key.selector}; t={stamp};\r\n\th={':'.join(names)};\r\n"
                     f"\tbh={body_hash};\r\n\tb=")
            data = canonical + _relaxed_header(b"DKIM-Signature", value.encode())
            if isinstance(private, rsa.RSAPrivateKey):
                signature = private.sign(data, padding.PKCS1v15(), hashes.SHA256())
            else:
                signature = private.sign(hashlib.sha256(data).digest())
            b64 = base64.b64encode(signature).decode()
            folded = "\r\n\t ".join(b64[i:i + 72] for i in range(0, len(b64), 72))
            added = f"DKIM-Signature:{value}{folded}\r\n".encode() + added
        return added + message


def _signed_headers(headers: list[tuple[bytes, bytes]], names: list[str]) -> bytes:
    """Canonical headers in `names` order, each name taking its instances from the bottom."""
    used: dict[str, int] = {}
    out = []
    for name in names:
        instances = [h for h in headers if h[0].strip().lower() == name.encode()]
        seen = used.get(name, 0)
        used[name] = seen + 1
        if seen < len(instances):
            header_name, value = instances[len(instances) - 1 - seen]
            out.append(_relaxed_header(header_name, value) + b"\r\n")
    return b"".join(out)


_worker_signer: DkimSigner | None = None


def _init_worker(keys: Sequence[DkimKey]) -> None:
    global _worker_signer
    _worker_signer = DkimSigner(keys)


def _sign_batch(messages: list[bytes]) -> list[bytes]:
    assert _worker_signer is not None  # noqa: S101 - set by the pool's initializer
    return [_worker_signer.sign(m) for m in messages]


class SigningPool:
    """DKIM signing spread over worker processes; `sign_batch` awaits a list of messages."""

    def __init__(self, keys: Sequence[DkimKey], *, processes: int) -> None:
        DkimSigner(keys)  # refuse bad keys here, not in a worker
        self._processes = processes
        self._executor = ProcessPoolExecutor(max_workers=processes, initializer=_init_worker,
                                             initargs=(tuple(keys),))

    async def sign_batch(self, messages: list[bytes]) -> list[bytes]:
        """Sign `messages` (order kept), split evenly over the worker processes."""
        loop = asyncio.get_running_loop()
        size = max(1, -(-len(messages) // self._processes))
        parts = await asyncio.gather(*(
            loop.run_in_executor(self._executor, _sign_batch, messages[i:i + size])
            for i in range(0, len(messages), size)))
        return [signed for part in parts for signed in part]

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
