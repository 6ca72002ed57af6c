"""`sidestep agent issue|list|revoke` and `sidestep alerts add|list|remove`, in-process."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from sidestep.cli import app
from sidestep.monitor.signing import AgentToken

runner = CliRunner()
BOT = "tgram://123456789:AAFakeBotTokenForTests1234567890abc/-100123"


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SIDESTEP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("SIDESTEP_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "data"


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_agent_tokens_are_issued_once_listed_and_revoked() -> None:
    code, out, err = invoke("agent", "issue", "--name", "fra-1")
    assert code == 0, err
    token = AgentToken.parse(out.strip())
    code, out, _ = invoke("agent", "list")
    assert code == 0 and "fra-1" in out and token.key_id in out and token.secret not in out
    code, _, err = invoke("agent", "issue", "--name", "fra-1")
    assert code == 2 and "exists" in err
    assert invoke("agent", "revoke", "--name", "fra-1")[0] == 0
    code, _, err = invoke("agent", "revoke", "--name", "fra-1")
    assert code == 2 and "no active agent named 'fra-1'" in err


def test_running_an_agent_with_a_malformed_token_is_one_clear_error() -> None:
    code, _, _ = invoke("agent", "--hub", "http://127.0.0.1:9", "--token", "nope", "--once")
    assert code == 2


def test_alert_urls_are_added_listed_masked_and_removed() -> None:
    assert invoke("init", "-w", "acme", "--email", "me@acme.example",
                  "--password", "long enough pw")[0] == 0
    code, out, err = invoke("alerts", "add", BOT, "-w", "acme")
    assert code == 0, err
    assert "telegram" in out
    code, _, err = invoke("alerts", "add", "nonsense://x", "-w", "acme")
    assert code == 2 and "Apprise does not understand" in err
    code, _, err = invoke("alerts", "add", BOT, "-w", "acme")
    assert code == 2 and "already has an alert URL labelled 'telegram'" in err
    code, out, _ = invoke("alerts", "list", "-w", "acme")
    assert code == 0 and "tgram://" in out and "AAFakeBotToken" not in out
    assert invoke("alerts", "remove", "telegram", "-w", "acme")[0] == 0
    code, out, _ = invoke("alerts", "list", "-w", "acme")
    assert "No alert URL for acme" in out
