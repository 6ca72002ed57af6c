"""The import bench: posts/s and peak memory at 10k, 50k and 100k generated tweets.

    .venv/bin/python bench/import/run.py [--sizes 10000,50000,100000]

Each size: generate the archive, run the zipfile + json.loads baseline and Sidestep's
import, each in a fresh process; print a Markdown table for RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from make_x_archive import write  # noqa: E402


def measure(*args: str) -> dict[str, float]:
    out = subprocess.run(  # noqa: S603 - our own script, arguments we made
        [sys.executable, str(HERE / "measure.py"), *args], check=True,
        capture_output=True, text=True).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,50000,100000")
    sizes = [int(s) for s in parser.parse_args().sizes.split(",")]
    print("| tweets | archive MiB (zip / tweets.js) | baseline s | baseline posts/s "
          "| baseline peak RSS MiB | import s | posts/s | RSS before import MiB "
          "| peak RSS during import MiB |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            archive = Path(tmp) / "x.zip"
            write(archive, size)
            import zipfile
            with zipfile.ZipFile(archive) as zf:
                raw = zf.getinfo("data/tweets.js").file_size
            base = measure("baseline", str(archive))
            work = Path(tmp) / "work"
            work.mkdir()
            run = measure("import", str(archive), str(work))
            assert run["posts"] == size == base["posts"]
            print(f"| {size:,} | {archive.stat().st_size / 2**20:.1f} / {raw / 2**20:.1f} "
                  f"| {base['seconds']:.2f} | {size / base['seconds']:,.0f} "
                  f"| {base['peak_rss_mib']:.0f} "
                  f"| {run['seconds']:.1f} | {size / run['seconds']:,.0f} "
                  f"| {run['rss_before_mib']:.0f} | {run['peak_rss_mib']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
