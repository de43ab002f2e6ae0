"""Reviewed knowledge editing (bot/kb_store.py): drafts, review, archive, restore, audit, diff."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot import kb_store
from bot.models import AuditLog
from bot.runtime import Runtime

QUESTION = "低保怎么申请"
NEW_ANSWER = "（测试）新的答复：请到户籍所在地乡镇人民政府提出申请。"


@pytest.fixture
def runtime(seeded_runtime: Runtime) -> Runtime:
    """conftest's ``runtime``, from a copy of the seeded template database (faster)."""
    return seeded_runtime


def served_answer(rt: Runtime, question: str = QUESTION) -> str | None:
    result = rt.knowledge.match(question)
    return result.entry.answer if result.outcome == "answer" and result.entry else None


async def audit_actions(rt: Runtime) -> list[tuple[str, str, str]]:
    async with rt.sf() as session:
        rows = await session.scalars(select(AuditLog).order_by(AuditLog.id))
        return [(r.actor, r.action, r.target) for r in rows]


async def test_a_draft_is_not_served_until_approved(runtime: Runtime) -> None:
    entry_id = runtime.knowledge.match(QUESTION).entry.id
    original = served_answer(runtime)
    async with runtime.sf() as session:
        draft = await kb_store.save_draft(
            session, entry_id, answer=NEW_ANSWER, author="张三", note="更新流程"
        )
        await session.commit()
    assert draft.state == "draft" and draft.entry.answer == NEW_ANSWER
    assert draft.entry.questions[0] == QUESTION  # fields not given are kept
    await runtime.knowledge.refresh_if_changed()
    assert served_answer(runtime) == original

    async with runtime.sf() as session:
        queue = await kb_store.review_queue(session)
        assert [d.id for d in queue] == [draft.id]
        detail = await kb_store.entry_detail(session, entry_id)
        assert detail is not None and detail.state == "published"
        assert detail.published is not None and detail.published.entry.answer == original
        assert [d.id for d in detail.drafts] == [draft.id]
        [row] = await kb_store.list_entries(session, query=entry_id, state="pending")
        assert row.has_pending_draft and row.latest_number == draft.number

        published = await kb_store.approve(session, draft.id, reviewer="李四", note="核对无误")
        await session.commit()
    assert published.state == "published" and published.reviewed_by == "李四"
    assert await runtime.knowledge.refresh_if_changed()
    assert served_answer(runtime) == NEW_ANSWER

    async with runtime.sf() as session:
        history = await kb_store.history(session, entry_id)
        assert [h.state for h in history[:2]] == ["published", "archived"]
        assert await kb_store.review_queue(session) == []
    assert ("张三", "kb.draft", entry_id) in await audit_actions(runtime)
    assert ("李四", "kb.approve", entry_id) in await audit_actions(runtime)


async def test_reject_keeps_the_published_answer_and_needs_a_reason(runtime: Runtime) -> None:
    entry_id = runtime.knowledge.match(QUESTION).entry.id
    original = served_answer(runtime)
    async with runtime.sf() as session:
        draft = await kb_store.save_draft(session, entry_id, answer=NEW_ANSWER, author="张三")
        with pytest.raises(ValueError, match="理由"):
            await kb_store.reject(session, draft.id, reviewer="李四", reason="  ")
        rejected = await kb_store.reject(session, draft.id, reviewer="李四", reason="出处不对")
        await session.commit()
        assert rejected.state == "rejected" and rejected.review_note == "出处不对"
        with pytest.raises(ValueError):
            await kb_store.approve(session, draft.id, reviewer="李四")
        assert await kb_store.review_queue(session) == []
    await runtime.knowledge.refresh_if_changed()
    assert served_answer(runtime) == original
    assert ("李四", "kb.reject", entry_id) in await audit_actions(runtime)


async def test_archive_stops_serving_and_restore_makes_a_new_revision(runtime: Runtime) -> None:
    entry_id = runtime.knowledge.match(QUESTION).entry.id
    original = served_answer(runtime)
    async with runtime.sf() as session:
        before = await kb_store.history(session, entry_id)
        archived = await kb_store.archive_entry(session, entry_id, author="李四", note="政策调整")
        await session.commit()
    assert archived.state == "archived"
    assert await runtime.knowledge.refresh_if_changed()
    assert served_answer(runtime) != original
    assert runtime.knowledge.entry(entry_id) is None

    async with runtime.sf() as session:
        [row] = await kb_store.list_entries(session, query=entry_id)
        assert row.state == "archived"
        restored = await kb_store.restore_revision(session, archived.id, author="李四", note="恢复")
        await session.commit()
        after = await kb_store.history(session, entry_id)
    assert restored.number == before[0].number + 1 and restored.state == "draft"
    assert restored.entry.answer == original
    # History is never rewritten: the old revisions are all still there, unchanged in content.
    assert [h.number for h in after[1:]] == [h.number for h in before]
    async with runtime.sf() as session:
        await kb_store.approve(session, restored.id, reviewer="王五")
        await session.commit()
    await runtime.knowledge.refresh_if_changed()
    assert served_answer(runtime) == original
    actions = [a for _, a, t in await audit_actions(runtime) if t == entry_id]
    assert actions[-3:] == ["kb.archive", "kb.restore", "kb.approve"]


async def test_new_entry_paraphrases_and_validation(runtime: Runtime) -> None:
    async with runtime.sf() as session:
        with pytest.raises(ValueError, match="条目编号"):
            await kb_store.save_draft(
                session, "坏编号", questions=["问"], answer="答", source="出处", topic="低保", author="a"
            )
        with pytest.raises(ValueError, match="答复不能为空"):
            await kb_store.save_draft(
                session, "test-new", questions=["某问题"], answer=" ", source="出处", topic="低保", author="a"
            )
        with pytest.raises(ValueError, match="问法"):
            await kb_store.save_draft(
                session, "test-new", questions=[], answer="答", source="出处", topic="低保", author="a"
            )
        with pytest.raises(ValueError, match="已经属于条目"):
            await kb_store.save_draft(
                session, "test-new", questions=[QUESTION], answer="答", source="出", topic="低保", author="a"
            )
        created = await kb_store.save_draft(
            session,
            "test-new",
            questions=["测试专用问题甲", "测试专用问题甲 "],
            answer="测试答复",
            source="测试出处",
            topic="低保",
            author="a",
            origin_ticket_id=7,
        )
        assert created.number == 1 and created.entry.questions == ("测试专用问题甲",)
        assert created.origin_ticket_id == 7
        with pytest.raises(ValueError, match="没有改动"):
            await kb_store.save_draft(session, "test-new", author="a")
        more = await kb_store.add_paraphrases(
            session, "test-new", ["测试专用问题甲", "测试专用问题乙"], author="a", note="补充问法"
        )
        assert more.entry.questions == ("测试专用问题甲", "测试专用问题乙")
        # New wordings change no fact: the date the facts are valid for stays.
        assert more.entry.updated == created.entry.updated
        with pytest.raises(ValueError, match="已经有了"):
            await kb_store.add_paraphrases(session, "test-new", ["测试专用问题乙"], author="a")
        # Approving the newest draft closes the older one as superseded.
        await kb_store.approve(session, more.id, reviewer="a")
        await session.commit()
        detail = await kb_store.entry_detail(session, "test-new")
    assert detail is not None and [h.state for h in detail.history] == ["published", "rejected"]
    await runtime.knowledge.refresh_if_changed()
    assert served_answer(runtime, "测试专用问题乙") == "测试答复"
    actions = [a for _, a, t in await audit_actions(runtime) if t == "test-new"]
    assert actions == ["kb.create", "kb.paraphrases", "kb.approve"]


async def test_diff_shows_what_changed(runtime: Runtime) -> None:
    entry_id = runtime.knowledge.match(QUESTION).entry.id
    async with runtime.sf() as session:
        detail = await kb_store.entry_detail(session, entry_id)
        assert detail is not None and detail.published is not None
        old = detail.published
        questions_only = await kb_store.save_draft(
            session, entry_id, questions=[*old.entry.questions, "另一个新问法"], author="a"
        )
        assert questions_only.entry.updated == old.entry.updated  # new wordings change no fact
        new = await kb_store.save_draft(
            session,
            entry_id,
            answer=old.entry.answer.replace("\n", "\n补充一行。\n", 1) + "新增结尾。",
            questions=[*old.entry.questions, "新的问法"],
            author="a",
        )
    assert new.entry.updated != old.entry.updated  # the answer changed: facts dated today
    diffs = {d.field: d for d in kb_store.diff_revisions(old, new)}
    assert diffs["answer"].changed and diffs["questions"].changed
    assert not diffs["source"].changed and not diffs["topic"].changed
    inserted = [line.new for line in diffs["questions"].lines if line.tag == "insert"]
    assert inserted == ["新的问法"]
    assert any(line.tag == "insert" and line.new == "补充一行。" for line in diffs["answer"].lines)
    changed_spans = [s.text for line in diffs["answer"].lines for s in line.new_spans if s.changed]
    assert "新增结尾。" in changed_spans
    # Side by side: both columns reproduce the full texts.
    assert "\n".join(line.old for line in diffs["answer"].lines if line.old is not None) == old.entry.answer
    assert "\n".join(line.new for line in diffs["answer"].lines if line.new is not None) == new.entry.answer
