"""End-to-end bot benchmark: updates a second one process sustains, and update-to-reply latency.

The real application (Dispatcher, long polling, SQLite, outbox) against the fake Bot API over
HTTP on 127.0.0.1. Telegram's own send limit (30 messages a second) is lifted for the run, so
the figures are the bot's capacity, not Telegram's.

    python benchmarks/bench_bot.py [updates] [rate]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.outbox import Limits
from tests.fake_telegram import FakeTelegram
from tests.harness import Harness

QUESTIONS = [
    "低保怎么申请",
    "特困供养需要什么条件",
    "临时救助要带什么材料",
    "医疗救助怎么申请",
    "你好",
    "低保",
]


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


async def run(total: int, rate: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with FakeTelegram(token="123456:TEST-TOKEN") as server:
            h = Harness(server, f"sqlite+aiosqlite:///{tmp}/bench.db")
            app = await h.start()
            app.sender.limits = Limits(global_per_second=1e6, private_per_second=1e6, private_burst=1e6)
            app.sender.batch_size = 200

            async def replies(first_chat: int, n: int, timeout: float) -> dict[int, float]:
                deadline = time.monotonic() + timeout
                got: dict[int, float] = {}
                while len(got) < n and time.monotonic() < deadline:
                    for c in server.sent:
                        if isinstance(c.chat_id, int) and first_chat <= c.chat_id < first_chat + n:
                            got.setdefault(c.chat_id, c.time)
                    await asyncio.sleep(0.02)
                return got

            # Warm up (index, connections).
            h.say(1, "低保怎么申请")
            await replies(1, 1, 10)

            # 1. Throughput: a burst of `total` updates from distinct citizens.
            base = 10_000
            start = time.monotonic()
            for i in range(total):
                h.say(base + i, QUESTIONS[i % len(QUESTIONS)])
            got = await replies(base, total, 120)
            elapsed = max(got.values()) - start
            print(
                f"throughput: {len(got)}/{total} replied in {elapsed:.2f} s "
                f"= {len(got) / elapsed:.0f} updates/s"
            )

            # 2. Latency at a steady `rate` updates a second for 10 s.
            base = 100_000
            n = int(rate * 10)
            sent_at: dict[int, float] = {}
            start = time.monotonic()
            for i in range(n):
                target = start + i / rate
                delay = target - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                sent_at[base + i] = time.monotonic()
                h.say(base + i, QUESTIONS[i % len(QUESTIONS)])
            got = await replies(base, n, 60)
            lat = [(got[c] - sent_at[c]) * 1000 for c in got]
            print(
                f"latency at {rate:.0f} updates/s: {len(got)}/{n} replied, "
                f"p50 {pct(lat, 50):.1f} ms, p99 {pct(lat, 99):.1f} ms, max {max(lat):.1f} ms"
            )
            await h.stop()


if __name__ == "__main__":
    args = [float(a) for a in sys.argv[1:]]
    asyncio.run(run(int(args[0]) if args else 2000, args[1] if len(args) > 1 else 100.0))
