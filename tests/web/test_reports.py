"""Report pages: members only, one workspace's numbers never in another's, PNG charts, and
the HTML, PDF and CSV exports (PDF printed by the real Chromium)."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from PIL import Image

from sidestep.clock import FrozenClock
from sidestep.domain.states import Role
from sidestep.runtime import Runtime
from sidestep.store.accounts import Accounts
from sidestep.store.tables import User
from sidestep.web.app import create_app
from tests.analytics.seeding import DAY0, seed_workspace
from tests.web.conftest import PASSWORD, sign_in

CHROMIUM_PRESENT = Path("/usr/bin/chromium").exists()


@dataclass
class Reports:
    viewer: User
    outsider: User
    incident_id: int


@pytest.fixture
async def reports(runtime: Runtime, clock: FrozenClock) -> Reports:
    clock.set(DAY0 + timedelta(days=62))
    async with runtime.db.session() as s:
        seeded = await seed_workspace(s, slug="acme")
        await seed_workspace(s, slug="globex", incident=False)
        accounts = Accounts(s)
        viewer = await accounts.create_user(email="v@example.org", password=PASSWORD,
                                            display_name="Viewer", at=clock.now())
        outsider = await accounts.create_user(email="o@example.org", password=PASSWORD,
                                              display_name="Outsider", at=clock.now())
        await accounts.add_member(workspace_id=seeded.workspace_id, user_id=viewer.id,
                                  role=Role.VIEWER, at=clock.now())
        globex = await accounts.workspace_by_slug("globex")
        assert globex is not None
        await accounts.add_member(workspace_id=globex.id, user_id=outsider.id,
                                  role=Role.OWNER, at=clock.now())
    return Reports(viewer, outsider, seeded.incident_id)


@pytest.fixture
async def web(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(runtime)),
                                 base_url="http://testserver") as c:
        yield c


async def test_a_viewer_sees_the_incident_and_risk_reports(
        web: httpx.AsyncClient, runtime: Runtime, reports: Reports) -> None:
    await sign_in(web, runtime, reports.viewer)
    index = await web.get("/w/acme/reports")
    assert index.status_code == 200
    assert f"/w/acme/reports/incident/{reports.incident_id}" in index.text
    page = await web.get(f"/w/acme/reports/incident/{reports.incident_id}")
    assert page.status_code == 200
    assert "Instagram main" in page.text and "Telegram channel" in page.text
    assert "chart/shift.png" in page.text and "data:image" not in page.text
    risk = await web.get("/w/acme/reports/risk")
    assert risk.status_code == 200
    assert "Meta" in risk.text and "highly concentrated" in risk.text
    assert "If an owner is down for 6 hours" in risk.text


async def test_reports_are_for_members_of_the_workspace_only(
        web: httpx.AsyncClient, runtime: Runtime, reports: Reports) -> None:
    anonymous = await web.get("/w/acme/reports", follow_redirects=False)
    assert anonymous.status_code in (303, 401)
    await sign_in(web, runtime, reports.outsider)
    for path in ("/w/acme/reports", f"/w/acme/reports/incident/{reports.incident_id}",
                 "/w/acme/reports/risk", "/w/acme/reports/risk/chart/share-audience.png",
                 f"/w/acme/reports/incident/{reports.incident_id}/export.csv"):
        assert (await web.get(path)).status_code == 404, path
    # globex has channels of the same names and data; its report is its own, not acme's.
    own = await web.get("/w/globex/reports/risk")
    assert own.status_code == 200 and "Globex" in own.text and "Acme" not in own.text


async def test_chart_routes_return_non_empty_pngs(
        web: httpx.AsyncClient, runtime: Runtime, reports: Reports) -> None:
    await sign_in(web, runtime, reports.viewer)
    page = (await web.get(f"/w/acme/reports/incident/{reports.incident_id}")).text
    names = [part.split(".png")[0] for part in page.split("/chart/")[1:]]
    assert "shift" in names and any(n.startswith("impact-") for n in names)
    base = f"/w/acme/reports/incident/{reports.incident_id}/chart/"
    for url in [base + f"{n}.png" for n in names] + [
            "/w/acme/reports/risk/chart/share-audience.png"]:
        response = await web.get(url)
        assert response.status_code == 200, url
        assert response.headers["content-type"] == "image/png"
        image = Image.open(io.BytesIO(response.content))
        assert image.size[0] > 300 and image.convert("L").getextrema()[0] < 100
    assert (await web.get(base + "nothing.png")).status_code == 404


async def test_exports_html_csv_and_pdf(web: httpx.AsyncClient, runtime: Runtime,
                                        reports: Reports) -> None:
    await sign_in(web, runtime, reports.viewer)
    base = f"/w/acme/reports/incident/{reports.incident_id}/export"
    html = await web.get(base + ".html")
    assert html.status_code == 200
    assert "attachment" in html.headers["content-disposition"]
    assert html.text.count("data:image/png;base64,") >= 2 and "/static/" not in html.text
    csv_text = (await web.get(base + ".csv")).text
    assert csv_text.startswith("incident,channel,platform") and "total lost" in csv_text
    if not CHROMIUM_PRESENT:
        pytest.fail("Chromium is needed for the PDF export test (/usr/bin/chromium)")
    pdf = await web.get("/w/acme/reports/risk/export.pdf")
    assert pdf.status_code == 200
    assert pdf.content.startswith(b"%PDF") and len(pdf.content) > 5000
    risk_csv = (await web.get("/w/acme/reports/risk/export.csv")).text
    assert "hhi_owner,audience" in risk_csv
    assert (await web.get("/w/acme/reports/risk/export.docx")).status_code == 404
