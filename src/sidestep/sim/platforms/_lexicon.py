"""A small AT Protocol lexicon checker, and grapheme counting for text limits.

Lexicons are atproto's schema language (https://atproto.com/specs/lexicon); the simulator
checks Bluesky records against the published files in ../shared/specs/bluesky/lexicons the
way a PDS does before it writes a record (types, required fields, `maxLength` in UTF-8 bytes,
`maxGraphemes`, array lengths, unions by `$type`, blobs by MIME type and size). Error texts
follow the reference implementation's wording ("Record/text must not be longer than 300
graphemes"). Not covered: string formats beyond `datetime`, `at-uri`, `did` and `cid`;
`knownValues`; tokens; refs to lexicons not in the directory (accepted as they are).

`grapheme_count` approximates Unicode extended grapheme clusters (UAX #29) without a third-
party package: combining marks, variation selectors, skin-tone modifiers, ZWJ sequences,
regional-indicator pairs, tag sequences and CRLF count as part of the cluster they extend.
"""

from __future__ import annotations

import json
import re
import unicodedata
from functools import cache
from pathlib import Path
from typing import Any

from sidestep.sim.specs import ENV_VAR, find_specs_dir

__all__ = ["LexiconError", "find_lexicons_dir", "grapheme_count", "validate_record"]

_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
_FORMATS = {
    "datetime": _DATETIME,
    "at-uri": re.compile(r"^at://[^/\s]+(/[^/\s]+(/[^/\s]+)?)?$"),
    "did": re.compile(r"^did:[a-z]+:[a-zA-Z0-9._:%-]+$"),
    "cid": re.compile(r"^b[a-z2-7]{20,}$"),
}


class LexiconError(ValueError):
    """A value does not match its lexicon; the message is the PDS's wording."""


def find_lexicons_dir() -> Path | None:
    """The `bluesky/lexicons` directory inside the specs directory, or None."""
    specs = find_specs_dir()
    folder = specs / "bluesky" / "lexicons" if specs is not None else None
    return folder if folder is not None and folder.is_dir() else None


def _extends_cluster(char: str, previous: str) -> bool:
    code = ord(char)
    if previous == "\u200d" or char == "\u200d":
        return True
    if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Mc"):
        return True
    if 0xFE00 <= code <= 0xFE0F or 0x1F3FB <= code <= 0x1F3FF or 0xE0020 <= code <= 0xE007F:
        return True
    return previous == "\r" and char == "\n"


def grapheme_count(text: str) -> int:
    """How many user-perceived characters `text` has (see the module docstring)."""
    count = 0
    previous = ""
    pending_flag = False
    for char in text:
        regional = 0x1F1E6 <= ord(char) <= 0x1F1FF
        if previous and _extends_cluster(char, previous):
            pass
        elif regional and pending_flag:
            pending_flag = False  # second half of a flag
        else:
            count += 1
            pending_flag = regional
        if not regional:
            pending_flag = False
        previous = char
    return count


@cache
def _load(directory: Path, nsid: str) -> dict[str, Any] | None:
    path = directory.joinpath(*nsid.split(".")).with_suffix(".json")
    if not path.is_file():
        return None
    document: dict[str, Any] = json.loads(path.read_text())
    return document


class _Checker:
    def __init__(self, directory: Path, blob_sizes: dict[str, int] | None) -> None:
        self.directory = directory
        self.blob_sizes = blob_sizes  # cid -> real size of an uploaded blob, if known

    def resolve(self, ref: str, context: str) -> dict[str, Any] | None:
        nsid, _, name = ref.partition("#")
        document = _load(self.directory, nsid or context)
        if document is None:
            return None
        found: dict[str, Any] | None = document["defs"].get(name or "main")
        return found

    def check(self, value: Any, schema: dict[str, Any], path: str, context: str) -> None:
        kind = schema.get("type")
        if kind == "ref":
            target = self.resolve(schema["ref"], context)
            if target is not None:
                nsid = schema["ref"].partition("#")[0] or context
                self.check(value, target, path, nsid)
        elif kind == "union":
            self.union(value, schema, path, context)
        elif kind in ("object", "record"):
            self.object(value, schema.get("record", schema), path, context)
        elif kind == "string":
            self.string(value, schema, path)
        elif kind == "integer":
            if not isinstance(value, int) or isinstance(value, bool):
                raise LexiconError(f"{path} must be an integer")
            if "minimum" in schema and value < schema["minimum"]:
                raise LexiconError(f"{path} can not be less than {schema['minimum']}")
            if "maximum" in schema and value > schema["maximum"]:
                raise LexiconError(f"{path} can not be greater than {schema['maximum']}")
        elif kind == "boolean" and not isinstance(value, bool):
            raise LexiconError(f"{path} must be a boolean")
        elif kind == "array":
            self.array(value, schema, path, context)
        elif kind == "blob":
            self.blob(value, schema, path)

    def object(self, value: Any, schema: dict[str, Any], path: str, context: str) -> None:
        if not isinstance(value, dict):
            raise LexiconError(f"{path} must be an object")
        for name in schema.get("required", []):
            if name not in value:
                raise LexiconError(f'{path} must have the property "{name}"')
        nullable = set(schema.get("nullable", []))
        for name, prop in schema.get("properties", {}).items():
            if name in value and not (value[name] is None and name in nullable):
                self.check(value[name], prop, f"{path}/{name}", context)

    def union(self, value: Any, schema: dict[str, Any], path: str, context: str) -> None:
        if not isinstance(value, dict) or not isinstance(value.get("$type"), str):
            raise LexiconError(f'{path} must be an object which includes the "$type" property')
        wanted = value["$type"]
        refs = [r if not r.startswith("#") else f"{context}{r}" for r in schema["refs"]]
        names = {r.removesuffix("#main") for r in refs}
        if wanted.removesuffix("#main") not in names:
            if schema.get("closed"):
                raise LexiconError(f"{path} $type must be one of {', '.join(sorted(names))}")
            return  # open unions accept other types as they are
        target = self.resolve(wanted, context)
        if target is not None:
            self.check(value, target, path, wanted.partition("#")[0])

    def string(self, value: Any, schema: dict[str, Any], path: str) -> None:
        if not isinstance(value, str):
            raise LexiconError(f"{path} must be a string")
        size = len(value.encode("utf-8"))
        if "maxLength" in schema and size > schema["maxLength"]:
            raise LexiconError(f"{path} must not be longer than {schema['maxLength']} characters")
        if "minLength" in schema and size < schema["minLength"]:
            raise LexiconError(f"{path} must not be shorter than {schema['minLength']} characters")
        if "maxGraphemes" in schema and grapheme_count(value) > schema["maxGraphemes"]:
            raise LexiconError(
                f"{path} must not be longer than {schema['maxGraphemes']} graphemes")
        if "minGraphemes" in schema and grapheme_count(value) < schema["minGraphemes"]:
            raise LexiconError(
                f"{path} must not be shorter than {schema['minGraphemes']} graphemes")
        if "enum" in schema and value not in schema["enum"]:
            raise LexiconError(f"{path} must be one of ({'|'.join(schema['enum'])})")
        if "const" in schema and value != schema["const"]:
            raise LexiconError(f"{path} must be {schema['const']}")
        pattern = _FORMATS.get(str(schema.get("format")))
        if pattern is not None and not pattern.match(value):
            raise LexiconError(f"{path} must be a valid {schema['format']}")

    def array(self, value: Any, schema: dict[str, Any], path: str, context: str) -> None:
        if not isinstance(value, list):
            raise LexiconError(f"{path} must be an array")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            raise LexiconError(
                f"{path} must not have more than {schema['maxLength']} elements")
        if "minLength" in schema and len(value) < schema["minLength"]:
            raise LexiconError(f"{path} must not have fewer than {schema['minLength']} elements")
        for index, item in enumerate(value):
            self.check(item, schema["items"], f"{path}/{index}", context)

    def blob(self, value: Any, schema: dict[str, Any], path: str) -> None:
        if not isinstance(value, dict) or value.get("$type") != "blob":
            raise LexiconError(f"{path} should be a blob ref")
        link = value.get("ref", {}).get("$link") if isinstance(value.get("ref"), dict) else None
        mime, size = value.get("mimeType"), value.get("size")
        if not isinstance(link, str) or not isinstance(mime, str) or not isinstance(size, int):
            raise LexiconError(f"{path} should be a blob ref")
        accept = schema.get("accept")
        if accept and not any(_mime_matches(mime, pattern) for pattern in accept):
            raise LexiconError(f"{path} mimeType must be one of {', '.join(accept)}")
        real = self.blob_sizes.get(link, size) if self.blob_sizes is not None else size
        if "maxSize" in schema and real > schema["maxSize"]:
            raise LexiconError(f"{path} file is too large: {real} bytes, "
                               f"maximum {schema['maxSize']} bytes")


def _mime_matches(mime: str, pattern: str) -> bool:
    if pattern in ("*/*", mime):
        return True
    return pattern.endswith("/*") and mime.startswith(pattern[:-1])


def validate_record(collection: str, record: Any, *, directory: Path | None = None,
                    blob_sizes: dict[str, int] | None = None) -> None:
    """Check `record` against the lexicon of `collection`; raise `LexiconError` if invalid.

    `blob_sizes` maps blob CIDs to the size the PDS stored, so a record cannot claim a
    smaller size than the blob has. Raises FileNotFoundError when the lexicons are missing.
    """
    folder = directory or find_lexicons_dir()
    if folder is None:
        raise FileNotFoundError(f"no bluesky/lexicons directory found (set {ENV_VAR})")
    document = _load(folder, collection)
    if document is None:
        raise LexiconError(f"Lexicon not found: lex:{collection}")
    checker = _Checker(folder, blob_sizes)
    if not isinstance(record, dict):
        raise LexiconError("Record must be an object")
    checker.object(record, document["defs"]["main"]["record"], "Record", collection)
