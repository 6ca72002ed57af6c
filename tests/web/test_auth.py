from __future__ import annotations

from pathlib import Path

import httpx
from sqlalchemy import func, select

from sidestep.clock import FrozenClock
from sidestep.config import Settings
from sidestep.runtime import Runtime
from sidestep.store.tables import WebSession
from sidestep.web.app import create_app
from sidestep.web.auth import BAD_LOGIN, safe_next
from sidestep.web.deps import SESSION_COOKIE
from tests.web.conftest import CATALOGUE, PASSWORD, World, csrf_from, sign_in


async def login(
    client: httpx.AsyncClient, email: str, password: str, next_url: str = "/"
) -> httpx.Response:
    form = await client.get("/login", params={"next": next_url})
    return await client.post("/login", data={
        "email": email, "password": password, "next": next_url,
        "csrf_token": csrf_from(form.text),
    })


async def session_count(runtime: Runtime) -> int:
    async with runtime.db.session() as s:
        return int(await s.scalar(select(func.count()).select_from(WebSession)) or 0)


async def test_it_redirects_an_anonymous_visitor_to_login_with_next(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await client.get("/w/acme/posts?created=3")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fw%2Facme%2Fposts%3Fcreated%3D3"


async def test_it_signs_in_with_an_httponly_lax_session_cookie(
    client: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    response = await login(client, "owner@example.org", PASSWORD, next_url="/w/acme/channels")
    assert response.status_code == 303
    assert response.headers["location"] == "/w/acme/channels"
    cookie = next(h for h in response.headers.get_list("set-cookie")
                  if h.startswith(f"{SESSION_COOKIE}="))
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "path", "max-age"} <= attributes
    assert "samesite=lax" in cookie.lower()
    assert f"Max-Age={runtime.settings.session_max_age_s}" in cookie
    assert "secure" not in attributes  # the public URL here is http
    assert (await client.get("/w/acme/channels")).status_code == 200


async def test_it_marks_the_cookie_secure_when_the_public_url_is_https(
    tmp_path: Path, clock: FrozenClock, world: World, runtime: Runtime
) -> None:
    https = Settings(data_dir=tmp_path / "data", base_url="https://sidestep.example.org")
    secure_runtime = Runtime(settings=https, db=runtime.db, vault=runtime.vault, clock=clock)
    app = create_app(secure_runtime, catalogue=CATALOGUE)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="https://sidestep.example.org") as client:
        response = await login(client, "owner@example.org", PASSWORD)
    cookie = next(h for h in response.headers.get_list("set-cookie")
                  if h.startswith(f"{SESSION_COOKIE}="))
    assert response.status_code == 303
    assert "secure" in {part.strip().lower() for part in cookie.split(";")}


async def test_it_answers_a_wrong_password_and_an_unknown_address_alike(
    client: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    wrong_password = await login(client, "owner@example.org", "not the password")
    unknown_user = await login(client, "nobody@example.org", PASSWORD)
    for response in (wrong_password, unknown_user):
        assert response.status_code == 400
        assert BAD_LOGIN in response.text
        assert SESSION_COOKIE not in response.headers.get("set-cookie", "")
    assert "nobody@example.org" in unknown_user.text  # the address stays in the field
    assert await session_count(runtime) == 0


async def test_it_refuses_a_login_post_without_its_signed_form_token(
    client: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    await client.get("/login")  # sets the nonce cookie, but the form token is not sent
    response = await client.post(
        "/login", data={"email": "owner@example.org", "password": PASSWORD}
    )
    assert response.status_code == 403
    assert await session_count(runtime) == 0


async def test_it_refuses_a_login_token_that_belongs_to_another_browser(
    client: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    other_form = await client.get("/login")
    stolen = csrf_from(other_form.text)
    client.cookies.clear()
    await client.get("/login")  # a fresh nonce that the stolen token does not hold
    response = await client.post("/login", data={
        "email": "owner@example.org", "password": PASSWORD, "csrf_token": stolen,
    })
    assert response.status_code == 403
    assert await session_count(runtime) == 0


async def test_it_refuses_a_login_form_older_than_two_hours(
    client: httpx.AsyncClient, world: World, clock: FrozenClock
) -> None:
    form = await client.get("/login")
    clock.advance(seconds=2 * 3600 + 1)
    response = await client.post("/login", data={
        "email": "owner@example.org", "password": PASSWORD, "csrf_token": csrf_from(form.text),
    })
    assert response.status_code == 403


async def test_it_logs_out_by_deleting_the_session(
    client: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    csrf = await sign_in(client, runtime, world.owner)
    cookie = client.cookies[SESSION_COOKIE]
    response = await client.post("/logout", data={"csrf_token": csrf})
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    assert await session_count(runtime) == 0
    # Replaying the old cookie gets nowhere.
    client.cookies.set(SESSION_COOKIE, cookie, domain="testserver.local")
    assert (await client.get("/w/acme/status")).status_code == 303


async def test_it_treats_an_expired_session_as_anonymous(
    client: httpx.AsyncClient, world: World, runtime: Runtime, clock: FrozenClock
) -> None:
    await sign_in(client, runtime, world.owner)
    clock.advance(seconds=runtime.settings.session_max_age_s + 1)
    response = await client.get("/w/acme/status")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")


async def test_it_replaces_the_previous_session_on_a_new_login(
    client: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    form = await client.get("/login")
    await sign_in(client, runtime, world.viewer)  # another tab signed in meanwhile
    response = await client.post("/login", data={
        "email": "owner@example.org", "password": PASSWORD, "csrf_token": csrf_from(form.text),
    })
    assert response.status_code == 303
    assert await session_count(runtime) == 1
    assert "Owner" in (await client.get("/w/acme/status")).text


async def test_it_sends_home_from_the_root_to_the_first_workspace(
    client: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    await sign_in(client, runtime, world.owner)
    response = await client.get("/")
    assert response.status_code == 303
    assert response.headers["location"] == "/w/acme/status"


async def test_it_tells_a_user_without_workspace_so(
    client: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    await sign_in(client, runtime, world.outsider)
    response = await client.get("/")
    assert response.status_code == 200
    assert "not a member of any workspace" in response.text


def test_it_only_redirects_to_paths_on_this_site_after_login() -> None:
    assert safe_next("/w/acme/posts?x=1") == "/w/acme/posts?x=1"
    for hostile in ("https://evil.example", "//evil.example/x", "/\\evil.example", "",
                    "javascript:alert(1)", "/ok\r\nSet-Cookie: x=1"):
        assert safe_next(hostile) == "/"
