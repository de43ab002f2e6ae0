"""Admin accounts service (bot/accounts.py): passwords, one-time links, sessions, rate limit."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
from pathlib import Path

import pytest
from sqlalchemy import select

from bot import accounts
from bot.models import AdminAccount, AdminLoginToken, AdminWebSession
from bot.runtime import Runtime

ADMIN_TG = 4242


async def _add(rt: Runtime, name: str = "alice", password: str | None = "correct horse", **kw: int) -> None:
    async with rt.sf() as session:
        await accounts.add_account(session, name, password, **kw)
        await session.commit()


async def test_passwords_are_stored_as_argon2_hashes(runtime: Runtime) -> None:
    await _add(runtime)
    async with runtime.sf() as session:
        row = await session.scalar(select(AdminAccount))
        assert row is not None and row.password_hash and row.password_hash.startswith("$argon2id$")
        assert "correct horse" not in row.password_hash
        with pytest.raises(accounts.AccountError):
            await accounts.add_account(session, "alice", "another password")
        with pytest.raises(accounts.AccountError):
            await accounts.add_account(session, "bob", "short")
        with pytest.raises(accounts.AccountError):
            await accounts.add_account(session, "with space", "long enough password")


async def test_session_cookie_is_stored_hashed_and_expires(runtime: Runtime) -> None:
    await _add(runtime)
    async with runtime.sf() as session:
        result = await accounts.password_signin(session, "alice", "correct horse", "127.0.0.1")
        await session.commit()
        assert result.ok and result.cookie
        assert await session.get(AdminWebSession, result.cookie) is None  # only the digest is a key
        assert await accounts.load_session(session, result.cookie, []) is not None
        later = dt.datetime.now(dt.UTC) + accounts.SESSION_LIFETIME + dt.timedelta(minutes=1)
        assert await accounts.load_session(session, result.cookie, [], now=later) is None


async def test_failures_expire_after_the_window(runtime: Runtime) -> None:
    await _add(runtime)
    start = dt.datetime.now(dt.UTC)
    async with runtime.sf() as session:
        for _ in range(accounts.MAX_FAILURES):
            r = await accounts.password_signin(session, "alice", "wrong password", "10.0.0.1", now=start)
            assert r.reason == "bad_credentials"
        limited = await accounts.password_signin(session, "alice", "correct horse", "10.0.0.1", now=start)
        assert limited.reason == "rate_limited"
        # Another address is not affected; after the window the name works again.
        other = await accounts.password_signin(session, "alice", "correct horse", "10.0.0.2", now=start)
        assert other.ok
        later = start + accounts.FAILURE_WINDOW + dt.timedelta(seconds=1)
        assert (await accounts.password_signin(session, "alice", "correct horse", "10.0.0.1", now=later)).ok


async def test_two_simultaneous_uses_of_a_link_give_one_session(runtime: Runtime) -> None:
    async with runtime.sf() as session:
        token = await accounts.create_login_token(session, ADMIN_TG, "张主任", admin_ids=[ADMIN_TG])
        await session.commit()
        stored = await session.scalar(select(AdminLoginToken.token_hash))
        assert stored is not None and token not in stored  # only a digest is kept

    async def use() -> str:
        async with runtime.sf() as session:
            result = await accounts.use_login_token(session, token, "127.0.0.1", [ADMIN_TG])
            await session.commit()
            return result.reason

    assert sorted(await asyncio.gather(use(), use(), use())) == ["ok", "used", "used"]


async def test_linked_account_gets_its_own_name_and_disabling_ends_its_sessions(runtime: Runtime) -> None:
    await _add(runtime, "zhang", None, telegram_user_id=555)
    async with runtime.sf() as session:
        # Linked to an account, not in ADMIN_IDS.
        token = await accounts.create_login_token(session, 555, "张", admin_ids=[])
        result = await accounts.use_login_token(session, token, "127.0.0.1", [])
        await session.commit()
        assert result.ok and result.session is not None and result.session.principal.actor == "zhang"
        await accounts.set_disabled(session, "zhang", True)
        await session.commit()
        assert await accounts.load_session(session, result.cookie, []) is None
        with pytest.raises(accounts.NotAnAdmin):
            await accounts.create_login_token(session, 555, "张")


async def test_admin_removed_from_admin_ids_loses_the_session(runtime: Runtime) -> None:
    async with runtime.sf() as session:
        token = await accounts.create_login_token(session, ADMIN_TG, "张主任")
        result = await accounts.use_login_token(session, token, "127.0.0.1", [ADMIN_TG])
        await session.commit()
        assert result.ok
        assert await accounts.load_session(session, result.cookie, [ADMIN_TG]) is not None
        assert await accounts.load_session(session, result.cookie, []) is None


def test_admin_cli_add_list_disable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import main

    monkeypatch.chdir(tmp_path)  # no developer's .env
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    assert main.main(["admin", "add", "li", "--telegram-id", "99"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main.main(["admin", "add", "zhao"]) == 1
    assert main.main(["admin", "disable", "li"]) == 0
    assert main.main(["admin", "list"]) == 0
    out = capsys.readouterr()
    assert "account li added" in out.out and "at least 8 characters" in out.err
    assert "disabled" in out.out and "telegram:99" in out.out and "1 account(s)" in out.out
    assert "a long enough password" not in out.out + out.err
