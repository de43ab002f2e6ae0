from knowledge.normalize import clean, normalize, strip_filler, to_simplified


def test_full_width_becomes_half_width_and_lower_case() -> None:
    assert clean("ＡＢＣ１２３") == "abc123"


def test_traditional_becomes_simplified() -> None:
    assert to_simplified("申請低保需要什麼條件") == "申请低保需要什么条件"
    assert normalize("醫療救助怎麼申請？") == "医疗救助怎么申请"


def test_punctuation_emoji_and_control_characters_are_dropped() -> None:
    assert clean("低保，怎么申请？！😀\x00\x07") == "低保怎么申请"
    assert clean("\u3000 低 保 ") == "低保"


def test_spaces_kept_only_between_ascii_words() -> None:
    assert clean("dibao  shenqing") == "dibao shenqing"
    assert clean("低保 apply 条件") == "低保apply条件"


def test_filler_words_are_stripped() -> None:
    assert normalize("你好，请问一下低保怎么申请啊？谢谢") == "低保怎么申请"
    assert strip_filler("在吗") == ""


def test_very_long_input_is_capped() -> None:
    assert len(clean("低保" * 10_000)) <= 300
