"""The web layer: dashboard pages, the JSON API under /api/v1, auth, health and metrics.

Build the app with `sidestep.web.app.create_app(runtime)`.
"""
