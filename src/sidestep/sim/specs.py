"""Validate requests the simulator accepts against the platforms' published OpenAPI specs.

The simulator must not drift into agreeing with our own adapters' mistakes, so every request
to a profile with a `SpecRef` is checked against the platform's own description (the files
under ../shared/specs, see SOURCES.md there) before the profile's handler runs.

How the files are loaded (after SOURCES.md's notes on openapi-core):

- each file is read once, lazily, and cached for the process (a few take seconds);
- the spec's own validation is switched off: several published files fail a strict check
  (duplicate enum values, `default: 'null'` on integers) though their request schemas work;
- `servers` is replaced by the profile's `SpecRef.server`, with a default for any `{variable}`
  in it (Telegram's `https://api.telegram.org/bot{token}`);
- YAML mapping keys are turned into strings (response codes like `200:` are integers there);
- the corrections of `sim/spec_fixes.py` are applied: WhatsApp's `sendMessage` schemas as
  published refuse every correct message, and a `SpecRef` with `lenient_one_of` has `oneOf`
  read as `anyOf` (Mastodon).

Form and multipart fields arrive as text; a field whose schema declares integer, number or
boolean (and not string) is given that type before it is validated (X's `segment_index=0`).

What is not a problem here: an operation the spec does not describe (the check says so in
`SpecCheck.operation_found`), security requirements (profiles check credentials themselves and
answer in the platform's words), and a multipart part openapi-core could only read as raw bytes
(it cannot type an untyped part; the check lists such parts in `SpecCheck.skipped`), and a
request openapi-core itself fails on (Discord's multipart parts typed `["string", "null"]`
raise a TypeError inside it): that one is "not checked", said in `SpecCheck.note`.

Errors: `SpecsMissing` from `require_specs()` when no specs directory can be found; everything
else degrades to "not validated" with a warning logged once.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import default as email_policy
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import yaml
from jsonschema.exceptions import ValidationError
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.templating.paths.exceptions import PathError
from openapi_core.validation.request.exceptions import InvalidRequestBody
from werkzeug.datastructures import Headers, ImmutableMultiDict

from sidestep.sim.profile import SpecRef
from sidestep.sim.spec_fixes import TYPED_FORMS, adjust_document, typed_form_fields

__all__ = [
    "SpecCheck",
    "SpecsMissing",
    "check_request",
    "find_specs_dir",
    "load_spec",
    "require_specs",
    "validate_request",
]

log = logging.getLogger(__name__)

ENV_VAR = "SIDESTEP_SPECS_DIR"
_REPO_ROOT = Path(__file__).resolve().parents[3]
_MAX_PROBLEM_CHARS = 300


class SpecsMissing(RuntimeError):
    """No specs directory was found; the message says where it was looked for."""


@dataclass(frozen=True, slots=True)
class SpecCheck:
    """The outcome of checking one request against one spec.

    `problems` is empty both when the request is valid and when it could not be checked;
    `validated` and `operation_found` tell those apart, and `note` says why in words.
    """

    problems: list[str] = field(default_factory=list)
    validated: bool = False  # the spec was loaded and the operation found in it
    operation_found: bool = False
    skipped: list[str] = field(default_factory=list)  # errors deliberately not counted
    note: str = ""


def _candidates() -> list[Path]:
    env = os.environ.get(ENV_VAR)
    found = [Path(env)] if env else []
    return found + [_REPO_ROOT.parent / "shared" / "specs", Path.cwd().parent / "shared" / "specs"]


def find_specs_dir() -> Path | None:
    """The specs directory: $SIDESTEP_SPECS_DIR, else ../shared/specs from the repo or cwd.

    Returns None when none of those exists (an explicit $SIDESTEP_SPECS_DIR that does not
    exist is not silently replaced by a default: it yields None too).
    """
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env) if Path(env).is_dir() else None
    for candidate in _candidates():
        if candidate.is_dir():
            return candidate
    return None


def require_specs() -> Path:
    """The specs directory, or raise `SpecsMissing` naming every place that was tried."""
    found = find_specs_dir()
    if found is None:
        tried = ", ".join(str(c) for c in _candidates())
        raise SpecsMissing(
            f"no platform specs directory found (tried {tried}); set {ENV_VAR} to the "
            "directory that holds discord/openapi.json, mastodon/schema.json, ..."
        )
    return found


# ---------------------------------------------------------------------------------------------
# loading (once per file and server, lazily, thread-safe: the server loads in a worker thread)

_cache: dict[tuple[Path, str, bool], OpenAPI | str] = {}  # an OpenAPI, or why there is none
_cache_lock = threading.Lock()
_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        log.warning(message)


def _stringify_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _stringify_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_stringify_keys(v) for v in value]
    return value


def _read_document(path: Path) -> Any:
    if path.suffix in (".yaml", ".yml"):
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml is ~7x faster
        with path.open("rb") as handle:
            return _stringify_keys(yaml.load(handle, Loader=loader))  # noqa: S506 - safe loader
    return json.loads(path.read_bytes())


def _server_entry(server: str) -> dict[str, Any]:
    variables = re.findall(r"\{([^}]+)\}", server)
    entry: dict[str, Any] = {"url": server}
    if variables:
        entry["variables"] = {name: {"default": "x"} for name in variables}
    return entry


def _drop_security(document: dict[str, Any]) -> None:
    """Remove security requirements: profiles check credentials in their own words, and
    openapi-core stops before the body when security fails (and warns on OAuth2 schemes)."""
    document.pop("security", None)
    for path_item in (document.get("paths") or {}).values():
        for operation in path_item.values() if isinstance(path_item, dict) else ():
            if isinstance(operation, dict):
                operation.pop("security", None)


def _load(spec_ref: SpecRef, directory: Path) -> OpenAPI | str:
    path = directory / spec_ref.file
    key = (path, spec_ref.server, spec_ref.lenient_one_of)
    with _cache_lock:
        if key in _cache:
            return _cache[key]
        loaded: OpenAPI | str
        try:
            document = _read_document(path)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            loaded = f"spec {path} could not be read: {exc}"
            _warn_once(loaded)
        else:
            if not isinstance(document, dict) or "openapi" not in document:
                loaded = f"spec {path} is not an OpenAPI document; requests are not validated"
                _warn_once(loaded)
            else:
                document["servers"] = [_server_entry(spec_ref.server)]
                _drop_security(document)
                adjust_document(spec_ref, document)
                # None switches the spec check off (documented; the stub type omits it).
                config = Config(spec_validator_cls=None,  # type: ignore[arg-type]
                                extra_media_type_deserializers=TYPED_FORMS)
                loaded = OpenAPI.from_dict(document, config=config)
        _cache[key] = loaded
        return loaded


def load_spec(spec_ref: SpecRef, specs_dir: Path | None = None) -> str:
    """Load (and cache) one spec now; return "loaded", or why requests will not be checked."""
    directory = specs_dir or find_specs_dir()
    if directory is None:
        return "no specs directory"
    api = _load(spec_ref, directory)
    return api if isinstance(api, str) else "loaded"


# ---------------------------------------------------------------------------------------------
# checking


class _SpecRequest:
    """A request in the shape openapi-core's `Request` protocol reads."""

    def __init__(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None):
        parts = urlsplit(url)
        self.host_url = f"{parts.scheme}://{parts.netloc}"
        self.path = parts.path or "/"
        self.method = method.lower()
        self.body = body if body else None
        lowered = {k.lower(): v for k, v in headers.items()}
        self.content_type_header = lowered.get("content-type", "application/json")
        self.content_type = self.content_type_header.lower()
        cookie = SimpleCookie(lowered.get("cookie", ""))
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(parse_qsl(parts.query, keep_blank_values=True)),
            header=Headers(list(headers.items())),
            cookie=ImmutableMultiDict({k: m.value for k, m in cookie.items()}),
        )


def _cap(text: str) -> str:
    return text if len(text) <= _MAX_PROBLEM_CHARS else text[: _MAX_PROBLEM_CHARS - 3] + "..."


def _describe_schema_error(error: ValidationError) -> str:
    # oneOf/anyOf failures say only "not valid under any of the given schemas". The deepest
    # sub-error names the field and the real reason (jsonschema's best_match prefers shallow
    # ones, which for Mastodon's TextStatus|MediaStatus|PollStatus means "media_ids missing").
    chosen = error
    while chosen.context:
        chosen = max(chosen.context, key=lambda e: len(e.absolute_path))
    where = "".join(f"[{p!r}]" for p in chosen.absolute_path)
    return _cap(f"body{where}: {chosen.message}")


def _schema_errors(exc: Exception) -> list[ValidationError]:
    cause = exc.__cause__
    errors = getattr(cause, "schema_errors", None)
    return list(errors) if errors else []


def check_request(
    spec_ref: SpecRef,
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes | None,
    specs_dir: Path | None = None,
) -> SpecCheck:
    """Check one request against the spec `spec_ref` names; see `SpecCheck` for the result.

    `url` is the full URL as the platform would see it (scheme, real hostname, path, query).
    Never raises for a bad request or a missing spec: those are reported in the result.
    """
    directory = specs_dir or find_specs_dir()
    if directory is None:
        _warn_once(f"no platform specs directory found; requests are not validated ({ENV_VAR})")
        return SpecCheck(note="no specs directory")
    api = _load(spec_ref, directory)
    if isinstance(api, str):
        return SpecCheck(note=api)
    request = _SpecRequest(method, url, headers, body)
    multipart = request.content_type.startswith("multipart/")
    via = ""
    try:
        errors = _request_errors(api, request)
    except Exception as exc:  # openapi-core's own bug on this request: do not answer a 500
        as_json = _payload_json_request(request, url, headers) if multipart else None
        try:
            if as_json is None:
                raise
            # Discord-style uploads carry the message as a JSON part, `payload_json`; the same
            # operation's JSON body schema checks that part, which holds everything but files.
            errors, request, multipart = _request_errors(api, as_json), as_json, False
            via = " (multipart checked through its payload_json part)"
        except Exception:
            note = f"not checked: openapi-core failed on this request ({type(exc).__name__}: {exc})"
            _warn_once(f"{spec_ref.file}: {method} {urlsplit(url).path}: {_cap(note)}")
            return SpecCheck(operation_found=True, note=_cap(note))
    problems: list[str] = []
    skipped: list[str] = []
    for error in errors:
        if isinstance(error, PathError):
            return SpecCheck(note=f"not in the spec: {error}")
        schema_errors = _schema_errors(error) if isinstance(error, InvalidRequestBody) else []
        if not schema_errors:
            cause = f" ({error.__cause__})" if error.__cause__ else ""
            problems.append(_cap(f"{error}{cause}"))
            continue
        for schema_error in schema_errors:
            text = _describe_schema_error(schema_error)
            if multipart and isinstance(schema_error.instance, bytes):
                skipped.append(text)  # openapi-core reads untyped multipart parts as bytes
            else:
                problems.append(text)
    return SpecCheck(
        problems=problems,
        validated=True,
        operation_found=True,
        skipped=skipped,
        note=("invalid" if problems else "valid") + via,
    )


def _payload_json_request(
    request: _SpecRequest, url: str, headers: Mapping[str, str]
) -> _SpecRequest | None:
    """The multipart request as a JSON request of its `payload_json` part, if it has one."""
    if request.body is None:
        return None
    message = BytesParser(policy=email_policy).parsebytes(
        f"Content-Type: {request.content_type_header}\r\n\r\n".encode() + request.body
    )
    if not message.is_multipart():
        return None
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "payload_json":
            payload = part.get_payload(decode=True)
            if not isinstance(payload, bytes):
                return None
            json_headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
            json_headers["content-type"] = "application/json"
            return _SpecRequest(request.method.upper(), url, json_headers, payload)
    return None


def _request_errors(api: OpenAPI, request: _SpecRequest) -> Iterator[Exception]:
    """openapi-core's errors for the request, its form fields typed first (collected at once:
    the typing lasts only while openapi-core runs). Raises whatever openapi-core raises."""
    with typed_form_fields(api, method=request.method, url=request.host_url + request.path,
                           content_type=request.content_type):
        return iter(list(api.iter_request_errors(request)))


def validate_request(
    spec_ref: SpecRef,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes | None,
) -> list[str]:
    """The problems the spec finds in a request: empty when valid *or* not checkable.

    Use `check_request` to learn which of those it was.
    """
    return check_request(spec_ref, method=method, url=url, headers=headers, body=body).problems
