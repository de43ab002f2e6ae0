"""End-to-end bot benchmark: updates a second one bot process sustains, and update-to-reply latency.

The bot runs as a real process (``python main.py run``, long polling, SQLite, outbox) against
the fake Bot API served over HTTP on 127.0.0.1 by this script, so the two do not share a CPU
core. Telegram's send limits (30 messages a second, 1 a second per chat, 20 a minute per group)
are lifted for the run (SEND_RATE_* settings), so the figures are the bot's capacity, not
Telegram's. At the end the bot gets SIGTERM and the time to a clean exit is reported.

    python benchmarks/bench_bot.py [burst_updates] [steady_rate]
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from tests.fake_telegram import FakeTelegram  # noqa: E402

TOKEN = "123456:BENCH-TOKEN"
# The development question set: 217 citizen phrasings (answers, clarifications, escalations with
# staff cards, junk), each asked by several citizens, as in a burst after an announcement.
QUESTIONS = [q["q"] for q in yaml.safe_load((ROOT / "tests" / "dev_questions.yaml").read_text("utf-8"))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), robust to other load on the machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


async def first_replies(
    server: FakeTelegram, first: int, n: int, timeout: float, poll: float = 0.01
) -> dict[int, float]:
    """When each chat in [first, first+n) got its first message."""
    deadline = time.monotonic() + timeout
    got: dict[int, float] = {}
    seen = 0
    while len(got) < n and time.monotonic() < deadline:
        calls = server.sent
        for c in calls[seen:]:
            if isinstance(c.chat_id, int) and first <= c.chat_id < first + n:
                got.setdefault(c.chat_id, c.time)
        seen = len(calls)
        await asyncio.sleep(poll)
    return got


async def run(total: int, rate: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with FakeTelegram(token=TOKEN) as server:
            env = dict(
                os.environ,
                BOT_TOKEN=TOKEN,
                TELEGRAM_API_URL=server.url,
                DATABASE_URL=f"sqlite+aiosqlite:///{tmp}/bench.db",
                STAFF_CHAT_ID="-100999",
                LOG_LEVEL="WARNING",
                SEND_RATE_PER_SECOND="1000000",
                SEND_RATE_PER_CHAT="1000000",
                SEND_RATE_PER_GROUP_MINUTE="1000000",
                FLOOD_MESSAGES_PER_MINUTE="1000",
            )
            proc = await asyncio.create_subprocess_exec(
                *os.environ.get("BENCH_PREFIX", sys.executable).split(),
                str(ROOT / "main.py"),
                "run",
                env=env,
                cwd=tmp,
            )
            try:
                server.push_message(1, "低保怎么申请")  # warm-up, and proof the bot is up
                if not await first_replies(server, 1, 1, 60):
                    raise SystemExit("the bot did not answer")

                await asyncio.sleep(2)  # start-up work (index, weekly report) out of the way
                base = 10_000
                cpu0 = cpu_seconds(proc.pid)
                start = time.monotonic()
                for i in range(total):
                    server.push_message(base + i, QUESTIONS[i % len(QUESTIONS)])
                got = await first_replies(server, base, total, 120)
                elapsed = max(got.values()) - start
                cpu = cpu_seconds(proc.pid) - cpu0
                print(
                    f"burst: {len(got)}/{total} updates replied in {elapsed:.2f} s "
                    f"= {len(got) / elapsed:.0f} updates/s; bot process CPU {cpu / total * 1000:.2f} ms "
                    f"an update = {total / cpu:.0f} updates/s on a core of its own"
                )

                # Let the burst's remaining messages (staff cards, second parts) go out first.
                while True:
                    before = len(server.sent)
                    await asyncio.sleep(1.0)
                    if len(server.sent) == before:
                        break
                base = 100_000
                n = int(rate * 10)
                sent_at: dict[int, float] = {}
                start = time.monotonic()
                for i in range(n):
                    delay = start + i / rate - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    sent_at[base + i] = time.monotonic()
                    server.push_message(base + i, QUESTIONS[i % len(QUESTIONS)])
                got = await first_replies(server, base, n, 60)
                lat = [(got[c] - sent_at[c]) * 1000 for c in got]
                print(
                    f"steady {rate:.0f} updates/s for 10 s: {len(got)}/{n} replied, "
                    f"p50 {pct(lat, 50):.1f} ms, p99 {pct(lat, 99):.1f} ms, max {max(lat):.1f} ms"
                )
            finally:
                t = time.monotonic()
                proc.send_signal(signal.SIGTERM)
                code = await asyncio.wait_for(proc.wait(), timeout=30)
                print(f"SIGTERM: exit code {code} after {time.monotonic() - t:.1f} s")


if __name__ == "__main__":
    args = [float(a) for a in sys.argv[1:]]
    asyncio.run(run(int(args[0]) if args else 2000, args[1] if len(args) > 1 else 100.0))
