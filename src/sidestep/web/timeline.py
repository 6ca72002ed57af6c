"""A post's delivery timeline (`/w/{slug}/posts/{post_id}`): per channel, every attempt,
hold, release, reroute and failure, and the published post's address.

A post of another workspace is "not found", as is one that does not exist.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from sidestep.channels.uploads import MediaStore
from sidestep.store.post_history import timeline
from sidestep.store.posts import Posts
from sidestep.store.tables import Channel
from sidestep.web.deps import AsViewer, get_runtime
from sidestep.web.pages import chrome
from sidestep.web.posting import workspace_zone
from sidestep.web.views import render

router = APIRouter(include_in_schema=False)


@router.get("/w/{slug}/posts/{post_id}")
async def timeline_page(request: Request, access: AsViewer, post_id: int,
                        created: int | None = None) -> Response:
    post = await Posts(access.session, workspace_id=access.workspace.id).get(post_id)
    if post is None:
        raise HTTPException(404, "no such post")
    history = await timeline(access.session, post, workspace_id=access.workspace.id)
    zone = workspace_zone(access.workspace.settings)
    fallbacks = [await access.session.get(Channel, i) for i in post.fallback_channel_ids]
    store = MediaStore(get_runtime(request).settings.data_dir, workspace_id=access.workspace.id)
    images = [m for m in post.media if store.path(str(m.get("ref", ""))) is not None]
    return render(request, "timeline.html", {
        **await chrome(access, "posts"),
        "history": history, "post": post, "zone": zone, "images": images,
        "local": lambda moment: moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z"),
        "local_due": post.due_at.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
        "fallbacks": [c.name for c in fallbacks
                      if c is not None and c.workspace_id == access.workspace.id],
        "notice": f"Post #{post.id} scheduled." if created else None,
    })
