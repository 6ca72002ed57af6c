"""Routes for incident impact and concentration-risk reports (issue 11).

    GET /w/{slug}/reports                               incidents with their impact, risk summary
    GET /w/{slug}/reports/incident/{id}                 one incident's report
    GET /w/{slug}/reports/incident/{id}/chart/{name}.png
    GET /w/{slug}/reports/incident/{id}/export.{html|pdf|csv}
    GET /w/{slug}/reports/risk, /risk/chart/{name}.png, /risk/export.{html|pdf|csv}

Viewers and up may read them (`require_role`); every number comes from the workspace's own
metric store, so one workspace never sees another's. Incidents are global (platforms are
shared), but their impact is computed per workspace. Charts are PNG routes on the same
origin because the CSP allows no data: images; the HTML export embeds them instead and is
served as an attachment with its own narrow policy.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.responses import Response
from sqlalchemy import select

from sidestep.analytics.impact import ImpactError
from sidestep.analytics.incident import IncidentImpact, incident_impact
from sidestep.analytics.report import (
    ReportError,
    export_html,
    html_to_pdf,
    incident_charts,
    incident_csv,
    incident_view,
    risk_charts,
    risk_csv,
    risk_view,
)
from sidestep.analytics.risk import RiskReport, risk_report
from sidestep.store.health import Health
from sidestep.store.tables import Channel, Incident
from sidestep.web.deps import AsViewer, WorkspaceAccess, get_runtime
from sidestep.web.pages import chrome
from sidestep.web.views import format_utc, render

INCIDENTS_LISTED = 20
EXPORT_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
MEDIA = {"html": "text/html; charset=utf-8", "pdf": "application/pdf",
         "csv": "text/csv; charset=utf-8"}


def owners(request: Request) -> dict[str, str]:
    return {p.key: p.owner for p in request.app.state.catalogue.all()}


async def _incident(request: Request, access: WorkspaceAccess,
                    incident_id: int) -> tuple[Incident, IncidentImpact | None, str]:
    incident = await access.session.get(Incident, incident_id)
    if incident is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such incident")
    try:
        result = await incident_impact(access.session, workspace_id=access.workspace.id,
                                       incident=incident, owner_of=owners(request),
                                       now=get_runtime(request).clock.now())
    except ImpactError as exc:
        return incident, None, str(exc)
    return incident, result, ""


async def _risk(request: Request, access: WorkspaceAccess) -> RiskReport:
    return await risk_report(access.session, workspace_id=access.workspace.id,
                             owner_of=owners(request), now=get_runtime(request).clock.now())


def _png(charts: Mapping[str, Callable[[], bytes]], name: str) -> Response:
    draw = charts.get(name)
    if draw is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such chart")
    return Response(draw(), media_type="image/png",
                    headers={"Cache-Control": "private, max-age=300"})


async def _export(fmt: str, filename: str, *, csv_text: Callable[[], str],
                  html: Callable[[], str]) -> Response:
    if fmt not in MEDIA:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "export as html, pdf or csv")
    if fmt == "csv":
        body: bytes = csv_text().encode("utf-8")
    elif fmt == "html":
        body = html().encode("utf-8")
    else:
        try:
            body = await asyncio.to_thread(lambda: html_to_pdf(html()))
        except ReportError as exc:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
    return Response(body, media_type=MEDIA[fmt], headers={
        "Content-Disposition": f'attachment; filename="{filename}.{fmt}"',
        "Content-Security-Policy": EXPORT_POLICY, "Cache-Control": "no-store"})


async def reports_page(request: Request, access: AsViewer) -> Response:
    incidents = await Health(access.session).incidents(limit=INCIDENTS_LISTED)
    platforms = await _workspace_platforms(access)
    owner_of = owners(request)
    mine = {owner_of.get(p, p) for p in platforms}
    rows = []
    for incident in incidents:
        if owner_of.get(incident.platform, incident.platform) not in mine:
            continue
        _, result, problem = await _incident(request, access, incident.id)
        view = incident_view(result) if result is not None else None
        rows.append({"incident": incident, "view": view, "problem": problem})
    risk = risk_view(await _risk(request, access))
    return render(request, "report_index.html", {
        **await chrome(access, "reports"), "rows": rows, "risk": risk})


async def _workspace_platforms(access: WorkspaceAccess) -> list[str]:
    rows = await access.session.scalars(select(Channel.platform).where(
        Channel.workspace_id == access.workspace.id).distinct())
    return list(rows.all())


async def incident_page(request: Request, access: AsViewer, incident_id: int) -> Response:
    incident, result, problem = await _incident(request, access, incident_id)
    base = f"/w/{access.workspace.slug}/reports/incident/{incident_id}"
    context: dict[str, Any] = {**await chrome(access, "reports"), "incident": incident,
                               "problem": problem, "base": base}
    if result is not None:
        view = incident_view(result)
        context |= {"view": view,
                    "charts": {name: f"{base}/chart/{name}.png" for name in view["chart_names"]}}
    return render(request, "report_incident.html", context)


async def incident_chart(request: Request, access: AsViewer, incident_id: int,
                         name: str) -> Response:
    _, result, problem = await _incident(request, access, incident_id)
    if result is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, problem)
    return _png(incident_charts(result), name)


async def incident_export(request: Request, access: AsViewer, incident_id: int,
                          fmt: str) -> Response:
    incident, result, problem = await _incident(request, access, incident_id)
    if result is None:
        raise HTTPException(status.HTTP_409_CONFLICT, problem)
    found = result
    title = f"Incident {incident.id}: {incident.platform} on {format_utc(incident.started_at)}"
    return await _export(fmt, f"sidestep-incident-{incident.id}",
                         csv_text=lambda: incident_csv(found),
                         html=lambda: export_html(
                             "incident", title=title, workspace=access.workspace.name,
                             view=incident_view(found), charts=incident_charts(found),
                             generated=format_utc(get_runtime(request).clock.now())))


async def risk_page(request: Request, access: AsViewer) -> Response:
    view = risk_view(await _risk(request, access))
    base = f"/w/{access.workspace.slug}/reports/risk"
    return render(request, "report_risk.html", {
        **await chrome(access, "reports"), "view": view, "base": base,
        "charts": {name: f"{base}/chart/{name}.png" for name in view["chart_names"]}})


async def risk_chart(request: Request, access: AsViewer, name: str) -> Response:
    return _png(risk_charts(await _risk(request, access)), name)


async def risk_export(request: Request, access: AsViewer, fmt: str) -> Response:
    report = await _risk(request, access)
    return await _export(fmt, f"sidestep-risk-{access.workspace.slug}",
                         csv_text=lambda: risk_csv(report),
                         html=lambda: export_html(
                             "risk", title="Concentration risk", workspace=access.workspace.name,
                             view=risk_view(report), charts=risk_charts(report),
                             generated=format_utc(get_runtime(request).clock.now())))


def install(app: FastAPI) -> None:
    """Add this module's routes to `app`."""
    prefix = "/w/{slug}/reports"
    for path, endpoint in (
        ("", reports_page),
        ("/incident/{incident_id:int}", incident_page),
        ("/incident/{incident_id:int}/chart/{name}.png", incident_chart),
        ("/incident/{incident_id:int}/export.{fmt}", incident_export),
        ("/risk", risk_page),
        ("/risk/chart/{name}.png", risk_chart),
        ("/risk/export.{fmt}", risk_export),
    ):
        app.add_api_route(prefix + path, endpoint, methods=["GET"], include_in_schema=False)
