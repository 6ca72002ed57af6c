"""`sidestep channel test <channel>`: do the credentials work, and how would a post look?

Two checks, nothing published:

1. the channel's adapter asks the platform whose account the stored credentials open
   (`Adapter.check_credentials`) and prints it;
2. a sample post (a realistic text with a link and a hashtag, plus a generated photo where
   the platform takes images) goes through `channels.adapt.adapt` and `Adapter.validate`
   (a dry run): its parts, the changes made and the problems found are printed as a table.
   There is no sample video: on a platform that takes only videos (YouTube) the dry run
   reports that the post needs one.

Exit codes: 0 when both pass; 1 when the credentials fail or the platform cannot be reached
(one line saying what to do: `sidestep channel connect` for OAuth platforms, replacing the
stored token for the others), or when the sample would be rejected; 2 for a mistake in the
command (unknown channel, a platform without an adapter).

The HTTP client comes from `make_client()` (module attribute): tests replace it with a
factory of simulator clients (`sidestep.sim.testing.running_simulator` → `sim.client()`),
so the command runs unchanged against the simulated platforms.
"""

from __future__ import annotations

import asyncio
import io
import shlex

import typer
from PIL import Image, ImageDraw
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from sidestep.channels.adapt import Adaptation, adapt
from sidestep.channels.base import AccountInfo, Adapter, all_adapters
from sidestep.channels.errors import AuthExpired, PublishError
from sidestep.channels.http import make_client
from sidestep.cli.common import (
    UsageError,
    WorkspaceOption,
    console,
    fail,
    opened_runtime,
    pick_workspace,
    run,
)
from sidestep.domain.content import Content, MediaItem, MediaKind
from sidestep.store.accounts import Accounts
from sidestep.store.channels import Channels
from sidestep.store.tables import Channel
from sidestep.vault import Credentials

SAMPLE_TEXT = (
    "Our spring collection is here 🌷 Free shipping on every order until Sunday, and the "
    "first 100 orders get a handwritten note from the workshop. See everything at "
    "https://example.com/spring #SpringCollection"
)
SAMPLE_TITLE = "Our spring collection is here"
SAMPLE_PERMALINK = "https://example.com/archive/spring-collection"
# Where the sample photo would be published, for platforms that fetch media from a URL.
SAMPLE_PHOTO_URL = "https://example.com/media/sample.jpg"


def channel_test(
    channel: str = typer.Argument(..., help="Channel id or name."),
    workspace: str | None = WorkspaceOption,
    text: str = typer.Option(
        SAMPLE_TEXT, "--text", "-t", show_default=False,
        help="Text of the sample post (default: a realistic one with a link and a hashtag).",
    ),
) -> None:
    """Check a channel's credentials and dry-run a sample post through its adapter."""

    async def main() -> None:
        async with opened_runtime() as rt, rt.db.session() as session:
            ws = await pick_workspace(Accounts(session), workspace)
            channels = Channels(session, workspace_id=ws.id, vault=rt.vault)
            found = await channels.find(channel)
            if found is None:
                raise UsageError(f"no channel {channel!r} in workspace {ws.slug}")
            credentials = channels.credentials(found)
        adapter_cls = all_adapters().get(found.platform)
        if adapter_cls is None:
            raise UsageError(f"Sidestep cannot publish to {found.platform} yet, so channel "
                             f"{found.name!r} cannot be tested")
        async with make_client() as client:
            adapter = adapter_cls(client=client, clock=rt.clock)
            account = await _check(adapter, found, credentials)
            console.print(f"Channel {found.id} [bold]{_plain(found.name)}[/bold] "
                          f"({adapter.entry.name}): the credentials work, account "
                          f"[bold]{_plain(account.name)}[/bold] ({_plain(account.account_id)}).")
        sample = _sample(adapter, text)
        adaptation = await asyncio.to_thread(adapt, sample, adapter, permalink=SAMPLE_PERMALINK)
        _show(adaptation, adapter)
        if not adaptation.ok:
            raise fail(f"{adapter.entry.name} would reject the sample post: "
                       f"{adaptation.problems[0].message}", code=1)

    run(main)


async def _check(adapter: Adapter, channel: Channel, credentials: Credentials) -> AccountInfo:
    """The account the credentials open; exits 1 with one line saying what to do if none."""
    name = adapter.entry.name
    reconnect = _reconnect_hint(adapter, channel)
    missing = adapter.missing_credentials(credentials)
    if missing:
        raise fail(f"channel {channel.name!r} has no {', '.join(missing)} stored for {name}; "
             f"{reconnect}", code=1)
    try:
        return await adapter.check_credentials(credentials)
    except AuthExpired as exc:
        raise fail(f"{name} refused the credentials of channel {channel.name!r} ({exc}); "
                   f"{reconnect}", code=1) from exc
    except PublishError as exc:
        raise fail(f"could not check channel {channel.name!r}: {name} did not answer as "
                   f"expected ({exc.error_class}: {exc}); try again later", code=1) from exc


def _reconnect_hint(adapter: Adapter, channel: Channel) -> str:
    """What a person does to give the channel working credentials."""
    platform, name = shlex.quote(channel.platform), shlex.quote(channel.name)
    if adapter.entry.auth in ("oauth2", "oauth1"):
        return f"reconnect it with `sidestep channel connect {platform} {name}`"
    return (f"replace them: `sidestep channel remove {name}`, then "
            f"`sidestep channel add {platform} {name} --credentials-stdin`")


def _sample(adapter: Adapter, text: str) -> Content:
    """The sample post: `text`, and a photo where the platform takes images."""
    limits = adapter.entry.limits
    media: tuple[MediaItem, ...] = ()
    if "image" in limits.media_kinds and limits.max_media_count > 0:
        media = (MediaItem(kind=MediaKind.IMAGE, mime_type="image/jpeg", data=sample_photo(),
                           alt="A sample photo: a gradient with a sun", filename="sample.jpg",
                           url=SAMPLE_PHOTO_URL),)
    return Content(text=text, media=media, title=SAMPLE_TITLE)


def sample_photo(width_px: int = 1600, height_px: int = 1000) -> bytes:
    """A small generated JPEG (a sky gradient with a sun), made here: nothing to ship."""
    image = Image.linear_gradient("L").resize((width_px, height_px)).convert("RGB")
    image = Image.merge("RGB", (image.getchannel(0).point(lambda v: 80 + v // 2),
                                image.getchannel(1).point(lambda v: 120 + v // 3),
                                image.getchannel(2).point(lambda v: 220)))
    ImageDraw.Draw(image).ellipse((width_px * 0.6, height_px * 0.15, width_px * 0.8,
                                   height_px * 0.15 + width_px * 0.2), fill=(255, 210, 90))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def _show(adaptation: Adaptation, adapter: Adapter) -> None:
    limit = adapter.entry.limits.text_max_chars
    table = Table("part", "text", "length", "media", title="Dry run of a sample post",
                  title_justify="left")
    for number, part in enumerate(adaptation.parts, 1):
        media = ", ".join(f"{m.filename} ({m.mime_type}, {m.size_bytes:,} bytes)"
                          for m in part.media) or "—"
        table.add_row(str(number), Text(part.text), f"{adapter.text_length(part.text):,}"
                      f" / {limit:,}", Text(media))
    console.print(table)
    for change in adaptation.changes:
        console.print(Text(f"changed: {change}"))
    for problem in adaptation.problems:
        console.print(Text(f"problem ({problem.code}): {problem.message}", style="red"))
    if adaptation.ok:
        console.print(f"The sample post would go to {adapter.entry.name} as shown.")


def _plain(value: str) -> str:
    """A value shown inside Rich markup, with its own brackets escaped."""
    return escape(value)
