"""Web panel admins: accounts, passwords, one-time sign-in links, browser sessions, rate limit.

Plain values in and out; callers own the session and commit (like ``bot.kb_store``).
Secrets are never stored or logged as such: passwords as argon2 hashes, one-time tokens and
session cookies as SHA-256 digests, so a copy of the database lets nobody sign in.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.kb_store import audit
from bot.models import AdminAccount, AdminLoginToken, AdminSigninAttempt, AdminWebSession, utcnow

TOKEN_LIFETIME = dt.timedelta(minutes=10)
SESSION_LIFETIME = dt.timedelta(hours=12)
MAX_FAILURES = 5
FAILURE_WINDOW = dt.timedelta(minutes=15)
MIN_PASSWORD_CHARS = 8
MAX_NAME_CHARS = 80
# Verified against when the name is unknown, so a wrong name costs as long as a wrong password
# (no way to learn which names exist from the response time). A hash of random bytes.
_DUMMY_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$OVBXa0Xy2KBPS+um/s0mCQ$GDobsyANC5iJ+OI0l8QVET6Kw2leyaJK3e0AwOZcPNg"
)


class AccountError(ValueError):
    """An account cannot be created or changed; the message says why (in English, for the CLI)."""


class NotAnAdmin(PermissionError):
    """A one-time link was asked for someone who is not an admin."""


@dataclass(frozen=True)
class Account:
    id: int
    name: str
    telegram_user_id: int | None
    created_at: dt.datetime
    disabled: bool
    has_password: bool
    last_signin_at: dt.datetime | None


@dataclass(frozen=True)
class Principal:
    """Who a browser session acts for: an account, or a Telegram admin from ADMIN_IDS."""

    actor: str
    account_id: int | None
    telegram_user_id: int | None


@dataclass(frozen=True)
class WebSession:
    id: str  # SHA-256 of the cookie value
    principal: Principal
    csrf_token: str
    expires_at: dt.datetime


@dataclass(frozen=True)
class SigninResult:
    """``reason``: ok | bad_credentials | rate_limited | expired | used | unknown | not_admin."""

    reason: str
    cookie: str | None = None
    session: WebSession | None = None

    @property
    def ok(self) -> bool:
        return self.reason == "ok"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _account(row: AdminAccount) -> Account:
    return Account(
        id=row.id,
        name=row.name,
        telegram_user_id=row.telegram_user_id,
        created_at=row.created_at,
        disabled=row.disabled,
        has_password=bool(row.password_hash),
        last_signin_at=row.last_signin_at,
    )


def _hasher() -> PasswordHasher:
    return PasswordHasher()  # argon2id with the library's current recommended parameters


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def check_new_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise AccountError(f"the password needs at least {MIN_PASSWORD_CHARS} characters")


def _check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME_CHARS or any(ch.isspace() for ch in name):
        raise AccountError(f"a name is 1 to {MAX_NAME_CHARS} characters without spaces")
    return name


# --- accounts ----------------------------------------------------------------------


async def get_account(session: AsyncSession, name: str) -> Account | None:
    row = await session.scalar(select(AdminAccount).where(AdminAccount.name == name.strip()))
    return _account(row) if row else None


async def list_accounts(session: AsyncSession) -> list[Account]:
    rows = await session.scalars(select(AdminAccount).order_by(AdminAccount.name))
    return [_account(r) for r in rows]


async def add_account(
    session: AsyncSession,
    name: str,
    password: str | None,
    *,
    telegram_user_id: int | None = None,
    actor: str = "cli",
) -> Account:
    """A new admin account (a password, a linked Telegram user, or both)."""
    name = _check_name(name)
    if password is None and telegram_user_id is None:
        raise AccountError("an account needs a password or a Telegram user id")
    if password is not None:
        check_new_password(password)
    if await session.scalar(select(AdminAccount.id).where(AdminAccount.name == name)):
        raise AccountError(f"an account named {name!r} already exists")
    if telegram_user_id is not None and await session.scalar(
        select(AdminAccount.id).where(AdminAccount.telegram_user_id == telegram_user_id)
    ):
        raise AccountError(f"Telegram user {telegram_user_id} is already linked to an account")
    pw_hash = await asyncio.to_thread(hash_password, password) if password is not None else None
    row = AdminAccount(name=name, password_hash=pw_hash, telegram_user_id=telegram_user_id, disabled=False)
    session.add(row)
    await session.flush()
    await audit(session, actor, "account.add", name, telegram_user_id=telegram_user_id)
    return _account(row)


async def set_password(session: AsyncSession, name: str, password: str, *, actor: str = "cli") -> None:
    check_new_password(password)
    row = await session.scalar(select(AdminAccount).where(AdminAccount.name == name.strip()))
    if row is None:
        raise AccountError(f"no account named {name!r}")
    row.password_hash = await asyncio.to_thread(hash_password, password)
    await audit(session, actor, "account.password", row.name)


async def set_disabled(session: AsyncSession, name: str, disabled: bool, *, actor: str = "cli") -> Account:
    """Disable (or enable again) an account; disabling also ends its browser sessions."""
    row = await session.scalar(select(AdminAccount).where(AdminAccount.name == name.strip()))
    if row is None:
        raise AccountError(f"no account named {name!r}")
    row.disabled = disabled
    if disabled:
        await session.execute(delete(AdminWebSession).where(AdminWebSession.account_id == row.id))
    await audit(session, actor, "account.disable" if disabled else "account.enable", row.name)
    return _account(row)


# --- rate limit --------------------------------------------------------------------


def _limit_key(name: str) -> str:
    return name.strip().lower()[:MAX_NAME_CHARS]


async def recent_failures(session: AsyncSession, name: str, ip: str, now: dt.datetime | None = None) -> int:
    """Failed password attempts for this name from this address in the window, since the last success."""
    now = now or utcnow()
    key = _limit_key(name)
    since = now - FAILURE_WINDOW
    last_ok = await session.scalar(
        select(func.max(AdminSigninAttempt.at)).where(
            AdminSigninAttempt.name == key, AdminSigninAttempt.ip == ip, AdminSigninAttempt.ok.is_(True)
        )
    )
    if last_ok is not None and _aware(last_ok) > since:
        since = _aware(last_ok)
    count = await session.scalar(
        select(func.count())
        .select_from(AdminSigninAttempt)
        .where(
            AdminSigninAttempt.name == key,
            AdminSigninAttempt.ip == ip,
            AdminSigninAttempt.ok.is_(False),
            AdminSigninAttempt.at > since,
        )
    )
    return int(count or 0)


# --- sessions ----------------------------------------------------------------------


async def _start_session(
    session: AsyncSession, principal: Principal, ip: str, now: dt.datetime
) -> tuple[str, WebSession]:
    cookie = secrets.token_urlsafe(32)
    row = AdminWebSession(
        id=_digest(cookie),
        account_id=principal.account_id,
        telegram_user_id=principal.telegram_user_id,
        actor=principal.actor,
        csrf_token=secrets.token_urlsafe(32),
        ip=ip[:64],
        created_at=now,
        expires_at=now + SESSION_LIFETIME,
    )
    session.add(row)
    # Housekeeping while we are here: expired sessions and old tokens/attempts go.
    await session.execute(delete(AdminWebSession).where(AdminWebSession.expires_at <= now))
    old_tokens = now - dt.timedelta(days=1)
    await session.execute(delete(AdminLoginToken).where(AdminLoginToken.expires_at <= old_tokens))
    await session.execute(delete(AdminSigninAttempt).where(AdminSigninAttempt.at <= now - FAILURE_WINDOW))
    return cookie, _web_session(row)


def _web_session(row: AdminWebSession) -> WebSession:
    return WebSession(
        id=row.id,
        principal=Principal(row.actor, row.account_id, row.telegram_user_id),
        csrf_token=row.csrf_token,
        expires_at=_aware(row.expires_at),
    )


async def _still_admin(session: AsyncSession, principal: Principal, admin_ids: Iterable[int]) -> bool:
    """An account must exist and be enabled; a Telegram-only admin must still be in ADMIN_IDS."""
    if principal.account_id is not None:
        row = await session.get(AdminAccount, principal.account_id)
        return row is not None and not row.disabled
    if principal.telegram_user_id is None:
        return False
    if principal.telegram_user_id in set(admin_ids):
        linked = await session.scalar(
            select(AdminAccount).where(AdminAccount.telegram_user_id == principal.telegram_user_id)
        )
        return linked is None or not linked.disabled
    return False


async def load_session(
    session: AsyncSession, cookie: str | None, admin_ids: Iterable[int], now: dt.datetime | None = None
) -> WebSession | None:
    """The live session for a cookie value, or None (unknown, expired, or no longer an admin)."""
    if not cookie or len(cookie) > 200:
        return None
    now = now or utcnow()
    row = await session.get(AdminWebSession, _digest(cookie))
    if row is None:
        return None
    ws = _web_session(row)
    if ws.expires_at <= now or not await _still_admin(session, ws.principal, admin_ids):
        await session.delete(row)
        return None
    return ws


async def end_session(session: AsyncSession, cookie: str | None) -> Principal | None:
    """Sign out: the session row goes, so the cookie is worthless even if kept."""
    if not cookie or len(cookie) > 200:
        return None
    row = await session.get(AdminWebSession, _digest(cookie))
    if row is None:
        return None
    principal = Principal(row.actor, row.account_id, row.telegram_user_id)
    await session.delete(row)
    await audit(session, row.actor, "web.signout", "")
    return principal


def csrf_ok(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())


# --- password sign-in --------------------------------------------------------------


async def _failed(session: AsyncSession, actor: str, method: str, ip: str, reason: str) -> None:
    """Audit a refused sign-in: who was typed, how, from where, why (never the password)."""
    await audit(session, actor or "?", "web.signin_failed", "", method=method, ip=ip, reason=reason)


async def password_signin(
    session: AsyncSession, name: str, password: str, ip: str, now: dt.datetime | None = None
) -> SigninResult:
    """Check a name and password; at most MAX_FAILURES failures per name and address per window."""
    now = now or utcnow()
    ip = ip[:64]
    typed = name.strip()[:MAX_NAME_CHARS]
    if await recent_failures(session, typed, ip, now) >= MAX_FAILURES:
        await _failed(session, typed, "password", ip, "rate_limited")
        return SigninResult("rate_limited")
    row = await session.scalar(select(AdminAccount).where(AdminAccount.name == typed)) if typed else None
    stored = row.password_hash if row is not None and row.password_hash else _DUMMY_HASH
    matches = await asyncio.to_thread(verify_password, stored, password)
    ok = matches and row is not None and bool(row.password_hash) and not row.disabled
    session.add(AdminSigninAttempt(name=_limit_key(typed), ip=ip, at=now, ok=ok))
    if not ok:
        reason = "disabled" if (matches and row is not None and row.disabled) else "bad_credentials"
        await _failed(session, typed, "password", ip, reason)
        return SigninResult("bad_credentials")
    assert row is not None and row.password_hash is not None
    if _hasher().check_needs_rehash(row.password_hash):
        row.password_hash = await asyncio.to_thread(hash_password, password)
    row.last_signin_at = now
    principal = Principal(row.name, row.id, row.telegram_user_id)
    cookie, ws = await _start_session(session, principal, ip, now)
    await audit(session, row.name, "web.signin", "", method="password", ip=ip)
    return SigninResult("ok", cookie, ws)


# --- one-time links ----------------------------------------------------------------


def _tg_actor(display_name: str, telegram_user_id: int) -> str:
    label = " ".join(display_name.split())[:80]
    return f"{label} (tg:{telegram_user_id})" if label else f"tg:{telegram_user_id}"


async def create_login_token(
    session: AsyncSession,
    telegram_user_id: int,
    display_name: str,
    *,
    admin_ids: Iterable[int] | None = None,
    now: dt.datetime | None = None,
) -> str:
    """A one-time sign-in token for a Telegram admin, valid TOKEN_LIFETIME; the caller commits.

    Send ``f"{settings.web_base_url}/login/{token}"``. With ``admin_ids`` given, someone who is
    neither listed nor linked to an enabled account gets NotAnAdmin; either way the token is
    checked again when used.
    """
    now = now or utcnow()
    linked = await session.scalar(
        select(AdminAccount).where(AdminAccount.telegram_user_id == telegram_user_id)
    )
    if linked is not None and linked.disabled:
        raise NotAnAdmin(telegram_user_id)
    if admin_ids is not None and linked is None and telegram_user_id not in set(admin_ids):
        raise NotAnAdmin(telegram_user_id)
    token = secrets.token_urlsafe(32)
    session.add(
        AdminLoginToken(
            token_hash=_digest(token),
            telegram_user_id=telegram_user_id,
            display_name=" ".join(display_name.split())[:200],
            account_id=linked.id if linked is not None else None,
            created_at=now,
            expires_at=now + TOKEN_LIFETIME,
        )
    )
    actor = linked.name if linked is not None else _tg_actor(display_name, telegram_user_id)
    await audit(session, actor, "web.login_link", "", telegram_user_id=telegram_user_id)
    return token


async def token_state(session: AsyncSession, token: str, now: dt.datetime | None = None) -> str:
    """Without using it: ok | used | expired | unknown."""
    now = now or utcnow()
    if not token or len(token) > 200:
        return "unknown"
    row = await session.scalar(select(AdminLoginToken).where(AdminLoginToken.token_hash == _digest(token)))
    if row is None:
        return "unknown"
    if row.used_at is not None:
        return "used"
    if _aware(row.expires_at) <= now:
        return "expired"
    return "ok"


async def use_login_token(
    session: AsyncSession, token: str, ip: str, admin_ids: Iterable[int], now: dt.datetime | None = None
) -> SigninResult:
    """Sign in with a one-time token. Of two simultaneous uses exactly one wins (conditional UPDATE)."""
    now = now or utcnow()
    ip = ip[:64]
    state = await token_state(session, token, now)
    if state != "ok":
        await _failed(session, "", "link", ip, state)
        return SigninResult(state)
    digest = _digest(token)
    won = await session.execute(
        update(AdminLoginToken)
        .where(
            AdminLoginToken.token_hash == digest,
            AdminLoginToken.used_at.is_(None),
            AdminLoginToken.expires_at > now,
        )
        .values(used_at=now)
    )
    if won.rowcount != 1:
        await _failed(session, "", "link", ip, "used")
        return SigninResult("used")
    row = await session.scalar(
        select(AdminLoginToken).where(AdminLoginToken.token_hash == digest),
        execution_options={"populate_existing": True},
    )
    assert row is not None
    account = await session.get(AdminAccount, row.account_id) if row.account_id is not None else None
    if account is not None:
        principal = Principal(account.name, account.id, account.telegram_user_id)
    else:
        principal = Principal(_tg_actor(row.display_name, row.telegram_user_id), None, row.telegram_user_id)
    if not await _still_admin(session, principal, admin_ids):
        await _failed(session, principal.actor, "link", ip, "not_admin")
        return SigninResult("not_admin")
    if account is not None:
        account.last_signin_at = now
    cookie, ws = await _start_session(session, principal, ip, now)
    await audit(session, principal.actor, "web.signin", "", method="link", ip=ip)
    return SigninResult("ok", cookie, ws)
