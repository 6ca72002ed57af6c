"""The facebook profile: Pages publishing on graph.facebook.com, and the host's Meta routing."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request

from sidestep.clock import FrozenClock
from sidestep.sim.platforms._graph import graph_state
from sidestep.sim.platforms.facebook import FacebookProfile
from sidestep.sim.platforms.instagram import InstagramProfile
from sidestep.sim.platforms.messenger import MessengerProfile
from sidestep.sim.platforms.whatsapp import WhatsAppProfile
from sidestep.sim.profile import ErrorKind, Profile
from sidestep.sim.testing import running_simulator
from sidestep.sim.world import Fault, SimWorld

PAGE, OTHER_PAGE = "104000000000001", "104000000000002"
TOKEN = "EAAPageToken"
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 2048
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 512


@pytest.fixture
def world() -> SimWorld:
    world = SimWorld(clock=FrozenClock(datetime(2026, 1, 1, tzinfo=UTC)), seed=1)
    world.grant_token("facebook", TOKEN, PAGE)
    world.grant_token("facebook", "EAAOther", OTHER_PAGE)
    return world


@pytest.fixture
def profile(world: SimWorld) -> FacebookProfile:
    return FacebookProfile(world)


@pytest.fixture
async def client(profile: FacebookProfile) -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(routes=profile.routes())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="https://graph.facebook.com") as client:
        yield client


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_it_publishes_a_text_post_and_records_it_once(
        client: httpx.AsyncClient, world: SimWorld) -> None:
    response = await client.post(f"/v23.0/{PAGE}/feed", data={"message": "We are on email too",
                                                              "access_token": TOKEN})
    assert response.status_code == 200
    post_id = response.json()["id"]
    assert re.fullmatch(rf"{PAGE}_\d{{18}}", post_id)
    [recorded] = world.record.all("facebook")
    assert (recorded.account, recorded.kind, recorded.external_id) == (PAGE, "post", post_id)
    assert recorded.payload == {"message": "We are on email too"}
    assert recorded.idempotency_marker is None


async def test_it_publishes_a_link_post_with_me_as_the_page(
        client: httpx.AsyncClient, world: SimWorld) -> None:
    response = await client.post("/v23.0/me/feed", headers=auth(),
                                 data={"link": "https://brand.example/status"})
    assert response.status_code == 200
    assert world.record.all("facebook")[0].account == PAGE


async def test_it_uploads_a_photo_and_answers_the_photo_and_its_post(
        client: httpx.AsyncClient, world: SimWorld) -> None:
    response = await client.post(f"/v23.0/{PAGE}/photos", headers=auth(),
                                 data={"message": "Outage update"},
                                 files={"source": ("u.jpg", JPEG, "image/jpeg")})
    assert response.status_code == 200
    body = response.json()
    assert re.fullmatch(r"\d{18}", body["id"])
    assert body["post_id"].startswith(f"{PAGE}_")
    [recorded] = world.record.all("facebook")
    assert recorded.external_id == body["post_id"]
    assert recorded.payload["source"] == {"filename": "u.jpg", "content_type": "image/jpeg",
                                          "size": len(JPEG)}


async def test_it_attaches_unpublished_photos_to_one_feed_post(
        client: httpx.AsyncClient, world: SimWorld) -> None:
    ids = []
    for _ in range(2):
        photo = await client.post(f"/v23.0/{PAGE}/photos", headers=auth(),
                                  data={"url": "https://cdn.example/a.jpg", "published": "false"})
        assert set(photo.json()) == {"id"}
        ids.append(photo.json()["id"])
    assert world.record.all("facebook") == []
    attached = {f"attached_media[{i}]": json.dumps({"media_fbid": pid}) for i, pid in enumerate(ids)}
    response = await client.post(f"/v23.0/{PAGE}/feed", headers=auth(),
                                 data={"message": "Two photos", **attached})
    assert response.status_code == 200
    [recorded] = world.record.all("facebook")
    assert recorded.payload["message"] == "Two photos"
    read = await client.get(f"/v23.0/{response.json()['id']}", headers=auth(),
                            params={"fields": "id,full_picture"})
    assert read.json()["full_picture"].startswith("https://scontent.xx.fbcdn.net/")


@pytest.mark.parametrize(("upload", "code", "message"), [
    (b"not an image at all", 324, "(#324) Missing or invalid image file"),
    (JPEG + b"\x00" * (4 * 1024 * 1024), 100, "(#100) The photo is larger than 4 MB"),
])
async def test_it_refuses_a_photo_it_cannot_take(
        client: httpx.AsyncClient, world: SimWorld, upload: bytes, code: int, message: str) -> None:
    response = await client.post(f"/v23.0/{PAGE}/photos", headers=auth(),
                                 files={"source": ("x.jpg", upload, "image/jpeg")})
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["message"], error["type"]) == (code, message, "OAuthException")
    assert world.record.all() == []


async def test_it_accepts_a_png_photo(client: httpx.AsyncClient) -> None:
    response = await client.post(f"/v23.0/{PAGE}/photos", headers=auth(),
                                 files={"source": ("x.png", PNG, "image/png")})
    assert response.status_code == 200


async def test_it_refuses_the_same_post_twice_in_a_row_with_506(
        client: httpx.AsyncClient, world: SimWorld) -> None:
    first = await client.post(f"/v23.0/{PAGE}/feed", headers=auth(), data={"message": "Same"})
    again = await client.post(f"/v23.0/{PAGE}/feed", headers=auth(), data={"message": "Same"})
    assert first.status_code == 200
    assert again.status_code == 400
    error = again.json()["error"]
    assert (error["code"], error["message"]) == (506, "(#506) Duplicate status message")
    assert set(error) >= {"type", "error_user_title", "error_user_msg", "fbtrace_id"}
    assert len(world.record.all("facebook")) == 1
    other = await client.post(f"/v23.0/{PAGE}/feed", headers=auth(), data={"message": "New"})
    assert other.status_code == 200
    same_again = await client.post(f"/v23.0/{PAGE}/feed", headers=auth(), data={"message": "Same"})
    assert same_again.status_code == 200  # not twice *in a row* any more


async def test_it_refuses_a_post_with_nothing_in_it(client: httpx.AsyncClient) -> None:
    response = await client.post(f"/v23.0/{PAGE}/feed", headers=auth(), data={})
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "(#100) Missing message or attachment"
    assert response.json()["error"]["code"] == 100


async def test_it_refuses_a_malformed_link(client: httpx.AsyncClient) -> None:
    response = await client.post(f"/v23.0/{PAGE}/feed", headers=auth(), data={"link": "nope"})
    assert response.json()["error"]["message"] == "(#100) link URL is not properly formatted"


async def test_it_asks_for_a_token_when_none_is_sent(client: httpx.AsyncClient) -> None:
    response = await client.post(f"/v23.0/{PAGE}/feed", data={"message": "hi"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["type"]) == (104, "OAuthException")
    assert error["message"] == "An access token is required to request this resource."


async def test_it_refuses_an_unknown_token_with_190(client: httpx.AsyncClient) -> None:
    response = await client.post(f"/v23.0/{PAGE}/feed", headers=auth("EAAUnknown"),
                                 data={"message": "hi"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["error_subcode"]) == (190, 467)
    assert response.headers["www-authenticate"].startswith('OAuth "Facebook Platform"')


async def test_it_refuses_posting_to_a_page_the_token_does_not_manage(
        client: httpx.AsyncClient, world: SimWorld) -> None:
    response = await client.post(f"/v23.0/{OTHER_PAGE}/feed", headers=auth(), data={"message": "x"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["error_subcode"]) == (100, 33)
    assert error["message"].startswith(f"Unsupported post request. Object with ID '{OTHER_PAGE}'")
    assert world.record.all() == []


async def test_it_reads_back_and_deletes_a_post(client: httpx.AsyncClient) -> None:
    post_id = (await client.post(f"/{PAGE}/feed", headers=auth(),
                                 data={"message": "Read me"})).json()["id"]
    read = await client.get(f"/v23.0/{post_id}", headers=auth())
    assert read.json() == {"created_time": "2026-01-01T00:00:00+0000", "message": "Read me",
                           "id": post_id}
    other_page = await client.get(f"/v23.0/{post_id}", headers=auth("EAAOther"))
    assert other_page.json()["error"]["error_subcode"] == 33
    deleted = await client.delete(f"/v23.0/{post_id}", headers=auth())
    assert deleted.json() == {"success": True}
    gone = await client.get(f"/v23.0/{post_id}", headers=auth())
    assert gone.status_code == 400
    assert gone.json()["error"]["message"].startswith("Unsupported get request.")


async def test_it_says_which_page_a_token_belongs_to(client: httpx.AsyncClient) -> None:
    response = await client.get("/v23.0/me", params={"access_token": TOKEN})
    assert response.json() == {"name": f"Page {PAGE}", "id": PAGE}


async def test_it_fails_a_post_with_photos_under_a_partial_media_fault(
        client: httpx.AsyncClient, world: SimWorld) -> None:
    photo = (await client.post(f"/{PAGE}/photos", headers=auth(),
                               data={"url": "https://cdn.example/a.jpg", "published": "false"}))
    world.faults.set("facebook", Fault.PARTIAL, feature="media")
    with_photo = await client.post(f"/{PAGE}/feed", headers=auth(), data={
        "message": "x", "attached_media": json.dumps([{"media_fbid": photo.json()["id"]}])})
    text_only = await client.post(f"/{PAGE}/feed", headers=auth(), data={"message": "y"})
    assert with_photo.json()["error"]["code"] == 324
    assert text_only.status_code == 200


async def test_it_answers_unknown_paths_with_graph_code_2500(client: httpx.AsyncClient) -> None:
    response = await client.get("/v23.0/me/nothing/here")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == 2500


async def test_it_serves_a_page_on_the_web_hosts(profile: FacebookProfile) -> None:
    app = Starlette(routes=profile.routes())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="https://www.facebook.com") as web:
        response = await web.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")


async def test_routes_driven_without_the_gate_can_apply_another_products_faults(
        world: SimWorld, client: httpx.AsyncClient) -> None:
    graph_state(world).gate_routes_products = False  # no gate in front of these routes
    world.grant_token("whatsapp", "WAToken", "106540352242922")
    world.faults.set("whatsapp", Fault.RATE_LIMITED, retry_after_s=120)
    throttled = await client.post("/v23.0/106540352242922/messages", headers=auth("WAToken"),
                                  json={"messaging_product": "whatsapp", "to": "16505551234",
                                        "type": "template", "template": {
                                            "name": "hello_world", "language": {"code": "en_US"}}})
    page_post = await client.post(f"/v23.0/{PAGE}/feed", headers=auth(), data={"message": "up"})
    assert (throttled.status_code, throttled.json()["error"]["code"]) == (429, 4)
    assert page_post.status_code == 200
    graph_state(world).gate_routes_products = True  # the default: the gate does it, not the routes
    again = await client.post("/v23.0/106540352242922/messages", headers=auth("WAToken"),
                              json={"messaging_product": "whatsapp", "to": "16505551234",
                                    "type": "template", "template": {
                                        "name": "hello_world", "language": {"code": "en_US"}}})
    assert again.status_code == 200


# Requests on graph.facebook.com that belong to other products, each with that product's token.
PRODUCT_CALLS = {
    "whatsapp": ("POST", "/v23.0/106540352242922/messages", "WAToken", "106540352242922"),
    "messenger": ("POST", f"/v23.0/{PAGE}/messages", "MSToken", PAGE),
    "instagram": ("GET", "/v23.0/17841400000000001/content_publishing_limit", "IGToken",
                  "17841400000000001"),
}
PRODUCT_PROFILES: dict[str, type[Profile]] = {
    "whatsapp": WhatsAppProfile, "messenger": MessengerProfile, "instagram": InstagramProfile}


@pytest.mark.parametrize("product", sorted(PRODUCT_CALLS))
async def test_a_products_fault_with_a_rate_is_drawn_once_per_request_through_the_gate(
        product: str) -> None:
    method, path, token, account = PRODUCT_CALLS[product]
    profiles = {"facebook": FacebookProfile, product: PRODUCT_PROFILES[product]}
    async with running_simulator(seed=3, profiles=profiles, dns=False) as sim:
        sim.world.grant_token(product, token, account)
        await sim.set_fault(product, Fault.HTTP_5XX, rate=0.5)
        async with sim.client() as client:
            statuses = [(await client.request(method, f"https://graph.facebook.com{path}",
                                              headers=auth(token))).status_code
                        for _ in range(400)]
    failed = sum(status >= 500 for status in statuses) / len(statuses)
    assert 0.42 < failed < 0.58  # one draw of 0.5; a second one would make it about 0.75


def request_for(method: str, path: str, token: str | None = None) -> Request:
    query = f"access_token={token}".encode() if token else b""
    return Request({"type": "http", "method": method, "path": path, "query_string": query,
                    "headers": [(b"host", b"graph.facebook.com")]})


@pytest.mark.parametrize(("method", "path", "token", "feature", "platform"), [
    ("POST", f"/v23.0/{PAGE}/feed", None, "text", "facebook"),
    ("POST", f"/v23.0/{PAGE}/photos", None, "media", "facebook"),
    ("POST", "/v23.0/17841400000000001/media", None, "media", "instagram"),
    ("POST", "/v23.0/17841400000000001/media_publish", None, "media", "instagram"),
    ("GET", "/v23.0/17841400000000001/content_publishing_limit", None, "read", "instagram"),
    ("POST", "/v23.0/106540352242922/media", None, "media", "whatsapp"),
    ("POST", "/v23.0/106540352242922/messages", None, "text", "whatsapp"),
    ("POST", f"/v23.0/{PAGE}/messages", None, "text", "messenger"),
    ("POST", "/v23.0/me/messages", "EAAMessenger", "text", "messenger"),
    ("GET", "/v23.0/me", TOKEN, "read", "facebook"),
])
def test_it_tells_the_product_and_feature_of_each_graph_path(
        world: SimWorld, method: str, path: str, token: str | None, feature: str,
        platform: str) -> None:
    world.grant_token("instagram", "IGToken", "17841400000000001")
    world.grant_token("whatsapp", "WAToken", "106540352242922")
    world.grant_token("messenger", "EAAMessenger", PAGE)
    profile = FacebookProfile(world)
    request = request_for(method, path, token)
    assert profile.feature_of(request) == feature
    assert profile.platform_of(request) == platform


EXPECTED = {  # kind -> (status, code, subcode)
    ErrorKind.SERVER_ERROR: (500, 1, None),
    ErrorKind.UNAVAILABLE: (503, 2, None),
    ErrorKind.RATE_LIMITED: (400, 80001, None),
    ErrorKind.AUTH_EXPIRED: (400, 190, 463),
    ErrorKind.AUTH_MISSING: (400, 190, 467),
    ErrorKind.INVALID_REQUEST: (400, 100, None),
    ErrorKind.NOT_FOUND: (400, 100, 33),
    ErrorKind.DUPLICATE: (400, 506, None),
    ErrorKind.MEDIA_FAILED: (400, 324, None),
}


def test_every_error_kind_is_covered() -> None:
    assert set(EXPECTED) == set(ErrorKind)


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_it_answers_every_error_kind_in_graph_words(profile: FacebookProfile,
                                                    kind: ErrorKind) -> None:
    response = profile.error(kind, "injected", retry_after_s=90)
    body = json.loads(bytes(response.body))
    status, code, subcode = EXPECTED[kind]
    assert response.status_code == status
    assert set(body) == {"error"}
    assert (body["error"]["code"], body["error"].get("error_subcode")) == (code, subcode)
    assert body["error"]["type"] == "OAuthException"
    assert body["error"]["message"] and body["error"]["fbtrace_id"]
    if kind in (ErrorKind.SERVER_ERROR, ErrorKind.UNAVAILABLE, ErrorKind.RATE_LIMITED):
        assert body["error"]["is_transient"] is True


def test_it_reports_throttling_in_the_business_use_case_header(profile: FacebookProfile) -> None:
    response = profile.error(ErrorKind.RATE_LIMITED, "slow down", retry_after_s=90)
    assert "retry-after" not in response.headers  # Graph sends none
    usage = json.loads(response.headers["x-business-use-case-usage"])
    [entry] = next(iter(usage.values()))
    assert entry["type"] == "pages"
    assert entry["estimated_time_to_regain_access"] == 2  # minutes, rounded up
    assert json.loads(response.headers["x-app-usage"])["call_count"] == 100


def test_it_answers_other_products_faults_in_their_words(profile: FacebookProfile) -> None:
    whatsapp = profile.product_error("whatsapp", ErrorKind.RATE_LIMITED, "x", retry_after_s=5)
    instagram = profile.product_error("instagram", ErrorKind.RATE_LIMITED, "x")
    assert whatsapp.status_code == 429
    assert json.loads(bytes(instagram.body))["error"]["code"] == 80002
