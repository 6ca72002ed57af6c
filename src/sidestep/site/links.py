"""Where the site's pages live, served or exported.

Pages name each other by *site paths*: "" (the link page), "archive/", "archive/page/2/",
"archive/mastodon/", "posts/17/", "media/<sha256>.jpg", "feed.xml", "assets/site.css".
A path ending in "/" is a page. Served, a page is `/site/<slug>/<path>`; exported, it is
the file `<path>index.html`, linked relatively from the page that names it so the export
works from any folder of any static host (and from file://). Feeds, sitemaps, canonical and
Open Graph URLs are absolute: the site's root URL plus the path.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, replace

STYLESHEET = "assets/site.css"
ICON = "assets/favicon.svg"
# Served, the assets are the app's static files.
_STATIC = {STYLESHEET: "/static/site.css", ICON: "/static/favicon.svg"}


@dataclass(frozen=True, slots=True)
class Links:
    """`root_url` is absolute and ends with "/"; `here` is the site path of the current page."""

    root_url: str
    static: bool
    slug: str
    here: str = ""

    @classmethod
    def served(cls, *, public_url: str, slug: str) -> Links:
        return cls(root_url=f"{public_url.rstrip('/')}/site/{slug}/", static=False, slug=slug)

    @classmethod
    def exported(cls, *, base_url: str, slug: str) -> Links:
        return cls(root_url=base_url.rstrip("/") + "/", static=True, slug=slug)

    def at(self, here: str) -> Links:
        return replace(self, here=here)

    def href(self, path: str) -> str:
        """The link to `path` from the current page."""
        if not self.static:
            if path in _STATIC:
                return _STATIC[path]
            return f"/site/{self.slug}/{path}"
        target = file_of(path)
        start = posixpath.dirname(file_of(self.here))
        return posixpath.relpath(target, start or ".")

    def absolute(self, path: str) -> str:
        return self.root_url + path

    @property
    def searchable(self) -> bool:
        """Search needs the server; an export has no search form."""
        return not self.static


def file_of(path: str) -> str:
    """The exported file of a site path: pages are `index.html` in their folder."""
    return path + "index.html" if path == "" or path.endswith("/") else path


def archive_path(*, platform: str | None = None, page: int = 1) -> str:
    base = "archive/" if platform is None else f"archive/{platform}/"
    return base if page <= 1 else f"{base}page/{page}/"


def post_path(post_id: int) -> str:
    return f"posts/{post_id}/"
