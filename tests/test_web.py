"""The web admin panel through aiohttp's test client: sign-in, links, CSRF, permissions, editing,
review, restore, history, import/export, escaping, audit, tickets, the weekly report."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import re
import shutil
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from aiohttp import FormData
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot import accounts, kb_store
from bot.models import AuditLog, Citizen, KbRevision, QueryLog, Ticket
from bot.runtime import Runtime, create_runtime
from bot.settings import Settings
from bot.tickets import create as create_ticket
from bot.web import create_web_app

NAME, PASSWORD = "alice", "correct horse battery"
ADMIN_TG = 4242
QUESTION = "低保怎么申请"
XSS = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def seeded_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated, seeded database with an admin account; each test works on a copy."""
    path = tmp_path_factory.mktemp("web-template") / "hotline.db"

    async def build() -> None:
        rt = await create_runtime(
            Settings(_env_file=None, database_url=f"sqlite+aiosqlite:///{path}", bot_token=None)  # type: ignore[call-arg]
        )
        async with rt.sf() as session:
            await accounts.add_account(session, NAME, PASSWORD)
            await session.commit()
        await rt.close()

    asyncio.run(build())
    return path


def _settings(db_url: str, **extra: object) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None, database_url=db_url, bot_token=None, admin_ids=[ADMIN_TG], **extra
    )


@pytest.fixture
async def runtime(seeded_db: Path, tmp_path: Path, db_url: str) -> AsyncIterator[Runtime]:
    for suffix in ("", "-wal", "-shm"):
        src = seeded_db.with_name(seeded_db.name + suffix)
        if src.exists():
            shutil.copy(src, tmp_path / ("hotline.db" + suffix))
    rt = await create_runtime(_settings(db_url))
    try:
        yield rt
    finally:
        await rt.close()


async def _client(rt: Runtime, **extra: object) -> TestClient:
    settings = _settings(rt.settings.database_url, **extra)
    client = TestClient(TestServer(create_web_app(settings, rt)))
    await client.start_server()
    return client


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[TestClient]:
    c = await _client(runtime)
    try:
        yield c
    finally:
        await c.close()


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no CSRF token on the page"
    return m.group(1)


async def signin(client: TestClient, name: str = NAME, password: str = PASSWORD, next_url: str = "/kb"):
    page = await client.get("/signin")
    token = csrf_of(await page.text())
    return await client.post(
        "/signin",
        data={"name": name, "password": password, "csrf_token": token, "next": next_url},
        allow_redirects=False,
    )


async def signed_in(client: TestClient) -> None:
    resp = await signin(client)
    assert resp.status == 303, await resp.text()


async def page_csrf(client: TestClient, path: str = "/kb") -> str:
    resp = await client.get(path)
    assert resp.status == 200
    return csrf_of(await resp.text())


async def audit_rows(rt: Runtime, action: str | None = None) -> list[AuditLog]:
    async with rt.sf() as session:
        stmt = select(AuditLog).order_by(AuditLog.id)
        if action:
            stmt = stmt.where(AuditLog.action == action)
        return list(await session.scalars(stmt))


def served_answer(rt: Runtime, question: str = QUESTION) -> str | None:
    result = rt.knowledge.match(question)
    return result.entry.answer if result.outcome == "answer" and result.entry else None


def entry_for(rt: Runtime, question: str = QUESTION) -> str:
    result = rt.knowledge.match(question)
    assert result.outcome == "answer" and result.entry is not None
    return result.entry.id


async def save_draft_via_panel(client: TestClient, entry_id: str, **fields: str) -> object:
    edit = await client.get(f"/kb/{entry_id}/edit")
    html = await edit.text()
    form = {
        "csrf_token": csrf_of(html),
        "topic": re.search(r'name="topic" value="([^"]*)"', html).group(1),  # type: ignore[union-attr]
        "questions": re.search(r'name="questions"[^>]*>([^<]*)</textarea>', html).group(1),  # type: ignore[union-attr]
        "answer": "",
        "source": re.search(r'name="source" value="([^"]*)"', html).group(1),  # type: ignore[union-attr]
        "keywords": "",
        "note": "",
        "question": "",
        "action": "save",
    }
    form.update(fields)
    return await client.post(f"/kb/{entry_id}/edit", data=form, allow_redirects=False)


async def new_ticket(session: AsyncSession, citizen: Citizen, question: str) -> Ticket:
    return await create_ticket(session, citizen, question, source="escalate", candidates=[], topic=None)


async def approve_pending(client: TestClient, rt: Runtime, entry_id: str, token: str) -> None:
    rev_id = await pending_revision_id(rt, entry_id)
    resp = await client.post(
        f"/revisions/{rev_id}/approve", data={"csrf_token": token}, allow_redirects=False
    )
    assert resp.status == 303


async def pending_revision_id(rt: Runtime, entry_id: str) -> int:
    async with rt.sf() as session:
        detail = await kb_store.entry_detail(session, entry_id)
    assert detail is not None and detail.drafts
    return detail.drafts[-1].id


# --- sign-in ---------------------------------------------------------------------------


async def test_pages_need_sign_in_and_password_sign_in_works(client: TestClient, runtime: Runtime) -> None:
    resp = await client.get("/kb", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/signin?next=")

    wrong = await signin(client, password="not the password")
    assert wrong.status == 401
    assert "用户名或密码不正确" in await wrong.text()
    assert not client.session.cookie_jar.filter_cookies(client.make_url("/")).get("hotline_session")

    ok = await signin(client, next_url="/review")
    assert ok.status == 303 and ok.headers["Location"] == "/review"
    cookie = ok.cookies["hotline_session"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and not cookie["secure"]
    page = await client.get("/kb")
    assert page.status == 200 and "知识库" in await page.text() and NAME in await page.text()

    rows = await audit_rows(runtime)
    signins = [(r.actor, r.action, r.detail.get("reason")) for r in rows if r.action.startswith("web.signin")]
    assert signins == [(NAME, "web.signin_failed", "bad_credentials"), (NAME, "web.signin", None)]
    assert all("not the password" not in str(r.detail) and PASSWORD not in str(r.detail) for r in rows)


async def test_next_never_leaves_the_site(client: TestClient) -> None:
    resp = await signin(client, next_url="//evil.example/x")
    assert resp.status == 303 and resp.headers["Location"] == "/kb"


async def test_sign_in_is_rate_limited_per_name_and_address(client: TestClient, runtime: Runtime) -> None:
    for _ in range(accounts.MAX_FAILURES):
        assert (await signin(client, password="wrong password")).status == 401
    limited = await signin(client)  # even the right password now waits
    assert limited.status == 429
    assert "登录失败次数过多" in await limited.text()
    reasons = [r.detail.get("reason") for r in await audit_rows(runtime, "web.signin_failed")]
    assert reasons == ["bad_credentials"] * accounts.MAX_FAILURES + ["rate_limited"]
    # Another name from the same address is not locked out by someone guessing alice's password.
    async with runtime.sf() as session:
        await accounts.add_account(session, "bob", "another long password")
        await session.commit()
    assert (await signin(client, "bob", "another long password")).status == 303


async def test_signout_invalidates_the_session(client: TestClient, runtime: Runtime) -> None:
    await signed_in(client)
    cookie = client.session.cookie_jar.filter_cookies(client.make_url("/"))["hotline_session"].value
    token = await page_csrf(client)
    out = await client.post("/signout", data={"csrf_token": token}, allow_redirects=False)
    assert out.status == 303
    # The old cookie value, replayed, is worth nothing: the session is gone on the server.
    replay = await _client(runtime)
    try:
        replay.session.cookie_jar.update_cookies({"hotline_session": cookie})
        resp = await replay.get("/kb", allow_redirects=False)
        assert resp.status == 303 and resp.headers["Location"].startswith("/signin")
    finally:
        await replay.close()
    assert [r.actor for r in await audit_rows(runtime, "web.signout")] == [NAME]


async def test_disabled_account_is_refused_at_once(client: TestClient, runtime: Runtime) -> None:
    await signed_in(client)
    async with runtime.sf() as session:
        await accounts.set_disabled(session, NAME, True, actor="test")
        await session.commit()
    resp = await client.get("/kb", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/signin")
    again = await signin(client)
    assert again.status == 401
    assert (await audit_rows(runtime, "web.signin_failed"))[-1].detail["reason"] == "disabled"


async def test_strangers_cannot_post_anything(client: TestClient, runtime: Runtime) -> None:
    entry_id = entry_for(runtime)
    rev = await pending_or_latest(runtime, entry_id)
    paths = (f"/revisions/{rev}/approve", f"/kb/{entry_id}/archive", "/io/import", f"/kb/{entry_id}/edit")
    for path in paths:
        resp = await client.post(path, data={"csrf_token": "x"}, allow_redirects=False)
        assert resp.status == 403, path
        assert "请先登录" in await resp.text()
    assert served_answer(runtime) is not None  # nothing was archived


async def pending_or_latest(rt: Runtime, entry_id: str) -> int:
    async with rt.sf() as session:
        detail = await kb_store.entry_detail(session, entry_id)
    assert detail is not None
    return detail.latest.id


# --- one-time links ----------------------------------------------------------------------


async def _token(rt: Runtime, tg: int = ADMIN_TG, name: str = "张主任", **kw: object) -> str:
    async with rt.sf() as session:
        token = await accounts.create_login_token(session, tg, name, **kw)  # type: ignore[arg-type]
        await session.commit()
    return token


async def test_one_time_link_works_once(client: TestClient, runtime: Runtime) -> None:
    token = await _token(runtime, admin_ids=[ADMIN_TG])
    # Opening the link (as a chat app's link preview would) does not use it up.
    for _ in range(2):
        page = await client.get(f"/login/{token}")
        assert page.status == 200 and "登录管理后台" in await page.text()
    csrf = csrf_of(await page.text())
    used = await client.post(f"/login/{token}", data={"csrf_token": csrf}, allow_redirects=False)
    assert used.status == 303 and used.headers["Location"] == "/kb"
    kb = await client.get("/kb")
    assert kb.status == 200 and "张主任 (tg:4242)" in await kb.text()

    other = await _client(runtime)
    try:
        page = await other.get(f"/login/{token}")
        assert page.status == 410 and "已经用过" in await page.text()
        form_token = csrf_of(await (await other.get("/signin")).text())
        again = await other.post(f"/login/{token}", data={"csrf_token": form_token})
        assert again.status == 410
        assert (await other.get("/kb", allow_redirects=False)).status == 303
    finally:
        await other.close()
    methods = [(r.action, r.detail.get("method"), r.detail.get("reason")) for r in await audit_rows(runtime)]
    assert ("web.signin", "link", None) in methods and ("web.signin_failed", "link", "used") in methods
    assert all(token not in str(r.detail) for r in await audit_rows(runtime))


async def test_one_time_link_expires_after_ten_minutes(client: TestClient, runtime: Runtime) -> None:
    issued = dt.datetime.now(dt.UTC) - accounts.TOKEN_LIFETIME - dt.timedelta(seconds=1)
    token = await _token(runtime, now=issued)
    page = await client.get(f"/login/{token}")
    assert page.status == 410 and "已过期" in await page.text()
    csrf = csrf_of(await (await client.get("/signin")).text())
    resp = await client.post(f"/login/{token}", data={"csrf_token": csrf}, allow_redirects=False)
    assert resp.status == 410
    assert (await client.get("/kb", allow_redirects=False)).status == 303


async def test_links_only_for_admins(client: TestClient, runtime: Runtime) -> None:
    async with runtime.sf() as session:
        with pytest.raises(accounts.NotAnAdmin):
            await accounts.create_login_token(session, 777, "工作人员", admin_ids=[ADMIN_TG])
    # Someone no longer in ADMIN_IDS when the link is used is refused too.
    token = await _token(runtime, tg=777, name="工作人员")
    csrf = csrf_of(await (await client.get("/signin")).text())
    resp = await client.post(f"/login/{token}", data={"csrf_token": csrf}, allow_redirects=False)
    assert resp.status == 403 and "没有管理员权限" in await resp.text()
    assert (await client.get("/kb", allow_redirects=False)).status == 303
    unknown = await client.get("/login/not-a-real-token")
    assert unknown.status == 404


# --- CSRF and headers --------------------------------------------------------------------


async def test_posts_without_the_csrf_token_are_refused(client: TestClient, runtime: Runtime) -> None:
    await signed_in(client)
    entry_id = entry_for(runtime)
    for data in ({}, {"csrf_token": "forged"}):
        resp = await client.post(f"/kb/{entry_id}/archive", data=data)
        assert resp.status == 403
        assert "表单校验失败" in await resp.text()
    assert served_answer(runtime) is not None
    async with runtime.sf() as session:
        assert await kb_store.entry_detail(session, entry_id) is not None
    # The sign-in form: a cross-site post carries no form cookie, so it fails too.
    fresh = await _client(runtime)
    try:
        resp = await fresh.post("/signin", data={"name": NAME, "password": PASSWORD, "csrf_token": "guess"})
        assert resp.status == 403
    finally:
        await fresh.close()


async def test_security_headers(client: TestClient) -> None:
    for path in ("/signin", "/kb", "/static/panel.css"):
        resp = await client.get(path)
        assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
        assert resp.headers["X-Frame-Options"] == "DENY"
        assert resp.headers["Referrer-Policy"] == "no-referrer"


async def test_cookies_are_secure_behind_https(runtime: Runtime) -> None:
    client = await _client(runtime, web_base_url="https://panel.example.org")
    try:
        page = await client.get("/signin")
        form_cookie = page.cookies["__Host-hotline_form"]
        assert form_cookie["secure"] and form_cookie["httponly"] and form_cookie["samesite"] == "Lax"
    finally:
        await client.close()


# --- editing, review, restore ----------------------------------------------------------


async def test_edit_saves_a_draft_served_only_after_approval(client: TestClient, runtime: Runtime) -> None:
    await signed_in(client)
    entry_id = entry_for(runtime)
    old_answer = served_answer(runtime)
    new_answer = "（网页测试）新的答复：请携带户口簿到乡镇人民政府申请。"

    # The try-it box answers with the draft before anything is saved.
    edit = await client.get(f"/kb/{entry_id}/edit")
    html = await edit.text()
    tried = await save_draft_via_panel(client, entry_id, answer=new_answer, action="try", question=QUESTION)
    text = await tried.text()  # type: ignore[attr-defined]
    assert tried.status == 200 and new_answer in text and "直接答复" in text  # type: ignore[attr-defined]
    assert served_answer(runtime) == old_answer
    assert "questions" in html

    saved = await save_draft_via_panel(client, entry_id, answer=new_answer, note="更新申请地点")
    assert saved.status == 303 and saved.headers["Location"] == f"/kb/{entry_id}?done=draft"  # type: ignore[attr-defined]
    await runtime.knowledge.refresh_if_changed()
    assert served_answer(runtime) == old_answer  # a draft is never served

    queue = await client.get("/review")
    qhtml = await queue.text()
    assert entry_id in qhtml and "通过并发布" in qhtml and "<mark>" in qhtml
    rev_id = await pending_revision_id(runtime, entry_id)
    approved = await client.post(
        f"/revisions/{rev_id}/approve",
        data={"csrf_token": csrf_of(qhtml), "note": "核对无误"},
        allow_redirects=False,
    )
    assert approved.status == 303
    assert served_answer(runtime) == new_answer

    actions = [(r.actor, r.action, r.target) for r in await audit_rows(runtime) if r.action.startswith("kb.")]
    assert (NAME, "kb.draft", entry_id) in actions and (NAME, "kb.approve", entry_id) in actions


async def test_reject_needs_a_reason(client: TestClient, runtime: Runtime) -> None:
    await signed_in(client)
    entry_id = entry_for(runtime)
    await save_draft_via_panel(client, entry_id, answer="草稿：待核实的答复内容。")
    rev_id = await pending_revision_id(runtime, entry_id)
    token = await page_csrf(client, "/review")
    refused = await client.post(f"/revisions/{rev_id}/reject", data={"csrf_token": token, "reason": " "})
    assert refused.status == 400 and "理由" in await refused.text()
    ok = await client.post(
        f"/revisions/{rev_id}/reject", data={"csrf_token": token, "reason": "出处不明"}, allow_redirects=False
    )
    assert ok.status == 303
    page = await client.get(f"/kb/{entry_id}")
    assert "出处不明" in await page.text() and "已驳回" in await page.text()


async def test_history_diff_and_restore(client: TestClient, runtime: Runtime) -> None:
    await signed_in(client)
    entry_id = entry_for(runtime)
    original = served_answer(runtime)
    assert original
    await save_draft_via_panel(client, entry_id, answer=original + "\n补充：办理时限以乡镇公布为准。")
    token = await page_csrf(client, "/review")
    await approve_pending(client, runtime, entry_id, token)
    assert served_answer(runtime) != original

    diff = await client.get(f"/kb/{entry_id}/diff")
    dhtml = await diff.text()
    assert diff.status == 200 and "<mark>补充：办理时限以乡镇公布为准。</mark>" in dhtml
    assert "<table class=\"diff\">" in dhtml

    async with runtime.sf() as session:
        history = await kb_store.history(session, entry_id)
    first = history[-1]
    restored = await client.post(
        f"/revisions/{first.id}/restore", data={"csrf_token": token}, allow_redirects=False
    )
    assert restored.status == 303 and restored.headers["Location"] == f"/kb/{entry_id}?done=restored"
    assert served_answer(runtime) != original  # a restore is a draft, reviewed like any other
    await approve_pending(client, runtime, entry_id, token)
    assert served_answer(runtime) == original
    async with runtime.sf() as session:
        numbers = [r.number for r in await kb_store.history(session, entry_id)]
    assert numbers == sorted(numbers, reverse=True) and len(numbers) == len(history) + 1  # nothing rewritten


async def test_new_entry_from_the_gaps_page(client: TestClient, runtime: Runtime) -> None:
    await signed_in(client)
    question = "残疾人两项补贴怎么申请"
    async with runtime.sf() as session:
        for i in range(3):
            session.add(QueryLog(question=question, outcome="escalate", score=0.1, citizen_id=i))
        await session.commit()
    gaps = await client.get("/gaps?days=7")
    ghtml = await gaps.text()
    assert question in ghtml
    link = re.search(r'href="(/kb/_new\?[^"]+)"', ghtml)
    assert link
    editor = await client.get(link.group(1).replace("&amp;", "&"))
    ehtml = await editor.text()
    assert question in ehtml
    resp = await client.post(
        "/kb/_new",
        data={
            "csrf_token": csrf_of(ehtml),
            "id": "canji-butie",
            "topic": "转介",
            "questions": question,
            "answer": "残疾人两项补贴由县残联和民政局办理，请以民政局公布为准。",
            "source": "测试",
            "keywords": "",
            "note": "",
            "question": "",
            "action": "save",
        },
        allow_redirects=False,
    )
    assert resp.status == 303 and resp.headers["Location"] == "/kb/canji-butie?done=draft"


# --- import / export -------------------------------------------------------------------


async def test_export_import_round_trip(client: TestClient, runtime: Runtime) -> None:
    await signed_in(client)
    async with runtime.sf() as session:
        before = await session.scalar(select(func.count()).select_from(KbRevision))
        n_entries = await kb_store.entry_count(session)
    exported = await client.get("/io/knowledge.zip")
    assert exported.status == 200 and exported.content_type == "application/zip"
    body = await exported.read()
    names = zipfile.ZipFile(io.BytesIO(body)).namelist()
    assert "knowledge/aliases.yaml" in names

    token = await page_csrf(client, "/io")
    form = FormData()
    form.add_field("csrf_token", token)
    form.add_field("files", body, filename="knowledge.zip", content_type="application/zip")
    resp = await client.post("/io/import", data=form)
    text = await resp.text()
    assert resp.status == 200, text
    assert f"未变 {n_entries} 条" in text and "新增 0 条，修改 0 条" in text
    async with runtime.sf() as session:
        assert await session.scalar(select(func.count()).select_from(KbRevision)) == before

    # One changed answer in the single-file export comes back as one changed entry.
    single = await (await client.get("/io/knowledge.yaml")).text()
    data = yaml.safe_load(single)
    entry_id = entry_for(runtime)
    for item in data:
        if item["id"] == entry_id:
            item["answer"] = "（导入测试）新的答复。"
    form = FormData()
    form.add_field("csrf_token", token)
    form.add_field("files", yaml.safe_dump(data, allow_unicode=True), filename="k.yaml")
    resp = await client.post("/io/import", data=form)
    assert "修改 1 条" in await resp.text()
    assert served_answer(runtime) == "（导入测试）新的答复。"
    assert [r.actor for r in await audit_rows(runtime, "kb.import")][-2:] == [NAME, NAME]


async def test_import_with_problems_imports_nothing(client: TestClient, runtime: Runtime) -> None:
    await signed_in(client)
    token = await page_csrf(client, "/io")
    form = FormData()
    form.add_field("csrf_token", token)
    form.add_field("files", "- id: Bad Id\n  topic: 低保\n", filename="bad.yaml")
    resp = await client.post("/io/import", data=form)
    text = await resp.text()
    assert resp.status == 400 and "bad.yaml" in text and "发现以下问题" in text


# --- escaping ----------------------------------------------------------------------------


async def test_script_in_an_answer_or_a_citizen_question_shows_as_text(
    client: TestClient, runtime: Runtime
) -> None:
    await signed_in(client)
    entry_id = entry_for(runtime)
    saved = await save_draft_via_panel(client, entry_id, answer=f"答复 {XSS}", note=XSS)
    assert saved.status == 303  # type: ignore[attr-defined]
    async with runtime.sf() as session:
        citizen = Citizen(channel="telegram", external_id=99, chat_id=99, display_name=f"市民{XSS}")
        session.add(citizen)
        await session.flush()
        ticket = await new_ticket(session, citizen, f"问题 {XSS}")
        await session.commit()
    paths = (f"/kb/{entry_id}", "/review", f"/kb/{entry_id}/diff", "/tickets", f"/tickets/{ticket.id}")
    paths += ("/audit",)
    for path in paths:
        html = await (await client.get(path)).text()
        assert XSS not in html, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, path


# --- tickets, audit, report --------------------------------------------------------------


async def test_tickets_open_overdue_by_staff_and_conversation(client: TestClient, runtime: Runtime) -> None:
    await signed_in(client)
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=14)
    async with runtime.sf() as session:
        citizen = Citizen(channel="telegram", external_id=7, chat_id=7, display_name="李大姐")
        session.add(citizen)
        await session.flush()
        old = await new_ticket(session, citizen, "临时救助多久能批下来")
        old.created_at = long_ago
        fresh = await new_ticket(session, citizen, "低保金什么时候发")
        fresh.claimed_by, fresh.answered_by, fresh.status = "王工", "王工", "answered"
        fresh.first_response_at = fresh.answered_at = dt.datetime.now(dt.UTC)
        from bot.tickets import add_message

        await add_message(
            session, fresh, direction="staff", author="王工", author_id=5, kind="text", text="每月10日前发放"
        )
        await session.commit()
    open_html = await (await client.get("/tickets")).text()
    assert "临时救助多久能批下来" in open_html and "低保金什么时候发" in open_html
    overdue = await (await client.get("/tickets?view=overdue")).text()
    assert "临时救助多久能批下来" in overdue and "低保金什么时候发" not in overdue
    staff = await (await client.get("/tickets?view=staff&staff=王工")).text()
    assert "低保金什么时候发" in staff and "临时救助多久能批下来" not in staff
    conv = await (await client.get(f"/tickets/{fresh.id}")).text()
    assert "每月10日前发放" in conv and "工作人员 王工" in conv and "李大姐" in conv
    assert (await client.get("/tickets/99999")).status == 404


async def test_audit_log_filters(client: TestClient, runtime: Runtime) -> None:
    await signin(client, password="wrong password")
    await signed_in(client)
    page = await client.get("/audit?action=web.signin_failed")
    html = await page.text()
    assert html.count("<td>web.signin_failed</td>") == 1 and "<td>web.signin</td>" not in html
    today = dt.datetime.now(dt.UTC).astimezone(dt.timezone(dt.timedelta(hours=8))).date()
    by_actor = await (await client.get(f"/audit?actor={NAME}&from={today}&to={today}")).text()
    assert "<td>web.signin</td>" in by_actor
    old = await (await client.get("/audit?to=2020-01-01")).text()
    assert "没有符合条件的记录" in old


async def test_weekly_report_page_and_csv(client: TestClient, runtime: Runtime) -> None:
    await signed_in(client)
    at = dt.datetime(2026, 11, 17, 2, 0, tzinfo=dt.UTC)  # Tuesday of 2026-W47, 10:00 in Wuding
    async with runtime.sf() as session:
        entry_id = entry_for(runtime)
        session.add(QueryLog(question=QUESTION, outcome="answer", entry_id=entry_id, score=0.9, at=at))
        session.add(QueryLog(question="殡葬补贴怎么领", outcome="escalate", score=0.1, at=at))
        citizen = Citizen(channel="telegram", external_id=8, chat_id=8, display_name="赵")
        session.add(citizen)
        await session.flush()
        session.add(Ticket(citizen_id=citizen.id, question="殡葬补贴怎么领", created_at=at, status="open"))
        await session.commit()
    page = await client.get("/reports?week=2026-W47")
    html = await page.text()
    assert page.status == 200 and "<svg" in html and "2026-11-16" in html and "殡葬补贴怎么领" in html
    csv_resp = await client.get("/reports/2026-W47.csv")
    assert csv_resp.status == 200 and csv_resp.content_type == "text/csv"
    assert "attachment" in csv_resp.headers["Content-Disposition"]
    text = (await csv_resp.read()).decode("utf-8-sig")
    assert "2026-11-17" in text and "殡葬补贴怎么领" in text
    bad = await client.get("/reports?week=2026-W99")
    assert bad.status == 400
