"""The knowledge base in the database: entries with revisions, aliases, import and export.

Plain data in, plain data out (``knowledge.entries.Entry``); callers own the session.
Every change that alters what is served bumps ``kb_state.version`` so that every running
instance can notice it and rebuild its index.
"""

from __future__ import annotations

import datetime as dt
import difflib
from dataclasses import dataclass, field, replace
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.i18n import _
from bot.models import AuditLog, KbAlias, KbEntry, KbRevision, KbState, utcnow
from knowledge.entries import MAX_ANSWER_CHARS, Entry, KnowledgeBundle, valid_id
from knowledge.entries import load as load_yaml
from knowledge.normalize import normalize

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
        if session.bind.dialect.name == "postgresql":
            # Several instances may start at once on an empty database: one imports, the others
            # wait here (the lock ends with the transaction) and then find the entries there.
            await session.execute(text("SELECT pg_advisory_xact_lock(727275)"))
        if await entry_count(session):
            return None
        bundle = load_yaml(path)
        report = await import_bundle(session, bundle, author="system", note="bundled knowledge base")
        await session.commit()
        return report


# --- reviewed editing (bot admin flows and the web panel) --------------------------------------
#
# Review rule: every edit (save_draft, add_paraphrases, restore_revision, staff drafts from
# tickets) creates a *draft* revision, which is never served. A draft is served only after an
# admin approves it with an explicit, separate publish step (``approve``), which sees the diff.
# Any admin may approve, including the draft's own author: the office has few admins, and the
# explicit step plus the audit trail (author, reviewer, time, note; ``self_approved`` flagged)
# is the accountability asked for. Archiving takes effect at once: withdrawing an answer is the
# safe direction. Rejecting needs a reason. Nothing rewrites history: a restore is a new draft.
# Callers own the session and commit; every mutating function writes an audit row.

ENTRY_STATES = ("published", "draft", "archived")
DIFF_FIELDS = ("questions", "answer", "source", "topic", "keywords", "updated")
SHANGHAI = "Asia/Shanghai"


@dataclass(frozen=True)
class EntrySummary:
    """One row of the knowledge list."""
    id: str
    topic: str
    question: str  # the first (canonical) question
    state: str  # published | draft | archived (archived also covers "only rejected revisions")
    latest_number: int
    published_number: int | None
    updated_at: dt.datetime  # when the newest revision was made
    has_pending_draft: bool


@dataclass(frozen=True)
class EntryDetail:
    id: str
    state: str
    published: RevisionInfo | None
    latest: RevisionInfo
    drafts: list[RevisionInfo]  # pending, oldest first
    history: list[RevisionInfo]  # every revision, newest first


@dataclass(frozen=True)
class DiffSpan:
    text: str
    changed: bool


@dataclass(frozen=True)
class DiffLine:
    """One row of a side-by-side view; ``old``/``new`` is None where the other side has a line alone."""
    tag: str  # equal | replace | delete | insert
    old: str | None
    new: str | None
    old_spans: tuple[DiffSpan, ...]
    new_spans: tuple[DiffSpan, ...]


@dataclass(frozen=True)
class FieldDiff:
    field: str
    old: str
    new: str
    changed: bool
    lines: tuple[DiffLine, ...]


def _today() -> dt.date:
    return dt.datetime.now(ZoneInfo(SHANGHAI)).date()


def _entry_state(revs: list[KbRevision]) -> str:
    states = {r.state for r in revs}
    if "published" in states:
        return "published"
    if "draft" in states:
        return "draft"
    return "archived"


async def _base(session: AsyncSession, entry_id: str) -> KbRevision | None:
    """What an edit starts from: the newest revision that was not rejected."""
    return await session.scalar(
        select(KbRevision)
        .where(KbRevision.entry_id == entry_id, KbRevision.state != "rejected")
        .order_by(KbRevision.number.desc())
        .limit(1)
    )


def _clean_list(values: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Stripped, non-empty, first occurrence kept (questions compared in normalised form)."""
    out: list[str] = []
    seen: set[str] = set()
    for v in values:
        text = str(v).strip()
        key = normalize(text) or text
        if text and key not in seen:
            seen.add(key)
            out.append(text)
    return tuple(out)


async def _check_entry(session: AsyncSession, entry: Entry) -> None:
    """The YAML format's rules (knowledge/entries.py), raised as one readable ValueError."""
    if not valid_id(entry.id):
        raise ValueError(
            _("条目编号“{id}”不合格：只能用小写英文字母、数字、- 和 _，2 到 40 个字符", id=entry.id)
        )
    if not entry.questions:
        raise ValueError(_("至少需要一个问法"))
    if not entry.answer.strip():
        raise ValueError(_("答复不能为空"))
    if len(entry.answer) > MAX_ANSWER_CHARS:
        raise ValueError(_("答复有 {n} 个字，最多 {max} 个", n=len(entry.answer), max=MAX_ANSWER_CHARS))
    if not entry.topic.strip():
        raise ValueError(_("主题不能为空"))
    if not entry.source.strip():
        raise ValueError(_("出处不能为空（请写明每个事实的来源）"))
    # A question that already belongs to another served entry would make the matcher guess.
    mine = {normalize(q): q for q in entry.questions}
    for other in await published_entries(session):
        if other.id == entry.id:
            continue
        for q in other.questions:
            if normalize(q) in mine:
                raise ValueError(
                    _("问法“{q}”已经属于条目 {other}", q=mine[normalize(q)], other=other.id)
                )


def _content_key(entry: Entry) -> tuple[object, ...]:
    return (entry.topic, entry.questions, entry.answer, entry.source, entry.keywords)


async def _new_draft(
    session: AsyncSession,
    entry: Entry,
    *,
    author: str,
    note: str,
    action: str,
    origin_ticket_id: int | None = None,
    **detail: object,
) -> RevisionInfo:
    await _check_entry(session, entry)
    base = await _base(session, entry.id)
    # Same content as what is served or already awaiting review: nothing to review. (Re-drafting an
    # archived revision's content unchanged is how an archived entry comes back.)
    if (
        base is not None
        and base.state in ("draft", "published")
        and _content_key(revision_to_entry(base)) == _content_key(entry)
    ):
        raise ValueError(_("内容与第 {n} 版相同，没有改动", n=base.number))
    rev = await add_revision(
        session, entry, author=author, note=note, state="draft", origin_ticket_id=origin_ticket_id
    )
    await audit(session, author, action, entry.id, revision=rev.number, note=note, **detail)
    return _info(rev)


async def list_entries(
    session: AsyncSession,
    *,
    query: str = "",
    topic: str | None = None,
    state: str | None = None,
    limit: int = 200,
) -> list[EntrySummary]:
    """Entries sorted by topic and id. ``query`` is a case-insensitive substring of the id, a
    question or the answer (of any non-rejected revision); ``state`` is published, draft,
    archived, or ``pending`` (has a draft awaiting review)."""
    rows = (await session.scalars(select(KbRevision).order_by(KbRevision.entry_id, KbRevision.number))).all()
    by_entry: dict[str, list[KbRevision]] = {}
    for rev in rows:
        by_entry.setdefault(rev.entry_id, []).append(rev)
    needle = query.strip().lower()
    out: list[EntrySummary] = []
    for entry_id, revs in by_entry.items():
        published = next((r for r in revs if r.state == "published"), None)
        shown = published or next((r for r in reversed(revs) if r.state != "rejected"), revs[-1])
        entry_state = _entry_state(revs)
        pending = any(r.state == "draft" for r in revs)
        if topic and shown.topic != topic:
            continue
        if state == "pending":
            if not pending:
                continue
        elif state and entry_state != state:
            continue
        if needle:
            haystack = [entry_id]
            for r in revs:
                if r.state != "rejected":
                    haystack += [*(r.questions or ()), r.answer]
            if not any(needle in h.lower() for h in haystack):
                continue
        out.append(
            EntrySummary(
                id=entry_id,
                topic=shown.topic,
                question=(shown.questions or [""])[0],
                state=entry_state,
                latest_number=revs[-1].number,
                published_number=published.number if published else None,
                updated_at=revs[-1].created_at,
                has_pending_draft=pending,
            )
        )
    out.sort(key=lambda s: (s.topic, s.id))
    return out[:limit]


async def topics(session: AsyncSession) -> list[str]:
    """Topics in use (for filters and pickers)."""
    rows = await session.scalars(select(KbRevision.topic).distinct().order_by(KbRevision.topic))
    return list(rows)


async def entry_detail(session: AsyncSession, entry_id: str) -> EntryDetail | None:
    revs = (
        await session.scalars(
            select(KbRevision).where(KbRevision.entry_id == entry_id).order_by(KbRevision.number)
        )
    ).all()
    if not revs:
        return None
    published = next((r for r in revs if r.state == "published"), None)
    return EntryDetail(
        id=entry_id,
        state=_entry_state(list(revs)),
        published=_info(published) if published else None,
        latest=_info(revs[-1]),
        drafts=[_info(r) for r in revs if r.state == "draft"],
        history=[_info(r) for r in reversed(revs)],
    )


async def save_draft(
    session: AsyncSession,
    entry_id: str,
    *,
    questions: list[str] | tuple[str, ...] | None = None,
    answer: str | None = None,
    source: str | None = None,
    topic: str | None = None,
    keywords: list[str] | tuple[str, ...] | None = None,
    updated: dt.date | None = None,
    author: str,
    note: str = "",
    origin_ticket_id: int | None = None,
) -> RevisionInfo:
    """A new draft revision of ``entry_id`` (a new entry if the id is unknown).

    A field left as None keeps the value of the newest non-rejected revision (so an edit of the
    answer alone keeps the questions); a new entry needs questions, answer, source and topic.
    ``updated`` (the date the facts are valid for) defaults to today in Asia/Shanghai when the
    answer or source changes, otherwise it stays as it was (new questions change no fact).
    Raises ValueError with a message an admin can read.
    """
    entry_id = entry_id.strip()
    base = await _base(session, entry_id)
    prev = revision_to_entry(base) if base else None
    entry = Entry(
        id=entry_id,
        topic=(topic if topic is not None else (prev.topic if prev else "")).strip(),
        questions=_clean_list(questions if questions is not None else (prev.questions if prev else ())),
        answer=(answer if answer is not None else (prev.answer if prev else "")).strip("\n").rstrip(),
        source=(source if source is not None else (prev.source if prev else "")).strip(),
        updated=updated or _today(),
        keywords=_clean_list(keywords if keywords is not None else (prev.keywords if prev else ())),
        status="draft",
    )
    if updated is None and prev is not None and (entry.answer, entry.source) == (prev.answer, prev.source):
        entry = replace(entry, updated=prev.updated)
    return await _new_draft(
        session,
        entry,
        author=author,
        note=note,
        action="kb.draft" if prev else "kb.create",
        origin_ticket_id=origin_ticket_id,
    )


async def add_paraphrases(
    session: AsyncSession, entry_id: str, questions: list[str], *, author: str, note: str = ""
) -> RevisionInfo:
    """A draft of the current revision with ``questions`` appended (duplicates dropped)."""
    base = await _base(session, entry_id)
    if base is None:
        raise ValueError(_("没有条目 {id}", id=entry_id))
    prev = revision_to_entry(base)
    merged = _clean_list([*prev.questions, *questions])
    if len(merged) == len(prev.questions):
        raise ValueError(_("这些问法都已经有了"))
    entry = Entry(
        id=prev.id,
        topic=prev.topic,
        questions=merged,
        answer=prev.answer,
        source=prev.source,
        updated=prev.updated,
        keywords=prev.keywords,
        status="draft",
    )
    return await _new_draft(
        session,
        entry,
        author=author,
        note=note,
        action="kb.paraphrases",
        added=len(merged) - len(prev.questions),
    )


async def review_queue(session: AsyncSession) -> list[RevisionInfo]:
    """Drafts awaiting review, oldest first (staff drafts from tickets carry origin_ticket_id)."""
    rows = await session.scalars(
        select(KbRevision).where(KbRevision.state == "draft").order_by(KbRevision.created_at, KbRevision.id)
    )
    return [_info(r) for r in rows]


async def _draft(session: AsyncSession, revision_id: int) -> KbRevision:
    rev = await session.get(KbRevision, revision_id)
    if rev is None:
        raise ValueError(_("没有这个版本（{id}）", id=revision_id))
    if rev.state != "draft":
        raise ValueError(_("第 {n} 版不是待审核的草稿（状态：{state}）", n=rev.number, state=rev.state))
    return rev


async def approve(session: AsyncSession, revision_id: int, *, reviewer: str, note: str = "") -> RevisionInfo:
    """Publish a draft: the entry's previous published revision is archived, older pending drafts
    of the entry are closed as superseded, and the kb version is bumped so every instance reloads.

    Review rule (see above): this explicit step by any admin, the draft's author included, is the
    review; the audit row records author, reviewer and ``self_approved``."""

    rev = await _draft(session, revision_id)
    await _check_entry(session, revision_to_entry(rev))
    previous = await _published(session, rev.entry_id)
    older = (
        await session.scalars(
            select(KbRevision).where(
                KbRevision.entry_id == rev.entry_id,
                KbRevision.state == "draft",
                KbRevision.number < rev.number,
            )
        )
    ).all()
    for old in older:
        old.state = "rejected"
        old.reviewed_by, old.reviewed_at = reviewer, utcnow()
        old.review_note = _("被第 {n} 版取代", n=rev.number)
    await publish_revision(session, rev.id, reviewer=reviewer, note=note)
    await audit(
        session,
        reviewer,
        "kb.approve",
        rev.entry_id,
        revision=rev.number,
        author=rev.author,
        self_approved=rev.author == reviewer,
        replaced=previous.number if previous else None,
        superseded=[o.number for o in older],
        note=note,
    )
    await session.flush()
    return _info(rev)


async def reject(session: AsyncSession, revision_id: int, *, reviewer: str, reason: str) -> RevisionInfo:
    """Close a draft without serving it; the reason is kept with the revision."""
    if not reason.strip():
        raise ValueError(_("驳回需要写明理由"))
    rev = await _draft(session, revision_id)
    rev.state = "rejected"
    rev.reviewed_by, rev.reviewed_at, rev.review_note = reviewer, utcnow(), reason.strip()
    await audit(session, reviewer, "kb.reject", rev.entry_id, revision=rev.number, reason=reason.strip())
    await session.flush()
    return _info(rev)


async def archive_entry(session: AsyncSession, entry_id: str, *, author: str, note: str = "") -> RevisionInfo:
    """Stop serving an entry at once (its published revision becomes archived; drafts stay)."""
    rev = await _published(session, entry_id)
    if rev is None:
        raise ValueError(_("条目 {id} 没有正在使用的版本", id=entry_id))
    rev.state = "archived"
    await bump_version(session)
    await audit(session, author, "kb.archive", entry_id, revision=rev.number, note=note)
    await session.flush()
    return _info(rev)


async def restore_revision(
    session: AsyncSession, revision_id: int, *, author: str, note: str = ""
) -> RevisionInfo:
    """A new draft with an old revision's content (history is never rewritten); approve serves it."""
    old = await session.get(KbRevision, revision_id)
    if old is None:
        raise ValueError(_("没有这个版本（{id}）", id=revision_id))
    entry = revision_to_entry(old).with_status("draft")
    return await _new_draft(
        session,
        entry,
        author=author,
        note=note or _("恢复第 {n} 版", n=old.number),
        action="kb.restore",
        restored=old.number,
    )


def _field_text(entry: Entry, name: str) -> str:
    value = getattr(entry, name)
    if isinstance(value, tuple):
        return "\n".join(value)
    return str(value)


def _char_spans(old: str, new: str) -> tuple[tuple[DiffSpan, ...], tuple[DiffSpan, ...]]:

    left: list[DiffSpan] = []
    right: list[DiffSpan] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
        if i2 > i1:
            left.append(DiffSpan(old[i1:i2], tag != "equal"))
        if j2 > j1:
            right.append(DiffSpan(new[j1:j2], tag != "equal"))
    return tuple(left), tuple(right)


def _diff_lines(old: str, new: str) -> tuple[DiffLine, ...]:

    a, b = old.split("\n"), new.split("\n")
    rows: list[DiffLine] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            rows += [DiffLine("equal", x, x, (DiffSpan(x, False),), (DiffSpan(x, False),)) for x in a[i1:i2]]
            continue
        olds, news = a[i1:i2], b[j1:j2]
        for k in range(max(len(olds), len(news))):
            o = olds[k] if k < len(olds) else None
            n = news[k] if k < len(news) else None
            if o is not None and n is not None:
                ls, rs = _char_spans(o, n)
                rows.append(DiffLine("replace", o, n, ls, rs))
            elif o is not None:
                rows.append(DiffLine("delete", o, None, (DiffSpan(o, True),), ()))
            else:
                assert n is not None
                rows.append(DiffLine("insert", None, n, (), (DiffSpan(n, True),)))
    return tuple(rows)


def diff_revisions(old: RevisionInfo, new: RevisionInfo) -> list[FieldDiff]:
    """Per field, a line diff with character-level spans inside changed lines (side by side)."""
    out: list[FieldDiff] = []
    for name in DIFF_FIELDS:
        a, b = _field_text(old.entry, name), _field_text(new.entry, name)
        out.append(FieldDiff(field=name, old=a, new=b, changed=a != b, lines=_diff_lines(a, b)))
    return out
