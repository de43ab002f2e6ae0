"""Factories that build the Telegram side from settings: Bot, Dispatcher, background workers.

A test builds the whole application with ``create_app(settings)`` pointed at a fake Bot API
(``TELEGRAM_API_URL``) and drives it over real HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiogram import BaseMiddleware, Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage
from aiogram.fsm.storage.memory import MemoryStorage, SimpleEventIsolation
from aiogram.types import BotCommand, BotCommandScopeAllPrivateChats, BotCommandScopeChat, TelegramObject
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from bot import privacy, report_delivery
from bot.conversation import Conversation
from bot.health import Health
from bot.health import start_server as start_health_server
from bot.i18n import _, use_locale
from bot.metrics import Metrics
from bot.models import Citizen, utcnow
from bot.office_hours import OfficeHours
from bot.outbox import Limits, OutboxSender
from bot.runtime import Runtime, create_runtime
from bot.settings import Settings
from bot.tickets import StaffDesk
from bot.transport import TelegramTransport
from handlers import admin, citizens, errors, staff
from handlers.delivery import Delivery
from handlers.middlewares import (
    DbSessionMiddleware,
    FloodMiddleware,
    LocaleMiddleware,
    MemoryRateLimiter,
)

log = logging.getLogger(__name__)


def create_bot(settings: Settings) -> Bot:
    """A Bot that talks to ``TELEGRAM_API_URL`` (official, self-hosted, or a test fake)."""
    if not settings.bot_token:
        raise ValueError("BOT_TOKEN is not set")
    api = TelegramAPIServer.from_base(settings.telegram_api_url.rstrip("/"))
    return Bot(settings.bot_token, session=AiohttpSession(api=api))


class InFlight(BaseMiddleware):
    """Counts updates being handled, so a shutdown can let them finish."""

    def __init__(self) -> None:
        self.count = 0
        self.idle = asyncio.Event()
        self.idle.set()

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        self.count += 1
        self.idle.clear()
        try:
            return await handler(event, data)
        finally:
            self.count -= 1
            if self.count == 0:
                self.idle.set()


@dataclass
class HotlineApp:
    settings: Settings
    runtime: Runtime
    bot: Bot
    dispatcher: Dispatcher
    sender: OutboxSender
    conversation: Conversation
    desk: StaffDesk
    in_flight: InFlight
    metrics: Metrics | None = None
    health: Health | None = None
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    _web: Any = None  # the panel's aiohttp AppRunner when served next to the bot

    async def start_workers(self) -> None:
        """Outbox sender, reminders, retention, weekly report, knowledge refresh, in the background;
        and the web panel next to the bot when WEB_PORT is set."""
        self._stop.clear()
        if self.settings.web_port and self._web is None:
            from bot.web import start_web  # the panel's templates load only when it is served

            self._web = await start_web(self.settings, self.runtime)
        self._tasks = [
            asyncio.create_task(self.sender.run(self._stop), name="outbox"),
            asyncio.create_task(self._reminders(), name="reminders"),
            asyncio.create_task(self._retention(), name="retention"),
            asyncio.create_task(self._weekly_report(), name="weekly-report"),
            asyncio.create_task(
                self.runtime.knowledge.run_refresher(self.settings.kb_refresh_seconds), name="kb-refresh"
            ),
        ]
        if self.runtime.notifier is not None:  # Redis: a publish elsewhere is served here at once
            knowledge = self.runtime.knowledge
            self._tasks.append(
                asyncio.create_task(
                    self.runtime.notifier.listen(lambda: knowledge.refresh_if_changed(announce=False)),
                    name="kb-notify",
                )
            )

    async def _reminders(self, interval: float = 60.0) -> None:
        while not self._stop.is_set():
            try:
                await self.remind_overdue()
            except Exception:
                log.exception("reminder pass failed")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=interval)

    async def _retention(self, interval: float = 3600.0) -> None:
        """Looks hourly; the pass itself runs at most once a calendar day across all instances."""
        while not self._stop.is_set():
            try:
                report = await self.retention_pass()
                if report is not None:
                    log.info("%s", report.summary())
            except Exception:
                log.exception("retention pass failed")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=interval)

    async def _weekly_report(self, interval: float = 60.0) -> None:
        """Looks every minute; the report goes out once per week across all instances."""
        if not self.settings.report_schedule.strip():
            return
        schedule = report_delivery.Schedule.parse(self.settings.report_schedule, self.settings.timezone)
        while not self._stop.is_set():
            try:
                async with self.runtime.sf() as session:
                    with use_locale(self.settings.locale):
                        week = await report_delivery.deliver_if_due(
                            session, schedule, self.settings.staff_chat_id
                        )
                if week:
                    log.info("weekly report %s queued for the staff group", week)
                    self.sender.wake()
            except Exception:
                log.exception("weekly report pass failed")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=interval)

    async def retention_pass(self) -> privacy.RetentionReport | None:
        async with self.runtime.sf() as session:
            report = await privacy.daily_retention(
                session, self.settings.retention_days, tz=self.settings.timezone
            )
            await privacy.prune_processed_updates(session)
            await session.commit()
            return report

    async def remind_overdue(self) -> int:
        async with self.runtime.sf() as session:
            with use_locale(self.settings.locale):
                out = await self.desk.due_reminders(session)
            await Delivery(self.sender)(session, out)
            return len(out)

    async def stop_workers(self, drain_seconds: float = 3.0) -> None:
        """Let in-flight updates finish, send what is due, then stop the workers."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.in_flight.idle.wait(), timeout=5.0)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.sender.drain(drain_seconds), timeout=drain_seconds + 0.5)
        self._stop.set()
        for task in self._tasks:
            if task.get_name() in ("kb-refresh", "kb-notify"):
                task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, timeout=2.0)
        self._tasks = []
        if self._web is not None:
            await self._web.cleanup()
            self._web = None

    async def set_commands(self) -> None:
        with use_locale(self.settings.locale):
            citizen_cmds = [
                BotCommand(command="start", description=_("开始 / 主题菜单")),
                BotCommand(command="help", description=_("使用说明")),
                BotCommand(command="human", description=_("转人工服务")),
                BotCommand(command="mytickets", description=_("我的工单")),
                BotCommand(command="privacy", description=_("个人信息说明")),
                BotCommand(command="forget", description=_("删除我的个人信息")),
            ]
            staff_cmds = [
                BotCommand(command="queue", description=_("未关闭工单")),
                BotCommand(command="ticket", description=_("查看工单：/ticket 编号")),
                BotCommand(command="close", description=_("关闭工单：/close 编号")),
                BotCommand(command="reopen", description=_("重新打开：/reopen 编号")),
            ]
            admin_cmds = [
                BotCommand(command="admin", description=_("管理员菜单")),
                BotCommand(command="kb_find", description=_("查找知识条目：/kb_find 文字")),
                BotCommand(command="kb_show", description=_("查看知识条目：/kb_show 编号")),
                BotCommand(command="review", description=_("审核队列")),
                BotCommand(command="gaps", description=_("知识缺口：/gaps 或 /gaps 30")),
                BotCommand(command="stats", description=_("统计（7 天和 30 天）")),
                BotCommand(command="web_login", description=_("网页管理后台一次性登录链接")),
                BotCommand(command="cancel", description=_("取消当前编辑")),
            ]
        await self.bot.set_my_commands(citizen_cmds, scope=BotCommandScopeAllPrivateChats())
        if self.settings.staff_chat_id is not None:
            with contextlib.suppress(Exception):  # the bot may not be in the group yet
                await self.bot.set_my_commands(
                    staff_cmds, scope=BotCommandScopeChat(chat_id=self.settings.staff_chat_id)
                )
        # Admin commands only in each admin's own chat (private chat id = user id); others never see them.
        for admin_id in self.settings.admin_ids:
            with contextlib.suppress(Exception):  # an admin who never opened the bot has no chat yet
                await self.bot.set_my_commands(
                    citizen_cmds + admin_cmds, scope=BotCommandScopeChat(chat_id=admin_id)
                )

    async def run_polling(self) -> None:
        """Long polling until SIGTERM/SIGINT; in-flight updates finish, then a clean exit."""
        await self.start_workers()
        with contextlib.suppress(Exception):
            await self.set_commands()
        await self.bot.delete_webhook(drop_pending_updates=False)
        health_server = None
        if self.health is not None and self.settings.health_port:
            health_server = await start_health_server(
                self.health, self.settings.health_host, self.settings.health_port
            )
        try:
            await self.dispatcher.start_polling(self.bot, handle_signals=True, close_bot_session=False)
        finally:
            await self.close()
            if health_server is not None:
                await health_server.cleanup()

    async def run_webhook(self, stop: asyncio.Event | None = None) -> None:
        """Webhook server (WEBHOOK_URL, WEBHOOK_SECRET) until SIGTERM/SIGINT or ``stop``; see bot.webhook."""
        from bot import webhook

        await webhook.serve(self, stop)

    async def close(self) -> None:
        if self.health is not None:
            self.health.stopping = True  # /readyz says 503: the balancer stops sending here
        await self.stop_workers()
        await self.bot.session.close()
        await self.runtime.close()


async def _mark_unreachable(session: AsyncSession, chat_id: int) -> None:
    """The citizen blocked the bot (403): shown on their tickets' cards."""
    await session.execute(
        update(Citizen)
        .where(Citizen.chat_id == chat_id, Citizen.unreachable_at.is_(None))
        .values(unreachable_at=utcnow())
    )


def create_dispatcher(
    settings: Settings,
    runtime: Runtime,
    sender: OutboxSender,
    conversation: Conversation,
    desk: StaffDesk,
    *,
    storage: BaseStorage | None = None,
    isolation: BaseEventIsolation | None = None,
    rate_limiter: Any = None,
    metrics: Metrics | None = None,
) -> tuple[Dispatcher, InFlight]:
    # Isolation: one update at a time per chat and user, so a citizen's messages keep their order.
    dp = Dispatcher(storage=storage or MemoryStorage(), events_isolation=isolation or SimpleEventIsolation())
    in_flight = InFlight()
    deliver = Delivery(sender)
    dp.workflow_data.update(
        settings=settings,
        settings_locale=settings.locale,
        sf=runtime.sf,
        knowledge=runtime.knowledge,
        conversation=conversation,
        desk=desk,
        deliver=deliver,
        staff_check=staff.StaffCheck(settings.staff_chat_id),
    )
    dp.update.outer_middleware(in_flight)
    dp.update.outer_middleware(DbSessionMiddleware(runtime.sf))
    if metrics is not None:  # inside the session middleware: it watches the update's session
        dp.update.outer_middleware(metrics.update_middleware())
    dp.update.outer_middleware(LocaleMiddleware(settings.locale))
    dp.message.outer_middleware(
        FloodMiddleware(rate_limiter or MemoryRateLimiter(settings.flood_messages_per_minute))
    )
    dp.include_routers(
        errors.build_router(),
        staff.build_router(settings.staff_chat_id),
        admin.build_router(settings.admin_ids),  # before citizens: admins' commands win, others fall through
        admin.build_web_login_router(settings),
        citizens.build_router(),
    )
    return dp, in_flight


async def create_app(
    settings: Settings,
    *,
    runtime: Runtime | None = None,
    storage: BaseStorage | None = None,
    rate_limiter: Any = None,
) -> HotlineApp:
    runtime = runtime or await create_runtime(settings)
    bot = create_bot(settings)
    hours = OfficeHours.parse(settings.office_hours, settings.timezone)
    desk = StaffDesk(settings.staff_chat_id, hours, settings.reminder_working_hours)
    conversation = Conversation(
        runtime.knowledge, desk, settings.bureau_facts(), retention_days=settings.retention_days
    )

    async def on_blocked(session: AsyncSession, chat_id: int) -> None:
        with use_locale(settings.locale):
            out = await desk.unreachable(session, chat_id)
        await Delivery(None).enqueue(session, out)

    limits = Limits(
        global_per_second=settings.send_rate_per_second,
        private_per_second=settings.send_rate_per_chat,
        private_burst=max(3.0, settings.send_rate_per_chat),
        group_per_minute=settings.send_rate_per_group_minute,
        group_burst=max(3.0, settings.send_rate_per_group_minute / 20),
    )
    isolation = None
    if runtime.redis is not None:  # several instances: state, per-chat order and flood counts shared
        from bot.redis_support import RedisRateLimiter, event_isolation, fsm_storage

        prefix = settings.redis_prefix
        storage = storage or fsm_storage(runtime.redis, prefix)
        isolation = event_isolation(runtime.redis, prefix, settings.lease_seconds)
        rate_limiter = rate_limiter or RedisRateLimiter(
            runtime.redis, settings.flood_messages_per_minute, prefix
        )
    metrics = Metrics(runtime.sf, desk)
    bot.session.middleware(metrics.request_middleware())  # Bot API errors by method and code
    sender = OutboxSender(
        runtime.sf,
        TelegramTransport(bot, on_api_error=metrics.count_api_error),
        on_blocked=on_blocked,
        on_result=metrics.on_send_result,
        limits=limits,
        lock_seconds=settings.lease_seconds,
    )
    metrics.sender = sender
    dp, in_flight = create_dispatcher(
        settings,
        runtime,
        sender,
        conversation,
        desk,
        storage=storage,
        isolation=isolation,
        rate_limiter=rate_limiter,
        metrics=metrics,
    )
    health = Health(runtime.engine, metrics=metrics, redis=runtime.redis)
    return HotlineApp(
        settings, runtime, bot, dp, sender, conversation, desk, in_flight, metrics=metrics, health=health
    )
