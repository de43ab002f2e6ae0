"""Read-only views for the web panel: tickets (open, overdue, by staff member), a ticket's
conversation, and the audit log with filters. Plain data in and out; nothing here changes state.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.models import AuditLog, Citizen, Ticket, TicketMessage, utcnow
from bot.office_hours import OfficeHours
from bot.tickets import OPEN_STATES

TICKET_VIEWS = ("open", "overdue", "staff", "all")


@dataclass(frozen=True)
class TicketRow:
    id: int
    status: str
    question: str
    citizen: str
    created_at: dt.datetime
    claimed_by: str | None
    answered_by: str | None
    first_response_at: dt.datetime | None
    closed_at: dt.datetime | None
    rating: int | None
    topic: str | None
    overdue: bool
    working_hours_waiting: float


@dataclass(frozen=True)
class StaffLoad:
    name: str
    open: int
    answered: int
    closed: int


@dataclass(frozen=True)
class ConversationLine:
    at: dt.datetime
    direction: str  # citizen | staff | system
    author: str
    kind: str
    text: str


@dataclass(frozen=True)
class TicketConversation:
    ticket: TicketRow
    citizen_channel: str
    citizen_unreachable: bool
    candidates: list[str]
    lines: list[ConversationLine]


@dataclass(frozen=True)
class AuditRow:
    id: int
    at: dt.datetime
    actor: str
    action: str
    target: str
    detail: dict[str, Any]


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _row(t: Ticket, c: Citizen, hours: OfficeHours, reminder_hours: float, now: dt.datetime) -> TicketRow:
    waiting = 0.0
    if t.status == "open" and t.first_response_at is None:
        waiting = hours.working_hours_between(_aware(t.created_at), now)
    return TicketRow(
        id=t.id,
        status=t.status,
        question=t.question,
        citizen=c.display_name,
        created_at=_aware(t.created_at),
        claimed_by=t.claimed_by,
        answered_by=t.answered_by,
        first_response_at=t.first_response_at,
        closed_at=t.closed_at,
        rating=t.rating,
        topic=t.topic,
        overdue=waiting >= reminder_hours,
        working_hours_waiting=waiting,
    )


async def tickets(
    session: AsyncSession,
    hours: OfficeHours,
    reminder_hours: float,
    *,
    view: str = "open",
    staff: str | None = None,
    now: dt.datetime | None = None,
    limit: int = 200,
) -> list[TicketRow]:
    """``open``: not closed, oldest first; ``overdue``: open with no staff reply after
    ``reminder_hours`` of office time; ``staff``: claimed or answered by ``staff``, newest first;
    ``all``: newest first."""
    now = now or utcnow()
    stmt = select(Ticket, Citizen).join(Citizen, Citizen.id == Ticket.citizen_id)
    if view in ("open", "overdue"):
        stmt = stmt.where(Ticket.status.in_(OPEN_STATES)).order_by(Ticket.created_at, Ticket.id)
        if view == "overdue":
            stmt = stmt.where(Ticket.status == "open", Ticket.first_response_at.is_(None))
    elif view == "staff":
        if not staff:
            return []
        stmt = stmt.where(or_(Ticket.claimed_by == staff, Ticket.answered_by == staff)).order_by(
            Ticket.id.desc()
        )
    else:
        stmt = stmt.order_by(Ticket.id.desc())
    # Overdue is decided in office time, which SQL cannot compute: filter after loading.
    found = (await session.execute(stmt.limit(2000))).all()
    rows = [_row(t, c, hours, reminder_hours, now) for t, c in found]
    if view == "overdue":
        rows = [r for r in rows if r.overdue]
    return rows[:limit]


async def staff_load(session: AsyncSession) -> list[StaffLoad]:
    """Per staff member (the name shown on tickets): tickets open, answered and closed."""
    person = func.coalesce(Ticket.answered_by, Ticket.claimed_by)
    rows = (
        await session.execute(
            select(person, Ticket.status, func.count())
            .where(person.is_not(None))
            .group_by(person, Ticket.status)
        )
    ).all()
    load: dict[str, dict[str, int]] = {}
    for name, status, n in rows:
        load.setdefault(name, {"open": 0, "answered": 0, "closed": 0})[status] = int(n)
    return [
        StaffLoad(name, v.get("open", 0), v.get("answered", 0), v.get("closed", 0))
        for name, v in sorted(load.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
    ]


async def conversation(
    session: AsyncSession, ticket_id: int, hours: OfficeHours, reminder_hours: float
) -> TicketConversation | None:
    """A ticket and every message of it, system notes included, oldest first."""
    ticket = await session.get(Ticket, ticket_id)
    if ticket is None:
        return None
    citizen = await session.get(Citizen, ticket.citizen_id)
    assert citizen is not None
    msgs = await session.scalars(
        select(TicketMessage).where(TicketMessage.ticket_id == ticket_id).order_by(TicketMessage.id)
    )
    return TicketConversation(
        ticket=_row(ticket, citizen, hours, reminder_hours, utcnow()),
        citizen_channel=citizen.channel,
        citizen_unreachable=citizen.unreachable_at is not None,
        candidates=list(ticket.candidates or []),
        lines=[
            ConversationLine(_aware(m.created_at), m.direction, m.author, m.kind, m.text) for m in msgs
        ],
    )


async def audit_log(
    session: AsyncSession,
    *,
    actor: str = "",
    action: str = "",
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[AuditRow], int]:
    """Audit rows newest first, and how many match. ``actor`` is a substring, ``action`` a prefix
    (``kb.`` for every knowledge action); ``since`` inclusive, ``until`` exclusive."""
    conds = []
    if actor.strip():
        conds.append(AuditLog.actor.contains(actor.strip(), autoescape=True))
    if action.strip():
        conds.append(AuditLog.action.startswith(action.strip(), autoescape=True))
    if since is not None:
        conds.append(AuditLog.at >= since)
    if until is not None:
        conds.append(AuditLog.at < until)
    where = and_(*conds) if conds else None
    stmt = select(AuditLog).order_by(AuditLog.at.desc(), AuditLog.id.desc()).limit(limit).offset(offset)
    count = select(func.count()).select_from(AuditLog)
    if where is not None:
        stmt, count = stmt.where(where), count.where(where)
    rows = await session.scalars(stmt)
    total = int(await session.scalar(count) or 0)
    out = [AuditRow(r.id, _aware(r.at), r.actor, r.action, r.target, dict(r.detail or {})) for r in rows]
    return out, total


async def audit_actions(session: AsyncSession) -> list[str]:
    """The actions that occur in the log (for the filter's choices)."""
    return list(await session.scalars(select(AuditLog.action).distinct().order_by(AuditLog.action)))
