from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sidestep.archive.model import ImportedPost, MediaRef, SourceRef, Visibility
from sidestep.store.accounts import Accounts
from sidestep.store.db import Database

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


async def workspace(db: Database, slug: str) -> int:
    async with db.session() as session:
        return (await Accounts(session).create_workspace(slug=slug, name=slug, at=T0)).id


def post(platform: str, source_id: str, text: str, *, minutes: float = 0,
         media: tuple[MediaRef, ...] = (), visibility: Visibility = Visibility.PUBLIC
         ) -> ImportedPost:
    return ImportedPost(
        sources=(SourceRef(platform, source_id, f"https://{platform}.example/{source_id}"),),
        text=text, created_at=T0 + timedelta(minutes=minutes), media=media,
        visibility=visibility)
