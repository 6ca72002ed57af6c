"""The loop end to end: meta-2021-10-04 at compressed time with the starter playbook.

Real peers throughout: the simulator's DNS and HTTP servers (probed by the monitor, posted
to by the adapters), SQLite, aiosmtpd for the crisis email, and an HTTP receiver behind an
Apprise `json://` URL for the team alert. The report is then checked against the records.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from sidestep.playbooks.drill import load_drill_setup, run_drill
from sidestep.playbooks.model import load_playbook
from sidestep.playbooks.report import render_html
from sidestep.store.db import Database
from sidestep.store.tables import Channel, Delivery
from sidestep.store.tables_site import SiteSettings
from tests.playbooks.conftest import Receiver, SmtpServerFixture

STARTER = Path(__file__).parents[2] / "src/sidestep/playbooks/starter"
pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@pytest.mark.xfail(reason="issue 10, open: which posts are held depends on when the monitor "
                   "calls DOWN in the drill's compressed time; a post due before that is sent "
                   "into the outage (unknown) instead of held", strict=False)
async def test_meta_2021_drill_holds_reroutes_tells_everyone_and_reports_what_happened(
        tmp_path: Path, smtp_server: SmtpServerFixture, receiver: Receiver) -> None:
    playbook = load_playbook(STARTER / "meta-down.toml")
    db_path = tmp_path / "drill.db"
    report = await run_drill(scenario="meta-2021-10-04", playbook=playbook, db_path=db_path,
                             smtp_port=smtp_server.port, alert_url=receiver.url)
    setup = load_drill_setup()
    db = Database(f"sqlite+aiosqlite:///{db_path}")
    try:
        async with db.session() as s:
            channels = {c.id: c for c in (await s.scalars(select(Channel))).all()}
            deliveries = list((await s.scalars(select(Delivery))).all())
            site = (await s.scalars(select(SiteSettings))).one()
    finally:
        await db.close()
    platform = {d.id: channels[d.channel_id].platform for d in deliveries}
    originals = [d for d in deliveries if d.origin_delivery_id is None
                 and platform[d.id] in ("facebook", "instagram")]
    assert len(originals) == 2 * len(setup.data["post"])
    assert not any(d.state == "sent" for d in originals)  # nothing went out on Meta
    rerouted = [d for d in originals if d.state == "rerouted"]
    # Facebook posts were held and rerouted by the playbook's policy.
    assert sorted(platform[d.id] for d in rerouted if platform[d.id] == "facebook") == [
        "facebook"] * len(setup.data["post"])
    assert report.held_deliveries == len(rerouted)
    # The fallbacks and the playbook's own posts are in the simulator's records, once each.
    for name in ("telegram", "x", "bluesky"):
        sent = report.fallbacks_sent.get(name, 0) + report.playbook_posts_sent.get(name, 0)
        assert sent == report.sim_records[name], name
        assert report.fallbacks_sent.get(name, 0) == len(setup.data["post"])
        assert report.playbook_posts_sent.get(name, 0) == 2  # the outage post, the all-clear
    assert report.sim_records["facebook"] == report.sim_records["instagram"] == 0
    # The crisis email reached every subscriber through the test SMTP server.
    assert report.emails_sent == setup.data["subscribers"] == len(smtp_server.recorder.messages)
    # The team alert arrived at the Apprise json:// endpoint, naming Meta.
    assert any("Meta" in m.get("message", "") for m in receiver.messages), receiver.messages
    # The banner was set during the outage and removed after recovery.
    assert report.banner_set and site.banner == ""
    [run] = report.runs
    assert run["state"] == "done"
    kinds = [(a["phase"], a["kind"], a["outcome"]) for a in run["actions"]]
    assert ("recover", "post_message", "done") in kinds
    assert ("act", "notify_partners", "skipped") in kinds  # no deliverable in the drill
    # The report's numbers equal what the records show.
    audience = {c.platform: c.audience_size for c in channels.values()}
    via = audience["telegram"] + audience["x"] + audience["bluesky"]
    planned = {d.post_id: 0 for d in rerouted}
    for d in rerouted:
        planned[d.post_id] += audience[platform[d.id]]
    assert report.planned_reach == sum(planned.values())
    assert report.reached == sum(min(p, via) for p in planned.values())
    assert report.time_to_detect_s is not None and 0 < report.time_to_detect_s <= 15 * 60
    assert report.time_to_first_contact_s is not None
    assert report.time_to_first_contact_s > report.time_to_detect_s
    assert report.gaps == []
    page = render_html(report)
    assert "Time to detect" in page and "meta-down" in page
    # Known gap (dispatch, reported): an Instagram post whose image has no public URL is
    # failed by admission even while Instagram is down, so its reroute never happens.
    instagram = [d for d in originals if platform[d.id] == "instagram"]
    if any(d.state == "failed" and "public URL" in (d.last_error or "") for d in instagram):
        pytest.xfail("dispatch admission rejects Instagram images without a public URL "
                     "before the gate, so Instagram posts are failed instead of rerouted")
    assert all(d.state == "rerouted" for d in instagram)
