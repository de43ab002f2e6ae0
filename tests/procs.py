"""The bot as its own process (``main.py run``), the way it runs in production, for tests."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class BotProcess:
    """``python main.py run ARGS`` with ``env`` on top of a clean environment; stop with SIGTERM."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.args, self.cwd = args, cwd
        base = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "WEBHOOK_", "HEALTH_"))}
        for key in ("DATABASE_URL", "REDIS_URL", "STAFF_CHAT_ID", "TELEGRAM_API_URL", "LOG_FORMAT"):
            base.pop(key, None)
        self.env = {**base, **env}
        self.proc: asyncio.subprocess.Process | None = None
        self.stderr = ""

    async def start(self) -> BotProcess:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "main.py"),
            "run",
            *self.args,
            env=self.env,
            cwd=self.cwd,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        return self

    async def wait_http(self, url: str, timeout: float = 60.0) -> None:
        """Until ``url`` answers 200 (the process is up), or fail with its stderr."""
        assert self.proc is not None
        deadline = asyncio.get_running_loop().time() + timeout
        async with aiohttp.ClientSession() as session:
            while True:
                if self.proc.returncode is not None:
                    raise AssertionError(f"bot exited {self.proc.returncode}: {await self._read_err()}")
                try:
                    async with session.get(url) as r:
                        if r.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                if asyncio.get_running_loop().time() > deadline:
                    self.proc.kill()
                    raise AssertionError(f"{url} did not answer: {await self._read_err()}")
                await asyncio.sleep(0.1)

    async def _read_err(self) -> str:
        assert self.proc is not None and self.proc.stderr is not None
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        self.stderr = (await self.proc.stderr.read()).decode("utf-8", "replace")
        return self.stderr[-3000:]

    async def wait(self, timeout: float = 60.0) -> int:
        """The exit code of a process that stops by itself."""
        assert self.proc is not None
        try:
            _out, err = await asyncio.wait_for(self.proc.communicate(), timeout)
        except TimeoutError:
            self.proc.kill()
            raise
        self.stderr = err.decode("utf-8", "replace")
        return int(self.proc.returncode or 0)

    async def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM, then the exit code (stderr kept in ``self.stderr``)."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        return await self.wait(timeout)

    async def __aenter__(self) -> BotProcess:
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


async def post_update(http: aiohttp.ClientSession, url: str, update: dict[str, Any], secret: str) -> int:
    """POST one update to a webhook URL as Telegram does (with the secret header); the HTTP status."""
    headers = {"X-Telegram-Bot-Api-Secret-Token": secret}
    async with http.post(url, json=update, headers=headers) as response:
        await response.read()
        return response.status
