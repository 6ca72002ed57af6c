"""The dashboard pages of a workspace: status board, posts (with the composer), channels.

Every page admits its caller through `require_role` (see `sidestep.web.deps`): viewers may
look, editors may also create posts. Pages never show channel credentials: templates get
only the fields they print.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from sidestep.store.accounts import Accounts
from sidestep.store.channels import Channels
from sidestep.store.health import Health
from sidestep.store.posts import NewPost, PostError, Posts
from sidestep.store.tables import Channel, Delivery, Post
from sidestep.web.board import board_rows, status_counts
from sidestep.web.deps import (
    AsEditor,
    AsViewer,
    CurrentUser,
    UnitOfWork,
    WorkspaceAccess,
    get_runtime,
)
from sidestep.web.posting import (
    body_problem,
    due_time_problem,
    form_time,
    parse_form_time,
)
from sidestep.web.views import format_utc, render

router = APIRouter(include_in_schema=False)

SECTIONS = (
    ("status", "Status"),
    ("posts", "Posts"),
    ("calendar", "Calendar"),
    ("channels", "Channels"),
    ("email", "Email"),
    ("site", "Site"),
    ("reports", "Reports"),
)
POSTS_SHOWN = 100


@dataclass(frozen=True, slots=True)
class DeliveryView:
    channel_name: str
    platform: str
    state: str


@dataclass(frozen=True, slots=True)
class PostView:
    post: Post
    deliveries: list[DeliveryView]


@dataclass(frozen=True, slots=True)
class PostForm:
    """What the composer shows: the values typed so far and a message per bad field."""

    body: str
    due_at: str
    channel_ids: frozenset[int]
    errors: dict[str, str]


async def chrome(access: WorkspaceAccess, section: str) -> dict[str, Any]:
    """The context every workspace page's header needs (user, workspace switcher, logout)."""
    memberships = await Accounts(access.session).memberships(access.principal.user.id)
    return {
        "user": access.principal.user, "workspace": access.workspace, "role": access.role.value,
        "memberships": memberships, "section": section, "sections": SECTIONS,
        "csrf_token": access.principal.csrf_token, "can_edit": access.can_edit,
    }


@router.get("/")
async def home(request: Request, principal: CurrentUser, session: UnitOfWork) -> Response:
    """303 to the status board of the caller's first workspace, or a page saying there is none."""
    memberships = await Accounts(session).memberships(principal.user.id)
    if not memberships:
        return render(request, "no_workspace.html",
                      {"user": principal.user, "csrf_token": principal.csrf_token})
    return RedirectResponse(f"/w/{memberships[0].workspace.slug}/status", status_code=303)


@router.get("/w/{slug}")
async def workspace_home(access: AsViewer) -> Response:
    return RedirectResponse(f"/w/{access.workspace.slug}/status", status_code=303)


@router.get("/w/{slug}/status")
async def status_board(request: Request, access: AsViewer) -> Response:
    """Every rented platform with the monitor's view of it."""
    states = await Health(access.session).states()
    rows = board_rows(request.app.state.catalogue, states)
    return render(request, "status.html", {
        **await chrome(access, "status"),
        "rows": rows, "counts": status_counts(rows), "monitor_has_run": bool(states),
        "now": get_runtime(request).clock.now(),
    })


@router.get("/w/{slug}/channels")
async def channels_page(request: Request, access: AsViewer) -> Response:
    channels = await Channels(
        access.session, workspace_id=access.workspace.id, vault=get_runtime(request).vault
    ).all()
    rows = [
        {"name": c.name, "platform": c.platform, "handle": c.handle, "status": c.status,
         "audience_size": c.audience_size}
        for c in channels
    ]
    return render(request, "channels.html", {**await chrome(access, "channels"), "channels": rows})


@router.get("/w/{slug}/posts")
async def posts_page(request: Request, access: AsViewer, created: int | None = None) -> Response:
    """The workspace's posts with their delivery states; editors also get the composer."""
    # Suggest an hour from now: a default of "now" would be in the past by the time it is sent.
    suggested = get_runtime(request).clock.now().replace(second=0, microsecond=0) + timedelta(
        hours=1
    )
    blank = PostForm(body="", due_at=form_time(suggested), channel_ids=frozenset(), errors={})
    return await _render_posts(request, access, blank, created=created)


@router.post("/w/{slug}/posts")
async def create_post(
    request: Request,
    access: AsEditor,
    body: Annotated[str, Form()] = "",
    due_at: Annotated[str, Form()] = "",
    channel_ids: Annotated[list[str] | None, Form()] = None,
) -> Response:
    """Create a post from the composer: 303 back to the list, or 400 with the form's errors."""
    now = get_runtime(request).clock.now()
    errors: dict[str, str] = {}
    if problem := body_problem(body):
        errors["body"] = problem
    due = parse_form_time(due_at)
    if due is None:
        errors["due_at"] = "give a date and a time (UTC)"
    elif problem := due_time_problem(due, now=now):
        errors["due_at"] = problem
    chosen = [int(raw) for raw in channel_ids or [] if raw.isdigit()]
    if len(chosen) != len(channel_ids or []):
        errors["channels"] = "that channel is not one of this workspace's"
    elif not chosen:
        errors["channels"] = "pick at least one channel"
    if not errors and due is not None:
        try:
            post = await Posts(access.session, workspace_id=access.workspace.id).create(
                NewPost(body=body, due_at=due, channel_ids=chosen),
                created_by=access.principal.user.id, at=now,
            )
        except PostError as exc:
            errors["form"] = str(exc)
        else:
            return RedirectResponse(
                f"/w/{access.workspace.slug}/posts?created={post.id}", status_code=303
            )
    form = PostForm(body=body, due_at=due_at, channel_ids=frozenset(chosen), errors=errors)
    return await _render_posts(request, access, form, status_code=400)


async def _render_posts(
    request: Request,
    access: WorkspaceAccess,
    form: PostForm,
    *,
    created: int | None = None,
    status_code: int = 200,
) -> Response:
    workspace_id = access.workspace.id
    channels = await Channels(
        access.session, workspace_id=workspace_id, vault=get_runtime(request).vault
    ).all()
    repo = Posts(access.session, workspace_id=workspace_id)
    posts = await repo.recent(limit=POSTS_SHOWN)
    by_post = await repo.deliveries_for([post.id for post in posts])
    views = [PostView(post, _delivery_views(by_post[post.id], channels)) for post in posts]
    shown = next((v.post for v in views if v.post.id == created), None)
    notice = f"Post #{shown.id} scheduled for {format_utc(shown.due_at)}." if shown else None
    return render(request, "posts.html", {
        **await chrome(access, "posts"),
        "posts": views, "channels": [{"id": c.id, "name": c.name, "platform": c.platform}
                                     for c in channels],
        "form": form, "notice": notice,
    }, status_code=status_code)


def _delivery_views(deliveries: list[Delivery], channels: list[Channel]) -> list[DeliveryView]:
    by_id = {c.id: c for c in channels}
    views = []
    for delivery in deliveries:
        channel = by_id.get(delivery.channel_id)
        views.append(DeliveryView(
            channel_name=channel.name if channel else f"channel {delivery.channel_id}",
            platform=channel.platform if channel else "", state=delivery.state,
        ))
    return views
