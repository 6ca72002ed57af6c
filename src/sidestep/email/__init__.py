"""The owned email channel: the audience (subscribers, lists, consent, suppression, templates)
and the sending (messages, DKIM, the SMTP pool, campaigns, bounces).

Audience modules: `addresses` (normalising addresses), `links` (signed unsubscribe and
confirmation tokens), `templates` (sandboxed rendering and the linter), `consent` (double
opt-in, unsubscribe, preferences), `csv_io` (import and export), `confirm_mail` (the one
transactional mail sent outside the campaign pool).
"""
