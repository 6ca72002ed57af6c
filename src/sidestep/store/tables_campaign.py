"""Tables for email campaigns and their per-recipient results. Changes need a migration."""

from __future__ import annotations
