import pytest

from knowledge.vocabulary import Vocabulary

ALIASES = {
    "低保": ["最低生活保障", "低保金", "吃低保"],
    "特困": ["特困供养", "五保", "五保户"],
    "医疗救助": ["看病救助", "大病救助"],
    "临时救助": ["急难救助"],
}
TERMS = ["低保", "特困", "医疗救助", "临时救助", "救助", "医疗", "信息公开", "一站式"]


@pytest.fixture(scope="module")
def vocab() -> Vocabulary:
    return Vocabulary(ALIASES, TERMS)


def test_aliases_become_the_canonical_term(vocab: Vocabulary) -> None:
    assert vocab.canonicalize("最低生活保障怎么申请") == "低保怎么申请"
    assert vocab.canonicalize("五保户能领多少") == "特困能领多少"
    assert vocab.canonicalize("大病救助") == "医疗救助"


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("底保怎么申请", "低保怎么申请"),
        ("低报怎么申请", "低保怎么申请"),
        ("低宝怎么申请", "低保怎么申请"),
        ("临时就助", "临时救助"),
        ("医料救助", "医疗救助"),
        ("申清低保", "申请低保"),
        ("特捆人员", "特困人员"),
    ],
)
def test_pinyin_typos_are_repaired_to_known_words(vocab: Vocabulary, typed: str, meant: str) -> None:
    assert vocab.prepare(typed) == meant


def test_words_sharing_no_character_are_not_repaired(vocab: Vocabulary) -> None:
    # 神情 sounds like 申请 but shares no character: a real word, left alone.
    assert vocab.prepare("神情") == "神情"
    assert vocab.prepare("今天天气怎么样") == "今天天气怎么样"


def test_pinyin_typed_without_conversion(vocab: Vocabulary) -> None:
    assert vocab.prepare("dibao怎么申请") == "低保怎么申请"


def test_topic_terms_found(vocab: Vocabulary) -> None:
    assert vocab.terms_in(vocab.prepare("吃低保的人看病救助怎么报")) >= {"低保", "医疗救助"}
