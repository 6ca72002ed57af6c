"""The content of Matrix message events as built from a post (no homeserver involved)."""

from __future__ import annotations

from sidestep.channels.adapters._matrix_events import event_content, event_size_bytes, image_size
from sidestep.domain.content import Content, MediaItem, MediaKind
from tests.channels.conftest import PNG_1PX


def test_a_link_already_in_the_text_becomes_an_anchor_in_place() -> None:
    event = event_content(Content(text="See https://ex.org/x now\nbye", link="https://ex.org/x"),
                          None)
    assert event["body"] == "See https://ex.org/x now\nbye"
    assert event["formatted_body"] == (
        'See <a href="https://ex.org/x">https://ex.org/x</a> now<br>bye')


def test_a_link_with_a_scheme_clients_drop_gets_no_html() -> None:
    event = event_content(Content(text="hi", link="javascript:alert(1)"), None)
    assert "formatted_body" not in event and "format" not in event


def test_media_without_text_is_captioned_by_its_alt_text_else_its_file_name() -> None:
    item = MediaItem(MediaKind.DOCUMENT, "application/pdf", b"%PDF-1.7", filename="menu.pdf")
    event = event_content(Content(text="", media=(item,)), "mxc://hs/abc")
    assert event == {"msgtype": "m.file", "body": "menu.pdf", "filename": "menu.pdf",
                     "url": "mxc://hs/abc", "info": {"mimetype": "application/pdf", "size": 8}}
    with_alt = MediaItem(MediaKind.VIDEO, "video/mp4", b"....", alt="A tour", filename="t.mp4")
    assert event_content(Content(text="", media=(with_alt,)), "mxc://hs/v")["body"] == "A tour"


def test_image_size_reads_png_gif_and_jpeg_headers() -> None:
    gif = b"GIF89a" + (640).to_bytes(2, "little") + (480).to_bytes(2, "little") + b"\x00" * 8
    jpeg = (b"\xff\xd8" + b"\xff\xe0\x00\x10" + b"JFIF\x00" + b"\x00" * 9
            + b"\xff\xc0\x00\x11\x08" + (300).to_bytes(2, "big") + (200).to_bytes(2, "big")
            + b"\x03" + b"\x00" * 9)
    assert image_size(PNG_1PX) == (1, 1)
    assert image_size(gif) == (640, 480)
    assert image_size(jpeg) == (200, 300)
    assert image_size(b"RIFF....WEBPVP8 ") is None


def test_the_size_estimate_counts_utf8_bytes_and_the_envelope() -> None:
    ascii_size = event_size_bytes(Content(text="a" * 1000))
    accented_size = event_size_bytes(Content(text="é" * 1000))
    assert accented_size - ascii_size == 1000  # two bytes each in UTF-8
    assert ascii_size > 1000 + 1024  # the envelope (ids, hashes, signatures) is counted too
