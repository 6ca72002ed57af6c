"""`sidestep status --watch`: a Rich live table redrawn with the monitor's latest states."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console

from sidestep.cli import info
from sidestep.domain.states import PlatformStatus
from sidestep.runtime import Runtime
from sidestep.store.accounts import Accounts
from sidestep.store.health import Health


async def test_the_watch_redraws_with_each_new_state(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch,
) -> None:
    screen = io.StringIO()
    monkeypatch.setattr(info, "console", Console(file=screen, force_terminal=True, width=120))
    async with runtime.db.session() as s:
        await Accounts(s).create_workspace(slug="acme", name="Acme", at=runtime.clock.now())
        await Health(s).set_state(platform="x", status=PlatformStatus.UP, features=[],
                                  reason="", at=runtime.clock.now())
    view = info.status_view
    reads: list[int] = []

    async def view_then_change(rt: Runtime, workspace: str | None) -> Any:
        reads.append(1)
        if len(reads) == 2:  # between the first and second draw, the monitor reports
            async with rt.db.session() as s:
                await Health(s).set_state(platform="x", status=PlatformStatus.DOWN, features=[],
                                          reason="DNS SERVFAIL", at=rt.clock.now())
        return await view(rt, workspace)

    monkeypatch.setattr(info, "status_view", view_then_change)
    await info.watch_status(runtime, None, interval_s=0.01, rounds=2)
    out = screen.getvalue()
    assert len(reads) == 2
    assert out.index("up") < out.index("down") and "DNS SERVFAIL" in out
    assert "deliveries: none" in out
