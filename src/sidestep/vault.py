"""Secrets at rest: channel credentials are Fernet-encrypted before they reach the database.

The key comes from `SIDESTEP_SECRET_KEY`, or from `data_dir/secret.key`, which is created on
first use with mode 0600. Decrypted credentials come back as `Credentials`, whose repr masks
every value so that a stray log line or traceback never shows a token.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

KEY_FILE_NAME = "secret.key"


class VaultError(Exception):
    """The key is missing or wrong, or a stored secret cannot be read back."""


class Credentials(Mapping[str, str]):
    """A read-only mapping of credential fields whose repr and str never show values."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)

    def __getitem__(self, key: str) -> str:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return "Credentials(" + ", ".join(f"{k}='***'" for k in self._values) + ")"

    __str__ = __repr__

    def reveal(self) -> dict[str, str]:
        """The plain values, for the one place that needs them: the outgoing request."""
        return dict(self._values)


class Vault:
    def __init__(self, key: bytes) -> None:
        try:
            self._fernet = Fernet(key)
        except (ValueError, TypeError) as exc:
            raise VaultError(
                "the secret key is not a valid Fernet key (32 url-safe base64 bytes); "
                "generate one with `sidestep init` or Fernet.generate_key()"
            ) from exc

    @classmethod
    def from_settings(cls, *, secret_key: str | None, data_dir: Path) -> Vault:
        """Use the configured key, or the key file in `data_dir`, creating it if needed."""
        if secret_key:
            return cls(secret_key.encode())
        return cls(load_or_create_key_file(data_dir / KEY_FILE_NAME))

    @staticmethod
    def derived_key(*, secret_key: str | None, data_dir: Path, label: bytes) -> bytes:
        """A key for one purpose (signing links, media URLs), derived from the installation's
        key so the vault's own key never signs anything public."""
        key = secret_key.encode() if secret_key else load_or_create_key_file(
            data_dir / KEY_FILE_NAME)
        return hmac.new(key, label, hashlib.sha256).digest()

    def encrypt(self, credentials: Mapping[str, str]) -> bytes:
        return self._fernet.encrypt(json.dumps(dict(credentials), sort_keys=True).encode())

    def decrypt(self, token: bytes) -> Credentials:
        """Return the credentials; raise `VaultError` if the key does not open them."""
        try:
            plain = self._fernet.decrypt(token)
        except InvalidToken as exc:
            raise VaultError(
                "stored credentials cannot be decrypted: the secret key changed or the row "
                "was tampered with; reconnect the channel or restore the old key"
            ) from exc
        return Credentials(json.loads(plain))


def load_or_create_key_file(path: Path) -> bytes:
    """Read the key file, or create it atomically with mode 0600 if it does not exist."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            raise VaultError(f"{path} is readable by others; run `chmod 600 {path}`") from None
        return path.read_bytes().strip()
    key = Fernet.generate_key()
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    return key
