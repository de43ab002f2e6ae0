"""Citizens' personal data: what we tell them, erasure on request (/forget), and retention.

Plain data in and out, no Telegram. The caller commits, so an erasure, the staff card edits
and the citizen's confirmation are stored in one transaction.

What counts as a citizen's personal data here: their Telegram id and chat id, display name,
username and language, the questions they typed (``citizens.last_question``, ``query_log``),
their tickets' conversation (texts and file ids, staff answers included: those often
repeat the citizen's circumstances) and copies of all that in the outbox. What is kept for
the hotline's statistics, anonymised: ticket number, status, source, topic, bot candidates,
times, who on the staff handled it, and the rating.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, delete, exists, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot import kb_store
from bot.i18n import _
from bot.models import (
    AuditLog,
    Citizen,
    OutboxMessage,
    ProcessedUpdate,
    QueryLog,
    Ticket,
    TicketMessage,
    utcnow,
)
from bot.replies import Button, Reply

# Stored in place of erased text. Data, not interface text: statistics and the weekly report
# should leave rows carrying one of these out of "top questions".
ERASED = "〔已按本人要求删除〕"
EXPIRED = "〔已超过保存期限，已匿名化〕"
MARKERS = (ERASED, EXPIRED)

DEFAULT_RETENTION_DAYS = 180
# Telegram lets a bot delete its own messages for 48 hours; stay clear of the edge.
DELETABLE_FOR = dt.timedelta(hours=47)
OPEN_STATES = ("open", "answered")
DONE = ("sent", "dead")
CANCELLED = "cancelled: the citizen erased their data"
RETENTION_ACTION = "privacy.retention"
_BATCH = 500
# Any constant works; it only has to be the same on every instance (PostgreSQL advisory lock).
_RETENTION_LOCK = 0x70726976


# --- what we tell citizens -------------------------------------------------------------------


def privacy_notice(retention_days: int = DEFAULT_RETENTION_DAYS) -> Reply:
    """/privacy: what is stored, why, for how long, how to erase it."""
    stored = _(
        "我们保存的信息：\n"
        "• 您的 Telegram 账号 ID、显示名称和用户名；\n"
        "• 您向助手提出的问题；\n"
        "• 转人工后的工单对话（文字、图片、文件）和您对服务的评分。"
    )
    why = _(
        "用途：回答您的问题；由热线工作人员跟进您的工单；"
        "统计热线服务情况（每周一次的热线统计报告，包括工单数量、回复时间、满意度和常见的未解答问题）。"
    )
    if retention_days > 0:
        how_long = _(
            "保存多久：工单办结 {days} 天后，工单中的问题和对话内容会被匿名化；"
            "提问记录在 {days} 天后匿名化；{days} 天内没有再使用的，您的账号信息也会被删除。",
            days=retention_days,
        )
    else:
        how_long = _("保存多久：目前没有设置自动匿名化期限，信息保存到您要求删除为止。")
    erase = _(
        "删除：随时发送 /forget 即可删除您的个人信息（需要确认一次）。未办结的工单会随之关闭，"
        "工作人员将无法再回复您。删除后只保留不含个人信息的统计数据（工单时间、状态、主题和评分），"
        "无法再与您对应。根据《中华人民共和国个人信息保护法》，您有权要求删除您的个人信息。"
    )
    limits = _(
        "请注意：已经转到工作人员群里的消息，机器人会尽量撤回，但 Telegram 只允许撤回 48 小时内发出的消息，"
        "更早的消息和工作人员自己发的消息可能仍留在群聊记录中。"
        "您与本助手的聊天记录保存在您自己的 Telegram 里，可以自行删除。"
    )
    return Reply("\n\n".join((stored, why, how_long, erase, limits)), header=_("个人信息说明"))


def forget_prompt(open_ticket_ids: list[int]) -> Reply:
    """/forget asks once before erasing: it cannot be undone."""
    lines = [
        _("确定要删除您的个人信息吗？"),
        _("将删除：您的显示名称和用户名、提问记录、工单中的对话内容（文字、图片、文件）。"),
    ]
    if open_ticket_ids:
        ids = "、".join(f"#{i}" for i in open_ticket_ids)
        lines.append(_("您还有未办结的工单 {ids}，删除后工单会关闭，工作人员将无法再回复您。", ids=ids))
    lines.append(_("工单的时间、状态和评分会匿名保留用于统计。此操作无法撤销。"))
    buttons = ((Button(_("确认删除"), "forget", (1,)), Button(_("取消"), "forget", (0,))),)
    return Reply("\n".join(lines), buttons=buttons)


# --- erasure on request ----------------------------------------------------------------------


@dataclass(frozen=True)
class ForgetReport:
    citizen_id: int
    found: bool = False
    already_anonymised: bool = False
    tickets: tuple[int, ...] = ()  # every ticket of the citizen, kept anonymised for statistics
    withdrawn: tuple[int, ...] = ()  # open tickets closed because the citizen withdrew
    messages: int = 0  # ticket messages whose text or file was erased
    queries: int = 0  # query-log questions erased
    outbox_cancelled: int = 0  # queued messages that will not be sent any more
    outbox_scrubbed: int = 0  # delivered messages whose stored copy was erased
    # The bot's own messages in the staff group that carry the citizen's words and are still
    # young enough for Telegram to delete: (chat_id, message_id).
    staff_messages: tuple[tuple[int, int], ...] = ()


def _mentions(payload: dict[str, Any], ticket_ids: set[int]) -> bool:
    """Does a staff-group message (card, /queue, /ticket listing …) mention one of these tickets?"""
    body = f"{payload.get('text', '')} {payload.get('caption', '')}"
    return any(int(n) in ticket_ids for n in re.findall(r"#(\d+)(?!\d)", body))


async def _erase_outbox(
    session: AsyncSession,
    citizen_id: int,
    chat_id: int | None,
    ticket_ids: set[int],
    since: dt.datetime | None,
    staff_chat_id: int | None,
) -> tuple[int, int]:
    """Cancel queued messages about the citizen and erase the stored copies of delivered ones.

    Rows a sender is sending right now are left alone (a retry of an emptied request would fail
    forever); the daily retention pass removes delivered rows later.
    """
    about = [OutboxMessage.citizen_id == citizen_id]
    if chat_id:
        about.append(OutboxMessage.chat_id == chat_id)
    if ticket_ids:
        about.append(OutboxMessage.ticket_id.in_(ticket_ids))
    ids = set(
        await session.scalars(
            select(OutboxMessage.id).where(or_(*about), OutboxMessage.status.in_(("pending", *DONE)))
        )
    )
    if ticket_ids and since is not None and staff_chat_id is not None:
        # Card edits, /queue and /ticket listings in the staff group name the ticket but are not
        # linked to it: look at what was sent there since the citizen's first ticket.
        rows = await session.execute(
            select(OutboxMessage.id, OutboxMessage.payload).where(
                OutboxMessage.chat_id == staff_chat_id,
                OutboxMessage.created_at >= since,
                OutboxMessage.status.in_(("pending", *DONE)),
            )
        )
        ids |= {rid for rid, payload in rows if _mentions(payload or {}, ticket_ids)}
    if not ids:
        return 0, 0
    erased = {"erased": True}
    scrubbed = await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(ids), OutboxMessage.status.in_(DONE))
        .values(payload=erased)
    )
    cancelled = await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(ids), OutboxMessage.status == "pending")
        .values(status="dead", payload=erased, last_error=CANCELLED, locked_until=None)
    )
    if chat_id:
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids), OutboxMessage.chat_id == chat_id)
            .values(chat_id=0)
        )
    return int(cancelled.rowcount or 0), int(scrubbed.rowcount or 0)


async def _young_staff_messages(
    session: AsyncSession, ticket_ids: set[int], now: dt.datetime
) -> tuple[tuple[int, int], ...]:
    """The bot's forwarded copies of the citizen's messages (and notes quoting them) in the staff
    group that Telegram still lets it delete. The card is edited instead: it keeps the statistics."""
    if not ticket_ids:
        return ()
    rows = await session.execute(
        select(OutboxMessage.chat_id, OutboxMessage.result_message_id)
        .where(
            OutboxMessage.ticket_id.in_(ticket_ids),
            OutboxMessage.link_kind == "forward",
            OutboxMessage.status == "sent",
            OutboxMessage.result_message_id.is_not(None),
            OutboxMessage.sent_at >= now - DELETABLE_FOR,
        )
        .order_by(OutboxMessage.id)
    )
    return tuple((int(c), int(m)) for c, m in rows)


def _erase_citizen_row(citizen: Citizen, now: dt.datetime) -> None:
    """Keep the row (tickets point to it) but nothing that identifies the person.

    The external id becomes ``-id`` (Telegram ids are positive, so it never matches anyone):
    if the person writes again they start afresh as a new citizen, unlinked from the old tickets.
    """
    citizen.display_name = ""
    citizen.username = None
    citizen.language = None
    citizen.last_question = None
    citizen.unreachable_at = None
    citizen.external_id = -citizen.id
    citizen.chat_id = 0
    if citizen.anonymized_at is None:
        citizen.anonymized_at = now


async def forget_citizen(
    session: AsyncSession,
    citizen_id: int,
    *,
    staff_chat_id: int | None = None,
    closed_by: str | None = None,
    now: dt.datetime | None = None,
) -> ForgetReport:
    """Erase a citizen's personal data at their request; keep anonymised ticket statistics.

    Open tickets are closed (``closed_by`` names who closed them on the card). Idempotent: a
    second call finds nothing more to erase. The caller builds the staff card edits and the
    citizen's confirmation from the report (capture the chat id before calling: it is erased).
    """
    now = now or utcnow()
    citizen = await session.get(Citizen, citizen_id)
    if citizen is None:
        return ForgetReport(citizen_id)
    already = citizen.anonymized_at is not None
    chat_id = citizen.chat_id if citizen.chat_id else None
    tickets = list(
        await session.scalars(select(Ticket).where(Ticket.citizen_id == citizen_id).order_by(Ticket.id))
    )
    ticket_ids = {t.id for t in tickets}
    since = min((t.created_at for t in tickets), default=None)

    withdrawn: list[int] = []
    for t in tickets:
        if t.status in OPEN_STATES:
            t.status, t.closed_at, t.closed_by = "closed", now, closed_by or _("市民撤回")
            session.add(TicketMessage(ticket_id=t.id, direction="system", kind="text", text="withdrawn"))
            withdrawn.append(t.id)
        t.question = ERASED
        if t.anonymized_at is None:
            t.anonymized_at = now

    messages = 0
    if ticket_ids:
        erased_msgs = await session.execute(
            update(TicketMessage)
            .where(
                TicketMessage.ticket_id.in_(ticket_ids),
                TicketMessage.direction.in_(("citizen", "staff")),
                or_(TicketMessage.text.not_in(MARKERS), TicketMessage.file_id.is_not(None)),
            )
            .values(text=ERASED, file_id=None)
        )
        messages = int(erased_msgs.rowcount or 0)
        await session.execute(
            update(TicketMessage)
            .where(TicketMessage.ticket_id.in_(ticket_ids), TicketMessage.direction == "citizen")
            .values(author="", author_id=None)
        )
    queries = await session.execute(
        update(QueryLog)
        .where(QueryLog.citizen_id == citizen_id, QueryLog.question != ERASED)
        .values(question=ERASED)
    )
    to_delete: tuple[tuple[int, int], ...] = ()
    cancelled = scrubbed = 0
    if not already:
        # Once is enough: a repeat must not cancel the first erasure's own card edits and
        # confirmation, still queued.
        to_delete = await _young_staff_messages(session, ticket_ids, now)
        own_chat = chat_id if citizen.channel == "telegram" else None
        cancelled, scrubbed = await _erase_outbox(
            session, citizen_id, own_chat, ticket_ids, since, staff_chat_id
        )
    _erase_citizen_row(citizen, now)
    report = ForgetReport(
        citizen_id=citizen_id,
        found=True,
        already_anonymised=already,
        tickets=tuple(sorted(ticket_ids)),
        withdrawn=tuple(withdrawn),
        messages=messages,
        queries=int(queries.rowcount or 0),
        outbox_cancelled=cancelled,
        outbox_scrubbed=scrubbed,
        staff_messages=to_delete,
    )
    # Who and what only as internal numbers: the audit log must not keep what was erased.
    await kb_store.audit(
        session,
        "citizen",
        "privacy.forget",
        f"citizen:{citizen_id}",
        tickets=list(report.tickets),
        withdrawn=list(report.withdrawn),
        messages=report.messages,
        queries=report.queries,
        outbox_cancelled=cancelled,
        outbox_scrubbed=scrubbed,
        staff_messages_deleted=len(to_delete),
    )
    await session.flush()
    return report


# --- retention -------------------------------------------------------------------------------


@dataclass
class RetentionReport:
    days: int
    tickets: int = 0
    citizens: int = 0
    queries: int = 0
    outbox_removed: int = 0
    outbox_scrubbed: int = 0

    def summary(self) -> str:
        return (
            f"retention {self.days} days: {self.tickets} tickets, {self.citizens} citizens, "
            f"{self.queries} questions anonymised; {self.outbox_removed} old delivery records removed, "
            f"{self.outbox_scrubbed} scrubbed"
        )


async def anonymise_closed(
    session: AsyncSession, older_than_days: int, now: dt.datetime | None = None
) -> int:
    """Anonymise tickets closed more than ``older_than_days`` ago, and citizens with nothing recent.

    Set-based and idempotent (only rows not anonymised yet are touched). Returns how many
    tickets were anonymised; citizens are counted by ``apply_retention``.
    """
    tickets, _citizens = await _anonymise_closed(session, older_than_days, now or utcnow())
    return tickets


async def _anonymise_closed(session: AsyncSession, days: int, now: dt.datetime) -> tuple[int, int]:
    if days <= 0:
        return 0, 0
    cutoff = now - dt.timedelta(days=days)
    done = 0
    while True:
        ids = list(
            await session.scalars(
                select(Ticket.id)
                .where(Ticket.status == "closed", Ticket.closed_at < cutoff, Ticket.anonymized_at.is_(None))
                .order_by(Ticket.id)
                .limit(_BATCH)
            )
        )
        if not ids:
            break
        await session.execute(
            update(TicketMessage)
            .where(
                TicketMessage.ticket_id.in_(ids),
                TicketMessage.direction.in_(("citizen", "staff")),
                TicketMessage.text.not_in(MARKERS),
            )
            .values(text=EXPIRED, file_id=None)
        )
        await session.execute(
            update(TicketMessage)
            .where(TicketMessage.ticket_id.in_(ids), TicketMessage.direction.in_(("citizen", "staff")))
            .values(file_id=None)
        )
        await session.execute(
            update(TicketMessage)
            .where(TicketMessage.ticket_id.in_(ids), TicketMessage.direction == "citizen")
            .values(author="", author_id=None)
        )
        result = await session.execute(
            update(Ticket)
            .where(Ticket.id.in_(ids), Ticket.anonymized_at.is_(None))
            .values(question=EXPIRED, anonymized_at=now)
            .execution_options(synchronize_session=False)
        )
        done += int(result.rowcount or 0)
        if len(ids) < _BATCH:
            break

    # Citizens with no open ticket, nothing closed recently and no question within the period.
    recent_ticket = exists().where(
        Ticket.citizen_id == Citizen.id,
        or_(Ticket.status.in_(OPEN_STATES), Ticket.closed_at >= cutoff),
    )
    recent_question = exists().where(QueryLog.citizen_id == Citizen.id, QueryLog.at >= cutoff)
    result = await session.execute(
        update(Citizen)
        .where(
            Citizen.anonymized_at.is_(None),
            Citizen.created_at < cutoff,
            ~recent_ticket,
            ~recent_question,
        )
        .values(
            display_name="",
            username=None,
            language=None,
            last_question=None,
            unreachable_at=None,
            external_id=-Citizen.id,
            chat_id=0,
            anonymized_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return done, int(result.rowcount or 0)


async def apply_retention(
    session: AsyncSession, days: int, now: dt.datetime | None = None
) -> RetentionReport:
    """One retention pass (idempotent; the caller commits).

    With ``days`` > 0: tickets closed and questions asked more than ``days`` ago are anonymised,
    idle citizens too, and delivery records older than that are removed. Always: delivery
    records of erased citizens lose their chat id and text (the /forget confirmation, once sent).
    """
    now = now or utcnow()
    report = RetentionReport(days=days)
    if days > 0:
        cutoff = now - dt.timedelta(days=days)
        report.tickets, report.citizens = await _anonymise_closed(session, days, now)
        queries = await session.execute(
            update(QueryLog)
            .where(QueryLog.at < cutoff, QueryLog.question.not_in(MARKERS))
            .values(question=EXPIRED)
            .execution_options(synchronize_session=False)
        )
        report.queries = int(queries.rowcount or 0)
        removed = await session.execute(
            OutboxMessage.__table__.delete().where(
                OutboxMessage.status.in_(DONE), OutboxMessage.created_at < cutoff
            )
        )
        report.outbox_removed = int(removed.rowcount or 0)
    erased_citizens = select(Citizen.id).where(Citizen.anonymized_at.is_not(None))
    scrubbed = await session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.citizen_id.in_(erased_citizens),
            OutboxMessage.status.in_(DONE),
            OutboxMessage.chat_id != 0,
        )
        .values(chat_id=0, payload={"erased": True})
        .execution_options(synchronize_session=False)
    )
    report.outbox_scrubbed = int(scrubbed.rowcount or 0)
    return report


async def daily_retention(
    session: AsyncSession, days: int, *, tz: str = "Asia/Shanghai", now: dt.datetime | None = None
) -> RetentionReport | None:
    """The daily job: at most one pass per calendar day across every instance.

    A pass leaves an audit row; an instance that finds today's row does nothing. On PostgreSQL
    a transaction-scoped advisory lock makes instances that start together take turns (the
    later one then sees the row); elsewhere the pass is idempotent, so a rare double run is
    harmless. The caller commits (which also releases the lock).
    """
    now = now or utcnow()
    if session.bind.dialect.name == "postgresql":
        got = await session.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _RETENTION_LOCK})
        if not got:
            return None
    zone = ZoneInfo(tz)
    start_of_day = dt.datetime.combine(now.astimezone(zone).date(), dt.time(), tzinfo=zone)
    ran_today = await session.scalar(
        select(func.count())
        .select_from(AuditLog)
        .where(and_(AuditLog.action == RETENTION_ACTION, AuditLog.at >= start_of_day))
    )
    if ran_today:
        return None
    report = await apply_retention(session, days, now)
    detail = {k: v for k, v in vars(report).items() if k != "days"}
    session.add(
        AuditLog(at=now, actor="retention", action=RETENTION_ACTION, target=f"days:{days}", detail=detail)
    )
    return report


async def prune_processed_updates(
    session: AsyncSession, keep: dt.timedelta = dt.timedelta(days=2), now: dt.datetime | None = None
) -> int:
    """Forget handled update ids (handlers/middlewares.py) after ``keep``: Telegram redelivers
    within minutes, not days. Cheap and idempotent, so every instance may run it hourly."""
    cutoff = (now or utcnow()) - keep
    result = await session.execute(delete(ProcessedUpdate).where(ProcessedUpdate.at < cutoff))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
