"""How errors leave the app: JSON under /api, HTML pages everywhere else.

An anonymous caller gets 401 with `WWW-Authenticate: Bearer` from the API and a 303 redirect
to `/login?next=...` from a page. Other HTTP errors keep their status; pages show them on
an error page, the API as `{"detail": ...}`. Unexpected exceptions become a bare 500 that
reveals nothing, and Starlette re-raises them afterwards so the server logs the traceback.
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from sidestep.web.headers import SECURITY_HEADERS
from sidestep.web.views import render

_TITLES = {400: "Bad request", 401: "Sign in needed", 403: "Not allowed", 404: "Not found",
           405: "Method not allowed", 422: "Not understood", 503: "Unavailable"}
_SERVER_ERROR_PAGE = (
    "<!doctype html><html lang=en><meta charset=utf-8><title>Server error · Sidestep</title>"
    "<h1>Something went wrong on our side</h1><p>The error was logged. Try again shortly.</p>"
)


class NotAuthenticated(Exception):
    """The caller is anonymous, or sent a bad API token; `reason` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def is_api(request: Request) -> bool:
    """True when the request is for the JSON API, which answers errors in JSON."""
    path = request.url.path
    return path == "/api" or path.startswith("/api/")


def login_redirect(request: Request) -> RedirectResponse:
    """Return a 303 to the login page that comes back to this page afterwards."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?{urlencode({'next': target})}", status_code=303)


def render_error(
    request: Request, status_code: int, message: str, headers: dict[str, str] | None = None
) -> Response:
    """Return the HTML error page for `status_code` with `message`."""
    title = _TITLES.get(status_code, "Error")
    return render(
        request, "error.html", {"status_code": status_code, "title": title, "message": message},
        status_code=status_code, headers=headers,
    )


async def on_not_authenticated(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, NotAuthenticated)  # registered for this type only
    if is_api(request):
        return JSONResponse(
            {"detail": exc.reason}, status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="sidestep"'},
        )
    return login_redirect(request)


async def on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)  # registered for this type only
    headers = dict(exc.headers) if exc.headers else None
    if is_api(request):
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)
    return render_error(request, exc.status_code, str(exc.detail), headers)


async def on_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)  # registered for this type only
    if is_api(request):
        return JSONResponse({"detail": jsonable_encoder(exc.errors())}, status_code=422)
    problems = "; ".join(
        f"{'.'.join(str(part) for part in error['loc'][1:])}: {error['msg']}"
        for error in exc.errors()
    )
    return render_error(request, 400, f"The request was not understood ({problems}).")


async def on_server_error(request: Request, exc: Exception) -> Response:
    """A 500 that shows nothing of the failure; the security headers are added here because
    this response is made outside the middleware that adds them to every other one."""
    if is_api(request):
        return JSONResponse(
            {"detail": "internal server error"}, status_code=500, headers=SECURITY_HEADERS
        )
    return HTMLResponse(_SERVER_ERROR_PAGE, status_code=500, headers=SECURITY_HEADERS)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers above on `app`."""
    app.add_exception_handler(NotAuthenticated, on_not_authenticated)
    app.add_exception_handler(StarletteHTTPException, on_http_exception)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(Exception, on_server_error)
