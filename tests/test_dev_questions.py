"""Accuracy on the development question set; prints the figures (run pytest -s to see them)."""

from collections import Counter
from pathlib import Path

import pytest
import yaml

from knowledge.entries import load
from knowledge.matcher import ANSWER, ESCALATE, KnowledgeIndex

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = yaml.safe_load((ROOT / "tests" / "dev_questions.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def index() -> KnowledgeIndex:
    bundle = load(ROOT / "knowledge" / "data")
    return KnowledgeIndex.build(bundle.entries, bundle.aliases)


def evaluate(index: KnowledgeIndex) -> dict[str, object]:
    in_scope = [q for q in QUESTIONS if q["expect"] == "answer"]
    others = [q for q in QUESTIONS if q["expect"] != "answer"]
    top1 = answered_right = answered_wrong = 0
    misses: list[str] = []
    by_kind: Counter[str] = Counter()
    by_kind_ok: Counter[str] = Counter()
    for q in in_scope:
        r = index.match(q["q"])
        first = r.entry.id if r.entry else (r.candidates[0].entry_id if r.candidates else None)
        by_kind[q["kind"]] += 1
        if r.outcome == ANSWER and r.entry.id == q["entry"]:
            answered_right += 1
        elif r.outcome == ANSWER:
            answered_wrong += 1
        if first == q["entry"] and r.outcome != ESCALATE:
            top1 += 1
            by_kind_ok[q["kind"]] += 1
        else:
            misses.append(
                f"  {q['q']!r}: want {q['entry']}, got {r.outcome} {first} ({r.score:.2f} {r.reason})"
            )
    wrongly_answered = []
    outcome_mismatch = []
    for q in others:
        r = index.match(q["q"])
        if r.outcome == ANSWER:
            wrongly_answered.append(f"  {q['q']!r}: answered with {r.entry.id} ({r.score:.2f})")
        elif q["expect"] in ("clarify", "escalate") and r.outcome != q["expect"]:
            outcome_mismatch.append(f"  {q['q']!r}: want {q['expect']}, got {r.outcome}")
    return {
        "n_in": len(in_scope),
        "top1": top1 / len(in_scope),
        "answered_right": answered_right / len(in_scope),
        "answered_wrong": answered_wrong,
        "n_out": len(others),
        "wrongly_answered": wrongly_answered,
        "outcome_mismatch": outcome_mismatch,
        "misses": misses,
        "by_kind": {k: f"{by_kind_ok[k]}/{by_kind[k]}" for k in sorted(by_kind)},
    }


def test_development_set_accuracy(index: KnowledgeIndex) -> None:
    assert len(QUESTIONS) >= 150
    f = evaluate(index)
    print(
        f"\nin-scope questions: {f['n_in']}  top-1 accuracy: {f['top1']:.1%}  "
        f"answered correctly: {f['answered_right']:.1%}  answered wrongly: {f['answered_wrong']}\n"
        f"by kind: {f['by_kind']}\n"
        f"out-of-scope and junk questions: {f['n_out']}  answered: {len(f['wrongly_answered'])}\n"
        f"expected clarify/escalate but got the other: {len(f['outcome_mismatch'])}"
    )
    for line in f["misses"] + f["wrongly_answered"] + f["outcome_mismatch"]:
        print(line)
    assert f["top1"] >= 0.95, "in-scope top-1 accuracy below 95%"
    assert not f["wrongly_answered"], "an out-of-scope question was answered"


def test_every_expected_entry_exists(index: KnowledgeIndex) -> None:
    for q in QUESTIONS:
        if q["expect"] == "answer":
            assert index.entry(q["entry"]) is not None, q
