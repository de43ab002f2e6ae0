"""Logs never hold a citizen's ID-card, mobile or bank-card number: message, arguments,
exceptions and tracebacks, plain or JSON, and a real handler error in the running bot."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.logsafe import JsonFormatter, PiiFilter, build_handler, configure_logging, mask
from bot.settings import Settings, SettingsError, load_settings
from tests.harness import Harness

try:
    from tests.fake_telegram import FakeTelegram
except ImportError:  # pragma: no cover
    from fake_telegram import FakeTelegram

PHONE = "13812345678"
ID_CARD = "53232819900101123X"
BANK_CARD = "6222021234567890123"
SECRETS = (PHONE, ID_CARD, BANK_CARD, "1234 5678", "0101123")


def _clean(text: str) -> bool:
    return not any(s in text for s in SECRETS)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (f"电话{PHONE}谢谢", "电话[PHONE]谢谢"),
        ("电话 138 1234 5678", "电话 [PHONE]"),
        ("+86 138-1234-5678", "[PHONE]"),
        (f"86{PHONE}", "[PHONE]"),
        ("１３８１２３４５６７８", "[PHONE]"),  # full-width digits typed on a phone
        (f"身份证{ID_CARD}号", "身份证[ID]号"),
        ("身份证号532328199001011234", "身份证号[ID]"),
        ("532328 19900101 123x", "[ID]"),
        (f"卡号{BANK_CARD}", "卡号[CARD]"),
        ("卡号 6222 0212 3456 7890", "卡号 [CARD]"),
        ("6222020212345678", "[CARD]"),
    ],
)
def test_personal_numbers_are_masked(raw: str, expected: str) -> None:
    assert mask(raw) == expected


@pytest.mark.parametrize(
    "text",
    [
        "update 812345678 from chat -1001234567890 took 35 ms",  # Telegram ids stay readable
        "ticket #42, user 5001, 12345678901",  # 11 digits that are not a mobile number
        "2026-01-05 10:11:12,345",
        "138123456789",  # 12 digits: not a phone number
        "12345678901234567890",  # 20 digits: none of the three
    ],
)
def test_ordinary_numbers_are_left_alone(text: str) -> None:
    assert mask(text) == text


@pytest.fixture
def capture() -> Iterator[tuple[logging.Logger, io.StringIO, logging.Handler]]:
    stream = io.StringIO()
    handler = build_handler("plain", stream)
    logger = logging.getLogger("test.logsafe")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield logger, stream, handler
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


def _raise_with_phone() -> None:
    citizen_text = "我的电话是" + PHONE
    raise ValueError(f"cannot parse {citizen_text!r}")


def test_message_and_arguments_are_masked(capture: Any) -> None:
    logger, stream, _h = capture
    logger.info("citizen %s gave card %s", PHONE, BANK_CARD)
    logger.warning("id " + ID_CARD)
    logger.info("a dict %s", {"phone": PHONE})
    out = stream.getvalue()
    assert _clean(out)
    assert "citizen [PHONE] gave card [CARD]" in out and "id [ID]" in out and "[PHONE]" in out


def test_an_exception_whose_message_holds_a_phone_number_is_masked(capture: Any) -> None:
    logger, stream, _h = capture
    try:
        _raise_with_phone()
    except ValueError:
        logger.exception("handling failed for %s", ID_CARD)
    out = stream.getvalue()
    assert _clean(out), out
    assert "Traceback" in out and "ValueError: cannot parse" in out and "[PHONE]" in out
    assert "handling failed for [ID]" in out


def test_a_chained_exception_and_stack_info_are_masked(capture: Any) -> None:
    logger, stream, _h = capture
    try:
        try:
            _raise_with_phone()
        except ValueError as exc:
            raise RuntimeError(f"while serving {BANK_CARD}") from exc
    except RuntimeError:
        logger.error("failed", exc_info=True, stack_info=True)
    out = stream.getvalue()
    assert _clean(out), out
    assert "Stack (most recent call last)" in out and "RuntimeError: while serving [CARD]" in out


def test_json_lines_are_valid_and_masked() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("test.logsafe.json")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("asked %s", f"我的手机{PHONE}", extra={"citizen_phone": PHONE, "update_id": 812345678})
        try:
            _raise_with_phone()
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert _clean(stream.getvalue())
    assert lines[0]["message"] == "asked 我的手机[PHONE]" and lines[0]["level"] == "WARNING"
    assert lines[0]["citizen_phone"] == "[PHONE]" and lines[0]["update_id"] == 812345678
    assert "[PHONE]" in lines[1]["exception"] and "Traceback" in lines[1]["exception"]


def test_the_filter_masks_records_for_handlers_with_other_formatters() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))  # not ours
    handler.addFilter(PiiFilter())
    logger = logging.getLogger("test.logsafe.filter")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            _raise_with_phone()
        except ValueError:
            logger.exception("for %s", PHONE)
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    out = stream.getvalue()
    assert _clean(out) and "ERROR for [PHONE]" in out and "ValueError" in out


def test_configure_logging_replaces_root_handlers_and_checks_the_format() -> None:
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    stream = io.StringIO()
    try:
        configure_logging("INFO", "json", stream)
        assert len(root.handlers) == 1
        logging.getLogger("some.library").info("token for %s", PHONE)
        record = json.loads(stream.getvalue())
        assert record["logger"] == "some.library" and record["message"] == "token for [PHONE]"
        with pytest.raises(ValueError, match="plain or json"):
            configure_logging("INFO", "xml", stream)
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in saved:
            root.addHandler(h)
        root.setLevel(level)


def test_log_format_setting_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(_env_file=None, log_format="JSON").log_format == "json"  # type: ignore[call-arg]
    monkeypatch.setenv("LOG_FORMAT", "xml")
    with pytest.raises(SettingsError, match="LOG_FORMAT"):
        load_settings(_env_file=None)


# --- a real handler error in the running bot ------------------------------------------------


@pytest.fixture
async def server() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(token="123456:TEST-TOKEN") as fake:
        yield fake


@pytest.mark.parametrize("log_format", ["plain", "json"])
async def test_a_handler_error_in_the_bot_is_logged_masked(
    server: FakeTelegram, tmp_path: Path, log_format: str
) -> None:
    stream = io.StringIO()
    handler = build_handler(log_format, stream)
    root = logging.getLogger()
    root.addHandler(handler)
    h = Harness(server, f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    app = await h.start()

    async def broken_ask(session: Any, citizen: Any, text: str) -> Any:
        raise RuntimeError(f"could not handle {text!r}")

    app.conversation.ask = broken_ask  # type: ignore[method-assign]
    try:
        h.say(5001, f"我的手机{PHONE}，身份证{ID_CARD}，低保怎么申请")
        await h.reply_to(5001, "抱歉")  # the citizen is told, not left in silence
    finally:
        await h.stop()
        root.removeHandler(handler)
    out = stream.getvalue()
    assert "could not handle" in out and "RuntimeError" in out  # the error is in the log …
    assert "[PHONE]" in out and "[ID]" in out
    assert _clean(out), out  # … without the numbers
    if log_format == "json":
        failed = [json.loads(line) for line in out.splitlines() if "failed" in line]
        assert failed and "RuntimeError" in failed[0]["exception"]
