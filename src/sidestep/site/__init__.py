"""The owned site: link page with live status, status banner, archive, feeds, static export.

One set of pages serves two ways. `sidestep.web.site` answers them under `/site/{slug}/`
from the database at request time; `sidestep.site.build` writes the same pages as files
with relative links that work from any static host. What differs between the two is only
where links point (`links.Links`). Only what a workspace chose to publish is shown: the
site is off until turned on, the link page lists only the channels picked for it, and the
archive shows only posts whose visibility is public (`sidestep.store.site.PublicArchive`).
"""
