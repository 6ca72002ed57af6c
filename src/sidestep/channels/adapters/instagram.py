"""Instagram professional accounts through the Instagram API with Facebook Login.

Instagram fetches every image and video from a public URL (`MediaItem.url`); posts are
published in two steps (https://developers.facebook.com/docs/instagram-platform/content-publishing):

1. `GET /{ig-user-id}/content_publishing_limit?fields=quota_usage,config` — 100 API posts per
   moving 24 hours; at the quota we raise RateLimited instead of spending calls
   (https://developers.facebook.com/docs/instagram-platform/instagram-graph-api/reference/ig-user/content_publishing_limit);
2. `POST /{ig-user-id}/media` — a container: `image_url` (+ `alt_text`), `media_type=REELS` +
   `video_url`, or for 2 to 10 items one `is_carousel_item=true` container each, then
   `media_type=CAROUSEL` + `children`; `caption` on the top container
   (https://developers.facebook.com/docs/instagram-platform/instagram-graph-api/reference/ig-user/media);
3. `GET /{container-id}?fields=status_code,status` until `FINISHED` (a carousel's videos
   before the carousel is made), every `poll_interval_s`,
   at most `max_polls` times, then Transient
   (https://developers.facebook.com/docs/instagram-platform/instagram-graph-api/reference/ig-container);
4. `POST /{ig-user-id}/media_publish` with `creation_id` — the only call that makes the post
   visible, so only its lost answer is Unknown(maybe_sent=True)
   (https://developers.facebook.com/docs/instagram-platform/instagram-graph-api/reference/ig-user/media_publish).

`GET /{ig-media-id}?fields=permalink` gives the post's URL, `GET /{ig-user-id}?fields=id,username`
checks the credentials. Instagram's publishing API offers no delete: `delete` is Rejected.

Errors (https://developers.facebook.com/docs/instagram-platform/instagram-graph-api/reference/error-codes):
the Graph table plus the rows of `ERRORS` below. A media fetch that failed (9004/2207052), a
container that is not ready (9007), expired (-2) or failed to process (status ERROR) is
Transient: a retry makes new containers. Format, size, ratio and caption errors are Rejected;
the daily publishing limit (9/2207042) is RateLimited. Instagram has no idempotency key and
no marker to look a post up by, so `can_find` is False.
"""

from __future__ import annotations

import re
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
from sidestep.channels.errors import (
    PublishError,
    RateLimited,
    Rejected,
    Transient,
    Unknown,
)
from sidestep.domain.content import Content, MediaItem, MediaKind, Problem
from sidestep.vault import Credentials

_AGAIN = Rule(Action.TRANSIENT, "Instagram could not finish the media this time")
ERRORS = table_with({
    (-1, None): Rule(Action.TRANSIENT, "Instagram had a server error"),
    (-2, 2207003): Rule(Action.TRANSIENT, "Instagram took too long to download the media"),
    (-2, 2207020): Rule(Action.TRANSIENT, "the prepared media expired before publishing"),
    (4, 2207051): Rule(Action.REJECTED, "Instagram restricted this publishing action as"
                       " possible spam"),
    (9, None): Rule(Action.RATE_LIMITED, "the account reached Instagram's limit of API posts"
                    " per 24 hours", wait_s=3600.0),
    (24, None): _AGAIN,
    (25, 2207050): Rule(Action.AUTH, "the Instagram account is inactive or restricted; log in"
                        " to the Instagram app to resolve it"),
    (36000, 2207004): Rule(Action.REJECTED, "an image is too large for Instagram (8 MB)"),
    (36001, 2207005): Rule(Action.REJECTED, "Instagram does not take this image format (JPEG"
                           " only)"),
    (36003, 2207009): Rule(Action.REJECTED, "an image's aspect ratio is outside what"
                           " Instagram takes (4:5 to 1.91:1)"),
    (36004, 2207010): Rule(Action.REJECTED, "the caption is too long or has too many hashtags"
                           " or mentions"),
    (9004, 2207052): Rule(Action.TRANSIENT, "Instagram could not download the media from its"
                          " URL; check that the archive is online"),
    (9007, 2207027): Rule(Action.TRANSIENT, "the media was not ready to publish"),
    (100, 2207023): Rule(Action.REJECTED, "Instagram does not know this media type"),
    (100, 2207028): Rule(Action.REJECTED, "a carousel needs 2 to 10 photos or videos"),
    (352, 2207026): Rule(Action.REJECTED, "Instagram does not take this video format (MP4 or"
                         " MOV)"),
})
# Container status ERROR names a subcode in its text ("... failed with error code 2207052").
BY_SUBCODE = {sub: rule for (_, sub), rule in ERRORS.items() if sub is not None}
_STATUS_CODE = re.compile(r"error code (\d+)")
_HASHTAG, _MENTION = re.compile(r"(?<!\w)#\w"), re.compile(r"(?<!\w)@\w")
HASHTAGS_MAX, MENTIONS_MAX = 30, 20
IMAGE_TYPES = frozenset({"image/jpeg", "image/jpg"})
VIDEO_TYPES = frozenset({"video/mp4", "video/quicktime"})
QUOTA_WAIT_S = 3600.0  # the moving window does not say when its oldest post leaves it
NO_URL = ("Instagram fetches media from a public URL; this image has none — publish the"
          " archive first")


class _Created(BaseModel):
    id: str


class _Container(BaseModel):
    id: str
    status_code: str = ""
    status: str = ""


class _QuotaConfig(BaseModel):
    quota_total: int
    quota_duration: int = 86_400


class _Quota(BaseModel):
    quota_usage: int = 0
    config: _QuotaConfig


class _Quotas(BaseModel):
    data: list[_Quota]


class _Media(BaseModel):
    id: str
    permalink: str | None = None


class _User(BaseModel):
    id: str
    username: str = ""


class InstagramAdapter(Adapter):
    """Publishes images, reels and carousels to one Instagram professional account."""

    platform: ClassVar[str] = "instagram"
    credential_fields: ClassVar[tuple[str, ...]] = ("access_token", "ig_user_id")
    default_timeout_s: ClassVar[float] = 30.0
    default_poll_interval_s: ClassVar[float] = 5.0
    max_polls: ClassVar[int] = 60  # five minutes for a reel to process
    can_find: ClassVar[bool] = False

    @property
    def api(self) -> GraphApi:
        return GraphApi(self.http, name=self.entry.name, base_url=self.entry.api_base_urls[0],
                        clock=self.clock, table=ERRORS)

    def platform_problems(self, content: Content) -> list[Problem]:
        problems: list[Problem] = []
        if not content.media:
            problems.append(Problem("media_required", "Instagram posts need at least one image"
                                    " or video."))
        caption = _caption(content)
        if caption != content.text and len(caption) > self.entry.limits.text_max_chars >= len(
                content.text):
            problems.append(Problem("too_long", f"With its link the caption has {len(caption):,}"
                                    f" characters; Instagram allows"
                                    f" {self.entry.limits.text_max_chars:,}."))
        for pattern, most, what in ((_HASHTAG, HASHTAGS_MAX, "hashtags"),
                                    (_MENTION, MENTIONS_MAX, "@-mentions")):
            found = len(pattern.findall(caption))
            if found > most:
                problems.append(Problem("too_many_tags", f"Instagram allows {most} {what} in a"
                                        f" caption; this one has {found}."))
        for item in content.media:
            allowed = {MediaKind.IMAGE: (IMAGE_TYPES, "JPEG images"),
                       MediaKind.VIDEO: (VIDEO_TYPES, "MP4 or MOV videos")}.get(item.kind)
            if allowed is not None and item.mime_type.lower() not in allowed[0]:
                problems.append(Problem("media_kind", f"Instagram takes {allowed[1]};"
                                        f" {item.filename} is {item.mime_type}."))
        if content.reply_to:
            problems.append(Problem("no_replies", "Instagram posts cannot reply to other posts;"
                                    " post it on its own."))
        return problems

    async def publish(self, content: Content, credentials: Credentials, *,
                      idempotency_key: str) -> Published:
        """Publish an image, a reel or a carousel; return the media id and its permalink.

        Raises AuthExpired, Rejected (invalid content, media without a URL), RateLimited (the
        24-hour quota, throttling), Transient (media not fetched or not processed in time),
        PlatformOutage, or Unknown(maybe_sent=True) when `media_publish` went unanswered.
        """
        creds = need(credentials, self.credential_fields, self.entry.name)
        refuse_invalid(self, content)
        if any(not item.url for item in content.media):
            raise Rejected(NO_URL)
        token, user = creds["access_token"], creds["ig_user_id"]
        await self._check_quota(token, user)
        container = await self._container(content, token, user)
        await self._wait_until_finished(container, token)
        body = await self.api.call("POST", f"{node(user)}/media_publish", token=token,
                                   changes=True, data={"creation_id": container})
        media_id = self.api.parse(_Created, body, changes=True).id
        return Published(external_id=media_id, url=await self._permalink(media_id, token))

    async def delete(self, external_id: str, credentials: Credentials) -> None:
        """Always Rejected: Instagram's publishing API cannot delete a post."""
        raise Rejected("Instagram's API cannot delete posts; delete it in the Instagram app.")

    async def check_credentials(self, credentials: Credentials) -> AccountInfo:
        """The Instagram account the token opens; AuthExpired if it does not."""
        creds = need(credentials, self.credential_fields, self.entry.name)
        body = await self.api.call("GET", node(creds["ig_user_id"]), token=creds["access_token"],
                                   changes=False, params={"fields": "id,username"})
        user = self.api.parse(_User, body, changes=False)
        return AccountInfo(account_id=user.id, name=user.username)

    async def _check_quota(self, token: str, user: str) -> None:
        body = await self.api.call("GET", f"{node(user)}/content_publishing_limit", token=token,
                                   changes=False, params={"fields": "quota_usage,config"})
        quotas = self.api.parse(_Quotas, body, changes=False).data
        if quotas and quotas[0].quota_usage >= quotas[0].config.quota_total:
            quota = quotas[0]
            raise RateLimited(f"{self.entry.name}: the account has published"
                              f" {quota.quota_usage} of its {quota.config.quota_total} API posts"
                              " in the last 24 hours", retry_after_s=QUOTA_WAIT_S)

    async def _container(self, content: Content, token: str, user: str) -> str:
        """The id of the container to publish (a carousel's after its items')."""
        caption = _caption(content)
        if len(content.media) == 1:
            fields = _item_fields(content.media[0], in_carousel=False)
            return await self._create(user, token, {**fields, "caption": caption})
        children = []
        for item in content.media:
            child = await self._create(user, token, _item_fields(item, in_carousel=True))
            if item.kind is MediaKind.VIDEO:  # a carousel takes only finished items
                await self._wait_until_finished(child, token)
            children.append(child)
        return await self._create(user, token, {"media_type": "CAROUSEL", "caption": caption,
                                                "children": ",".join(children)})

    async def _create(self, user: str, token: str, fields: dict[str, str]) -> str:
        # A container is invisible until published: a lost answer is not a lost post.
        body = await self.api.call("POST", f"{node(user)}/media", token=token, changes=False,
                                   data={k: v for k, v in fields.items() if v})
        return self.api.parse(_Created, body, changes=False).id

    async def _wait_until_finished(self, container: str, token: str) -> None:
        async def finished() -> bool | None:
            body = await self.api.call("GET", node(container), token=token, changes=False,
                                       params={"fields": "status_code,status"})
            state = self.api.parse(_Container, body, changes=False)
            if state.status_code == "PUBLISHED":
                raise Unknown(f"{self.entry.name}: container {container} is published already",
                              maybe_sent=True)
            if state.status_code in ("ERROR", "EXPIRED"):
                raise _status_error(self.entry.name, state)
            return True if state.status_code == "FINISHED" else None

        await self.poll(finished, what=f"container {container}")

    async def _permalink(self, media_id: str, token: str) -> str | None:
        # The post exists now: a failed look-up must not turn success into an error.
        try:
            body = await self.api.call("GET", node(media_id), token=token, changes=False,
                                       params={"fields": "permalink"})
        except PublishError:
            return None
        return self.api.parse(_Media, body, changes=False).permalink if body else None


def _caption(content: Content) -> str:
    """The caption: the text, and the link when the text does not hold it (Instagram does
    not make it clickable, but the audience should still see where to go)."""
    text = content.text.strip()
    if content.link and content.link not in text:
        return f"{text}\n\n{content.link}" if text else content.link
    return text


def _item_fields(item: MediaItem, *, in_carousel: bool) -> dict[str, str]:
    url = item.url or ""
    if item.kind is MediaKind.VIDEO:
        kind = "VIDEO" if in_carousel else "REELS"
        fields = {"media_type": kind, "video_url": url}
    else:
        fields = {"image_url": url, "alt_text": item.alt}
    if in_carousel:
        fields["is_carousel_item"] = "true"
    return fields


def _status_error(name: str, state: _Container) -> Transient | Rejected:
    """A container that ended in ERROR or EXPIRED, read by the subcode its status names."""
    found = _STATUS_CODE.search(state.status)
    rule = BY_SUBCODE.get(int(found.group(1))) if found else None
    why = rule.why if rule else "the media could not be processed"
    message = f"{name}: {why}: {state.status_code} ({state.status})"
    if rule is not None and rule.action is Action.REJECTED:
        return Rejected(message)
    return Transient(message)
