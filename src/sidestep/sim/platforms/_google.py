"""Google's JSON error body, shared by the simulated Google APIs (YouTube, Business Profile).

Google APIs answer `{"error": {"code", "message", "errors": [{"message", "domain", "reason",
"location"?, "locationType"?}], "status"}}`: `code` is the HTTP status, `status` the
google.rpc.Code name (https://cloud.google.com/apis/design/errors#http_mapping), and `errors[]`
the older per-API detail YouTube documents reasons in
(https://developers.google.com/youtube/v3/docs/errors). Credentials problems answer 401 with
`WWW-Authenticate: Bearer realm="https://accounts.google.com/"`.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from sidestep.sim.profile import ErrorKind

RPC_STATUS = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
    409: "ALREADY_EXISTS", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE",
}
INVALID_CREDENTIALS = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie "
    "or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project.")
MISSING_CREDENTIALS = (
    "Request is missing required authentication credential. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project.")


def google_error(code: int, message: str, *, reason: str, domain: str = "global",
                 detail: str | None = None, location: str | None = None,
                 location_type: str | None = None, headers: dict[str, str] | None = None,
                 details: list[dict[str, Any]] | None = None) -> JSONResponse:
    """One Google error response; `detail` is the per-error message when it differs."""
    item: dict[str, Any] = {"message": detail or message, "domain": domain, "reason": reason}
    if location is not None:
        item |= {"location": location, "locationType": location_type or "parameter"}
    error: dict[str, Any] = {"code": code, "message": message, "errors": [item],
                             "status": RPC_STATUS.get(code, "UNKNOWN")}
    if details:
        error["details"] = details
    return JSONResponse({"error": error}, code, headers=headers)


def credentials_error(*, missing: bool) -> JSONResponse:
    """401 for a request without a token (`required`) or with a bad one (`authError`)."""
    challenge = 'Bearer realm="https://accounts.google.com/"'
    if missing:
        return google_error(401, MISSING_CREDENTIALS, reason="required", detail="Login Required.",
                            location="Authorization", location_type="header",
                            headers={"WWW-Authenticate": challenge})
    return google_error(401, INVALID_CREDENTIALS, reason="authError",
                        detail="Invalid Credentials", location="Authorization",
                        location_type="header",
                        headers={"WWW-Authenticate": f'{challenge}, error="invalid_token"'})


def common_error(kind: ErrorKind, message: str) -> JSONResponse | None:
    """The answer every Google API gives for `kind`, or None where an API has its own words."""
    if kind is ErrorKind.AUTH_MISSING:
        return credentials_error(missing=True)
    if kind is ErrorKind.AUTH_EXPIRED:
        return credentials_error(missing=False)
    if kind is ErrorKind.SERVER_ERROR:
        return google_error(500, "Internal error encountered.", reason="backendError")
    if kind is ErrorKind.UNAVAILABLE:
        return google_error(503, "The service is currently unavailable.", reason="backendError")
    return None
