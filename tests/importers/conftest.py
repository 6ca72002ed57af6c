"""The real export samples (../shared/material/exports), zipped the way platforms ship them."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from sidestep.archive.model import ImportedPost
from sidestep.importers import importer
from sidestep.importers.base import Item, RecordProblem, Skipped
from sidestep.importers.safezip import Limits, open_export

EXPORTS = Path(__file__).resolve().parents[3] / "shared" / "material" / "exports"
if not EXPORTS.is_dir():  # a fresh clone in CI has shared/ beside it
    EXPORTS = Path("/work/shared/material/exports")

ZipMaker = Callable[[dict[str, bytes | Path]], Path]


@pytest.fixture
def make_zip(tmp_path: Path) -> ZipMaker:
    """A zip of {member name: bytes or a file to copy}, in a fresh file each call."""
    counter = iter(range(10_000))

    def make(members: dict[str, bytes | Path]) -> Path:
        path = tmp_path / f"export-{next(counter)}.zip"
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, content in members.items():
                data = content.read_bytes() if isinstance(content, Path) else content
                zf.writestr(name, data)
        return path

    return make


def sample_tree(folder: str) -> dict[str, bytes | Path]:
    """Every file under a sample folder, named relative to it (as in the platform's zip)."""
    root = EXPORTS / folder
    return {str(p.relative_to(root)): p for p in sorted(root.rglob("*")) if p.is_file()}


def read_all(kind: str, path: Path, limits: Limits | None = None) -> list[Item]:
    source = open_export(path, limits=limits)
    try:
        return list(importer(kind).read(source))
    finally:
        source.close()


def posts_of(items: list[Item]) -> list[ImportedPost]:
    return [i for i in items if isinstance(i, ImportedPost)]


def problems_of(items: list[Item]) -> list[RecordProblem]:
    return [i for i in items if isinstance(i, RecordProblem)]


def skipped_of(items: list[Item]) -> list[Skipped]:
    return [i for i in items if isinstance(i, Skipped)]
