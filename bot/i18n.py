"""Translations: Chinese is the source language (msgids), English is in locales/en.

Catalogues are gettext .po files read with Babel at start-up (no compiled .mo files to keep
in sync). The current locale lives in a context variable, set per update by a middleware
and by the terminal chat, so services can call ``_()`` without knowing who asked.
"""

from __future__ import annotations

import contextvars
import functools
import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

LOCALES_DIR = Path(__file__).parent / "locales"
DOMAIN = "messages"
DEFAULT_LOCALE = "zh"
SUPPORTED = ("zh", "en")

_current: contextvars.ContextVar[str] = contextvars.ContextVar("locale", default=DEFAULT_LOCALE)


@functools.lru_cache(maxsize=8)
def translations(locale: str) -> NullTranslations:
    po = LOCALES_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"
    if locale == DEFAULT_LOCALE or not po.exists():
        return NullTranslations()
    with po.open("rb") as fh:
        catalog = read_po(fh, locale=locale)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return Translations(fp=buf, domain=DOMAIN)


def pick_locale(language_code: str | None, default: str = DEFAULT_LOCALE) -> str:
    """The user's Telegram language if we have it, else the default (Chinese)."""
    if language_code:
        base = language_code.split("-")[0].lower()
        if base in SUPPORTED:
            return base
    return default


def set_locale(locale: str) -> contextvars.Token[str]:
    return _current.set(locale if locale in SUPPORTED else DEFAULT_LOCALE)


def current_locale() -> str:
    return _current.get()


@contextmanager
def use_locale(locale: str) -> Iterator[None]:
    token = set_locale(locale)
    try:
        yield
    finally:
        _current.reset(token)


def _(message: str, **params: object) -> str:
    """Translate ``message`` into the current locale and fill ``{name}`` parameters."""
    text = translations(_current.get()).gettext(message)
    return text.format(**params) if params else text


def ngettext(singular: str, plural: str, n: int, **params: object) -> str:
    text = translations(_current.get()).ngettext(singular, plural, n)
    return text.format(n=n, **params)


def lazy(message: str) -> str:
    """Mark a string for extraction where it is defined; translate it with _() where it is used."""
    return message
