"""Pause and resume through the JSON API (editor role) and the command line."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from sidestep.cli import app as cli_app
from sidestep.runtime import Runtime
from sidestep.store.tables import Event
from sidestep.store.tables_dispatch import DispatchPause
from tests.web.conftest import World, api_token, app, bearer, client, world  # noqa: F401


async def pauses(runtime: Runtime) -> set[str]:
    async with runtime.db.session() as s:
        return set((await s.scalars(select(DispatchPause.key))).all())


async def test_an_editor_pauses_and_resumes_a_workspace_and_a_channel(
        client: httpx.AsyncClient, world: World, runtime: Runtime) -> None:  # noqa: F811
    token = bearer(await api_token(runtime, world.editor))
    response = await client.post("/api/v1/pause", json={"workspace": "acme"}, headers=token)
    assert response.status_code == 200
    assert response.json() == {"workspace": "acme", "channel_id": None, "paused": True,
                               "changed": True}
    again = await client.post("/api/v1/pause", json={"workspace": "acme"}, headers=token)
    assert again.json()["changed"] is False
    one = await client.post("/api/v1/pause", headers=token,
                            json={"workspace": "acme", "channel_id": world.instagram_id})
    assert one.status_code == 200
    assert len(await pauses(runtime)) == 2
    assert (await client.post("/api/v1/resume", json={"workspace": "acme"},
                              headers=token)).status_code == 200
    assert await pauses(runtime) == {f"ch:{world.instagram_id}"}
    async with runtime.db.session() as s:
        kinds = (await s.scalars(select(Event.type).where(Event.type.like("dispatch.%"))
                                 .order_by(Event.id))).all()
    assert kinds == ["dispatch.paused", "dispatch.paused", "dispatch.resumed"]


@pytest.mark.parametrize(("who", "body", "code"), [
    ("viewer", {"workspace": "acme"}, 403),
    ("outsider", {"workspace": "acme"}, 404),
    ("owner", {"workspace": "acme", "channel_id": "other"}, 422),
])
async def test_it_refuses_a_pause_the_caller_may_not_make(
        client: httpx.AsyncClient, world: World, runtime: Runtime,  # noqa: F811
        who: str, body: dict[str, object], code: int) -> None:
    user = getattr(world, who)
    if body.get("channel_id") == "other":  # another workspace's channel
        body = {**body, "channel_id": world.other_channel_id}
    response = await client.post("/api/v1/pause", json=body,
                                 headers=bearer(await api_token(runtime, user)))
    assert response.status_code == code
    assert await pauses(runtime) == set()


def test_pause_and_resume_from_the_command_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIDESTEP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("SIDESTEP_DATABASE_URL", raising=False)
    runner = CliRunner()
    assert runner.invoke(cli_app, ["init", "-w", "acme", "--email", "me@acme.example",
                                   "--password", "long enough pw"]).exit_code == 0
    result = runner.invoke(cli_app, ["pause", "-w", "acme"])
    assert result.exit_code == 0 and "the whole workspace paused" in result.stdout
    result = runner.invoke(cli_app, ["pause", "-w", "acme", "--channel", "99"])
    assert result.exit_code == 2 and "no channel 99" in result.stderr
    result = runner.invoke(cli_app, ["resume", "-w", "acme"])
    assert result.exit_code == 0 and "the whole workspace resumed" in result.stdout
    result = runner.invoke(cli_app, ["resume", "-w", "acme"])
    assert result.exit_code == 0 and "was already not paused" in result.stdout
