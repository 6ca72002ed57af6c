"""Fusion as a pure state machine: rounds in, transitions with evidence out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sidestep.domain.states import PlatformStatus
from sidestep.monitor.config import FusionConfig, load_monitor_config
from sidestep.monitor.fusion import INTERNET, Fusion, Transition
from sidestep.monitor.outcomes import Outcome
from sidestep.store.health import NewObservation

T0 = datetime(2021, 10, 4, 15, 30, tzinfo=UTC)
HTTP_FEATURES = ("web", "api", "media")


def obs(at: datetime, signal: str, outcome: str, *, platform: str = "facebook",
        feature: str = "", vantage: str = "local", latency_ms: float | None = 40.0,
        target: str = "t") -> NewObservation:
    return NewObservation(platform=platform, signal=signal, vantage=vantage, observed_at=at,
                          outcome=outcome, latency_ms=latency_ms, feature=feature,
                          target=target, detail=f"{signal} said {outcome}")


def round_of(at: datetime, *, dns: str = "ok", http: dict[str, str] | None = None,
             control: str = "ok", platform: str = "facebook", vantage: str = "local",
             latency_ms: float = 40.0) -> list[NewObservation]:
    http = http or {}
    found = [obs(at, "control", control, platform=INTERNET, vantage=vantage, target=h)
             for h in ("example.com", "one.one.one.one")]
    found += [obs(at, "dns", dns, platform=platform, vantage=vantage, target=f"h{i}")
              for i in range(3)]
    found += [obs(at, "http", http.get(f, "ok"), platform=platform, feature=f,
                  vantage=vantage, latency_ms=latency_ms) for f in HTTP_FEATURES]
    return found


class Run:
    """Feeds rounds every `step_s` and collects transitions."""

    def __init__(self, config: FusionConfig | None = None) -> None:
        self.fusion = Fusion(config or load_monitor_config().fusion, platforms=["facebook"])
        self.now = T0
        self.transitions: list[Transition] = []

    def rounds(self, count: int, step_s: float = 15.0, **kw: object) -> None:
        for _ in range(count):
            self.fusion.ingest(round_of(self.now, **kw))  # type: ignore[arg-type]
            self.transitions += self.fusion.evaluate(self.now)
            self.now += timedelta(seconds=step_s)

    def announced(self, platform: str = "facebook") -> list[str]:
        return [t.new.describe() for t in self.transitions
                if t.platform == platform and t.announce]


DOWN_ROUND = {"dns": "servfail", "http": {f: "servfail" for f in HTTP_FEATURES}}


def test_it_starts_unknown_and_goes_up_after_one_healthy_round() -> None:
    run = Run()
    assert run.fusion.verdict("facebook").status is PlatformStatus.UNKNOWN
    run.rounds(1)
    assert run.announced() == ["up"]


def test_one_failed_check_is_never_an_alarm() -> None:
    run = Run()
    run.rounds(1)
    run.rounds(1, **DOWN_ROUND)  # type: ignore[arg-type]
    run.rounds(40)
    assert run.announced() == ["up"]


def test_a_blip_shorter_than_confirm_s_is_not_an_outage() -> None:
    run = Run()
    run.rounds(1)
    run.rounds(8, **DOWN_ROUND)  # 8 rounds 15 s apart: failing for 105 s < 120 s
    run.rounds(40)
    assert run.announced() == ["up"]


def test_two_signals_failing_for_confirm_s_make_it_down_with_evidence() -> None:
    run = Run()
    run.rounds(1)
    run.rounds(10, **DOWN_ROUND)  # type: ignore[arg-type]
    assert run.announced() == ["up", "down"]
    down = run.transitions[-1]
    assert down.at - (T0 + timedelta(seconds=15)) == timedelta(seconds=120)
    signals = {s["signal"] for s in down.evidence["signals"]}
    assert signals == {"dns", "http"}
    dns = next(s for s in down.evidence["signals"] if s["signal"] == "dns")
    assert dns["checks"][0]["outcome"] == Outcome.SERVFAIL
    assert "servfail" in dns["checks"][0]["detail"]
    assert "2 signal(s)" in down.reason


def test_one_signal_alone_never_makes_it_down() -> None:
    run = Run()
    run.rounds(1)
    run.rounds(60, http={f: "timeout" for f in HTTP_FEATURES})
    assert "down" not in run.announced()
    assert run.announced()[-1] == "degraded(api, feed, media)"


def test_dns_answers_with_wrong_records_count_as_dns_failures() -> None:
    run = Run()
    run.rounds(1)
    run.rounds(12, dns=Outcome.BAD_ANSWER, http={f: "refused" for f in HTTP_FEATURES})
    assert run.announced() == ["up", "down"]
    evidence = run.transitions[-1].evidence["signals"]
    assert any(c["outcome"] == "bad_answer" for s in evidence for c in s["checks"])


def test_two_vantage_points_with_one_signal_each_make_it_down() -> None:
    fusion = Fusion(load_monitor_config().fusion, platforms=["facebook"])
    now, changes = T0, []
    for _ in range(12):
        for vantage in ("local", "agent-eu"):
            fusion.ingest([obs(now, "http", "timeout", feature=f, vantage=vantage)
                           for f in HTTP_FEATURES] +
                          [obs(now, "control", "ok", platform=INTERNET, vantage=vantage)])
        changes += fusion.evaluate(now)
        now += timedelta(seconds=15)
    assert changes[-1].new.status is PlatformStatus.DOWN
    assert {s["vantage"] for s in changes[-1].evidence["signals"]} == {"local", "agent-eu"}


def test_media_alone_failing_is_degraded_media_not_down() -> None:
    run = Run()
    run.rounds(1)
    run.rounds(60, http={"media": "bad_status"})
    assert run.announced() == ["up", "degraded(media)"]
    features = run.transitions[-1].evidence["features"]
    assert list(features) == ["media"] and features["media"] >= 0.25


def test_high_latency_is_degraded_latency() -> None:
    run = Run()
    run.rounds(1)
    run.rounds(60, latency_ms=4000.0)
    assert run.announced() == ["up", "degraded(latency)"]


def test_recovery_needs_sustained_success() -> None:
    run = Run()
    run.rounds(1)
    run.rounds(12, **DOWN_ROUND)  # type: ignore[arg-type]
    assert run.announced()[-1] == "down"
    for _ in range(5):  # flapping: a good round, then a bad one, never long enough
        run.rounds(3)
        run.rounds(1, **DOWN_ROUND)  # type: ignore[arg-type]
    assert run.announced()[-1] == "down"
    run.rounds(10)  # 150 s of success
    assert run.announced()[-1] != "down"
    run.rounds(60)
    assert run.announced()[-1] == "up"


def test_controls_failing_make_a_local_outage_and_platforms_go_quietly_unknown() -> None:
    run = Run()
    run.rounds(1)
    everything_down = {"dns": "timeout", "http": {f: "timeout" for f in HTTP_FEATURES},
                       "control": "timeout"}
    run.rounds(40, **everything_down)  # type: ignore[arg-type]
    assert run.announced() == ["up"]  # no DOWN, no DEGRADED
    local = [t for t in run.transitions if t.platform == INTERNET]
    assert [t.new.status for t in local] == [PlatformStatus.LOCAL_OUTAGE]
    assert local[0].evidence["controls"]
    quiet = [t for t in run.transitions if t.platform == "facebook" and not t.announce]
    assert [t.new.status for t in quiet] == [PlatformStatus.UNKNOWN]
    run.rounds(3)
    assert run.fusion.local.status is PlatformStatus.UP
    assert run.fusion.verdict("facebook").status is PlatformStatus.UP


def test_a_status_page_answering_garbage_or_nothing_says_nothing() -> None:
    run = Run()
    run.rounds(1)
    for _ in range(40):
        run.fusion.ingest([obs(run.now, "statuspage", "error"),
                           obs(run.now, "statuspage", "timeout"),
                           obs(run.now, "statuspage", "bad_status"),
                           obs(run.now, "http", "timeout", feature="api")])
        run.transitions += run.fusion.evaluate(run.now)
        run.now += timedelta(seconds=15)
    assert "down" not in run.announced()


def test_a_status_page_major_outage_is_one_independent_signal() -> None:
    run = Run()
    run.rounds(1)
    for _ in range(12):
        run.fusion.ingest([*round_of(run.now, http={f: "bad_status" for f in HTTP_FEATURES}),
                           obs(run.now, "statuspage", "major_outage")])
        run.transitions += run.fusion.evaluate(run.now)
        run.now += timedelta(seconds=15)
    assert run.announced()[-1] == "down"
    assert {s["signal"] for s in run.transitions[-1].evidence["signals"]} == {
        "http", "statuspage"}
