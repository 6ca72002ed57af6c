"""X's v1.1 chunked media upload, served by `XProfile` on upload.twitter.com.

- `POST upload.twitter.com/1.1/media/upload.json` command=INIT|APPEND|FINALIZE and
  `GET ...?command=STATUS` — https://developer.x.com/en/docs/twitter-api/v1/media/upload-media/api-reference/post-media-upload-init
  (APPEND chunks <= 5 MB; OAuth 1.0a user context only)

v1.1 answers `{"errors":[{"code","message"}]}` (88 rate limit, 32 could not authenticate, 89
invalid or expired token, 215 bad authentication data) and, for media problems,
`{"request","error"}`.

OAuth 1.0a: the `Authorization: OAuth ...` header must carry every parameter of
https://docs.x.com/fundamentals/authentication/oauth-1-0a/authorizing-a-request, quoted, with
HMAC-SHA1, version 1.0 and a timestamp within 5 minutes; `oauth_token` is looked up with
`world.grant_token("x", ...)`. The signature is checked for presence only: verifying it needs the
consumer and token secrets, which the simulated world does not hold.

The upload mechanics (sizes, chunks, processing) are the profile's, shared with the v2 upload;
this module only speaks v1.1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sidestep.sim.profile import ErrorKind

if TYPE_CHECKING:
    from sidestep.sim.platforms.x import XProfile

PATH = "/1.1/media/upload.json"
OAUTH_PARAMS = ("oauth_consumer_key", "oauth_nonce", "oauth_signature",
                "oauth_signature_method", "oauth_timestamp", "oauth_token", "oauth_version")


class OAuth1Refused(Exception):
    """The v1.1 answer to an Authorization header that does not open an account."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def v11_error(status: int, code: int, message: str,
              headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"errors": [{"code": code, "message": message}]}, status, headers=headers)


def media_error(message: str) -> Response:
    return JSONResponse({"request": PATH, "error": message}, 400)


def error_for(kind: ErrorKind, message: str, *, rate_headers: dict[str, str]) -> Response:
    """An injected fault in v1.1 words (`rate_headers` go on the rate-limit answer)."""
    if kind is ErrorKind.RATE_LIMITED:
        return v11_error(429, 88, "Rate limit exceeded", rate_headers)
    if kind in (ErrorKind.INVALID_REQUEST, ErrorKind.MEDIA_FAILED, ErrorKind.DUPLICATE,
                ErrorKind.NOT_FOUND):
        return media_error(message or "Invalid request.")
    status, code, text = {
        ErrorKind.SERVER_ERROR: (500, 131, "Internal error."),
        ErrorKind.UNAVAILABLE: (503, 130, "Over capacity."),
        ErrorKind.AUTH_EXPIRED: (401, 89, "Invalid or expired token."),
        ErrorKind.AUTH_MISSING: (400, 215, "Bad Authentication data."),
    }[kind]
    return v11_error(status, code, text)


async def upload(profile: XProfile, request: Request, params: dict[str, Any], *,
                 expires_s: int) -> Response:
    """The answer to one v1.1 upload command. The profile's upload mechanics raise its
    `BadParam`, which the caller answers as a v1.1 media error."""
    try:
        account = oauth1_account(profile, request)
    except OAuth1Refused as refusal:
        return refusal.response
    command = str(params.get("command", ""))
    if command == "INIT" and request.method == "POST":
        media_id = profile._init_upload(account, params.get("media_type"),
                                        int_param(params.get("total_bytes")),
                                        params.get("media_category"))
        return JSONResponse({"media_id": int(media_id), "media_id_string": media_id,
                             "expires_after_secs": expires_s}, 202)
    media_id = str(params.get("media_id", ""))
    own = profile._own_upload(account, media_id)
    if command == "APPEND" and request.method == "POST":
        await profile._append(own, params)
        return Response(status_code=204)
    if command == "FINALIZE" and request.method == "POST":
        profile._finalize(own)
        return JSONResponse(_status(profile, media_id, expires_s=expires_s), 201)
    if command == "STATUS" and request.method == "GET":
        return JSONResponse(_status(profile, media_id, expires_s=expires_s))
    return media_error("Invalid command.")


def oauth1_account(profile: XProfile, request: Request) -> str:
    """The account the OAuth 1.0a header's token opens; OAuth1Refused if none."""
    header = request.headers.get("authorization", "")
    if not header.startswith("OAuth "):
        raise OAuth1Refused(v11_error(400, 215, "Bad Authentication data."))
    oauth: dict[str, str] = {}
    for item in header[6:].split(","):
        name, sep, value = item.strip().partition("=")
        if not sep or len(value) < 2 or value[0] != '"' or value[-1] != '"':
            raise OAuth1Refused(v11_error(400, 215, "Bad Authentication data."))
        oauth[name] = unquote(value[1:-1])
    if any(not oauth.get(name) for name in OAUTH_PARAMS) \
            or oauth["oauth_signature_method"] != "HMAC-SHA1" \
            or oauth["oauth_version"] != "1.0" or not oauth["oauth_timestamp"].isdigit():
        raise OAuth1Refused(v11_error(400, 215, "Bad Authentication data."))
    if abs(int(oauth["oauth_timestamp"]) - profile.world.clock.now().timestamp()) > 300:
        raise OAuth1Refused(v11_error(401, 135, "Timestamp out of bounds."))
    account = profile.world.account_for(profile.key, oauth["oauth_token"])
    if account is None:
        raise OAuth1Refused(v11_error(401, 89, "Invalid or expired token."))
    return account


def int_param(value: Any) -> int | None:
    """An integer parameter, which a form sends as digits; None if it is not one."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _status(profile: XProfile, media_id: str, *, expires_s: int) -> dict[str, Any]:
    status = profile._media_status(media_id)
    body: dict[str, Any] = {"media_id": int(media_id), "media_id_string": media_id,
                            "media_key": status["media_key"], "size": status["size"],
                            "expires_after_secs": expires_s}
    if "processing_info" in status:
        body["processing_info"] = status["processing_info"]
    own = profile._uploads[media_id]
    if own.kind == "image":
        body["image"] = {"image_type": own.media_type}
    else:
        body["video"] = {"video_type": own.media_type}
    return body
