"""`sidestep import` and `sidestep export` from the command line."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sidestep.cli import app
from tests.importers.conftest import sample_tree

runner = CliRunner()


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SIDESTEP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("SIDESTEP_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "data"


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def zip_of(path: Path, members: dict[str, bytes | Path]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, content in members.items():
            zf.writestr(name, content.read_bytes() if isinstance(content, Path) else content)
    return path


def test_import_summarises_and_export_reads_back(tmp_path: Path) -> None:
    for slug in ("acme", "copy"):
        assert invoke("init", "-w", slug, "--email", f"me@{slug}.example",
                      "--password", "long enough pw")[0] == 0
    export = zip_of(tmp_path / "x.zip", sample_tree("x/twoo"))
    code, out, err = invoke("import", "x", str(export), "-w", "acme")
    assert code == 0, err
    assert "imported" in out and " 27" in out and "skipped (repost)" in out
    code, out, _ = invoke("import", "x", str(export), "-w", "acme")
    assert "duplicates skipped" in out and " 27" in out
    code, out, err = invoke("export", "-w", "acme", "--out", str(tmp_path / "acme.zip"))
    assert code == 0, err
    digest = out.split("archive digest")[1].split()[0]
    code, out, err = invoke("import", "sidestep", str(tmp_path / "acme.zip"), "-w", "copy")
    assert code == 0 and " 27" in out
    code, out, _ = invoke("export", "-w", "copy", "--out", str(tmp_path / "copy.zip"))
    assert out.split("archive digest")[1].split()[0] == digest


def test_a_hostile_export_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    invoke("init", "-w", "acme", "--email", "me@acme.example", "--password", "long enough pw")
    evil = zip_of(tmp_path / "evil.zip", {"data/tweets.js": b"window.YTD.tweets.part0 = []",
                                          "../../outside.txt": b"owned"})
    code, _, err = invoke("import", "x", str(evil))
    assert code == 2
    assert "evil.zip refused: path climbing out of the archive" in err
    assert not (tmp_path.parent / "outside.txt").exists()
    code, _, err = invoke("import", "myspace", str(evil))
    assert code == 2 and "no importer 'myspace'" in err
