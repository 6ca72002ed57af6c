"""The simulated VK API (wall.post), driven directly through its routes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from sidestep.clock import FrozenClock
from sidestep.sim.platforms.vk import API_VERSION, VkProfile
from sidestep.sim.profile import ErrorKind
from sidestep.sim.world import SimWorld

TOKEN = "vk1.a.brand-token"
BASE = "https://api.vk.com"
COMMUNITY = "-123456"
SPECS = Path(__file__).resolve().parents[4] / "shared" / "specs" / "vk"
WALL_METHODS = json.loads((SPECS / "wall" / "methods.json").read_text())["methods"]
ERRORS = json.loads((SPECS / "errors.json").read_text())["errors"]


def assert_valid_wall_post(params: dict[str, str]) -> None:
    """Check wall.post parameters against VK's JSON Schema description of the method."""
    method = next(m for m in WALL_METHODS if m["name"] == "wall.post")
    declared = {p["name"]: p for p in method["parameters"]}
    for name, value in params.items():
        if name in ("access_token", "v"):
            continue  # common to every method, not listed per method
        assert name in declared, f"wall.post has no parameter {name!r}"
        kind = declared[name]["type"]
        if kind == "integer":
            assert value.lstrip("-").isdigit(), f"{name} must be an integer"
            assert int(value) >= declared[name].get("minimum", int(value))
        elif kind == "boolean":
            assert value in ("0", "1"), f"{name} must be 0 or 1"


def error_code(name: str) -> int:
    code: int = ERRORS[name]["code"]
    return code


@pytest.fixture
def world() -> SimWorld:
    world = SimWorld(clock=FrozenClock(datetime(2026, 1, 1, tzinfo=UTC)), seed=1)
    world.grant_token("vk", TOKEN, "brand")
    return world


@pytest.fixture
def profile(world: SimWorld) -> VkProfile:
    return VkProfile(world)


@pytest.fixture
async def client(profile: VkProfile) -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(routes=profile.routes())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        yield c


async def wall_post(client: httpx.AsyncClient, **params: str) -> Any:
    full = {"access_token": TOKEN, "v": API_VERSION} | params
    response = await client.post("/method/wall.post", data=full)
    assert response.status_code == 200  # VK answers errors with 200 too
    return response.json()


async def test_it_posts_to_a_community_wall_and_records_it(
    client: httpx.AsyncClient, world: SimWorld
) -> None:
    params = {"owner_id": COMMUNITY, "from_group": "1", "message": "We are on our site now",
              "attachments": "photo-123456_457239017,https://brand.example"}
    assert_valid_wall_post(params)
    body = await wall_post(client, **params)
    assert body == {"response": {"post_id": 1}}
    posts = world.record.all("vk")
    assert [(p.external_id, p.account, p.kind) for p in posts] == [
        (f"{COMMUNITY}_1", "brand", "post")]
    assert posts[0].payload["from_group"] is True


async def test_post_ids_count_per_wall(client: httpx.AsyncClient) -> None:
    ids = [(await wall_post(client, owner_id=o, message="x"))["response"]["post_id"]
           for o in (COMMUNITY, COMMUNITY, "42")]
    assert ids == [1, 2, 1]


async def test_a_repeated_guid_returns_the_first_post(
    client: httpx.AsyncClient, world: SimWorld
) -> None:
    params = {"owner_id": COMMUNITY, "message": "once", "guid": "delivery-7"}
    assert_valid_wall_post(params)
    first = await wall_post(client, **params)
    again = await wall_post(client, **params)
    assert first == again
    assert len(world.record.with_marker("vk", "delivery-7")) == 1


async def test_an_error_is_an_http_200_with_an_error_object(client: httpx.AsyncClient) -> None:
    body = await wall_post(client, owner_id=COMMUNITY, message="  ")
    error = body["error"]
    assert error["error_code"] == error_code("api_error_param")
    assert error["error_msg"].startswith("One of the parameters specified was missing or invalid")
    assert {"key": "method", "value": "wall.post"} in error["request_params"]
    assert all(p["key"] != "access_token" for p in error["request_params"])


async def test_an_unknown_token_fails_authorization(client: httpx.AsyncClient) -> None:
    response = await client.post("/method/wall.post", data={
        "access_token": "nope", "v": API_VERSION, "owner_id": COMMUNITY, "message": "x"})
    error = response.json()["error"]
    assert error["error_code"] == error_code("api_error_auth")
    assert error["error_msg"] == "User authorization failed: invalid access_token (4)."


async def test_a_missing_token_is_named(client: httpx.AsyncClient) -> None:
    response = await client.get("/method/wall.post", params={"v": API_VERSION})
    assert response.json()["error"]["error_msg"] == (
        "User authorization failed: no access_token passed.")


async def test_the_version_is_required(client: httpx.AsyncClient) -> None:
    response = await client.post("/method/wall.post", data={"access_token": TOKEN,
                                                            "owner_id": COMMUNITY})
    assert response.json()["error"]["error_code"] == 8


async def test_a_bearer_header_works_too(client: httpx.AsyncClient) -> None:
    response = await client.post("/method/wall.post",
                                 data={"v": API_VERSION, "owner_id": "42", "message": "x"},
                                 headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.json() == {"response": {"post_id": 1}}


async def test_a_wall_without_access_answers_214(
    client: httpx.AsyncClient, profile: VkProfile
) -> None:
    profile.restrict_owners("brand", [int(COMMUNITY)])
    body = await wall_post(client, owner_id="-999", message="x")
    assert body["error"]["error_code"] == error_code("api_error_wall_add_post") == 214


async def test_it_refuses_malformed_attachments(client: httpx.AsyncClient) -> None:
    body = await wall_post(client, owner_id=COMMUNITY, attachments="picture_1")
    assert body["error"]["error_code"] == 100


async def test_it_deletes_a_post(client: httpx.AsyncClient) -> None:
    post_id = (await wall_post(client, owner_id=COMMUNITY, message="x"))["response"]["post_id"]
    params = {"access_token": TOKEN, "v": API_VERSION, "owner_id": COMMUNITY,
              "post_id": str(post_id)}
    deleted = await client.post("/method/wall.delete", data=params)
    assert deleted.json() == {"response": 1}
    again = await client.post("/method/wall.delete", data=params)
    assert again.json()["error"]["error_code"] == error_code("api_error_not_found")


def test_the_parameter_check_itself_rejects_an_undeclared_parameter() -> None:
    with pytest.raises(AssertionError, match="no parameter"):
        assert_valid_wall_post({"owner_id": "-1", "text": "x"})


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_it_fails_in_vks_words_for_every_error_kind(profile: VkProfile, kind: ErrorKind) -> None:
    response = profile.error(kind, "message is empty", retry_after_s=5)
    if kind is ErrorKind.UNAVAILABLE:
        assert response.status_code == 503
        assert b"503 Service Temporarily Unavailable" in bytes(response.body)
        return
    assert response.status_code == 200
    error = json.loads(bytes(response.body))["error"]
    expected = {
        ErrorKind.SERVER_ERROR: "api_error_server", ErrorKind.RATE_LIMITED: "api_error_too_many",
        ErrorKind.AUTH_EXPIRED: "api_error_auth", ErrorKind.AUTH_MISSING: "api_error_auth",
        ErrorKind.INVALID_REQUEST: "api_error_param", ErrorKind.NOT_FOUND: "api_error_not_found",
        ErrorKind.DUPLICATE: "api_error_flood", ErrorKind.MEDIA_FAILED: "api_error_param",
    }
    assert error["error_code"] == error_code(expected[kind])
    assert error["error_msg"].startswith(ERRORS[expected[kind]]["description"].split(" ")[0])
