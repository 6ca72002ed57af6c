"""What the catalogue's monitor probes fetch besides the APIs: web home pages and CDN objects.

The monitor (`sidestep.monitor`) probes each platform's `probes` URLs from
`catalogue/platforms.toml`: a web page (expects 200), an anonymous API call (expects the
refusal a live service gives) and a media/CDN object. Profiles serve the API answers in
their own routes; these helpers give them the rest, as the real hosts answer when healthy:

- `web_routes({"x.com": "X"})`: `GET`/`HEAD /` (or `path`) on each named host is a small
  HTML page (200); on the profile's other hosts it is the profile's own 404.
- `cdn_routes({"cdn.example": {"/a.png": PNG}})`: the CDN host answers the named objects
  (200, their content type) and anything else, its root included, as a CDN without that
  object does: 403 with an S3/CloudFront-style XML `AccessDenied` (every catalogue probe of
  a CDN root accepts 400/403/404 as "answering").

These are plain routes behind `PlatformGate`, so faults hit them as they hit every other
route: a media host's requests have the feature `media` (`gate.media_hosts`), a web page the
feature its profile gives an unknown `GET` ("read" for most).
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, Mapping

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Host, Route, Router

__all__ = ["ICO", "JPEG", "PNG", "StaticFile", "cdn_routes", "web_page", "web_routes"]

StaticFile = tuple[str, bytes]  # (content type, body)

# The smallest valid files of each type: a 1x1 PNG, a 1x1 JPEG and a 1x1 ICO.
PNG: StaticFile = ("image/png", base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5E"
    "rkJggg=="))
JPEG: StaticFile = ("image/jpeg", base64.b64decode(
    "/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAAMCAgICAgMCAgIDAwMDBAYEBAQEBAgGBgUGCQgKCgkICQkKDA8MCgsO"
    "CwkJDRENDg8QEBEQCgwSExIQEw8QEBD/yQALCAABAAEBAREA/8wABgAQEAX/2gAIAQEAAD8A0s8g/9k="))
ICO: StaticFile = ("image/x-icon", base64.b64decode(
    "AAABAAEAAQEAAAEAIAAwAAAAFgAAACgAAAABAAAAAgAAAAEAIAAAAAAABAAAAAAAAAAAAAAAAAAAAAAAAAAAAP8A"
    "AAAAAA=="))
_ACCESS_DENIED = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
                  b"<Message>Access Denied</Message></Error>")


def web_page(title: str) -> Response:
    """A platform's home page, as small as a page can be and still be one."""
    html = (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>"
            f"<body><noscript>You need to enable JavaScript to run this app.</noscript></body>"
            f"</html>")
    return Response(html, media_type="text/html; charset=utf-8")


def web_routes(pages: Mapping[str, str], *, path: str = "/") -> list[BaseRoute]:
    """`GET <path>` on each host of `pages` (host -> page title); a 404 on any other host."""
    titles = {host.lower(): title for host, title in pages.items()}

    async def home(request: Request) -> Response:
        title = titles.get((request.url.hostname or "").lower())
        if title is None:
            raise HTTPException(404)  # the gate answers in the profile's words
        return web_page(title)

    return [Route(path, home, methods=["GET", "HEAD"])]


def _cdn_endpoint(objects: Mapping[str, StaticFile]) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        found = objects.get(request.url.path)
        if found is None:
            return Response(_ACCESS_DENIED, 403, media_type="application/xml")
        media_type, body = found
        return Response(body, media_type=media_type,
                        headers={"cache-control": "public, max-age=31536000"})

    return endpoint


def cdn_routes(files: Mapping[str, Mapping[str, StaticFile]]) -> list[BaseRoute]:
    """Each CDN host (host -> {path: file}) answers its files, and 403 for anything else."""
    return [Host(host, Router([Route("/{path:path}", _cdn_endpoint(objects),
                                     methods=["GET", "HEAD"])]))
            for host, objects in files.items()]
