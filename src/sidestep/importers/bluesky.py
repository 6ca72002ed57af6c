"""Bluesky (atproto) repository export: the `.car` file from Settings → Export my data.

The CAR's root is the head commit `{did, version, data, rev | prev, sig}`; `data` is the
root of a Merkle search tree whose entries map `collection/rkey` to record CIDs (keys are
prefix-compressed: `p` bytes shared with the previous key, then `k`). Records of
`app.bsky.feed.post` are posts: `text`, `createdAt`, `langs`, `facets` (links and mentions
at UTF-8 byte offsets), `reply.parent.uri`, `embed` (images with alt text, an external
link, a quoted record). Older repositories (version 2, with history) are walked from their
head commit only. Image bytes are not in the CAR, only their blob CIDs, kept as references.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

from sidestep.archive.model import ImportedPost, MediaRef, SourceRef
from sidestep.importers._car import CarError, CarIndex, Link, cid_text
from sidestep.importers.base import ImporterSpec, Item, RecordProblem, Skipped, from_iso
from sidestep.importers.safezip import ExportRejected, ExportSource

POSTS = "app.bsky.feed.post/"


def read(source: ExportSource) -> Iterator[Item]:
    cars = [n for n in source.names() if n.lower().endswith(".car")]
    if not cars:
        raise ExportRejected(f"{source.label} is not a Bluesky repository (.car) file")
    name = cars[0]
    # Read whole (capped): blocks are looked up out of order, and a zip member seeks slowly.
    with source.open(name, max_bytes=source.limits.max_document_bytes) as raw:
        data = io.BytesIO(raw.read())
    try:
        car = CarIndex(data)
        commit = car.get(car.roots[0]) if car.roots else None
    except (CarError, KeyError) as exc:
        raise ExportRejected(f"{name} is not a readable CAR file: {exc}") from exc
    if not isinstance(commit, dict) or "did" not in commit or "data" not in commit:
        raise ExportRejected(f"{name} has no repository commit at its root")
    did = str(commit["did"])
    try:
        for key, cid in _walk(car, commit["data"], 0):
            if key.startswith(POSTS):
                yield _record(car, name, did, key, cid)
            elif key.startswith("app.bsky.feed.repost/"):
                yield Skipped("repost")
    except (CarError, KeyError, TypeError, AttributeError) as exc:
        raise ExportRejected(f"{name}: the repository tree is broken ({exc!r})") from exc


def _record(car: CarIndex, name: str, did: str, key: str, cid: bytes) -> Item:
    try:
        return _post(did, key.removeprefix(POSTS), car.get(cid))
    except KeyError as exc:
        return RecordProblem(f"{name} {key}", f"record or field missing: {exc}")
    except (CarError, ValueError, TypeError, AttributeError) as exc:
        return RecordProblem(f"{name} {key}", f"unreadable post: {exc!r}")


def _walk(car: CarIndex, node_cid: bytes, depth: int) -> Iterator[tuple[str, bytes]]:
    """(key, record CID) of every entry under an MST node, in key order."""
    if depth > 128:
        raise CarError("repository tree too deep")
    node = car.get(node_cid)
    if node.get("l") is not None:
        yield from _walk(car, node["l"], depth + 1)
    key = b""
    for entry in node.get("e") or []:
        key = key[: entry["p"]] + entry["k"]
        yield key.decode("utf-8"), entry["v"]
        if entry.get("t") is not None:
            yield from _walk(car, entry["t"], depth + 1)


def _post(did: str, rkey: str, record: dict[str, Any]) -> ImportedPost:
    uri = f"at://{did}/app.bsky.feed.post/{rkey}"
    text = str(record.get("text") or "")
    link = None
    for facet in record.get("facets") or []:
        for feature in facet.get("features") or []:
            if str(feature.get("$type", "")).endswith("#link") and not link:
                link = feature.get("uri")
    embed = record.get("embed") or {}
    media = []
    for image in _images(embed):
        blob = image.get("image") or {}
        ref = blob.get("ref")
        media.append(MediaRef(kind="image", mime_type=str(blob.get("mimeType") or "image/jpeg"),
                              alt=str(image.get("alt") or ""),
                              source_uri=cid_text(ref) if isinstance(ref, Link) else ""))
    if (external := embed.get("external")) and not link:
        link = external.get("uri")
    parent = ((record.get("reply") or {}).get("parent") or {}).get("uri")
    extra: dict[str, Any] = {"langs": record.get("langs") or []}
    if quoted := (embed.get("record") or {}).get("uri"):
        extra["quotes"] = quoted
    return ImportedPost(
        sources=(SourceRef("bluesky", uri, f"https://bsky.app/profile/{did}/post/{rkey}",
                           {k: v for k, v in extra.items() if v}),),
        text=text, created_at=from_iso(str(record["createdAt"])), link=link,
        reply_to=parent, media=tuple(media),
    )


def _images(embed: dict[str, Any]) -> list[dict[str, Any]]:
    if "images" in embed:
        return list(embed["images"])
    inner = embed.get("media") or {}  # app.bsky.embed.recordWithMedia
    return list(inner.get("images") or [])


IMPORTER = ImporterSpec(
    kind="bluesky", platform="bluesky", read=read,
    description="the Bluesky repository export (.car), alone or in a zip",
)
