"""Requests checked against the platforms' published specs in ../shared/specs.

These use the real files; a missing specs directory fails the tests (it is not skipped).
Each file is loaded once per process (`sidestep.sim.specs` caches it).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sidestep.sim.profile import ErrorKind, Profile, SpecRef
from sidestep.sim.server import Simulator
from sidestep.sim.specs import (
    SpecsMissing,
    check_request,
    find_specs_dir,
    require_specs,
    validate_request,
)
from sidestep.sim.testing import running_simulator

DISCORD = SpecRef("discord/openapi.json", "https://discord.com/api/v10")
MASTODON = SpecRef("mastodon/schema.json", "https://mastodon.example")
TELEGRAM = SpecRef("telegram/openapi.yml", "https://api.telegram.org/bot{token}")
BLUESKY = SpecRef("bluesky/lexicons/app/bsky/feed/post.json", "https://bsky.social/xrpc")
JSON = {"Content-Type": "application/json", "Authorization": "Bot abc"}


@pytest.fixture(scope="session", autouse=True)
def specs_dir() -> Path:
    return require_specs()


def body(value: object) -> bytes:
    return json.dumps(value).encode()


def test_a_good_discord_message_is_valid() -> None:
    check = check_request(DISCORD, method="POST",
                          url="https://discord.com/api/v10/channels/123/messages",
                          headers=JSON, body=body({"content": "We are on Mastodon meanwhile"}))
    assert check.problems == []
    assert check.validated and check.operation_found


def test_a_discord_message_with_a_number_for_content_is_refused() -> None:
    url = "https://discord.com/api/v10/channels/123/messages"
    problems = validate_request(DISCORD, "POST", url, JSON, body({"content": 5}))
    assert problems == ["body['content']: 5 is not of type 'string', 'null'"]


def test_a_good_mastodon_status_is_valid() -> None:
    assert validate_request(MASTODON, "POST", "https://mastodon.example/api/v1/statuses",
                            JSON, body({"status": "hello", "visibility": "public"})) == []


def test_a_mastodon_status_with_text_for_a_flag_is_refused_naming_the_field() -> None:
    problems = validate_request(MASTODON, "POST", "https://mastodon.example/api/v1/statuses",
                                JSON, body({"status": "hello", "sensitive": "very"}))
    assert problems == ["body['sensitive']: 'very' is not of type 'boolean'"]


def test_malformed_json_is_a_problem() -> None:
    problems = validate_request(MASTODON, "POST", "https://mastodon.example/api/v1/statuses",
                                JSON, b'{"status": ')
    assert problems and "deserialize" in problems[0].lower()


def test_an_operation_the_spec_does_not_describe_is_not_checked() -> None:
    check = check_request(DISCORD, method="POST", url="https://discord.com/api/v10/not/a/thing",
                          headers=JSON, body=b"{}")
    assert check.problems == []
    assert not check.validated and not check.operation_found
    assert "not in the spec" in check.note


def test_credentials_are_left_to_the_profile_and_the_body_is_still_checked() -> None:
    url = "https://discord.com/api/v10/channels/123/messages"
    no_auth = {"Content-Type": "application/json"}
    assert validate_request(DISCORD, "POST", url, no_auth, body({"content": "x"})) == []
    assert validate_request(DISCORD, "POST", url, no_auth, body({"content": 5}))


def test_yaml_specs_with_integer_keys_and_a_templated_server_load() -> None:
    url = "https://api.telegram.org/bot123:ABC/sendMessage"
    assert validate_request(TELEGRAM, "POST", url, JSON, body({"chat_id": 1, "text": "hi"})) == []
    assert validate_request(TELEGRAM, "POST", url, JSON, body({"chat_id": 1, "text": 5}))


def test_a_file_that_is_not_openapi_is_not_validated() -> None:
    check = check_request(BLUESKY, method="POST", url="https://bsky.social/xrpc/x",
                          headers=JSON, body=b"{}")
    assert check.problems == [] and not check.validated
    assert "not an OpenAPI document" in check.note


def test_the_specs_directory_comes_from_the_environment_first(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SIDESTEP_SPECS_DIR", str(tmp_path))
    assert find_specs_dir() == tmp_path


def test_require_specs_says_where_it_looked(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    monkeypatch.setenv("SIDESTEP_SPECS_DIR", str(tmp_path / "absent"))
    assert find_specs_dir() is None
    with pytest.raises(SpecsMissing, match="absent.*SIDESTEP_SPECS_DIR"):
        require_specs()
    check = check_request(DISCORD, method="POST", url="https://discord.com/api/v10/x",
                          headers=JSON, body=b"{}")
    assert check.problems == [] and check.note == "no specs directory"


# --- the gate: a malformed request gets the platform's own error shape -------------------------


class DiscordLikeProfile(Profile):
    """Just enough of Discord to post a message; its spec is the real one."""

    key = "discordish"
    hosts = ("discord.com",)
    spec = DISCORD

    def routes(self) -> list[BaseRoute]:
        return [Route("/api/v10/channels/{channel_id}/messages", self.create, methods=["POST"])]

    def error(self, kind: ErrorKind, message: str, *,
              retry_after_s: float | None = None) -> Response:
        status = 400 if kind is ErrorKind.INVALID_REQUEST else 500
        return JSONResponse({"code": 50035, "message": message}, status_code=status)

    async def create(self, request: Request) -> Response:
        payload = await request.json()
        number = str(self.world.next_number())
        self.world.record.add(platform=self.key, account="bot", kind="message",
                              external_id=number, payload=payload, idempotency_marker=None)
        return JSONResponse({"id": number, "content": payload.get("content")})


@pytest.fixture
async def discordish() -> AsyncIterator[Simulator]:
    async with running_simulator(profiles={"discordish": DiscordLikeProfile}, dns=False) as sim:
        yield sim


async def test_the_simulator_refuses_a_malformed_request_in_the_platforms_words(
    discordish: Simulator,
) -> None:
    async with discordish.client() as client:
        bad = await client.post("https://discord.com/api/v10/channels/9/messages",
                                json={"content": 5}, headers={"Authorization": "Bot t"})
        good = await client.post("https://discord.com/api/v10/channels/9/messages",
                                 json={"content": "hi"}, headers={"Authorization": "Bot t"})
    assert bad.status_code == 400
    assert bad.json()["code"] == 50035 and "content" in bad.json()["message"]
    assert good.status_code == 200 and good.json()["content"] == "hi"
    assert [p.payload for p in discordish.world.record.all()] == [{"content": "hi"}]


async def test_a_request_by_address_is_checked_against_the_spec_server(
    discordish: Simulator,
) -> None:
    url = f"{discordish.base_url('discordish')}/api/v10/channels/9/messages"
    async with httpx.AsyncClient() as client:
        bad = await client.post(url, json={"content": 5})
    assert bad.status_code == 400


def test_multipart_parts_openapi_core_cannot_type_are_set_aside_not_refused() -> None:
    form = (b'--b\r\nContent-Disposition: form-data; name="chat_id"\r\n\r\n1\r\n'
            b'--b\r\nContent-Disposition: form-data; name="text"\r\n\r\nhi\r\n--b--\r\n')
    check = check_request(TELEGRAM, method="POST",
                          url="https://api.telegram.org/bot123:ABC/sendMessage",
                          headers={"Content-Type": "multipart/form-data; boundary=b"}, body=form)
    assert check.problems == []
    assert check.skipped and "b'1'" in check.skipped[0]


async def test_specs_can_be_loaded_before_the_first_request(discordish: Simulator) -> None:
    assert await discordish.load_specs() == ["discordish: discord/openapi.json: loaded"]
