"""The JSON API under /api/v1, authenticated with personal API tokens.

Clients send `Authorization: Bearer sst_...` (tokens come from `Accounts.issue_api_token`);
a missing, invalid or revoked token gets 401 with `WWW-Authenticate: Bearer`. A browser's
session cookie is accepted too, but unsafe methods then need the `X-CSRF-Token` header
(see `sidestep.web.csrf`); bearer calls are exempt because no cookie is involved. Workspace
routes use the same roles as the pages: a non-member gets 404, a viewer who tries to create
gets 403. The schema is served at /api/v1/openapi.json.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from sidestep.dispatch.pause import PauseError, pause, resume
from sidestep.domain.states import Role
from sidestep.store.accounts import Accounts
from sidestep.store.channels import Channels
from sidestep.store.health import Health
from sidestep.store.posts import NewPost, PostError, Posts
from sidestep.store.tables import Post
from sidestep.web.board import board_rows
from sidestep.web.deps import AsEditor, AsViewer, CurrentUser, UnitOfWork, get_runtime
from sidestep.web.posting import due_time_problem
from sidestep.web.schemas import (
    ChannelOut,
    DeliveryOut,
    ErrorOut,
    PlatformStateOut,
    PostDetailOut,
    PostIn,
    PostOut,
    WorkspaceOut,
)

API_PREFIX = "/api/v1"

router = APIRouter(
    prefix=API_PREFIX,
    responses={401: {"model": ErrorOut, "description": "Missing, invalid or revoked token."}},
)
_MEMBER_ERRORS: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorOut, "description": "No such workspace, or not a member."},
}


@router.get("/workspaces", response_model=list[WorkspaceOut], tags=["workspaces"])
async def list_workspaces(principal: CurrentUser, session: UnitOfWork) -> list[WorkspaceOut]:
    """The workspaces the caller is a member of, with the caller's role in each."""
    memberships = await Accounts(session).memberships(principal.user.id)
    return [
        WorkspaceOut(slug=m.workspace.slug, name=m.workspace.name, role=m.role)
        for m in memberships
    ]


@router.get("/workspaces/{slug}/channels", response_model=list[ChannelOut], tags=["channels"],
            responses=_MEMBER_ERRORS)
async def list_channels(request: Request, access: AsViewer) -> list[ChannelOut]:
    """The workspace's channels (never their credentials)."""
    channels = await Channels(
        access.session, workspace_id=access.workspace.id, vault=get_runtime(request).vault
    ).all()
    return [ChannelOut.model_validate(channel) for channel in channels]


@router.get("/workspaces/{slug}/posts", response_model=list[PostOut], tags=["posts"],
            responses=_MEMBER_ERRORS)
async def list_posts(
    access: AsViewer,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[PostOut]:
    """The workspace's posts, latest due time first."""
    posts = await Posts(access.session, workspace_id=access.workspace.id).recent(
        limit=limit, offset=offset
    )
    return [PostOut.model_validate(post) for post in posts]


@router.post(
    "/workspaces/{slug}/posts", response_model=PostDetailOut, status_code=status.HTTP_201_CREATED,
    tags=["posts"],
    responses={**_MEMBER_ERRORS,
               403: {"model": ErrorOut, "description": "The caller may not edit here."},
               422: {"description": "The post cannot be created as given."}},
)
async def create_post(
    request: Request, response: Response, new: PostIn, access: AsEditor
) -> PostDetailOut:
    """Create a post and schedule one delivery per channel; needs the editor role."""
    now = get_runtime(request).clock.now()
    if problem := due_time_problem(new.due_at, now=now):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, problem)
    repo = Posts(access.session, workspace_id=access.workspace.id)
    try:
        post = await repo.create(
            NewPost(
                body=new.body, due_at=new.due_at, channel_ids=new.channel_ids, link=new.link,
                fallback_policy=new.fallback_policy,
                fallback_channel_ids=new.fallback_channel_ids,
            ),
            created_by=access.principal.user.id, at=now,
        )
    except PostError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    slug = access.workspace.slug
    response.headers["Location"] = f"{API_PREFIX}/workspaces/{slug}/posts/{post.id}"
    return await _post_detail(repo, post)


@router.get("/workspaces/{slug}/posts/{post_id}", response_model=PostDetailOut, tags=["posts"],
            responses={404: {"model": ErrorOut, "description": "No such post or workspace."}})
async def get_post(post_id: int, access: AsViewer) -> PostDetailOut:
    """One post with its deliveries."""
    repo = Posts(access.session, workspace_id=access.workspace.id)
    post = await repo.get(post_id)
    if post is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such post in this workspace")
    return await _post_detail(repo, post)


@router.get("/platforms/states", response_model=list[PlatformStateOut], tags=["platforms"])
async def platform_states(
    request: Request, principal: CurrentUser, session: UnitOfWork
) -> list[PlatformStateOut]:
    """Every rented platform and the monitor's state of it (`unknown` before its first state)."""
    rows = board_rows(request.app.state.catalogue, await Health(session).states())
    return [
        PlatformStateOut(
            platform=row.key, name=row.name, owner=row.owner, status=row.status,
            features=row.features, reason=row.reason, since=row.since, updated_at=row.updated_at,
        )
        for row in rows
    ]


class PauseIn(BaseModel):
    """What to pause or resume: a whole workspace, or one of its channels."""

    model_config = ConfigDict(extra="forbid")
    workspace: str = Field(description="The workspace's slug.")
    channel_id: int | None = Field(default=None, description="One channel; omit for all.")


class PauseOut(BaseModel):
    workspace: str
    channel_id: int | None
    paused: bool = Field(description="Whether this scope is paused now.")
    changed: bool = Field(description="False when it already was as asked.")


_PAUSE_ERRORS: dict[int | str, dict[str, object]] = {
    **_MEMBER_ERRORS,
    403: {"model": ErrorOut, "description": "The caller may not edit here."},
    422: {"model": ErrorOut, "description": "No such channel in the workspace."},
}


async def _pause_or_resume(request: Request, body: PauseIn, principal: CurrentUser,
                           session: UnitOfWork, *, pausing: bool) -> PauseOut:
    memberships = {m.workspace.slug: m for m in await Accounts(session).memberships(
        principal.user.id)}
    member = memberships.get(body.workspace)
    if member is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such workspace")
    if not Role(member.role).allows(Role.EDITOR):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "pausing needs the editor role")
    action = pause if pausing else resume
    try:
        changed = await action(session, workspace_id=member.workspace.id,
                               channel_id=body.channel_id, by=principal.user.email,
                               at=get_runtime(request).clock.now())
    except PauseError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    return PauseOut(workspace=body.workspace, channel_id=body.channel_id, paused=pausing,
                    changed=changed)


@router.post("/pause", response_model=PauseOut, tags=["dispatch"], responses=_PAUSE_ERRORS)
async def pause_dispatch(request: Request, body: PauseIn, principal: CurrentUser,
                         session: UnitOfWork) -> PauseOut:
    """Emergency stop: nothing of the workspace (or channel) is sent until resumed; nothing
    is lost. Needs the editor role."""
    return await _pause_or_resume(request, body, principal, session, pausing=True)


@router.post("/resume", response_model=PauseOut, tags=["dispatch"], responses=_PAUSE_ERRORS)
async def resume_dispatch(request: Request, body: PauseIn, principal: CurrentUser,
                          session: UnitOfWork) -> PauseOut:
    """Lift a pause made with /pause (a channel resumed under a workspace-wide pause stays
    paused until the workspace resumes). Needs the editor role."""
    return await _pause_or_resume(request, body, principal, session, pausing=False)


async def _post_detail(repo: Posts, post: Post) -> PostDetailOut:
    deliveries = [DeliveryOut.model_validate(d) for d in await repo.deliveries(post.id)]
    return PostDetailOut(**PostOut.model_validate(post).model_dump(), deliveries=deliveries)
