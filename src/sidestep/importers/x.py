"""X / Twitter archive (the zip from "Download an archive of your data").

Tweets are in `data/tweets.js`, and in big archives also `data/tweets-part1.js`, … (older
archives: `tweet.js`): JavaScript, `window.YTD.tweets.part0 = ` then a JSON array of
`{"tweet": {...}}`, streamed here so the archive's size does not matter. Numbers are
strings; `created_at` reads `Fri Feb 24 06:58:32 +0000 2023`; `full_text` has HTML
entities and t.co links, which are expanded from `entities.urls` (media links are dropped:
the media is attached). Media files are `data/tweets_media/<tweet id>-<file name>`.
Retweets (`RT @…`) are someone else's post and are skipped.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sidestep.archive.model import ImportedPost, MediaRef, SourceRef
from sidestep.importers.base import ImporterSpec, Item, RecordProblem, Skipped, json_items
from sidestep.importers.safezip import ExportRejected, ExportSource

_TWEET_FILE = re.compile(r"(^|/)tweets?(-part\d+)?\.js$")
_MEDIA_TYPES = {"photo": ("image", "image/jpeg"), "video": ("video", "video/mp4"),
                "animated_gif": ("video", "video/mp4")}


def tweet_files(source: ExportSource) -> list[str]:
    def part(name: str) -> int:
        found = re.search(r"-part(\d+)\.js$", name)
        return int(found.group(1)) if found else 0

    return sorted((n for n in source.names() if _TWEET_FILE.search(n)), key=part)


def read(source: ExportSource) -> Iterator[Item]:
    files = tweet_files(source)
    if not files:
        raise ExportRejected(f"{source.label} has no data/tweets.js: is it an X archive?")
    media = _media_by_tweet(source)
    for name in files:
        for position, entry in enumerate(json_items(source, name, javascript=True)):
            tweet = entry.get("tweet", entry) if isinstance(entry, dict) else None
            if not isinstance(tweet, dict):
                yield RecordProblem(f"{name} #{position}", "not a tweet object")
                continue
            try:
                yield _post(tweet, media)
            except _Retweet:
                yield Skipped("repost")
            except (KeyError, ValueError, TypeError) as exc:
                yield RecordProblem(f"{name} #{position}", f"unreadable tweet: {exc!r}")


class _Retweet(Exception):
    pass


def _post(tweet: dict[str, Any], media_files: dict[str, list[str]]) -> ImportedPost:
    tweet_id = str(tweet.get("id_str") or tweet["id"])
    text = str(tweet.get("full_text") or tweet.get("text") or "")
    if text.startswith("RT @"):
        raise _Retweet
    entities = tweet.get("entities") or {}
    for url in entities.get("urls") or []:
        if url.get("url") and url.get("expanded_url"):
            text = text.replace(url["url"], url["expanded_url"])
    extended = (tweet.get("extended_entities") or entities).get("media") or []
    for item in extended:
        if item.get("url"):
            text = text.replace(item["url"], "")
    text = html.unescape(text).strip()
    created = datetime.strptime(tweet["created_at"], "%a %b %d %H:%M:%S %z %Y")
    reply_to = tweet.get("in_reply_to_status_id_str") or tweet.get("in_reply_to_status_id")
    screen = tweet.get("in_reply_to_screen_name")
    extra: dict[str, Any] = {"lang": tweet.get("lang"),
                             "likes": _int(tweet.get("favorite_count")),
                             "reposts": _int(tweet.get("retweet_count")),
                             "hashtags": [h.get("text") for h in entities.get("hashtags") or []]}
    return ImportedPost(
        sources=(SourceRef("x", tweet_id, f"https://x.com/i/status/{tweet_id}",
                           {k: v for k, v in extra.items() if v not in (None, [])}),),
        text=text, created_at=created,
        link=next((u.get("expanded_url") for u in entities.get("urls") or []), None),
        reply_to=(f"https://x.com/{screen or 'i'}/status/{reply_to}" if reply_to else None),
        media=tuple(_media(tweet_id, extended, media_files)),
    )


def _media(tweet_id: str, items: list[dict[str, Any]],
           files: dict[str, list[str]]) -> Iterator[MediaRef]:
    present = files.get(tweet_id, [])
    for item in items:
        kind, mime = _MEDIA_TYPES.get(str(item.get("type")), ("image", "image/jpeg"))
        url = str(item.get("media_url_https") or item.get("media_url") or "")
        if kind == "video":
            variants = [v for v in (item.get("video_info") or {}).get("variants") or []
                        if v.get("content_type") == "video/mp4"]
            if variants:
                url = max(variants, key=lambda v: _int(v.get("bitrate")) or 0)["url"]
        basename = url.rsplit("/", 1)[-1].split("?", 1)[0]
        member = next((n for n in present if n.endswith(f"-{basename}")), None)
        if kind == "image" and basename.lower().endswith(".png"):
            mime = "image/png"
        yield MediaRef(kind=kind, mime_type=mime, alt=str(item.get("ext_alt_text") or ""),
                       source_uri=url, member=member)


def _media_by_tweet(source: ExportSource) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name in source.names():
        if "/tweets_media/" in name or name.startswith("tweets_media/"):
            tweet_id = name.rsplit("/", 1)[-1].split("-", 1)[0]
            found.setdefault(tweet_id, []).append(name)
    return found


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


IMPORTER = ImporterSpec(
    kind="x", platform="x", read=read,
    description="the X/Twitter archive zip (data/tweets.js and data/tweets_media/)",
)
