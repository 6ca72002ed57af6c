"""The CLI, in-process (CliRunner) and as a subprocess; mistakes are one line, exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sidestep.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SIDESTEP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("SIDESTEP_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "data"


def invoke(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), input=input)
    return result.exit_code, result.stdout, result.stderr


def init(slug: str = "acme") -> None:
    code, out, err = invoke("init", "-w", slug, "--email", f"me@{slug}.example",
                            "--password", "long enough pw")
    assert code == 0, err
    assert f"Workspace {slug} created" in out


def test_init_creates_the_database_and_an_owner(data_dir: Path) -> None:
    init()
    assert (data_dir / "sidestep.db").exists()
    code, out, _ = invoke("status")
    assert code == 0 and "Workspace acme deliveries: none" in out


def test_a_second_init_of_the_same_workspace_is_one_clear_line() -> None:
    init()
    code, _, err = invoke("init", "-w", "acme", "--email", "x@y.example", "--password", "long enough pw")
    assert code == 2
    assert err.strip() == "error: a workspace named 'acme' exists already"


def test_a_short_password_is_refused() -> None:
    code, _, err = invoke("init", "-w", "acme", "--email", "x@y.example", "--password", "short")
    assert code == 2 and "at least 8 characters" in err


def test_channels_and_posts_from_the_command_line() -> None:
    init()
    code, out, err = invoke("channel", "add", "telegram", "News", "--handle", "@news",
                            "--audience", "1500", "--credentials-stdin",
                            input='{"bot_token": "123456:secret-token-value"}')
    assert code == 0, err
    code, out, _ = invoke("channel", "list")
    assert "News" in out and "1,500" in out and "stored" in out
    assert "secret-token-value" not in out
    code, out, err = invoke("post", "create", "-b", "Open late tonight", "-c", "News", "--at", "+2h")
    assert code == 0, err
    assert "Post 1 scheduled" in out
    code, out, _ = invoke("post", "list")
    assert "Open late tonight" in out and "1 scheduled" in out
    code, out, _ = invoke("post", "show", "1")
    assert "News" in out and "scheduled" in out
    code, out, _ = invoke("channel", "remove", "News")
    assert code == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("post", "create", "-b", "x", "-c", "nope"), "no channel 'nope'"),
        (("post", "create", "-b", "x", "-c", "1", "--at", "tomorrow"), "cannot read the time"),
        (("post", "show", "99"), "no post 99"),
        (("channel", "add", "myspace", "Old"), "unknown platform 'myspace'"),
        (("channel", "remove", "ghost"), "no channel 'ghost'"),
        (("status", "-w", "other"), "no workspace 'other'"),
    ],
)
def test_user_mistakes_are_one_line_without_a_traceback(args: tuple[str, ...], message: str) -> None:
    init()
    code, out, err = invoke(*args)
    assert code == 2
    assert message in err
    assert "Traceback" not in err + out
    assert len(err.strip().splitlines()) <= 2  # one message, possibly wrapped once


def test_commands_before_init_say_what_to_do() -> None:
    code, _, err = invoke("status")
    assert code == 2 and "sidestep init" in err


def test_platforms_lists_the_catalogue() -> None:
    code, out, _ = invoke("platforms", "--owner", "Meta")
    assert code == 0
    for key in ("facebook", "instagram", "whatsapp", "threads", "messenger"):
        assert key in out
    assert "youtube" not in out


def test_the_cli_runs_as_a_subprocess(tmp_path: Path) -> None:
    env = {**os.environ, "SIDESTEP_DATA_DIR": str(tmp_path / "sub")}
    version = subprocess.run([sys.executable, "-m", "sidestep", "version"], capture_output=True,
                             text=True, env=env, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("sidestep ")
    status = subprocess.run([sys.executable, "-m", "sidestep", "status"], capture_output=True,
                            text=True, env=env, timeout=60)
    assert status.returncode == 2
    assert "run `sidestep init` first" in status.stderr and "Traceback" not in status.stderr
