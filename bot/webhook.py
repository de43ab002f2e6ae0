"""Webhook mode: Telegram POSTs updates to an aiohttp server (several instances behind a proxy).

- Only requests carrying ``X-Telegram-Bot-Api-Secret-Token: WEBHOOK_SECRET`` are processed; any
  other gets 401 and nothing happens (aiogram's ``SimpleRequestHandler`` compares in constant time).
- An update is handled before the 200 goes back (not in the background): an instance that dies
  mid-update never acknowledged it, so Telegram delivers it again, to a live instance.
- ``/healthz``, ``/readyz`` and ``/metrics`` are served by the same server.
- SIGTERM/SIGINT: ``/readyz`` turns 503 and new updates get 503 (Telegram or the proxy retries them
  elsewhere); updates being handled finish; the outbox is drained; exit 0. The webhook stays
  registered: the other instances keep serving it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
from aiohttp import web

from bot.health import Health
from bot.settings import Settings, SettingsError

if TYPE_CHECKING:
    from bot.app import HotlineApp

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
_SECRET_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")  # what Telegram accepts as secret_token
DEFAULT_PATH = "/webhook"


def check_settings(settings: Settings) -> None:
    """Webhook mode needs a public URL and a secret; say which setting is missing or wrong."""
    if not settings.webhook_url:
        raise SettingsError(
            "setting WEBHOOK_URL is missing: webhook mode needs the public https URL Telegram posts to"
        )
    if not settings.webhook_url.startswith(("https://", "http://")):
        raise SettingsError("setting WEBHOOK_URL is invalid: it must start with https://")
    if not settings.webhook_secret:
        raise SettingsError(
            "setting WEBHOOK_SECRET is missing: webhook mode requires it so that only Telegram "
            "can post updates (1-256 characters: A-Z a-z 0-9 _ -)"
        )
    if not _SECRET_RE.fullmatch(settings.webhook_secret):
        raise SettingsError(
            "setting WEBHOOK_SECRET is invalid: use 1-256 characters from A-Z a-z 0-9 _ -"
        )


def webhook_path(settings: Settings) -> str:
    """The path the server listens on: the path of ``WEBHOOK_URL`` (a proxy forwards it as is)."""
    path = urlsplit(settings.webhook_url or "").path.rstrip("/")
    return path or DEFAULT_PATH


class _Handler(SimpleRequestHandler):
    """aiogram's handler, refusing new updates once the instance is stopping."""

    def __init__(self, app: HotlineApp, health: Health) -> None:
        super().__init__(
            app.dispatcher, app.bot, handle_in_background=False, secret_token=app.settings.webhook_secret
        )
        self._health = health

    async def handle(self, request: web.Request) -> web.Response:
        if self._health.stopping and self.verify_secret(request.headers.get(SECRET_HEADER, ""), self.bot):
            # Not handled, not acknowledged: Telegram (or the proxy) tries again, elsewhere.
            return web.Response(status=503, text="stopping")
        return await super().handle(request)

    async def close(self) -> None:
        """The application closes the bot's session itself, after the outbox is drained."""


def build_web_app(app: HotlineApp, health: Health) -> web.Application:
    web_app = web.Application()
    _Handler(app, health).register(web_app, path=webhook_path(app.settings))
    health.add_routes(web_app)
    setup_application(web_app, app.dispatcher, bot=app.bot)
    return web_app


async def serve(app: HotlineApp, stop: asyncio.Event | None = None) -> None:
    """Run until ``stop`` is set or SIGTERM/SIGINT arrives; then a clean stop (see the module doc)."""
    settings = app.settings
    check_settings(settings)
    health = app.health or Health(app.runtime.engine, metrics=app.metrics)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not in the main thread
            loop.add_signal_handler(sig, stop.set)

    await app.start_workers()
    with contextlib.suppress(Exception):
        await app.set_commands()
    runner = web.AppRunner(build_web_app(app, health), access_log=None, shutdown_timeout=10.0)
    await runner.setup()
    site = web.TCPSite(runner, settings.webhook_host, settings.webhook_port)
    try:
        await site.start()
        # Registered once the server listens, so Telegram's first delivery finds it.
        await app.bot.set_webhook(
            settings.webhook_url or "",
            secret_token=settings.webhook_secret,
            allowed_updates=app.dispatcher.resolve_used_update_types(),
            drop_pending_updates=False,
        )
        log.info(
            "webhook mode: %s on %s:%s (path %s)",
            settings.webhook_url,
            settings.webhook_host,
            settings.webhook_port,
            webhook_path(settings),
        )
        await stop.wait()
        log.info("stopping: finishing updates in flight, draining the outbox")
    finally:
        health.stopping = True
        for sig in signals:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        with contextlib.suppress(Exception):
            await site.stop()  # no new connections
        await app.close()  # waits for updates in flight, drains the outbox, closes sessions
        await runner.cleanup()
