"""The simulated Telegram Bot API, driven directly through its routes (no server)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml
from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7
from starlette.applications import Starlette

from sidestep.clock import FrozenClock
from sidestep.sim.platforms.telegram import TelegramProfile
from sidestep.sim.profile import ErrorKind
from sidestep.sim.world import SimWorld

TOKEN = "123456:ABC-brand"
BASE = "https://api.telegram.org"
SPEC_FILE = Path(__file__).resolve().parents[4] / "shared" / "specs" / "telegram" / "openapi.yml"


def _string_keys(node: Any) -> Any:
    """The YAML has integer response codes as keys; openapi-core needs strings."""
    if isinstance(node, dict):
        return {str(k): _string_keys(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_string_keys(v) for v in node]
    return node


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml is several times faster
SPEC_DICT: dict[str, Any] = _string_keys(yaml.load(SPEC_FILE.read_text(), Loader=_LOADER))  # noqa: S506
SPEC_DICT["servers"] = [{"url": TelegramProfile.spec.server}]
SPEC = OpenAPI.from_dict(SPEC_DICT, config=Config(spec_validator_cls=None))  # type: ignore[arg-type]
REGISTRY: Registry[Any] = Registry().with_resource(
    "urn:telegram", Resource.from_contents(SPEC_DICT, default_specification=DRAFT7)
)


def assert_valid_per_spec(request: httpx.Request, *, json_fields: tuple[str, ...] = ()) -> None:
    """Check a request the test sends against the published OpenAPI description.

    Form and JSON bodies go through openapi-core. openapi-core 0.23 leaves multipart parts as
    bytes, which no `anyOf [integer, string]` accepts, so multipart bodies are decoded the way
    the Bot API reads them (JSON-serialized fields parsed, file parts as strings) and checked
    against the operation's multipart schema with jsonschema.
    """
    ctype = request.headers.get("content-type", "")
    method = request.url.path.rsplit("/", 1)[-1]
    if not ctype.startswith("multipart/form-data"):
        SPEC.validate_request(MockRequest(
            BASE, request.method.lower(), request.url.path, data=request.read(),
            content_type=ctype or "application/json",
        ))
        return
    fields: dict[str, Any] = {}
    body = request.read()
    boundary = ctype.split("boundary=", 1)[1].encode()
    for part in body.split(b"--" + boundary)[1:-1]:
        head, _, value = part.strip(b"\r\n").partition(b"\r\n\r\n")
        name = head.split(b'name="', 1)[1].split(b'"', 1)[0].decode()
        text = value.decode("utf-8", errors="replace")
        fields[name] = json.loads(text) if name in json_fields else text
    pointer = f"/paths/~1{method}/post/requestBody/content/multipart~1form-data/schema"
    validator = jsonschema.Draft7Validator({"$ref": f"urn:telegram#{pointer}"}, registry=REGISTRY)
    validator.validate(fields)


@pytest.fixture
def world() -> SimWorld:
    world = SimWorld(clock=FrozenClock(datetime(2026, 1, 1, tzinfo=UTC)), seed=1)
    world.grant_token("telegram", TOKEN, "brand")
    return world


@pytest.fixture
def profile(world: SimWorld) -> TelegramProfile:
    return TelegramProfile(world)


@pytest.fixture
async def client(profile: TelegramProfile) -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(routes=profile.routes())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        yield c


async def send(client: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
    return await client.send(request)


async def test_it_answers_get_me_for_a_known_token(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/bot{TOKEN}/getMe")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True
    assert body["result"]["id"] == 123456 and body["result"]["is_bot"] is True


async def test_it_refuses_an_unknown_token_with_401_unauthorized(client: httpx.AsyncClient) -> None:
    response = await client.post("/bot999:nope/sendMessage", data={"chat_id": "1", "text": "hi"})
    assert response.status_code == 401
    assert response.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}


async def test_it_sends_a_form_message_and_records_it_once(
    client: httpx.AsyncClient, world: SimWorld
) -> None:
    request = client.build_request(
        "POST", f"/bot{TOKEN}/sendMessage",
        data={"chat_id": "@brandchannel", "text": "<b>Sale</b> today", "parse_mode": "HTML"},
    )
    assert_valid_per_spec(request)
    response = await send(client, request)
    assert response.status_code == 200
    message = response.json()["result"]
    assert message["message_id"] == 1
    assert message["text"] == "Sale today"
    assert message["chat"]["type"] == "channel" and message["chat"]["id"] < -1_000_000_000_000
    assert message["chat"]["username"] == "brandchannel"
    posts = world.record.all("telegram")
    assert len(posts) == 1
    assert posts[0].external_id == f"{message['chat']['id']}:1"
    assert posts[0].account == "brand" and posts[0].kind == "message"


async def test_it_numbers_messages_per_chat(client: httpx.AsyncClient) -> None:
    ids = []
    for chat in ("100", "100", "200"):
        body = {"chat_id": int(chat), "text": "hello", "link_preview_options": {"is_disabled": True}}
        request = client.build_request("POST", f"/bot{TOKEN}/sendMessage", json=body)
        assert_valid_per_spec(request)
        ids.append((await send(client, request)).json()["result"]["message_id"])
    assert ids == [1, 2, 1]


async def test_it_refuses_empty_text_with_telegrams_own_words(client: httpx.AsyncClient) -> None:
    response = await client.post(f"/bot{TOKEN}/sendMessage", json={"chat_id": 5, "text": ""})
    assert response.status_code == 400
    assert response.json() == {
        "ok": False, "error_code": 400, "description": "Bad Request: message text is empty",
    }


async def test_it_counts_text_length_after_entities_are_parsed(client: httpx.AsyncClient) -> None:
    just_fits = "<i>" + "x" * 4096 + "</i>"
    ok = await client.post(
        f"/bot{TOKEN}/sendMessage", json={"chat_id": 5, "text": just_fits, "parse_mode": "HTML"}
    )
    assert ok.status_code == 200
    too_long = await client.post(f"/bot{TOKEN}/sendMessage", json={"chat_id": 5, "text": "y" * 4097})
    assert too_long.json()["description"] == "Bad Request: message is too long"


async def test_it_rejects_unsupported_html_tags(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"/bot{TOKEN}/sendMessage",
        json={"chat_id": 5, "text": "<div>x</div>", "parse_mode": "HTML"},
    )
    assert response.status_code == 400
    assert response.json()["description"].startswith("Bad Request: can't parse entities")


async def test_it_uploads_a_photo_with_a_caption(
    client: httpx.AsyncClient, world: SimWorld
) -> None:
    request = client.build_request(
        "POST", f"/bot{TOKEN}/sendPhoto", data={"chat_id": "-1001234567890", "caption": "New drop"},
        files={"photo": ("drop.jpg", b"\xff\xd8\xff" + b"0" * 2048, "image/jpeg")},
    )
    assert_valid_per_spec(request)
    response = await send(client, request)
    assert response.status_code == 200
    message = response.json()["result"]
    assert message["caption"] == "New drop"
    assert message["photo"][0]["file_id"].startswith("AgAC")
    assert world.record.all("telegram")[0].payload["size"] == 2051


async def test_it_refuses_a_photo_over_10_mb(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"/bot{TOKEN}/sendPhoto", data={"chat_id": "5"},
        files={"photo": ("big.jpg", b"0" * (10 * 1024 * 1024 + 1), "image/jpeg")},
    )
    assert response.status_code == 400
    assert response.json()["description"] == "Bad Request: file is too big"


async def test_it_sends_an_album_through_attach_names(
    client: httpx.AsyncClient, world: SimWorld
) -> None:
    media = [{"type": "photo", "media": "attach://one", "caption": "Look"},
             {"type": "video", "media": "attach://two"}]
    request = client.build_request(
        "POST", f"/bot{TOKEN}/sendMediaGroup",
        data={"chat_id": "@brandchannel", "media": json.dumps(media)},
        files={"one": ("1.jpg", b"\xff\xd8photo", "image/jpeg"),
               "two": ("2.mp4", b"\x00\x00video", "video/mp4")},
    )
    assert_valid_per_spec(request, json_fields=("media",))
    response = await send(client, request)
    assert response.status_code == 200
    messages = response.json()["result"]
    assert [m["message_id"] for m in messages] == [1, 2]
    assert messages[0]["media_group_id"] == messages[1]["media_group_id"]
    assert "video" in messages[1]
    assert len(world.record.all("telegram")) == 1


async def test_it_refuses_an_album_of_one(client: httpx.AsyncClient) -> None:
    media = [{"type": "photo", "media": "https://example.org/a.jpg"}]
    response = await client.post(
        f"/bot{TOKEN}/sendMediaGroup", json={"chat_id": 5, "media": media}
    )
    assert response.status_code == 400
    assert response.json()["description"].startswith("Bad Request: wrong number of media")


async def test_it_deletes_a_sent_message_once(client: httpx.AsyncClient) -> None:
    sent = await client.post(f"/bot{TOKEN}/sendMessage", json={"chat_id": 5, "text": "oops"})
    message_id = sent.json()["result"]["message_id"]
    first = await client.post(
        f"/bot{TOKEN}/deleteMessage", data={"chat_id": "5", "message_id": str(message_id)}
    )
    assert first.json() == {"ok": True, "result": True}
    again = await client.post(
        f"/bot{TOKEN}/deleteMessage", data={"chat_id": "5", "message_id": str(message_id)}
    )
    assert again.json()["description"] == "Bad Request: message to delete not found"


async def test_it_answers_403_where_the_bot_is_not_a_member(
    client: httpx.AsyncClient, profile: TelegramProfile
) -> None:
    profile.restrict_chats("brand", ["@brandchannel"])
    response = await client.post(f"/bot{TOKEN}/sendMessage", json={"chat_id": "@other", "text": "x"})
    assert response.status_code == 403
    assert response.json()["description"] == "Forbidden: bot is not a member of the channel chat"


async def test_it_answers_unknown_methods_with_404(client: httpx.AsyncClient) -> None:
    response = await client.post(f"/bot{TOKEN}/sendTelepathy")
    assert response.json() == {"ok": False, "error_code": 404, "description": "Not Found"}


def test_the_spec_check_itself_rejects_a_bad_request() -> None:
    bad = httpx.Request("POST", f"{BASE}/bot{TOKEN}/sendMessage", data={"chat_id": "1", "text": ""})
    with pytest.raises(Exception, match="non-empty"):
        assert_valid_per_spec(bad)


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_it_fails_in_telegrams_words_for_every_error_kind(
    profile: TelegramProfile, kind: ErrorKind
) -> None:
    response = profile.error(kind, "chat not found", retry_after_s=7.2)
    body = json.loads(bytes(response.body))
    assert body["ok"] is False and body["error_code"] == response.status_code
    expected = {
        ErrorKind.SERVER_ERROR: 500, ErrorKind.UNAVAILABLE: 502, ErrorKind.RATE_LIMITED: 429,
        ErrorKind.AUTH_EXPIRED: 401, ErrorKind.AUTH_MISSING: 401, ErrorKind.INVALID_REQUEST: 400,
        ErrorKind.NOT_FOUND: 404, ErrorKind.DUPLICATE: 400, ErrorKind.MEDIA_FAILED: 400,
    }
    assert response.status_code == expected[kind]
    if kind is ErrorKind.RATE_LIMITED:
        assert body["description"] == "Too Many Requests: retry after 8"
        assert body["parameters"] == {"retry_after": 8}
    else:
        assert "parameters" not in body
        assert body["description"]
