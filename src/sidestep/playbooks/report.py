"""The drill report, measured from the records alone (events, deliveries, campaign rows).

    onset             the scenario's first (non-noise) fault
    detected          the first `platform.state_changed` into down/degraded of a platform the
                      first fault hit; time to detect = detected - onset
    first contact     the first message that reached the audience after the onset: a sent
                      fallback delivery, a sent playbook post, or a crisis email accepted
    planned reach     per post with a delivery of its own held or rerouted: the audience
                      sizes of those channels
    reached           per such post: the audience of its fallback deliveries that were sent,
                      capped at its planned reach (no credit for shouting louder elsewhere);
                      share = sum reached / sum planned
    gaps              "no owned channel"; "every fallback has the same owner as the platform
                      that fell" (per post)

`render_html` writes the same numbers as a self-contained, escaped HTML page.
"""

from __future__ import annotations

import html
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from sidestep.catalogue import default_catalogue
from sidestep.sim.scenario import Scenario
from sidestep.store.db import Database
from sidestep.store.tables import Channel, Delivery, Event
from sidestep.store.tables_campaign import Campaign, CampaignRecipient
from sidestep.store.tables_playbooks import PlaybookAction, PlaybookRun

__all__ = ["DrillReport", "measure", "render_html"]


@dataclass
class DrillReport:
    scenario: str
    playbook: str
    onset: str
    time_to_detect_s: float | None
    time_to_first_contact_s: float | None
    planned_reach: int
    reached: int
    share_reached: float | None
    held_deliveries: int
    fallbacks_sent: dict[str, int]
    playbook_posts_sent: dict[str, int]
    sim_records: dict[str, int]
    emails_sent: int
    banner_set: bool
    runs: list[dict[str, Any]] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, ensure_ascii=False)


def _onset(scenario: Scenario) -> tuple[datetime, set[str]]:
    steps = [s for s in scenario.timeline(0) if s.action == "set" and not s.params.get("noise")]
    first = min(s.offset for s in steps)
    return scenario.start + first, {s.platform for s in steps if s.offset == first}


async def measure(db: Database, *, workspace_id: int, scenario: Scenario, playbook: str,
                  sim_records: dict[str, int]) -> DrillReport:
    onset, fallen = _onset(scenario)
    catalogue = default_catalogue()
    async with db.session() as session:
        events = list((await session.scalars(select(Event).order_by(Event.id))).all())
        channels = {c.id: c for c in (await session.scalars(select(Channel).where(
            Channel.workspace_id == workspace_id))).all()}
        deliveries = {d.id: d for d in (await session.scalars(select(Delivery).where(
            Delivery.workspace_id == workspace_id))).all()}
        runs = list((await session.scalars(select(PlaybookRun).where(
            PlaybookRun.workspace_id == workspace_id).order_by(PlaybookRun.id))).all())
        actions = list((await session.scalars(select(PlaybookAction).order_by(
            PlaybookAction.id))).all())
        emails = list((await session.scalars(
            select(CampaignRecipient).join(Campaign, Campaign.id == CampaignRecipient.campaign_id)
            .where(Campaign.workspace_id == workspace_id,
                   CampaignRecipient.state == "sent"))).all())
    detected = next((e.created_at for e in events if e.type == "platform.state_changed"
                     and e.payload.get("platform") in fallen and e.created_at >= onset
                     and e.payload.get("new") in ("down", "degraded")), None)
    playbook_posts = {int(a.data["post_id"]) for a in actions
                      if a.kind == "post_message" and "post_id" in a.data}
    sent_at = {e.payload["delivery_id"]: e.created_at for e in events
               if e.type == "delivery.sent" and "delivery_id" in e.payload}
    # Held by the gate, or rerouted at once (the dispatcher skips `held` under mirror_now).
    held_ids = {e.payload["delivery_id"] for e in events
                if e.type in ("delivery.held", "delivery.rerouted")
                and e.workspace_id == workspace_id}
    fallbacks_sent: dict[str, int] = {}
    playbook_sent: dict[str, int] = {}
    contacts: list[datetime] = [r.sent_at for r in emails if r.sent_at is not None]
    for d in deliveries.values():
        if d.state != "sent":
            continue
        platform = channels[d.channel_id].platform
        if d.origin_delivery_id is not None:
            fallbacks_sent[platform] = fallbacks_sent.get(platform, 0) + 1
        elif d.post_id in playbook_posts:
            playbook_sent[platform] = playbook_sent.get(platform, 0) + 1
        else:
            continue
        if d.id in sent_at and sent_at[d.id] >= onset:
            contacts.append(sent_at[d.id])
    planned_by_post: dict[int, int] = {}
    for delivery_id in held_ids:
        held = deliveries.get(delivery_id)
        if held is None or held.origin_delivery_id is not None:
            continue
        planned_by_post[held.post_id] = planned_by_post.get(held.post_id, 0) + \
            channels[held.channel_id].audience_size
    reached = 0
    gaps: list[str] = []
    for post_id, planned in planned_by_post.items():
        outs = [d for d in deliveries.values()
                if d.post_id == post_id and d.origin_delivery_id is not None]
        reached += min(planned, sum(channels[d.channel_id].audience_size
                                    for d in outs if d.state == "sent"))
        owners = {catalogue.get(p).owner for p in fallen if p in catalogue}
        fb_owners = {catalogue.get(channels[d.channel_id].platform).owner for d in outs
                     if channels[d.channel_id].platform in catalogue}
        if outs and fb_owners <= owners:
            gaps.append(f"post {post_id}: every fallback has the same owner as the platform "
                        "that fell")
    if not any(p.platform in catalogue and catalogue.get(p.platform).kind == "owned"
               for p in channels.values()):
        gaps.insert(0, "no owned channel: the workspace has no email list, site or feed")
    planned_total = sum(planned_by_post.values())
    banner = any(a.kind == "set_banner" and a.outcome == "done" for a in actions)
    first_contact = min(contacts) if contacts else None
    run_ids = {r.id for r in runs}
    return DrillReport(
        scenario=scenario.name, playbook=playbook, onset=onset.isoformat(),
        time_to_detect_s=(detected - onset).total_seconds() if detected else None,
        time_to_first_contact_s=(first_contact - onset).total_seconds()
        if first_contact else None,
        planned_reach=planned_total, reached=reached,
        share_reached=round(reached / planned_total, 4) if planned_total else None,
        held_deliveries=len([i for i in held_ids if i in deliveries
                             and deliveries[i].origin_delivery_id is None]),
        fallbacks_sent=fallbacks_sent, playbook_posts_sent=playbook_sent,
        sim_records=sim_records, emails_sent=len(emails), banner_set=banner,
        runs=[{"id": r.id, "playbook": r.playbook, "state": r.state, "detail": r.detail,
               "platforms": r.platforms, "started_at": r.started_at.isoformat(),
               "actions": [{"phase": a.phase, "step": a.step, "kind": a.kind,
                            "outcome": a.outcome, "detail": a.detail,
                            "at": a.started_at.isoformat()}
                           for a in actions if a.run_id == r.id]}
              for r in runs if r.id in run_ids],
        gaps=gaps)


def _fmt_s(value: float | None) -> str:
    if value is None:
        return "never"
    minutes, seconds = divmod(int(value), 60)
    return f"{minutes} min {seconds:02d} s"


def render_html(report: DrillReport) -> str:
    """The report as one self-contained HTML page (every value escaped)."""
    e = html.escape
    share = "n/a" if report.share_reached is None else f"{report.share_reached:.0%}"
    rows = [("Time to detect", _fmt_s(report.time_to_detect_s)),
            ("Time to first audience contact", _fmt_s(report.time_to_first_contact_s)),
            ("Planned audience contacts (held posts)", f"{report.planned_reach:,}"),
            ("Reached through fallbacks", f"{report.reached:,} ({share})"),
            ("Held deliveries", str(report.held_deliveries)),
            ("Fallback posts sent", json.dumps(report.fallbacks_sent)),
            ("Playbook posts sent", json.dumps(report.playbook_posts_sent)),
            ("Crisis emails sent", str(report.emails_sent)),
            ("Banner set", "yes" if report.banner_set else "no")]
    table = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in rows)
    gaps = "".join(f"<li>{e(g)}</li>" for g in report.gaps) or "<li>none found</li>"
    timeline = "".join(
        f"<tr><td>{e(a['at'])}</td><td>{e(r['playbook'])}</td><td>{e(a['phase'])}</td>"
        f"<td>{e(a['kind'])}</td><td>{e(a['outcome'])}</td><td>{e(a['detail'])}</td></tr>"
        for r in report.runs for a in r["actions"])
    return (f"<!doctype html><html lang=en><meta charset=utf-8>"
            f"<title>Drill: {e(report.scenario)}</title>"
            "<style>body{font:15px system-ui;margin:2em}td,th{padding:.2em .6em;"
            "text-align:left;border-bottom:1px solid #ddd}</style>"
            f"<h1>Drill: {e(report.scenario)} with {e(report.playbook)}</h1>"
            f"<p>Onset {e(report.onset)}</p><table>{table}</table>"
            f"<h2>Gaps</h2><ul>{gaps}</ul><h2>Actions</h2><table>"
            "<tr><th>at</th><th>playbook</th><th>phase</th><th>action</th><th>outcome</th>"
            f"<th>detail</th></tr>{timeline}</table></html>")
