"""bench/probes: Sidestep's HTTP and DNS probes per second against local targets, beside
the target's ceiling (wrk) and Prometheus's blackbox_exporter probing the same targets.

    .venv/bin/python bench/probes/run.py [--seconds 10] [--concurrency 64]

Layout on the 2 cores: the targets (servers.py) and the load drivers (wrk) on core 0, the
prober being measured (ours, or blackbox_exporter) alone on core 1. Everything runs in the
same invocation, one after the other; the machine's load average is recorded beside the
figures, because other work on the machine skews all of them. Writes RESULTS.md, keeping
what follows its first "## Reading" heading (the hand-written readings).

Sidestep's HTTP probe is measured three ways (see ours.py): as the monitor builds it
(keep-alive through the lean HTTP/1.1 client), with a new connection per probe (as
blackbox_exporter works), and forced through httpx (the path before the lean client). Each
row gives probes/s, the prober's CPU per probe, and its ratio to the wrk ceiling, to the
2,000/s aim and to blackbox_exporter.
"""

# ruff: noqa: S603, S607, S310 -- a bench runs fixed local tools against its own loopback ports
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

HERE = Path(__file__).parent
PYTHON = sys.executable
BLACKBOX = "/usr/bin/prometheus-blackbox-exporter"
CONFIG = """modules:
  http_2xx:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      valid_status_codes: [200]
  dns_a:
    prober: dns
    timeout: 2s
    dns:
      transport_protocol: udp
      preferred_ip_protocol: ip4
      query_name: facebook.com
      query_type: A
      valid_rcodes: [NOERROR]
"""


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def wrk(url: str, *, seconds: float, connections: int) -> tuple[float, int]:
    """Requests/s and non-2xx count from `wrk` pinned to core 0."""
    out = subprocess.run(
        ["taskset", "-c", "0", "wrk", "-t1", f"-c{connections}", f"-d{seconds:.0f}s", url],
        capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rate, int(bad.group(1)) if bad else 0


def ours(kind: str, target: str, *, seconds: float, concurrency: int) -> dict[str, object]:
    out = subprocess.run(
        ["taskset", "-c", "1", PYTHON, str(HERE / "ours.py"), kind, target, str(seconds),
         str(concurrency)], capture_output=True, text=True, check=True).stdout
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return result


def blackbox_successes(port: int, url: str) -> str:
    """One probe through blackbox_exporter, to check that it succeeds (probe_success 1)."""
    import urllib.request
    with urllib.request.urlopen(url.replace("{port}", str(port)), timeout=10) as answer:
        text = answer.read().decode()
    match = re.search(r"^probe_success (\d)", text, re.M)
    return match.group(1) if match else "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    http_port, dns_port, bb_port = free_port(), free_port(socket.SOCK_DGRAM), free_port()
    target = f"http://127.0.0.1:{http_port}/"
    load_before = os.getloadavg()
    servers = subprocess.Popen(["taskset", "-c", "0", PYTHON, str(HERE / "servers.py"),
                                str(http_port), str(dns_port)], stdout=subprocess.PIPE)
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as config:
        config.write(CONFIG)
    blackbox = None
    try:
        assert servers.stdout is not None and servers.stdout.readline().strip() == b"ready"
        ceiling, _ = wrk(target, seconds=args.seconds, connections=args.concurrency)
        our_http = ours("http", target, seconds=args.seconds, concurrency=args.concurrency)
        our_fresh = ours("http-fresh", target, seconds=args.seconds,
                         concurrency=args.concurrency)
        our_httpx = ours("http-httpx", target, seconds=args.seconds,
                         concurrency=args.concurrency)
        our_dns = ours("dns", str(dns_port), seconds=args.seconds, concurrency=args.concurrency)
        blackbox = subprocess.Popen(
            ["taskset", "-c", "1", BLACKBOX, f"--config.file={config.name}",
             f"--web.listen-address=127.0.0.1:{bb_port}", "--log.level=error"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(bb_port)
        bb = f"http://127.0.0.1:{bb_port}/probe"
        bb_http_url = f"{bb}?module=http_2xx&target={quote(target, safe='')}"
        bb_dns_url = f"{bb}?module=dns_a&target=127.0.0.1:{dns_port}"
        checks = (blackbox_successes(bb_port, bb_http_url), blackbox_successes(bb_port, bb_dns_url))
        bb_http, bb_http_bad = wrk(bb_http_url, seconds=args.seconds,
                                   connections=args.concurrency)
        bb_dns, bb_dns_bad = wrk(bb_dns_url, seconds=args.seconds, connections=args.concurrency)
    finally:
        servers.terminate()
        if blackbox is not None:
            blackbox.terminate()
        os.unlink(config.name)
    load_after = os.getloadavg()
    report(args, ceiling=ceiling, ours={"http": our_http, "fresh": our_fresh,
                                        "httpx": our_httpx, "dns": our_dns},
           bb_http=bb_http, bb_dns=bb_dns, checks=checks, bb_bad=(bb_http_bad, bb_dns_bad),
           load=(load_before, load_after))


AIM = 2000.0  # HTTP probes/s on 2 cores (issue 7)


def report(args: argparse.Namespace, *, ceiling: float, ours: dict[str, dict[str, object]],
           bb_http: float, bb_dns: float, checks: tuple[str, str], bb_bad: tuple[int, int],
           load: tuple[tuple[float, ...], tuple[float, ...]]) -> None:
    rate = {k: float(v["per_s"]) for k, v in ours.items()}  # type: ignore[arg-type]
    cpu = {k: f"{float(v['cpu_us']):,.0f}" for k, v in ours.items()}  # type: ignore[arg-type]

    def http_row(name: str, key: str) -> tuple[str, str, str, str, str, str]:
        return (name, f"{rate[key]:,.0f}", cpu[key], f"{rate[key] / ceiling:.2f}",
                f"{rate[key] / AIM:.2f}", f"{rate[key] / bb_http:.2f}")

    rows = [
        ("HTTP target ceiling (wrk, no prober)", f"{ceiling:,.0f}", "", "1.00", "", ""),
        http_row("HTTP: Sidestep `HttpProbe.check` (keep-alive)", "http"),
        http_row("HTTP: Sidestep, a new connection per probe", "fresh"),
        http_row("HTTP: Sidestep through httpx (`fast=False`, the old path)", "httpx"),
        ("HTTP: blackbox_exporter `http_2xx` (a new connection per probe)", f"{bb_http:,.0f}",
         "", f"{bb_http / ceiling:.2f}", f"{bb_http / AIM:.2f}", "1.00"),
        ("DNS: Sidestep `DnsProbe.query`", f"{rate['dns']:,.0f}", cpu["dns"], "", "",
         f"{rate['dns'] / bb_dns:.2f}"),
        ("DNS: blackbox_exporter `dns_a`", f"{bb_dns:,.0f}", "", "", "", "1.00"),
    ]
    our_http, our_dns = ours["http"], ours["dns"]
    lines = [
        "# bench/probes", "",
        f"Command: `.venv/bin/python bench/probes/run.py --seconds {args.seconds:g} "
        f"--concurrency {args.concurrency}`", "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; load average (1/5/15 min) "
        f"{'/'.join(f'{x:.1f}' for x in load[0])} before, "
        f"{'/'.join(f'{x:.1f}' for x in load[1])} after (other work shared the cores: "
        "read the ratios and the CPU per probe, not the absolute rates).", "",
        "| what | probes/s | CPU µs/probe (prober) | of ceiling | of aim (2,000/s) "
        "| of blackbox_exporter |", "|---|---:|---:|---:|---:|---:|",
        *[f"| {' | '.join(row)} |" for row in rows], "",
        f"Sidestep outcomes: HTTP {our_http['outcomes']}, new connection each "
        f"{ours['fresh']['outcomes']}, httpx {ours['httpx']['outcomes']}, DNS "
        f"{our_dns['outcomes']}. "
        f"blackbox_exporter probe_success on a single check: HTTP {checks[0]}, DNS "
        f"{checks[1]}; non-2xx answers under load: HTTP {bb_bad[0]}, DNS {bb_bad[1]} "
        "(blackbox answers 200 even for a failed probe, so its rate counts failed probes too).",
        "",
        "Layout: targets (`servers.py`, raw asyncio HTTP keep-alive and UDP DNS) and `wrk` on "
        "core 0; the prober measured alone on core 1 (Sidestep: one process, "
        f"{args.concurrency} concurrent workers; blackbox_exporter driven by `wrk` with "
        f"{args.concurrency} connections on /probe).", "",
    ]
    results = HERE / "RESULTS.md"
    previous = results.read_text() if results.exists() else ""
    readings = previous[previous.find("## Reading"):] if "## Reading" in previous else ""
    results.write_text("\n".join(lines) + ("\n" + readings if readings else ""))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
