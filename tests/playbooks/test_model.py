"""Playbook files: the starter pack is valid; bad files get one clear, located error."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidestep.playbooks.model import PlaybookError, load_playbook, parse_playbook

STARTER = Path(__file__).parents[2] / "src/sidestep/playbooks/starter"
GOOD = """
name = "x-down"
title = "X is down"

[[trigger]]
kind = "platform"
platforms = ["x"]
for = "00:05:00"

[[action]]
do = "post_message"
to = ["telegram"]
message = "m"

[message.m]
en = "{{ platform }} is down"
"""


@pytest.mark.parametrize("path", sorted(STARTER.glob("*.toml")), ids=lambda p: p.stem)
def test_every_starter_playbook_is_valid_and_speaks_four_languages(path: Path) -> None:
    playbook = load_playbook(path)
    assert playbook.name == path.stem
    for texts in playbook.message.values():
        assert set(texts) == {"en", "es", "it", "ru"}


def test_a_good_playbook_parses_with_its_duration() -> None:
    playbook = parse_playbook(GOOD)
    assert playbook.trigger[0].for_.total_seconds() == 300
    assert playbook.text("m") == "{{ platform }} is down"


@pytest.mark.parametrize(("change", "expected"), [
    (("do = \"post_message\"", "do = \"post_mesage\""), "x.toml:11: action[0].do: Input should"),
    (("for = \"00:05:00\"", "for = \"five minutes\""), "x.toml:8: trigger[0].for"),
    (("message = \"m\"", "message = \"nope\""), "action[0].message: no [message.nope] table"),
    (("to = [\"telegram\"]\n", ""), "`post_message` needs `to`"),
    (("kind = \"platform\"", "kind = \"owner\""), "an owner trigger needs `owner`"),
    (("en = ", "xx = "), "message.m.xx"),
    (("name = \"x-down\"", "name = \"X Down\""), "x.toml:2: name: String should match"),
])
def test_it_names_the_file_line_and_field_of_a_mistake(change: tuple[str, str],
                                                       expected: str) -> None:
    with pytest.raises(PlaybookError) as caught:
        parse_playbook(GOOD.replace(*change), source="x.toml")
    assert expected in str(caught.value)


def test_it_reports_broken_toml_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(PlaybookError, match="x.toml: not valid TOML"):
        parse_playbook("name = ", source="x.toml")
    with pytest.raises(PlaybookError, match="cannot be read"):
        load_playbook(tmp_path / "missing.toml")
