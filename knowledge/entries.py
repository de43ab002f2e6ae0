"""Knowledge entries and the YAML interchange format (load, validate, dump).

Pure data handling: no database, no Telegram. Validation reports problems with file and
line so an admin can fix a hand-edited file.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

ENTRY_FIELDS = ("id", "topic", "questions", "answer", "source", "updated", "keywords", "status")
REQUIRED_FIELDS = ("id", "topic", "questions", "answer", "source", "updated")
STATUSES = ("draft", "published", "archived")
MAX_ANSWER_CHARS = 3500
ALIASES_KEY = "aliases"
ALIASES_FILE = "aliases.yaml"
# Short enough to fit Telegram's 64-byte callback data with room for the rest.
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{1,39}$")


def valid_id(entry_id: str) -> bool:
    """An entry id is a lower-case ASCII slug of 2–40 characters (it travels in callback data)."""
    return bool(_ID_RE.match(entry_id))


@dataclass(frozen=True)
class Entry:
    """One curated answer: several ways to ask, one answer, where its facts come from."""

    id: str
    topic: str
    questions: tuple[str, ...]
    answer: str
    source: str
    updated: dt.date
    keywords: tuple[str, ...] = ()
    status: str = "published"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "topic": self.topic,
            "questions": list(self.questions),
            "answer": self.answer,
            "source": self.source,
            "updated": self.updated,
        }
        if self.keywords:
            data["keywords"] = list(self.keywords)
        if self.status != "published":
            data["status"] = self.status
        return data

    def with_status(self, status: str) -> Entry:
        return replace(self, status=status)


@dataclass(frozen=True)
class Problem:
    """A validation finding, printable as ``file:line: message``."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass
class KnowledgeBundle:
    """What an import reads: entries, the alias table, and where each entry was found."""

    entries: list[Entry] = field(default_factory=list)
    aliases: dict[str, list[str]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    locations: dict[str, tuple[str, int]] = field(default_factory=dict)


def _yaml_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    return [path]


def _parse_date(value: Any) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            return None
    return None


def _str_list(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
        return [str(v) for v in value]
    return None


def _construct(node: yaml.Node) -> Any:
    return yaml.constructor.SafeConstructor().construct_object(node, deep=True)


def _read_aliases(node: yaml.MappingNode, name: str, bundle: KnowledgeBundle) -> None:
    for key_node, value_node in node.value:
        if _construct(key_node) != ALIASES_KEY:
            bundle.problems.append(Problem(name, key_node.start_mark.line + 1, "unknown key in alias file"))
            continue
        if not isinstance(value_node, yaml.MappingNode):
            bundle.problems.append(
                Problem(name, value_node.start_mark.line + 1, "aliases must map a term to a list")
            )
            continue
        for term_node, syn_node in value_node.value:
            term = str(_construct(term_node)).strip()
            synonyms = _str_list(_construct(syn_node))
            if not term or synonyms is None:
                bundle.problems.append(
                    Problem(name, term_node.start_mark.line + 1, "alias needs a term and a list of synonyms")
                )
                continue
            merged = bundle.aliases.setdefault(term, [])
            merged.extend(s.strip() for s in synonyms if s.strip() and s.strip() not in merged)


def _read_entry(node: yaml.Node, name: str, bundle: KnowledgeBundle) -> Entry | None:
    line = node.start_mark.line + 1
    if not isinstance(node, yaml.MappingNode):
        bundle.problems.append(Problem(name, line, "an entry must be a mapping of fields"))
        return None
    raw: dict[str, Any] = {}
    lines: dict[str, int] = {}
    for key_node, value_node in node.value:
        key = str(_construct(key_node))
        key_line = key_node.start_mark.line + 1
        if key in raw:
            bundle.problems.append(Problem(name, key_line, f"field '{key}' given twice"))
        if key not in ENTRY_FIELDS:
            bundle.problems.append(Problem(name, key_line, f"unknown field '{key}'"))
            continue
        raw[key] = _construct(value_node)
        lines[key] = key_line
    ok = True
    for req in REQUIRED_FIELDS:
        value = raw.get(req)
        if value is None or (isinstance(value, (str, list)) and not value):
            what = "empty answer" if req == "answer" and req in raw else f"missing {req}"
            if req == "source":
                what = "missing source (say where every fact comes from)"
            bundle.problems.append(Problem(name, lines.get(req, line), what))
            ok = False
    entry_id = str(raw.get("id", "")).strip()
    if entry_id and not _ID_RE.match(entry_id):
        bundle.problems.append(
            Problem(name, lines.get("id", line), f"id '{entry_id}' must be an ascii slug, max 40")
        )
        ok = False
    questions = _str_list(raw.get("questions"))
    if questions is None or not [q for q in questions if q.strip()]:
        if "questions" in raw:
            bundle.problems.append(Problem(name, lines["questions"], "questions must be a list of text"))
        ok = False
    answer = raw.get("answer")
    if isinstance(answer, str):
        if not answer.strip():
            if raw.get("answer"):
                bundle.problems.append(Problem(name, lines["answer"], "empty answer"))
            ok = False
        elif len(answer) > MAX_ANSWER_CHARS:
            bundle.problems.append(
                Problem(
                    name, lines["answer"], f"answer has {len(answer)} characters (max {MAX_ANSWER_CHARS})"
                )
            )
            ok = False
    elif answer is not None:
        bundle.problems.append(Problem(name, lines["answer"], "answer must be text"))
        ok = False
    updated = _parse_date(raw.get("updated"))
    if "updated" in raw and updated is None:
        bundle.problems.append(Problem(name, lines["updated"], "updated must be a date like 2018-12-15"))
        ok = False
    keywords = _str_list(raw.get("keywords", []))
    if keywords is None:
        bundle.problems.append(Problem(name, lines["keywords"], "keywords must be a list of text"))
        ok = False
    status = str(raw.get("status", "published"))
    if status not in STATUSES:
        bundle.problems.append(
            Problem(name, lines.get("status", line), f"status must be one of {', '.join(STATUSES)}")
        )
        ok = False
    if not ok:
        return None
    assert questions is not None and updated is not None and keywords is not None
    return Entry(
        id=entry_id,
        topic=str(raw["topic"]).strip(),
        questions=tuple(q.strip() for q in questions if q.strip()),
        answer=str(answer).strip("\n"),
        source=str(raw["source"]).strip(),
        updated=updated,
        keywords=tuple(k.strip() for k in keywords if k.strip()),
        status=status,
    )


def read_file(path: Path, bundle: KnowledgeBundle) -> None:
    """Read one YAML file into ``bundle``: a list of entries, or an ``aliases:`` mapping."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        bundle.problems.append(Problem(name, 1, f"cannot read file: {exc}"))
        return
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        bundle.problems.append(Problem(name, (mark.line + 1) if mark else 1, f"YAML syntax error: {exc}"))
        return
    if root is None:
        return
    if isinstance(root, yaml.MappingNode):
        _read_aliases(root, name, bundle)
        return
    if not isinstance(root, yaml.SequenceNode):
        bundle.problems.append(Problem(name, 1, "a knowledge file holds a list of entries"))
        return
    for item in root.value:
        try:
            entry = _read_entry(item, name, bundle)
        except yaml.YAMLError as exc:
            bundle.problems.append(Problem(name, item.start_mark.line + 1, f"bad value: {exc}"))
            continue
        if entry is None:
            continue
        where = (name, item.start_mark.line + 1)
        if entry.id in bundle.locations:
            first = bundle.locations[entry.id]
            bundle.problems.append(
                Problem(name, where[1], f"duplicate id '{entry.id}' (first at {first[0]}:{first[1]})")
            )
            continue
        bundle.locations[entry.id] = where
        bundle.entries.append(entry)


def load(path: str | Path, *, question_key: Any = None) -> KnowledgeBundle:
    """Load a YAML file or a folder of them and validate the whole set.

    ``question_key`` maps a question to the form used to find the same question under two
    entries (the matcher's normalisation); plain stripped text when not given.
    """
    bundle = KnowledgeBundle()
    path = Path(path)
    if not path.exists():
        bundle.problems.append(Problem(str(path), 0, "no such file or folder"))
        return bundle
    for file in _yaml_files(path):
        read_file(file, bundle)
    check_questions(bundle, question_key)
    return bundle


def check_questions(bundle: KnowledgeBundle, question_key: Any = None) -> None:
    key = question_key or (lambda q: q.strip())
    seen: dict[str, str] = {}
    for entry in bundle.entries:
        for q in entry.questions:
            k = key(q)
            if not k:
                continue
            owner = seen.get(k)
            if owner is not None and owner != entry.id:
                path, line = bundle.locations.get(entry.id, ("?", 0))
                bundle.problems.append(
                    Problem(path, line, f"question '{q}' of '{entry.id}' is also a question of '{owner}'")
                )
            else:
                seen[k] = entry.id


class _Dumper(yaml.SafeDumper):
    pass


def _str_representer(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str_representer)


def dump_entries(entries: Iterable[Entry]) -> str:
    """Serialise entries as the interchange format (a YAML list)."""
    return yaml.dump(
        [e.to_dict() for e in entries],
        Dumper=_Dumper,
        allow_unicode=True,
        sort_keys=False,
        width=1000,
    )


def dump_aliases(aliases: dict[str, list[str]]) -> str:
    return yaml.dump(
        {ALIASES_KEY: {k: list(v) for k, v in aliases.items()}},
        Dumper=_Dumper,
        allow_unicode=True,
        sort_keys=False,
        width=1000,
    )


def topic_slug(topic: str, index: int) -> str:
    """A file name for a topic's export; ASCII so it survives any file system."""
    return f"topic-{index:02d}.yaml" if not topic.isascii() else f"{topic.lower()}.yaml"


def export(path: str | Path, entries: list[Entry], aliases: dict[str, list[str]]) -> list[Path]:
    """Write entries (and the alias table) to a .yaml file or a folder (one file per topic)."""
    path = Path(path)
    written: list[Path] = []
    if path.suffix in (".yaml", ".yml"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dump_entries(entries), encoding="utf-8")
        written.append(path)
        if aliases:
            alias_path = path.with_name(path.stem + ".aliases.yaml")
            alias_path.write_text(dump_aliases(aliases), encoding="utf-8")
            written.append(alias_path)
        return written
    path.mkdir(parents=True, exist_ok=True)
    topics: dict[str, list[Entry]] = {}
    for e in entries:
        topics.setdefault(e.topic, []).append(e)
    for i, (topic, items) in enumerate(topics.items(), start=1):
        file = path / topic_slug(topic, i)
        file.write_text(f"# {topic}\n" + dump_entries(items), encoding="utf-8")
        written.append(file)
    if aliases:
        file = path / ALIASES_FILE
        file.write_text(dump_aliases(aliases), encoding="utf-8")
        written.append(file)
    return written


def iter_questions(entries: Iterable[Entry]) -> Iterator[tuple[Entry, str]]:
    for e in entries:
        for q in e.questions:
            yield e, q
