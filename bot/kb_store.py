"""The knowledge base in the database: entries with revisions, aliases, import and export.

Plain data in, plain data out (``knowledge.entries.Entry``); callers own the session.
Every change that alters what is served bumps ``kb_state.version`` so that every running
instance can notice it and rebuild its index.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.models import AuditLog, KbAlias, KbEntry, KbRevision, KbState, utcnow
from knowledge.entries import Entry, KnowledgeBundle
from knowledge.entries import load as load_yaml

BUNDLED_KB = Path(__file__).resolve().parent.parent / "knowledge" / "data"


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    aliases: int = 0


@dataclass(frozen=True)
class RevisionInfo:
    id: int
    entry_id: str
    number: int
    state: str
    author: str
    note: str
    created_at: dt.datetime
    entry: Entry
    reviewed_by: str | None = None
    review_note: str | None = None
    origin_ticket_id: int | None = None


def revision_to_entry(rev: KbRevision) -> Entry:
    status = rev.state if rev.state in ("draft", "published", "archived") else "draft"
    return Entry(
        id=rev.entry_id,
        topic=rev.topic,
        questions=tuple(rev.questions or ()),
        answer=rev.answer,
        source=rev.source,
        updated=rev.updated,
        keywords=tuple(rev.keywords or ()),
        status=status,
    )


def _info(rev: KbRevision) -> RevisionInfo:
    return RevisionInfo(
        id=rev.id,
        entry_id=rev.entry_id,
        number=rev.number,
        state=rev.state,
        author=rev.author,
        note=rev.note,
        created_at=rev.created_at,
        entry=revision_to_entry(rev),
        reviewed_by=rev.reviewed_by,
        review_note=rev.review_note,
        origin_ticket_id=rev.origin_ticket_id,
    )


def _same_content(rev: KbRevision, entry: Entry) -> bool:
    return (
        rev.topic == entry.topic
        and tuple(rev.questions or ()) == entry.questions
        and rev.answer == entry.answer
        and rev.source == entry.source
        and rev.updated == entry.updated
        and tuple(rev.keywords or ()) == entry.keywords
    )


async def bump_version(session: AsyncSession) -> None:
    state = await session.get(KbState, 1)
    if state is None:
        session.add(KbState(id=1, version=1, changed_at=utcnow()))
    else:
        await session.execute(
            update(KbState).where(KbState.id == 1).values(version=KbState.version + 1, changed_at=utcnow())
        )


async def kb_version(session: AsyncSession) -> int:
    value = await session.scalar(select(KbState.version).where(KbState.id == 1))
    return int(value or 0)


async def audit(session: AsyncSession, actor: str, action: str, target: str = "", **detail: object) -> None:
    session.add(AuditLog(actor=actor, action=action, target=target, detail=dict(detail)))


async def entry_count(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(KbEntry)) or 0)


async def _latest(session: AsyncSession, entry_id: str) -> KbRevision | None:
    return await session.scalar(
        select(KbRevision).where(KbRevision.entry_id == entry_id).order_by(KbRevision.number.desc()).limit(1)
    )


async def _published(session: AsyncSession, entry_id: str) -> KbRevision | None:
    return await session.scalar(
        select(KbRevision).where(KbRevision.entry_id == entry_id, KbRevision.state == "published")
    )


async def add_revision(
    session: AsyncSession,
    entry: Entry,
    *,
    author: str,
    note: str = "",
    state: str = "draft",
    origin_ticket_id: int | None = None,
) -> KbRevision:
    """Store a new revision of ``entry`` (creating the entry if new). Publishing archives the old one."""
    if await session.get(KbEntry, entry.id) is None:
        session.add(KbEntry(id=entry.id))
        await session.flush()
    latest = await _latest(session, entry.id)
    rev = KbRevision(
        entry_id=entry.id,
        number=(latest.number + 1) if latest else 1,
        state="draft",
        topic=entry.topic,
        questions=list(entry.questions),
        answer=entry.answer,
        source=entry.source,
        updated=entry.updated,
        keywords=list(entry.keywords),
        author=author,
        note=note,
        origin_ticket_id=origin_ticket_id,
    )
    session.add(rev)
    await session.flush()
    if state == "published":
        await publish_revision(session, rev.id, reviewer=author, note=note)
    elif state == "archived":
        rev.state = "archived"
    return rev


async def publish_revision(
    session: AsyncSession, revision_id: int, *, reviewer: str, note: str = ""
) -> KbRevision:
    rev = await session.get(KbRevision, revision_id)
    if rev is None:
        raise LookupError(f"no revision {revision_id}")
    current = await _published(session, rev.entry_id)
    if current is not None and current.id != rev.id:
        current.state = "archived"
        await session.flush()
    rev.state = "published"
    rev.reviewed_by = reviewer
    rev.reviewed_at = utcnow()
    rev.review_note = note or rev.review_note
    await bump_version(session)
    return rev


async def import_bundle(
    session: AsyncSession, bundle: KnowledgeBundle, *, author: str = "import", note: str = "YAML import"
) -> ImportReport:
    """Import entries and aliases; an entry whose content changed gets a new revision."""
    report = ImportReport()
    for entry in bundle.entries:
        latest = await _latest(session, entry.id)
        if latest is None:
            await add_revision(session, entry, author=author, note=note, state=entry.status)
            report.created.append(entry.id)
            continue
        target_state = entry.status
        if _same_content(latest, entry) and (latest.state == target_state):
            report.unchanged.append(entry.id)
            continue
        if _same_content(latest, entry):
            if target_state == "published":
                await publish_revision(session, latest.id, reviewer=author, note=note)
            else:
                if latest.state == "published":
                    await bump_version(session)
                latest.state = target_state
        else:
            await add_revision(session, entry, author=author, note=note, state=target_state)
        report.updated.append(entry.id)
    for term, synonyms in bundle.aliases.items():
        row = await session.get(KbAlias, term)
        if row is None:
            session.add(KbAlias(term=term, synonyms=list(synonyms), author=author))
        elif list(row.synonyms) != list(synonyms):
            row.synonyms = list(synonyms)
            row.updated_at = utcnow()
            row.author = author
        report.aliases += 1
    if bundle.aliases:
        await bump_version(session)
    await audit(
        session,
        author,
        "kb.import",
        "",
        created=len(report.created),
        updated=len(report.updated),
        aliases=report.aliases,
        note=note,
    )
    return report


async def published_entries(session: AsyncSession) -> list[Entry]:
    rows = await session.scalars(
        select(KbRevision).where(KbRevision.state == "published").order_by(KbRevision.entry_id)
    )
    return [revision_to_entry(r) for r in rows]


async def aliases(session: AsyncSession) -> dict[str, list[str]]:
    rows = await session.scalars(select(KbAlias).order_by(KbAlias.term))
    return {r.term: list(r.synonyms) for r in rows}


async def set_alias(session: AsyncSession, term: str, synonyms: list[str], *, author: str) -> None:
    row = await session.get(KbAlias, term)
    if not synonyms:
        if row is not None:
            await session.delete(row)
    elif row is None:
        session.add(KbAlias(term=term, synonyms=synonyms, author=author))
    else:
        row.synonyms, row.author, row.updated_at = synonyms, author, utcnow()
    await bump_version(session)
    await audit(session, author, "alias.set", term, synonyms=synonyms)


async def export_entries(session: AsyncSession) -> list[Entry]:
    """Each entry as it stands: its published revision, else its newest revision."""
    rows = (await session.scalars(select(KbRevision).order_by(KbRevision.entry_id, KbRevision.number))).all()
    chosen: dict[str, KbRevision] = {}
    for rev in rows:
        cur = chosen.get(rev.entry_id)
        if cur is None or cur.state != "published":
            if rev.state != "rejected" or cur is None:
                chosen[rev.entry_id] = rev
    return [revision_to_entry(chosen[k]) for k in sorted(chosen)]


async def history(session: AsyncSession, entry_id: str) -> list[RevisionInfo]:
    rows = await session.scalars(
        select(KbRevision).where(KbRevision.entry_id == entry_id).order_by(KbRevision.number.desc())
    )
    return [_info(r) for r in rows]


async def get_revision(session: AsyncSession, revision_id: int) -> RevisionInfo | None:
    rev = await session.get(KbRevision, revision_id)
    return _info(rev) if rev else None


async def ensure_seeded(sf: async_sessionmaker[AsyncSession], path: Path = BUNDLED_KB) -> ImportReport | None:
    """On an empty database, import the bundled knowledge base. Returns None if not needed."""
    async with sf() as session:
        if await entry_count(session):
            return None
        bundle = load_yaml(path)
        report = await import_bundle(session, bundle, author="system", note="bundled knowledge base")
        await session.commit()
        return report
