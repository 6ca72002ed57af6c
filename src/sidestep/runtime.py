"""What a running Sidestep holds: settings, database, vault, clock. Built once per process."""

from __future__ import annotations

from dataclasses import dataclass, field

from sidestep.clock import Clock, SystemClock
from sidestep.config import Settings
from sidestep.store.db import Database
from sidestep.vault import Vault


@dataclass
class Runtime:
    settings: Settings
    db: Database
    vault: Vault
    clock: Clock = field(default_factory=SystemClock)

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Clock | None = None) -> Runtime:
        """Build the runtime; nothing touches the database until `start()`."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        secret = settings.secret_key.get_secret_value() if settings.secret_key else None
        return cls(
            settings=settings,
            db=Database(settings.resolved_database_url),
            vault=Vault.from_settings(secret_key=secret, data_dir=settings.data_dir),
            clock=clock or SystemClock(),
        )

    async def start(self) -> None:
        """Apply pending migrations."""
        await self.db.migrate()

    async def close(self) -> None:
        await self.db.close()
