"""Playbook files: TOML validated with pydantic; errors name the file, the field and the line.

    name = "meta-down"                      # [a-z0-9-], unique in a workspace
    title = "Meta is down"
    language = "en"                         # which of each message's languages is sent

    [[trigger]]                             # any one trigger starts a run
    kind = "platform"                       # platform | owner | local_outage |
                                            # deliverable_at_risk | manual
    platforms = ["facebook", "instagram"]   # platform: these (empty: any rented platform)
    owner = "Meta"                          # owner: every platform of this company
    status = ["down"]                       # down and/or degraded
    features = ["media"]                    # degraded only in these features (empty: any)
    for = "00:05:00"                        # ... for at least this long

    [conditions]
    hours = "08:00-22:00"                   # local time window (wraps past midnight)
    timezone = "Europe/Rome"
    channels_affected = true                # only if the workspace has a channel there

    [approval]
    mode = "auto"                           # auto | required
    within = "00:10:00"                     # required: wait this long for a person
    on_timeout = "go"                       # go | abort

    [[action]]                              # in order; see ACTION_KINDS
    do = "post_message"
    to = ["telegram", "x", "bluesky"]
    message = "outage"

    [[recover]]                             # once every affected platform is up again
    do = "resume"

    [message.outage]                        # Jinja2 (sandboxed): platform, platforms,
    en = "{{ platform }} is down ..."       # owner, since, now, alternatives, brand

Errors: `PlaybookError` (a ValueError) whose message starts with `file:line: field:`.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from sidestep.sim.scenario import parse_offset

__all__ = ["ACTION_KINDS", "Action", "Approval", "Conditions", "Playbook", "PlaybookError",
           "Trigger", "load_playbook", "parse_playbook"]

_KEY = r"^[a-z][a-z0-9_-]*$"
_STRICT = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
Duration = Annotated[timedelta, BeforeValidator(parse_offset)]
LANGUAGES = ("en", "es", "it", "ru")
# What each action kind does (the engine's `actions.py` carries them out).
ACTION_KINDS = {
    "hold": "hold due posts on the affected channels (dispatch policy: hold)",
    "reroute": "reroute due posts on the affected channels to fallbacks that are up",
    "post_message": "publish a prepared message on channels that are up",
    "send_crisis_email": "send the crisis email (the channels up now) to a list",
    "set_banner": "set the site's banner to a prepared message",
    "clear_banner": "remove the site's banner",
    "alert_team": "alert the team's Apprise targets that the incident does not touch",
    "notify_partners": "email the partners whose deliverables are at risk",
    "webhook": "POST the run as JSON to a public https URL",
    "resume": "put held posts of the affected channels back to the workspace's policy",
    "catch_up": "let rerouted posts go out on their own platform too, now it is back",
    "trigger_playbook": "start another playbook by hand (loops are detected and stopped)",
}
_NEEDS_MESSAGE = {"post_message", "set_banner"}


class PlaybookError(ValueError):
    """A playbook that cannot be read or validated; the message says where and why."""


class Trigger(BaseModel):
    model_config = _STRICT
    kind: Literal["platform", "owner", "local_outage", "deliverable_at_risk", "manual"]
    platforms: list[Annotated[str, Field(pattern=_KEY)]] = []
    owner: str | None = None
    status: list[Literal["down", "degraded"]] = ["down"]
    features: list[str] = []
    for_: Duration = Field(default=timedelta(0), alias="for")
    exclude_owners: list[str] = []  # platform: not the platforms of these companies

    @model_validator(mode="after")
    def _coherent(self) -> Trigger:
        if self.kind == "owner" and not self.owner:
            raise ValueError("an owner trigger needs `owner` (e.g. \"Meta\")")
        if self.kind != "owner" and self.owner:
            raise ValueError("`owner` is only for kind = \"owner\"")
        if self.kind not in ("platform",) and self.platforms:
            raise ValueError("`platforms` is only for kind = \"platform\"")
        if self.features and "degraded" not in self.status:
            raise ValueError("`features` needs \"degraded\" in `status`")
        return self


class Conditions(BaseModel):
    model_config = _STRICT
    hours: str | None = Field(default=None, pattern=r"^\d\d:\d\d-\d\d:\d\d$")
    timezone: str = "UTC"
    channels_affected: bool = True

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value


class Approval(BaseModel):
    model_config = _STRICT
    mode: Literal["auto", "required"] = "auto"
    within: Duration = timedelta(minutes=10)
    on_timeout: Literal["go", "abort"] = "abort"


class Action(BaseModel):
    model_config = _STRICT
    do: Literal["hold", "reroute", "post_message", "send_crisis_email", "set_banner",
                "clear_banner", "alert_team", "notify_partners", "webhook", "resume",
                "catch_up", "trigger_playbook"]
    to: list[Annotated[str, Field(pattern=_KEY)]] = []   # platforms (post_message, reroute)
    message: str | None = None                          # a key of [message]
    list_name: str | None = Field(default=None, alias="list")  # send_crisis_email
    url: str | None = Field(default=None, pattern=r"^https?://\S+$")  # webhook
    playbook: str | None = Field(default=None, pattern=_KEY)  # trigger_playbook
    from_email: str | None = None                       # emails: sender (default: settings)

    @model_validator(mode="after")
    def _coherent(self) -> Action:
        if self.do in _NEEDS_MESSAGE and not self.message:
            raise ValueError(f"`{self.do}` needs `message`, a key of [message]")
        if self.do == "webhook" and not self.url:
            raise ValueError("`webhook` needs `url`")
        if self.do == "trigger_playbook" and not self.playbook:
            raise ValueError("`trigger_playbook` needs `playbook`")
        if self.do == "post_message" and not self.to:
            raise ValueError("`post_message` needs `to`, the platforms to post on")
        if self.do == "send_crisis_email" and not self.list_name:
            raise ValueError("`send_crisis_email` needs `list`, the mailing list's name")
        return self


class Playbook(BaseModel):
    model_config = _STRICT
    name: str = Field(pattern=_KEY, max_length=100)
    title: str = Field(min_length=1, max_length=200)
    description: str = ""
    language: Literal["en", "es", "it", "ru"] = "en"
    trigger: list[Trigger] = Field(min_length=1)
    conditions: Conditions = Conditions()
    approval: Approval = Approval()
    action: list[Action] = Field(min_length=1)
    recover: list[Action] = []
    recover_after: Duration = timedelta(0)
    message: dict[Annotated[str, Field(pattern=_KEY)],
                  dict[Literal["en", "es", "it", "ru"], str]] = {}
    sha256: str = ""  # of the file; filled by the loader

    @model_validator(mode="after")
    def _messages(self) -> Playbook:
        for i, action in enumerate([*self.action, *self.recover]):
            if action.message is not None and action.message not in self.message:
                where = f"action[{i}]" if i < len(self.action) else \
                    f"recover[{i - len(self.action)}]"
                raise ValueError(f"{where}.message: no [message.{action.message}] table")
        for key, texts in self.message.items():
            if "en" not in texts:
                raise ValueError(f"message.{key}: every message needs an `en` text")
        return self

    def text(self, key: str) -> str:
        """The message `key` in the playbook's language, else English."""
        texts = self.message[key]
        return texts.get(self.language) or texts["en"]


def parse_playbook(text: str, *, source: str = "<playbook>",
                   language: str | None = None) -> Playbook:
    """Validate a playbook's TOML text; raises `PlaybookError` naming `source` and the line."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PlaybookError(f"{source}: not valid TOML: {exc}") from exc
    if language is not None:
        data["language"] = language
    data["sha256"] = hashlib.sha256(text.encode()).hexdigest()
    try:
        playbook = Playbook.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = [str(p) for p in first["loc"]]
        field = _dotted(first["loc"])
        line = _line_of(text, loc)
        where = f"{source}:{line}" if line else source
        raise PlaybookError(f"{where}: {field or '(top)'}: {first['msg']}"
                            + (f" ({len(exc.errors()) - 1} more)" if len(exc.errors()) > 1
                               else "")) from exc
    return playbook


def load_playbook(path: str | Path, *, language: str | None = None) -> Playbook:
    """Read and validate a playbook file; raises `PlaybookError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PlaybookError(f"{path}: cannot be read: {exc}") from exc
    return parse_playbook(text, source=path.name, language=language)


def _dotted(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _line_of(text: str, loc: list[str]) -> int | None:
    """The line of the table (and key) a validation error points at, found by scanning."""
    lines = text.splitlines()
    line = None
    if loc and not loc[0].isdigit():
        table, index = loc[0], int(loc[1]) if len(loc) > 1 and loc[1].isdigit() else None
        seen = -1
        for n, raw in enumerate(lines, 1):
            stripped = raw.strip()
            if index is not None and stripped == f"[[{table}]]":
                seen += 1
                if seen == index:
                    line = n
            elif index is None and re.match(rf"^\[{re.escape(table)}[.\]]", stripped):
                line = n
                break
            elif index is None and re.match(rf"^{re.escape(table)}\s*=", stripped):
                return n
        key = loc[2] if index is not None and len(loc) > 2 else None
        if line is not None and key is not None and not key.isdigit():
            for n in range(line, len(lines)):
                stripped = lines[n].strip()
                if stripped.startswith("["):
                    break
                if re.match(rf"^{re.escape(key)}\s*=", stripped):
                    return n + 1
    return line


def to_dict(playbook: Playbook) -> dict[str, Any]:
    return playbook.model_dump(mode="json", by_alias=True)
