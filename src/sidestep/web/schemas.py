"""The JSON API's request and response models.

Response models list their fields one by one and are built from rows with
`from_attributes`: a column added to a table (credentials above all) reaches no client
unless someone adds it here on purpose.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlsplit

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from sidestep.domain.states import (
    ChannelStatus,
    DeliveryState,
    FallbackPolicy,
    PlatformStatus,
    Role,
)
from sidestep.web.posting import MAX_BODY_CHARS

_FROM_ROWS = ConfigDict(from_attributes=True)


class ErrorOut(BaseModel):
    detail: str = Field(description="What went wrong, for a person.")


class WorkspaceOut(BaseModel):
    slug: str
    name: str
    role: Role = Field(description="The caller's role in this workspace.")


class ChannelOut(BaseModel):
    """A channel as clients see it: never its credentials."""

    model_config = _FROM_ROWS

    id: int
    platform: str
    name: str
    handle: str
    status: ChannelStatus
    audience_size: int
    created_at: datetime


class DeliveryOut(BaseModel):
    model_config = _FROM_ROWS

    id: int
    channel_id: int
    state: DeliveryState
    due_at: datetime
    next_attempt_at: datetime
    attempt_count: int
    external_url: str | None
    last_error: str | None
    updated_at: datetime


class PostOut(BaseModel):
    model_config = _FROM_ROWS

    id: int
    body: str
    link: str | None
    due_at: datetime
    fallback_policy: FallbackPolicy
    fallback_channel_ids: list[int]
    created_by: int | None
    created_at: datetime


class PostDetailOut(PostOut):
    deliveries: list[DeliveryOut] = Field(description="One per target channel.")


class PostIn(BaseModel):
    """A post to create; one delivery is scheduled per channel in `channel_ids`."""

    model_config = ConfigDict(extra="forbid")

    body: str = Field(min_length=1, max_length=MAX_BODY_CHARS)
    due_at: AwareDatetime = Field(description="When to publish; with a time zone offset.")
    channel_ids: list[int] = Field(min_length=1, max_length=100)
    link: str | None = Field(default=None, max_length=2048)
    fallback_policy: FallbackPolicy = FallbackPolicy.HOLD
    fallback_channel_ids: list[int] = Field(default_factory=list, max_length=100)

    @field_validator("link")
    @classmethod
    def _http_link(cls, link: str | None) -> str | None:
        if link is not None:
            parts = urlsplit(link)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError("link must be an absolute http(s) URL")
        return link


class PlatformStateOut(BaseModel):
    """One platform as the monitor sees it; `since` is null while the state is unknown."""

    platform: str
    name: str
    owner: str
    status: PlatformStatus
    features: list[str] = Field(description="Degraded features, when status is degraded.")
    reason: str
    since: datetime | None
    updated_at: datetime | None
