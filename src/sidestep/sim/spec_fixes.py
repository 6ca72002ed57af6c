"""What the simulator does to published specs and form bodies before openapi-core reads them.

`sim/specs.py` validates requests against the platforms' own OpenAPI files. Where a file is
wrong in a way the platform is not, or openapi-core reads a form body differently from the
platform, the correction lives here, each the least that lets correct requests pass:

- `adjust_document(spec_ref, document)`:
  - WhatsApp's `sendMessage` (`whatsapp/business-messaging-api_v23.0.yaml`): the message
    schemas combine `allOf` with `additionalProperties: false`, so as published they refuse
    every correct message (../shared/specs/SOURCES.md, last section). The `allOf` members
    reached from that operation's request body lose `additionalProperties: false`; nested
    objects keep theirs.
  - a `SpecRef` with `lenient_one_of` has every `oneOf` read as `anyOf`: Mastodon's TextStatus
    and MediaStatus both match a status with text and media, which Mastodon accepts.
- `TYPED_FORMS` (openapi-core media type deserializers) with `typed_form_fields(...)`: form and
  multipart fields arrive as text, and openapi-core validates them as text, so X's documented
  `segment_index=0` "is not of type 'integer'". While `typed_form_fields` is in force, a field
  whose schema allows integer, number or boolean but not string is turned into that type
  (when its text spells one; otherwise it is left for the check to refuse).
"""

from __future__ import annotations

import contextlib
import contextvars
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from jsonschema_path import SchemaPath
from openapi_core import OpenAPI
from openapi_core.deserializing.media_types import media_type_deserializers
from openapi_core.schema.schemas import get_properties
from openapi_core.templating.paths.exceptions import PathError
from openapi_core.templating.paths.finders import APICallPathFinder
from werkzeug.datastructures import ImmutableMultiDict

from sidestep.sim.profile import SpecRef

__all__ = ["TYPED_FORMS", "adjust_document", "typed_form_fields"]


def adjust_document(spec_ref: SpecRef, document: dict[str, Any]) -> None:
    """Apply the corrections `spec_ref` calls for to a loaded spec document, in place."""
    if spec_ref.file in _ADJUSTMENTS:
        _ADJUSTMENTS[spec_ref.file](document)
    if spec_ref.lenient_one_of:
        _one_of_as_any_of(document)


def _one_of_as_any_of(node: Any) -> None:
    """Rename every schema's `oneOf` to `anyOf` (merged into `allOf` if it has one already)."""
    if isinstance(node, list):
        for item in node:
            _one_of_as_any_of(item)
    elif isinstance(node, dict):
        if isinstance(node.get("oneOf"), list):
            branches = node.pop("oneOf")
            if "anyOf" in node:
                node.setdefault("allOf", []).append({"anyOf": branches})
            else:
                node["anyOf"] = branches
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):  # names, not schemas
                _one_of_as_any_of(list(value.values()))
            elif key not in ("example", "examples"):
                _one_of_as_any_of(value)


def _open_all_of_members(document: dict[str, Any], operation_id: str) -> None:
    """Drop `additionalProperties: false` from the inline `allOf` members of the schemas an
    operation's request body reaches: a member cannot see its siblings' properties, so it
    refuses them (WhatsApp's TextMessage refuses the `to` its BaseMessageProperties demands).
    Nested objects (`text: {body}`) keep theirs, so a misspelt field there is still refused."""
    schemas = document.get("components", {}).get("schemas", {})
    seen: set[int] = set()

    def visit(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                visit(item)
        elif isinstance(node, dict) and id(node) not in seen:
            seen.add(id(node))
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
                visit(schemas.get(ref.rsplit("/", 1)[1]))
            for member in node.get("allOf") or []:
                if isinstance(member, dict) and member.get("additionalProperties") is False:
                    del member["additionalProperties"]
            for key, value in node.items():
                if key not in ("example", "examples"):
                    visit(value)

    for path_item in (document.get("paths") or {}).values():
        for operation in path_item.values() if isinstance(path_item, dict) else ():
            if isinstance(operation, dict) and operation.get("operationId") == operation_id:
                visit(operation.get("requestBody"))


# Corrections of published specs, by file, each the least that makes correct requests pass.
_ADJUSTMENTS: dict[str, Callable[[dict[str, Any]], None]] = {
    # SOURCES.md: sendMessage's allOf + additionalProperties:false refuses correct messages.
    "whatsapp/business-messaging-api_v23.0.yaml":
        lambda document: _open_all_of_members(document, "sendMessage"),
}


# --- form and multipart fields: text on the wire, typed in the schema -----------------------

_INTEGER = re.compile(r"[+-]?\d+")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
# Field name -> the types its schema allows, for the request being checked (set per check).
_form_fields: contextvars.ContextVar[Mapping[str, set[str]] | None] = contextvars.ContextVar(
    "form_fields", default=None
)


def _types_of(schema: SchemaPath, depth: int = 0) -> set[str]:
    """Every type a schema allows, through allOf/anyOf/oneOf; for an array, its items'."""
    if depth > 5:
        return {"string"}  # too deep to tell: leave the field as it came
    declared = (schema / "type").read_str_or_list([]) if "type" in schema else []
    types = {declared} if isinstance(declared, str) else set(declared)
    if "array" in types and "items" in schema:
        types = (types - {"array"}) | _types_of(schema / "items", depth + 1)
    for keyword in ("allOf", "anyOf", "oneOf"):
        for branch in schema / keyword if keyword in schema else ():
            types |= _types_of(branch, depth + 1)
    return types


def _form_field_types(api: OpenAPI, method: str, url: str,
                      content_type: str) -> dict[str, set[str]]:
    """The fields of a form body whose schema allows integer, number or boolean but not
    string; empty when the operation or its form body is not in the spec."""
    parts = urlsplit(url)
    try:
        found = APICallPathFinder(api.spec).find(method.lower(),
                                                 f"{parts.scheme}://{parts.netloc}{parts.path}")
    except PathError:
        return {}
    content = found.operation / "requestBody" / "content"
    mimetype = content_type.split(";")[0].strip().lower()
    if "requestBody" not in found.operation or mimetype not in content:
        return {}
    body = content / mimetype / "schema"
    schemas = [body] + [branch for keyword in ("allOf", "anyOf", "oneOf") if keyword in body
                        for branch in body / keyword]
    fields: dict[str, set[str]] = {}
    for schema in schemas:
        for name, prop in get_properties(schema).items():
            fields.setdefault(name, set()).update(_types_of(prop))
    return {name: types for name, types in fields.items()
            if types & {"integer", "number", "boolean"} and "string" not in types}


def _coerce(value: Any, types: set[str]) -> Any:
    """`value` as the first of `types` its text spells, else unchanged (the check says why)."""
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    if not isinstance(text, str):
        return value
    text = text.strip()
    if "integer" in types and _INTEGER.fullmatch(text):
        return int(text)
    if "number" in types and _NUMBER.fullmatch(text):
        return float(text)
    if "boolean" in types and text.lower() in ("true", "false"):
        return text.lower() == "true"
    return value


def _typed(loads: Callable[..., Any]) -> Callable[..., Any]:
    """openapi-core's own form loader, then the fields `typed_form_fields` named, typed."""

    def load(value: bytes, **parameters: str) -> ImmutableMultiDict[str, Any]:
        fields = _form_fields.get() or {}
        form = loads(value, **parameters)
        return ImmutableMultiDict([(name, _coerce(item, fields[name]) if name in fields else item)
                                   for name, item in form.items(multi=True)])

    return load


TYPED_FORMS = {mimetype: _typed(media_type_deserializers[mimetype])
               for mimetype in ("multipart/form-data", "application/x-www-form-urlencoded")}


@contextlib.contextmanager
def typed_form_fields(api: OpenAPI, *, method: str, url: str,
                      content_type: str) -> Iterator[None]:
    """While in force, `TYPED_FORMS` type the fields of this request's form body (if it has
    one) as the operation's schema declares them."""
    form = content_type.startswith(("multipart/", "application/x-www-form-urlencoded"))
    fields = _form_field_types(api, method, url, content_type) if form else {}
    token = _form_fields.set(fields)
    try:
        yield
    finally:
        _form_fields.reset(token)
