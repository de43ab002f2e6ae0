"""Logging that never writes a citizen's ID-card, mobile or bank-card number.

Citizens type these numbers into their questions ("我的身份证号…", "电话 138 1234 5678"), and
they end up in log lines, exception messages and tracebacks. Everything a handler configured
here writes — the message, its arguments, the exception text and traceback, the stack, plain or
JSON — goes through :func:`mask` last, so no code path can forget it. ``PiiFilter`` does the
same to the record itself, for handlers whose formatter is not ours (a log shipper, pytest).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys
from typing import Any, TextIO

# Phones type full-width digits (１３８…); they are folded to ASCII first (one character for one,
# so nothing else in the line moves).
_FOLD = str.maketrans("０１２３４５６７８９Ｘｘ", "0123456789Xx")
_SEP = r"[ \-]"  # how people group digits: 138 1234 5678, 6222-0212-3456-7890
_B, _A = r"(?<![0-9])", r"(?![0-9Xx])"  # a number is not part of a longer one

# Longest forms first, so an 18-digit ID is not reported as a phone and some digits.
_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    # Resident ID card: 17 digits and a check character (digit or X); also grouped 6-8-4.
    ("ID", re.compile(rf"{_B}(?:[0-9]{{17}}|[0-9]{{6}}{_SEP}[0-9]{{8}}{_SEP}[0-9]{{3}})[0-9Xx]{_A}")),
    # Bank card: 16–19 digits, also in groups of four.
    (
        "CARD",
        re.compile(rf"{_B}(?:[0-9]{{16,19}}|[0-9]{{4}}(?:{_SEP}[0-9]{{4}}){{3}}(?:{_SEP}?[0-9]{{1,3}})?){_A}"),
    ),
    # Mainland mobile: 1[3-9] and 9 more digits, maybe after +86 / 86; also grouped 3-4-4.
    (
        "PHONE",
        re.compile(rf"{_B}(?:\+?86{_SEP}?)?1[3-9](?:[0-9]{{9}}|[0-9]{_SEP}[0-9]{{4}}{_SEP}[0-9]{{4}})(?![0-9])"),
    ),
)


def mask(text: str) -> str:
    """``text`` with each ID-card, bank-card and mobile number replaced by [ID], [CARD], [PHONE]."""
    if not text or not any(ch.isdigit() for ch in text):
        return text
    text = text.translate(_FOLD)
    for label, pattern in _PATTERNS:
        text = pattern.sub(f"[{label}]", text)
    return text


def _mask_value(value: Any) -> Any:
    """An ``extra=`` value for JSON output: numbers stay numbers unless they are PII."""
    if value is None or isinstance(value, (bool, float)):
        return value
    if isinstance(value, int):
        masked = mask(str(value))
        return value if masked == str(value) else masked
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {str(k): _mask_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_mask_value(v) for v in value]
    return mask(str(value))


class PiiFilter(logging.Filter):
    """Masks the record in place: message with its arguments, exception text and stack.

    Attach it to a handler (handler filters see records from every logger, logger filters do not).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a wrong format string: leave it to logging's own error report
            return True
        record.msg, record.args = mask(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask(record.exc_text)
        if record.stack_info:
            record.stack_info = mask(record.stack_info)
        return True


class SafeFormatter(logging.Formatter):
    """A plain formatter whose every output (traceback and stack included) is masked."""

    def formatException(self, ei: Any) -> str:
        return mask(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return mask(super().formatStack(stack_info))

    def format(self, record: logging.LogRecord) -> str:
        return mask(super().format(record))


# Attributes every LogRecord has; anything else was passed with ``extra=`` and goes into JSON.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(SafeFormatter):
    """One JSON object a line (time, level, logger, message, exception, stack, extras), masked."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": mask(record.getMessage()),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            data["exception"] = mask(record.exc_text)
        if record.stack_info:
            data["stack"] = self.formatStack(record.stack_info)
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRS and not key.startswith("_"):
                data[key] = _mask_value(value)
        # ensure_ascii=False: a \\uFF11 escape would hide a full-width digit from the mask.
        return mask(json.dumps(data, ensure_ascii=False, default=str))


PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def build_handler(log_format: str = "plain", stream: TextIO | None = None) -> logging.Handler:
    """A stream handler (stderr by default) with the masking formatter and filter."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(SafeFormatter(PLAIN_FORMAT))
    handler.addFilter(PiiFilter())
    return handler


def configure_logging(level: str = "INFO", log_format: str = "plain", stream: TextIO | None = None) -> None:
    """Replace the root logger's handlers with one masking handler (``LOG_FORMAT`` plain or json)."""
    if log_format not in ("plain", "json"):
        raise ValueError(f"log format must be plain or json, not {log_format!r}")
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(build_handler(log_format, stream))
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
