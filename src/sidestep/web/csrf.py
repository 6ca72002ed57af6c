"""Cross-site request forgery defences for the pages.

Signed-in browsers: every HTML form carries the session's own `csrf_token` (a random value
stored on the session row) in a hidden field; every unsafe request authenticated by the
session cookie must present it, in that field or in the `X-CSRF-Token` header, and it is
compared in constant time. The check runs inside the dependency that resolves the caller
(`sidestep.web.deps`), so no route can forget it. Bearer-token API calls carry no cookie an
attacker's page could ride on, so they are exempt.

The login form has no session yet, so it uses a *signed double-submit token*: GET /login sets
a random nonce in the `sidestep_login_csrf` cookie (HttpOnly, SameSite=Lax, path /login) and
puts into the form a token sealed with the vault's key (Fernet: encrypted and authenticated)
holding that nonce, a purpose tag and the issue time. POST /login accepts the form only if
the token opens with our key, names the login purpose, is younger than `LOGIN_TOKEN_MAX_AGE_S`
and holds the very nonce of the cookie. A plain double-submit cookie could be planted by a
sibling subdomain; the seal means a forged pair cannot be made without our key, and the key
is shared by every web process, so any of them can check a form another one served.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import HTTPException, Request, status

from sidestep.security import new_token, same
from sidestep.vault import Vault, VaultError

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
LOGIN_COOKIE = "sidestep_login_csrf"
LOGIN_TOKEN_MAX_AGE_S = 2 * 3600
_LOGIN_PURPOSE = "login-csrf"
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class CsrfRejected(HTTPException):
    """403: the request's CSRF token is missing, wrong or expired."""

    def __init__(self) -> None:
        super().__init__(
            status_code=status.HTTP_403_FORBIDDEN,
            detail="the form's security token is missing or wrong; reload the page and try again",
        )


async def submitted_token(request: Request) -> str | None:
    """Return the CSRF token sent with the request (header first, then form field), or None."""
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith(_FORM_TYPES):
        return None
    value = (await request.form()).get(CSRF_FIELD)
    return value if isinstance(value, str) and value else None


async def check_session_token(request: Request, expected: str) -> None:
    """Raise `CsrfRejected` unless the request carries `expected` (compared in constant time)."""
    given = await submitted_token(request)
    if given is None or not same(given, expected):
        raise CsrfRejected()


def issue_login_token(vault: Vault, *, now: datetime) -> tuple[str, str]:
    """Return `(cookie_nonce, form_token)` for a fresh login form."""
    nonce = new_token()
    sealed = vault.encrypt(
        {"purpose": _LOGIN_PURPOSE, "nonce": nonce, "issued_at": now.isoformat()}
    )
    return nonce, sealed.decode("ascii")


def login_token_is_valid(
    vault: Vault, *, cookie_nonce: str | None, form_token: str | None, now: datetime
) -> bool:
    """True when the login form's token was sealed by us, is fresh, and matches the cookie."""
    if not cookie_nonce or not form_token:
        return False
    try:
        fields = vault.decrypt(form_token.encode("ascii")).reveal()
        issued_at = datetime.fromisoformat(fields["issued_at"])
    except (VaultError, UnicodeEncodeError, ValueError, KeyError, TypeError):
        return False
    if fields.get("purpose") != _LOGIN_PURPOSE:
        return False
    # A minute of leeway backwards: web processes on several machines may disagree a little.
    if not timedelta(seconds=-60) <= now - issued_at <= timedelta(seconds=LOGIN_TOKEN_MAX_AGE_S):
        return False
    return same(fields.get("nonce", ""), cookie_nonce)
