"""Prepared messages: Jinja2 in a sandbox, strict about names, capped in length.

A playbook's text is user input, so it is rendered by a `SandboxedEnvironment` (no access to
attributes that reach Python internals) with `StrictUndefined` (a misspelt name fails rather
than printing nothing). The context is plain data:

    platform      the name of the platform that fell ("Facebook"), or the names joined
    platforms     every affected platform's name
    owner         the owner company ("Meta")
    status        down / degraded / local_outage
    since, now    "15:39 UTC" (the incident's start, the time of sending)
    alternatives  the workspace's channels that are up: [{name, platform, handle}]
    brand         the workspace's name

`render` raises `MessageTemplateError` with the reason; nothing is sent then.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

__all__ = ["MAX_MESSAGE", "MessageTemplateError", "render"]

MAX_MESSAGE = 5000
_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, trim_blocks=True,
                            lstrip_blocks=True)


class MessageTemplateError(ValueError):
    """A message template that does not compile or render; the text says why."""


def render(source: str, context: Mapping[str, Any]) -> str:
    """The message rendered with `context`, stripped; raises `MessageTemplateError`."""
    try:
        text = _ENV.from_string(source).render(**context).strip()
    except TemplateError as exc:
        raise MessageTemplateError(f"the message template failed: {exc}") from exc
    except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
        raise MessageTemplateError(f"the message template failed: {exc}") from exc
    if not text:
        raise MessageTemplateError("the message rendered empty")
    if len(text) > MAX_MESSAGE:
        raise MessageTemplateError(f"the message is longer than {MAX_MESSAGE} characters")
    return text
