from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from functools import lru_cache

import dkim
import pytest

from sidestep.email.dkim import (
    DkimAlgorithm,
    DkimError,
    DkimKey,
    DkimSigner,
    SigningPool,
    dns_record,
    generate_key,
)
from sidestep.email.message import OutgoingMessage, build_message
from sidestep.email.smtp_pool import PoolPolicy, SmtpPool, SmtpServer

from .conftest import SmtpServerFixture


@lru_cache
def keys() -> tuple[DkimKey, DkimKey]:
    return (DkimKey("brand.example", "rsa2026", DkimAlgorithm.RSA,
                    generate_key(DkimAlgorithm.RSA)),
            DkimKey("brand.example", "ed2026", DkimAlgorithm.ED25519,
                    generate_key(DkimAlgorithm.ED25519)))


def dns(name: bytes, timeout: int = 5) -> bytes | None:
    records = {f"{k.selector}._domainkey.{k.domain}.".encode(): dns_record(k).encode()
               for k in keys()}
    return records.get(name)


def sample(**changes: object) -> bytes:
    values: dict[str, object] = dict(
        from_name="Brändi", from_address="news@brand.example", to_name="Ana",
        to_address="ana@example.org", subject="Our news  with   spaces\tand tabs",
        text="Line one   \n\nline  three\t\n\n\n", html="<p>Hi</p>",
        unsubscribe_url="https://brand.example/u/T", date=datetime.now(UTC))
    values.update(changes)
    return build_message(OutgoingMessage(**values))[0]  # type: ignore[arg-type]


def signatures(raw: bytes) -> list[dict[bytes, bytes]]:
    found = []
    for name, value in dkim.rfc822_parse(raw)[0]:
        if name.lower() == b"dkim-signature":
            found.append(dkim.util.parse_tag_value(value))
    return found


def verify_all(raw: bytes) -> list[bool]:
    results = []
    for i in range(len(signatures(raw))):
        try:
            results.append(bool(dkim.DKIM(raw).verify(idx=i, dnsfunc=dns)))
        except dkim.ValidationError:
            results.append(False)
    return results


@pytest.mark.parametrize("algorithm", list(DkimAlgorithm))
def test_a_signature_verifies_with_dkimpy(algorithm: DkimAlgorithm) -> None:
    key = next(k for k in keys() if k.algorithm is algorithm)
    signed = DkimSigner([key]).sign(sample())
    assert verify_all(signed) == [True]
    assert signatures(signed)[0][b"a"] == algorithm.value.encode()


def test_both_keys_put_two_signatures_that_both_verify() -> None:
    signed = DkimSigner(keys()).sign(sample())
    assert verify_all(signed) == [True, True]
    assert {s[b"a"] for s in signatures(signed)} == {b"rsa-sha256", b"ed25519-sha256"}


def test_the_signature_covers_rfc8058_and_identity_headers() -> None:
    signed = DkimSigner(keys()[:1]).sign(sample())
    covered = signatures(signed)[0][b"h"].replace(b" ", b"").replace(b"\r\n", b"").split(b":")
    for name in [b"from", b"to", b"subject", b"date", b"message-id", b"list-unsubscribe",
                 b"list-unsubscribe-post"]:
        assert name in covered
    # Over-signed: a second From or List-Unsubscribe added later breaks the signature.
    assert covered.count(b"from") == 2 and covered.count(b"list-unsubscribe") == 2


def test_tampering_with_the_unsubscribe_header_breaks_the_signature() -> None:
    signed = DkimSigner(keys()).sign(sample())
    forged = signed.replace(b"List-Unsubscribe: <https://brand.example/u/T>",
                            b"List-Unsubscribe: <https://evil.example/u/T>")
    assert verify_all(forged) == [False, False]
    added = signed.replace(b"\r\n\r\n", b"\r\nFrom: ceo@brand.example\r\n\r\n", 1)
    assert verify_all(added) == [False, False]


def test_a_body_change_breaks_the_signature_but_whitespace_at_line_ends_does_not() -> None:
    signed = DkimSigner(keys()).sign(sample())
    assert verify_all(signed.replace(b"Line one", b"Line 0ne")) == [False, False]
    head, body = signed.split(b"\r\n\r\n", 1)
    assert verify_all(head + b"\r\n\r\n" + body.replace(b"\r\n", b"  \r\n") + b"\r\n\r\n") \
        == [True, True]


def test_it_refuses_short_rsa_keys_and_wrong_algorithms() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    short = rsa.generate_private_key(public_exponent=65537, key_size=1024).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    with pytest.raises(DkimError, match="2048"):
        DkimSigner([DkimKey("b.example", "s", DkimAlgorithm.RSA, short)])
    with pytest.raises(DkimError, match="not a ed25519"):
        DkimSigner([DkimKey("b.example", "s", DkimAlgorithm.ED25519, keys()[0].private_pem)])
    with pytest.raises(DkimError, match="PEM"):
        DkimSigner([DkimKey("b.example", "s", DkimAlgorithm.RSA, b"not a key")])


def test_a_key_repr_never_shows_the_private_key() -> None:
    assert b"PRIVATE" not in repr(keys()[0]).encode()
    assert "***" in repr(keys()[0])


async def test_the_signing_pool_signs_in_worker_processes() -> None:
    pool = SigningPool(keys(), processes=2)
    try:
        signed = await pool.sign_batch([sample(to_address=f"u{i}@example.org") for i in range(5)])
    finally:
        pool.close()
    assert all(verify_all(s) == [True, True] for s in signed)


async def test_a_signed_message_arrives_intact_over_smtp(smtp_server: SmtpServerFixture) -> None:
    pool = SmtpPool([SmtpServer(smtp_server.host, smtp_server.port, tls="none")],
                    policy=PoolPolicy(connections=1))
    signed = DkimSigner(keys()).sign(sample())
    await pool.send(sender="bounce@brand.example", recipient="ana@example.org", message=signed)
    await pool.close()
    received = smtp_server.recorder.messages[0].data
    assert verify_all(received) == [True, True]
    msg = email.message_from_bytes(received, policy=email.policy.default)
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
