"""Load and fault test (issue 5): two bot processes in webhook mode on one PostgreSQL database and
one Redis, behind a round-robin balancer; 2,000 updates from 200 citizens (questions, follow-ups,
staff replies and closes interleaved); one instance SIGKILLed half-way and started again at once
(as a service manager does); the survivor carries the traffic meanwhile.

What is asserted, exactly:

- Every update is acknowledged (the balancer resends an update whose instance failed, as Telegram
  does) and handled once: ``processed_updates`` holds each of the 2,000 ids.
- Each update causes exactly one message in its citizen's chat, so every citizen chat receives
  exactly the expected sequence: an answer, a clarification (您是想问 / 没有看懂), a ticket number
  (工单编号 #N), a follow-up acknowledgement (已补充到工单 #N), a staff reply (工单 #N 工作人员回复,
  with the reply's own token) or a closing note (工单 #N 已办结), in the order of the updates. No
  apology, flood notice or anything else.
- The staff group gets exactly one card per escalation, one forwarded copy per follow-up, one
  "sent" note per staff reply and one "closed" note per close, all for the right ticket.
- Nothing is left in the outbox (pending, sending or given up).

"Received" means recorded by the outbox (``outbox.result_message_id``). The one exception, which
the Bot API makes unavoidable (it has no idempotency key): a request the killed instance had
already sent when it died, but not yet recorded, is sent again by the survivor. Such extra copies
are counted, must repeat a recorded message of the same chat, and must come from rows that were
being sent at the moment of the kill.

Runs only with TEST_DATABASE_URL and TEST_REDIS_URL (``.ci/run`` sets them when the services answer).
Also here: the two faults that test found, each with a test of its own (a batch's sent messages
are recorded one group at a time, not at the end; instances starting together on an empty
database all come up).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import re
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bot.knowledge_service import render_answer
from bot.outbox import Limits, OutboxSender, SendResult, enqueue
from bot.runtime import Runtime, create_runtime
from bot.settings import Settings
from tests.harness import STAFF_CHAT, TOKEN
from tests.procs import ROOT, free_port

try:
    from tests.fake_telegram import FakeTelegram, SentCall
except ImportError:  # pragma: no cover
    from fake_telegram import FakeTelegram, SentCall

needs_pg_and_redis = pytest.mark.skipif(
    not (os.environ.get("TEST_DATABASE_URL") and os.environ.get("TEST_REDIS_URL")),
    reason="the load/fault test needs PostgreSQL and Redis (TEST_DATABASE_URL and TEST_REDIS_URL)",
)
needs_pg = pytest.mark.skipif(not os.environ.get("TEST_DATABASE_URL"), reason="needs TEST_DATABASE_URL")

SECRET = "load-fault-secret"
CITIZENS = 200
STEPS = 10  # per citizen: 200 x 10 = 2,000 updates
KILL_AT = 1000  # acknowledged updates when instance 0 is SIGKILLed
FIRST_CITIZEN = 20_000
STAFF_USERS = (900001, 900002, 900003, 900004, 900005)
# How long a dead instance's claims (a chat's update lock in Redis, outbox rows it was sending)
# block the survivor: short here so the test does not wait a minute after the kill.
LEASE_SECONDS = 8
CREATES = ("sendMessage", "copyMessage", "forwardMessage", "sendPhoto", "sendDocument", "sendVoice")


# --- the traffic -------------------------------------------------------------------------------


@dataclass
class Step:
    """One update: a citizen's question, or a staff member's reply or /close on its ticket."""

    update_id: int
    kind: str  # ask | staff_reply | close
    expect: str  # answer | clarify | escalate | followup | staff_reply | closed
    text: str = ""
    staff: int = 0


@dataclass
class Citizen:
    chat: int
    steps: list[Step] = field(default_factory=list)


def plan(outcomes: dict[str, str], seed: int = 5) -> list[Citizen]:
    """Each citizen's ten updates, with the outcome the bot must produce for each.

    A citizen with an open ticket has everything they write joined to it (a follow-up); staff
    reply to the ticket's card or close it; after a close, questions are answered again.
    """
    rng = random.Random(seed)
    by_outcome: dict[str, list[str]] = defaultdict(list)
    for question, outcome in outcomes.items():
        by_outcome[outcome].append(question)
    everything = sorted(outcomes)
    citizens: list[Citizen] = []
    update_id = 1
    for n in range(CITIZENS):
        citizen = Citizen(FIRST_CITIZEN + n)
        open_ticket = False
        for _ in range(STEPS):
            r = rng.random()
            if open_ticket and r < 0.4:
                step = Step(update_id, "ask", "followup", rng.choice(everything))
            elif open_ticket and r < 0.75:
                token = f"R{update_id:05d}"  # the reply's text: found again in the citizen's chat
                step = Step(update_id, "staff_reply", "staff_reply", token, rng.choice(STAFF_USERS))
            elif open_ticket:
                step = Step(update_id, "close", "closed", staff=rng.choice(STAFF_USERS))
                open_ticket = False
            else:
                outcome = "escalate" if r < 0.25 else "answer" if r < 0.8 else "clarify"
                step = Step(update_id, "ask", outcome, rng.choice(by_outcome[outcome]))
                open_ticket = outcome == "escalate"
            citizen.steps.append(step)
            update_id += 1
        citizens.append(citizen)
    return citizens


def classify(call: SentCall) -> tuple[str, int | None, str]:
    """What a message in a citizen's chat is: (kind, ticket number, staff reply token)."""
    body = call.text or ""
    patterns = (
        ("escalate", r"已为您转接人工服务，工单编号 #(\d+)"),
        ("followup", r"^已补充到工单 #(\d+)"),
        ("staff_reply", r"^工单 #(\d+) 工作人员回复"),
        ("closed", r"^您的工单 #(\d+) 已办结"),
    )
    for kind, pattern in patterns:
        if m := re.search(pattern, body):
            token = re.search(r"R\d{5}", body)
            return kind, int(m.group(1)), token.group() if token else ""
    if body.startswith(("您是想问", "抱歉，我没有看懂")):
        return "clarify", None, ""
    if "出了点问题" in body or "太快" in body or "工单" in body:
        return "unexpected: " + body[:60], None, ""
    return "answer", None, ""


def classify_staff(call: SentCall) -> tuple[str, int | None]:
    body = call.text or ""
    patterns = (
        ("card", r"^工单 #(\d+)\n状态："),
        ("forward", r"^工单 #(\d+) 市民补充"),
        ("sent_note", r"^已发送给市民（工单 #(\d+)）"),
        ("closed_note", r"^工单 #(\d+) 已关闭"),
    )
    for kind, pattern in patterns:
        if m := re.search(pattern, body):
            return kind, int(m.group(1))
    return "unexpected: " + body[:60], None


# --- the bot processes and the balancer ----------------------------------------------------------


class Instance:
    """``python main.py run --webhook`` as its own process; stderr kept in a file."""

    def __init__(self, name: str, env: dict[str, str], workdir: Path) -> None:
        self.name, self.workdir = name, workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.env = {
            **env,
            "WEBHOOK_URL": self.url,
            "WEBHOOK_HOST": "127.0.0.1",
            "WEBHOOK_PORT": str(self.port),
        }
        self.proc: asyncio.subprocess.Process | None = None
        self.up = False  # what the balancer believes
        self.starts = 0
        self.acked = 0  # updates it acknowledged (since its last start)

    @property
    def log(self) -> Path:
        return self.workdir / f"{self.name}-{self.starts}.log"

    async def start(self) -> None:
        self.starts += 1
        self.acked = 0
        with self.log.open("wb") as err:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, str(ROOT / "main.py"), "run", "--webhook",
                env=self.env, cwd=self.workdir, stdout=asyncio.subprocess.DEVNULL, stderr=err,
            )  # fmt: skip

    async def ready(self, http: aiohttp.ClientSession, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.returncode is not None:
                raise AssertionError(f"{self.name} exited: {self.log.read_text()[-3000:]}")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with http.get(f"http://127.0.0.1:{self.port}/readyz") as r:
                    if r.status == 200:
                        self.up = True
                        return
            await asyncio.sleep(0.1)
        raise AssertionError(f"{self.name} not ready: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()  # SIGKILL: no clean stop, nothing finished or drained

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 30)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


class Balancer:
    """Round robin over the instances that are up; an update that fails (connection refused or
    dropped, non-200) is posted to the other instance, as Telegram redelivers it. A refused
    connection takes the instance out of the rotation until it is ready again."""

    def __init__(self, http: aiohttp.ClientSession, instances: list[Instance]) -> None:
        self.http, self.instances = http, instances
        self.turn = 0
        self.acked = 0
        self.resent = 0
        self.milestones: dict[int, asyncio.Event] = {}

    def at(self, acked: int) -> asyncio.Event:
        return self.milestones.setdefault(acked, asyncio.Event())

    async def post(self, update: dict[str, Any]) -> None:
        headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
        deadline = time.monotonic() + 90
        self.turn += 1
        attempt = 0
        while True:
            up = [i for i in self.instances if i.up] or self.instances
            target = up[(self.turn + attempt) % len(up)]
            status: int | None = None
            try:
                async with self.http.post(target.url, json=update, headers=headers) as response:
                    await response.read()
                    status = response.status
            except aiohttp.ClientConnectorError:
                target.up = False  # nobody listens there
            except (aiohttp.ClientConnectionError, TimeoutError):
                pass  # dropped mid-request: perhaps handled, perhaps not; the other instance decides
            if status == 200:
                self.acked += 1
                target.acked += 1
                if (event := self.milestones.get(self.acked)) is not None:
                    event.set()
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"update {update['update_id']} never acknowledged (last {status})")
            self.resent += 1
            attempt += 1
            await asyncio.sleep(0.05 * min(attempt, 10))


class Tickets:
    """Which tickets have a card in the staff group (what the staff see), from the database."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.cards: dict[int, list[tuple[int, int]]] = {}  # citizen chat -> [(ticket, card message)]
        self.changed = asyncio.Event()

    async def watch(self) -> None:
        query = text(
            "SELECT c.chat_id, t.id, t.card_message_id FROM tickets t JOIN citizens c ON c.id = t.citizen_id "
            "WHERE t.card_message_id IS NOT NULL ORDER BY t.id"
        )
        while True:
            cards: dict[int, list[tuple[int, int]]] = defaultdict(list)
            async with self.runtime.sf() as session:
                for chat, ticket, card in await session.execute(query):
                    cards[int(chat)].append((int(ticket), int(card)))
            self.cards = cards
            self.changed.set()
            self.changed = asyncio.Event()
            await asyncio.sleep(0.2)

    async def new_card(self, chat: int, known: int, timeout: float = 60.0) -> tuple[int, int]:
        """The card of this citizen's ticket number ``known + 1`` (their newest)."""
        deadline = time.monotonic() + timeout
        while len(self.cards.get(chat, [])) <= known:
            if time.monotonic() > deadline:
                raise AssertionError(f"no card for citizen {chat}'s ticket {known + 1}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), 1.0)
        return self.cards[chat][known]


async def converse(
    citizen: Citizen, server: FakeTelegram, balancer: Balancer, tickets: Tickets
) -> None:
    """The citizen's updates one after another: each is posted once the previous one is
    acknowledged (handled and committed), as a person types after seeing the screen."""
    ticket: tuple[int, int] | None = None
    escalations = 0
    for step in citizen.steps:
        if step.kind == "ask":
            update = server.message(citizen.chat, step.text, first_name=f"市民{citizen.chat}")
        else:
            assert ticket is not None
            number, card = ticket
            if step.kind == "staff_reply":
                text_ = f"{step.text}：请携带身份证和户口簿到乡镇民政办咨询。"
            else:
                text_ = f"/close {number}"
            update = server.message(
                STAFF_CHAT,
                text_,
                user_id=step.staff,
                first_name=f"工作人员{step.staff % 10}",
                reply_to_message_id=card if step.kind == "staff_reply" else None,
            )
        await balancer.post({"update_id": step.update_id, **update})
        if step.expect == "escalate":
            # Staff answer on the card, so wait until it is in the group (and known as this ticket's).
            ticket = await tickets.new_card(citizen.chat, escalations)
            escalations += 1


async def settle(runtime: Runtime, timeout: float) -> None:
    """Until the outbox has nothing left to send."""
    deadline = time.monotonic() + timeout
    query = text("SELECT count(*) FROM outbox WHERE status IN ('pending', 'sending')")
    while True:
        async with runtime.sf() as session:
            left = await session.scalar(query)
        if not left:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{left} messages still in the outbox")
        await asyncio.sleep(0.2)


# --- the test ----------------------------------------------------------------------------------


@pytest.fixture
async def server() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(token=TOKEN) as fake:
        yield fake


@needs_pg_and_redis
@pytest.mark.parametrize("db_backend", ["postgresql"])  # a database of its own (conftest's db_url)
async def test_2000_updates_two_instances_one_killed(
    server: FakeTelegram, db_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "WEBHOOK_", "HEALTH_"))}
    for key in ("DATABASE_URL", "REDIS_URL", "STAFF_CHAT_ID", "ADMIN_IDS", "LOG_FORMAT", "WEB_PORT"):
        base.pop(key, None)
    env = {
        **base,
        "BOT_TOKEN": TOKEN,
        "TELEGRAM_API_URL": server.url,
        "DATABASE_URL": db_url,
        "REDIS_URL": redis_url,
        "REDIS_PREFIX": redis_prefix,
        "STAFF_CHAT_ID": str(STAFF_CHAT),
        "WEBHOOK_SECRET": SECRET,
        "OFFICE_HOURS": "Mon-Sun 00:00-24:00",
        "REPORT_SCHEDULE": "",
        "LOG_LEVEL": "WARNING",
        "LEASE_SECONDS": str(LEASE_SECONDS),
        # Telegram's send limits and the flood limit are lifted: the run measures the bot.
        "SEND_RATE_PER_SECOND": "1000000",
        "SEND_RATE_PER_CHAT": "1000000",
        "SEND_RATE_PER_GROUP_MINUTE": "1000000",
        "FLOOD_MESSAGES_PER_MINUTE": "1000",
    }
    instances = [Instance(name, env, tmp_path) for name in ("a", "b")]
    for inst in instances:
        await inst.start()
    # The test's own view of the database: the expected outcomes and the final accounting.
    runtime = await create_runtime(
        Settings(_env_file=None, database_url=db_url, bot_token=None), migrate=False, seed=False  # type: ignore[call-arg]
    )
    questions = [q["q"] for q in yaml.safe_load((ROOT / "tests" / "dev_questions.yaml").read_text("utf-8"))]
    matches = {q: runtime.knowledge.match(q) for q in questions}
    outcomes = {q: m.outcome for q, m in matches.items()}
    assert set(outcomes.values()) == {"answer", "clarify", "escalate"}
    facts = runtime.settings.bureau_facts()
    # How each answer starts (the entry's text, its placeholders filled as the bot fills them).
    answers = {q: render_answer(m.entry.answer, facts)[:30] for q, m in matches.items() if m.entry}
    citizens = plan(outcomes)
    steps = [s for c in citizens for s in c.steps]
    assert len(steps) == CITIZENS * STEPS == 2000

    timeout = aiohttp.ClientTimeout(total=30)
    tickets = Tickets(runtime)
    watcher = asyncio.create_task(tickets.watch())
    async with aiohttp.ClientSession(timeout=timeout) as http:
        try:
            for inst in instances:
                await inst.ready(http)
            server.sent.clear()
            balancer = Balancer(http, instances)
            victim = instances[0]
            snapshot: list[int] = []

            async def chaos() -> None:
                await balancer.at(KILL_AT).wait()
                victim.kill()
                await victim.proc.wait()  # type: ignore[union-attr]
                async with runtime.sf() as session:
                    rows = await session.execute(text("SELECT chat_id FROM outbox WHERE status = 'sending'"))
                    snapshot.extend(int(chat) for (chat,) in rows)
                await victim.start()
                await victim.ready(http)

            chaos_task = asyncio.create_task(chaos())
            traffic_started = time.monotonic()
            await asyncio.gather(*(converse(c, server, balancer, tickets) for c in citizens))
            traffic_time = time.monotonic() - traffic_started
            await chaos_task
            await settle(runtime, LEASE_SECONDS + 30)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            for inst in instances:
                await inst.stop()

    async with runtime.sf() as session:
        recorded = {
            (int(chat), int(mid))
            for chat, mid in await session.execute(
                text("SELECT chat_id, result_message_id FROM outbox WHERE status = 'sent' AND method IN "
                     "('sendMessage', 'copyMessage') AND result_message_id IS NOT NULL")
            )
        }  # fmt: skip
        statuses = await session.execute(text("SELECT status, count(*) FROM outbox GROUP BY status"))
        left = dict(statuses.all())
        handled = {int(u) for (u,) in await session.execute(text("SELECT update_id FROM processed_updates"))}
    await runtime.close()

    # Each update handled once, nothing left or given up in the outbox.
    assert handled == {s.update_id for s in steps}
    assert set(left) == {"sent"}, left

    creates = [c for c in server.sent if c.method in CREATES]
    delivered = [c for c in creates if (c.chat_id, c.message_id) in recorded]
    extra = [c for c in creates if (c.chat_id, c.message_id) not in recorded]
    # Copies the killed instance sent but could not record: each repeats a delivered message of its
    # chat, and comes from a row that was being sent when the instance died.
    texts = Counter((c.chat_id, c.text) for c in delivered)
    assert all(texts[(c.chat_id, c.text)] for c in extra), [c.short() for c in extra]
    sending = Counter(snapshot)
    assert all(n <= sending[chat] for chat, n in Counter(c.chat_id for c in extra).items())

    # Every citizen chat: exactly one message per update, in order, of the expected kind.
    by_chat: dict[int | str | None, list[SentCall]] = defaultdict(list)
    for call in delivered:
        by_chat[call.chat_id].append(call)
    cards: Counter[int] = Counter()
    expected_staff: Counter[tuple[str, int]] = Counter()
    problems: list[str] = []
    for citizen in citizens:
        got = [classify(c) for c in by_chat.get(citizen.chat, [])]
        kinds = [k for k, _n, _t in got]
        want = [s.expect for s in citizen.steps]
        if kinds != want:
            problems.append(f"citizen {citizen.chat}: expected {want}, got {kinds}")
            continue
        number = None
        for i, (step, (kind, ticket, token)) in enumerate(zip(citizen.steps, got, strict=True)):
            if kind == "answer" and not (by_chat[citizen.chat][i].text or "").startswith(answers[step.text]):
                problems.append(f"citizen {citizen.chat}: not the answer to {step.text!r}")
            if kind == "escalate":
                number = ticket
                cards[ticket] += 1  # type: ignore[index]
            elif kind in ("followup", "staff_reply", "closed"):
                if ticket != number:
                    problems.append(f"citizen {citizen.chat}: {kind} for #{ticket}, theirs is #{number}")
                if kind == "staff_reply" and token != step.text:
                    problems.append(f"citizen {citizen.chat}: staff reply {token!r}, expected {step.text!r}")
                note = {"followup": "forward", "staff_reply": "sent_note", "closed": "closed_note"}[kind]
                expected_staff[(note, ticket)] += 1  # type: ignore[index]
    assert not problems, "\n".join(problems[:20])

    # The staff group: one card per escalation, one copy per follow-up, one note per reply and close.
    assert set(cards.values()) == {1}  # each escalation its own ticket
    staff = Counter(classify_staff(c) for c in by_chat.get(STAFF_CHAT, []))
    assert staff == Counter({("card", n): 1 for n in cards}) + expected_staff

    # The kill did hit updates in flight, and the restarted instance took its share again.
    assert balancer.resent > 0
    assert victim.starts == 2 and victim.acked > 0

    counts = Counter(s.expect for s in steps)
    print(
        f"\n{len(steps)} updates from {CITIZENS} citizens ({dict(counts)}), {traffic_time:.1f} s of traffic, "
        f"{time.monotonic() - started:.1f} s in all; {balancer.resent} posts resent after the kill; "
        f"{len(extra)} copies re-sent for rows in flight at the kill ({len(snapshot)} rows were being sent)"
    )


# --- the faults it found -----------------------------------------------------------------------

FAST = Limits(global_per_second=1e6, private_per_second=1e6, private_burst=1e6, group_per_minute=1e6,
              group_burst=1e6)  # fmt: skip


async def _statuses(runtime: Runtime) -> dict[int, str]:
    async with runtime.sf() as session:
        rows = await session.execute(text("SELECT chat_id, status FROM outbox"))
        return {int(chat): str(status) for chat, status in rows}


@pytest.mark.postgres
async def test_what_was_sent_is_recorded_at_once_so_a_takeover_resends_only_the_rest(
    runtime: Runtime,
) -> None:
    # Found by the load test: a batch was recorded only once all of it was sent, so an instance
    # killed mid-batch left every message it had already sent to be sent again by another.
    async with runtime.sf() as session:
        for chat in range(1, 7):
            await enqueue(session, chat, "sendMessage", {"text": f"答复 {chat}"})
        await session.commit()
    ids = itertools.count(100)
    slow = asyncio.Event()  # Telegram is slow to answer for chat 1

    async def transport(method: str, payload: dict[str, Any]) -> SendResult:
        if payload["chat_id"] == 1:
            await slow.wait()
        return SendResult(True, message_id=next(ids))

    dying = OutboxSender(runtime.sf, transport, limits=FAST, lock_seconds=0.2)
    task = asyncio.create_task(dying.send_due())
    expected = {1: "sending", **dict.fromkeys(range(2, 7), "sent")}
    for _ in range(500):  # chats 2-6 are recorded as sent while chat 1's message is still out
        if (statuses := await _statuses(runtime)) == expected:
            break
        await asyncio.sleep(0.02)
    assert statuses == expected
    task.cancel()  # the instance dies with chat 1's message in flight
    with contextlib.suppress(asyncio.CancelledError):
        await task

    resent: list[int] = []

    async def survivor_transport(method: str, payload: dict[str, Any]) -> SendResult:
        resent.append(payload["chat_id"])
        return SendResult(True, message_id=next(ids))

    survivor = OutboxSender(runtime.sf, survivor_transport, limits=FAST)
    await asyncio.sleep(0.3)  # the dead instance's claim expires
    assert await survivor.send_due() == 1
    assert resent == [1]
    assert set((await _statuses(runtime)).values()) == {"sent"}
    async with runtime.sf() as session:
        assert await session.scalar(text("SELECT count(*) FROM outbox WHERE result_message_id IS NULL")) == 0


@needs_pg
async def test_instances_starting_together_on_an_empty_database_all_come_up() -> None:
    # Found by the benchmark: two instances started at once on a new PostgreSQL database both
    # imported the bundled knowledge base; one of them died on a duplicate key.
    import asyncpg

    url = os.environ["TEST_DATABASE_URL"]
    name = "hotline_empty_" + uuid.uuid4().hex[:10]
    admin_dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(admin_dsn)
    await conn.execute(f'CREATE DATABASE "{name}"')
    runtimes: list[Runtime] = []
    try:
        db_url = make_url(url).set(database=name).render_as_string(hide_password=False)
        settings = Settings(_env_file=None, database_url=db_url)  # type: ignore[call-arg]
        started = await asyncio.gather(*(create_runtime(settings) for _ in range(3)), return_exceptions=True)
        runtimes = [r for r in started if isinstance(r, Runtime)]
        assert len(runtimes) == 3, [r for r in started if not isinstance(r, Runtime)]
        async with runtimes[0].sf() as session:
            entries = await session.scalar(text("SELECT count(*) FROM kb_entries"))
            revisions = await session.scalar(text("SELECT count(*) FROM kb_revisions"))
        assert entries and revisions == entries  # imported once
        assert len({rt.knowledge.version for rt in runtimes}) == 1
        assert all(rt.knowledge.match("低保怎么申请").outcome == "answer" for rt in runtimes)
    finally:
        for rt in runtimes:
            await rt.close()
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()
