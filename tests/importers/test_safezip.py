"""Hostile exports are refused with a clear error, and nothing is written anywhere."""

from __future__ import annotations

import json
import os
import stat
import zipfile
from pathlib import Path

import pytest

from sidestep.importers.safezip import ExportRejected, Limits, check_member_name, open_export
from tests.importers.conftest import ZipMaker, read_all

TWEETS = b'window.YTD.tweets.part0 = []'


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


@pytest.mark.parametrize("name", [
    "../evil.js", "data/../../evil.js", "/etc/passwd", "C:/windows/evil.js",
    "..\\evil.js", "data\\..\\..\\evil.js",
])
def test_it_refuses_a_path_that_leaves_the_archive(make_zip: ZipMaker, name: str,
                                                   tmp_path: Path) -> None:
    before = files_under(tmp_path.parent)
    path = make_zip({"data/tweets.js": TWEETS, name: b"owned"})
    with pytest.raises(ExportRejected, match="absolute path|climbing out"):
        read_all("x", path)
    assert files_under(tmp_path.parent) - before == {path}


def test_member_names_are_checked_before_anything_is_read() -> None:
    assert check_member_name("data\\tweets.js") == "data/tweets.js"
    with pytest.raises(ExportRejected, match="NUL"):
        check_member_name("data/a\x00.js")


def test_it_refuses_symlink_entries(tmp_path: Path) -> None:
    path = tmp_path / "link.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("data/tweets.js", TWEETS)
        info = zipfile.ZipInfo("data/tweets_media/1-a.jpg")
        info.create_system = 3
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(ExportRejected, match="symbolic link"):
        open_export(path)


def test_it_refuses_a_bomb_by_ratio(make_zip: ZipMaker) -> None:
    path = make_zip({"data/tweets.js": TWEETS, "data/big.js": b"\0" * (8 << 20)})
    with pytest.raises(ExportRejected, match="zip bomb"):
        open_export(path)


def test_it_refuses_a_bomb_by_total_size(make_zip: ZipMaker) -> None:
    members: dict[str, bytes | Path] = {"data/tweets.js": TWEETS}
    members |= {f"data/tweets_media/{i}-x.jpg": os.urandom(40_000) for i in range(10)}
    with pytest.raises(ExportRejected, match="expands past"):
        open_export(make_zip(members), limits=Limits(max_total_bytes=300_000))


def test_it_refuses_too_many_entries(make_zip: ZipMaker) -> None:
    members: dict[str, bytes | Path] = {f"f{i}": b"" for i in range(50)}
    with pytest.raises(ExportRejected, match="50 entries"):
        open_export(make_zip(members), limits=Limits(max_entries=20))


def test_a_lying_directory_is_caught_while_reading(tmp_path: Path) -> None:
    """A member whose declared size is small but whose data is larger stops at the cap."""
    path = tmp_path / "liar.zip"
    big = json.dumps([{"media": [{"uri": "a.jpg", "creation_timestamp": 1, "title": "x" * 5000}]}])
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("content/posts_1.json", big)
    raw = bytearray(path.read_bytes())
    # Patch the declared uncompressed size (central directory and local header) to 100.
    for signature, offset in ((b"PK\x01\x02", 24), (b"PK\x03\x04", 22)):
        at = raw.find(signature)
        raw[at + offset: at + offset + 4] = (100).to_bytes(4, "little")
    path.write_bytes(bytes(raw))
    with pytest.raises(ExportRejected, match="damaged|not valid UTF-8 JSON"):
        read_all("instagram", path)


def test_it_refuses_enormous_json_documents(make_zip: ZipMaker) -> None:
    data = json.dumps({"Video": {"Videos": {"VideoList": [
        {"Date": "2024-01-01 00:00:00", "Title": os.urandom(200).hex()} for _ in range(500)]}}})
    path = make_zip({"user_data.json": data.encode()})
    with pytest.raises(ExportRejected, match="bytes; at most 100,000"):
        read_all("tiktok", path, limits=Limits(max_document_bytes=100_000))


def test_a_streamed_member_past_its_cap_stops_mid_parse(make_zip: ZipMaker) -> None:
    tweets = [{"tweet": {"id_str": str(i), "full_text": os.urandom(50).hex(),
                         "created_at": "Fri Feb 24 06:58:32 +0000 2023"}} for i in range(2000)]
    path = make_zip({"data/tweets.js": b"window.YTD.tweets.part0 = " + json.dumps(tweets).encode()})
    with pytest.raises(ExportRejected, match="at most 50,000"):
        read_all("x", path, limits=Limits(max_media_bytes=50_000))


def test_latin1_junk_is_refused_as_not_utf8(make_zip: ZipMaker) -> None:
    junk = "Date,ShareLink,ShareCommentary\n2024-01-01 10:00:00,x,Smørrebrød\n".encode("latin-1")
    with pytest.raises(ExportRejected, match="not UTF-8"):
        read_all("linkedin", make_zip({"Shares.csv": junk}))
    js = 'window.YTD.tweets.part0 = [{"tweet": {"full_text": "Smørrebrød"}}]'.encode("latin-1")
    with pytest.raises(ExportRejected, match="not valid UTF-8 JSON|not UTF-8"):
        read_all("x", make_zip({"data/tweets.js": js}))


def test_garbage_and_wrong_kinds_are_one_clear_error(make_zip: ZipMaker, tmp_path: Path) -> None:
    with pytest.raises(ExportRejected, match="not valid UTF-8 JSON"):
        read_all("x", make_zip({"data/tweets.js": b"window.YTD.tweets.part0 = [{,]"}))
    with pytest.raises(ExportRejected, match="is it a Facebook export"):
        read_all("facebook", make_zip({"data/tweets.js": TWEETS}))
    with pytest.raises(ExportRejected, match="no such file"):
        open_export(tmp_path / "missing.zip")
    with pytest.raises(ExportRejected, match="window.YTD"):
        read_all("x", make_zip({"data/tweets.js": b"[]"}))
