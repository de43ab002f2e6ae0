"""Database models. Tables are created only by the Alembic migrations in bot/migrations."""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UtcDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite would hand back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC) if value is not None else None

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[str]: JSON}


class KbEntry(Base):
    """A knowledge entry: a stable id with a history of revisions."""

    __tablename__ = "kb_entries"

    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    revisions: Mapped[list[KbRevision]] = relationship(
        back_populates="entry", order_by="KbRevision.number", cascade="all, delete-orphan"
    )


class KbRevision(Base):
    """One version of an entry. Only a published revision is served; at most one per entry."""

    __tablename__ = "kb_revisions"
    __table_args__ = (
        Index("ix_kb_revisions_entry_number", "entry_id", "number", unique=True),
        Index("ix_kb_revisions_state", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    entry_id: Mapped[str] = mapped_column(ForeignKey("kb_entries.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))  # draft | published | archived | rejected
    topic: Mapped[str] = mapped_column(String(40))
    questions: Mapped[list[str]] = mapped_column(JSON)
    answer: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(Text)
    updated: Mapped[dt.date] = mapped_column(Date)
    keywords: Mapped[list[str]] = mapped_column(JSON, default=list)
    author: Mapped[str] = mapped_column(String(120))
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    reviewed_by: Mapped[str | None] = mapped_column(String(120), nullable=True)
    reviewed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    review_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    origin_ticket_id: Mapped[int | None] = mapped_column(Integer, nullable=True)

    entry: Mapped[KbEntry] = relationship(back_populates="revisions")


class KbAlias(Base):
    """The synonym table: a canonical term and the words citizens use for it."""

    __tablename__ = "kb_aliases"

    term: Mapped[str] = mapped_column(String(40), primary_key=True)
    synonyms: Mapped[list[str]] = mapped_column(JSON)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    author: Mapped[str] = mapped_column(String(120), default="import")


class KbState(Base):
    """A counter bumped on every change that affects what is served, so instances can poll it."""

    __tablename__ = "kb_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0)
    changed_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow, server_default=func.now())


class AuditLog(Base):
    """Who did what, when and why: every admin action and sign-in."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_at", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(60))
    target: Mapped[str] = mapped_column(String(120), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Citizen(Base):
    """Someone who wrote to the assistant, on a channel (telegram, terminal)."""

    __tablename__ = "citizens"
    __table_args__ = (Index("ix_citizens_channel_ext", "channel", "external_id", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(16), default="telegram")
    external_id: Mapped[int] = mapped_column(BigInteger)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    username: Mapped[str | None] = mapped_column(String(64), nullable=True)
    language: Mapped[str | None] = mapped_column(String(16), nullable=True)
    unreachable_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    last_question: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    anonymized_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)

    # Not a column: True when the row was created in this session, so it has no tickets yet
    # and the per-message open-ticket lookup can be skipped.
    fresh: ClassVar[bool] = False


class Ticket(Base):
    """A question handed to hotline staff. Its id is the number citizens and staff see."""

    __tablename__ = "tickets"
    __table_args__ = (Index("ix_tickets_status", "status"), Index("ix_tickets_citizen", "citizen_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    citizen_id: Mapped[int] = mapped_column(ForeignKey("citizens.id"))
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | answered | closed
    source: Mapped[str] = mapped_column(String(16), default="escalate")
    question: Mapped[str] = mapped_column(Text)
    candidates: Mapped[list[str]] = mapped_column(JSON, default=list)
    topic: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    claimed_by_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    claimed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    first_response_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    answered_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    answered_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    closed_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    rating: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reminded_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    card_chat_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    card_message_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    anonymized_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)

    citizen: Mapped[Citizen] = relationship()
    messages: Mapped[list[TicketMessage]] = relationship(
        back_populates="ticket", order_by="TicketMessage.id", cascade="all, delete-orphan"
    )


class TicketMessage(Base):
    """One message of a ticket's conversation (citizen, staff or system)."""

    __tablename__ = "ticket_messages"
    __table_args__ = (Index("ix_ticket_messages_ticket", "ticket_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    direction: Mapped[str] = mapped_column(String(8))  # citizen | staff | system
    author: Mapped[str] = mapped_column(String(200), default="")
    author_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    kind: Mapped[str] = mapped_column(String(16), default="text")  # text | photo | document | voice | …
    text: Mapped[str] = mapped_column(Text, default="")
    file_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)

    ticket: Mapped[Ticket] = relationship(back_populates="messages")


class MessageLink(Base):
    """A message in the staff group that belongs to a ticket (its card, forwarded messages).

    Staff reply to any of them; the link survives restarts.
    """

    __tablename__ = "message_links"

    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    message_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16), default="forward")  # card | forward


class OutboxMessage(Base):
    """A message waiting to be sent: persisted first, sent (and retried) by the outbox sender."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "status", "next_attempt_at"),
        # Each claim asks, per chat, whether an earlier message is still waiting (order).
        Index("ix_outbox_chat_status", "chat_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    method: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(12), default="pending")  # pending | sending | sent | dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    locked_until: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    result_message_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    ticket_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    link_kind: Mapped[str | None] = mapped_column(String(16), nullable=True)
    citizen_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


class QueryLog(Base):
    """Every citizen question and what the assistant did with it (statistics, gaps, feedback)."""

    __tablename__ = "query_log"
    __table_args__ = (Index("ix_query_log_at", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    citizen_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    channel: Mapped[str] = mapped_column(String(16), default="telegram")
    question: Mapped[str] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(12))
    entry_id: Mapped[str | None] = mapped_column(String(80), nullable=True)
    score: Mapped[float] = mapped_column(default=0.0)
    feedback: Mapped[str | None] = mapped_column(String(16), nullable=True)  # helpful | not_helpful
    ticket_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


class AdminAccount(Base):
    """A web panel admin: signs in with a password (argon2 hash) or a link the bot sends."""

    __tablename__ = "admin_accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    telegram_user_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True, unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    last_signin_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class AdminLoginToken(Base):
    """A one-time sign-in link: only the token's SHA-256 is stored; valid once, for minutes."""

    __tablename__ = "admin_login_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    telegram_user_id: Mapped[int] = mapped_column(BigInteger)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("admin_accounts.id", ondelete="CASCADE"), nullable=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    used_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class AdminWebSession(Base):
    """A signed-in browser. The cookie holds a random token; only its SHA-256 is stored here."""

    __tablename__ = "admin_web_sessions"
    __table_args__ = (Index("ix_admin_web_sessions_expires", "expires_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the cookie value
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("admin_accounts.id", ondelete="CASCADE"), nullable=True
    )
    telegram_user_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    actor: Mapped[str] = mapped_column(String(200))
    csrf_token: Mapped[str] = mapped_column(String(64))
    ip: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class AdminSigninAttempt(Base):
    """Password sign-in attempts, for the rate limit (name + address)."""

    __tablename__ = "admin_signin_attempts"
    __table_args__ = (Index("ix_admin_signin_attempts_key", "name", "ip", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(80))
    ip: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    ok: Mapped[bool] = mapped_column(Boolean, default=False)


class JobRun(Base):
    """A scheduled job's period (e.g. the weekly report for 2026-W47), claimed by whoever ran it.

    The primary key makes the claim atomic: with several instances exactly one inserts it.
    """

    __tablename__ = "job_runs"

    job: Mapped[str] = mapped_column(String(40), primary_key=True)
    period: Mapped[str] = mapped_column(String(40), primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ProcessedUpdate(Base):
    """A Telegram update already handled, written in the update's own transaction.

    Telegram delivers an update again when an instance died before acknowledging it (webhook)
    or before confirming the offset (polling); this row makes the second delivery a no-op.
    Rows older than two days are pruned.
    """

    __tablename__ = "processed_updates"
    __table_args__ = (Index("ix_processed_updates_at", "at"),)

    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
