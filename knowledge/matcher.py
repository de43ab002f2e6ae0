"""Match a citizen's question to the knowledge base and decide: answer, clarify or escalate.

Retrieval is a TF-IDF cosine over character unigrams and bigrams, served from an
inverted index (numpy postings), so a question touches only the entries that share its
characters. The top candidates are reranked with rapidfuzz and passed through two gates
that keep precision: a topic gate (the question must name the entry's subject: 失业金怎么申请
never gets 低保怎么申请's answer) and a coverage gate (most of what the question is about
must appear in the entry's questions).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np
from rapidfuzz import fuzz

from knowledge.entries import Entry
from knowledge.normalize import clean, content_chars, is_cjk, strip_filler
from knowledge.vocabulary import TEMPLATE_WORDS, Vocabulary

ANSWER = "answer"
CLARIFY = "clarify"
ESCALATE = "escalate"

GREETING_TOPIC = "寒暄"

# Question-shaping characters: they never make a question "about" something.
_TEMPLATE_CHARS = set(
    "怎么样如何咋啥什哪里儿在去需要申请办理可以能否吗多少久长时间条件材料手续流程序我你他她们的了是有没不给"
    "请问这那个些呢吧啊呀一下就还得会该应到才都也和与及或者么想知道找对又吧把被让从"
)
# Score = weighted TF-IDF cosine (content) and rapidfuzz ratio (surface form), tuned on the dev set.
W_COSINE, W_FUZZY = 0.6, 0.4
# How many postings one query may walk to find candidates (keeps p99 flat as the KB grows).
_POSTINGS_BUDGET = 20_000
_TEMPLATE_WORD_SET = {clean(w) for w in TEMPLATE_WORDS}


@dataclass(frozen=True)
class Thresholds:
    """Decision thresholds; scores are in [0, 1]. Tune with ``main.py ask --json`` on a question set."""

    answer: float = 0.45  # best entry at least this good to answer directly
    clarify: float = 0.25  # candidates at least this good are offered in a clarification
    margin: float = 0.06  # best must beat the runner-up by this much to answer
    sure: float = 0.85  # so close to a known question that no topic word is needed
    max_unexplained: float = 0.5  # share of the question's own words the entry may not explain
    min_content_chars: int = 2  # fewer meaningful characters than this: ask to rephrase


@dataclass(frozen=True)
class Candidate:
    entry_id: str
    question: str
    score: float
    topic: str = ""


@dataclass(frozen=True)
class MatchResult:
    question: str
    outcome: str
    entry: Entry | None
    score: float
    candidates: tuple[Candidate, ...]
    reason: str  # why this outcome: "match", "close", "junk", "empty", "no_match", "off_topic", …
    normalized: str = ""
    elapsed_ms: float = 0.0

    def to_json(self) -> dict[str, object]:
        return {
            "question": self.question,
            "outcome": self.outcome,
            "entry_id": self.entry.id if self.entry else None,
            "answer": self.entry.answer if self.entry else None,
            "score": round(self.score, 4),
            "candidates": [
                {"entry_id": c.entry_id, "question": c.question, "score": round(c.score, 4)}
                for c in self.candidates
            ],
        }


def features(text: str) -> list[str]:
    """Character unigrams and bigrams: robust to word order and to Chinese having no spaces."""
    chars = [c for c in text if c != " "]
    grams = [c for c in chars]
    grams.extend(a + b for a, b in pairwise(chars))
    return grams


@dataclass
class _Scored:
    entry_idx: int
    cosine: float = 0.0
    fuzzy: float = 0.0
    best_question: str = ""
    score: float = 0.0
    gated: str = ""


@dataclass
class KnowledgeIndex:
    """An immutable, searchable snapshot of the published entries."""

    entries: list[Entry]
    vocabulary: Vocabulary
    thresholds: Thresholds = field(default_factory=Thresholds)
    build_seconds: float = 0.0
    # filled by build()
    _doc_entry: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    _doc_text: list[str] = field(default_factory=list)
    _term_ids: dict[str, int] = field(default_factory=dict)
    _idf: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    _post_start: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))
    _post_docs: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    _post_w: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    _doc_start: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))
    _doc_terms: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    _doc_w: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    _entry_terms: list[frozenset[str]] = field(default_factory=list)
    _entry_chars: list[frozenset[str]] = field(default_factory=list)
    _entry_questions: list[list[str]] = field(default_factory=list)
    _by_id: dict[str, int] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        entries: Iterable[Entry],
        aliases: dict[str, list[str]] | None = None,
        thresholds: Thresholds | None = None,
    ) -> KnowledgeIndex:
        started = time.perf_counter()
        entries = [e for e in entries if e.status == "published"]
        aliases = aliases or {}
        topic_terms: set[str] = set()
        for e in entries:
            topic_terms.update(e.keywords)
        vocab = Vocabulary(aliases, topic_terms)
        index = cls(entries=entries, vocabulary=vocab, thresholds=thresholds or Thresholds())
        index._build(started)
        return index

    def _build(self, started: float) -> None:
        vocab = self.vocabulary
        term_ids: dict[str, int] = {}
        doc_entry: list[int] = []
        flat_doc: list[int] = []
        flat_term: list[int] = []
        flat_tf: list[int] = []
        doc_text: list[str] = []
        for ei, entry in enumerate(self.entries):
            self._by_id[entry.id] = ei
            keywords = {vocab.canonicalize(clean(k)) for k in entry.keywords}
            prepared_questions: list[str] = []
            chars: set[str] = set()
            terms: set[str] = {k for k in keywords if k}
            for q in entry.questions:
                p = vocab.canonicalize(strip_filler(clean(q))) or vocab.canonicalize(clean(q))
                if not p:
                    continue
                prepared_questions.append(p)
                chars.update(p)
                terms.update(vocab.terms_in(p))
                doc_id = len(doc_entry)
                doc_entry.append(ei)
                doc_text.append(p)
                for gram, tf in Counter(features(p)).items():
                    tid = term_ids.setdefault(gram, len(term_ids))
                    flat_doc.append(doc_id)
                    flat_term.append(tid)
                    flat_tf.append(tf)
            for k in keywords:
                chars.update(k)
            self._entry_terms.append(frozenset(terms))
            self._entry_chars.append(frozenset(chars))
            self._entry_questions.append(prepared_questions)
        n_docs = len(doc_entry)
        docs = np.asarray(flat_doc, dtype=np.int32)
        terms_arr = np.asarray(flat_term, dtype=np.int32)
        tf = np.asarray(flat_tf, dtype=np.float32)
        df = np.bincount(terms_arr, minlength=len(term_ids)).astype(np.float32)
        idf = (np.log((n_docs + 1) / (df + 1)) + 1.0).astype(np.float32)
        w = (1.0 + np.log(tf)) * idf[terms_arr] if len(tf) else tf
        norms = np.sqrt(np.bincount(docs, weights=w * w, minlength=n_docs)).astype(np.float32)
        if len(w):
            w = w / norms[docs]
        order = np.argsort(terms_arr, kind="stable")
        counts = np.bincount(terms_arr, minlength=len(term_ids))
        self._post_start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        # Doc-major copies, for exact cosines of the retrieved candidates.
        self._doc_start = np.concatenate([[0], np.cumsum(np.bincount(docs, minlength=n_docs))]).astype(
            np.int64
        )
        self._doc_terms = terms_arr
        self._doc_w = w.astype(np.float32)
        self._post_docs = docs[order]
        self._post_w = w[order].astype(np.float32)
        self._idf = idf
        self._term_ids = term_ids
        self._doc_entry = np.asarray(doc_entry, dtype=np.int32)
        self._doc_text = doc_text
        self.build_seconds = time.perf_counter() - started

    def entry(self, entry_id: str) -> Entry | None:
        i = self._by_id.get(entry_id)
        return self.entries[i] if i is not None else None

    def __len__(self) -> int:
        return len(self.entries)

    # --- matching -----------------------------------------------------------------

    def _retrieve(self, text: str, limit: int) -> list[tuple[int, float]]:
        """Top documents by TF-IDF cosine: (doc id, cosine).

        Candidates come from the question's rarest grams, within a budget of postings, so a
        query never walks the long lists of 怎么 or 申请; the candidates' cosines are then
        computed exactly over all grams.
        """
        counts = Counter(features(text))
        known: list[tuple[int, float]] = []
        unknown = 0
        for gram, tf in counts.items():
            tid = self._term_ids.get(gram)
            if tid is None:
                # Unknown Chinese counts against the match; stray Latin letters ("how to apply") do not.
                unknown += any(is_cjk(c) for c in gram)
                continue
            known.append((tid, (1.0 + math.log(tf)) * float(self._idf[tid])))
        if not known:
            return []
        # The query norm counts unknown grams too, so a question mostly about something
        # the knowledge base never mentions scores low.
        max_idf = float(self._idf.max())
        norm = math.sqrt(sum(w * w for _, w in known) + unknown * max_idf * max_idf)
        starts, ends = self._post_start, self._post_start[1:]
        known.sort(key=lambda tw: int(ends[tw[0]] - starts[tw[0]]))
        chosen: list[tuple[int, float]] = []
        budget = 0
        for tid, qw in known:
            size = int(ends[tid] - starts[tid])
            if chosen and len(chosen) >= 2 and budget + size > _POSTINGS_BUDGET:
                break
            chosen.append((tid, qw))
            budget += size
        doc_parts = [self._post_docs[starts[t] : ends[t]] for t, _ in chosen]
        w_parts = [self._post_w[starts[t] : ends[t]] * (qw / norm) for t, qw in chosen]
        docs = np.concatenate(doc_parts)
        uniq, inverse = np.unique(docs, return_inverse=True)
        partial = np.bincount(inverse, weights=np.concatenate(w_parts))
        k = min(limit, len(uniq))
        top = uniq[np.argpartition(partial, -k)[-k:]] if k < len(uniq) else uniq
        if len(chosen) == len(known):
            exact = partial[np.searchsorted(uniq, top)]
        else:
            exact = self._exact_cosines(top, known, norm)
        order = np.argsort(-exact)
        return [(int(top[i]), float(exact[i])) for i in order if exact[i] > 0]

    def _exact_cosines(self, docs: np.ndarray, query: list[tuple[int, float]], norm: float) -> np.ndarray:
        qdense = np.zeros(len(self._term_ids), dtype=np.float32)
        for tid, qw in query:
            qdense[tid] = qw / norm
        starts = self._doc_start[docs]
        lengths = self._doc_start[docs + 1] - starts
        idx = np.repeat(starts - np.cumsum(np.concatenate([[0], lengths[:-1]])), lengths) + np.arange(
            lengths.sum()
        )
        contrib = self._doc_w[idx] * qdense[self._doc_terms[idx]]
        return np.add.reduceat(contrib, np.concatenate([[0], np.cumsum(lengths)[:-1]]))

    def _score_entries(self, text: str) -> list[_Scored]:
        by_entry: dict[int, _Scored] = {}
        for doc, cos in self._retrieve(text, limit=60):
            ei = int(self._doc_entry[doc])
            cur = by_entry.get(ei)
            if cur is None:
                if len(by_entry) >= 12:
                    continue
                cur = by_entry[ei] = _Scored(ei)
            cur.cosine = max(cur.cosine, cos)
        for sc in by_entry.values():
            best_q, best_f = "", 0.0
            for q in self._entry_questions[sc.entry_idx]:
                f = fuzz.ratio(text, q) / 100.0
                if f > best_f:
                    best_q, best_f = q, f
            sc.fuzzy = best_f
            sc.best_question = best_q
            sc.score = W_COSINE * sc.cosine + W_FUZZY * sc.fuzzy
        return sorted(by_entry.values(), key=lambda s: s.score, reverse=True)

    def _unexplained(self, text: str, terms: set[str], entry_idx: int) -> float:
        """Share of the question's own content characters the entry's questions never use."""
        rest = text
        for t in sorted(terms, key=len, reverse=True):
            rest = rest.replace(t, "")
        for w in _TEMPLATE_WORD_SET:
            rest = rest.replace(w, "")
        own = [c for c in rest if is_cjk(c) and c not in _TEMPLATE_CHARS]
        if len(own) < 2:
            return 0.0
        chars = self._entry_chars[entry_idx]
        missing = sum(1 for c in own if c not in chars)
        return missing / len(own)

    def _gate(self, sc: _Scored, text: str, q_terms: set[str]) -> str:
        """Empty string when the entry may answer; otherwise the reason it may not."""
        th = self.thresholds
        entry_terms = self._entry_terms[sc.entry_idx]
        if q_terms and self.entries[sc.entry_idx].topic == GREETING_TOPIC:
            # A question naming a policy is never answered with small talk.
            own = {self.vocabulary.canonicalize(clean(k)) for k in self.entries[sc.entry_idx].keywords}
            if not q_terms <= own:
                return "off_topic"
        if q_terms:
            if not (q_terms & entry_terms):
                return "off_topic"
        elif entry_terms and sc.fuzzy < th.sure:
            # The question names no subject the knowledge base knows; only a near-verbatim
            # match of a known question may answer.
            return "no_topic"
        if self._unexplained(text, q_terms, sc.entry_idx) > th.max_unexplained and sc.fuzzy < th.sure:
            return "unexplained"
        return ""

    def match(self, question: str) -> MatchResult:
        started = time.perf_counter()
        result = self._match(question)
        return MatchResult(
            question=question,
            outcome=result.outcome,
            entry=result.entry,
            score=result.score,
            candidates=result.candidates,
            reason=result.reason,
            normalized=result.normalized,
            elapsed_ms=(time.perf_counter() - started) * 1000,
        )

    def _result(
        self,
        question: str,
        outcome: str,
        reason: str,
        norm: str,
        scored: Sequence[_Scored],
        entry: Entry | None,
    ) -> MatchResult:
        cands = tuple(
            Candidate(
                entry_id=self.entries[s.entry_idx].id,
                question=self.entries[s.entry_idx].questions[0],
                score=s.score,
                topic=self.entries[s.entry_idx].topic,
            )
            for s in scored[:3]
        )
        score = scored[0].score if scored else 0.0
        if entry is not None and scored:
            score = scored[0].score
        return MatchResult(question, outcome, entry, score, cands, reason, norm)

    def _match(self, question: str) -> MatchResult:
        th = self.thresholds
        vocab = self.vocabulary
        cleaned = clean(question or "")
        core = vocab.prepare(strip_filler(cleaned))
        full = vocab.prepare(cleaned)
        if not cleaned:
            return self._result(question, CLARIFY, "empty", "", [], None)
        q_terms = vocab.terms_in(core)
        own = [c for c in core if is_cjk(c) and c not in _TEMPLATE_CHARS]
        meaningful = bool(q_terms) or (
            content_chars(core) >= th.min_content_chars and len(set(own)) >= th.min_content_chars
        )
        if not meaningful:
            # Greetings and thanks are all filler; match them on the unstripped text.
            scored = [s for s in self._score_entries(full) if s.fuzzy >= th.sure or s.score >= th.answer]
            greeting = [s for s in scored if self.entries[s.entry_idx].topic == GREETING_TOPIC]
            if greeting:
                return self._result(
                    question, ANSWER, "greeting", full, greeting, self.entries[greeting[0].entry_idx]
                )
            return self._result(question, CLARIFY, "junk" if cleaned else "empty", core, [], None)
        scored = self._score_entries(core)
        for sc in scored:
            sc.gated = self._gate(sc, core, q_terms)
        passing = [s for s in scored if not s.gated]
        if passing and passing[0].score >= th.answer:
            best = passing[0]
            rivals = [s for s in passing[1:] if s.score >= th.clarify and best.score - s.score < th.margin]
            if not rivals or best.fuzzy >= th.sure:
                return self._result(question, ANSWER, "match", core, passing, self.entries[best.entry_idx])
            return self._result(question, CLARIFY, "close", core, [best, *rivals], None)
        # Not sure enough to answer: offer what is on topic, including entries whose questions
        # do not explain all the citizen's words (their story), never off-topic ones.
        offer = [
            s
            for s in scored
            if s.score >= th.clarify
            and (
                not s.gated
                or s.gated == "unexplained"
                or (s.gated == "no_topic" and self._unexplained(core, q_terms, s.entry_idx) <= 0.5)
            )
        ]
        if offer:
            return self._result(question, CLARIFY, "unsure", core, offer, None)
        # A meaningful question we cannot answer well: a person should see it.
        on_topic = [s for s in scored if s.gated != "off_topic"] or scored
        return self._result(question, ESCALATE, "no_match", core, on_topic, None)
