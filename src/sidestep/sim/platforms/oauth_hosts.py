"""Consent and token hosts that no platform profile serves, for the OAuth flows of `_oauth.py`.

| host                  | method | path                | platform  |
|-----------------------|--------|---------------------|-----------|
| x.com                 | GET    | /i/oauth2/authorize | x         |
| www.pinterest.com     | GET    | /oauth/             | pinterest |
| www.tiktok.com        | GET    | /v2/auth/authorize/ | tiktok    |
| accounts.google.com   | GET    | /o/oauth2/v2/auth   | youtube   |
| oauth2.googleapis.com | POST   | /token              | youtube   |
| api.instagram.com     | POST   | /oauth/access_token | instagram |

Documented at, in the same order:
    https://docs.x.com/fundamentals/authentication/oauth-2-0/authorization-code
    https://developers.pinterest.com/docs/getting-started/set-up-authentication-and-authorization/
    https://developers.tiktok.com/doc/login-kit-web
    https://developers.google.com/identity/protocols/oauth2/web-server (both Google hosts)
    https://developers.facebook.com/documentation/instagram-platform/instagram-api-with-instagram-login/business-login

The platforms' own hosts (api.x.com, graph.facebook.com, www.linkedin.com, ...) mount the
rest in their profiles. Faults for these hosts are set on `oauth_hosts`, not on the platform:
`await sim.set_fault("oauth_hosts", "http_5xx")`. Errors are RFC 6749 §5.2 bodies.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Host, Router

from sidestep.sim.platforms._oauth import oauth_routes
from sidestep.sim.profile import ErrorKind, Profile

# host -> (platform, consent paths, token paths)
HOSTS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "x.com": ("x", ("/i/oauth2/authorize",), ()),
    "www.pinterest.com": ("pinterest", ("/oauth/",), ()),
    "www.tiktok.com": ("tiktok", ("/v2/auth/authorize/",), ()),
    "accounts.google.com": ("youtube", ("/o/oauth2/v2/auth",), ()),
    "oauth2.googleapis.com": ("youtube", (), ("/token",)),
    "api.instagram.com": ("instagram", (), ("/oauth/access_token",)),
}

_ERRORS = {
    ErrorKind.SERVER_ERROR: (500, "server_error"),
    ErrorKind.UNAVAILABLE: (503, "temporarily_unavailable"),
    ErrorKind.RATE_LIMITED: (429, "slow_down"),
    ErrorKind.AUTH_EXPIRED: (400, "invalid_grant"),
    ErrorKind.AUTH_MISSING: (401, "invalid_client"),
    ErrorKind.INVALID_REQUEST: (400, "invalid_request"),
    ErrorKind.NOT_FOUND: (404, "not_found"),
    ErrorKind.DUPLICATE: (400, "invalid_request"),
    ErrorKind.MEDIA_FAILED: (500, "server_error"),
}


class OAuthHostsProfile(Profile):
    """Authorization and token endpoints on hosts of their own."""

    key = "oauth_hosts"
    hosts = tuple(HOSTS)
    spec = None  # no provider publishes its authorization server as OpenAPI

    def routes(self) -> list[BaseRoute]:
        return [Host(host, Router(oauth_routes(self.world, platform, authorize=consent,
                                               token=token)))
                for host, (platform, consent, token) in HOSTS.items()]

    def feature_of(self, request: Request) -> str:
        return "auth"

    def error(self, kind: ErrorKind, message: str, *, retry_after_s: float | None = None
              ) -> Response:
        status, code = _ERRORS[kind]
        headers = {"Retry-After": str(int(retry_after_s))} if retry_after_s is not None else {}
        return JSONResponse({"error": code, "error_description": message}, status_code=status,
                            headers=headers)


__all__ = ["HOSTS", "OAuthHostsProfile"]
