"""Importers of the platforms' own data exports, one module each, found by kind.

Each module declares `IMPORTER = ImporterSpec(kind, platform, description, read)`; the
catalogue below is the one list the CLI (`sidestep import <kind>`) and the tests read.
"""

from __future__ import annotations

import importlib

from sidestep.importers.base import ImporterSpec

KINDS = ("x", "facebook", "instagram", "linkedin", "mastodon", "tiktok", "bluesky", "youtube",
         "sidestep")


class UnknownImporter(KeyError):
    def __str__(self) -> str:
        return f"no importer {self.args[0]!r}; choose one of: {', '.join(KINDS)}"


def importer(kind: str) -> ImporterSpec:
    """The importer for `kind`; UnknownImporter when there is none."""
    if kind not in KINDS:
        raise UnknownImporter(kind)
    spec: ImporterSpec = importlib.import_module(f"sidestep.importers.{kind}").IMPORTER
    return spec
