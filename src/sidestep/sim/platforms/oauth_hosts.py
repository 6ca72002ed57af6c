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

Three of these hosts are also the platforms' web sites, which the monitor probes (catalogue
`probes`): `GET /` on x.com, www.pinterest.com and www.tiktok.com is the platform's home page
(`_probe_pages`), and belongs to that platform (`platform_of`), so its faults (other than
`refused` and `timeout`, which stay this host's, as on every shared host) hit the page.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Host, Router

from sidestep.sim.platforms._oauth import oauth_routes
from sidestep.sim.platforms._probe_pages import web_routes
from sidestep.sim.profile import ErrorKind, Profile

# host -> (platform, consent paths, token paths)
# (accounts.google.com first: `hosts[0]` is a host whose every path is this profile's own)
HOSTS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "accounts.google.com": ("youtube", ("/o/oauth2/v2/auth",), ()),
    "x.com": ("x", ("/i/oauth2/authorize",), ()),
    "www.pinterest.com": ("pinterest", ("/oauth/",), ()),
    "www.tiktok.com": ("tiktok", ("/v2/auth/authorize/",), ()),
    "oauth2.googleapis.com": ("youtube", (), ("/token",)),
    "api.instagram.com": ("instagram", (), ("/oauth/access_token",)),
}
# host -> (platform, its web page's title): the home pages the monitor probes
WEB_PAGES: dict[str, tuple[str, str]] = {
    "x.com": ("x", "X"),
    "www.pinterest.com": ("pinterest", "Pinterest"),
    "www.tiktok.com": ("tiktok", "TikTok - Make Your Day"),
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
        pages = web_routes({host: title for host, (_, title) in WEB_PAGES.items()})
        return [Host(host, Router([*(pages if host in WEB_PAGES else []),
                                   *oauth_routes(self.world, platform, authorize=consent,
                                                 token=token)]))
                for host, (platform, consent, token) in HOSTS.items()]

    def _web_page(self, request: Request) -> str | None:
        """The platform whose web page `request` asks for, if it does."""
        if request.url.path != "/":
            return None
        return WEB_PAGES.get((request.url.hostname or "").lower(), (None, ""))[0]

    def feature_of(self, request: Request) -> str:
        return "auth" if self._web_page(request) is None else "read"

    def platform_of(self, request: Request) -> str:
        return self._web_page(request) or self.key

    def error(self, kind: ErrorKind, message: str, *, retry_after_s: float | None = None
              ) -> Response:
        status, code = _ERRORS[kind]
        headers = {"Retry-After": str(int(retry_after_s))} if retry_after_s is not None else {}
        return JSONResponse({"error": code, "error_description": message}, status_code=status,
                            headers=headers)


__all__ = ["HOSTS", "OAuthHostsProfile"]
