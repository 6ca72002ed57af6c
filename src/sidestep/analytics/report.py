"""Reports of an incident's impact and of concentration risk: what the pages and exports show.

`incident_view` / `risk_view` turn results into plain rows (numbers formatted once, here);
`incident_charts` / `risk_charts` draw the PNGs by name; `incident_csv` / `risk_csv` give the
numbers unrounded; `export_html` renders a self-contained page (styles inline, charts as
data: URIs, so it opens from a mail attachment) and `html_to_pdf` prints it with headless
Chromium. Raises `ReportError` when Chromium is missing or fails.
"""

from __future__ import annotations

import base64
import csv
import io
import math
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jinja2

from sidestep.analytics.charts import impact_chart, share_chart, shift_chart
from sidestep.analytics.incident import HEADLINE_METRICS, IncidentImpact, Total
from sidestep.analytics.risk import FLOW_MEASURES, MEASURES, RiskReport

CHROMIUM = Path("/usr/bin/chromium")
PDF_TIMEOUT_S = 90
TEMPLATES = Path(__file__).resolve().parents[1] / "web" / "templates"


class ReportError(RuntimeError):
    """An export could not be produced; the message says what to install or check."""


def number(value: float) -> str:
    if math.isnan(value):
        return "—"
    if abs(value) < 0.005:
        return "0"
    return f"{value:+,.0f}" if abs(value) >= 10 else f"{value:+,.2f}"


def _total(t: Total | None) -> dict[str, str]:
    if t is None:
        return {"effect": "—", "interval": "no series", "sign": "none"}
    return {"effect": number(t.effect),
            "interval": f"95%: {number(t.lower)} to {number(t.upper)}",
            "sign": "loss" if t.upper < 0 else "gain" if t.lower > 0 else "unclear"}


def incident_view(r: IncidentImpact) -> dict[str, Any]:
    headline = [{"metric": m, "lost": _total(r.lost.get(m)), "gained": _total(r.gained.get(m)),
                 "net": _total(r.net.get(m))}
                for m in HEADLINE_METRICS if m in r.lost or m in r.gained]
    rows = []
    for s in r.series:
        i = s.impact
        rows.append({
            "channel": s.channel.name, "platform": s.channel.platform, "metric": s.metric,
            "affected": s.affected, "actual": f"{i.actual * _post_points(r):,.0f}",
            "expected": f"{i.predicted * _post_points(r):,.0f}",
            "effect": number(i.cumulative_effect),
            "interval": f"{number(i.cumulative_lower)} to {number(i.cumulative_upper)}",
            "relative": "—" if math.isnan(i.relative_effect) else f"{i.relative_effect:+.0%}",
            "p": f"{i.p_value:.3f}", "significant": i.significant,
            "controls": ", ".join(s.controls) or "none",
        })
    return {
        "platform": r.platform, "owner": r.owner, "platforms": ", ".join(r.platforms),
        "started_at": r.started_at, "ended_at": r.ended_at, "step": r.step,
        "pre": f"{r.n_pre} {'days' if r.step == 'day' else 'hours'}",
        "post": f"{len(r.times) - r.n_pre} {'days' if r.step == 'day' else 'hours'}",
        "headline": headline, "rows": rows, "notes": r.notes,
        "chart_names": [name for name, _ in _impact_series(r)] + ["shift"],
    }


def _post_points(r: IncidentImpact) -> int:
    return len(r.times) - r.n_pre


def _impact_series(r: IncidentImpact) -> list[tuple[str, int]]:
    """Chart names of the affected series' impact charts, with their index in `r.series`.
    A series constant before the incident gets none: its chart would show only rounding."""
    out = []
    for n, s in enumerate(r.series):
        pre = [v for v in s.actual[:r.n_pre] if not math.isnan(v)]
        if s.affected and max(pre) > min(pre):
            out.append((f"impact-{n}", n))
    return out


def incident_charts(r: IncidentImpact) -> dict[str, Callable[[], bytes]]:
    """Chart name → a function drawing it (drawn only when asked for)."""
    out: dict[str, Callable[[], bytes]] = {}
    for name, n in _impact_series(r):
        out[name] = _impact_drawer(r, n)
    metric = next((m for m in HEADLINE_METRICS if m in r.lost), "reach")
    effects = {f"{s.channel.name}": s.impact.cumulative_effect for s in r.series
               if s.metric == metric}
    out["shift"] = lambda: shift_chart(f"Where the {metric} went", effects)
    return out


def _impact_drawer(r: IncidentImpact, n: int) -> Callable[[], bytes]:
    s = r.series[n]
    return lambda: impact_chart(f"{s.channel.name}: {s.metric}", r.times, s.actual, s.impact,
                                r.n_pre)


def risk_view(report: RiskReport) -> dict[str, Any]:
    measures = []
    for m in MEASURES:
        c = report.concentrations[m]
        measures.append({
            "measure": m, "total": f"{c.total:,.0f}",
            "owners": [{"name": o, "share": f"{s:.0%}"} for o, s in c.by_owner.items()],
            "platforms": [{"name": p, "share": f"{s:.0%}"} for p, s in c.by_platform.items()],
            "hhi_owner": f"{c.hhi_owner:,.0f}", "hhi_platform": f"{c.hhi_platform:,.0f}",
            "band": c.band, "high_2023": c.highly_concentrated_2023, "empty": c.total == 0,
        })
    outages = [{"measure": m, "owner": o.owner, "hours": o.hours,
                "expected": f"{o.expected:,.0f}", "worst": f"{o.worst:,.0f}",
                "worst_start": _hour_of_week(o.worst_start_hour) if o.worst > o.expected * 1.001
                else "any time (no hourly profile)"}
               for m in FLOW_MEASURES for o in report.outages[m]]
    annual = [{"owner": owner, "hours": f"{hours:,.1f}",
               **{m: f"{report.annual_loss[m].get(owner, 0.0):,.0f}" for m in FLOW_MEASURES}}
              for owner, hours in sorted(report.hours_down.items(), key=lambda kv: -kv[1])]
    return {"measures": measures, "outages": outages, "annual": annual,
            "outage_hours": report.outage_hours, "window_days": report.window_days,
            "recommendations": [r.text for r in report.recommendations],
            "notes": report.notes,
            "chart_names": [f"share-{m['measure']}" for m in measures if not m["empty"]]}


def _hour_of_week(hour: int) -> str:
    day = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
    return f"{day[hour // 24]} {hour % 24:02d}:00 UTC"


def risk_charts(report: RiskReport) -> dict[str, Callable[[], bytes]]:
    def drawer(measure: str) -> Callable[[], bytes]:
        return lambda: share_chart(f"{measure.capitalize()} by owner",
                                   report.concentrations[measure].by_owner)

    return {f"share-{m}": drawer(m) for m in MEASURES if report.concentrations[m].total > 0}


def incident_csv(r: IncidentImpact) -> str:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["incident", "channel", "platform", "owner", "metric", "affected", "actual",
                "expected", "cumulative_effect", "lower_95", "upper_95", "relative_effect",
                "p_value"])
    for s in r.series:
        i = s.impact
        w.writerow([r.incident_id, s.channel.name, s.channel.platform, s.channel.owner,
                    s.metric, "yes" if s.affected else "no", i.actual * _post_points(r),
                    i.predicted * _post_points(r), i.cumulative_effect, i.cumulative_lower,
                    i.cumulative_upper, i.relative_effect, i.p_value])
    for label, totals in (("lost", r.lost), ("gained", r.gained), ("net", r.net)):
        for metric, t in totals.items():
            w.writerow([r.incident_id, f"total {label}", "", "", metric, "", "", "", t.effect,
                        t.lower, t.upper, "", ""])
    return out.getvalue()


def risk_csv(report: RiskReport) -> str:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["section", "measure", "name", "value"])
    for m in MEASURES:
        c = report.concentrations[m]
        w.writerow(["total", m, "", c.total])
        w.writerows(["owner_share", m, o, s] for o, s in c.by_owner.items())
        w.writerows(["platform_share", m, p, s] for p, s in c.by_platform.items())
        w.writerow(["hhi_owner", m, "", c.hhi_owner])
    for m in FLOW_MEASURES:
        w.writerows([f"outage_{report.outage_hours}h_expected", m, o.owner, o.expected]
                    for o in report.outages[m])
        w.writerows(["expected_annual_loss", m, owner, v]
                    for owner, v in report.annual_loss[m].items())
    w.writerows(["hours_down_past_year", "", o, h] for o, h in report.hours_down.items())
    return out.getvalue()


_env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                          undefined=jinja2.StrictUndefined, trim_blocks=True,
                          lstrip_blocks=True)
_env.filters["utc"] = lambda value: value.strftime("%Y-%m-%d %H:%M UTC")


def export_html(kind: str, *, title: str, workspace: str, view: Mapping[str, Any],
                charts: Mapping[str, Callable[[], bytes]], generated: str) -> str:
    """A self-contained HTML report; `kind` is "incident" or "risk"."""
    sources = {name: "data:image/png;base64," + base64.b64encode(draw()).decode("ascii")
               for name, draw in charts.items()}
    return _env.get_template("report_export.html").render(
        kind=kind, title=title, workspace_name=workspace, view=view, charts=sources,
        generated=generated)


def html_to_pdf(html: str, *, chromium: Path = CHROMIUM) -> bytes:
    """Print `html` to PDF with headless Chromium. Raises `ReportError`."""
    if not chromium.exists():
        raise ReportError(f"PDF export needs Chromium at {chromium}; export HTML instead")
    with tempfile.TemporaryDirectory(prefix="sidestep-pdf-") as tmp:
        page, pdf = Path(tmp) / "report.html", Path(tmp) / "report.pdf"
        page.write_text(html, encoding="utf-8")
        command = [str(chromium), "--headless=new", "--no-sandbox", "--disable-gpu",
                   "--disable-background-networking", "--disable-component-update",
                   "--no-first-run", f"--user-data-dir={tmp}/profile",
                   "--no-pdf-header-footer", f"--print-to-pdf={pdf}", page.as_uri()]
        try:
            # A fixed binary and our own temporary paths: no caller text reaches the command.
            done = subprocess.run(command, capture_output=True,  # noqa: S603
                                  timeout=PDF_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            raise ReportError(f"Chromium did not print the PDF within {PDF_TIMEOUT_S} s") \
                from None
        if not pdf.exists() or pdf.stat().st_size == 0:
            detail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
            raise ReportError(f"Chromium could not print the PDF: {detail[0][:300]}")
        return pdf.read_bytes()
