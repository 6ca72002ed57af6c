from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidestep.clock import FrozenClock
from sidestep.email.addresses import InvalidAddress, normalise
from sidestep.store.db import Database
from sidestep.store.subscribers import (
    AudienceError,
    MailingLists,
    MembershipStatus,
    Subscribers,
    SubscriberStatus,
    SuppressionReason,
    Suppressions,
)

from .conftest import TwoWorkspaces


def test_normalise_lowercases_and_idna_encodes_the_domain_only() -> None:
    assert normalise("  Jane.Doe@EXAMPLE.Com ") == "Jane.Doe@example.com"
    assert normalise("x@Bücher.DE") == "x@xn--bcher-kva.de"
    assert normalise("ü@bücher.de") == "ü@xn--bcher-kva.de"


@pytest.mark.parametrize("bad", ["", "no-at-sign", "a@", "@b.com", "a b@example.com",
                                 "a@@example.com", "a@example..com", "a@localhost",
                                 "a\r\n@example.com", "x" * 330 + "@example.com",
                                 "a@-bad-.com", '"quoted"@example.com'])
def test_normalise_refuses_bad_addresses_with_a_reason(bad: str) -> None:
    with pytest.raises(InvalidAddress) as caught:
        normalise(bad)
    assert str(caught.value)


local = st.text(string.ascii_letters + string.digits + "._+-", min_size=1, max_size=20).filter(
    lambda s: not s.startswith(".") and not s.endswith(".") and ".." not in s)
label = st.text(string.ascii_letters + string.digits, min_size=1, max_size=12)
domain = st.builds(lambda a, b: f"{a}.{b}", label, st.sampled_from(["com", "org", "de", "fr"]))


@given(local, domain)
@settings(max_examples=200)
def test_normalising_is_idempotent_and_keeps_the_local_part(loc: str, dom: str) -> None:
    once = normalise(f"{loc}@{dom}")
    assert normalise(once) == once
    assert once == f"{loc}@{dom.lower()}"


@given(st.text(max_size=40))
@settings(max_examples=300)
def test_normalise_either_returns_a_clean_address_or_says_why(text: str) -> None:
    try:
        result = normalise(text)
    except InvalidAddress as exc:
        assert str(exc)
    else:
        assert "@" in result and "\n" not in result and "\r" not in result
        assert result.rpartition("@")[2].isascii()


async def test_merge_unites_tags_and_fields_and_keeps_one_row(
    db: Database, workspaces: TwoWorkspaces, clock: FrozenClock
) -> None:
    async with db.session() as s:
        subs = Subscribers(s, workspaces.acme)
        first, created = await subs.merge("A@Example.com", name="Ann", fields={"city": "Oslo"},
                                          tags=["a"], at=clock.now())
        again, created_again = await subs.merge("A@EXAMPLE.COM", name="", fields={"zip": "1"},
                                                tags=["b"], at=clock.now())
    assert created and not created_again and first.id == again.id
    assert again.email == "A@example.com" and again.name == "Ann"
    assert again.fields == {"city": "Oslo", "zip": "1"} and again.tags == ["a", "b"]


async def test_names_lose_control_characters(
    db: Database, workspaces: TwoWorkspaces, clock: FrozenClock
) -> None:
    async with db.session() as s:
        row = await Subscribers(s, workspaces.acme).add(
            "n@example.com", name="Eve\r\nBcc: x@example.com", at=clock.now())
    assert row.name == "Eve Bcc: x@example.com"


async def test_workspaces_cannot_see_each_others_subscribers(
    db: Database, workspaces: TwoWorkspaces, clock: FrozenClock
) -> None:
    async with db.session() as s:
        acme, globex = Subscribers(s, workspaces.acme), Subscribers(s, workspaces.globex)
        mine = await acme.add("same@example.com", at=clock.now())
        theirs = await globex.add("same@example.com", at=clock.now())
        assert await acme.get(theirs.id) is None
        assert (await globex.find_by_email("same@example.com")).id == theirs.id  # type: ignore[union-attr]
        await Suppressions(s, workspaces.globex).suppress("same@example.com", "complaint", at=clock.now())
        assert not await Suppressions(s, workspaces.acme).is_suppressed("same@example.com")
        assert mine.status == SubscriberStatus.UNCONFIRMED
        acme_list = await MailingLists(s, workspaces.acme).add("News", at=clock.now())
        with pytest.raises(AudienceError):
            await globex.set_membership(theirs, acme_list, MembershipStatus.SUBSCRIBED,
                                        at=clock.now())
        assert await MailingLists(s, workspaces.globex).get(acme_list.id) is None


async def test_segment_yields_only_subscribed_unsuppressed_members_in_id_order(
    db: Database, workspaces: TwoWorkspaces, clock: FrozenClock
) -> None:
    now = clock.now()
    async with db.session() as s:
        subs = Subscribers(s, workspaces.acme)
        lists = MailingLists(s, workspaces.acme)
        news, other = await lists.add("News", at=now), await lists.add("Other", at=now)
        rows = {}
        for name, status, membership, tags in [
            ("ok1", "subscribed", "subscribed", ["vip"]),
            ("ok2", "subscribed", "subscribed", []),
            ("unconf", "unconfirmed", "unconfirmed", ["vip"]),
            ("left", "subscribed", "unsubscribed", ["vip"]),
            ("bounced", "bounced", "subscribed", ["vip"]),
            ("supp", "subscribed", "subscribed", ["vip"]),
            ("elsewhere", "subscribed", None, ["vip"]),
        ]:
            row = await subs.add(f"{name}@example.com", status=SubscriberStatus(status),
                                 tags=tags, at=now)
            if membership:
                await subs.set_membership(row, news, MembershipStatus(membership), at=now)
            else:
                await subs.set_membership(row, other, MembershipStatus.SUBSCRIBED, at=now)
            rows[name] = row
        await s.flush()
        # Suppressed behind the repository's back: segment must still leave it out.
        from sidestep.store.tables_email import Suppression
        s.add(Suppression(workspace_id=workspaces.acme, email="supp@example.com",
                          reason="manual", detail="", created_at=now))
        await s.flush()
        assert [r.email async for r in subs.segment(news.id)] == [
            "ok1@example.com", "ok2@example.com"]
        assert [r.email async for r in subs.segment(news.id, tags=["vip"])] == ["ok1@example.com"]
        everyone = [r.email async for r in subs.segment(None)]
        assert everyone == ["ok1@example.com", "ok2@example.com", "left@example.com",
                            "elsewhere@example.com"]
        assert [r.email async for r in Subscribers(s, workspaces.globex).segment(None)] == []


async def test_segment_pages_through_large_lists(
    db: Database, workspaces: TwoWorkspaces, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sidestep.store.subscribers.SEGMENT_BATCH", 3)
    async with db.session() as s:
        subs = Subscribers(s, workspaces.acme)
        for i in range(10):
            await subs.add(f"p{i}@example.com", status=SubscriberStatus.SUBSCRIBED, at=clock.now())
        got = [r.email async for r in subs.segment(None)]
    assert got == [f"p{i}@example.com" for i in range(10)]


async def test_suppress_marks_the_subscriber_and_keeps_the_first_reason(
    db: Database, workspaces: TwoWorkspaces, clock: FrozenClock
) -> None:
    async with db.session() as s:
        row = await Subscribers(s, workspaces.acme).add(
            "b@Example.com", status=SubscriberStatus.SUBSCRIBED, at=clock.now())
        supp = Suppressions(s, workspaces.acme)
        await supp.suppress("B@EXAMPLE.COM", SuppressionReason.HARD_BOUNCE, "550 5.1.1 no such user")
        assert row.status == SubscriberStatus.BOUNCED
        again = await supp.suppress("b@example.com", "complaint", "arf")
        assert again.reason == "hard_bounce" and "arf" in again.detail
        assert await supp.is_suppressed("b@EXAMPLE.com")
        assert await supp.is_suppressed("not an address")
        among = await supp.suppressed_among(["b@example.com", "B@example.COM", "c@example.com",
                                             "junk"])
        assert among == {"b@example.com", "B@example.COM", "junk"}
        # Matched without regard to case, on the safe side.
        assert await supp.is_suppressed("B@example.com")


async def test_search_pages_and_escapes_like_wildcards(
    db: Database, workspaces: TwoWorkspaces, clock: FrozenClock
) -> None:
    async with db.session() as s:
        subs = Subscribers(s, workspaces.acme)
        for i in range(7):
            await subs.add(f"user{i}@example.com", name=f"User {i}", at=clock.now())
        await subs.add("under_score@example.com", at=clock.now())
        page, total = await subs.search("user", limit=3, offset=3)
        assert total == 7 and [r.email for r in page] == [
            "user3@example.com", "user4@example.com", "user5@example.com"]
        only, count = await subs.search("_", limit=10)
        assert count == 1 and only[0].email == "under_score@example.com"
        none, zero = await Subscribers(s, workspaces.globex).search("user")
        assert zero == 0 and none == []
