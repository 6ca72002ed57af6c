"""Sidestep's probes at full speed:
`python ours.py http|http-fresh|http-httpx|dns URL_OR_PORT SECONDS CONCURRENCY`.

Prints one JSON line: probes completed, seconds, probes/s, CPU microseconds per probe (this
process only: less sensitive to other work on the machine than the rate) and the outcomes
seen. Each worker calls the probe module's public entry (`HttpProbe.check`,
`DnsProbe.query`) in a loop. `http` is the probe as the monitor builds it (a plain
`httpx.AsyncClient()`, which `HttpProbe` serves through its lean HTTP/1.1 client);
`http-fresh` opens a new connection for every probe (keep-alive off, as blackbox_exporter
does, and as the monitor does at its 60 s interval); `http-httpx` forces every GET through
httpx (`fast=False`), the probe's path before the lean client."""

from __future__ import annotations

import asyncio
import collections
import json
import sys
import time

import httpx

from sidestep.catalogue.loader import Probe
from sidestep.clock import SystemClock
from sidestep.monitor.probes._http1 import Http1Client
from sidestep.monitor.probes.dns import DnsProbe, NamedResolver
from sidestep.monitor.probes.http import HttpProbe


async def main(kind: str, target: str, seconds: float, concurrency: int) -> None:
    outcomes: collections.Counter[str] = collections.Counter()
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits) as client:
        fresh = Http1Client(keepalive_s=0.0) if kind == "http-fresh" else None
        http = HttpProbe(client=client, clock=SystemClock(), concurrency=concurrency,
                         fast=kind != "http-httpx", http1=fresh)
        dns = DnsProbe(clock=SystemClock(), concurrency=concurrency)
        probe = Probe(name="web", url=target, feature="web") if kind.startswith("http") else None
        server = NamedResolver("bench", "127.0.0.1", int(target)) if kind == "dns" else None

        async def worker() -> None:
            while time.perf_counter() < deadline:
                if probe is not None:
                    outcomes[(await http.check("bench", probe)).outcome] += 1
                else:
                    assert server is not None
                    outcomes[(await dns.query("facebook.com", server)).outcome.value] += 1

        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        await http.aclose()
    total = sum(outcomes.values())
    print(json.dumps({"probes": total, "seconds": round(elapsed, 2),
                      "per_s": round(total / elapsed, 1),
                      "cpu_us": round(cpu / max(total, 1) * 1e6, 1), "outcomes": dict(outcomes)}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])))
