"""The whole schema: every table module imported, so `metadata` is complete for migrations."""

from sidestep.store import (  # noqa: F401  (imported for the tables they declare)
    tables_agents,
    tables_archive,
    tables_campaign,
    tables_dispatch,
    tables_email,
    tables_metrics,
    tables_monitor,
    tables_playbooks,
    tables_site,
)
from sidestep.store.tables import Base

metadata = Base.metadata
