"""Plain-text views of the admin services for the bot (and any other text channel).

Everything here takes plain data from ``bot.kb_store`` / ``bot.reports`` and returns plain text
(never HTML: the Telegram renderer escapes and splits it). Telegram specifics stay in
``handlers/admin.py``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from zoneinfo import ZoneInfo

from bot.i18n import _
from bot.kb_store import EntryDetail, EntrySummary, RevisionInfo, diff_revisions
from bot.reports import Gap, Stats
from knowledge.entries import Entry

TIME_FORMAT = "%Y-%m-%d %H:%M"
HISTORY_LINES = 6
PREVIEW_CHARS = 60


def actor(user_id: int, name: str) -> str:
    """How an admin is named in revisions and the audit log: readable and unambiguous."""
    return f"{name[:80]} (tg:{user_id})"


def state_label(state: str) -> str:
    return {
        "published": _("已发布"),
        "draft": _("草稿"),
        "archived": _("已下线"),
        "rejected": _("已驳回"),
    }.get(state, state)


def field_label(name: str) -> str:
    return {
        "questions": _("问法"),
        "answer": _("答复"),
        "source": _("出处"),
        "topic": _("主题"),
        "keywords": _("关键词"),
        "updated": _("信息日期"),
    }.get(name, name)


def local(moment: dt.datetime | None, tz: str) -> str:
    if moment is None:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(ZoneInfo(tz)).strftime(TIME_FORMAT)


def short(text: str, limit: int = PREVIEW_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def entry_text(entry: Entry) -> str:
    """An entry's full content."""
    lines = [_("主题：{topic}", topic=entry.topic), _("问法（{n}）：", n=len(entry.questions))]
    lines += [f"• {q}" for q in entry.questions]
    lines += [_("答复："), entry.answer, _("出处：{source}", source=entry.source)]
    lines.append(_("信息日期：{date}", date=entry.updated.isoformat()))
    if entry.keywords:
        lines.append(_("关键词：{words}", words="、".join(entry.keywords)))
    return "\n".join(lines)


def revision_line(rev: RevisionInfo, tz: str) -> str:
    line = _(
        "第 {n} 版 · {state} · {author} · {at}",
        n=rev.number,
        state=state_label(rev.state),
        author=rev.author,
        at=local(rev.created_at, tz),
    )
    if rev.note:
        line += f" · {short(rev.note, 40)}"
    if rev.origin_ticket_id:
        line += " · " + _("来自工单 #{id}", id=rev.origin_ticket_id)
    if rev.state == "rejected" and rev.review_note:
        line += " · " + _("驳回理由：{reason}", reason=short(rev.review_note, 40))
    return line


def detail_text(detail: EntryDetail, tz: str) -> str:
    """/kb_show: state, the served (or newest) content, pending drafts and recent history."""
    shown = detail.published or detail.latest
    head = _("条目 {id}", id=detail.id)
    if detail.published:
        state = _("状态：已发布（第 {n} 版）", n=detail.published.number)
    else:
        state = _("状态：{state}（不对市民提供）", state=state_label(detail.state))
    lines = [head, state]
    if detail.drafts:
        lines.append(_("待审核草稿：{numbers}", numbers="、".join(f"#{d.number}" for d in detail.drafts)))
    if not detail.published:
        lines.append(_("以下为第 {n} 版内容：", n=shown.number))
    lines += ["", entry_text(shown.entry), "", _("历史：")]
    lines += [revision_line(r, tz) for r in detail.history[:HISTORY_LINES]]
    if len(detail.history) > HISTORY_LINES:
        lines.append(_("……共 {n} 个版本（完整历史见网页管理后台）", n=len(detail.history)))
    return "\n".join(lines)


def summary_line(row: EntrySummary) -> str:
    mark = " " + _("［有待审核草稿］") if row.has_pending_draft else ""
    return f"{row.id} · {row.topic} · {short(row.question, 30)} · {state_label(row.state)}{mark}"


def changes_text(old: RevisionInfo | None, new: RevisionInfo) -> str:
    """What a draft changes, field by field (removed lines with －, added with ＋)."""
    if old is None:
        return _("新条目：") + "\n" + entry_text(new.entry)
    lines: list[str] = []
    for fd in diff_revisions(old, new):
        if not fd.changed or fd.field == "updated":
            continue
        lines.append(_("【{field}】", field=field_label(fd.field)))
        for row in fd.lines:
            if row.tag == "equal":
                continue
            if row.old is not None:
                lines.append(f"－ {row.old}")
            if row.new is not None:
                lines.append(f"＋ {row.new}")
    if old.entry.updated != new.entry.updated:
        lines.append(
            _(
                "信息日期：{old} → {new}",
                old=old.entry.updated.isoformat(),
                new=new.entry.updated.isoformat(),
            )
        )
    return "\n".join(lines) if lines else _("（内容没有变化）")


def as_draft(base: RevisionInfo | None, entry: Entry) -> RevisionInfo:
    """A not-yet-saved draft, for previews (number 0 until saved)."""
    if base is not None:
        return dataclasses.replace(base, id=0, number=0, state="draft", entry=entry)
    return RevisionInfo(
        id=0,
        entry_id=entry.id,
        number=0,
        state="draft",
        author="",
        note="",
        created_at=dt.datetime.now(dt.UTC),
        entry=entry,
    )


def review_text(draft: RevisionInfo, published: RevisionInfo | None, tz: str) -> str:
    """A draft as a reviewer sees it: who, why, and what it changes compared with what is served."""
    lines = [
        _("待审核：条目 {id} 第 {n} 版", id=draft.entry_id, n=draft.number),
        _("作者：{author}（{at}）", author=draft.author, at=local(draft.created_at, tz)),
    ]
    if draft.note:
        lines.append(_("说明：{note}", note=draft.note))
    if draft.origin_ticket_id:
        lines.append(_("来自工单 #{id}", id=draft.origin_ticket_id))
    if published is not None:
        lines.append(_("与正在使用的第 {n} 版相比：", n=published.number))
    lines.append(changes_text(published, draft))
    return "\n".join(lines)


def queue_text(queue: list[RevisionInfo], tz: str) -> str:
    if not queue:
        return _("审核队列是空的：没有待审核的草稿。")
    lines = [_("待审核草稿（{n}，最早的在前）：", n=len(queue))]
    for i, rev in enumerate(queue, start=1):
        who = _("工单 #{id}", id=rev.origin_ticket_id) if rev.origin_ticket_id else rev.author
        lines.append(
            f"{i}. {rev.entry_id} #{rev.number} · {who} · {local(rev.created_at, tz)} · "
            f"{short(rev.entry.questions[0] if rev.entry.questions else '', 24)}"
        )
    return "\n".join(lines)


def kind_label(kind: str) -> str:
    return {"escalate": _("转人工"), "clarify": _("需反问"), "not_helpful": _("没解决")}.get(kind, kind)


def gaps_text(gaps: list[Gap], days: int) -> str:
    if not gaps:
        return _("最近 {days} 天没有转人工、需反问或“没解决”的问题。", days=days)
    lines = [_("最近 {days} 天最常见的未解决问题（相似问法已合并）：", days=days)]
    for i, g in enumerate(gaps, start=1):
        kinds = "，".join(f"{kind_label(k)} {n}" for k, n in g.kinds.items())
        lines.append(_("{i}. {q}（{n} 次：{kinds}）", i=i, q=short(g.question, 50), n=g.count, kinds=kinds))
        others = [short(e, 30) for e in g.examples[1:4]]
        if others:
            lines.append("   " + _("其他问法：{list}", list="；".join(others)))
        if g.entry_ids:
            lines.append("   " + _("相关条目：{ids}", ids="、".join(g.entry_ids)))
    return "\n".join(lines)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    minutes = round(seconds / 60)
    if minutes < 60:
        return _("{m} 分钟", m=minutes)
    return _("{h} 小时 {m} 分钟", h=minutes // 60, m=minutes % 60)


def _share(part: int, whole: int) -> str:
    return f"{part}（{part * 100 / whole:.0f}%）" if whole else str(part)


def stats_text(periods: list[tuple[str, Stats]]) -> str:
    """/stats: one block per period (e.g. last 7 and 30 days)."""
    blocks = []
    for label, s in periods:
        satisfaction = (
            _("{avg:.1f} 分（{n} 条评价）", avg=s.satisfaction_avg, n=s.satisfaction_count)
            if s.satisfaction_avg is not None
            else _("暂无评价")
        )
        blocks.append(
            "\n".join(
                [
                    label,
                    _("市民提问：{n}", n=s.questions),
                    _("机器人解答：{n}", n=_share(s.answered_by_bot, s.questions)),
                    _("反问澄清：{n}", n=s.clarified),
                    _("直接转人工：{n}", n=s.escalated),
                    _("人工工单：{n}，工作人员已回复 {m}", n=s.tickets, m=s.answered_by_staff),
                    _("首次响应时间（中位数）：{t}", t=_duration(s.median_first_response_seconds)),
                    _("满意度：{s}", s=satisfaction),
                    _("答复反馈：有帮助 {h}，没解决 {n}", h=s.helpful, n=s.not_helpful),
                ]
            )
        )
    return "\n\n".join(blocks)
