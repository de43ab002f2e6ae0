"""The command line as admins use it: ask, batch ask, import, export."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(args: list[str], tmp_path: Path, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'db' / 'hotline.db'}")
    env.pop("BOT_TOKEN", None)
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), *args],
        input=stdin,
        capture_output=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )


def test_ask_seeds_an_empty_database_and_answers(tmp_path: Path) -> None:
    out = run(["ask", "低保怎么申请"], tmp_path)
    assert out.returncode == 0, out.stderr.decode()
    text = out.stdout.decode()
    assert "outcome: answer" in text
    assert "乡镇" in text
    assert (tmp_path / "db" / "hotline.db").exists()


def test_batch_json_gives_one_line_per_input_line_whatever_it_holds(tmp_path: Path) -> None:
    lines = [
        "低保怎么申请".encode(),
        b"",
        b"   ",
        "😀😀😀".encode(),
        ("长" * 10_000).encode(),
        b"\x00\x1b[31m control",
        b"\xff\xfe\xfd invalid utf-8",
        b"'; DROP TABLE kb_entries; --",
        "低保 apply how 申請".encode(),
    ]
    out = run(["ask", "--json", "-"], tmp_path, stdin=b"\n".join(lines) + b"\n")
    assert out.returncode == 0, out.stderr.decode()
    assert b"Traceback" not in out.stderr
    rows = [json.loads(line) for line in out.stdout.decode().splitlines()]
    assert len(rows) == len(lines)
    for row in rows:
        assert set(row) == {"question", "outcome", "entry_id", "answer", "score", "candidates"}
        assert row["outcome"] in ("answer", "clarify", "escalate")
    assert rows[0]["outcome"] == "answer"
    assert [r["outcome"] for r in rows[1:4]] == ["clarify"] * 3


def test_import_export_round_trip_through_the_database(tmp_path: Path) -> None:
    assert run(["kb", "import", str(ROOT / "knowledge" / "data")], tmp_path).returncode == 0
    out = run(["kb", "export", str(tmp_path / "export")], tmp_path)
    assert out.returncode == 0, out.stderr.decode()
    again = run(["kb", "import", str(tmp_path / "export")], tmp_path)
    assert again.returncode == 0
    assert b"0 new, 0 changed" in again.stdout
    from knowledge.entries import load

    original = load(ROOT / "knowledge" / "data")
    exported = load(tmp_path / "export")
    assert sorted(original.entries, key=lambda e: e.id) == sorted(exported.entries, key=lambda e: e.id)
    assert original.aliases == exported.aliases


def test_import_refuses_an_invalid_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("- id: x\n  topic: 低保\n", encoding="utf-8")
    out = run(["kb", "import", str(bad)], tmp_path)
    assert out.returncode == 1
    assert b"not imported" in out.stdout


def test_a_malformed_setting_is_named_and_exits_2(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("STAFF_CHAT_ID=not-a-number\n", encoding="utf-8")
    out = run(["ask", "低保"], tmp_path)
    assert out.returncode == 2
    assert b"STAFF_CHAT_ID" in out.stderr
    assert b"Traceback" not in out.stderr
