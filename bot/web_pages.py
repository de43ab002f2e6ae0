"""The web panel's pages: knowledge (list, entry, editor with a try-it box, history, review),
gaps, tickets, the weekly report, the audit log, YAML import and export.

Thin adapters: read the request, call a service in ``bot/``, render a template. Security
(sign-in, CSRF, headers) is done by the middlewares in ``bot.web`` before any of this runs.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from bot import admin_views, kb_store
from bot.i18n import _
from bot.knowledge_service import render_answer
from bot.web import (
    HOURS,
    actor_of,
    error_page,
    field,
    form_of,
    redirect,
    render,
    runtime_of,
    settings_of,
)
from knowledge.entries import Entry, dump_entries, export, load
from knowledge.matcher import KnowledgeIndex, MatchResult
from knowledge.normalize import normalize

AUDIT_PAGE = 100
MAX_IMPORT_FILES = 50


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.replace("\r\n", "\n").split("\n") if line.strip()]


def _words(text: str) -> list[str]:
    return [w for w in text.replace("，", ",").replace("、", ",").replace("\n", ",").split(",") if w.strip()]


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


# --- the try-it box ----------------------------------------------------------------


@dataclass(frozen=True)
class Preview:
    question: str
    draft: MatchResult
    served: MatchResult
    draft_answer: str | None
    served_answer: str | None
    draft_id: str


async def _preview(request: web.Request, draft: Entry, question: str) -> Preview:
    """How the assistant would answer ``question`` if ``draft`` replaced the served entry."""
    rt, settings = runtime_of(request), settings_of(request)
    await rt.knowledge.refresh_if_changed(announce=False)  # only to compare with what is served
    served = rt.knowledge.index
    async with rt.sf() as session:
        aliases = await kb_store.aliases(session)
    entries = [e for e in served.entries if e.id != draft.id]
    if draft.questions and draft.answer.strip():
        entries.append(draft.with_status("published"))
    # Building the index is CPU work (tens of ms for the bundled base): off the event loop.
    index = await asyncio.to_thread(KnowledgeIndex.build, entries, aliases, served.thresholds)
    facts = settings.bureau_facts()
    draft_result, served_result = index.match(question), served.match(question)
    return Preview(
        question=question,
        draft=draft_result,
        served=served_result,
        draft_answer=render_answer(draft_result.entry.answer, facts) if draft_result.entry else None,
        served_answer=render_answer(served_result.entry.answer, facts) if served_result.entry else None,
        draft_id=draft.id,
    )


# --- knowledge ---------------------------------------------------------------------


async def kb_list(request: web.Request) -> web.StreamResponse:
    q = request.query.get("q", "")
    topic = request.query.get("topic", "") or None
    state = request.query.get("state", "") or None
    if state not in (None, "published", "draft", "archived", "pending"):
        state = None
    async with runtime_of(request).sf() as session:
        rows = await kb_store.list_entries(session, query=q, topic=topic, state=state, limit=1000)
        topics = await kb_store.topics(session)
    return render(
        request, "kb_list.html", rows=rows, topics=topics, q=q, topic=topic or "", state=state or ""
    )


async def kb_entry(request: web.Request) -> web.StreamResponse:
    entry_id = request.match_info["entry_id"]
    async with runtime_of(request).sf() as session:
        detail = await kb_store.entry_detail(session, entry_id)
    if detail is None:
        raise web.HTTPNotFound()
    shown = detail.published or detail.latest
    return render(request, "entry.html", detail=detail, shown=shown, done=request.query.get("done", ""))


def _form_entry(request: web.Request, entry_id: str, base: Entry | None) -> tuple[Entry, str]:
    """The editor's fields as an Entry (for the try-it box) and the change note."""
    return (
        Entry(
            id=entry_id,
            topic=field(request, "topic").strip(),
            questions=tuple(_lines(field(request, "questions"))),
            answer=field(request, "answer").replace("\r\n", "\n").strip("\n").rstrip(),
            source=field(request, "source").strip(),
            updated=base.updated if base else dt.date.today(),
            keywords=tuple(w.strip() for w in _words(field(request, "keywords"))),
            status="draft",
        ),
        field(request, "note").strip(),
    )


async def _editor(
    request: web.Request,
    *,
    entry: Entry,
    note: str,
    is_new: bool,
    base_number: int | None,
    status: int = 200,
    error: str | None = None,
    preview: Preview | None = None,
    question: str = "",
) -> web.Response:
    async with runtime_of(request).sf() as session:
        topics = await kb_store.topics(session)
    return render(
        request,
        "entry_edit.html",
        status=status,
        entry=entry,
        note=note,
        is_new=is_new,
        base_number=base_number,
        topics=topics,
        error=error,
        preview=preview,
        question=question,
    )


async def _base_revision(request: web.Request, entry_id: str) -> kb_store.RevisionInfo | None:
    async with runtime_of(request).sf() as session:
        detail = await kb_store.entry_detail(session, entry_id)
    if detail is None:
        return None
    return next((r for r in detail.history if r.state != "rejected"), detail.latest)


async def kb_edit_page(request: web.Request) -> web.StreamResponse:
    entry_id = request.match_info["entry_id"]
    base = await _base_revision(request, entry_id)
    if base is None:
        raise web.HTTPNotFound()
    question = request.query.get("question", "")
    preview = await _preview(request, base.entry, question) if question.strip() else None
    return await _editor(
        request,
        entry=base.entry,
        note="",
        is_new=False,
        base_number=base.number,
        preview=preview,
        question=question,
    )


async def kb_new_page(request: web.Request) -> web.StreamResponse:
    """A blank editor; the gaps page pre-fills the questions (and topic) it links with."""
    questions = tuple(q for q in request.query.getall("question", []) if q.strip())[:20]
    entry = Entry(
        id="",
        topic=request.query.get("topic", ""),
        questions=questions,
        answer="",
        source="",
        updated=dt.date.today(),
        status="draft",
    )
    note = request.query.get("note", "")
    return await _editor(request, entry=entry, note=note, is_new=True, base_number=None)


async def _save_or_try(request: web.Request, entry_id: str, is_new: bool) -> web.StreamResponse:
    base = None if is_new else await _base_revision(request, entry_id)
    if not is_new and base is None:
        raise web.HTTPNotFound()
    entry, note = _form_entry(request, entry_id, base.entry if base else None)
    base_number = base.number if base else None
    question = field(request, "question").strip()
    if field(request, "action") != "save":  # only the save button saves; anything else is a try
        preview = await _preview(request, entry, question) if question else None
        if request.headers.get("X-Requested-With") == "fetch":
            return render(request, "_preview.html", preview=preview)
        return await _editor(
            request,
            entry=entry,
            note=note,
            is_new=is_new,
            base_number=base_number,
            preview=preview,
            question=question,
        )
    rt = runtime_of(request)
    try:
        async with rt.sf() as session:
            if is_new and await kb_store.entry_detail(session, entry_id) is not None:
                raise ValueError(_("条目编号 {id} 已经存在，请换一个", id=entry_id))
            rev = await kb_store.save_draft(
                session,
                entry_id,
                questions=list(entry.questions),
                answer=entry.answer,
                source=entry.source,
                topic=entry.topic,
                keywords=list(entry.keywords),
                author=actor_of(request),
                note=note,
            )
            await session.commit()
    except ValueError as exc:
        return await _editor(
            request,
            entry=entry,
            note=note,
            is_new=is_new,
            base_number=base_number,
            status=400,
            error=str(exc),
            question=question,
        )
    return redirect(f"/kb/{rev.entry_id}?done=draft")


async def kb_edit_post(request: web.Request) -> web.StreamResponse:
    return await _save_or_try(request, request.match_info["entry_id"], is_new=False)


async def kb_new_post(request: web.Request) -> web.StreamResponse:
    return await _save_or_try(request, field(request, "id").strip(), is_new=True)


async def kb_diff(request: web.Request) -> web.StreamResponse:
    """Two revisions side by side (default: the newest against the one before it)."""
    entry_id = request.match_info["entry_id"]
    async with runtime_of(request).sf() as session:
        detail = await kb_store.entry_detail(session, entry_id)
    if detail is None:
        raise web.HTTPNotFound()
    by_id = {r.id: r for r in detail.history}
    new_id, old_id = _int(request.query.get("new")), _int(request.query.get("old"))
    new = by_id.get(new_id) if new_id is not None else detail.history[0]
    if new is None:
        raise web.HTTPNotFound()
    if old_id is not None:
        old = by_id.get(old_id)
        if old is None:
            raise web.HTTPNotFound()
    else:
        older = [r for r in detail.history if r.number < new.number]
        old = older[0] if older else None
    diffs = kb_store.diff_revisions(old, new) if old is not None else None
    return render(request, "diff.html", detail=detail, old=old, new=new, diffs=diffs)


async def revision_restore(request: web.Request) -> web.StreamResponse:
    rev_id = _int(request.match_info["rev_id"])
    rt = runtime_of(request)
    try:
        async with rt.sf() as session:
            rev = await kb_store.restore_revision(
                session, rev_id or 0, author=actor_of(request), note=field(request, "note").strip()
            )
            await session.commit()
    except ValueError as exc:
        return error_page(request, 409, _("无法恢复"), str(exc))
    return redirect(f"/kb/{rev.entry_id}?done=restored")


async def kb_archive(request: web.Request) -> web.StreamResponse:
    entry_id = request.match_info["entry_id"]
    rt = runtime_of(request)
    try:
        async with rt.sf() as session:
            await kb_store.archive_entry(
                session, entry_id, author=actor_of(request), note=field(request, "note").strip()
            )
            await session.commit()
    except ValueError as exc:
        return error_page(request, 409, _("无法停用"), str(exc))
    await rt.knowledge.refresh_if_changed()
    return redirect(f"/kb/{entry_id}?done=archived")


# --- review ------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewItem:
    draft: kb_store.RevisionInfo
    published: kb_store.RevisionInfo | None
    diffs: list[kb_store.FieldDiff]


async def review_page(request: web.Request) -> web.StreamResponse:
    items: list[ReviewItem] = []
    async with runtime_of(request).sf() as session:
        for draft in await kb_store.review_queue(session):
            detail = await kb_store.entry_detail(session, draft.entry_id)
            published = detail.published if detail else None
            diffs = kb_store.diff_revisions(published, draft) if published else []
            items.append(ReviewItem(draft, published, diffs))
    return render(request, "review.html", items=items, done=request.query.get("done", ""))


async def revision_approve(request: web.Request) -> web.StreamResponse:
    rev_id = _int(request.match_info["rev_id"]) or 0
    rt = runtime_of(request)
    try:
        async with rt.sf() as session:
            note = field(request, "note").strip()
            await kb_store.approve(session, rev_id, reviewer=actor_of(request), note=note)
            await session.commit()
    except ValueError as exc:
        return error_page(request, 409, _("无法发布"), str(exc))
    # This process serves the new text at once; other instances pick it up on their next poll.
    await rt.knowledge.refresh_if_changed()
    return redirect("/review?done=approved")


async def revision_reject(request: web.Request) -> web.StreamResponse:
    rev_id = _int(request.match_info["rev_id"]) or 0
    reason = field(request, "reason").strip()
    rt = runtime_of(request)
    try:
        async with rt.sf() as session:
            await kb_store.reject(session, rev_id, reviewer=actor_of(request), reason=reason)
            await session.commit()
    except ValueError as exc:
        return error_page(request, 400, _("无法驳回"), str(exc))
    return redirect("/review?done=rejected")


# --- gaps --------------------------------------------------------------------------


async def gaps_page(request: web.Request) -> web.StreamResponse:
    from bot import reports

    days = 30 if request.query.get("days") == "30" else 7
    async with runtime_of(request).sf() as session:
        gaps = await reports.gaps(session, days=days, limit=30)
    return render(request, "gaps.html", gaps=gaps, days=days)


# --- tickets -----------------------------------------------------------------------


async def tickets_page(request: web.Request) -> web.StreamResponse:
    settings = settings_of(request)
    view = request.query.get("view", "open")
    if view not in admin_views.TICKET_VIEWS:
        view = "open"
    staff = request.query.get("staff", "")
    async with runtime_of(request).sf() as session:
        rows = await admin_views.tickets(
            session, request.app[HOURS], settings.reminder_working_hours, view=view, staff=staff or None
        )
        load = await admin_views.staff_load(session)
    return render(
        request,
        "tickets.html",
        rows=rows,
        view=view,
        staff=staff,
        load=load,
        reminder_hours=settings.reminder_working_hours,
    )


async def ticket_page(request: web.Request) -> web.StreamResponse:
    ticket_id = _int(request.match_info["ticket_id"])
    if ticket_id is None:
        raise web.HTTPNotFound()
    async with runtime_of(request).sf() as session:
        conv = await admin_views.conversation(
            session, ticket_id, request.app[HOURS], settings_of(request).reminder_working_hours
        )
    if conv is None:
        raise web.HTTPNotFound()
    return render(request, "ticket.html", conv=conv)


# --- weekly report -----------------------------------------------------------------


def _bar_chart(values: list[tuple[str, list[float]]], series: list[str], unit: str = "") -> dict[str, Any]:
    """Geometry for a grouped bar chart drawn as inline SVG by the template (no script, no image)."""
    width, height, left, bottom, top = 640, 220, 40, 30, 10
    peak = max([v for _label, vs in values for v in vs] + [0]) or 1
    group_w = (width - left) / max(len(values), 1)
    bar_w = max(4.0, (group_w - 10) / max(len(series), 1))
    bars, labels = [], []
    for i, (label, vs) in enumerate(values):
        x0 = left + i * group_w + 5
        labels.append({"x": x0 + (group_w - 10) / 2, "y": height - 10, "text": label})
        for j, v in enumerate(vs):
            h = (height - bottom - top) * (v / peak)
            bars.append(
                {
                    "x": round(x0 + j * bar_w, 1),
                    "y": round(height - bottom - h, 1),
                    "w": round(bar_w - 2, 1),
                    "h": round(h, 1),
                    "series": j,
                    "value": v,
                    "title": f"{label} · {series[j]}: {v:g}{unit}",
                }
            )
    return {
        "width": width,
        "height": height,
        "bars": bars,
        "labels": labels,
        "series": series,
        "peak": peak,
        "axis_y": height - bottom,
        "left": left,
        "unit": unit,
    }


async def report_page(request: web.Request) -> web.StreamResponse:
    from bot import reports

    settings = settings_of(request)
    week = request.query.get("week", "").strip()
    week = week or reports.iso_week(dt.datetime.now(dt.UTC), settings.timezone)
    try:
        async with runtime_of(request).sf() as session:
            report = await reports.weekly_report(session, week, tz=settings.timezone)
    except ValueError as exc:
        return error_page(request, 400, _("周次无效"), str(exc))
    day_labels = [d.date.strftime("%m-%d") if d.date else "" for d in report.days]
    handled = _bar_chart(
        [
            (lbl, [d.questions, d.answered_by_bot, d.tickets, d.answered_by_staff])
            for lbl, d in zip(day_labels, report.days, strict=True)
        ],
        [_("提问"), _("机器人答复"), _("工单"), _("人工答复")],
    )
    response_times = _bar_chart(
        [
            (lbl, [round((d.median_first_response_seconds or 0) / 60, 1)])
            for lbl, d in zip(day_labels, report.days, strict=True)
        ],
        [_("首次响应时间中位数（分钟）")],
    )
    topics_chart = _bar_chart([(t.topic, [t.count]) for t in report.top_topics], [_("提问数")])
    monday = report.start
    prev_week = reports.iso_week(monday - dt.timedelta(days=7))
    next_week = reports.iso_week(monday + dt.timedelta(days=7))
    return render(
        request,
        "report.html",
        report=report,
        handled=handled,
        response_times=response_times,
        topics_chart=topics_chart,
        prev_week=prev_week,
        next_week=next_week,
    )


async def _report_for(request: web.Request) -> Any:
    from bot import reports

    week = request.match_info["week"]
    try:
        async with runtime_of(request).sf() as session:
            return await reports.weekly_report(session, week, tz=settings_of(request).timezone)
    except ValueError:
        raise web.HTTPNotFound() from None


async def report_csv(request: web.Request) -> web.StreamResponse:
    from bot import reports

    report = await _report_for(request)
    body = reports.report_csv(report).encode("utf-8")
    return web.Response(
        body=body,
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="hotline-{report.week}.csv"'},
    )


async def report_png(request: web.Request) -> web.StreamResponse:
    from bot import reports

    report = await _report_for(request)
    try:
        png = await asyncio.to_thread(reports.report_png, report)
    except ImportError:
        message = _("服务器没有安装绘图组件，请查看网页上的图表或下载 CSV。")
        return error_page(request, 503, _("图表不可用"), message)
    return web.Response(body=png, content_type="image/png")


# --- audit log ---------------------------------------------------------------------


def _local_day(value: str, tz: ZoneInfo) -> dt.datetime | None:
    try:
        day = dt.date.fromisoformat(value.strip())
    except ValueError:
        return None
    return dt.datetime.combine(day, dt.time(), tz)


async def audit_page(request: web.Request) -> web.StreamResponse:
    tz = ZoneInfo(settings_of(request).timezone)
    actor = request.query.get("actor", "")
    action = request.query.get("action", "")
    date_from, date_to = request.query.get("from", ""), request.query.get("to", "")
    since = _local_day(date_from, tz) if date_from else None
    until_day = _local_day(date_to, tz) if date_to else None
    until = until_day + dt.timedelta(days=1) if until_day else None  # the "to" day is included
    page = max(1, _int(request.query.get("page")) or 1)
    async with runtime_of(request).sf() as session:
        rows, total = await admin_views.audit_log(
            session,
            actor=actor,
            action=action,
            since=since,
            until=until,
            limit=AUDIT_PAGE,
            offset=(page - 1) * AUDIT_PAGE,
        )
        actions = await admin_views.audit_actions(session)
    pages = max(1, (total + AUDIT_PAGE - 1) // AUDIT_PAGE)
    return render(
        request,
        "audit.html",
        rows=rows,
        total=total,
        actions=actions,
        actor=actor,
        action=action,
        date_from=date_from,
        date_to=date_to,
        page=page,
        pages=pages,
    )


# --- YAML import and export --------------------------------------------------------


async def io_page(request: web.Request) -> web.StreamResponse:
    async with runtime_of(request).sf() as session:
        count = await kb_store.entry_count(session)
    return render(request, "io.html", count=count, problems=None, report=None)


async def _export_data(request: web.Request) -> tuple[list[Entry], dict[str, list[str]]]:
    async with runtime_of(request).sf() as session:
        entries = await kb_store.export_entries(session)
        aliases = await kb_store.aliases(session)
        await kb_store.audit(session, actor_of(request), "kb.export", "", entries=len(entries))
        await session.commit()
    return entries, aliases


async def export_yaml(request: web.Request) -> web.StreamResponse:
    """Entries as one YAML file (the interchange format); the alias table is in the zip."""
    entries, _aliases = await _export_data(request)
    return web.Response(
        text=dump_entries(entries),
        content_type="application/yaml",
        charset="utf-8",
        headers={"Content-Disposition": 'attachment; filename="knowledge.yaml"'},
    )


async def export_zip(request: web.Request) -> web.StreamResponse:
    """Everything, laid out like ``main.py kb export FOLDER``: one file per topic + aliases.yaml."""
    entries, aliases = await _export_data(request)

    def build() -> bytes:
        with tempfile.TemporaryDirectory() as tmp:
            files = export(Path(tmp) / "knowledge", entries, aliases)
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
                for f in files:
                    zf.write(f, f"knowledge/{f.name}")
            return buf.getvalue()

    body = await asyncio.to_thread(build)
    stamp = dt.date.today().isoformat()
    return web.Response(
        body=body,
        content_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="knowledge-{stamp}.zip"'},
    )


def _unpack_uploads(uploads: list[tuple[str, bytes]], folder: Path) -> list[str]:
    """Write uploaded .yaml files (and the .yaml files inside uploaded .zip files) into ``folder``."""
    skipped: list[str] = []
    n = 0

    def put(name: str, data: bytes) -> None:
        nonlocal n
        n += 1
        # Only the base name, numbered: nothing from the upload decides where a file lands.
        safe = PurePosixPath(name.replace("\\", "/")).name or "upload.yaml"
        (folder / f"{n:03d}-{safe}").write_bytes(data)

    for name, data in uploads:
        lower = name.lower()
        if lower.endswith((".yaml", ".yml")):
            put(name, data)
        elif lower.endswith(".zip"):
            try:
                with zipfile.ZipFile(io.BytesIO(data)) as zf:
                    for info in zf.infolist():
                        if info.is_dir() or not info.filename.lower().endswith((".yaml", ".yml")):
                            continue
                        if info.file_size > 8 * 1024 * 1024:
                            skipped.append(info.filename)
                            continue
                        put(info.filename, zf.read(info))
            except zipfile.BadZipFile:
                skipped.append(name)
        else:
            skipped.append(name)
    return skipped


async def import_post(request: web.Request) -> web.StreamResponse:
    uploads: list[tuple[str, bytes]] = []
    for item in form_of(request).getall("files", []):
        if isinstance(item, web.FileField) and item.filename:
            uploads.append((item.filename, item.file.read()))
    note = field(request, "note").strip() or _("网页导入")
    rt = runtime_of(request)
    if not uploads:
        return await _io_result(request, 400, [_("请选择要导入的 YAML 或 zip 文件")], None)
    if len(uploads) > MAX_IMPORT_FILES:
        return await _io_result(request, 400, [_("一次最多导入 {n} 个文件", n=MAX_IMPORT_FILES)], None)
    with tempfile.TemporaryDirectory() as tmp:
        skipped = await asyncio.to_thread(_unpack_uploads, uploads, Path(tmp))
        bundle = await asyncio.to_thread(load, tmp, question_key=normalize)
        # Problems name the uploaded file, not our temporary copy.
        problems = [str(p).replace(tmp + "/", "") for p in bundle.problems]
    problems += [_("已跳过（不是 YAML 文件）：{name}", name=s) for s in skipped]
    if bundle.problems or not (bundle.entries or bundle.aliases):
        if not problems:
            problems = [_("文件里没有条目")]
        return await _io_result(request, 400, problems, None)
    async with rt.sf() as session:
        report = await kb_store.import_bundle(session, bundle, author=actor_of(request), note=note)
        await session.commit()
    await rt.knowledge.refresh_if_changed()
    return await _io_result(request, 200, problems, report)


async def _io_result(
    request: web.Request, status: int, problems: list[str], report: kb_store.ImportReport | None
) -> web.Response:
    async with runtime_of(request).sf() as session:
        count = await kb_store.entry_count(session)
    return render(request, "io.html", status=status, count=count, problems=problems, report=report)


# --- routes ------------------------------------------------------------------------


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/kb", kb_list)
    r.add_get("/kb/_new", kb_new_page)
    r.add_post("/kb/_new", kb_new_post)
    r.add_get("/kb/{entry_id}", kb_entry)
    r.add_get("/kb/{entry_id}/edit", kb_edit_page)
    r.add_post("/kb/{entry_id}/edit", kb_edit_post)
    r.add_get("/kb/{entry_id}/diff", kb_diff)
    r.add_post("/kb/{entry_id}/archive", kb_archive)
    r.add_post("/revisions/{rev_id}/restore", revision_restore)
    r.add_post("/revisions/{rev_id}/approve", revision_approve)
    r.add_post("/revisions/{rev_id}/reject", revision_reject)
    r.add_get("/review", review_page)
    r.add_get("/gaps", gaps_page)
    r.add_get("/tickets", tickets_page)
    r.add_get("/tickets/{ticket_id}", ticket_page)
    r.add_get("/reports", report_page)
    r.add_get("/reports/{week}.csv", report_csv)
    r.add_get("/reports/{week}.png", report_png)
    r.add_get("/audit", audit_page)
    r.add_get("/io", io_page)
    r.add_get("/io/knowledge.yaml", export_yaml)
    r.add_get("/io/knowledge.zip", export_zip)
    r.add_post("/io/import", import_post)
