"""Graph API mechanics the four Meta adapters share: the error body, the error table, the
usage headers, and one request helper that turns every answer into data or the taxonomy.

Facts followed:

- Error body `{"error": {"message", "type", "code", "error_subcode", "is_transient",
  "error_user_title", "error_user_msg", "fbtrace_id"}}` (WhatsApp adds `error_data.details`)
  and the code table: 1 unknown (possibly downtime), 2 service (downtime), 3 capability,
  4 / 17 / 341 throttling, 10 and 200-299 permissions, 102 session, 190 token (subcodes 458
  to 467 and 492 all mean "get a new token"), 368 blocked for policy violations, 506
  duplicate post. https://developers.facebook.com/docs/graph-api/guides/error-handling
- Throttling comes as an error code (32 Page, 613, 80001-80006 business use cases), not as
  HTTP 429 outside WhatsApp, and Graph sends no `Retry-After`: the wait is
  `estimated_time_to_regain_access` (minutes) in `X-Business-Use-Case-Usage`.
  https://developers.facebook.com/docs/graph-api/overview/rate-limiting

Tokens travel in the `Authorization` header, never in a URL, so no transport error message
(which names the URL) can show one; each token is registered with the log redactor too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from sidestep.channels.errors import (
    AuthExpired,
    PlatformOutage,
    PublishError,
    RateLimited,
    Rejected,
    Transient,
    Unknown,
    capped,
)
from sidestep.channels.http import PlatformHttp, generic_status_error, retry_after_s
from sidestep.clock import Clock
from sidestep.domain.content import Content, Problem
from sidestep.logs import redact_text, register_secret

M = TypeVar("M", bound=BaseModel)
DEFAULT_WAIT_S = 60.0
# Graph's answer to a node that is not there (or not ours): code 100, subcode 33.
MISSING_NODE = (100, 33)


class Action(StrEnum):
    """What the caller must do about an error: the taxonomy class it becomes."""

    TRANSIENT = "transient"
    OUTAGE = "outage"
    RATE_LIMITED = "rate_limited"
    AUTH = "auth"
    REJECTED = "rejected"
    RECIPIENT = "recipient"  # one recipient of a message cannot get it; others still can


class RecipientRefused(Rejected):
    """A message was refused for its recipient alone (undeliverable, opted out): a broadcast
    goes on with the others. A `Rejected`, so where nothing handles it, it is not retried."""


@dataclass(frozen=True, slots=True)
class Rule:
    """One row of an error table: the action, and why, in words a marketer understands."""

    action: Action
    why: str
    wait_s: float = DEFAULT_WAIT_S  # for RATE_LIMITED when no header says how long


ErrorTable = Mapping[tuple[int, int | None], Rule]


def _rows(codes: range | tuple[int, ...], rule: Rule) -> dict[tuple[int, int | None], Rule]:
    return {(code, None): rule for code in codes}


_PERMISSION = Rule(Action.AUTH, "the connection lacks a permission it needs; reconnect the"
                   " channel and grant every permission asked for")
# Graph's own table; each adapter extends it with its product's codes (`table_with`).
GRAPH_ERRORS: dict[tuple[int, int | None], Rule] = {
    (1, None): Rule(Action.TRANSIENT, "an unknown error, possibly brief downtime"),
    (2, None): Rule(Action.OUTAGE, "the service is temporarily unavailable"),
    (3, None): _PERMISSION,
    (10, None): _PERMISSION,
    **_rows(range(200, 300), _PERMISSION),
    **_rows((4, 17, 32, 341, 613, *range(80001, 80007)),
            Rule(Action.RATE_LIMITED, "too many calls for now")),
    **_rows((102, 104, 190), Rule(Action.AUTH, "the access token has expired or was revoked;"
                                  " reconnect the channel")),
    MISSING_NODE: Rule(Action.AUTH, "the account in the channel's settings cannot be reached"
                       " with its token; reconnect the channel"),
    (100, None): Rule(Action.REJECTED, "the post has a value the platform does not accept"),
    (368, None): Rule(Action.REJECTED, "the platform blocked this action as a policy"
                      " violation"),
}


def table_with(extra: ErrorTable) -> dict[tuple[int, int | None], Rule]:
    """Graph's table with a product's rows added (theirs win)."""
    return {**GRAPH_ERRORS, **extra}


class GraphError(BaseModel):
    model_config = ConfigDict(extra="ignore")

    message: str = ""
    type: str = ""
    code: int
    error_subcode: int | None = None
    is_transient: bool | None = None
    error_user_title: str | None = None
    error_user_msg: str | None = None
    fbtrace_id: str | None = None
    error_data: dict[str, Any] | None = None

    @property
    def details(self) -> str:
        """WhatsApp's `error_data.details`, the most specific explanation, or ''."""
        value = (self.error_data or {}).get("details")
        return value if isinstance(value, str) else ""

    @property
    def code_text(self) -> str:
        return str(self.code) + (f"/{self.error_subcode}" if self.error_subcode else "")


class GraphErrorBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    error: GraphError


class UseCaseUsage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: str = ""
    estimated_time_to_regain_access: float = 0  # minutes


def regain_wait_s(response: httpx.Response, *, now: datetime, default_s: float) -> float:
    """Seconds until access returns: the largest `estimated_time_to_regain_access` in
    `X-Business-Use-Case-Usage` (minutes), else `Retry-After`, else `default_s`."""
    raw = response.headers.get("x-business-use-case-usage")
    minutes = 0.0
    if raw:
        try:
            usage = json.loads(raw)
            for entries in usage.values() if isinstance(usage, dict) else ():
                for entry in entries if isinstance(entries, list) else ():
                    minutes = max(minutes, UseCaseUsage.model_validate(entry)
                                  .estimated_time_to_regain_access)
        except (ValueError, ValidationError):
            minutes = 0.0
    if minutes > 0:
        return minutes * 60.0
    return retry_after_s(response, now=now, default_s=default_s)


def graph_error(response: httpx.Response) -> GraphError | None:
    """The Graph error in a response body, or None when the body is not one."""
    try:
        return GraphErrorBody.model_validate_json(response.content).error
    except ValidationError:
        return None


def node(object_id: str) -> str:
    """An id as one path segment (ids come from stored settings: never trust their shape)."""
    return quote(object_id, safe="")


class GraphApi:
    """Requests to one Meta product through `PlatformHttp`, answered as data or the taxonomy."""

    def __init__(self, http: PlatformHttp, *, name: str, base_url: str, clock: Clock,
                 table: ErrorTable) -> None:
        self.http, self.name, self.clock, self.table = http, name, clock, table
        self.base_url = base_url.rstrip("/")

    async def call(self, method: str, path: str, *, token: str, changes: bool,
                   absent_ok: bool = False, **kwargs: Any) -> dict[str, Any]:
        """Send one request; return the JSON object it answered.

        `changes=True` for calls that may make something visible (see `PlatformHttp`).
        With `absent_ok`, Graph's "object does not exist" answer returns {} instead of
        raising (a delete of what is gone already). Raises the taxonomy: the error table for
        Graph error bodies, `generic_status_error` for other statuses, and for an answer that
        cannot be read, Unknown(maybe_sent=True) on a changing call, Transient otherwise.
        """
        register_secret(token)
        headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
        response = await self.http.request(method, f"{self.base_url}/{path.lstrip('/')}",
                                           changes=changes, headers=headers, **kwargs)
        error = graph_error(response)
        if error is not None:
            if absent_ok and (error.code, error.error_subcode) == MISSING_NODE:
                return {}
            raise self.classify(error, response)
        body = _json_object(response)
        if body is None or response.status_code >= 400:
            raise self.foreign(response, changes=changes)
        return body

    def parse(self, model: type[M], body: dict[str, Any], *, changes: bool) -> M:
        """`body` as `model`; a success answer without the fields we need is unreadable."""
        try:
            return model.model_validate(body)
        except ValidationError as exc:
            what = f"{self.name} answered without the expected {model.__name__} fields"
            if changes:
                raise Unknown(what + "; the post may exist", maybe_sent=True) from exc
            raise Transient(what) from exc

    def classify(self, error: GraphError, response: httpx.Response) -> PublishError:
        """The taxonomy for a Graph error body, by (code, subcode), then code, then HTTP."""
        rule = self.table.get((error.code, error.error_subcode)) or self.table.get(
            (error.code, None))
        said = error.error_user_msg or error.details or error.message
        detail = f"{capped(said, 300)} (code {error.code_text}, fbtrace_id {error.fbtrace_id})"
        kw: dict[str, Any] = {"platform_code": error.code_text,
                              "http_status": response.status_code}
        if rule is None:
            if error.is_transient or response.status_code >= 500:
                return Transient(redact_text(f"{self.name}: {detail}"), **kw)
            return Unknown(redact_text(f"{self.name} answered an unlisted error: {detail}"),
                           maybe_sent=False, **kw)
        message = redact_text(f"{self.name}: {rule.why}: {detail}")
        match rule.action:
            case Action.TRANSIENT:
                return Transient(message, **kw)
            case Action.OUTAGE:
                return PlatformOutage(message, **kw)
            case Action.RATE_LIMITED:
                wait_s = regain_wait_s(response, now=self.clock.now(), default_s=rule.wait_s)
                return RateLimited(message, retry_after_s=wait_s, **kw)
            case Action.AUTH:
                return AuthExpired(message, **kw)
            case Action.REJECTED:
                return Rejected(message, **kw)
            case Action.RECIPIENT:
                return RecipientRefused(message, **kw)
        raise AssertionError(rule.action)  # pragma: no cover - StrEnum is exhaustive above

    def foreign(self, response: httpx.Response, *, changes: bool) -> PublishError:
        """An answer that is not Graph's: a proxy's HTML page, broken or alien JSON.

        On a changing call the request may have been carried out behind the proxy, so only
        statuses that say it was not (503, 4xx) keep their usual reading
        (`generic_status_error`); the rest (2xx, 500, 502, 504) become
        Unknown(maybe_sent=True). Elsewhere an unreadable 2xx is Transient.
        """
        status = response.status_code
        snippet = capped(response.content[:200].decode("utf-8", "replace"), 120)
        what = f"{self.name} answered HTTP {status} with something unreadable: {snippet!r}"
        if changes and not (status == 503 or 400 <= status < 500):
            return Unknown(redact_text(what + "; the post may exist"), maybe_sent=True,
                           http_status=status)
        if status >= 400:
            error = generic_status_error(response, platform=self.name, now=self.clock.now())
            masked = error if isinstance(error, PublishError) else Transient(str(error))
            masked.args = (redact_text(str(masked)),)
            return masked
        return Transient(redact_text(what), http_status=status)


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def need(credentials: Mapping[str, str], fields: tuple[str, ...], name: str) -> dict[str, str]:
    """The credential values; AuthExpired naming the missing or empty fields (never values)."""
    missing = [f for f in fields if not credentials.get(f)]
    if missing:
        raise AuthExpired(f"the {name} channel's settings lack {', '.join(missing)}; "
                          "reconnect the channel")
    return {f: credentials[f].strip() for f in fields}


class _Validating(Protocol):
    def validate(self, content: Content) -> list[Problem]: ...


def refuse_invalid(adapter: _Validating, content: Content) -> None:
    """Rejected, before any request, when `validate()` finds problems: the platform would
    refuse the post anyway, or worse, take part of it (a video silently left out)."""
    problems = adapter.validate(content)
    if problems:
        raise Rejected(" ".join(p.message for p in problems))
