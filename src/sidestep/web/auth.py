"""Signing in and out of the pages.

POST /login checks the login form's signed double-submit token (see `sidestep.web.csrf`),
then the password (argon2, through `Accounts.authenticate`). A wrong address and a wrong
password get the same message and the same status, 400, so the form does not tell which
addresses have accounts. Success opens a session whose random token goes into the
`sidestep_session` cookie: HttpOnly, SameSite=Lax, Path=/, Secure when the public URL is
https, lasting `settings.session_max_age_s`. Only the token's hash is stored. A session the
browser already had is ended first, so signing in always starts a fresh session.
POST /logout deletes the session row and the cookie.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from sidestep.config import Settings
from sidestep.runtime import Runtime
from sidestep.store.accounts import Accounts
from sidestep.web.csrf import (
    LOGIN_COOKIE,
    LOGIN_TOKEN_MAX_AGE_S,
    issue_login_token,
    login_token_is_valid,
)
from sidestep.web.deps import SESSION_COOKIE, MaybePrincipal, UnitOfWork, get_runtime
from sidestep.web.views import render

router = APIRouter(include_in_schema=False)

BAD_LOGIN = "The email address or the password is wrong."
STALE_FORM = "This sign-in form has expired or did not come from Sidestep. Please sign in again."


def safe_next(target: str | None) -> str:
    """Return `target` if it is a path on this site, else `/` (no open redirects)."""
    if (
        not target
        or not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
        or any(ord(ch) < 32 for ch in target)
    ):
        return "/"
    return target


def set_session_cookie(response: Response, token: str, settings: Settings) -> None:
    response.set_cookie(
        SESSION_COOKIE, token, max_age=settings.session_max_age_s, path="/",
        secure=settings.cookies_secure, httponly=True, samesite="lax",
    )


def clear_session_cookie(response: Response, settings: Settings) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path="/", secure=settings.cookies_secure, httponly=True, samesite="lax"
    )


def login_page(
    request: Request,
    runtime: Runtime,
    *,
    next_url: str,
    email: str = "",
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    """Render the login form with a fresh signed token, and set its nonce cookie."""
    nonce, token = issue_login_token(runtime.vault, now=runtime.clock.now())
    response = render(
        request, "login.html",
        {"csrf_token": token, "next": next_url, "email": email, "error": error},
        status_code=status_code,
    )
    response.set_cookie(
        LOGIN_COOKIE, nonce, max_age=LOGIN_TOKEN_MAX_AGE_S, path="/login",
        secure=runtime.settings.cookies_secure, httponly=True, samesite="lax",
    )
    return response


@router.get("/login")
async def login_form(request: Request, principal: MaybePrincipal, next: str = "/") -> Response:
    """The sign-in form; someone already signed in goes straight on to `next`."""
    if principal is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return login_page(request, get_runtime(request), next_url=safe_next(next))


@router.post("/login")
async def login(
    request: Request,
    session: UnitOfWork,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    next: Annotated[str, Form(max_length=2048)] = "/",
    csrf_token: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    """Sign in: 303 to `next` with the session cookie; 400 for bad credentials; 403 for a bad
    form token (both re-render the form)."""
    runtime = get_runtime(request)
    now = runtime.clock.now()
    next_url = safe_next(next)
    if not login_token_is_valid(
        runtime.vault, cookie_nonce=request.cookies.get(LOGIN_COOKIE), form_token=csrf_token,
        now=now,
    ):
        return login_page(request, runtime, next_url=next_url, email=email, error=STALE_FORM,
                          status_code=403)
    accounts = Accounts(session)
    user = await accounts.authenticate(email=email, password=password)
    if user is None:
        return login_page(request, runtime, next_url=next_url, email=email, error=BAD_LOGIN,
                          status_code=400)
    if old := request.cookies.get(SESSION_COOKIE):
        await accounts.end_session(old)
    token, _ = await accounts.start_session(
        user_id=user.id, at=now, max_age_s=runtime.settings.session_max_age_s
    )
    response = RedirectResponse(next_url, status_code=303)
    set_session_cookie(response, token, runtime.settings)
    response.delete_cookie(LOGIN_COOKIE, path="/login", secure=runtime.settings.cookies_secure,
                           httponly=True, samesite="lax")
    return response


@router.post("/logout")
async def logout(request: Request, principal: MaybePrincipal, session: UnitOfWork) -> Response:
    """End the browser's session (the CSRF token was checked resolving `principal`); 303 to
    the login page."""
    runtime = get_runtime(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    if principal is not None and principal.session is not None and cookie:
        await Accounts(session).end_session(cookie)
    response = RedirectResponse("/login", status_code=303)
    clear_session_cookie(response, runtime.settings)
    return response
