"""The web panel in a real headless Chromium (Playwright driving the system browser).

An admin made with ``main.py admin add`` signs in, edits an answer, tries it, saves, publishes it
from the review queue, and ``main.py ask`` (another process on the same database) gives the new
text. A <script> typed into an answer shows as text and runs nothing.

Chromium comes from the system (``apt-get install chromium``; .ci/run installs it); Playwright
never downloads a browser. Without the system browser the test is skipped, saying why.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
NAME, PASSWORD = "wang", "panel test password"
QUESTION = "低保怎么申请"
NEW_ANSWER = "（浏览器测试）低保申请：请带上户口簿和身份证，到户籍所在地乡镇人民政府提出书面申请。"
XSS = "<script>alert(1)</script><img src=x onerror=alert(2)>"

os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (dev extra)")
if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
    pytest.skip(
        f"no system Chromium at {CHROMIUM}: apt-get install -y chromium (or set CHROMIUM_PATH)",
        allow_module_level=True,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(db_url: str, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "WEB_", "ADMIN_", "REDIS_"))}
    env.pop("DATABASE_URL", None)
    env.update(
        DATABASE_URL=db_url,
        WEB_PORT=str(port),
        WEB_BASE_URL=f"http://127.0.0.1:{port}",
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    return env


def _main(
    args: list[str], env: dict[str, str], cwd: Path, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), *args],
        input=stdin,
        env=env,
        cwd=cwd,  # not the repository: no .env of a developer's is read
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def panel(tmp_path: Path) -> Iterator[tuple[str, dict[str, str], Path]]:
    """``main.py web`` on a free port over a fresh SQLite database with one admin account."""
    port = _free_port()
    env = _env(f"sqlite+aiosqlite:///{tmp_path / 'hotline.db'}", port)
    added = _main(["admin", "add", NAME], env, tmp_path, stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "web"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = proc.stderr.read() if proc.stderr else ""
                    raise AssertionError(f"panel did not start: {err}") from None
                time.sleep(0.1)
        yield base, env, tmp_path
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        assert code == 0, proc.stderr.read() if proc.stderr else ""


Panel = tuple[str, dict[str, str], Path]


def test_edit_publish_and_the_assistant_answers_with_the_new_text(panel: Panel) -> None:
    base, env, cwd = panel
    asked = _main(["ask", "--json", QUESTION], env, cwd)
    assert asked.returncode == 0, asked.stderr
    before = json.loads(asked.stdout)
    assert before["outcome"] == "answer" and NEW_ANSWER not in before["answer"]
    entry_id = before["entry_id"]

    dialogs: list[str] = []
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_page(locale="zh-CN")
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.set_default_timeout(15_000)

            # Not signed in: the panel sends us to the sign-in page, and back after it.
            page.goto(f"{base}/kb/{entry_id}/edit")
            assert "/signin" in page.url
            page.fill("input[name=name]", NAME)
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]:has-text('登录')")
            page.wait_for_url(f"{base}/kb/{entry_id}/edit")

            # Edit the answer; the try-it box shows the draft's answer (fetch, no reload).
            page.fill("textarea[name=answer]", NEW_ANSWER)
            page.fill("input[name=note]", "浏览器测试")
            page.fill("input[name=question]", QUESTION)
            page.evaluate("window.stillThisPage = true")
            page.click("button[value=try]")
            page.locator("#preview").get_by_text(NEW_ANSWER).wait_for()
            assert page.evaluate("window.stillThisPage === true")  # updated in place, no reload

            page.click("button[value=save]")
            page.wait_for_url(f"{base}/kb/{entry_id}?done=draft")
            assert "草稿已保存" in page.inner_text("main")

            # Publish from the review queue.
            page.goto(f"{base}/review")
            article = page.locator("article.review", has_text=entry_id)
            assert NEW_ANSWER in article.inner_text()
            article.locator("button:has-text('通过并发布')").click()
            page.wait_for_url(f"{base}/review?done=approved")

            after = _main(["ask", QUESTION], env, cwd)
            assert after.returncode == 0, after.stderr
            assert "outcome: answer" in after.stdout and entry_id in after.stdout
            assert NEW_ANSWER in after.stdout

            # An answer with markup is shown as the text it is, and nothing runs.
            page.goto(f"{base}/kb/{entry_id}/edit")
            page.fill("textarea[name=answer]", f"{NEW_ANSWER}\n{XSS}")
            page.click("button[value=save]")
            page.wait_for_url(f"{base}/kb/{entry_id}?done=draft")
            for path in (f"/kb/{entry_id}/diff", "/review"):
                page.goto(base + path)
                assert XSS in page.inner_text("main"), path
                assert page.locator("main script").count() == 0
                assert page.locator("main img").count() == 0
            page.wait_for_timeout(200)  # give an injected handler the chance to fire (it must not)
            assert dialogs == []

            # Sign out: the panel is closed again.
            page.click("header button:has-text('退出登录')")
            page.wait_for_url(f"{base}/signin?out=1")
            page.goto(f"{base}/kb")
            assert "/signin" in page.url
        finally:
            browser.close()
