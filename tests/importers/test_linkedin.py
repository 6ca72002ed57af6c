from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidestep.importers.linkedin import unwrap_lines
from tests.importers.conftest import (
    EXPORTS,
    ZipMaker,
    posts_of,
    problems_of,
    read_all,
    skipped_of,
)


def test_it_reads_shares_and_undoes_the_line_quoting() -> None:
    items = read_all("linkedin", EXPORTS / "linkedin/sanand0-linkedin/Shares.csv")
    posts = posts_of(items)
    assert problems_of(items) == []
    assert len(posts) + len(skipped_of(items)) == 202 - 4  # one share is five rows
    minecraft = next(p for p in posts
                     if p.sources[0].source_id == "urn:li:share:6773073563034509312")
    assert len(minecraft.media) == 5
    assert len({p.sources[0].source_id for p in posts}) == len(posts)
    first = posts[0]
    assert first.text.startswith("I'm off for a 10-day Vipassana meditation program.\n\n𝗪𝗛𝗔𝗧?")
    assert first.text.endswith("But I won't be replying.")
    assert '""' not in first.text and '."\n' not in first.text
    assert first.created_at == datetime(2025, 7, 1, 14, 33, 22, tzinfo=UTC)
    assert first.sources[0].source_id == "urn:li:share:7345821826846990338"
    assert 'If someone asked me, "What\'s changed this year in LLMs"' in posts[1].text


def test_it_reads_the_crlf_export_with_capitalised_url_columns(make_zip: ZipMaker) -> None:
    path = make_zip({"Shares.csv": EXPORTS / "linkedin/femi10/Shares.csv"})
    items = read_all("linkedin", path)
    posts = posts_of(items)
    assert problems_of(items) == []
    assert len({p.sources[0].source_id for p in posts}) == len(posts) == 35
    assert not any("\r" in p.text for p in posts)
    assert any(p.link for p in posts) or any(p.media for p in posts)


def linkedin_quote(text: str) -> str:
    lines = text.split("\n")
    if len(lines) == 1:
        return text
    return "\n".join([lines[0] + '"', *(f'"{line}"' for line in lines[1:-1]), '"' + lines[-1]])


line = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp")),
               max_size=40)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(st.lists(line, min_size=1, max_size=5).map("\n".join)
                      .filter(lambda t: t.strip()), max_size=8))
def test_generated_shares_read_back(make_zip: ZipMaker, texts: list[str]) -> None:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["Date", "ShareLink", "ShareCommentary", "SharedUrl", "MediaUrl", "Visibility"])
    for i, text in enumerate(texts):
        writer.writerow([f"2024-01-{i + 1:02d} 10:00:00",
                         f"https://www.linkedin.com/feed/update/urn%3Ali%3Ashare%3A{i + 1}",
                         linkedin_quote(text), "", "", "MEMBER_NETWORK"])
    items = read_all("linkedin", make_zip({"Shares.csv": out.getvalue().encode()}))
    assert [p.text for p in posts_of(items)] == [t.strip() for t in texts]


def test_unwrap_lines_leaves_unquoted_text_alone() -> None:
    assert unwrap_lines('one line with "quotes"') == 'one line with "quotes"'
    assert unwrap_lines("two\nplain lines") == "two\nplain lines"
    assert unwrap_lines('a"\n""\n"b') == "a\n\nb"
