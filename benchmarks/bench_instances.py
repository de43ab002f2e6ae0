"""Throughput and latency of the bot in webhook mode, one and two instances, SQLite and PostgreSQL.

Each configuration runs the bot as real processes (``python main.py run --webhook``) behind a
round-robin balancer in this script, which also serves the fake Bot API (tests/fake_telegram.py)
over HTTP on 127.0.0.1. Every update comes from a new citizen and asks a question from the
development set (answers, clarifications, escalations with staff cards), so the update's reply is
the first message in that citizen's chat.

- burst: N updates posted with at most 40 requests in flight (Telegram's default webhook
  max_connections); throughput = N / time until the last of them was replied to.
- steady: R updates a second for 10 s; latency = time from posting an update to its reply
  arriving at the fake Bot API (handling, commit, outbox, send): p50 and p99.
- CPU: the bot processes' own CPU time per update (Linux /proc) for the burst, until the last
  message it caused (staff cards included) was sent; and this script's (fake Bot API, balancer),
  which competes with them for the same cores.

Configurations: SQLite with one instance only (SQLite has one writer: several processes on one
file would queue on its lock, so it is not a multi-instance setup); PostgreSQL with one instance,
one instance with Redis, and two instances with Redis (Redis is what lets instances share FSM
state, per-chat order and flood counts). The baseline column is ``main.py run`` in long-polling
mode on SQLite, measured here in the same way as benchmarks/bench_bot.py does.

Telegram's send limits are lifted (SEND_RATE_* settings), so the figures are the bot's capacity.
Everything shares this machine's cores: the bot processes, PostgreSQL, Redis and this script
(fake Bot API and balancer); with two cores, a second instance cannot add a core of its own.

    python benchmarks/bench_instances.py [burst_updates] [steady_rate] [polling,sqlite,pg,pg-redis,pg-redis-2]

PostgreSQL and Redis from BENCH_DATABASE_URL (default TEST_DATABASE_URL, then
postgresql+asyncpg://postgres@127.0.0.1:5432/test: a throw-away database is created next to it
and dropped afterwards) and BENCH_REDIS_URL (default TEST_REDIS_URL, then redis://127.0.0.1:6379/0;
keys under a throw-away prefix, deleted afterwards). Configurations whose server does not answer
are skipped with a note.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from benchmarks.bench_bot import QUESTIONS, cpu_seconds, pct  # noqa: E402
from benchmarks.bench_bot import first_replies as _first_replies  # noqa: E402
from tests.fake_telegram import FakeTelegram  # noqa: E402

TOKEN = "123456:BENCH-TOKEN"
SECRET = "bench-secret"
STAFF_CHAT = -100999
MAX_CONNECTIONS = 40  # Telegram's default for a webhook
PG_URL = (
    os.environ.get("BENCH_DATABASE_URL")
    or os.environ.get("TEST_DATABASE_URL")
    or "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("BENCH_REDIS_URL") or os.environ.get("TEST_REDIS_URL") or "redis://127.0.0.1:6379/0"


@dataclass
class Config:
    key: str
    label: str
    database: str  # sqlite | postgresql
    instances: int = 1
    redis: bool = False
    webhook: bool = True


@dataclass
class Result:
    burst: float = 0.0  # updates a second
    cpu_ms: float = 0.0  # bot processes' CPU per update
    own_cpu_ms: float = 0.0  # this script's (fake Bot API, balancer) CPU per update
    p50: float = 0.0
    p99: float = 0.0
    burst_replied: str = ""
    steady_replied: str = ""


@dataclass
class Bot:
    proc: asyncio.subprocess.Process
    url: str  # webhook URL ('' when polling)


async def first_replies(server: FakeTelegram, first: int, n: int, timeout: float) -> dict[int, float]:
    return await _first_replies(server, first, n, timeout, poll=0.005)


async def quiet(server: FakeTelegram, still: float = 0.5) -> None:
    """Until the bot has sent nothing for ``still`` seconds."""
    count, since = len(server.sent), time.monotonic()
    while time.monotonic() - since < still:
        await asyncio.sleep(0.05)
        if len(server.sent) != count:
            count, since = len(server.sent), time.monotonic()


async def pg_admin(statement: str) -> None:
    import asyncpg

    dsn = make_url(PG_URL).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def redis_answers() -> bool:
    from redis.asyncio import Redis

    client = Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        return bool(await client.ping())
    except Exception:
        return False
    finally:
        await client.aclose()


async def redis_cleanup(prefix: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(match=prefix + ":*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


class Balancer:
    """Round robin over the instances' webhook URLs; at most MAX_CONNECTIONS posts at once."""

    def __init__(self, http: aiohttp.ClientSession, urls: list[str]) -> None:
        self.http, self.urls = http, urls
        self.turn = 0
        self.slots = asyncio.Semaphore(MAX_CONNECTIONS)

    async def post(self, update: dict) -> None:
        self.turn += 1
        url = self.urls[self.turn % len(self.urls)]
        async with self.slots, self.http.post(
            url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}
        ) as response:
            await response.read()
            if response.status != 200:
                raise RuntimeError(f"{url} answered {response.status}")


async def start_bot(env: dict[str, str], webhook: bool, workdir: str) -> Bot:
    url = ""
    args = ["run"]
    if webhook:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        url = f"http://127.0.0.1:{port}/hook"
        env = {**env, "WEBHOOK_URL": url, "WEBHOOK_HOST": "127.0.0.1", "WEBHOOK_PORT": str(port)}
        args.append("--webhook")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "main.py"), *args, env=env, cwd=workdir, stdout=asyncio.subprocess.DEVNULL
    )
    return Bot(proc, url)


async def stop(bots: list[Bot]) -> None:
    for bot in bots:
        if bot.proc.returncode is None:
            bot.proc.send_signal(signal.SIGTERM)
    for bot in bots:
        try:
            await asyncio.wait_for(bot.proc.wait(), 30)
        except TimeoutError:
            bot.proc.kill()
            await bot.proc.wait()


async def wait_ready(bot: Bot, http: aiohttp.ClientSession, timeout: float = 60.0) -> None:
    base = bot.url.rsplit("/", 1)[0]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if bot.proc.returncode is not None:
            raise SystemExit(f"a bot process exited with {bot.proc.returncode}")
        with contextlib.suppress(aiohttp.ClientError, OSError):
            async with http.get(base + "/readyz") as r:
                if r.status == 200:
                    return
        await asyncio.sleep(0.1)
    raise SystemExit("a bot process did not become ready")


async def measure(cfg: Config, total: int, rate: float) -> Result:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "WEBHOOK_", "HEALTH_"))}
    for key in ("DATABASE_URL", "REDIS_URL", "ADMIN_IDS", "WEB_PORT", "LOG_FORMAT"):
        env.pop(key, None)
    env.update(
        BOT_TOKEN=TOKEN,
        STAFF_CHAT_ID=str(STAFF_CHAT),
        LOG_LEVEL="WARNING",
        WEBHOOK_SECRET=SECRET,
        REPORT_SCHEDULE="",
        SEND_RATE_PER_SECOND="1000000",
        SEND_RATE_PER_CHAT="1000000",
        SEND_RATE_PER_GROUP_MINUTE="1000000",
        FLOOD_MESSAGES_PER_MINUTE="1000",
    )
    database = ""
    prefix = "hotline-bench-" + uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory() as tmp:
        if cfg.database == "sqlite":
            env["DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp}/bench.db"
        else:
            database = "hotline_bench_" + uuid.uuid4().hex[:8]
            await pg_admin(f'CREATE DATABASE "{database}"')
            url = make_url(PG_URL).set(database=database)
            env["DATABASE_URL"] = url.render_as_string(hide_password=False)
        if cfg.redis:
            env.update(REDIS_URL=REDIS_URL, REDIS_PREFIX=prefix)
        bots: list[Bot] = []
        try:
            async with FakeTelegram(token=TOKEN) as server, aiohttp.ClientSession() as http:
                env["TELEGRAM_API_URL"] = server.url
                try:
                    # All at once, as a deployment starts them (one migrates and seeds, the others wait).
                    bots = [await start_bot(env, cfg.webhook, tmp) for _ in range(cfg.instances)]
                    if cfg.webhook:
                        await asyncio.gather(*(wait_ready(bot, http) for bot in bots))
                    return await _run(cfg, server, http, bots, total, rate)
                finally:
                    await stop(bots)
        finally:
            if database:
                await pg_admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            if cfg.redis:
                await redis_cleanup(prefix)


async def _run(
    cfg: Config, server: FakeTelegram, http: aiohttp.ClientSession, bots: list[Bot], total: int, rate: float
) -> Result:
    balancer = Balancer(http, [b.url for b in bots])
    update_id = iter(range(1, 10**9))

    def send(chat: int, question: str) -> asyncio.Future[None] | None:
        update = server.message(chat, question)
        if not cfg.webhook:
            server.add_update(update)
            return None
        return asyncio.ensure_future(balancer.post({"update_id": next(update_id), **update}))

    # Warm-up: each instance answers once (imports, caches, connections), then start-up work settles.
    for i in range(len(bots)):
        fut = send(1 + i, "低保怎么申请")
        if fut is not None:
            await fut
    if len(await first_replies(server, 1, len(bots), 60)) < len(bots):
        raise SystemExit("the bot did not answer")
    await asyncio.sleep(2)

    result = Result()
    base = 10_000
    cpu0, own0 = sum(cpu_seconds(b.proc.pid) for b in bots), time.process_time()
    start = time.monotonic()
    posts = [send(base + i, QUESTIONS[i % len(QUESTIONS)]) for i in range(total)]
    got = await first_replies(server, base, total, 180)
    result.burst = len(got) / (max(got.values()) - start)
    await asyncio.gather(*(p for p in posts if p is not None))
    await quiet(server)  # the burst's staff cards are out too: all its work is in the CPU figure
    result.cpu_ms = (sum(cpu_seconds(b.proc.pid) for b in bots) - cpu0) / total * 1000
    result.own_cpu_ms = (time.process_time() - own0) / total * 1000
    result.burst_replied = f"{len(got)}/{total}"

    base = 1_000_000
    n = int(rate * 10)
    sent_at: dict[int, float] = {}
    tasks = []
    start = time.monotonic()
    for i in range(n):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        sent_at[base + i] = time.monotonic()
        tasks.append(send(base + i, QUESTIONS[i % len(QUESTIONS)]))
    got = await first_replies(server, base, n, 60)
    await asyncio.gather(*(t for t in tasks if t is not None))
    latencies = [(got[c] - sent_at[c]) * 1000 for c in got]
    result.p50, result.p99 = pct(latencies, 50), pct(latencies, 99)
    result.steady_replied = f"{len(got)}/{n}"
    return result


async def main(total: int, rate: float, only: list[str]) -> None:
    configs = [
        Config("polling", "polling\nSQLite, 1\n(baseline)", "sqlite", webhook=False),
        Config("sqlite", "webhook\nSQLite, 1", "sqlite"),
        Config("pg", "webhook\nPostgreSQL, 1", "postgresql"),
        Config("pg-redis", "webhook\nPG+Redis, 1", "postgresql", redis=True),
        Config("pg-redis-2", "webhook\nPG+Redis, 2", "postgresql", instances=2, redis=True),
    ]
    if only:
        configs = [c for c in configs if c.key in only]
    try:
        await pg_admin("SELECT 1")
        pg_ok = True
    except Exception as exc:
        pg_ok = False
        print(f"skipped: PostgreSQL configurations ({PG_URL} does not answer: {type(exc).__name__})")
    redis_ok = await redis_answers()
    if not redis_ok:
        print(f"skipped: Redis configurations ({REDIS_URL} does not answer)")
    results: list[tuple[Config, Result]] = []
    for cfg in configs:
        if (cfg.database == "postgresql" and not pg_ok) or (cfg.redis and not redis_ok):
            continue
        print(f"running: {cfg.label.replace(chr(10), ' ')} ...", flush=True)
        results.append((cfg, await measure(cfg, total, rate)))

    print(f"\n{os.cpu_count()} CPU cores shared by the bot processes, PostgreSQL, Redis and this script")
    print(f"burst: {total} updates, at most {MAX_CONNECTIONS} in flight (polling: all queued at once)")
    print(f"steady: {rate:g} updates/s for 10 s\n")
    width = 16
    heads = [cfg.label.split("\n") for cfg, _ in results]
    for line in range(max(len(h) for h in heads)):
        cells = [h[line] if line < len(h) else "" for h in heads]
        print(f"{'':<24}" + "".join(f"{c:>{width}}" for c in cells))
    rows = [
        ("burst, updates/s", lambda r: f"{r.burst:.0f}"),
        ("bot CPU, ms/update", lambda r: f"{r.cpu_ms:.2f}"),
        ("fake API CPU, ms/upd.", lambda r: f"{r.own_cpu_ms:.2f}"),
        ("steady p50, ms", lambda r: f"{r.p50:.1f}"),
        ("steady p99, ms", lambda r: f"{r.p99:.1f}"),
        ("burst replied", lambda r: r.burst_replied),
        ("steady replied", lambda r: r.steady_replied),
    ]
    for name, cell in rows:
        print(f"{name:<24}" + "".join(f"{cell(r):>{width}}" for _cfg, r in results))


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(
        main(
            int(args[0]) if args else 2000,
            float(args[1]) if len(args) > 1 else 100.0,
            args[2].split(",") if len(args) > 2 else [],
        )
    )
