"""The crisis email: "we are still here", with the workspace's channels that are up right now.

`channels_up` reads the channel table and the monitor's `platform_state`: a channel is listed
when it is active and its platform is `up`, or when the monitor has no state for the
platform at all (owned channels such as the site are not probed; they are listed with
`monitored=False`). `crisis_campaign` returns a `NewCampaign` a playbook (issue 10) creates
and sends like any other; the list is fixed at that moment in the campaign's `context`, so
the templates below read it as data (autoescaped), never as template source.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sidestep.catalogue import default_catalogue
from sidestep.store.campaigns import NewCampaign
from sidestep.store.tables import Channel, PlatformState, Workspace

__all__ = ["CRISIS_HTML", "CRISIS_SUBJECT", "CRISIS_TEXT", "ChannelUp", "channels_up",
           "crisis_campaign"]

CRISIS_SUBJECT = "{{ brand }}: {{ down }} is down, here is where to find us"
CRISIS_TEXT = """Hello {{ subscriber.name or "there" }},

{{ down }} is not working right now{% if note %}: {{ note }}{% endif %}. You can still reach
{{ brand }} here:
{% for c in channels %}
- {{ c.platform_name }}{% if c.handle %}: {{ c.handle }}{% endif %}
{%- endfor %}

We will write again when things are back to normal.

Unsubscribe: {{ unsubscribe_url }}
"""
CRISIS_HTML = """<p>Hello {{ subscriber.name or "there" }},</p>
<p>{{ down }} is not working right now{% if note %}: {{ note }}{% endif %}.
You can still reach {{ brand }} here:</p>
<ul>
{% for c in channels %}<li><strong>{{ c.platform_name }}</strong>{% if c.handle %}:
{{ c.handle }}{% endif %}</li>
{% endfor %}</ul>
<p>We will write again when things are back to normal.</p>
<p style="font-size:small"><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>
"""


@dataclass(frozen=True, slots=True)
class ChannelUp:
    name: str
    platform: str
    platform_name: str
    handle: str
    monitored: bool


async def channels_up(session: AsyncSession, workspace_id: int, *,
                      excluding: Sequence[str] = ()) -> list[ChannelUp]:
    """Active channels whose platform is up (or not monitored), minus `excluding` platforms."""
    rows = await session.execute(
        select(Channel, PlatformState.status)
        .outerjoin(PlatformState, PlatformState.platform == Channel.platform)
        .where(Channel.workspace_id == workspace_id, Channel.status == "active")
        .order_by(Channel.platform, Channel.name))
    catalogue = default_catalogue()
    found = []
    for channel, status in rows.all():
        if channel.platform in excluding or status not in (None, "up"):
            continue
        name = catalogue.get(channel.platform).name if channel.platform in catalogue \
            else channel.platform
        found.append(ChannelUp(channel.name, channel.platform, name, channel.handle,
                               monitored=status is not None))
    return found


async def crisis_campaign(session: AsyncSession, workspace_id: int, *, down_platform: str,
                          from_name: str, from_email: str, list_id: int | None,
                          note: str = "") -> NewCampaign:
    """A ready-to-send crisis campaign listing the channels that are up now."""
    workspace = await session.get(Workspace, workspace_id)
    if workspace is None:
        raise ValueError(f"no workspace {workspace_id}")
    catalogue = default_catalogue()
    down = catalogue.get(down_platform).name if down_platform in catalogue else down_platform
    channels = await channels_up(session, workspace_id, excluding=[down_platform])
    return NewCampaign(
        name=f"Crisis: {down} is down", subject_tpl=CRISIS_SUBJECT, html_tpl=CRISIS_HTML,
        text_tpl=CRISIS_TEXT, from_name=from_name, from_email=from_email, list_id=list_id,
        context={"brand": workspace.name, "down": down, "note": note,
                 "channels": [asdict(c) for c in channels]})
