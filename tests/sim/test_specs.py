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

from sidestep.sim.platforms.discord import DiscordProfile
from sidestep.sim.platforms.whatsapp import WhatsAppProfile
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
X = SpecRef("x/openapi.json", "https://api.x.com")
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


def multipart(*parts: tuple[str, bytes, str]) -> tuple[dict[str, str], bytes]:
    """Headers and body of a multipart form; each part is (name, content, filename or "")."""
    body = b""
    for name, content, filename in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        kind = b"Content-Type: application/octet-stream\r\n" if filename else b""
        body += f"--b\r\nContent-Disposition: {disposition}\r\n".encode() + kind
        body += b"\r\n" + content + b"\r\n"
    return {"Content-Type": "multipart/form-data; boundary=b"}, body + b"--b--\r\n"


def test_an_upload_openapi_core_fails_on_is_checked_through_its_payload_json() -> None:
    headers, form = multipart(("payload_json", body({"content": "Poster"}), ""),
                              ("files[0]", b"\x89PNG", "poster.png"))
    check = check_request(DISCORD, method="POST",
                          url="https://discord.com/api/v10/channels/1/messages",
                          headers=headers, body=form)
    assert check.problems == [] and check.validated
    assert "payload_json" in check.note


def test_a_request_openapi_core_itself_fails_on_is_reported_as_not_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def crash(*_args: object, **_kw: object) -> None:
        raise TypeError("Expected a string value, got <class 'list'>")

    monkeypatch.setattr("sidestep.sim.specs._request_errors", crash)
    check = check_request(DISCORD, method="POST",
                          url="https://discord.com/api/v10/channels/1/messages",
                          headers={"content-type": "application/json"}, body=body({"content": "x"}))
    assert check.problems == []
    assert check.operation_found and not check.validated
    assert check.note.startswith("not checked: openapi-core failed") and "TypeError" in check.note


async def test_discords_multipart_upload_reaches_the_platform_instead_of_a_500() -> None:
    async with running_simulator(profiles={"discord": DiscordProfile}, dns=False) as sim:
        sim.world.grant_token("discord", "42/hook-token", "brand")
        async with sim.client() as client:
            response = await client.post(
                "https://discord.com/api/v10/webhooks/42/hook-token", params={"wait": "true"},
                data={"payload_json": json.dumps({"content": "Poster"})},
                files={"files[0]": ("poster.png", b"\x89PNG" + b"0" * 64, "image/png")},
            )
    assert response.status_code == 200, response.text
    assert response.json()["attachments"][0]["filename"] == "poster.png"


@pytest.mark.parametrize(
    ("segment_index", "problem"),
    [
        (b"0", None),
        (b"999", None),
        (b"zero", "body['segment_index']: 'zero' is not of type 'integer'"),
        (b"1000", "body['segment_index']: 1000 is greater than the maximum of 999"),
    ],
)
def test_form_fields_are_typed_as_the_spec_declares_before_they_are_checked(
    segment_index: bytes, problem: str | None
) -> None:
    headers, form = multipart(("segment_index", segment_index, ""),
                              ("media", b"\x00\x01chunk", "blob"))
    check = check_request(X, method="POST", url="https://api.x.com/2/media/upload/77/append",
                          headers=headers, body=form)
    assert check.validated
    assert check.problems == ([] if problem is None else [problem])


WHATSAPP_MESSAGES = "https://graph.facebook.com/v23.0/106540352242922/messages"
WHATSAPP_HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer EAAtoken"}


def test_a_correct_whatsapp_text_message_passes_the_adjusted_spec() -> None:
    assert WhatsAppProfile.spec is not None
    message = {"messaging_product": "whatsapp", "recipient_type": "individual",
               "to": "16505551234", "type": "text", "text": {"body": "We moved to email"}}
    check = check_request(WhatsAppProfile.spec, method="POST", url=WHATSAPP_MESSAGES,
                          headers=WHATSAPP_HEADERS, body=body(message))
    assert check.validated and check.problems == []


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        ({"text": {"body": 5}}, "body['text']['body']: 5 is not of type 'string'"),
        ({"text": {"body": "hi", "colour": "red"}}, "'colour' was unexpected"),
        ({"to": None}, "body['to']: None is not of type 'string'"),
    ],
)
def test_a_wrong_whatsapp_message_still_fails_the_adjusted_spec(
    message: dict[str, object], problem: str
) -> None:
    assert WhatsAppProfile.spec is not None
    good = {"messaging_product": "whatsapp", "recipient_type": "individual",
            "to": "16505551234", "type": "text", "text": {"body": "hi"}}
    problems = validate_request(WhatsAppProfile.spec, "POST", WHATSAPP_MESSAGES,
                                WHATSAPP_HEADERS, body({**good, **message}))
    assert any(problem in p for p in problems), problems


def _discord_upload(payload: dict[str, object]) -> tuple[dict[str, str], bytes]:
    boundary = "sidestepboundary"
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"payload_json\"\r\n"
        f"Content-Type: application/json\r\n\r\n{json.dumps(payload)}\r\n"
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"files[0]\"; filename=\"a.png\"\r\n"
        f"Content-Type: image/png\r\n\r\n"
    ).encode() + b"\x89PNG fake" + f"\r\n--{boundary}--\r\n".encode()
    return {"content-type": f"multipart/form-data; boundary={boundary}"}, body


def test_a_discord_upload_is_checked_through_its_payload_json_part() -> None:
    url = "https://discord.com/api/v10/webhooks/1/tok?wait=true"
    headers, good = _discord_upload({"content": "We are here", "attachments": [{"id": "0"}]})
    ok = check_request(DISCORD, method="POST", url=url, headers=headers, body=good)
    assert ok.validated and ok.problems == [] and "payload_json" in ok.note
    headers, bad = _discord_upload({"content": 42})
    refused = check_request(DISCORD, method="POST", url=url, headers=headers, body=bad)
    assert refused.validated and any("content" in p for p in refused.problems), refused
