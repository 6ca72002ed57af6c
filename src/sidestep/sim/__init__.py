"""The platform simulator: local servers that play each platform's API, DNS and status page."""
