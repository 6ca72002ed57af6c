"""Secrets: encrypted at rest, a 0600 key file, and never in a log line."""

from __future__ import annotations

import logging
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from sidestep.logs import configure_logging, register_secret
from sidestep.runtime import Runtime
from sidestep.store.accounts import Accounts
from sidestep.store.channels import Channels
from sidestep.vault import KEY_FILE_NAME, Vault, VaultError, load_or_create_key_file

TOKEN = "EAAB-very-secret-page-token-1234567890"


def test_the_key_file_is_created_with_mode_0600(tmp_path: Path) -> None:
    key = load_or_create_key_file(tmp_path / KEY_FILE_NAME)
    assert stat.S_IMODE((tmp_path / KEY_FILE_NAME).stat().st_mode) == 0o600
    assert load_or_create_key_file(tmp_path / KEY_FILE_NAME) == key


def test_it_refuses_a_key_file_others_can_read(tmp_path: Path) -> None:
    path = tmp_path / KEY_FILE_NAME
    load_or_create_key_file(path)
    path.chmod(0o644)
    with pytest.raises(VaultError, match="chmod 600"):
        load_or_create_key_file(path)


def test_a_wrong_key_gives_a_clear_error_not_garbage() -> None:
    token = Vault(b"A" * 43 + b"=").encrypt({"t": "x"})
    with pytest.raises(VaultError, match="secret key changed"):
        Vault(b"B" * 43 + b"=").decrypt(token)
    with pytest.raises(VaultError, match="not a valid Fernet key"):
        Vault(b"short")


async def test_no_plaintext_secret_reaches_the_database_file(runtime: Runtime) -> None:
    async with runtime.db.session() as s:
        ws = await Accounts(s).create_workspace(slug="acme", name="Acme", at=runtime.clock.now())
        await Channels(s, workspace_id=ws.id, vault=runtime.vault).add(
            platform="facebook", name="Page", credentials={"access_token": TOKEN},
            at=runtime.clock.now())
    await runtime.db.close()
    data_dir = runtime.settings.data_dir
    for path in data_dir.iterdir():  # the database, its WAL and shared-memory files
        assert TOKEN.encode() not in path.read_bytes(), path.name


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level
    structlog.reset_defaults()


@pytest.mark.usefixtures("restored_logging")
def test_logs_never_show_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("debug")
    register_secret(TOKEN)
    log = structlog.get_logger()
    log.info("connecting", access_token=TOKEN, url=f"https://api.example/bot{TOKEN}/getMe")
    log.info("nested", payload={"credentials": {"refresh_token": TOKEN}, "ok": 1})
    logging.getLogger("httpx").warning("HTTP Request: POST https://api.example/bot%s/send", TOKEN)
    err = capsys.readouterr().err
    assert TOKEN not in err
    assert err.count("***") >= 3 and "connecting" in err and "HTTP Request" in err
