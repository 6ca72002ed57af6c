"""How much of a brand hangs on one platform or one owner company, and what to do about it.

Shares are computed per platform and per owner (Meta owns Facebook, Instagram, WhatsApp and
Threads, so one outage in 2021 took all four). Owned channels (email, site, feed) are owned
by "self": they count toward the total but no outage of theirs is anybody else's doing.

The Herfindahl-Hirschman index is the sum of squared percentage shares (0 to 10,000). The
2023 US Merger Guidelines call a market with an HHI above 1,800 highly concentrated; the
2010 guidelines' bands (below 1,500 unconcentrated, above 2,500 highly concentrated) are the
more familiar reference and are reported too.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

HHI_HIGH_2023 = 1800
HHI_BANDS_2010 = ((1500, "unconcentrated"), (2500, "moderately concentrated"))
OWNED = "self"


@dataclass(frozen=True)
class ChannelValue:
    """One channel's weight in a measure (audience, reach or revenue) and its hourly profile."""

    channel: str
    platform: str
    owner: str
    value: float
    hourly: tuple[float, ...] = ()  # value per hour of the week (168), when known


@dataclass(frozen=True)
class Concentration:
    measure: str
    total: float
    by_platform: dict[str, float]  # shares, 0..1
    by_owner: dict[str, float]
    hhi_platform: float
    hhi_owner: float

    @property
    def band(self) -> str:
        """The 2010 US guidelines' band of the owner HHI."""
        for limit, name in HHI_BANDS_2010:
            if self.hhi_owner < limit:
                return name
        return "highly concentrated"

    @property
    def highly_concentrated_2023(self) -> bool:
        return self.hhi_owner > HHI_HIGH_2023


def hhi(shares: Iterable[float]) -> float:
    """The Herfindahl-Hirschman index of shares given as fractions (0..1)."""
    return sum((100 * s) ** 2 for s in shares)


def concentration(measure: str, values: Iterable[ChannelValue]) -> Concentration:
    rows = [v for v in values if v.value > 0]
    total = sum(v.value for v in rows)
    by_platform: dict[str, float] = defaultdict(float)
    by_owner: dict[str, float] = defaultdict(float)
    for v in rows:
        by_platform[v.platform] += v.value / total
        by_owner[v.owner] += v.value / total
    return Concentration(
        measure=measure, total=total,
        by_platform=dict(sorted(by_platform.items(), key=lambda kv: -kv[1])),
        by_owner=dict(sorted(by_owner.items(), key=lambda kv: -kv[1])),
        hhi_platform=hhi(by_platform.values()), hhi_owner=hhi(by_owner.values()),
    )


@dataclass(frozen=True)
class OutageLoss:
    owner: str
    hours: int
    expected: float  # averaged over every start hour of the week
    worst: float
    worst_start_hour: int  # hour of the week (0 = Monday 00:00 UTC)


def outage_loss(values: Iterable[ChannelValue], owner: str, hours: int) -> OutageLoss:
    """What `owner` being down for `hours` costs, from the channels' hourly profiles.

    Channels without a profile count at their average rate (value / 168 per hour).
    """
    week = [0.0] * 168
    for v in values:
        if v.owner != owner:
            continue
        profile = v.hourly if len(v.hourly) == 168 else (v.value / 168,) * 168
        for hour, amount in enumerate(profile):
            week[hour] += amount
    losses = [sum(week[(start + h) % 168] for h in range(hours)) for start in range(168)]
    worst = max(range(168), key=losses.__getitem__)
    return OutageLoss(owner, hours, sum(losses) / 168, losses[worst], worst)


def expected_annual_loss(
    values: Iterable[ChannelValue], hours_down_per_year: Mapping[str, float]
) -> dict[str, float]:
    """Per owner: its yearly outage hours (from the incident history) times its hourly value."""
    hourly: dict[str, float] = defaultdict(float)
    for v in values:
        hourly[v.owner] += (sum(v.hourly) if len(v.hourly) == 168 else v.value) / 168
    return {owner: hourly[owner] * hours for owner, hours in hours_down_per_year.items()
            if owner in hourly}


@dataclass(frozen=True)
class Recommendation:
    text: str
    gain: float  # how far it moves the owner HHI down (points), for ranking


def recommendations(c: Concentration, *, max_owner_share: float = 0.5) -> list[Recommendation]:
    """Ranked steps that cut single-owner exposure, largest HHI cut first."""
    out: list[Recommendation] = []
    owned = c.by_owner.get(OWNED, 0.0)
    for owner, share in c.by_owner.items():
        if owner == OWNED or share <= max_owner_share:
            continue
        # Grow owned channels by E (in this measure's units) until owner's share <= limit:
        # share * total / (total + E) <= limit.
        extra = share * c.total / max_owner_share - c.total
        new_total = c.total + extra
        shares = {o: s * c.total / new_total for o, s in c.by_owner.items()}
        shares[OWNED] = (owned * c.total + extra) / new_total
        out.append(Recommendation(
            f"{owner} carries {share:.0%} of your {c.measure}. Adding about {extra:,.0f} "
            f"{c.measure} on channels you own (an email list, your site) brings it to "
            f"{max_owner_share:.0%}.",
            c.hhi_owner - hhi(shares.values()),
        ))
    if owned == 0:
        out.append(Recommendation(
            f"None of your {c.measure} is on a channel you own: start an email list and link "
            "it from every profile, so an outage never leaves you without a way to write.",
            0.0,
        ))
    rented_owners = [o for o in c.by_owner if o != OWNED]
    if len(rented_owners) == 1:
        out.append(Recommendation(
            f"Every platform you use belongs to {rented_owners[0]}: add one of a different "
            "owner so a single company's outage cannot silence you.", 0.0,
        ))
    return sorted(out, key=lambda r: -r.gain)
