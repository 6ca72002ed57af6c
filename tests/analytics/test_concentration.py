from __future__ import annotations

import pytest

from sidestep.analytics.concentration import (
    ChannelValue,
    concentration,
    expected_annual_loss,
    hhi,
    outage_loss,
    recommendations,
)

CHANNELS = [
    ChannelValue("fb", "facebook", "Meta", 4000),
    ChannelValue("ig", "instagram", "Meta", 4000),
    ChannelValue("x", "x", "X Corp", 1000),
    ChannelValue("mail", "email", "self", 1000),
]


def test_hhi_of_a_monopoly_and_of_an_even_split() -> None:
    assert hhi([1.0]) == 10_000
    assert hhi([0.25] * 4) == pytest.approx(2_500)


def test_shares_by_platform_and_by_owner() -> None:
    c = concentration("followers", CHANNELS)
    assert c.by_owner == pytest.approx({"Meta": 0.8, "X Corp": 0.1, "self": 0.1})
    assert c.by_platform["facebook"] == pytest.approx(0.4)
    assert c.hhi_owner == pytest.approx(80**2 + 10**2 + 10**2)
    assert c.band == "highly concentrated"
    assert c.highly_concentrated_2023
    assert c.hhi_platform < c.hhi_owner  # owner view sees Facebook and Instagram as one


def test_recommendation_says_how_many_owned_followers_bring_meta_to_half() -> None:
    c = concentration("followers", CHANNELS)
    first = recommendations(c)[0]
    assert "Meta carries 80%" in first.text
    # 8,000 / (10,000 + E) = 0.5  =>  E = 6,000
    assert "6,000" in first.text
    assert first.gain > 0


def test_no_owned_channel_and_a_single_owner_are_named() -> None:
    c = concentration("reach", [ChannelValue("fb", "facebook", "Meta", 10),
                                ChannelValue("ig", "instagram", "Meta", 10)])
    texts = " ".join(r.text for r in recommendations(c))
    assert "None of your reach is on a channel you own" in texts
    assert "Every platform you use belongs to Meta" in texts


def test_outage_loss_follows_the_hourly_profile() -> None:
    evening = tuple(10.0 if hour % 24 in (18, 19, 20) else 0.0 for hour in range(168))
    values = [ChannelValue("ig", "instagram", "Meta", sum(evening), evening),
              ChannelValue("x", "x", "X Corp", 168.0)]
    loss = outage_loss(values, "Meta", 6)
    assert loss.worst == pytest.approx(30)  # all three evening hours inside six hours
    assert loss.worst_start_hour % 24 in (15, 16, 17, 18)
    assert loss.expected == pytest.approx(sum(evening) * 6 / 168)
    assert outage_loss(values, "X Corp", 6).expected == pytest.approx(6)


def test_expected_annual_loss_from_hours_down() -> None:
    values = [ChannelValue("ig", "instagram", "Meta", 168.0)]  # 1 per hour
    assert expected_annual_loss(values, {"Meta": 7.5, "Nobody": 3}) == {"Meta": 7.5}
