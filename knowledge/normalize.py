"""Text normalisation for citizens' questions: one canonical form for matching.

NFKC (full-width to half-width), traditional to simplified (OpenCC), lower case, no
punctuation, symbols, emoji or control characters, and colloquial filler removed.
"""

from __future__ import annotations

import functools
import re
import unicodedata

# Longest first so that 请问一下 goes as one piece. Only words that never carry the meaning
# of a question; greetings are matched on the unstripped text (see Matcher).
FILLER_WORDS = tuple(
    sorted(
        {
            "请问一下",
            "请问",
            "问一下",
            "问下",
            "我想问一下",
            "我想问下",
            "我想问",
            "想问一下",
            "想问下",
            "想问",
            "我想咨询一下",
            "我想咨询",
            "咨询一下",
            "咨询下",
            "请教一下",
            "请教",
            "打扰一下",
            "打扰了",
            "打扰",
            "您好",
            "你好",
            "你们好",
            "在吗",
            "在不在",
            "谢谢你",
            "谢谢您",
            "谢谢",
            "多谢",
            "麻烦你",
            "麻烦您",
            "麻烦问一下",
            "麻烦",
            "一下子",
            "一下",
            "那个",
            "就是说",
            "领导",
            "同志",
            "老师",
            "师傅",
            "啊",
            "呀",
            "吗",
            "嘛",
            "呢",
            "吧",
            "哦",
            "喔",
            "嗯",
            "哈",
            "呵",
            "啦",
            "哎",
            "唉",
            "喂",
            "哇",
            "呐",
            "咧",
            "滴",
            "撒",
            "噻",
        },
        key=len,
        reverse=True,
    )
)
_FILLER_RE = re.compile("|".join(re.escape(w) for w in FILLER_WORDS))
_NON_WORD_RE = re.compile(r"[\W_]+")
_INNER_SPACE_RE = re.compile(r"(?<![a-z0-9]) | (?![a-z0-9])")
MAX_MATCH_CHARS = 300


@functools.lru_cache(maxsize=1)
def _t2s():
    import opencc

    return opencc.OpenCC("t2s")


def to_simplified(text: str) -> str:
    """Traditional to simplified Chinese, the way OpenCC's t2s profile does it."""
    return _t2s().convert(text) if text else text


def is_cjk(ch: str) -> bool:
    code = ord(ch)
    return 0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0xF900 <= code <= 0xFAFF


def clean(text: str) -> str:
    """NFKC, simplified, lower case; keep only letters and digits (spaces between ASCII words)."""
    if not text:
        return ""
    text = unicodedata.normalize("NFKC", text)
    # Cap the work a pasted essay can cause; a question fits well within this.
    text = text[: MAX_MATCH_CHARS * 4]
    text = to_simplified(text).lower()
    # Everything but letters and digits (punctuation, symbols, emoji, controls) splits words.
    joined = _NON_WORD_RE.sub(" ", text).strip()
    # Spaces matter only between ASCII words ("dibao shenqing"); drop the rest.
    joined = _INNER_SPACE_RE.sub("", joined)
    return joined[:MAX_MATCH_CHARS]


def strip_filler(text: str) -> str:
    """Remove filler words (请问, 你好, 谢谢, 一下, 啊 …) from cleaned text."""
    return _FILLER_RE.sub("", text).strip()


def normalize(text: str) -> str:
    """The full normalisation: clean, then strip filler."""
    return strip_filler(clean(text))


def content_chars(text: str) -> int:
    """How many characters could carry meaning (CJK, letters, digits)."""
    return sum(1 for ch in text if is_cjk(ch) or ch.isalnum())
