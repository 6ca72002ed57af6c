"""Workspaces, users, memberships, API tokens and browser sessions."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sidestep.domain.states import Role
from sidestep.security import hash_password, new_token, token_hash, verify_password_or_dummy
from sidestep.store.events import record_event
from sidestep.store.tables import ApiToken, Member, User, WebSession, Workspace

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class AccountError(ValueError):
    """A request about accounts that cannot be carried out, with the reason for a person."""


@dataclass(frozen=True, slots=True)
class Membership:
    workspace: Workspace
    role: Role


class Accounts:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create_workspace(self, *, slug: str, name: str, at: datetime) -> Workspace:
        if not _SLUG.match(slug):
            raise AccountError(
                f"workspace slug {slug!r} must be lowercase letters, digits and dashes"
            )
        if await self.workspace_by_slug(slug) is not None:
            raise AccountError(f"a workspace named {slug!r} exists already")
        workspace = Workspace(slug=slug, name=name, settings={}, created_at=at)
        self.session.add(workspace)
        await self.session.flush()
        await record_event(
            self.session, type="workspace.created", workspace_id=workspace.id,
            payload={"slug": slug}, at=at,
        )
        return workspace

    async def workspace_by_slug(self, slug: str) -> Workspace | None:
        return await self.session.scalar(select(Workspace).where(Workspace.slug == slug))

    async def workspace(self, workspace_id: int) -> Workspace | None:
        return await self.session.get(Workspace, workspace_id)

    async def all_workspaces(self) -> list[Workspace]:
        return list((await self.session.scalars(select(Workspace).order_by(Workspace.id))).all())

    async def create_user(
        self, *, email: str, password: str, display_name: str, at: datetime
    ) -> User:
        """Create a user; raise `AccountError` for a bad or taken address, `WeakPassword`."""
        email = email.strip().lower()
        if not _EMAIL.match(email):
            raise AccountError(f"{email!r} is not an email address")
        if await self.user_by_email(email) is not None:
            raise AccountError(f"a user with the address {email} exists already")
        user = User(
            email=email, display_name=display_name or email.split("@")[0],
            password_hash=await asyncio.to_thread(hash_password, password), created_at=at,
        )
        self.session.add(user)
        await self.session.flush()
        return user

    async def user_by_email(self, email: str) -> User | None:
        return await self.session.scalar(select(User).where(User.email == email.strip().lower()))

    async def user(self, user_id: int) -> User | None:
        return await self.session.get(User, user_id)

    async def authenticate(self, *, email: str, password: str) -> User | None:
        """The user if the password is right. Takes as long for an unknown address (argon2
        runs either way, in a thread so the event loop keeps serving)."""
        user = await self.user_by_email(email)
        stored = user.password_hash if user else None
        if not await asyncio.to_thread(verify_password_or_dummy, stored, password):
            return None
        return user

    async def set_password(self, user: User, password: str) -> None:
        """Replace a user's password (raises `WeakPassword`) and end their browser sessions."""
        user.password_hash = await asyncio.to_thread(hash_password, password)
        await self.session.execute(delete(WebSession).where(WebSession.user_id == user.id))

    async def add_member(
        self, *, workspace_id: int, user_id: int, role: Role, at: datetime
    ) -> Member:
        member = Member(workspace_id=workspace_id, user_id=user_id, role=role.value, created_at=at)
        self.session.add(member)
        await self.session.flush()
        await record_event(
            self.session, type="member.added", workspace_id=workspace_id,
            payload={"user_id": user_id, "role": role.value}, at=at,
        )
        return member

    async def role_of(self, *, user_id: int, workspace_id: int) -> Role | None:
        role = await self.session.scalar(
            select(Member.role).where(
                Member.user_id == user_id, Member.workspace_id == workspace_id
            )
        )
        return Role(role) if role else None

    async def memberships(self, user_id: int) -> list[Membership]:
        rows = await self.session.execute(
            select(Workspace, Member.role)
            .join(Member, Member.workspace_id == Workspace.id)
            .where(Member.user_id == user_id)
            .order_by(Workspace.id)
        )
        return [Membership(workspace, Role(role)) for workspace, role in rows.all()]

    async def issue_api_token(self, *, user_id: int, name: str, at: datetime) -> str:
        """Create an API token and return it; only its hash is kept, so show it once."""
        token = new_token("sst_")
        self.session.add(
            ApiToken(
                user_id=user_id, name=name, prefix=token[:8], token_hash=token_hash(token),
                created_at=at, last_used_at=None, revoked_at=None,
            )
        )
        await self.session.flush()
        return token

    async def user_for_api_token(self, token: str, *, at: datetime) -> User | None:
        row = await self.session.scalar(
            select(ApiToken).where(
                ApiToken.token_hash == token_hash(token), ApiToken.revoked_at.is_(None)
            )
        )
        if row is None:
            return None
        row.last_used_at = at
        return await self.user(row.user_id)

    async def revoke_api_token(self, *, user_id: int, prefix: str, at: datetime) -> bool:
        result = await self.session.execute(
            update(ApiToken)
            .where(ApiToken.user_id == user_id, ApiToken.prefix == prefix,
                   ApiToken.revoked_at.is_(None))
            .values(revoked_at=at)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def api_tokens(self, user_id: int) -> list[ApiToken]:
        query = select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id)
        return list((await self.session.scalars(query)).all())

    async def start_session(
        self, *, user_id: int, at: datetime, max_age_s: int
    ) -> tuple[str, WebSession]:
        """Open a browser session; return the cookie value (shown once) and the row."""
        token = new_token()
        row = WebSession(
            token_hash=token_hash(token), user_id=user_id, csrf_token=new_token(),
            created_at=at, expires_at=at + timedelta(seconds=max_age_s),
        )
        self.session.add(row)
        await self.session.flush()
        return token, row

    async def web_session(self, token: str, *, at: datetime) -> WebSession | None:
        row = await self.session.scalar(
            select(WebSession).where(WebSession.token_hash == token_hash(token))
        )
        if row is None or row.expires_at <= at:
            return None
        return row

    async def end_session(self, token: str) -> None:
        await self.session.execute(
            delete(WebSession).where(WebSession.token_hash == token_hash(token))
        )
