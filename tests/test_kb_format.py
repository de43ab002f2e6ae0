"""The YAML interchange format: validation with file and line, export/import round trip."""

import subprocess
import sys
from pathlib import Path

from knowledge.entries import export, load
from knowledge.normalize import normalize

ROOT = Path(__file__).resolve().parent.parent

BAD = """\
- id: dibao-apply
  topic: 低保
  questions: [低保怎么申请]
  answer: 向乡镇人民政府申请。
  source: 社会救助暂行办法
  updated: 2014-05-01
- id: dibao-apply
  topic: 低保
  questions: [低保去哪办]
  answer: 重复的编号。
  source: 社会救助暂行办法
  updated: 2014-05-01
- id: dibao-copy
  topic: 低保
  questions: [低保怎么申请？]
  answer: 同一个问题在两个条目下。
  source: 社会救助暂行办法
  updated: 2014-05-01
- id: no-answer
  topic: 低保
  questions: [空答案]
  answer: ""
  source: 社会救助暂行办法
  updated: 2014-05-01
- id: no-source
  topic: 低保
  questions: [没有出处]
  answer: 没有出处的答案。
  updated: 2014-05-01
- id: too-long
  topic: 低保
  questions: [很长的答案]
  answer: "{long}"
  source: 社会救助暂行办法
  updated: 2014-05-01
- id: unknown-field
  topic: 低保
  questions: [多余字段]
  answer: 有多余字段。
  source: 社会救助暂行办法
  updated: 2014-05-01
  colour: red
"""


def write_bad(tmp_path: Path) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD.replace("{long}", "长" * 3501), encoding="utf-8")
    return path


def test_validate_reports_each_problem_with_file_and_line(tmp_path: Path) -> None:
    path = write_bad(tmp_path)
    problems = [str(p) for p in load(path, question_key=normalize).problems]
    text = "\n".join(problems)
    assert f"{path}:7: duplicate id 'dibao-apply'" in text
    assert "also a question of 'dibao-apply'" in text
    assert f"{path}:22: empty answer" in text
    assert "missing source" in text
    assert "3501 characters" in text
    assert f"{path}:42: unknown field 'colour'" in text


def test_validate_command_exit_codes(tmp_path: Path) -> None:
    bad = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "kb", "validate", str(write_bad(tmp_path))],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert bad.returncode == 1
    assert "duplicate id" in bad.stdout
    good = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "kb", "validate", str(ROOT / "knowledge" / "data")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert good.returncode == 0, good.stdout
    assert good.stdout.startswith("OK")


def test_bundled_knowledge_base_is_valid() -> None:
    bundle = load(ROOT / "knowledge" / "data", question_key=normalize)
    assert not bundle.problems, "\n".join(map(str, bundle.problems))
    topics = {e.topic for e in bundle.entries}
    assert {"低保", "特困供养", "临时救助", "医疗救助", "信息公开", "联系与投诉", "转介", "寒暄"} <= topics
    assert all(len(e.questions) >= 5 for e in bundle.entries if e.topic != "寒暄")
    assert bundle.aliases


def test_file_export_then_import_is_lossless(tmp_path: Path) -> None:
    bundle = load(ROOT / "knowledge" / "data")
    export(tmp_path / "out", bundle.entries, bundle.aliases)
    again = load(tmp_path / "out")
    assert not again.problems
    assert sorted(again.entries, key=lambda e: e.id) == sorted(bundle.entries, key=lambda e: e.id)
    assert again.aliases == bundle.aliases
    export(tmp_path / "one.yaml", bundle.entries, bundle.aliases)
    single = load(tmp_path / "one.yaml")
    assert sorted(single.entries, key=lambda e: e.id) == sorted(bundle.entries, key=lambda e: e.id)
