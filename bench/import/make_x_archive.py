"""Write a generated X archive of N tweets (data/tweets.js in the platform's own format)."""

from __future__ import annotations

import json
import random
import sys
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

WORDS = ("outage launch café naïve 🎉 sidestep platform audience link archive status "
         "newsletter down again back up thanks everyone Ünïcödé 日本語 emoji 🚀 ✨").split()


def tweet(i: int, rng: random.Random, start: datetime) -> dict[str, object]:
    text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 40)))
    when = start + timedelta(minutes=7 * i)
    return {"tweet": {
        "id_str": str(10**17 + i), "id": str(10**17 + i), "full_text": text + " &amp; more",
        "created_at": when.strftime("%a %b %d %H:%M:%S +0000 %Y"), "lang": "en",
        "favorite_count": str(rng.randint(0, 500)), "retweet_count": str(rng.randint(0, 50)),
        "retweeted": False, "favorited": False, "truncated": False,
        "source": '<a href="https://mobile.twitter.com" rel="nofollow">Twitter Web App</a>',
        "display_text_range": ["0", str(len(text))],
        "entities": {"hashtags": [], "symbols": [], "user_mentions": [], "urls": []},
    }}


def write(path: Path, count: int, *, seed: int = 9) -> None:
    rng = random.Random(seed)  # noqa: S311 - repeatable test data, not secrets
    start = datetime(2012, 1, 1, tzinfo=UTC)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf, \
            zf.open("data/tweets.js", "w", force_zip64=True) as out:
        out.write(b"window.YTD.tweets.part0 = [\n")
        for i in range(count):
            if i:
                out.write(b",\n")
            out.write(json.dumps(tweet(i, rng, start), indent=2, ensure_ascii=False).encode())
        out.write(b"\n]")


if __name__ == "__main__":
    write(Path(sys.argv[1]), int(sys.argv[2]))
