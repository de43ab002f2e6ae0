"""The terminal chat as a citizen uses it: `python main.py chat` / `start` without BOT_TOKEN."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.office_hours import OfficeHours
from bot.runtime import create_runtime
from bot.settings import Settings
from bot.tickets import StaffDesk

ROOT = Path(__file__).resolve().parent.parent
SESSION = "低保怎么申请\n婚姻登记需要带什么材料\n我再补充一句\n/mytickets\n"


def _db_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'db' / 'h.db'}"


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


def start(args: list[str], tmp_path: Path, stdin: str) -> Callable[[], Done]:
    """Start ``main.py`` now (the runs overlap: importing aiogram is slow); the result when asked."""
    env = dict(os.environ, DATABASE_URL=_db_url(tmp_path))
    env.pop("BOT_TOKEN", None)
    env.pop("STAFF_CHAT_ID", None)
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        env=env,
        cwd=tmp_path,
    )

    def result() -> Done:
        try:
            out, err = proc.communicate(stdin, timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        return Done(proc.returncode, out, err)

    return result


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Callable[[], Done]]]:
    chat_dir, start_dir = tmp_path_factory.mktemp("chat"), tmp_path_factory.mktemp("start")
    return {
        "chat": (chat_dir, start(["chat"], chat_dir, SESSION)),
        "start": (start_dir, start(["start"], start_dir, "你好\n")),
    }


async def test_terminal_chat_answers_escalates_and_staff_see_the_ticket(runs: dict) -> None:
    tmp_path, result = runs["chat"]
    out = result()
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    text = out.stdout
    # The answer to the first question, before the escalation.
    answer = text.split("> 婚姻登记需要带什么材料")[0].split("> 低保怎么申请")[1]
    assert "乡镇" in answer
    escalation = text.split("> 婚姻登记需要带什么材料")[1].split("> 我再补充一句")[0]
    assert "#1" in escalation
    follow_up = text.split("> 我再补充一句")[1].split("> /mytickets")[0]
    assert "#1" in follow_up and "#2" not in follow_up  # joined the same ticket
    mine = text.split("> /mytickets")[1]
    assert "#1" in mine and "婚姻登记" in mine

    settings = Settings(_env_file=None, database_url=_db_url(tmp_path), bot_token=None)  # type: ignore[call-arg]
    rt = await create_runtime(settings)
    try:
        desk = StaffDesk(-100, OfficeHours.parse(settings.office_hours, settings.timezone), 4.0)
        async with rt.sf() as session:
            queue = await desk.queue(session)
            detail = await desk.detail(session, 1)
    finally:
        await rt.close()
    assert "#1" in queue and "婚姻登记需要带什么材料" in queue
    assert "我再补充一句" in detail


def test_start_without_bot_token_says_so_and_runs_the_chat(runs: dict) -> None:
    _tmp_path, result = runs["start"]
    out = result()
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    mentions = [line for line in (out.stdout + out.stderr).splitlines() if "BOT_TOKEN" in line]
    assert len(mentions) == 1
    assert "> 你好" in out.stdout
    reply = out.stdout.split("> 你好")[1]
    assert reply.strip()
