"""Passwords (argon2id), random tokens and their stored hashes."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
MIN_PASSWORD_LENGTH = 8


class WeakPassword(ValueError):
    """The password is too short to accept."""


def hash_password(password: str) -> str:
    """Return the argon2id hash; raise `WeakPassword` below the minimum length."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


_DUMMY_HASH = _hasher.hash("sidestep-dummy-password")


def verify_password_or_dummy(password_hash: str | None, password: str) -> bool:
    """Verify against the hash, or against a dummy one so that a missing user costs as long."""
    if password_hash is None:
        verify_password(_DUMMY_HASH, password)
        return False
    return verify_password(password_hash, password)


def new_token(prefix: str = "") -> str:
    """A random URL-safe token (256 bits), optionally prefixed so people can recognise it."""
    return prefix + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """SHA-256 hex of a token: tokens are long and random, so a slow hash adds nothing."""
    return hashlib.sha256(token.encode()).hexdigest()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
