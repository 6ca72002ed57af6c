"""Routes for the public site (issue 9): link page, archive, permalinks, media, feeds, sitemap;
and the dashboard page where owners and editors set the site up.

Public pages need no login and show only what the workspace published; a workspace that
does not exist and one whose site is off get the same 404. Pages are rendered by
`sidestep.site.render`, the same code the static export uses. Not under `/s/`: the email
subscribe pages own `/s/{slug}/{list_id}`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import FastAPI, Form, HTTPException, Request, status
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from sidestep.archive.media import MediaStore
from sidestep.site import feeds, render
from sidestep.site import media as media_rules
from sidestep.site.content import NoSuchPage, SiteReader
from sidestep.site.links import Links
from sidestep.store.accounts import Accounts
from sidestep.store.site import ShownChannel, SiteError, Sites
from sidestep.web.deps import AsEditor, AsViewer, UnitOfWork, WorkspaceAccess, get_runtime
from sidestep.web.pages import chrome
from sidestep.web.views import render as render_dashboard

PREFIX = "/site/{slug}"
QUERY_MAX = 200
XML = "application/xml; charset=utf-8"
_URL_SCHEMES = ("https://", "http://", "mailto:")


def _not_found() -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, "no such page")


async def _reader(request: Request, session: UnitOfWork, slug: str, *,
                  preview: bool = False) -> tuple[SiteReader, Links]:
    workspace = await Accounts(session).workspace_by_slug(slug)
    if workspace is None:
        raise _not_found()
    runtime = get_runtime(request)
    reader = SiteReader(session, workspace=workspace, catalogue=request.app.state.catalogue,
                        media_store=MediaStore.under(runtime.settings.data_dir))
    if not preview and not await reader.is_published():
        raise _not_found()
    public_url = runtime.settings.base_url or str(request.base_url)
    return reader, Links.served(public_url=public_url, slug=workspace.slug)


async def link_page(request: Request, session: UnitOfWork, slug: str) -> Response:
    reader, links = await _reader(request, session, slug)
    return HTMLResponse(render.home_page(await reader.home(), links))


async def archive(request: Request, session: UnitOfWork, slug: str, page: int = 1,
                  platform: str | None = None) -> Response:
    reader, links = await _reader(request, session, slug)
    try:
        view = await reader.archive_page(platform=platform, page=page)
    except NoSuchPage:
        raise _not_found() from None
    return HTMLResponse(render.archive_page(view, links))


async def search(request: Request, session: UnitOfWork, slug: str, q: str = "",
                 page: int = 1) -> Response:
    reader, links = await _reader(request, session, slug)
    if len(q) > QUERY_MAX:
        raise HTTPException(status.HTTP_400_BAD_REQUEST,
                            f"search for at most {QUERY_MAX} characters")
    if not q.strip():
        return RedirectResponse(links.href("archive/"), status_code=303)
    try:
        view = await reader.archive_page(query=q, page=page)
    except NoSuchPage:
        raise _not_found() from None
    return HTMLResponse(render.archive_page(view, links))


async def permalink(request: Request, session: UnitOfWork, slug: str, post_id: int) -> Response:
    reader, links = await _reader(request, session, slug)
    post = await reader.post(post_id)
    if post is None:
        raise _not_found()
    return HTMLResponse(render.post_page(post, links, brand=await reader.brand()))


async def media_file(request: Request, session: UnitOfWork, slug: str, name: str) -> Response:
    """A file a public post shows, by its hash; its type checked against its first bytes."""
    reader, _ = await _reader(request, session, slug)
    parsed = media_rules.parse_name(name)
    if parsed is None:
        raise _not_found()
    row = await reader.archive.published_media(parsed[0])
    if row is None or reader.media_name(row) != name:
        raise _not_found()
    path = reader.media_store.path(row.sha256)
    with path.open("rb") as handle:
        served = media_rules.how_to_serve(row.mime_type, handle.read(media_rules.SNIFF_BYTES))
    disposition = "inline" if served.inline else "attachment"
    return FileResponse(path, media_type=served.content_type, headers={
        "Content-Disposition": f'{disposition}; filename="{name}"',
        "Cache-Control": "public, max-age=31536000, immutable"})


def _now(request: Request) -> datetime:
    return get_runtime(request).clock.now()


async def rss(request: Request, session: UnitOfWork, slug: str) -> Response:
    reader, links = await _reader(request, session, slug)
    body = feeds.rss(await reader.brand(), await reader.latest(limit=feeds.FEED_ITEMS), links,
                     now=_now(request))
    return Response(body, media_type="application/rss+xml; charset=utf-8")


async def atom(request: Request, session: UnitOfWork, slug: str) -> Response:
    reader, links = await _reader(request, session, slug)
    body = feeds.atom(await reader.brand(), await reader.latest(limit=feeds.FEED_ITEMS),
                      links, now=_now(request))
    return Response(body, media_type="application/atom+xml; charset=utf-8")


async def podcast(request: Request, session: UnitOfWork, slug: str) -> Response:
    reader, links = await _reader(request, session, slug)
    settings = reader.workspace.settings or {}
    body = feeds.podcast(
        await reader.brand(), await reader.audio_posts(limit=feeds.FEED_ITEMS), links,
        now=_now(request), category=str(settings.get("podcast_category") or "Business"),
        language=str(settings.get("language") or "en"))
    return Response(body, media_type="application/rss+xml; charset=utf-8")


async def sitemap(request: Request, session: UnitOfWork, slug: str) -> Response:
    reader, links = await _reader(request, session, slug)
    entries: list[tuple[str, datetime | None]] = [("", None), ("archive/", None)]
    entries += [(f"archive/{key}/", None) for key in await reader.platforms()]
    async for batch in reader.every_post():
        entries += [(post.path, post.created_at) for post in batch]
    return Response(feeds.sitemap(entries, links), media_type=XML)


# -- the dashboard page ---------------------------------------------------------------------

async def _dashboard(request: Request, access: WorkspaceAccess, *, error: str = "",
                     saved: bool = False, status_code: int = 200) -> Response:
    sites = Sites(access.session, workspace_id=access.workspace.id)
    settings = await sites.get()
    shown = {int(e["channel_id"]): str(e.get("url") or "")
             for e in (settings.channels if settings else []) if isinstance(e, dict)}
    channels = [{"id": c.id, "name": c.name, "platform": c.platform, "handle": c.handle,
                 "shown": c.id in shown, "url": shown.get(c.id, "")}
                for c in await sites.channels()]
    return render_dashboard(request, "site/dashboard.html", {
        **await chrome(access, "site"),
        "settings": settings, "channels": channels, "error": error, "saved": saved,
        "public_path": f"/site/{access.workspace.slug}/",
    }, status_code=status_code)


async def dashboard(request: Request, access: AsViewer, saved: int = 0) -> Response:
    return await _dashboard(request, access, saved=bool(saved))


async def save_dashboard(
    request: Request, access: AsEditor,
    title: Annotated[str, Form()] = "", description: Annotated[str, Form()] = "",
    banner: Annotated[str, Form()] = "", published: Annotated[str, Form()] = "",
) -> Response:
    """Save the site's settings: 303 back to the page, or 400 saying what is wrong."""
    form = await request.form()
    sites = Sites(access.session, workspace_id=access.workspace.id)
    chosen: list[ShownChannel] = []
    for channel in await sites.channels():
        if form.get(f"show_{channel.id}") != "1":
            continue
        url = str(form.get(f"url_{channel.id}") or "").strip()
        if url and not url.lower().startswith(_URL_SCHEMES):
            return await _dashboard(request, access, status_code=400,
                                    error=f"the link for {channel.name} must start with "
                                          "https://, http:// or mailto:")
        chosen.append(ShownChannel(channel_id=channel.id, url=url[:2048]))
    try:
        await sites.save(published=published == "1", title=title.strip(),
                         description=description.strip()[:2000], banner=banner.strip(),
                         channels=chosen, at=_now(request))
    except SiteError as exc:
        return await _dashboard(request, access, error=str(exc), status_code=400)
    return RedirectResponse(f"/w/{access.workspace.slug}/site?saved=1", status_code=303)


async def preview(request: Request, access: AsViewer) -> Response:
    """The link page as visitors would see it, published or not."""
    reader, links = await _reader(request, access.session, access.workspace.slug,
                                  preview=True)
    return HTMLResponse(render.home_page(await reader.home(), links, preview=True))


def install(app: FastAPI) -> None:
    """Add this module's routes to `app`."""
    def add(path: str, endpoint: object, methods: tuple[str, ...] = ("GET",)) -> None:
        app.add_api_route(path, endpoint, methods=list(methods),  # type: ignore[arg-type]
                          include_in_schema=False)

    add("/w/{slug}/site", dashboard)
    add("/w/{slug}/site", save_dashboard, ("POST",))
    add("/w/{slug}/site/preview", preview)
    add(PREFIX + "/", link_page)
    add(PREFIX + "/archive/", archive)
    add(PREFIX + "/archive/page/{page}/", archive)
    add(PREFIX + "/archive/{platform}/", archive)
    add(PREFIX + "/archive/{platform}/page/{page}/", archive)
    add(PREFIX + "/search/", search)
    add(PREFIX + "/posts/{post_id}/", permalink)
    add(PREFIX + "/media/{name}", media_file)
    add(PREFIX + "/feed.xml", rss)
    add(PREFIX + "/atom.xml", atom)
    add(PREFIX + "/podcast.xml", podcast)
    add(PREFIX + "/sitemap.xml", sitemap)
