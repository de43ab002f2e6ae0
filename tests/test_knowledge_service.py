"""The served index follows the database: published changes are picked up without a restart."""

import dataclasses

import pytest

from bot import kb_store
from bot.knowledge_service import render_answer
from bot.runtime import Runtime

pytestmark = pytest.mark.postgres  # again on PostgreSQL when TEST_DATABASE_URL is set (conftest)


async def test_a_published_change_is_served_after_refresh(runtime: Runtime) -> None:
    before = runtime.knowledge.match("低保怎么申请")
    assert before.entry is not None
    changed = dataclasses.replace(before.entry, answer="新的答复文本：请到乡镇人民政府申请。")
    async with runtime.sf() as session:
        await kb_store.add_revision(session, changed, author="admin", note="test", state="published")
        await session.commit()
    assert await runtime.knowledge.refresh_if_changed()
    assert runtime.knowledge.match("低保怎么申请").entry.answer.startswith("新的答复文本")
    assert not await runtime.knowledge.refresh_if_changed()


async def test_drafts_are_stored_but_not_served(runtime: Runtime) -> None:
    entry = runtime.knowledge.match("低保怎么申请").entry
    draft = dataclasses.replace(entry, answer="草稿，不应被看到。")
    async with runtime.sf() as session:
        await kb_store.add_revision(session, draft, author="admin", note="draft", state="draft")
        await session.commit()
        history = await kb_store.history(session, entry.id)
    await runtime.knowledge.refresh_if_changed()
    assert runtime.knowledge.match("低保怎么申请").entry.answer == entry.answer
    assert [h.state for h in history][:2] == ["draft", "published"]


def test_unset_bureau_facts_are_never_invented() -> None:
    text = render_answer(
        "电话：{bureau_phone}；地址：{bureau_address}；未知：{nothing}",
        {"bureau_phone": "（管理员填写的电话）"},
    )
    assert text == "电话：（管理员填写的电话）；地址：请以民政局公布为准；未知：请以民政局公布为准"
