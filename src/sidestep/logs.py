"""Structured logs (structlog) with secrets redacted before anything is written.

A field whose name looks like a secret is masked, and so is any value registered with
`register_secret` wherever it appears inside another string (an URL with a bot token in it).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRET_FIELD = re.compile(r"token|secret|password|authorization|api_key|cookie", re.I)
_known_secrets: set[str] = set()
MASK = "***"


def register_secret(value: str) -> None:
    """Mask `value` wherever it appears in a log line from now on (ignored if very short)."""
    if len(value) >= 6:
        _known_secrets.add(value)


def redact_text(text: str) -> str:
    for secret in _known_secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: MASK if _SECRET_FIELD.search(str(k)) else _redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redact(v) for v in value)
    return value


def redact_processor(
    _logger: object, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        if _SECRET_FIELD.search(key):
            event_dict[key] = MASK
        else:
            event_dict[key] = _redact(event_dict[key])
    return event_dict


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is at the time of writing, not at set-up time."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


class _RedactingFilter(logging.Filter):
    """Applies the same masking to stdlib records (uvicorn, httpx, SQLAlchemy)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _known_secrets:
            record.msg = redact_text(str(record.msg))
            if record.args:
                args = record.args if isinstance(record.args, tuple) else (record.args,)
                record.args = tuple(_redact(a) for a in args)
        return True


def configure_logging(level: str = "info", *, json_output: bool = False) -> None:
    """Set up structlog and the stdlib root logger once per process."""
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    handler = _StderrHandler()
    handler.addFilter(_RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    # Migrations announce every step at INFO; an operator needs to hear only of problems.
    logging.getLogger("alembic").setLevel(max(numeric, logging.WARNING))
    # httpx logs every request's URL at INFO: the monitor probes constantly, and some
    # platforms put the token in the path (Telegram's /bot<token>/), so only problems pass.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
    renderer: Any = (
        structlog.processors.JSONRenderer() if json_output else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_processor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        # Through the stdlib root logger, so one handler (and its redaction) serves both.
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )
