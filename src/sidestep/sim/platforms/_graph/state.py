"""The per-world registry of Graph objects and the small facts shared by the Meta products."""

from __future__ import annotations

import base64
import hashlib
import itertools
import re
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from sidestep.sim.world import Fault, SimWorld

GRAPH_VERSION = "v23.0"
RATE_LIMIT_DOC = "https://developers.facebook.com/docs/graph-api/overview/rate-limiting"
MEDIA_KEPT_BYTES = 64 * 1024 * 1024  # uploaded bytes kept per world; older blobs drop content
URL = re.compile(r"^https?://[^\s/$.?#][^\s]*$", re.IGNORECASE)
T = TypeVar("T")


@dataclass(slots=True)
class Upload:
    """One uploaded file part."""

    filename: str
    content_type: str
    data: bytes


@dataclass(slots=True)
class GraphObject:
    """A node a product created: a post, a photo, a container, a media, an uploaded file."""

    id: str
    platform: str
    owner: str  # the account (page, IG user, phone number) it belongs to
    kind: str
    fields: dict[str, Any]
    deleted: bool = False


class GraphState:
    """Per-world registry of graph objects, uploaded blobs and product extensions."""

    def __init__(self, world: SimWorld) -> None:
        self.world = world
        self.objects: dict[str, GraphObject] = {}
        self._extensions: dict[str, Any] = {}
        self._trace = itertools.count(1)
        self._blob_order: list[str] = []
        self._blob_bytes = 0
        # True: the simulator's gate applies each product's faults (it asks the host profile's
        # `platform_of`), so the mounted routes must not draw them again. False only for a
        # host served without that gate (routes driven directly): then the routes apply other
        # products' HTTP faults themselves (`product_fault`).
        self.gate_routes_products = True

    def new_id(self, base: int) -> str:
        """A numeric-string id (Graph style) above `base`, from the world's counter."""
        return str(base + self.world.next_number())

    def trace_id(self) -> str:
        digest = hashlib.sha256(f"fbtrace:{next(self._trace)}".encode()).digest()
        return "A" + base64.urlsafe_b64encode(digest).decode()[:22]

    def add(self, obj: GraphObject) -> GraphObject:
        self.objects[obj.id] = obj
        return obj

    def find(self, object_id: str, platform: str, kind: str | None = None) -> GraphObject | None:
        obj = self.objects.get(object_id)
        if obj is None or obj.deleted or obj.platform != platform:
            return None
        return obj if kind is None or obj.kind == kind else None

    def keep_blob(self, obj: GraphObject, data: bytes) -> None:
        """Keep uploaded bytes in `obj.fields["content"]`, dropping the oldest past the cap."""
        obj.fields["content"] = data
        self._blob_order.append(obj.id)
        self._blob_bytes += len(data)
        while self._blob_bytes > MEDIA_KEPT_BYTES and self._blob_order:
            old = self.objects.get(self._blob_order.pop(0))
            if old is not None and old.fields.get("content") is not None:
                self._blob_bytes -= len(old.fields["content"])
                old.fields["content"] = None

    def extension(self, key: str, factory: Callable[[], T]) -> T:
        """A product's own state (created on first use), shared by every profile of the world."""
        if key not in self._extensions:
            self._extensions[key] = factory()
        return cast(T, self._extensions[key])


_STATES: weakref.WeakKeyDictionary[SimWorld, GraphState] = weakref.WeakKeyDictionary()


def graph_state(world: SimWorld) -> GraphState:
    """The world's Graph registry, shared by the facebook profile and the product profiles."""
    state = _STATES.get(world)
    if state is None:
        state = _STATES[world] = GraphState(world)
    return state

def partial_fault_hits(world: SimWorld, platform: str, feature: str) -> bool:
    """Whether a partial fault on `feature` of `platform` hits this request (for handlers that
    see the feature only in the body, or turn it into a container status)."""
    for active in world.faults.active(platform):
        if active.fault is Fault.PARTIAL and active.feature == feature and (
                active.rate >= 1.0 or world.rng.random() < active.rate):
            return True
    return False



def media_kind(data: bytes) -> str | None:
    """The file type by its magic bytes (what Meta checks, not the declared type)."""
    signatures = {b"\xff\xd8\xff": "image/jpeg", b"\x89PNG\r\n\x1a\n": "image/png",
                  b"GIF87a": "image/gif", b"GIF89a": "image/gif", b"II*\x00": "image/tiff",
                  b"MM\x00*": "image/tiff", b"OggS": "audio/ogg", b"ID3": "audio/mpeg",
                  b"%PDF": "application/pdf"}
    for magic, kind in signatures.items():
        if data.startswith(magic):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in (b"heic", b"heix", b"mif1"):
            return "image/heif"
        return "video/3gpp" if brand.startswith(b"3gp") else "video/mp4"
    return None




def graph_time(world: SimWorld) -> str:
    """Now, as Graph writes times (`2026-01-01T00:00:00+0000`)."""
    return world.clock.now().strftime("%Y-%m-%dT%H:%M:%S+0000")
