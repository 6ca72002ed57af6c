"""The link page's live status: each shown channel as up or not, and the banner.

Pure functions over what the store holds (channels, platform states, open incidents, the
site settings), so the rules are tested without a database. A rented channel is
unavailable while the monitor says its platform is `down` or `degraded`; an owned channel
(the brand's email list, site, feed) has no platform to fall, so it is always available.
A channel whose platform the monitor has no state for is shown without a status. Where a
channel is unavailable the page names the channels that are up, owned ones first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sidestep.domain.states import PlatformStatus

UNAVAILABLE = frozenset({PlatformStatus.DOWN.value, PlatformStatus.DEGRADED.value})


class PlatformInfo(Protocol):
    @property
    def key(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> str: ...


class CatalogueLike(Protocol):
    def all(self) -> Sequence[PlatformInfo]: ...


@dataclass(frozen=True, slots=True)
class ChannelView:
    channel_id: int
    label: str  # the platform's name for a rented channel, the channel's name for an owned one
    platform: str
    platform_name: str
    handle: str
    url: str
    owned: bool
    status: str  # up, degraded, down, unknown
    reason: str
    alternatives: tuple[ChannelView, ...] = ()

    @property
    def available(self) -> bool:
        return self.status not in UNAVAILABLE

    @property
    def anchor(self) -> str:
        return f"channel-{self.channel_id}"


@dataclass(frozen=True, slots=True)
class Notice:
    platform_name: str
    status: str
    since: datetime
    features: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Banner:
    message: str  # what the workspace (or a playbook) set; "" for none
    notices: tuple[Notice, ...]  # open incidents of platforms the page lists
    alternatives: tuple[ChannelView, ...]  # where to go meanwhile

    @property
    def shown(self) -> bool:
        return bool(self.message or self.notices)


@dataclass(frozen=True, slots=True)
class ChannelRow:
    """What the status rules need to know of one shown channel."""

    channel_id: int
    platform: str
    name: str
    handle: str
    url: str


@dataclass(frozen=True, slots=True)
class StateRow:
    status: str
    reason: str


@dataclass(frozen=True, slots=True)
class IncidentRow:
    platform: str
    status: str
    since: datetime
    features: tuple[str, ...]


def platform_names(catalogue: CatalogueLike) -> tuple[dict[str, str], set[str]]:
    """(platform key -> display name, keys of owned platforms)."""
    platforms = catalogue.all()
    return ({p.key: p.name for p in platforms}, {p.key for p in platforms if p.kind == "owned"})


def channel_views(channels: Sequence[ChannelRow], states: Mapping[str, StateRow], *,
                  names: Mapping[str, str], owned: set[str]) -> list[ChannelView]:
    """The shown channels in the workspace's order, each with its status and alternatives."""
    plain: list[ChannelView] = []
    for channel in channels:
        is_owned = channel.platform in owned
        state = states.get(channel.platform)
        status = "up" if is_owned else (state.status if state else "unknown")
        platform_name = names.get(channel.platform, channel.platform)
        plain.append(ChannelView(
            channel_id=channel.channel_id, platform=channel.platform,
            label=channel.name if is_owned else platform_name, platform_name=platform_name,
            handle=channel.handle, url=channel.url, owned=is_owned, status=status,
            reason="" if is_owned or state is None else state.reason))
    up = _up_first_owned(plain)
    return [view if view.available else _with_alternatives(view, up) for view in plain]


def _up_first_owned(views: Iterable[ChannelView]) -> tuple[ChannelView, ...]:
    up = [v for v in views if v.owned or v.status == PlatformStatus.UP.value]
    return tuple(sorted(up, key=lambda v: not v.owned))  # stable: the page's order otherwise


def _with_alternatives(view: ChannelView, up: tuple[ChannelView, ...]) -> ChannelView:
    return ChannelView(
        channel_id=view.channel_id, label=view.label, platform=view.platform,
        platform_name=view.platform_name, handle=view.handle, url=view.url, owned=view.owned,
        status=view.status, reason=view.reason, alternatives=up)


def banner(*, message: str, incidents: Sequence[IncidentRow], views: Sequence[ChannelView],
           names: Mapping[str, str]) -> Banner:
    """The banner: the set message, and a notice per open incident of a listed platform."""
    listed = {v.platform for v in views if not v.owned}
    notices = tuple(
        Notice(platform_name=names.get(i.platform, i.platform), status=i.status, since=i.since,
               features=i.features)
        for i in incidents if i.platform in listed)
    return Banner(message=message.strip(), notices=notices,
                  alternatives=_up_first_owned(views) if notices else ())
