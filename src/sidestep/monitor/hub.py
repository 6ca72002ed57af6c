"""The hub's side of probe agents: check a signed batch, then store its observations.

`Hub.accept(headers, body)` returns how many observations were stored, or raises
`BatchRejected` with the HTTP status the route answers and a message for the agent:

| what is wrong                                                     | status |
|-------------------------------------------------------------------|--------|
| a signing header missing or malformed                             | 401    |
| unknown or revoked agent, or a signature that does not match     | 401    |
| timestamp more than `window_s` away from the hub's clock          | 401    |
| a nonce this agent used before (a replayed batch)                 | 409    |
| body over `max_bytes`, or more than `max_observations`            | 413    |
| not `BatchIn` JSON, an unknown platform, a time outside the window | 422    |

Checks run cheapest first and the body is parsed only once its signature holds. Accepted
observations carry the agent's registered name as their vantage, whatever the agent says.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Collection, Mapping
from datetime import datetime, timedelta
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sidestep.clock import Clock
from sidestep.monitor.outcomes import Outcome, Signal
from sidestep.monitor.signing import (
    AGENT_HEADER,
    NONCE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    signature_matches,
)
from sidestep.store.agents import Agents
from sidestep.store.db import Database
from sidestep.store.health import Health, NewObservation
from sidestep.vault import Vault, VaultError

__all__ = ["BatchIn", "BatchRejected", "Hub", "ObservationIn", "read_capped"]

MAX_BATCH_BYTES = 1024 * 1024
MAX_OBSERVATIONS = 2000
WINDOW_S = 300.0
# An agent that lost the hub for a while may send what it saw in the last hour.
MAX_OBSERVATION_AGE_S = 3600.0
# Pseudo-platforms of the control probes ("is it my own network?").
CONTROL_PLATFORMS = frozenset({"control", "internet"})
_KEY_ID = re.compile(r"^[0-9a-f]{16}$")
_NONCE = re.compile(r"^[0-9a-f]{32}$")
_SIGNATURE = re.compile(r"^v1=[0-9a-f]{64}$")


class BatchRejected(Exception):
    """A batch the hub will not store; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


_STRICT = ConfigDict(extra="forbid")
Short = Annotated[str, Field(max_length=300)]


class ObservationIn(BaseModel):
    """One observation as an agent sends it (a `NewObservation` without the vantage)."""

    model_config = _STRICT
    platform: Annotated[str, Field(pattern=r"^[a-z0-9_]{1,40}$")]
    signal: Signal
    observed_at: datetime
    outcome: Outcome
    latency_ms: Annotated[float, Field(ge=0, le=3_600_000)] | None = None
    feature: Annotated[str, Field(pattern=r"^[a-z0-9_]{0,40}$")] = ""
    target: Short = ""
    detail: Annotated[str, Field(max_length=500)] | None = None


class BatchIn(BaseModel):
    model_config = _STRICT
    vantage: Annotated[str, Field(max_length=64)] | None = None
    observations: list[ObservationIn]


async def read_capped(chunks: AsyncIterator[bytes], *, max_bytes: int) -> bytes:
    """The whole body, or `BatchRejected(413)` as soon as it passes `max_bytes`."""
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > max_bytes:
            raise BatchRejected(413, f"batch over {max_bytes} bytes; send smaller batches")
    return bytes(body)


class Hub:
    """Checks and stores agents' batches; one per app."""

    def __init__(
        self, *, db: Database, vault: Vault, clock: Clock, platforms: Collection[str] | None,
        window_s: float = WINDOW_S, max_bytes: int = MAX_BATCH_BYTES,
        max_observations: int = MAX_OBSERVATIONS,
    ) -> None:
        self.db, self.vault, self.clock = db, vault, clock
        # None: any platform key (no catalogue to check against).
        self.platforms = frozenset(platforms) | CONTROL_PLATFORMS if platforms else None
        self.window_s = window_s
        self.max_bytes = max_bytes
        self.max_observations = max_observations

    async def accept(self, headers: Mapping[str, str], body: bytes) -> int:
        """Store the batch's observations under the agent's vantage; return how many.

        Raises `BatchRejected` (see the module docstring for which status when).
        """
        key_id, timestamp, nonce, signature = _signing_headers(headers)
        now = self.clock.now()
        skew_s = abs(now.timestamp() - int(timestamp))
        if skew_s > self.window_s:
            raise BatchRejected(401, f"stale batch: signed {skew_s:.0f} s away from the hub's "
                                     f"clock (allowed {self.window_s:.0f} s); check the clock")
        if len(body) > self.max_bytes:
            raise BatchRejected(413, f"batch over {self.max_bytes} bytes; send smaller batches")
        async with self.db.session() as session:
            agents = Agents(session, vault=self.vault)
            agent = await agents.active_by_key_id(key_id)
            try:
                key = agents.signing_key(agent) if agent is not None else None
            except VaultError:
                key = None
            if agent is None or key is None or not signature_matches(
                    key, key_id=key_id, timestamp=timestamp, nonce=nonce, body=body,
                    signature=signature):
                raise BatchRejected(401, "bad signature, or an unknown or revoked agent")
            batch = self._parse(body, agent.name, now)
            if not await agents.remember_nonce(agent_id=agent.id, nonce=nonce, at=now):
                raise BatchRejected(409, "replayed batch: this nonce was used before")
            await agents.forget_nonces(before=now - timedelta(seconds=2 * self.window_s))
            agent.last_seen_at = now
            await Health(session).add_observations([
                NewObservation(
                    platform=o.platform, signal=o.signal.value, vantage=agent.name,
                    observed_at=o.observed_at, outcome=o.outcome.value,
                    latency_ms=o.latency_ms, feature=o.feature, target=o.target,
                    detail=o.detail,
                ) for o in batch.observations])
        return len(batch.observations)

    def _parse(self, body: bytes, name: str, now: datetime) -> BatchIn:
        try:
            batch = BatchIn.model_validate_json(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(map(str, first["loc"]))
            raise BatchRejected(422, f"bad batch: {where}: {first['msg']}"[:300]) from None
        if len(batch.observations) > self.max_observations:
            raise BatchRejected(413, f"{len(batch.observations)} observations in one batch; "
                                     f"at most {self.max_observations}")
        if batch.vantage is not None and batch.vantage != name:
            raise BatchRejected(422, f"this token belongs to the agent {name!r}, not "
                                     f"{batch.vantage[:64]!r}")
        oldest = now - timedelta(seconds=MAX_OBSERVATION_AGE_S)
        newest = now + timedelta(seconds=self.window_s)
        for i, o in enumerate(batch.observations):
            if self.platforms is not None and o.platform not in self.platforms:
                raise BatchRejected(422, f"observations.{i}.platform: unknown platform "
                                         f"{o.platform!r}")
            if o.observed_at.tzinfo is None:
                raise BatchRejected(422, f"observations.{i}.observed_at: give a UTC offset")
            if not oldest <= o.observed_at <= newest:
                raise BatchRejected(422, f"observations.{i}.observed_at: outside the last hour")
        return batch


def _signing_headers(headers: Mapping[str, str]) -> tuple[str, str, str, str]:
    values = [headers.get(h, "") for h in
              (AGENT_HEADER, TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER)]
    key_id, timestamp, nonce, signature = values
    if not any(values):
        raise BatchRejected(401, "unsigned batch: sign it with the agent token "
                                 f"({AGENT_HEADER}, {TIMESTAMP_HEADER}, {NONCE_HEADER}, "
                                 f"{SIGNATURE_HEADER})")
    if not (_KEY_ID.match(key_id) and timestamp.isdigit() and len(timestamp) <= 12
            and _NONCE.match(nonce) and _SIGNATURE.match(signature)):
        raise BatchRejected(401, "malformed signing headers")
    return key_id, timestamp, nonce, signature
