"""Facebook Pages through the Graph API with a Page access token.

Endpoints (https://developers.facebook.com/docs/pages-api/posts):

- text and link posts: `POST /{page-id}/feed` with `message`, `link`
  (https://developers.facebook.com/docs/graph-api/reference/page/feed/);
- one photo: `POST /{page-id}/photos` with the file as multipart `source`, `message`, and
  `alt_text_custom` when the image has alt text; the answer's `post_id` is the post;
- several photos: each `POST /{page-id}/photos` with `published=false`, then
  `POST /{page-id}/feed` with `attached_media[i]={"media_fbid": ...}`
  (https://developers.facebook.com/docs/graph-api/reference/page/photos/);
- `DELETE /{post-id}` and `GET /me?fields=id,name` with the Page token
  (https://developers.facebook.com/docs/graph-api/reference/post/).

Errors (the Graph table in `_graph`, plus): 506 duplicate and 1609005 link scraping error
are Rejected; 324 "missing or invalid image file" is Transient, because validate() has
checked each photo's type and size first, so the platform's media service is the likelier
culprit (images failed while text worked on 2021-03-19).

Graph refuses "the same post twice in a row" with 506; Sidestep reads it as Rejected, not
as Published, because the answer names no post to return and the identical post may have
been made by hand, but the reason says the post is most likely on the Page already, so a
person can check before sending anything again.

Not done here: videos (they go to `graph-video.facebook.com/{page-id}/videos`; validate()
says so), and `find`: Pages have no idempotency key and no marker we could look up.
"""

from __future__ import annotations

import json
from typing import ClassVar

from pydantic import BaseModel

from sidestep.channels.adapters._graph import (
    Action,
    GraphApi,
    Rule,
    need,
    node,
    refuse_invalid,
    table_with,
)
from sidestep.channels.base import AccountInfo, Adapter, Published
from sidestep.channels.errors import AuthExpired
from sidestep.domain.content import Content, MediaItem, MediaKind, Problem
from sidestep.vault import Credentials

ERRORS = table_with({
    (506, None): Rule(Action.REJECTED, "Facebook refuses the same post twice in a row on a"
                      " Page; it is most likely on the Page already (check before sending it"
                      " again)"),
    # validate() has checked the file's type and size, so Graph's "missing or invalid image
    # file" for it is read as Facebook's media service failing (as in 2021-03-19).
    (324, None): Rule(Action.TRANSIENT, "Facebook could not take the image file just now"),
    (1609005, None): Rule(Action.REJECTED, "Facebook could not read the page the link points"
                          " to"),
})
PHOTO_MAX_BYTES = 4 * 1024 * 1024  # "less than 4 MB" (Pages API, photos)
PHOTO_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/tiff", "image/heif",
                         "image/heic", "image/webp", "image/bmp"})


class _Created(BaseModel):
    id: str


class _PhotoPost(BaseModel):
    id: str
    post_id: str


class _Account(BaseModel):
    id: str
    name: str = ""


class FacebookAdapter(Adapter):
    """Posts to one Facebook Page with its Page access token."""

    platform: ClassVar[str] = "facebook"
    credential_fields: ClassVar[tuple[str, ...]] = ("access_token", "page_id")
    default_timeout_s: ClassVar[float] = 60.0  # photo uploads
    can_find: ClassVar[bool] = False

    @property
    def api(self) -> GraphApi:
        return GraphApi(self.http, name=self.entry.name, base_url=self.entry.api_base_urls[0],
                        clock=self.clock, table=ERRORS)

    def platform_problems(self, content: Content) -> list[Problem]:
        problems: list[Problem] = []
        for item in content.media:
            if item.kind is MediaKind.VIDEO:
                problems.append(Problem("media_kind", f"Sidestep cannot post videos to Facebook"
                                        f" Pages yet ({item.filename}); post images instead."))
            elif item.kind is MediaKind.IMAGE:
                if item.mime_type.lower() not in PHOTO_TYPES:
                    problems.append(Problem(
                        "media_kind", f"Facebook takes JPEG, PNG, GIF, TIFF, HEIF or WebP"
                        f" photos; {item.filename} is {item.mime_type}."))
                if item.size_bytes >= PHOTO_MAX_BYTES:
                    problems.append(Problem(
                        "media_too_large", f"{item.filename} is {item.size_bytes:,} bytes;"
                        " Facebook takes photos under 4 MB."))
        if content.reply_to:
            problems.append(Problem("no_replies", "Facebook Pages do not take posts as"
                                    " replies in a thread; post it on its own."))
        return problems

    async def publish(self, content: Content, credentials: Credentials, *,
                      idempotency_key: str) -> Published:
        """Publish to the Page; return the post's id (`{page-id}_{post-id}`) and permalink.

        Raises AuthExpired (missing settings, bad token), Rejected (invalid content, 506
        duplicate), RateLimited, Transient, PlatformOutage, or Unknown(maybe_sent=True) when
        the answer to the publishing call was lost.
        """
        creds = need(credentials, self.credential_fields, self.entry.name)
        refuse_invalid(self, content)
        token, page = creds["access_token"], creds["page_id"]
        photos = [m for m in content.media if m.kind is MediaKind.IMAGE]
        message = _message(content, with_link=bool(photos))
        if len(photos) == 1:
            body = await self.api.call(
                "POST", f"{node(page)}/photos", token=token, changes=True,
                data=_photo_fields(photos[0], message=message, published=True),
                files={"source": _file(photos[0])})
            post_id = self.api.parse(_PhotoPost, body, changes=True).post_id
        else:
            fields: dict[str, str] = {}
            if message:
                fields["message"] = message
            if not photos and content.link:
                fields["link"] = content.link
            for index, photo in enumerate(photos):
                # An unpublished photo is invisible: a lost answer leaves only an orphan.
                body = await self.api.call(
                    "POST", f"{node(page)}/photos", token=token, changes=False,
                    data=_photo_fields(photo, message="", published=False),
                    files={"source": _file(photo)})
                photo_id = self.api.parse(_Created, body, changes=False).id
                fields[f"attached_media[{index}]"] = json.dumps({"media_fbid": photo_id})
            body = await self.api.call("POST", f"{node(page)}/feed", token=token, changes=True,
                                       data=fields)
            post_id = self.api.parse(_Created, body, changes=True).id
        return Published(external_id=post_id, url=_permalink(post_id))

    async def delete(self, external_id: str, credentials: Credentials) -> None:
        """Delete a Page post; a post that is gone already counts as deleted.

        Raises AuthExpired, RateLimited, Transient, PlatformOutage or Unknown.
        """
        token = need(credentials, ("access_token",), self.entry.name)["access_token"]
        await self.api.call("DELETE", node(external_id), token=token, changes=True,
                            absent_ok=True)

    async def check_credentials(self, credentials: Credentials) -> AccountInfo:
        """The Page the token opens; AuthExpired if the token fails or opens another one."""
        creds = need(credentials, self.credential_fields, self.entry.name)
        body = await self.api.call("GET", "me", token=creds["access_token"], changes=False,
                                   params={"fields": "id,name"})
        account = self.api.parse(_Account, body, changes=False)
        if account.id != creds["page_id"]:
            raise AuthExpired(f"the token opens {account.name or 'another account'}"
                              f" ({account.id}), not the Page {creds['page_id']}; reconnect"
                              " the channel with a Page access token of that Page")
        return AccountInfo(account_id=account.id, name=account.name)


def _message(content: Content, *, with_link: bool) -> str:
    """The post's text; with photos the link goes into the text (a photo post has no link
    preview), unless the text already holds it."""
    text = content.text.strip()
    if with_link and content.link and content.link not in text:
        text = f"{text}\n\n{content.link}" if text else content.link
    return text


def _photo_fields(photo: MediaItem, *, message: str, published: bool) -> dict[str, str]:
    fields = {"published": "true" if published else "false"}
    if message:
        fields["message"] = message
    if photo.alt:
        fields["alt_text_custom"] = photo.alt
    return fields


def _file(item: MediaItem) -> tuple[str, bytes, str]:
    return (item.filename, item.data, item.mime_type)


def _permalink(post_id: str) -> str:
    page, _, number = post_id.partition("_")
    return f"https://www.facebook.com/{page}/posts/{number or page}"
