from __future__ import annotations

from datetime import timedelta

import httpx
from fastapi.routing import APIRoute
from sqlalchemy import func, select

from sidestep.clock import FrozenClock
from sidestep.runtime import Runtime
from sidestep.store.tables import Post
from sidestep.web import api, auth, ops, pages
from sidestep.web.csrf import issue_login_token, login_token_is_valid
from tests.web.conftest import World, api_token, bearer, sign_in

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


async def post_count(runtime: Runtime) -> int:
    async with runtime.db.session() as s:
        return int(await s.scalar(select(func.count()).select_from(Post)) or 0)


def new_post_form(world: World, clock: FrozenClock, **extra: str) -> dict[str, object]:
    due = (clock.now() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    return {"body": "Hello from the composer", "due_at": due,
            "channel_ids": [str(world.instagram_id)], **extra}


async def test_it_refuses_a_form_post_without_csrf_token_and_changes_nothing(
    client: httpx.AsyncClient, world: World, runtime: Runtime, clock: FrozenClock
) -> None:
    await sign_in(client, runtime, world.editor)
    before = await post_count(runtime)
    response = await client.post("/w/acme/posts", data=new_post_form(world, clock))
    assert response.status_code == 403
    assert "security token" in response.text
    assert await post_count(runtime) == before


async def test_it_refuses_a_wrong_csrf_token(
    client: httpx.AsyncClient, world: World, runtime: Runtime, clock: FrozenClock
) -> None:
    real = await sign_in(client, runtime, world.editor)
    before = await post_count(runtime)
    response = await client.post(
        "/w/acme/posts", data=new_post_form(world, clock, csrf_token=real[:-1] + "x")
    )
    assert response.status_code == 403
    assert await post_count(runtime) == before


async def test_it_refuses_the_csrf_token_of_another_session(
    client: httpx.AsyncClient, world: World, runtime: Runtime, clock: FrozenClock
) -> None:
    others = await sign_in(client, runtime, world.owner)
    await sign_in(client, runtime, world.editor)
    response = await client.post("/w/acme/posts", data=new_post_form(world, clock,
                                                                     csrf_token=others))
    assert response.status_code == 403


async def test_it_accepts_a_form_post_with_the_session_csrf_token(
    client: httpx.AsyncClient, world: World, runtime: Runtime, clock: FrozenClock
) -> None:
    csrf = await sign_in(client, runtime, world.editor)
    before = await post_count(runtime)
    response = await client.post("/w/acme/posts", data=new_post_form(world, clock,
                                                                     csrf_token=csrf))
    assert response.status_code == 303
    assert await post_count(runtime) == before + 1


async def test_it_accepts_the_csrf_token_in_a_header(
    client: httpx.AsyncClient, world: World, runtime: Runtime, clock: FrozenClock
) -> None:
    csrf = await sign_in(client, runtime, world.editor)
    response = await client.post("/w/acme/posts", data=new_post_form(world, clock),
                                 headers={"X-CSRF-Token": csrf})
    assert response.status_code == 303


async def test_every_unsafe_route_refuses_a_signed_in_browser_without_csrf_token(
    client: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    await sign_in(client, runtime, world.owner)
    unsafe = [
        (method, route.path.replace("{slug}", "acme").replace("{post_id}", str(world.post_id)))
        for router in (api.router, auth.router, pages.router, ops.router)
        for route in router.routes if isinstance(route, APIRoute)
        for method in (route.methods or set()) & UNSAFE
    ]
    assert ("POST", "/w/acme/posts") in unsafe and ("POST", "/logout") in unsafe
    assert ("POST", "/api/v1/workspaces/acme/posts") in unsafe and ("POST", "/login") in unsafe
    for method, path in unsafe:
        response = await client.request(method, path, data={"body": "x"})
        assert response.status_code == 403, (method, path, response.status_code)


async def test_the_api_refuses_an_unsafe_call_by_session_cookie_without_csrf_header(
    client: httpx.AsyncClient, world: World, runtime: Runtime, clock: FrozenClock
) -> None:
    csrf = await sign_in(client, runtime, world.editor)
    payload = {"body": "via the API", "due_at": (clock.now() + timedelta(hours=1)).isoformat(),
               "channel_ids": [world.instagram_id]}
    refused = await client.post("/api/v1/workspaces/acme/posts", json=payload)
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("application/json")
    accepted = await client.post("/api/v1/workspaces/acme/posts", json=payload,
                                 headers={"X-CSRF-Token": csrf})
    assert accepted.status_code == 201


async def test_bearer_calls_need_no_csrf_token(
    client: httpx.AsyncClient, world: World, runtime: Runtime, clock: FrozenClock
) -> None:
    token = await api_token(runtime, world.editor)
    payload = {"body": "via the API", "due_at": (clock.now() + timedelta(hours=1)).isoformat(),
               "channel_ids": [world.instagram_id]}
    response = await client.post("/api/v1/workspaces/acme/posts", json=payload,
                                 headers=bearer(token))
    assert response.status_code == 201


async def test_a_bad_bearer_token_is_not_rescued_by_a_session_cookie(
    client: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    await sign_in(client, runtime, world.owner)
    response = await client.get("/api/v1/workspaces", headers=bearer("sst_made-up"))
    assert response.status_code == 401


def test_a_login_token_opens_only_with_its_own_nonce_and_not_after_expiry(
    runtime: Runtime, clock: FrozenClock
) -> None:
    nonce, token = issue_login_token(runtime.vault, now=clock.now())
    assert login_token_is_valid(runtime.vault, cookie_nonce=nonce, form_token=token,
                                now=clock.now())
    assert not login_token_is_valid(runtime.vault, cookie_nonce=nonce + "x", form_token=token,
                                    now=clock.now())
    assert not login_token_is_valid(runtime.vault, cookie_nonce=nonce, form_token="garbage",
                                    now=clock.now())
    assert not login_token_is_valid(runtime.vault, cookie_nonce=None, form_token=token,
                                    now=clock.now())
    assert not login_token_is_valid(runtime.vault, cookie_nonce=nonce, form_token=token,
                                    now=clock.now() + timedelta(hours=3))


def test_a_sealed_credential_is_not_a_login_token(runtime: Runtime, clock: FrozenClock) -> None:
    sealed = runtime.vault.encrypt({"nonce": "n", "issued_at": clock.now().isoformat()})
    assert not login_token_is_valid(runtime.vault, cookie_nonce="n",
                                    form_token=sealed.decode(), now=clock.now())
