"""The shared HTTP helpers: success bodies read as models, unreadable ones classified."""

from __future__ import annotations

import httpx
import pytest
from pydantic import BaseModel

from sidestep.channels.errors import Transient, Unknown
from sidestep.channels.http import read_model


class _Created(BaseModel):
    id: str


def answer(body: bytes, status: int = 200) -> httpx.Response:
    return httpx.Response(status, content=body)


def test_it_reads_a_body_as_the_model() -> None:
    assert read_model(_Created, answer(b'{"id": "17", "extra": true}'), platform="X").id == "17"


@pytest.mark.parametrize("body", [b"<html>Bad gateway</html>", b"", b"\xff\xfe", b'{"id": 17}',
                                  b'{"other": "1"}', b"[]"])
def test_it_reads_an_unreadable_body_as_transient(body: bytes) -> None:
    with pytest.raises(Transient) as caught:
        read_model(_Created, answer(body, 201), platform="X")
    assert caught.value.http_status == 201
    assert str(caught.value).startswith("X answered HTTP 201")


@pytest.mark.parametrize("body", [b"<html>Bad gateway</html>", b'{"other": "1"}'])
def test_it_reads_an_unreadable_answer_to_a_change_as_maybe_sent(body: bytes) -> None:
    with pytest.raises(Unknown) as caught:
        read_model(_Created, answer(body), platform="X", changes=True)
    assert caught.value.maybe_sent is True
    assert caught.value.http_status == 200


def test_it_quotes_a_body_that_is_not_json() -> None:
    with pytest.raises(Transient, match="not JSON: '<html>Bad gateway</html>'"):
        read_model(_Created, answer(b"<html>Bad gateway</html>"), platform="X")


def test_it_names_missing_fields_without_quoting_a_json_body() -> None:
    with pytest.raises(Transient) as caught:
        read_model(_Created, answer(b'{"access_token": "secret-token"}'), platform="X")
    assert "(id)" in str(caught.value)
    assert "secret-token" not in str(caught.value)
