"""The platform catalogue: who owns each platform, how to probe it, what a post may hold.

Data lives in ``platforms.toml``; :func:`load_catalogue` validates it and
:func:`default_catalogue` returns the packaged copy, loaded once. Every problem is a
:class:`CatalogueError` naming the file, the platform and the field.
"""

from sidestep.catalogue.loader import (
    DEFAULT_CATALOGUE_PATH,
    Catalogue,
    CatalogueError,
    Limits,
    Platform,
    Probe,
    Quotas,
    StatusFeed,
    default_catalogue,
    load_catalogue,
)

__all__ = [
    "DEFAULT_CATALOGUE_PATH",
    "Catalogue",
    "CatalogueError",
    "Limits",
    "Platform",
    "Probe",
    "Quotas",
    "StatusFeed",
    "default_catalogue",
    "load_catalogue",
]
