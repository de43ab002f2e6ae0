"""The knowledge base's own vocabulary: aliases, topic words and pinyin-typo repair.

Citizens type on phones with pinyin input, so a wrong character usually sounds like the
right one (底保, 低报 → 低保; 就助 → 救助). Repair only ever produces words the knowledge
base itself uses, and only where the typed word shares a character with it, so ordinary
words are never "corrected" into policy terms.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

from pypinyin import Style, lazy_pinyin

from knowledge.normalize import clean, is_cjk

# Words that shape a question but say nothing about its subject. They are repaired like
# topic words (申清 → 申请) but never count as the topic a question is about.
TEMPLATE_WORDS = (
    "申请",
    "办理",
    "条件",
    "材料",
    "资料",
    "手续",
    "流程",
    "程序",
    "怎么",
    "怎样",
    "如何",
    "什么",
    "哪里",
    "需要",
    "可以",
    "多少",
    "多久",
    "时间",
    "标准",
    "要求",
    "审批",
    "审核",
    "地方",
    "地址",
    "电话",
    "补助",
    "补贴",
    "领取",
    "发放",
    "每个月",
    "每月",
    "能不能",
    "有没有",
    "是不是",
    "符合",
    "资格",
)

_INITIALS = ("zh", "ch", "sh")


def _fuzzy_syllable(syllable: str) -> str:
    """Fold the sound pairs that southwestern speakers and pinyin typists mix up."""
    s = syllable
    for init in _INITIALS:
        if s.startswith(init):
            s = s[0] + s[2:]
            break
    if s.startswith("n") and not s.startswith("ng"):
        s = "l" + s[1:]
    if s.endswith("ng") and len(s) > 2 and s[-3] in "aei":
        s = s[:-1]
    return s


@functools.lru_cache(maxsize=65536)
def char_sound(ch: str) -> str:
    """Toneless, accent-folded pinyin of one character (the character itself if not Chinese)."""
    if not is_cjk(ch):
        return ch
    return _fuzzy_syllable(lazy_pinyin(ch, style=Style.NORMAL)[0])


@functools.lru_cache(maxsize=65536)
def char_pinyin(ch: str) -> str:
    """Plain toneless pinyin of one character, as typed on a keyboard."""
    return lazy_pinyin(ch, style=Style.NORMAL)[0] if is_cjk(ch) else ch


def longest_matches(text: str, words: set[str] | dict[str, str], lengths: list[int]) -> list[tuple[int, str]]:
    """Leftmost-longest occurrences of known words in text: (position, word)."""
    found: list[tuple[int, str]] = []
    i, n = 0, len(text)
    while i < n:
        for length in lengths:
            if i + length <= n and text[i : i + length] in words:
                found.append((i, text[i : i + length]))
                i += length
                break
        else:
            i += 1
    return found


def word_sound(word: str) -> tuple[str, ...]:
    return tuple(char_sound(ch) for ch in word)


class Vocabulary:
    """Aliases → canonical terms, the set of topic terms, and homophone repair."""

    def __init__(self, aliases: dict[str, list[str]], topic_terms: Iterable[str]) -> None:
        self.alias_to_term: dict[str, str] = {}
        for term, synonyms in aliases.items():
            canon = clean(term)
            if not canon:
                continue
            for syn in synonyms:
                s = clean(syn)
                if len(s) >= 2 and s != canon:
                    self.alias_to_term.setdefault(s, canon)
        self.topic_terms: set[str] = {clean(t) for t in topic_terms if len(clean(t)) >= 2}
        self.topic_terms.update(clean(t) for t in aliases if len(clean(t)) >= 2)
        terms_for_repair = self.topic_terms | set(self.alias_to_term) | {clean(w) for w in TEMPLATE_WORDS}
        self.known_words: set[str] = {w for w in terms_for_repair if all(is_cjk(c) for c in w)}
        self._by_sound: dict[tuple[str, ...], list[str]] = {}
        self._by_pinyin_word: dict[str, str] = {}
        for w in sorted(self.known_words):
            self._by_sound.setdefault(word_sound(w), []).append(w)
            self._by_pinyin_word.setdefault("".join(char_pinyin(c) for c in w), w)
        self._lengths = sorted({len(w) for w in self.known_words}, reverse=True)
        self._term_lengths = sorted({len(t) for t in self.topic_terms}, reverse=True)
        self._alias_lengths = sorted({len(a) for a in self.alias_to_term}, reverse=True)

    def canonicalize(self, text: str) -> str:
        """Replace every alias with its canonical term (longest alias first)."""
        if not self._alias_lengths:
            return text
        out: list[str] = []
        last = 0
        for pos, alias in longest_matches(text, self.alias_to_term, self._alias_lengths):
            out.append(text[last:pos])
            out.append(self.alias_to_term[alias])
            last = pos + len(alias)
        out.append(text[last:])
        return "".join(out)

    def repair(self, text: str) -> str:
        """Replace pinyin-input typos of known words with the known word."""
        text = self._repair_ascii_pinyin(text)
        if not self._lengths or len(text) < 2:
            return text
        chars = list(text)
        sounds = [char_sound(c) for c in chars]
        i = 0
        out: list[str] = []
        n = len(chars)
        while i < n:
            replaced = False
            for length in self._lengths:
                if i + length > n:
                    continue
                window = "".join(chars[i : i + length])
                if window in self.known_words:
                    out.append(window)
                    i += length
                    replaced = True
                    break
                options = self._by_sound.get(tuple(sounds[i : i + length]))
                if not options:
                    continue
                best = max(options, key=lambda w: sum(a == b for a, b in zip(w, window, strict=True)))
                shared = sum(a == b for a, b in zip(best, window, strict=True))
                if shared >= max(1, length - 2):
                    out.append(best)
                    i += length
                    replaced = True
                    break
            if not replaced:
                out.append(chars[i])
                i += 1
        return "".join(out)

    def _repair_ascii_pinyin(self, text: str) -> str:
        """'dibao怎么申请' → '低保怎么申请': whole pinyin words typed without conversion."""
        if not self._by_pinyin_word or not any("a" <= c <= "z" for c in text):
            return text

        def swap(m: re.Match[str]) -> str:
            word = m.group(0)
            return self._by_pinyin_word.get(word, word)

        return re.sub(r"[a-z]{4,}", swap, text).replace(" ", "") if re.search(r"[a-z]{4,}", text) else text

    def terms_in(self, text: str) -> set[str]:
        """The topic terms a (canonicalised) text mentions."""
        return {w for _, w in longest_matches(text, self.topic_terms, self._term_lengths)}

    def prepare(self, text: str) -> str:
        """Canonicalise aliases, repair typos, canonicalise again (a repair can form an alias)."""
        return self.canonicalize(self.repair(self.canonicalize(text)))
