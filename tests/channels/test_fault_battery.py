"""The standard fault battery, run against every registered adapter through the simulator.

Each fault is injected the way the platform would fail, and the test asserts the taxonomy
class the adapter reports and that nothing was published while the fault lasted.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sidestep.catalogue import default_catalogue
from sidestep.channels.base import Adapter, all_adapters
from sidestep.channels.errors import (
    AuthExpired,
    PlatformOutage,
    PublishError,
    RateLimited,
    Rejected,
    Transient,
    Unknown,
)
from sidestep.sim.server import Simulator
from sidestep.vault import Credentials
from tests.channels.conftest import adapter_test_module, host_owner

ADAPTERS = all_adapters()
PLATFORMS = sorted(ADAPTERS)
pytestmark = pytest.mark.asyncio(loop_scope="module")

# fault, params, where it acts ("host": the listener's platform, "product": the adapter's),
# and the error classes that are a correct reading of it.
BATTERY: list[tuple[str, dict[str, object], str, tuple[type[PublishError], ...]]] = [
    ("dns_servfail", {}, "host", (PlatformOutage,)),
    ("dns_nxdomain", {}, "host", (PlatformOutage,)),
    ("refused", {}, "host", (PlatformOutage,)),
    ("timeout", {}, "host", (Unknown, Transient, PlatformOutage)),
    ("http_5xx", {}, "product", (Transient, PlatformOutage)),
    ("rate_limited", {"retry_after_s": 7}, "product", (RateLimited,)),
    ("auth_expired", {}, "product", (AuthExpired,)),
    ("garbage", {"variant": "json"}, "product", (Transient, Unknown)),
    ("garbage", {"variant": "html"}, "product", (Transient, Unknown, PlatformOutage)),
    ("garbage", {"variant": "truncated"}, "product", (Transient, Unknown)),
]


def make_adapter(sim: Simulator, platform: str, client: object) -> Adapter:
    options = getattr(adapter_test_module(platform), "adapter_options", dict)()
    return ADAPTERS[platform](client=client, clock=sim.world.clock,  # type: ignore[arg-type]
                              timeout_s=1.0, poll_interval_s=0.01, **options)


def secret_values(platform: str, credentials: Credentials) -> dict[str, str]:
    """The credential values the catalogue calls secret (the stored error text must not
    show them: it reaches pages, logs and exports)."""
    secret = default_catalogue().get(platform).secret_fields
    return {f: v for f, v in credentials.reveal().items() if f in secret and len(v) >= 6}


async def test_every_registered_adapter_has_a_test_module_for_the_battery() -> None:
    assert PLATFORMS, "no adapters registered"
    for platform in PLATFORMS:
        path = Path(__file__).parent / f"test_{platform}.py"
        assert path.exists(), f"adapter {platform} has no tests/channels/test_{platform}.py"
        module = adapter_test_module(platform)
        for name in ("prepare", "text_content", "media_content"):
            assert hasattr(module, name), f"test_{platform}.py lacks {name}()"


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_it_publishes_exactly_once(shared_sim: Simulator, platform: str) -> None:
    module = adapter_test_module(platform)
    credentials = Credentials(await module.prepare(shared_sim))
    before = len(shared_sim.world.record.all(platform))
    async with shared_sim.client() as client:
        published = await make_adapter(shared_sim, platform, client).publish(
            module.text_content(), credentials, idempotency_key=f"battery-ok-{platform}")
    assert published.external_id
    assert len(shared_sim.world.record.all(platform)) == before + 1


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize(("fault", "params", "target", "expected"), BATTERY,
                         ids=[f"{f}-{p.get('variant', '')}".rstrip("-") for f, p, _, _ in BATTERY])
async def test_it_reads_each_fault_as_its_error_class(
    shared_sim: Simulator, platform: str, fault: str, params: dict[str, object], target: str,
    expected: tuple[type[PublishError], ...],
) -> None:
    module = adapter_test_module(platform)
    credentials = Credentials(await module.prepare(shared_sim))
    where = host_owner(shared_sim, ADAPTERS[platform]) if target == "host" else platform
    before = len(shared_sim.world.record.all(platform))
    await shared_sim.set_fault(where, fault, **params)
    try:
        async with shared_sim.client() as client:
            with pytest.raises(PublishError) as caught:
                await make_adapter(shared_sim, platform, client).publish(
                    module.text_content(), credentials, idempotency_key=f"battery-{fault}")
    finally:
        await shared_sim.clear_faults()
    assert isinstance(caught.value, expected), (
        f"{platform} read {fault} as {type(caught.value).__name__}: {caught.value}")
    secrets = secret_values(platform, credentials)
    assert secrets, f"{platform}: no secret credential to look for"
    leaked = [field for field, value in secrets.items() if value in str(caught.value)]
    assert not leaked, f"{platform}: the error message for {fault} shows {leaked}"
    if isinstance(caught.value, RateLimited):
        assert caught.value.retry_after_s > 0
    assert len(shared_sim.world.record.all(platform)) == before, "published during a fault"


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_media_can_fail_while_text_still_goes_out(shared_sim: Simulator, platform: str) -> None:
    module = adapter_test_module(platform)
    media_post = module.media_content()
    if media_post is None:
        pytest.skip(f"{platform} takes no media")  # declared by the adapter's test module
    credentials = Credentials(await module.prepare(shared_sim))
    await shared_sim.set_fault(platform, "partial", feature="media")
    try:
        async with shared_sim.client() as client:
            adapter = make_adapter(shared_sim, platform, client)
            with pytest.raises(PublishError) as caught:
                await adapter.publish(media_post, credentials, idempotency_key="battery-media")
            assert not isinstance(caught.value, (Rejected, AuthExpired)), caught.value
            if not module.text_content().media:
                await adapter.publish(module.text_content(), credentials,
                                      idempotency_key="battery-text-during-media-fault")
    finally:
        await shared_sim.clear_faults()


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_a_slow_platform_is_still_published_to(shared_sim: Simulator, platform: str) -> None:
    module = adapter_test_module(platform)
    credentials = Credentials(await module.prepare(shared_sim))
    await shared_sim.set_fault(platform, "slow", delay_s=0.2)
    try:
        async with shared_sim.client() as client:
            published = await make_adapter(shared_sim, platform, client).publish(
                module.text_content(), credentials, idempotency_key="battery-slow")
    finally:
        await shared_sim.clear_faults()
    assert published.external_id
