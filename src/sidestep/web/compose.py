"""The composer (`/w/{slug}/posts/new`): one post for several channels, previewed per channel.

The form is read into a `Draft` (every field as typed, and a message per bad field). Two
buttons send it: "Preview" renders the page again with each channel's adapted post and its
problems; "Schedule" does the same checks and, when nothing is wrong anywhere, creates the
post and its deliveries through `Posts.create` and goes to the post's timeline. A post with
a problem on any chosen channel is not scheduled: the page says which channel and why.
`POST /w/{slug}/posts/preview` answers the preview alone (an HTML fragment) for the small
script that refreshes it while the person types; the page works without it.

Times are typed as the wall clock of a time zone (the workspace's, `settings.timezone`, by
default; UTC when it has none) and stored in UTC. Uploaded images go to the `MediaStore`.

`install(app)` adds these routes, the calendar's and the timeline's.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, RedirectResponse, Response

from sidestep.channels.uploads import (
    MAX_UPLOAD_BYTES,
    MIME_OF_EXTENSION,
    MediaError,
    MediaStore,
    StoredImage,
)
from sidestep.dispatch.policy import DispatchSettings
from sidestep.domain.content import Content, MediaItem
from sidestep.domain.states import FallbackPolicy
from sidestep.store.channels import Channels
from sidestep.store.posts import NewPost, PostError, Posts
from sidestep.store.tables import Channel
from sidestep.web import calendar, timeline
from sidestep.web.deps import AsEditor, AsViewer, WorkspaceAccess, get_runtime
from sidestep.web.pages import chrome
from sidestep.web.posting import (
    body_problem,
    due_time_problem,
    form_time,
    link_problem,
    parse_local_time,
    parse_zone,
    workspace_zone,
    zone_names,
)
from sidestep.web.preview import ChannelPreview, preview_channels
from sidestep.web.views import render

router = APIRouter(include_in_schema=False)

TIMING_FIELDS = ("hold_max_h", "reroute_grace_min", "max_age_h")

POLICY_LABELS = {
    FallbackPolicy.HOLD: "Hold until the platform is back (then fail visibly if too late)",
    FallbackPolicy.REROUTE: "Reroute to the fallback channels after a grace period",
    FallbackPolicy.MIRROR_NOW: "Also post to the fallback channels right away",
}


@dataclass(frozen=True, slots=True)
class Draft:
    """The composer's fields as typed, the image kept so far, and a message per bad field."""

    body: str = ""
    link: str = ""
    when: str = "at"  # "now" or "at"
    due_at: str = ""
    tz: str = "UTC"
    channel_ids: frozenset[int] = frozenset()
    policy: str = ""  # "": the workspace's default policy
    fallback_ids: frozenset[int] = frozenset()
    # Failover timing as typed (hours, minutes, hours); blank takes the workspace's default.
    hold_max_h: str = ""
    reroute_grace_min: str = ""
    max_age_h: str = ""
    catch_up: bool = False
    image: StoredImage | None = None
    alt: str = ""
    errors: dict[str, str] = field(default_factory=dict)


def install(app: FastAPI) -> None:
    """Add the composer's, the calendar's and the timeline's routes to `app`."""
    app.include_router(router)  # first: /posts/new must win over /posts/{post_id}
    app.include_router(calendar.router)
    app.include_router(timeline.router)


@router.get("/w/{slug}/posts/new")
async def composer(request: Request, access: AsEditor) -> Response:
    zone = workspace_zone(access.workspace.settings)
    # An hour ahead: a default of "now" would be in the past by the time it is sent.
    suggested = get_runtime(request).clock.now().replace(second=0, microsecond=0) + timedelta(
        hours=1)
    draft = Draft(due_at=form_time(suggested, zone), tz=zone.key)
    return await _page(request, access, draft, channels=await _channels(request, access),
                       previews=[])


@router.post("/w/{slug}/posts/new")
async def compose(
    request: Request,
    access: AsEditor,
    body: Annotated[str, Form()] = "",
    link: Annotated[str, Form()] = "",
    when: Annotated[str, Form()] = "at",
    due_at: Annotated[str, Form()] = "",
    tz: Annotated[str, Form()] = "",
    channel_ids: Annotated[list[str] | None, Form()] = None,
    policy: Annotated[str, Form()] = "",
    fallback_ids: Annotated[list[str] | None, Form()] = None,
    hold_max_h: Annotated[str, Form()] = "",
    reroute_grace_min: Annotated[str, Form()] = "",
    max_age_h: Annotated[str, Form()] = "",
    catch_up: Annotated[str, Form()] = "",
    image: Annotated[UploadFile | None, File()] = None,
    image_ref: Annotated[str, Form()] = "",
    image_name: Annotated[str, Form()] = "",
    alt: Annotated[str, Form()] = "",
    remove_image: Annotated[str, Form()] = "",
    action: Annotated[str, Form()] = "preview",
) -> Response:
    """Preview (200, or 400 for bad fields) or schedule (303 to the post's timeline; 400 with
    the reasons when a field or any channel's preview has a problem)."""
    runtime = get_runtime(request)
    store = MediaStore(runtime.settings.data_dir, workspace_id=access.workspace.id)
    channels = await _channels(request, access)
    draft = await _read(
        store, channels, body=body, link=link, when=when, due_at=due_at, tz=tz,
        channel_ids=channel_ids, policy=policy, fallback_ids=fallback_ids, upload=image,
        timing=(hold_max_h, reroute_grace_min, max_age_h), catch_up=bool(catch_up),
        image_ref="" if remove_image else image_ref, image_name=image_name, alt=alt,
        now=runtime.clock.now(), zone_default=workspace_zone(access.workspace.settings).key)
    chosen = [c for c in channels if c.id in draft.channel_ids]
    previews = await preview_channels(chosen, await _content(draft, store), store=store)
    if action == "schedule" and not draft.errors:
        if any(not p.ok for p in previews):
            draft = replace(draft, errors={"form": "Not scheduled: the post cannot go to every "
                                           "channel as it is. Fix the problems shown below."})
        else:
            try:
                post = await Posts(access.session, workspace_id=access.workspace.id).create(
                    _new_post(draft, now=runtime.clock.now()),
                    created_by=access.principal.user.id, at=runtime.clock.now())
            except PostError as exc:
                draft = replace(draft, errors={"form": str(exc)})
            else:
                return RedirectResponse(
                    f"/w/{access.workspace.slug}/posts/{post.id}?created=1", status_code=303)
    failed = bool(draft.errors) or (action == "schedule")
    return await _page(request, access, draft, channels=channels, previews=previews,
                       status_code=400 if failed else 200)


@router.post("/w/{slug}/posts/preview")
async def live_preview(
    request: Request,
    access: AsEditor,
    body: Annotated[str, Form()] = "",
    link: Annotated[str, Form()] = "",
    channel_ids: Annotated[list[str] | None, Form()] = None,
    image_ref: Annotated[str, Form()] = "",
    image_name: Annotated[str, Form()] = "",
    alt: Annotated[str, Form()] = "",
    remove_image: Annotated[str, Form()] = "",
) -> Response:
    """The preview fragment alone, for the composer's script (no upload: the image must have
    come through a "Preview" round trip first)."""
    runtime = get_runtime(request)
    store = MediaStore(runtime.settings.data_dir, workspace_id=access.workspace.id)
    channels = await _channels(request, access)
    draft = await _read(
        store, channels, body=body, link=link, when="now", due_at="", tz="UTC",
        channel_ids=channel_ids, policy="", fallback_ids=None, upload=None,
        timing=("", "", ""), catch_up=False, image_ref="" if remove_image else image_ref,
        image_name=image_name, alt=alt, now=runtime.clock.now(), zone_default="UTC")
    chosen = [c for c in channels if c.id in draft.channel_ids]
    previews = await preview_channels(chosen, await _content(draft, store), store=store)
    return render(request, "compose_preview.html", {
        "workspace": access.workspace, "previews": previews, "draft": draft})


@router.get("/w/{slug}/media/{ref}")
async def media_file(request: Request, access: AsViewer, ref: str) -> Response:
    """An uploaded image (or a preview's resized version) of this workspace; 404 otherwise."""
    store = MediaStore(get_runtime(request).settings.data_dir, workspace_id=access.workspace.id)
    path = store.path(ref)
    if path is None:
        raise HTTPException(404, "no such image")
    return FileResponse(path, media_type=MIME_OF_EXTENSION[path.suffix[1:]],
                        headers={"Cache-Control": "private, max-age=86400"})


async def _channels(request: Request, access: WorkspaceAccess) -> list[Channel]:
    return await Channels(access.session, workspace_id=access.workspace.id,
                          vault=get_runtime(request).vault).all()


async def _read(store: MediaStore, channels: list[Channel], *, body: str, link: str, when: str,
                due_at: str, tz: str, channel_ids: list[str] | None, policy: str,
                fallback_ids: list[str] | None, upload: UploadFile | None,
                timing: tuple[str, str, str], catch_up: bool, image_ref: str,
                image_name: str, alt: str, now: datetime, zone_default: str) -> Draft:
    errors: dict[str, str] = {}
    link = link.strip()
    if problem := body_problem(body):
        errors["body"] = problem
    if problem := link_problem(link):
        errors["link"] = problem
    when = "now" if when == "now" else "at"
    tz = tz.strip() or zone_default
    zone = parse_zone(tz)
    if zone is None:
        errors["tz"] = f"{tz!r} is not a time zone; use a name like Europe/Berlin or UTC"
    elif when == "at":
        due = parse_local_time(due_at, zone)
        if due is None:
            errors["due_at"] = "give a date and a time"
        elif problem := due_time_problem(due, now=now):
            errors["due_at"] = problem.replace("(times are UTC)", f"({zone.key} time)")
    known = {c.id for c in channels}
    chosen = _ids(channel_ids)
    fallbacks = _ids(fallback_ids)
    if chosen is None or not chosen <= known:
        errors["channels"] = "that channel is not one of this workspace's"
    elif not chosen:
        errors["channels"] = "pick at least one channel"
    if fallbacks is None or not fallbacks <= known:
        errors["fallbacks"] = "that channel is not one of this workspace's"
    elif chosen and fallbacks & chosen:
        errors["fallbacks"] = "a fallback channel cannot also be a target of the post"
    if policy and policy not in {p.value for p in FallbackPolicy}:
        errors["policy"] = "choose one of the listed policies"
    elif policy in (FallbackPolicy.REROUTE, FallbackPolicy.MIRROR_NOW) and not fallbacks:
        errors["fallbacks"] = "this policy needs at least one fallback channel"
    for name, raw in zip(TIMING_FIELDS, timing, strict=True):
        if raw.strip() and _positive(raw) is None:
            errors[name] = "give a whole number above 0, or leave it empty for the default"
    image = await _image(store, upload, image_ref, image_name, alt.strip(), errors)
    return Draft(body=body, link=link, when=when, due_at=due_at, tz=tz,
                 channel_ids=frozenset(chosen or ()) & known,
                 policy=policy, fallback_ids=frozenset(fallbacks or ()) & known,
                 hold_max_h=timing[0].strip(), reroute_grace_min=timing[1].strip(),
                 max_age_h=timing[2].strip(), catch_up=catch_up, image=image,
                 alt=alt.strip(), errors=errors)


def _positive(raw: str) -> int | None:
    raw = raw.strip()
    return int(raw) if raw.isdigit() and 0 < int(raw) <= 100_000 else None


def _seconds(raw: str, unit_s: int) -> int | None:
    value = _positive(raw)
    return value * unit_s if value is not None else None


def _ids(raw: list[str] | None) -> set[int] | None:
    """The ids in `raw`; None when one is not a number."""
    values = raw or []
    if not all(v.isdigit() for v in values):
        return None
    return {int(v) for v in values}


async def _image(store: MediaStore, upload: UploadFile | None, ref: str, name: str, alt: str,
                 errors: dict[str, str]) -> StoredImage | None:
    if upload is not None and upload.filename:
        data = await upload.read(MAX_UPLOAD_BYTES + 1)
        try:
            return await store.keep_upload(data, filename=upload.filename, alt=alt)
        except MediaError as exc:
            errors["image"] = str(exc)
            return None
    if not ref:
        return None
    path = store.path(ref)
    if path is None:
        errors["image"] = "the image uploaded before is gone; upload it again"
        return None
    return StoredImage(ref=ref, filename=name or path.name,
                       mime_type=MIME_OF_EXTENSION[path.suffix[1:]],
                       size_bytes=path.stat().st_size, alt=alt)


async def _content(draft: Draft, store: MediaStore) -> Content:
    media: tuple[MediaItem, ...] = ()
    if draft.image is not None:
        item = await store.load(draft.image.as_post_media())
        media = (item,) if item is not None else ()
    return Content(text=draft.body, link=draft.link or None, media=media)


def _new_post(draft: Draft, *, now: datetime) -> NewPost:
    zone = parse_zone(draft.tz)
    due = parse_local_time(draft.due_at, zone) if draft.when == "at" and zone else None
    return NewPost(
        body=draft.body, due_at=due or now, channel_ids=sorted(draft.channel_ids),
        link=draft.link or None,
        media=[draft.image.as_post_media()] if draft.image is not None else [],
        fallback_policy=FallbackPolicy(draft.policy) if draft.policy else None,
        fallback_channel_ids=sorted(draft.fallback_ids),
        hold_max_s=_seconds(draft.hold_max_h, 3600),
        reroute_grace_s=_seconds(draft.reroute_grace_min, 60),
        max_age_s=_seconds(draft.max_age_h, 3600), catch_up=draft.catch_up)


async def _page(request: Request, access: WorkspaceAccess, draft: Draft, *,
                channels: list[Channel], previews: list[ChannelPreview],
                status_code: int = 200) -> Response:
    context: dict[str, Any] = {
        **await chrome(access, "posts"),
        "draft": draft, "previews": previews, "zones": zone_names(),
        "channels": [{"id": c.id, "name": c.name, "platform": c.platform} for c in channels],
        "policies": [(p.value, label) for p, label in POLICY_LABELS.items()],
        "defaults": DispatchSettings.from_workspace(access.workspace.settings),
    }
    return render(request, "compose.html", context, status_code=status_code)
