from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidestep.email.message import (
    AddressError,
    HeaderInjection,
    MessageError,
    OutgoingMessage,
    RecipientRef,
    build_message,
    read_recipient_tag,
    recipient_tag,
)

WHEN = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def outgoing(**changes: object) -> OutgoingMessage:
    values: dict[str, object] = dict(
        from_name="Brand", from_address="news@brand.example", to_name="Ana",
        to_address="ana@example.org", subject="News", text="Hello Ana", html="<p>Hello Ana</p>",
        unsubscribe_url="https://brand.example/u/TOKEN", date=WHEN)
    values.update(changes)
    return OutgoingMessage(**values)  # type: ignore[arg-type]


def parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


def test_it_builds_multipart_alternative_with_text_then_html() -> None:
    raw, message_id = build_message(outgoing())
    msg = parse(raw)
    assert msg.get_content_type() == "multipart/alternative"
    parts = [p.get_content_type() for p in msg.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    assert msg["Message-ID"] == message_id and message_id.endswith("@brand.example>")
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")


def test_it_carries_rfc8058_one_click_headers() -> None:
    msg = parse(build_message(outgoing())[0])
    assert msg["List-Unsubscribe"] == "<https://brand.example/u/TOKEN>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_it_refuses_an_unsubscribe_url_that_is_not_https() -> None:
    with pytest.raises(MessageError, match="https"):
        build_message(outgoing(unsubscribe_url="http://brand.example/u/T"))


def test_it_encodes_international_names_and_subjects_in_utf8() -> None:
    raw, _ = build_message(outgoing(from_name="Zoë, Café & Co.", to_name="Jörg Müller",
                                    subject="Grüße — 🎉 " * 8, text="Tschüß", html=None))
    assert raw.split(b"\r\n\r\n")[0].isascii()
    msg = parse(raw)
    assert msg["From"].addresses[0].display_name == "Zoë, Café & Co."
    assert msg["To"].addresses[0].display_name == "Jörg Müller"
    assert msg["Subject"] == ("Grüße — 🎉 " * 8).strip() or msg["Subject"] == "Grüße — 🎉 " * 8
    assert msg.get_content().strip() == "Tschüß"
    assert all(len(line) <= 78 for line in raw.split(b"\r\n\r\n")[0].split(b"\r\n"))


def test_it_sends_international_domains_as_a_labels() -> None:
    msg = parse(build_message(outgoing(to_address="jorg@exämple.org"))[0])
    assert msg["To"].addresses[0].addr_spec == "jorg@xn--exmple-cua.org"


@pytest.mark.parametrize("address", ["no-at-sign", "a@b", "two@@example.org", ".a@example.org",
                                     "a b@example.org", "ü@example.org", "a@-x.org"])
def test_it_refuses_invalid_addresses(address: str) -> None:
    with pytest.raises(AddressError):
        build_message(outgoing(to_address=address))


@pytest.mark.parametrize("field", ["subject", "to_name", "from_name", "to_address"])
@pytest.mark.parametrize("evil", ["x\r\nBcc: victim@example.org", "x\nBcc: v@e.org", "x\rY",
                                  "x\x00y"])
def test_it_refuses_header_injection(field: str, evil: str) -> None:
    with pytest.raises(HeaderInjection):
        build_message(outgoing(**{field: evil}))


@given(name=st.text(max_size=80), subject=st.text(max_size=200))
def test_no_name_or_subject_can_add_a_header(name: str, subject: str) -> None:
    try:
        raw, _ = build_message(outgoing(to_name=name, subject=subject))
    except HeaderInjection:
        return
    msg = parse(raw)
    assert msg.get_all("Bcc") is None
    assert len(msg.get_all("Subject") or []) == 1
    assert len(msg.get_all("To") or []) == 1
    assert msg["Subject"] == " ".join(subject.split(" ")) or msg["Subject"].split() == subject.split()


def test_special_characters_in_names_are_quoted() -> None:
    msg = parse(build_message(outgoing(to_name='Ana "the boss" <x@evil.example>, Bcc'))[0])
    addresses = msg["To"].addresses
    assert len(addresses) == 1 and addresses[0].addr_spec == "ana@example.org"


def test_recipient_tags_round_trip_and_refuse_forgery() -> None:
    ref = RecipientRef(workspace_id=1, campaign_id=22, recipient_id=333)
    tag = recipient_tag(b"k" * 32, ref)
    assert read_recipient_tag(b"k" * 32, tag) == ref
    assert read_recipient_tag(b"other" * 8, tag) is None
    assert read_recipient_tag(b"k" * 32, tag.replace("333", "334")) is None
    assert read_recipient_tag(b"k" * 32, "garbage") is None
