"""The translation catalogues: the template matches the source, English is complete and usable."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from bot import i18n
from bot.i18n import _, pick_locale, use_locale

ROOT = Path(__file__).resolve().parents[1]
LOCALES = ROOT / "bot" / "locales"
POT = LOCALES / "messages.pot"
EN_PO = LOCALES / "en" / "LC_MESSAGES" / "messages.po"
PLACEHOLDER = re.compile(r"\{[^{}]*\}")


def _read(path: Path, locale: str | None = None):
    with path.open("rb") as fh:
        return read_po(fh, locale=locale)


def _msgids(catalog) -> set[str]:
    return {m.id if isinstance(m.id, str) else m.id[0] for m in catalog if m.id}


def _pybabel() -> list[str]:
    exe = Path(sys.executable).with_name("pybabel")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("pybabel")
    if found:
        return [found]
    return [sys.executable, "-m", "babel.messages.frontend"]


@pytest.fixture(autouse=True)
def _fresh_translations():
    i18n.translations.cache_clear()
    yield
    i18n.translations.cache_clear()


def test_pot_is_up_to_date(tmp_path: Path) -> None:
    out = tmp_path / "messages.pot"
    keywords = ["-k", "_", "-k", "lazy", "-k", "ngettext:1,2"]
    # The mapping file adds the web panel's Jinja2 templates to the Python sources.
    mapping = ["-F", str(LOCALES / "babel.cfg")]
    cmd = [*_pybabel(), "-q", "extract", *mapping, *keywords, "--no-location", "-o", str(out)]
    cmd += ["bot", "handlers"]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    fresh, committed = _msgids(_read(out)), _msgids(_read(POT))
    assert fresh == committed, (
        f"messages.pot is stale (see bot/locales/README.md); "
        f"new: {sorted(fresh - committed)}, gone: {sorted(committed - fresh)}"
    )


def test_every_msgid_has_english_translation() -> None:
    pot, po = _read(POT), _read(EN_PO, locale="en")
    problems = []
    for msg in pot:
        if not msg.id:
            continue
        tr = po.get(msg.id)
        if tr is None:
            problems.append(f"missing: {msg.id!r}")
        elif tr.fuzzy:
            problems.append(f"fuzzy: {msg.id!r}")
        elif not (all(tr.string) if isinstance(tr.string, tuple) else tr.string):
            problems.append(f"empty: {msg.id!r}")
    assert not problems, "\n".join(problems)


def test_placeholders_match() -> None:
    problems = []
    for msg in _read(EN_PO, locale="en"):
        if not msg.id:
            continue
        ids = msg.id if isinstance(msg.id, tuple) else (msg.id,)
        strings = msg.string if isinstance(msg.string, tuple) else (msg.string,)
        expected = sorted(PLACEHOLDER.findall(ids[0]))
        for s in strings:
            if sorted(PLACEHOLDER.findall(s)) != expected:
                problems.append(f"{ids[0]!r} -> {s!r}")
    assert not problems, "\n".join(problems)


def test_use_locale_switches_language() -> None:
    msgid = "您还没有工单。"
    english = _read(EN_PO, locale="en").get(msgid).string
    assert english and english != msgid
    with use_locale("en"):
        assert _(msgid) == english
        assert _("工单 #{id}", id=7) == "Ticket #7"
    assert _(msgid) == msgid
    assert _("工单 #{id}", id=7) == "工单 #7"


def test_pick_locale() -> None:
    assert pick_locale("en-US") == "en"
    assert pick_locale("en") == "en"
    assert pick_locale("zh-hans") == "zh"
    assert pick_locale("ru") == "zh"
    assert pick_locale(None) == "zh"
