"""Adapt one post to one channel: its length limit, its links, its media limits.

`adapt(content, adapter)` returns an `Adaptation`: the post(s) to publish, what was changed
and why (for the person who wrote the post), and the problems that make the post impossible
on this platform. The rules, in order:

1. The channel's variant (`Post.variants` entry for it: "text", "link", "title") replaces the
   post's own fields.
2. Where links are not clickable (catalogue `links_clickable = false`: Instagram captions,
   TikTok, Snapchat), URLs are removed from the text and the link is dropped, with a note.
3. Images are made to fit `image_max_bytes` and the adapter's `image_max_side_px` (default
   4096) by `channels.images`; unreadable or hostile images are problems.
4. More media than `max_media_count`: spread over a thread where the platform has threads,
   else only the first ones are kept.
5. Text that fits is kept. What fits is asked of `adapter.validate` (problems coded
   "too_long"), so the platform's own count (`text_length`) and rules (a shorter caption
   beside media, the link sent inside the text) decide. Longer text becomes a thread where
   the platform has threads (`supports_threads`): parts cut at sentence, else word,
   boundaries, each numbered " 1/3". Elsewhere it is shortened at a word boundary with "…"
   and the permalink, so the full post stays reachable. Cuts never fall inside a URL, a
   @mention, a #hashtag or a grapheme cluster (an emoji, a letter with its accents), and
   never inside a surrogate pair.
6. Every part is checked with `adapter.validate`; its problems join the adaptation's.

Thread parts are returned with `reply_to=None`: they must be published in order, each part's
`reply_to` set by the dispatcher to the external id the previous part got. The link and the
title go on the first part only.

`adapt` is synchronous CPU work (image re-encoding): call it with `asyncio.to_thread` from
the event loop.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sidestep.channels.base import Adapter
from sidestep.channels.images import (
    DEFAULT_MAX_SIDE_PX,
    FittedImage,
    ImageError,
    UnreadableImage,
    fit_image,
)
from sidestep.channels.textcut import URL, Unsplittable, join, pack, take, words
from sidestep.domain.content import Content, MediaItem, MediaKind, Problem

__all__ = ["ELLIPSIS", "Adaptation", "adapt", "numbering"]

ELLIPSIS = "…"
VARIANT_FIELDS = ("text", "link", "title")



@dataclass(frozen=True, slots=True)
class Adaptation:
    """`parts`: one post, or a thread's posts in publishing order. `changes`: what was done,
    in words for the author. `problems`: why the post cannot go as it is (empty when it can)."""

    parts: list[Content]
    changes: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def numbering(index: int, total: int) -> str:
    """The suffix of thread part `index` (1-based) of `total`: " 1/3"."""
    return f" {index}/{total}"


def adapt(content: Content, adapter: Adapter, *, variant: Mapping[str, Any] | None = None,
          permalink: str | None = None,
          host_media: Callable[[MediaItem], str] | None = None) -> Adaptation:
    """`content` adapted to `adapter`'s platform (see the module docstring for the rules).

    `variant` is this channel's entry of `Post.variants`; `permalink` the full post's public
    address (the owned site's archive page), appended when text must be shortened. Never
    raises for any content: what cannot be done is a `Problem` in the result. `host_media`
    gives a file without a public URL one (the worker's `MediaHost`), for platforms that
    fetch media themselves; a preview passes none and shows what would be missing.
    """
    limits = adapter.entry.limits
    changes: list[str] = []
    problems: list[Problem] = []
    content = _apply_variant(content, variant, changes, problems)
    if not limits.links_clickable:
        content = _strip_links(content, adapter.entry.name, changes)
        permalink = None
    media = _fit_media(content.media, adapter, changes, problems)
    if host_media is not None:
        media = tuple(m if m.url else dataclasses.replace(m, url=host_media(m)) for m in media)
    plan = _Plan(adapter, content, _media_batches(media, adapter, changes))
    texts: list[str] | None = [content.text]
    if len(plan.batches) > 1 or not plan.fits(0, content.text):
        try:
            texts = _fit_text(plan, permalink=permalink, changes=changes)
        except Unsplittable as exc:
            texts = None
            shown = exc.unit if len(exc.unit) <= 40 else exc.unit[:39] + ELLIPSIS
            problems.append(Problem("too_long", f"The {exc.kind} {shown!r} is longer than one "
                                    f"{adapter.entry.name} post can hold and cannot be cut: "
                                    "shorten it."))
    if texts is None:  # impossible: show the post as it is, with the reason
        parts = [dataclasses.replace(content, media=media, reply_to=None)]
    else:
        texts += [""] * (len(plan.batches) - len(texts))  # no media batch is ever dropped
        parts = [plan.part(index, text) for index, text in enumerate(texts)]
    for part in parts:
        for problem in adapter.validate(part):
            if texts is None and problem.code == "too_long":
                continue  # already explained, better
            if problem not in problems:
                problems.append(problem)
    return Adaptation(parts=parts, changes=changes, problems=problems)


@dataclass(frozen=True, slots=True)
class _Plan:
    """The post once variant, links and media are settled; builds and measures its parts."""

    adapter: Adapter
    content: Content
    batches: list[tuple[MediaItem, ...]]

    def part(self, index: int, text: str) -> Content:
        """Part `index` (0-based): the link and title on the first, media by batch."""
        first = index == 0
        return Content(text=text, link=self.content.link if first else None,
                       media=self.batches[index] if index < len(self.batches) else (),
                       title=self.content.title if first else "", reply_to=None)

    def fits(self, index: int, text: str) -> bool:
        """Whether the platform takes part `index` with `text` as far as length goes.

        Asked of `validate` itself (problems coded "too_long"), so each platform's own rules
        count: a shorter caption with media, the link sent inside the text, and so on."""
        return not any(p.code == "too_long" for p in self.adapter.validate(self.part(index, text)))


def _apply_variant(content: Content, variant: Mapping[str, Any] | None, changes: list[str],
                   problems: list[Problem]) -> Content:
    if not variant:
        return content
    replaced: dict[str, str | None] = {}
    for key in VARIANT_FIELDS:
        if key not in variant:
            continue
        value = variant[key]
        if key == "link" and value in (None, ""):
            replaced["link"] = None
        elif isinstance(value, str):
            replaced[key] = value
        else:
            problems.append(Problem("variant", f"This channel's own {key} is not text "
                                    f"({type(value).__name__}); edit the post's variant."))
    if replaced:
        changes.append("used this channel's own " + " and ".join(replaced))
    return dataclasses.replace(content, **replaced)  # type: ignore[arg-type]


def _strip_links(content: Content, platform_name: str, changes: list[str]) -> Content:
    text = URL.sub("", content.text)
    if text == content.text and content.link is None:
        return content
    # Close the gaps the URLs left, but keep line breaks.
    text = re.sub(r"[ \t]{2,}", " ", text)
    text = re.sub(r"[ \t]+(?=\n)|(?<=\n)[ \t]+", "", text).strip()
    changes.append(f"link removed: {platform_name} does not make links in posts clickable "
                   "(put it in the profile's bio)")
    return dataclasses.replace(content, text=text, link=None)


def _fit_media(media: tuple[MediaItem, ...], adapter: Adapter, changes: list[str],
               problems: list[Problem]) -> tuple[MediaItem, ...]:
    if "image" not in adapter.entry.limits.media_kinds:
        return media  # validate() names the kinds the platform does not take
    fitted: list[MediaItem] = []
    for item in media:
        try:
            image, change = _fit_image_item(item, adapter) if item.kind is MediaKind.IMAGE else (
                item, None)
        except ImageError as exc:
            code = "media_unreadable" if isinstance(exc, UnreadableImage) else "media_too_large"
            problems.append(Problem(code, f"The image {item.filename} {exc}."))
            image, change = item, None
        fitted.append(image)
        if change:
            changes.append(f"image {item.filename} {change}")
    return tuple(fitted)


def _fit_image_item(item: MediaItem, adapter: Adapter) -> tuple[MediaItem, str | None]:
    """The image within the platform's bytes and pixels; as JPEG if its format is refused.

    Which formats a platform takes is its adapter's to say (Instagram: JPEG only): its
    `validate` is asked, and a "media_kind" problem for the image means "try JPEG"."""
    max_bytes = adapter.entry.limits.image_max_bytes
    side_px = int(getattr(adapter, "image_max_side_px", DEFAULT_MAX_SIDE_PX))
    image = fit_image(item.data, max_bytes=max_bytes, max_side_px=side_px)
    fitted = _with_image(item, image)
    if _format_refused(adapter, fitted) and image.mime_type != "image/jpeg":
        jpeg = fit_image(item.data, max_bytes=max_bytes, max_side_px=side_px,
                         keep_formats=("JPEG",))
        if not _format_refused(adapter, _with_image(item, jpeg)):
            return _with_image(item, jpeg), jpeg.change
    return fitted, image.change


def _format_refused(adapter: Adapter, item: MediaItem) -> bool:
    return any(p.code == "media_kind" for p in adapter.validate(Content(text="", media=(item,))))


def _with_image(item: MediaItem, image: FittedImage) -> MediaItem:
    if image.change is None:
        return dataclasses.replace(item, mime_type=image.mime_type)
    stem = item.filename.rsplit(".", 1)[0] if "." in item.filename else item.filename
    # The public URL showed the original file: the new bytes must be uploaded again.
    return dataclasses.replace(item, data=image.data, mime_type=image.mime_type,
                               filename=f"{stem}.{image.extension}", url=None)


def _media_batches(media: tuple[MediaItem, ...], adapter: Adapter,
                   changes: list[str]) -> list[tuple[MediaItem, ...]]:
    limits = adapter.entry.limits
    cap = limits.max_media_count
    if len(media) <= cap or cap == 0:  # with no media allowed at all, validate() says so
        return [media]
    if limits.supports_threads:
        batches = [media[i:i + cap] for i in range(0, len(media), cap)]
        changes.append(f"{len(media)} media spread over {len(batches)} posts "
                       f"({adapter.entry.name} takes {cap} per post)")
        return batches
    changes.append(f"kept the first {cap} of {len(media)} media: {adapter.entry.name} takes "
                   f"at most {cap} per post")
    return [media[:cap]]


def _fit_text(plan: _Plan, *, permalink: str | None, changes: list[str]) -> list[str]:
    """Thread parts, or one shortened text; raises Unsplittable when neither can be made."""
    adapter, text = plan.adapter, plan.content.text
    if not plan.fits(0, ""):
        return [text]  # too long whatever the text (a title?): validate() will say why
    if adapter.entry.limits.supports_threads:
        texts = _thread(plan)
        changes.append(f"split into a thread of {len(texts)} posts")
        return texts
    last: Unsplittable | None = None
    tails = ([f"{ELLIPSIS} {permalink}"] if permalink else []) + [ELLIPSIS]
    for tail in tails:
        try:
            short = _truncate(plan, tail)
        except Unsplittable as exc:
            last = exc
            continue
        if tail != ELLIPSIS:
            how = "with a link to the full post"
        elif adapter.entry.limits.links_clickable:
            how = "(no link to the full post was available)"
        else:
            how = f"(links are not clickable on {adapter.entry.name})"
        changes.append(f"text shortened to {adapter.text_length(short):,} characters {how}")
        return [short]
    raise last or Unsplittable(text)


def _thread(plan: _Plan) -> list[str]:
    pieces = words(plan.content.text)
    min_parts = len(plan.batches)
    digits = len(str(max(min_parts, 2)))
    while True:
        reserve = numbering(10**digits - 1, 10**digits - 1)  # the widest suffix of this width
        bodies = pack(pieces, _with_suffix(plan, reserve))
        total = max(len(bodies), min_parts)
        if len(str(total)) <= digits:
            break
        digits = len(str(total))
    bodies += [""] * (total - len(bodies))
    texts = [body + numbering(i, total) if body else numbering(i, total).lstrip()
             for i, body in enumerate(bodies, 1)]
    for index, body in enumerate(texts):  # counts need not add up: never send a part over
        if not plan.fits(index, body):
            raise Unsplittable(body)
    return texts


def _truncate(plan: _Plan, tail: str) -> str:
    pieces = words(plan.content.text)
    if not pieces or not plan.fits(0, tail):
        raise Unsplittable(plan.content.text if not pieces else tail)
    end = take(pieces, 0, lambda body: plan.fits(0, body + tail), sentences=False)
    short = join(pieces, 0, end) + tail
    if not plan.fits(0, short):
        raise Unsplittable(short)
    return short


def _with_suffix(plan: _Plan, suffix: str) -> Callable[[int, str], bool]:
    return lambda index, body: plan.fits(index, body + suffix)
