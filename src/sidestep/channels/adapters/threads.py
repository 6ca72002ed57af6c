"""Threads through the Threads API (graph.threads.net, v1.0).

Posts are published in two steps (https://developers.facebook.com/docs/threads/posts):

1. `POST /{threads-user-id}/threads` — a container: `media_type=TEXT` + `text` (+
   `link_attachment` for a text post's link preview), `IMAGE` + `image_url`, `VIDEO` +
   `video_url` (+ `alt_text`), or for 2 to 20 items one `is_carousel_item=true` container each,
   then `CAROUSEL` + `children`; `reply_to_id` makes it a reply
   (https://developers.facebook.com/docs/threads/retrieve-and-manage-replies/create-replies);
2. `GET /{container-id}?fields=status,error_message` until `FINISHED` (a carousel's videos
   before the carousel is made), every `poll_interval_s`,
   at most `max_polls` times, then Transient
   (https://developers.facebook.com/docs/threads/troubleshooting);
3. `POST /{threads-user-id}/threads_publish` with `creation_id` — the one call that makes the
   post visible, so only its lost answer is Unknown(maybe_sent=True).

`GET /{threads-media-id}?fields=permalink` gives the URL, `DELETE /{threads-media-id}`
deletes (https://developers.facebook.com/docs/threads/posts/delete-posts), `GET /me?fields=
id,username` checks the credentials (https://developers.facebook.com/docs/threads/threads-profiles).

Text: at most 500 characters, an emoji counted as its UTF-8 bytes; at most 5 distinct links
(text and link attachment together). Media come from public URLs (`MediaItem.url`).

Errors: Graph bodies of type THApiException, read with the Graph table plus: 24 ("the
requested resource does not exist", a container not ready yet) and 9004/2207052 (media not
fetched) are Transient; a container in ERROR is Rejected when its `error_message` says the
media is invalid (`INVALID_*`), else Transient. Threads has no idempotency key and no marker
to look a post up by, so `can_find` is False.
"""

from __future__ import annotations

import re
import unicodedata
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
from sidestep.channels.errors import AuthExpired, PublishError, Rejected, Transient, Unknown
from sidestep.domain.content import Content, MediaItem, MediaKind, Problem
from sidestep.vault import Credentials

ERRORS = table_with({
    (24, None): Rule(Action.TRANSIENT, "the post's media was not ready to publish yet"),
    (9004, 2207052): Rule(Action.TRANSIENT, "Threads could not download the media from its URL;"
                          " check that the archive is online"),
})
# Container `error_message` values that say the media itself is unfit (troubleshooting page).
INVALID_MEDIA = frozenset({
    "INVALID_ASPEC_RATIO", "INVALID_ASPECT_RATIO", "INVALID_BIT_RATE", "INVALID_DURATION",
    "INVALID_FRAME_RATE", "INVALID_AUDIO_CHANNELS", "INVALID_AUDIO_CHANNEL_LAYOUT",
    "INVALID_VIDEO_FORMAT", "INVALID_IMAGE_FORMAT", "FILE_SIZE_TOO_LARGE",
})
LINKS_MAX = 5
_LINK = re.compile(r"(?:https?://|www\.)[^\s]+", re.IGNORECASE)
IMAGE_TYPES = frozenset({"image/jpeg", "image/jpg", "image/png"})
VIDEO_TYPES = frozenset({"video/mp4", "video/quicktime"})
NO_URL = ("Threads fetches media from a public URL; this image has none — publish the archive"
          " first")


class _Created(BaseModel):
    id: str


class _Container(BaseModel):
    id: str
    status: str = ""
    error_message: str | None = None


class _Media(BaseModel):
    id: str
    permalink: str | None = None


class _User(BaseModel):
    id: str
    username: str = ""


def _is_emoji(ch: str) -> bool:
    cp = ord(ch)
    return (cp >= 0x1F000 or 0x2600 <= cp <= 0x27BF or 0xFE00 <= cp <= 0xFE0F or cp == 0x200D
            or unicodedata.category(ch) == "So")


class ThreadsAdapter(Adapter):
    """Publishes text, image, video and carousel posts (and replies) to one Threads profile."""

    platform: ClassVar[str] = "threads"
    credential_fields: ClassVar[tuple[str, ...]] = ("access_token", "threads_user_id")
    default_timeout_s: ClassVar[float] = 30.0
    default_poll_interval_s: ClassVar[float] = 5.0
    max_polls: ClassVar[int] = 60
    can_find: ClassVar[bool] = False

    @property
    def api(self) -> GraphApi:
        return GraphApi(self.http, name=self.entry.name, base_url=self.entry.api_base_urls[0],
                        clock=self.clock, table=ERRORS)

    def text_length(self, text: str) -> int:
        """Threads' count: one per character, an emoji as its UTF-8 bytes."""
        return sum(len(ch.encode()) if _is_emoji(ch) else 1 for ch in text)

    def platform_problems(self, content: Content) -> list[Problem]:
        problems: list[Problem] = []
        text, limit = _text(content), self.entry.limits.text_max_chars
        if text != content.text and self.text_length(text) > limit >= self.text_length(
                content.text):
            problems.append(Problem("too_long", f"With its link the text counts"
                                    f" {self.text_length(text):,} characters; Threads allows"
                                    f" {limit:,}."))
        links = {m.rstrip(".,;:!?)").lower() for m in _LINK.findall(content.text)}
        if content.link:
            links.add(content.link.lower())
        if len(links) > LINKS_MAX:
            problems.append(Problem("too_many_links", f"Threads takes at most {LINKS_MAX} links"
                                    f" in a post; this one has {len(links)}."))
        for item in content.media:
            allowed = {MediaKind.IMAGE: (IMAGE_TYPES, "JPEG or PNG images"),
                       MediaKind.VIDEO: (VIDEO_TYPES, "MP4 or MOV videos")}.get(item.kind)
            if allowed is not None and item.mime_type.lower() not in allowed[0]:
                problems.append(Problem("media_kind", f"Threads takes {allowed[1]};"
                                        f" {item.filename} is {item.mime_type}."))
        return problems

    async def publish(self, content: Content, credentials: Credentials, *,
                      idempotency_key: str) -> Published:
        """Publish a post (a reply when `content.reply_to` is set); return its id and URL.

        Raises AuthExpired, Rejected (invalid content, media without a URL), RateLimited,
        Transient (media not fetched or not processed in time), PlatformOutage, or
        Unknown(maybe_sent=True) when `threads_publish` went unanswered.
        """
        creds = need(credentials, self.credential_fields, self.entry.name)
        refuse_invalid(self, content)
        if any(not item.url for item in content.media):
            raise Rejected(NO_URL)
        token, user = creds["access_token"], creds["threads_user_id"]
        container = await self._container(content, token, user)
        await self._wait_until_finished(container, token)
        body = await self.api.call("POST", f"{node(user)}/threads_publish", token=token,
                                   changes=True, data={"creation_id": container})
        media_id = self.api.parse(_Created, body, changes=True).id
        return Published(external_id=media_id, url=await self._permalink(media_id, token))

    async def delete(self, external_id: str, credentials: Credentials) -> None:
        """Delete a post; one that is gone already counts as deleted.

        Raises AuthExpired, RateLimited (100 deletes a day), Transient, PlatformOutage or
        Unknown.
        """
        token = need(credentials, ("access_token",), self.entry.name)["access_token"]
        await self.api.call("DELETE", node(external_id), token=token, changes=True,
                            absent_ok=True)

    async def check_credentials(self, credentials: Credentials) -> AccountInfo:
        """The Threads profile the token opens; AuthExpired if it fails or opens another."""
        creds = need(credentials, self.credential_fields, self.entry.name)
        body = await self.api.call("GET", "me", token=creds["access_token"], changes=False,
                                   params={"fields": "id,username"})
        user = self.api.parse(_User, body, changes=False)
        if user.id != creds["threads_user_id"]:
            raise AuthExpired(f"the token opens the Threads profile {user.username or user.id},"
                              f" not {creds['threads_user_id']}; reconnect the channel")
        return AccountInfo(account_id=user.id, name=user.username)

    async def _container(self, content: Content, token: str, user: str) -> str:
        """The id of the container to publish (a carousel's after its items')."""
        fields = {"text": _text(content), "reply_to_id": content.reply_to or ""}
        if not content.media:
            fields.update(media_type="TEXT", link_attachment=content.link or "")
        elif len(content.media) == 1:
            fields.update(_item_fields(content.media[0], in_carousel=False))
        else:
            children = []
            for item in content.media:
                child = await self._create(user, token, _item_fields(item, in_carousel=True))
                if item.kind is MediaKind.VIDEO:  # a carousel takes only finished items
                    await self._wait_until_finished(child, token)
                children.append(child)
            fields.update(media_type="CAROUSEL", children=",".join(children))
        return await self._create(user, token, fields)

    async def _create(self, user: str, token: str, fields: dict[str, str]) -> str:
        # A container is invisible until published: a lost answer is not a lost post.
        body = await self.api.call("POST", f"{node(user)}/threads", token=token, changes=False,
                                   data={k: v for k, v in fields.items() if v})
        return self.api.parse(_Created, body, changes=False).id

    async def _wait_until_finished(self, container: str, token: str) -> None:
        async def finished() -> bool | None:
            body = await self.api.call("GET", node(container), token=token, changes=False,
                                       params={"fields": "status,error_message"})
            state = self.api.parse(_Container, body, changes=False)
            if state.status == "PUBLISHED":
                raise Unknown(f"{self.entry.name}: container {container} is published already",
                              maybe_sent=True)
            if state.status in ("ERROR", "EXPIRED"):
                reason = state.error_message or state.status
                message = f"{self.entry.name}: the media could not be processed ({reason})"
                if reason in INVALID_MEDIA:
                    raise Rejected(message)
                raise Transient(message)
            return True if state.status == "FINISHED" else None

        await self.poll(finished, what=f"container {container}")

    async def _permalink(self, media_id: str, token: str) -> str | None:
        # The post exists now: a failed look-up must not turn success into an error.
        try:
            body = await self.api.call("GET", node(media_id), token=token, changes=False,
                                       params={"fields": "permalink"})
        except PublishError:
            return None
        return self.api.parse(_Media, body, changes=False).permalink


def _text(content: Content) -> str:
    """The text sent: a text post's link goes in `link_attachment`; a media post's link is
    added to the text, unless the text holds it already."""
    text = content.text.strip()
    if content.media and content.link and content.link not in text:
        return f"{text}\n\n{content.link}" if text else content.link
    return text


def _item_fields(item: MediaItem, *, in_carousel: bool) -> dict[str, str]:
    url = item.url or ""
    if item.kind is MediaKind.VIDEO:
        fields = {"media_type": "VIDEO", "video_url": url}
    else:
        fields = {"media_type": "IMAGE", "image_url": url}
    fields["alt_text"] = item.alt
    if in_carousel:
        fields["is_carousel_item"] = "true"
    return fields
