"""Decision rules on a small knowledge base: answer, clarify, escalate."""

import datetime as dt

import pytest

from knowledge.entries import Entry
from knowledge.matcher import ANSWER, CLARIFY, ESCALATE, KnowledgeIndex, Thresholds

D = dt.date(2018, 12, 15)


def entry(
    id_: str, topic: str, questions: list[str], keywords: list[str], status: str = "published"
) -> Entry:
    return Entry(id_, topic, tuple(questions), f"answer of {id_}", "seed", D, tuple(keywords), status)


ENTRIES = [
    entry("dibao-apply", "低保", ["低保怎么申请", "去哪里申请低保", "申请低保找谁"], ["低保"]),
    entry("dibao-docs", "低保", ["申请低保要带什么材料", "低保需要哪些证件"], ["低保"]),
    entry("tekun-who", "特困供养", ["什么人能申请特困供养", "五保户要什么条件"], ["特困"]),
    entry("medical-apply", "医疗救助", ["医疗救助怎么申请", "看病钱不够能申请医疗救助吗"], ["医疗救助"]),
    entry("greet-hello", "寒暄", ["你好", "在吗", "您好"], []),
    entry("greet-thanks", "寒暄", ["谢谢", "多谢了"], []),
    entry("draft-only", "低保", ["低保多久审批完"], ["低保"], status="draft"),
]
ALIASES = {"低保": ["最低生活保障"], "特困": ["特困供养", "五保", "五保户"], "医疗救助": ["看病救助"]}


@pytest.fixture(scope="module")
def index() -> KnowledgeIndex:
    return KnowledgeIndex.build(ENTRIES, ALIASES)


def test_a_paraphrase_is_answered(index: KnowledgeIndex) -> None:
    r = index.match("请问最低生活保障怎么申请？")
    assert (r.outcome, r.entry and r.entry.id) == (ANSWER, "dibao-apply")


def test_template_words_alone_never_borrow_an_answer(index: KnowledgeIndex) -> None:
    r = index.match("失业金怎么申请")
    assert r.outcome != ANSWER
    r = index.match("养老保险去哪里申请")
    assert r.outcome != ANSWER


def test_greetings_are_answered_and_never_escalated(index: KnowledgeIndex) -> None:
    for text in ("你好", "您好！", "在吗？", "谢谢", "哈喽你好呀"):
        r = index.match(text)
        assert r.outcome != ESCALATE, text
    assert index.match("你好").entry.id == "greet-hello"


@pytest.mark.parametrize(
    "junk", ["", "   ", "？？？", "啊啊啊", "😀😀😀", "123456", "asdfgh", "' OR 1=1 --", "\x00\x01"]
)
def test_junk_asks_to_rephrase(index: KnowledgeIndex, junk: str) -> None:
    r = index.match(junk)
    assert r.outcome == CLARIFY
    assert r.entry is None


def test_a_meaningful_unknown_question_is_escalated(index: KnowledgeIndex) -> None:
    assert index.match("婚姻登记需要带什么").outcome == ESCALATE
    assert index.match("我想办个残疾证").outcome == ESCALATE


def test_ambiguous_question_offers_candidates(index: KnowledgeIndex) -> None:
    r = index.match("低保")
    assert r.outcome in (CLARIFY, ANSWER)
    if r.outcome == CLARIFY:
        assert {c.entry_id for c in r.candidates} <= {"dibao-apply", "dibao-docs"}
        assert 2 <= len(r.candidates) <= 3


def test_drafts_are_never_served(index: KnowledgeIndex) -> None:
    r = index.match("低保多久审批完")
    assert not (r.entry and r.entry.id == "draft-only")
    assert all(c.entry_id != "draft-only" for c in r.candidates)


def test_thresholds_are_configurable() -> None:
    strict = KnowledgeIndex.build(ENTRIES, ALIASES, Thresholds(answer=0.99, clarify=0.98, sure=1.01))
    r = strict.match("最低生活保障咋申请")
    assert r.outcome != ANSWER


def test_ten_thousand_characters_do_not_crash(index: KnowledgeIndex) -> None:
    r = index.match("低保" + "很长的故事" * 2000)
    assert r.outcome in (ANSWER, CLARIFY, ESCALATE)
    assert r.elapsed_ms < 1000


def test_mixed_scripts_and_sql_looking_text(index: KnowledgeIndex) -> None:
    assert index.match("低保 apply 怎么申请").entry.id == "dibao-apply"
    r = index.match("DROP TABLE kb_entries; -- 低保怎么申请")
    assert r.outcome in (ANSWER, CLARIFY)


def test_json_shape_is_stable(index: KnowledgeIndex) -> None:
    data = index.match("低保怎么申请").to_json()
    assert list(data) == ["question", "outcome", "entry_id", "answer", "score", "candidates"]
    assert set(data["candidates"][0]) == {"entry_id", "question", "score"}
