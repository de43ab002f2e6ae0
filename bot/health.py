"""Health and metrics endpoints for load balancers and Prometheus.

- ``GET /healthz``: the process is alive and its event loop answers (never touches the database,
  so a database outage does not get every instance restarted).
- ``GET /readyz``: the database answers ``SELECT 1`` and Redis answers ``PING`` (when configured);
  503 otherwise, and 503 while the instance is shutting down so the balancer stops sending to it.
- ``GET /metrics``: Prometheus text format (``bot.metrics``).

The routes are added to the webhook server; in polling mode they get a small server of their own
on ``HEALTH_HOST:HEALTH_PORT``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.metrics import Metrics

log = logging.getLogger(__name__)

CHECK_TIMEOUT = 3.0


class Pingable(Protocol):
    async def ping(self, **kwargs: Any) -> Any: ...


class Health:
    def __init__(
        self, engine: AsyncEngine, *, metrics: Metrics | None = None, redis: Pingable | None = None
    ) -> None:
        self.engine = engine
        self.metrics = metrics
        self.redis = redis
        self.stopping = False

    async def _database(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def _redis(self) -> None:
        assert self.redis is not None
        if not await self.redis.ping():
            raise RuntimeError("PING was not answered")

    async def checks(self) -> dict[str, str]:
        """Each dependency → "ok" or why not (the exception's class, never a URL with a password)."""
        probes = {"database": self._database}
        if self.redis is not None:
            probes["redis"] = self._redis
        results: dict[str, str] = {}
        for name, probe in probes.items():
            try:
                await asyncio.wait_for(probe(), timeout=CHECK_TIMEOUT)
                results[name] = "ok"
            except Exception as exc:
                log.warning("readiness: %s unavailable: %s", name, type(exc).__name__)
                results[name] = f"unavailable ({type(exc).__name__})"
        return results

    # --- aiohttp handlers -------------------------------------------------------------------

    async def healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(self, _request: web.Request) -> web.Response:
        if self.stopping:
            return web.json_response({"status": "stopping"}, status=503)
        checks = await self.checks()
        ok = all(v == "ok" for v in checks.values())
        body = {"status": "ready" if ok else "unavailable", **checks}
        return web.json_response(body, status=200 if ok else 503)

    async def metrics_view(self, _request: web.Request) -> web.Response:
        if self.metrics is None:
            raise web.HTTPNotFound()
        body = await self.metrics.render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics_view)


async def start_server(health: Health, host: str, port: int) -> web.AppRunner:
    """A server with only the health routes (polling mode); ``await runner.cleanup()`` stops it."""
    app = web.Application()
    health.add_routes(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    log.info("health and metrics on http://%s:%s (/healthz /readyz /metrics)", host, port)
    return runner
