"""OAuth tokens in the store: saving a new connection, and renewing tokens before they expire.

A connected channel's credentials (encrypted by the vault, like every channel's) hold the
fields of `TokenSet.to_credentials()`: `access_token`, `refresh_token`, `expires_at` (ISO 8601
UTC, empty for none), `scope` and `account_id`, next to any fields the adapter added itself.

`refresh_due_tokens` is meant to run every few minutes. For each active or paused OAuth channel
whose access token expires within `within_s`, in a transaction of its own:

- renewed: the new tokens are merged over the old credentials (`channel.credentials_changed`);
- the grant is dead (`AuthExpired`: revoked, expired, or a platform that cannot renew): the
  channel becomes `needs_reconnect`; `Channels.set_status` records `channel.status_changed`,
  which is how its owner is told;
- anything else (the provider is down, rate limiting, refuses our app credentials, the answer
  was lost): the status stays, to be tried again on the next run.

Every failure also records `channel.token_refresh_failed` with the error class and a capped
detail, never a token. The channel row is locked (`FOR UPDATE` on PostgreSQL; SQLite has one
writer) across the token request: two workers must not both spend a rotating refresh token,
or the second would be refused and wrongly send the owner to reconnect.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sidestep.channels.errors import AuthExpired, PublishError, capped
from sidestep.channels.oauth import PENDING_TTL_S, TokenSet, refresh
from sidestep.channels.oauth_providers import (
    MissingAppCredentials,
    OAuthAppSettings,
    OAuthFlowError,
    OAuthProviders,
    default_providers,
)
from sidestep.clock import Clock
from sidestep.domain.states import ChannelStatus
from sidestep.security import token_hash
from sidestep.store.channels import ChannelError, Channels
from sidestep.store.db import Database
from sidestep.store.events import record_event
from sidestep.store.tables import Channel, Event
from sidestep.vault import Vault, VaultError

log = logging.getLogger(__name__)

DEFAULT_WINDOW_S = 3600.0
CONNECTED_EVENT = "channel.connected"
FAILED_EVENT = "channel.token_refresh_failed"
_RENEWABLE = (ChannelStatus.ACTIVE.value, ChannelStatus.PAUSED.value)


@dataclass
class RefreshReport:
    """What one run did, by channel id."""

    refreshed: list[int] = field(default_factory=list)
    needs_reconnect: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)  # left as they were; tried again next run
    not_due: list[int] = field(default_factory=list)


async def save_connection(
    channels: Channels, *, platform: str, name: str, tokens: TokenSet, at: datetime,
    state: str | None = None,
) -> tuple[Channel, bool]:
    """Store a connection's tokens: a new channel, or a reconnect of the channel `name` (its
    tokens replaced, its status back to active). Returns the channel and whether it existed.

    `state` (the flow's, if any) is recorded only as a digest, so a replayed callback can be
    recognised. Raises `ChannelError` when `name` belongs to a channel of another platform.
    """
    existing = await channels.by_name(name)
    if existing is not None and existing.platform != platform:
        raise ChannelError(f"the channel {name!r} is a {existing.platform} channel; "
                           "choose another name")
    if existing is None:
        channel = await channels.add(platform=platform, name=name,
                                     handle=tokens.account_id or "",
                                     credentials=tokens.to_credentials(), at=at)
    else:
        channel = existing
        try:  # keep what the adapter stored beside the tokens (a page id, a board)
            kept = channels.credentials(existing).reveal()
        except VaultError:  # sealed with a lost key: the new tokens replace it all
            kept = {}
        await channels.set_credentials(existing, {**kept, **tokens.to_credentials()}, at=at)
        await channels.set_status(existing, ChannelStatus.ACTIVE, at=at)
    await record_event(channels.session, type=CONNECTED_EVENT, workspace_id=channels.workspace_id,
                       payload={"channel_id": channel.id, "platform": platform,
                                "reconnected": existing is not None,
                                "state_digest": token_hash(state) if state else None}, at=at)
    return channel, existing is not None


async def state_already_used(session: AsyncSession, *, workspace_id: int, state: str,
                             now: datetime) -> bool:
    """Whether a connection of this workspace was saved with `state` in the last
    `PENDING_TTL_S` (older states are refused as expired anyway): a replayed callback."""
    digest = token_hash(state)
    # Few rows: only this workspace's connections of the last ten minutes. The digest is
    # compared here rather than in SQL because JSON operators differ between the engines.
    payloads = await session.scalars(select(Event.payload).where(
        Event.type == CONNECTED_EVENT, Event.workspace_id == workspace_id,
        Event.created_at >= now - timedelta(seconds=PENDING_TTL_S)))
    return any(payload.get("state_digest") == digest for payload in payloads)


async def refresh_due_tokens(
    db: Database, vault: Vault, clock: Clock, http: httpx.AsyncClient, *,
    within_s: float = DEFAULT_WINDOW_S, apps: OAuthAppSettings | None = None,
    providers: OAuthProviders | None = None,
) -> RefreshReport:
    """Renew every OAuth token that expires within `within_s`; see the module docstring.

    Returns a `RefreshReport`. Raises only what the database raises; provider failures are
    recorded per channel.
    """
    providers = providers or default_providers()
    apps = apps or OAuthAppSettings()
    report = RefreshReport()
    async with db.session() as session:
        rows = (await session.execute(
            select(Channel.id, Channel.workspace_id).where(
                Channel.platform.in_([p.key for p in providers.all()]),
                Channel.status.in_(_RENEWABLE), Channel.credentials_encrypted.is_not(None),
            ).order_by(Channel.id))).all()
    for channel_id, workspace_id in rows:
        async with db.session() as session:
            channel = await session.scalar(
                select(Channel).where(Channel.id == channel_id).with_for_update())
            if channel is None or channel.status not in _RENEWABLE:
                continue  # removed, or settled by another worker since the listing
            repo = Channels(session, workspace_id=workspace_id, vault=vault)
            await _renew(repo, channel, clock, http, within_s=within_s, apps=apps,
                         providers=providers, report=report)
    return report


async def _renew(repo: Channels, channel: Channel, clock: Clock, http: httpx.AsyncClient, *,
                 within_s: float, apps: OAuthAppSettings, providers: OAuthProviders,
                 report: RefreshReport) -> None:
    now = clock.now()
    try:
        stored = repo.credentials(channel)
        tokens = TokenSet.from_credentials(stored)
    except (VaultError, OAuthFlowError) as exc:
        await _failed(repo, channel, exc, now=now)
        report.failed.append(channel.id)
        return
    if not tokens.expires_within(within_s, now=now):
        report.not_due.append(channel.id)
        return
    try:
        app = apps.app(channel.platform)
        renewed = await refresh(http, channel.platform, tokens, app=app, now=now,
                                providers=providers)
    except AuthExpired as exc:
        await _failed(repo, channel, exc, now=now)
        await repo.set_status(channel, ChannelStatus.NEEDS_RECONNECT, at=now)
        report.needs_reconnect.append(channel.id)
        return
    except (PublishError, MissingAppCredentials) as exc:
        await _failed(repo, channel, exc, now=now)
        report.failed.append(channel.id)
        return
    await repo.set_credentials(channel, {**stored.reveal(), **renewed.to_credentials()}, at=now)
    report.refreshed.append(channel.id)


async def _failed(repo: Channels, channel: Channel, exc: Exception, *, now: datetime) -> None:
    error_class = exc.error_class if isinstance(exc, PublishError) else type(exc).__name__
    log.warning("token refresh failed", extra={"channel_id": channel.id,
                                               "platform": channel.platform,
                                               "error_class": error_class})
    await record_event(repo.session, type=FAILED_EVENT, workspace_id=repo.workspace_id,
                       payload={"channel_id": channel.id, "platform": channel.platform,
                                "error_class": error_class, "detail": capped(str(exc), 300)},
                       at=now)
