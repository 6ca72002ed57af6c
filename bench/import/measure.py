"""One measurement in its own process, so peak RSS is this run's alone.

    measure.py import ARCHIVE.zip WORKDIR   Sidestep's X importer into a fresh SQLite archive
    measure.py baseline ARCHIVE.zip         zipfile + json.loads of tweets.js, nothing else

Prints one JSON line: seconds, posts, RSS in MiB when the work starts (the peak is reset
there) and the peak RSS while it runs.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
import zipfile
from pathlib import Path


def rss_mib() -> float:
    """Peak RSS since the last reset: VmHWM on Linux, else ru_maxrss (peak since start)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak() -> float:
    """Reset the peak to the current RSS (Linux: 5 to clear_refs), so set-up (imports,
    migrations, password hashing) does not hide what the measured work itself needs."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    return rss_mib()


def baseline(archive: Path) -> dict[str, float]:
    before = reset_peak()
    started = time.perf_counter()
    with zipfile.ZipFile(archive) as zf:
        text = zf.read("data/tweets.js").decode()
    tweets = json.loads(text[text.index("=") + 1:])
    return {"seconds": time.perf_counter() - started, "posts": len(tweets),
            "rss_before_mib": before, "peak_rss_mib": rss_mib()}


async def run_import(archive: Path, workdir: Path) -> dict[str, float]:
    from sidestep.archive.importing import run_import as run
    from sidestep.archive.media import MediaStore
    from sidestep.clock import SystemClock
    from sidestep.importers import importer
    from sidestep.importers.safezip import open_export
    from sidestep.store.accounts import Accounts
    from sidestep.store.db import Database

    db = Database(f"sqlite:///{workdir / 'bench.db'}")
    await db.migrate()
    clock = SystemClock()
    async with db.session() as session:
        ws = await Accounts(session).create_workspace(slug="bench", name="bench", at=clock.now())
    before = reset_peak()
    source = open_export(archive)
    started = time.perf_counter()
    report = await run(db, workspace_id=ws.id, importer=importer("x"), source=source,
                       media=MediaStore.under(workdir), clock=clock)
    seconds = time.perf_counter() - started
    source.close()
    await db.close()
    assert report.error_count == 0, report.errors[:3]
    return {"seconds": seconds, "posts": report.imported, "rss_before_mib": before,
            "peak_rss_mib": rss_mib()}


if __name__ == "__main__":
    mode, archive = sys.argv[1], Path(sys.argv[2])
    if mode == "baseline":
        result = baseline(archive)
    else:
        result = asyncio.run(run_import(archive, Path(sys.argv[3])))
    print(json.dumps(result))
