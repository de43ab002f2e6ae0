"""Prometheus metrics of one application instance (its own ``CollectorRegistry``).

- ``hotline_updates_total{type,outcome}`` and ``hotline_handler_seconds{type}``: every update,
  timed by an outer middleware; the outcome is what the update wrote (a question's decision,
  a ticket, a staff reply …), seen at the session's flush, so services stay metrics-free.
- ``hotline_escalations_total{source}``: tickets opened.
- ``hotline_telegram_api_errors_total{method,code}``: every failed Bot API call (outbox sends,
  callback answers, polling), from a request middleware on the bot's session.
- ``hotline_outbox_sent_total{method}``, ``hotline_outbox_retries_total``.
- ``hotline_tickets{status}``, ``hotline_tickets_overdue``, ``hotline_outbox_depth{status}``:
  read from the database when scraped (``refresh``), so every instance reports the same truth.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

from aiogram import BaseMiddleware, Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import TelegramObject, Update
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import event as sa_event
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.models import OutboxMessage, QueryLog, Ticket, TicketMessage, utcnow

if TYPE_CHECKING:
    from bot.outbox import OutboxSender, SendResult
    from bot.tickets import StaffDesk

log = logging.getLogger(__name__)

# Handler latency: most updates take milliseconds; the tail (a rebuild, a slow database) seconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def api_error_code(exc: BaseException) -> str:
    """Telegram's HTTP-like code for an API exception ("network" when there was no answer)."""
    for cls, code in (
        (TelegramRetryAfter, "429"),
        (TelegramForbiddenError, "403"),
        (TelegramEntityTooLarge, "413"),
        (TelegramBadRequest, "400"),
        (TelegramUnauthorizedError, "401"),
        (TelegramNotFound, "404"),
        (TelegramConflictError, "409"),
        (TelegramServerError, "5xx"),
        (TelegramNetworkError, "network"),
    ):
        if isinstance(exc, cls):
            return code
    return "other"


class _DbGauges(Collector):
    """Ticket and outbox gauges, plus the sender's retry count, from the last ``refresh``."""

    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    def collect(self) -> Iterator[Metric]:
        tickets = GaugeMetricFamily("hotline_tickets", "Tickets not closed, by status", labels=["status"])
        for status in ("open", "answered"):
            tickets.add_metric([status], self.m.tickets.get(status, 0))
        yield tickets
        yield GaugeMetricFamily(
            "hotline_tickets_overdue",
            "Open tickets with no staff reply after REMINDER_WORKING_HOURS of office time",
            value=self.m.overdue,
        )
        depth = GaugeMetricFamily("hotline_outbox_depth", "Outbox messages not sent yet", labels=["status"])
        for status in ("pending", "sending", "dead"):
            depth.add_metric([status], self.m.outbox.get(status, 0))
        yield depth
        retries = CounterMetricFamily(
            "hotline_outbox_retries", "Outbox sends rescheduled after a failure or a 429 (this instance)"
        )
        retries.add_metric([], float(self.m.sender.retries if self.m.sender is not None else 0))
        yield retries


class Metrics:
    """Counters and histograms of one application; ``render()`` is the /metrics body."""

    def __init__(
        self,
        sf: async_sessionmaker[AsyncSession] | None = None,
        desk: StaffDesk | None = None,
        sender: OutboxSender | None = None,
    ) -> None:
        self.sf, self.desk, self.sender = sf, desk, sender
        self.registry = CollectorRegistry()
        r = self.registry
        self.updates = Counter(
            "hotline_updates", "Updates handled, by type and outcome", ["type", "outcome"], registry=r
        )
        self.latency = Histogram(
            "hotline_handler_seconds",
            "Time to handle an update",
            ["type"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.escalations = Counter("hotline_escalations", "Tickets opened, by source", ["source"], registry=r)
        self.api_errors = Counter(
            "hotline_telegram_api_errors",
            "Failed Bot API calls, by method and code",
            ["method", "code"],
            registry=r,
        )
        self.sent = Counter("hotline_outbox_sent", "Messages the outbox delivered", ["method"], registry=r)
        self.tickets: dict[str, int] = {}
        self.overdue = 0
        self.outbox: dict[str, int] = {}
        r.register(_DbGauges(self))

    # --- hooks --------------------------------------------------------------------------

    def on_send_result(self, method: str, result: SendResult) -> None:
        """The outbox sender's ``on_result`` hook."""
        if result.ok:
            self.sent.labels(method).inc()

    def count_api_error(self, method: str, code: str) -> None:
        """Outbox sends that bypass aiogram's session (bot.transport) report their errors here."""
        self.api_errors.labels(method, code).inc()

    def update_middleware(self) -> UpdateMetricsMiddleware:
        return UpdateMetricsMiddleware(self)

    def request_middleware(self) -> ApiErrorMiddleware:
        return ApiErrorMiddleware(self)

    # --- scrape ---------------------------------------------------------------------------

    async def refresh(self, now: dt.datetime | None = None) -> None:
        """Read the database gauges (called on each scrape)."""
        if self.sf is None:
            return
        now = now or utcnow()
        async with self.sf() as session:
            rows = await session.execute(
                select(Ticket.status, func.count()).where(Ticket.status != "closed").group_by(Ticket.status)
            )
            self.tickets = {status: int(n) for status, n in rows}
            rows = await session.execute(
                select(OutboxMessage.status, func.count())
                .where(OutboxMessage.status != "sent")
                .group_by(OutboxMessage.status)
            )
            self.outbox = {status: int(n) for status, n in rows}
            if self.desk is not None:
                waiting = await session.scalars(
                    select(Ticket.created_at).where(
                        Ticket.status == "open", Ticket.first_response_at.is_(None)
                    )
                )
                hours, limit = self.desk.hours, self.desk.reminder_hours
                self.overdue = sum(
                    1
                    for created in waiting
                    if hours.working_hours_between(
                        created if created.tzinfo else created.replace(tzinfo=dt.UTC), now
                    )
                    >= limit
                )

    async def render(self) -> bytes:
        try:
            await self.refresh()
        except Exception:  # the counters are still worth serving; /readyz reports the database
            log.exception("metrics: database gauges not refreshed")
        return generate_latest(self.registry)


class _Tally:
    """What one update wrote, collected from its session's flushes."""

    def __init__(self) -> None:
        self.outcome: str | None = None
        self.tickets: list[str] = []

    def before_flush(self, session: Any, _ctx: Any, _instances: Any) -> None:
        for obj in session.new:
            if isinstance(obj, QueryLog):
                self.outcome = obj.outcome
            elif isinstance(obj, Ticket):
                self.tickets.append(obj.source or "escalate")
            elif isinstance(obj, TicketMessage) and self.outcome is None:
                self.outcome = "staff_reply" if obj.direction == "staff" else "follow_up"


def _update_type(event: TelegramObject) -> str:
    if isinstance(event, Update):
        return event.event_type
    return type(event).__name__.lower()


class UpdateMetricsMiddleware(BaseMiddleware):
    """Outer update middleware (inside the session middleware): latency and outcome of each update."""

    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        kind = _update_type(event)
        tally = _Tally()
        session: AsyncSession | None = data.get("session")
        if session is not None:
            sa_event.listen(session.sync_session, "before_flush", tally.before_flush)
        start = time.perf_counter()
        outcome = "error"
        try:
            result = await handler(event, data)
            outcome = tally.outcome or ("callback" if kind == "callback_query" else "other")
            return result
        finally:
            self.m.latency.labels(kind).observe(time.perf_counter() - start)
            self.m.updates.labels(kind, outcome).inc()
            for source in tally.tickets:
                self.m.escalations.labels(source).inc()
            if session is not None:
                sa_event.remove(session.sync_session, "before_flush", tally.before_flush)


class ApiErrorMiddleware(BaseRequestMiddleware):
    """Counts failed Bot API calls by method and code; the error itself goes on unchanged."""

    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        try:
            return await make_request(bot, method)
        except Exception as exc:  # TelegramAPIError mostly; anything else counts as "other"
            self.m.api_errors.labels(method.__api_method__, api_error_code(exc)).inc()
            raise
