"""Graph error bodies, and each Meta product's documented answer to every `ErrorKind`."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from starlette.responses import JSONResponse, Response

from sidestep.sim.platforms._graph.state import GraphState
from sidestep.sim.profile import ErrorKind


class GraphProblem(Exception):
    """A refusal in Graph's words; handlers raise it, `mount` renders it."""

    def __init__(
        self,
        status: int,
        code: int,
        message: str,
        *,
        subcode: int | None = None,
        error_type: str = "OAuthException",
        is_transient: bool | None = None,
        user_title: str | None = None,
        user_msg: str | None = None,
        error_data: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.subcode = status, code, message, subcode
        self.error_type, self.is_transient = error_type, is_transient
        self.user_title, self.user_msg = user_title, user_msg
        self.error_data, self.headers = error_data, headers or {}


@dataclass(frozen=True, slots=True)
class Throttle:
    """How a product says "slow down": HTTP status, code, message, usage header."""

    status: int
    code: int
    message: str
    use_case: str | None  # the X-Business-Use-Case-Usage `type`; None: X-App-Usage only


@dataclass(frozen=True, slots=True)
class Dialect:
    """What differs between the Meta products' errors; the rest is Graph's."""

    platform: str
    throttle: Throttle
    media_failure: tuple[int, int | None, str]  # code, subcode, message (HTTP 400)
    error_type: str = "OAuthException"
    auth_status: int = 400
    whatsapp_error_data: bool = False  # Cloud API adds error_data {messaging_product, details}


def error_body(state: GraphState, problem: GraphProblem) -> dict[str, Any]:
    error: dict[str, Any] = {"message": problem.message, "type": problem.error_type,
                             "code": problem.code}
    if problem.error_data is not None:
        error["error_data"] = problem.error_data
    if problem.subcode is not None:
        error["error_subcode"] = problem.subcode
    if problem.is_transient is not None:
        error["is_transient"] = problem.is_transient
    if problem.user_title is not None:
        error["error_user_title"] = problem.user_title
    if problem.user_msg is not None:
        error["error_user_msg"] = problem.user_msg
    error["fbtrace_id"] = state.trace_id()
    return {"error": error}


def render(state: GraphState, problem: GraphProblem) -> Response:
    body = error_body(state, problem)
    headers = {"x-fb-trace-id": body["error"]["fbtrace_id"], **problem.headers}
    if problem.code == 190:  # Graph repeats token errors in the OAuth 2.0 challenge header
        headers["www-authenticate"] = (
            f'OAuth "Facebook Platform" "invalid_token" "{problem.message}"')
    return JSONResponse(body, status_code=problem.status, headers=headers)


def usage_headers(owner: str, use_case: str | None,
                  retry_after_s: float | None) -> dict[str, str]:
    """Usage headers at 100 % with the time to regain access (minutes, rounded up)."""
    regain_min = 0 if retry_after_s is None else max(1, math.ceil(retry_after_s / 60))
    headers = {"x-app-usage": json.dumps(
        {"call_count": 100, "total_cputime": 100, "total_time": 100})}
    if use_case is not None:
        headers["x-business-use-case-usage"] = json.dumps({owner: [{
            "type": use_case, "call_count": 100, "total_cputime": 100, "total_time": 100,
            "estimated_time_to_regain_access": regain_min}]})
    return headers


def problem_for(state: GraphState, dialect: Dialect, kind: ErrorKind, message: str, *,
                retry_after_s: float | None = None) -> GraphProblem:
    """The product's documented error for each `ErrorKind` (see the module docstrings)."""
    kind_of = dialect.error_type
    if kind is ErrorKind.SERVER_ERROR:
        problem = GraphProblem(500, 1, "An unknown error occurred", is_transient=True,
                               error_type=kind_of)
    elif kind is ErrorKind.UNAVAILABLE:
        problem = GraphProblem(503, 2, "Service temporarily unavailable", is_transient=True,
                               error_type=kind_of)
    elif kind is ErrorKind.RATE_LIMITED:
        throttle = dialect.throttle
        problem = GraphProblem(
            throttle.status, throttle.code, throttle.message, is_transient=True,
            headers=usage_headers(dialect.platform, throttle.use_case, retry_after_s),
            error_type=kind_of)
    elif kind is ErrorKind.AUTH_EXPIRED:
        now = state.world.clock.now()
        problem = GraphProblem(
            dialect.auth_status, 190,
            "Error validating access token: Session has expired on "
            f"{now.strftime('%A, %d-%b-%y')} 00:00:00 PST. The current time is "
            f"{now.strftime('%A, %d-%b-%y %H:%M:%S')} UTC.", subcode=463)
    elif kind is ErrorKind.AUTH_MISSING:
        problem = GraphProblem(dialect.auth_status, 190,
                               "Invalid OAuth access token - Cannot parse access token",
                               subcode=467)
    elif kind is ErrorKind.INVALID_REQUEST:
        problem = invalid(f"(#100) {message or 'Invalid parameter'}", error_type=kind_of)
    elif kind is ErrorKind.NOT_FOUND:
        problem = unsupported("get", message or "0", kind_of)
    elif kind is ErrorKind.DUPLICATE:
        problem = GraphProblem(400, 506, "(#506) Duplicate status message",
                               user_title="Duplicate Status Update",
                               user_msg="This status update is identical to the last one you"
                               " posted. Try posting something different, or delete your"
                               " previous update.", error_type=kind_of)
    else:  # MEDIA_FAILED
        code, subcode, text = dialect.media_failure
        problem = GraphProblem(400, code, text, subcode=subcode, is_transient=False,
                               error_type=kind_of)
    if dialect.whatsapp_error_data:
        problem.error_data = {"messaging_product": "whatsapp",
                              "details": message or problem.message}
    return problem


def dialect_error(state: GraphState, dialect: Dialect, kind: ErrorKind, message: str, *,
                  retry_after_s: float | None = None) -> Response:
    """`Profile.error` for a Meta product."""
    return render(state, problem_for(state, dialect, kind, message, retry_after_s=retry_after_s))


def unsupported(verb: str, object_id: str, error_type: str = "OAuthException") -> GraphProblem:
    return GraphProblem(
        400, 100,
        f"Unsupported {verb} request. Object with ID '{object_id}' does not exist, cannot be"
        " loaded due to missing permissions, or does not support this operation. Please read"
        " the Graph API documentation at https://developers.facebook.com/docs/graph-api",
        subcode=33, error_type=error_type)


def invalid(message: str, *, subcode: int | None = None, code: int = 100,
            error_type: str = "OAuthException") -> GraphProblem:
    return GraphProblem(400, code, message, subcode=subcode, error_type=error_type)


