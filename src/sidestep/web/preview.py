"""The composer's per-channel preview: the post as each channel's platform will get it.

For each chosen channel, `channels.adapt.adapt` runs against the platform's adapter (only
its declarations and `validate` are used; nothing is sent, and the adapter's HTTP client
refuses any request). The result shows the text as cut or split, the link (or why it was
dropped), the image as resized for the platform, the changes in words, and the problems
that stop the post on that platform. Owned channels without an adapter (an email list, the
site) take the post as written.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx

from sidestep.channels.adapt import adapt
from sidestep.channels.base import Adapter, all_adapters
from sidestep.channels.uploads import MediaStore
from sidestep.domain.content import Content, MediaItem, Problem
from sidestep.store.tables import Channel

__all__ = ["ChannelPreview", "PartPreview", "preview_channels"]


@dataclass(frozen=True, slots=True)
class PartPreview:
    text: str
    link: str | None
    image_refs: list[str]
    length: int  # as the platform counts it


@dataclass(frozen=True, slots=True)
class ChannelPreview:
    channel_id: int
    channel_name: str
    platform: str
    platform_name: str
    text_limit: int | None
    parts: list[PartPreview] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    note: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems


_EXTENSION = {"image/jpeg": "jpg", "image/png": "png", "image/gif": "gif", "image/webp": "webp"}


@functools.cache
def _adapter_classes() -> dict[str, type[Adapter]]:
    return all_adapters()


def _refuse(request: httpx.Request) -> httpx.Response:
    raise RuntimeError(f"the preview sends nothing, yet {request.url.host} was asked")


async def preview_channels(channels: Sequence[Channel], content: Content, *,
                           store: MediaStore) -> list[ChannelPreview]:
    """One preview per channel, in the order given. Never raises for any content."""
    previews = []
    async with httpx.AsyncClient(transport=httpx.MockTransport(_refuse),
                                 trust_env=False) as client:
        for channel in channels:
            cls = _adapter_classes().get(channel.platform)
            if cls is None:
                previews.append(_as_written(channel, content))
                continue
            previews.append(await _adapted(channel, cls(client=client), content, store))
    return previews


def _hosted_later(item: MediaItem) -> str:
    """The worker gives every file a signed public URL (`MediaHost`) when it publishes; the
    preview only needs to know one will exist, not write it."""
    return "https://media.invalid/preview"


async def _adapted(channel: Channel, adapter: Adapter, content: Content,
                   store: MediaStore) -> ChannelPreview:
    adaptation = await asyncio.to_thread(adapt, content, adapter, host_media=_hosted_later)
    parts = []
    for part in adaptation.parts:
        # Resized or re-encoded versions are kept too, so the page can show them (the
        # store names files by their hash: the original is not written twice).
        refs = [await store.keep(item.data, extension) for item in part.media
                if (extension := _EXTENSION.get(item.mime_type))]
        parts.append(PartPreview(text=part.text, link=part.link,
                                 image_refs=refs,
                                 length=adapter.text_length(part.text)))
    entry = adapter.entry
    return ChannelPreview(
        channel_id=channel.id, channel_name=channel.name, platform=channel.platform,
        platform_name=entry.name, text_limit=entry.limits.text_max_chars, parts=parts,
        changes=adaptation.changes, problems=adaptation.problems)


def _as_written(channel: Channel, content: Content) -> ChannelPreview:
    return ChannelPreview(
        channel_id=channel.id, channel_name=channel.name, platform=channel.platform,
        platform_name=channel.platform, text_limit=None,
        parts=[PartPreview(text=content.text, link=content.link, image_refs=[],
                           length=len(content.text))],
        note="No platform limits apply here: this channel takes the post as written.")
