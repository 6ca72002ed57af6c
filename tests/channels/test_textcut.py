"""Cutting text at safe places: between words, after sentences, never inside a cluster."""

from __future__ import annotations

import pytest

from sidestep.channels.textcut import Piece, Unsplittable, join, pack, take, words


def at_most(n: int):  # type: ignore[no-untyped-def]
    return lambda _index, body: len(body) <= n


def test_words_keep_the_whitespace_before_them_and_a_space_with_an_accent_stays_a_letter() -> None:
    # " \u0301" is one grapheme cluster (a space carrying an accent): a letter, not a gap.
    assert words("  Hi\n\nthere \u0301x") == [Piece("  ", "Hi"), Piece("\n\n", "there \u0301x")]


def test_a_part_ends_after_a_sentence_when_one_ends_in_its_second_half() -> None:
    text = "One two three four. Five six seven"
    assert pack(words(text), at_most(30)) == ["One two three four.", "Five six seven"]


def test_a_part_ends_at_the_last_word_that_fits_when_no_sentence_ends_late_enough() -> None:
    text = "Hi. alpha beta gamma delta epsilon"
    assert pack(words(text), at_most(20)) == ["Hi. alpha beta gamma", "delta epsilon"]


def test_a_long_word_is_cut_between_clusters_but_a_hashtag_inside_it_is_kept() -> None:
    parts = pack(words("aaaaaa#hashtag!bbbb"), at_most(10))
    assert parts == ["aaaaaa", "#hashtag!b", "bbb"]


def test_one_unit_longer_than_a_part_is_unsplittable_and_says_what_it_is() -> None:
    with pytest.raises(Unsplittable) as caught:
        pack(words("see https://example.com/a-very-long-path"), at_most(12))
    assert caught.value.kind == "link"
    assert caught.value.unit == "https://example.com/a-very-long-path"


def test_take_finds_the_longest_prefix_with_few_counts() -> None:
    pieces = words(" ".join(["word"] * 1000))
    calls = []

    def fits(body: str) -> bool:
        calls.append(body)
        return len(body) <= 2000

    end = take(pieces, 0, fits, sentences=False)
    assert end == 400 and len(join(pieces, 0, end)) == 1999
    assert len(calls) < 25  # exponential then binary search, not one count per word
