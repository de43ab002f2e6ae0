"""Database models. Tables are created only by the Alembic migrations in bot/migrations."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, Date, DateTime, ForeignKey, Index, Integer, String, Text, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON}


class KbEntry(Base):
    """A knowledge entry: a stable id with a history of revisions."""

    __tablename__ = "kb_entries"

    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
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
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    reviewed_by: Mapped[str | None] = mapped_column(String(120), nullable=True)
    reviewed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    review_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    origin_ticket_id: Mapped[int | None] = mapped_column(Integer, nullable=True)

    entry: Mapped[KbEntry] = relationship(back_populates="revisions")


class KbAlias(Base):
    """The synonym table: a canonical term and the words citizens use for it."""

    __tablename__ = "kb_aliases"

    term: Mapped[str] = mapped_column(String(40), primary_key=True)
    synonyms: Mapped[list[str]] = mapped_column(JSON)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    author: Mapped[str] = mapped_column(String(120), default="import")


class KbState(Base):
    """A counter bumped on every change that affects what is served, so instances can poll it."""

    __tablename__ = "kb_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0)
    changed_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )


class AuditLog(Base):
    """Who did what, when and why: every admin action and sign-in."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_at", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    actor: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(60))
    target: Mapped[str] = mapped_column(String(120), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
