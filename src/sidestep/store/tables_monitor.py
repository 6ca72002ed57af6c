"""Tables for the monitor capability (see docs/ARCHITECTURE.md). Changes need a migration."""

from __future__ import annotations
