"""The site's HTML: one autoescaping Jinja2 environment over `web/templates/site/`.

Every page gets `links` (a `Links` placed at the page's own path) for its hrefs, and `meta`
for the canonical URL and the Open Graph tags. Post text is printed escaped, never as markup.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from sidestep.site.content import ArchiveView, HomeView, PostView
from sidestep.site.links import ICON, STYLESHEET, Links

# The templates sit with the dashboard's, so one package-data rule ships both.
TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "web" / "templates"
DESCRIPTION_CHARS = 200


@dataclass(frozen=True, slots=True)
class Meta:
    title: str
    description: str
    canonical: str
    og_type: str  # website, article
    image: str | None = None


def when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC")


def day(value: datetime) -> str:
    return value.strftime("%d %b %Y")


def short(text: str, limit: int = DESCRIPTION_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR), autoescape=True,
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["when"] = when
    env.filters["day"] = day
    env.filters["short"] = short
    env.globals["STYLESHEET"] = STYLESHEET
    env.globals["ICON"] = ICON
    return env


def _render(template: str, links: Links, **context: Any) -> str:
    return environment().get_template(f"site/{template}").render(links=links, **context)


def _image_of(posts: list[PostView], links: Links) -> str | None:
    for post in posts:
        for media in post.media:
            if media.content_type.startswith("image/"):
                return links.absolute(media.path)
    return None


def home_page(view: HomeView, links: Links, *, preview: bool = False) -> str:
    here = links.at("")
    meta = Meta(title=view.brand.name, description=short(view.brand.description or
                f"Where to find {view.brand.name}, and everything it posted."),
                canonical=here.absolute(""), og_type="website",
                image=_image_of(view.latest, here))
    return _render("home.html", here, view=view, meta=meta, brand=view.brand, preview=preview)


def archive_page(view: ArchiveView, links: Links) -> str:
    path = view.page_path(view.page) if not view.query else "search/"
    here = links.at(path)
    what = f"on {view.platform_name}" if view.platform_name else "everywhere"
    meta = Meta(title=f"Posts {what} · {view.brand.name}",
                description=f"{view.total} posts of {view.brand.name} {what}.",
                canonical=here.absolute(view.page_path(view.page)), og_type="website")
    return _render("archive.html", here, view=view, meta=meta, brand=view.brand)


def post_page(post: PostView, links: Links, *, brand: Any) -> str:
    here = links.at(post.path)
    meta = Meta(title=f"{post.title} · {brand.name}", description=short(post.text),
                canonical=here.absolute(post.path), og_type="article",
                image=_image_of([post], here))
    return _render("post.html", here, post=post, meta=meta, brand=brand)
