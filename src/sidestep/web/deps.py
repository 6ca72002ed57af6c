"""Request dependencies: the unit of work, who is asking, and what they may do here.

Every page and API route learns its caller from `optional_principal` (directly or through
`require_user` / `require_role`), which is also where CSRF is enforced: a caller signed in
by the session cookie must show the session's CSRF token on every unsafe method, so no route
can forget it. A caller with `Authorization: Bearer` is judged by that token alone; a bad
token is refused even if a session cookie came along, never silently replaced by it.

`require_role(role)` resolves the workspace in the path (`{slug}`) and the caller's role in
it through `Accounts.role_of`: not a member (or no such workspace) → 404, so a workspace's
existence is not revealed; a member whose role is too low → 403.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, cast

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from sidestep.domain.states import Role
from sidestep.runtime import Runtime
from sidestep.store.accounts import Accounts
from sidestep.store.tables import User, WebSession, Workspace
from sidestep.web.csrf import check_session_token
from sidestep.web.errors import NotAuthenticated

SESSION_COOKIE = "sidestep_session"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True, slots=True)
class Principal:
    """A signed-in caller: by browser session (`session` set) or by API token (`session` None)."""

    user: User
    session: WebSession | None

    @property
    def csrf_token(self) -> str:
        """The session's CSRF token for forms; empty for API-token callers."""
        return self.session.csrf_token if self.session is not None else ""


@dataclass(frozen=True, slots=True)
class WorkspaceAccess:
    """A caller admitted to a workspace, with their role and the request's unit of work."""

    principal: Principal
    workspace: Workspace
    role: Role
    session: AsyncSession

    @property
    def can_edit(self) -> bool:
        return self.role.allows(Role.EDITOR)


def get_runtime(request: Request) -> Runtime:
    """Return the `Runtime` the app was created with."""
    return cast(Runtime, request.app.state.runtime)


async def unit_of_work(request: Request) -> AsyncIterator[AsyncSession]:
    """Yield one database session per request; commit when the route returns, roll back if it
    raises. Used with `scope="function"` so the commit happens before the response is sent."""
    async with get_runtime(request).db.session() as session:
        yield session


UnitOfWork = Annotated[AsyncSession, Depends(unit_of_work, scope="function")]

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="apiToken",
    description="A personal API token: `Authorization: Bearer sst_...`.",
)


async def optional_principal(
    request: Request,
    session: UnitOfWork,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal | None:
    """Return the caller, or None when anonymous.

    Raises `NotAuthenticated` for an Authorization header that is not a valid, unrevoked
    Bearer token, and `CsrfRejected` (403) for an unsafe cookie-authenticated request
    without the session's CSRF token.
    """
    runtime = get_runtime(request)
    now = runtime.clock.now()
    accounts = Accounts(session)
    if request.headers.get("authorization"):
        if bearer is None:
            raise NotAuthenticated("use an Authorization: Bearer <API token> header")
        user = await accounts.user_for_api_token(bearer.credentials, at=now)
        if user is None:
            raise NotAuthenticated("the API token is invalid or revoked")
        return Principal(user=user, session=None)
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    web_session = await accounts.web_session(cookie, at=now)
    user = await accounts.user(web_session.user_id) if web_session is not None else None
    if web_session is None or user is None:
        return None
    if request.method in UNSAFE_METHODS:
        await check_session_token(request, web_session.csrf_token)
    return Principal(user=user, session=web_session)


MaybePrincipal = Annotated[Principal | None, Depends(optional_principal)]


async def require_user(principal: MaybePrincipal) -> Principal:
    """Return the caller; raise `NotAuthenticated` when anonymous."""
    if principal is None:
        raise NotAuthenticated("sign in first")
    return principal


CurrentUser = Annotated[Principal, Depends(require_user)]

WorkspaceDependency = Callable[[str, Principal, AsyncSession], Awaitable[WorkspaceAccess]]


def require_role(needed: Role) -> WorkspaceDependency:
    """Build the dependency admitting members of the `{slug}` workspace with at least `needed`.

    The dependency returns a `WorkspaceAccess`; it raises 404 for a non-member or an unknown
    workspace (the same answer for both) and 403 for a member whose role is too low.
    """

    async def admit(slug: str, principal: CurrentUser, session: UnitOfWork) -> WorkspaceAccess:
        accounts = Accounts(session)
        workspace = await accounts.workspace_by_slug(slug)
        role = (
            await accounts.role_of(user_id=principal.user.id, workspace_id=workspace.id)
            if workspace is not None
            else None
        )
        if workspace is None or role is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such workspace")
        if not role.allows(needed):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"this needs the {needed.value} role; you are {role.value} in this workspace",
            )
        return WorkspaceAccess(principal=principal, workspace=workspace, role=role,
                               session=session)

    admit.__name__ = f"require_{needed.value}"
    return admit


AsViewer = Annotated[WorkspaceAccess, Depends(require_role(Role.VIEWER))]
AsEditor = Annotated[WorkspaceAccess, Depends(require_role(Role.EDITOR))]
AsOwner = Annotated[WorkspaceAccess, Depends(require_role(Role.OWNER))]
