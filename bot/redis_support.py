"""What several instances share through Redis (``REDIS_URL``).

- FSM storage and events isolation: aiogram's ``RedisStorage`` / ``RedisEventIsolation``, so a
  conversation's state and the one-update-at-a-time-per-chat rule hold whichever instance gets
  the update.
- ``RedisRateLimiter``: the per-citizen flood limit counted across instances (same interface as
  ``handlers.middlewares.MemoryRateLimiter``).
- ``KnowledgeNotifier``: after a publish, every instance rebuilds its knowledge index at once
  instead of at its next poll (polling stays as the fallback when Redis is away).

All keys start with ``REDIS_PREFIX`` (default ``hotline``), so one Redis can serve several
deployments or test runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram.fsm.storage.redis import DefaultKeyBuilder, RedisEventIsolation, RedisStorage
from redis.asyncio import Redis

log = logging.getLogger(__name__)

WINDOW_MS = 60_000


def create_redis(url: str) -> Redis:
    """A client with a connection pool; commands time out instead of hanging an update."""
    return Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30)


class SharedRedisStorage(RedisStorage):
    """aiogram's storage on the runtime's client; closing the dispatcher leaves the client open
    (the runtime owns it: health checks and the notifier still use it while shutting down)."""

    async def close(self) -> None:
        pass


def fsm_key_builder(prefix: str) -> DefaultKeyBuilder:
    return DefaultKeyBuilder(prefix=f"{prefix}:fsm", with_bot_id=True, with_destiny=True)


def fsm_storage(redis: Redis, prefix: str) -> SharedRedisStorage:
    return SharedRedisStorage(redis, key_builder=fsm_key_builder(prefix))


def event_isolation(redis: Redis, prefix: str, lease_seconds: float = 60.0) -> RedisEventIsolation:
    # The lock expires after LEASE_SECONDS, so a chat is not stuck if an instance dies holding it.
    return RedisEventIsolation(
        redis, key_builder=fsm_key_builder(prefix), lock_kwargs={"timeout": lease_seconds}
    )


# A sliding one-minute window per citizen in a sorted set, in one atomic step on the server's
# clock (instances' clocks may differ). Every hit is recorded, allowed or not, so a citizen who
# keeps flooding stays limited; the notice is sent once per window.
_HIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], window)
if redis.call('ZCARD', KEYS[1]) <= tonumber(ARGV[2]) then
  return {1, 0}
end
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', window) then
  return {0, 1}
end
return {0, 0}
"""


class RedisRateLimiter:
    """More than ``per_minute`` hits in a minute from one key, counted over all instances."""

    def __init__(self, redis: Redis, per_minute: int, prefix: str = "hotline") -> None:
        self.redis = redis
        self.per_minute = per_minute
        self.prefix = prefix
        self._script = redis.register_script(_HIT)

    async def hit(self, key: int) -> tuple[bool, bool]:
        """(allowed, warn_now): warn once per window when the limit is first passed."""
        base = f"{self.prefix}:flood:{key}"
        try:
            allowed, warn = await self._script(
                keys=[base, base + ":warned"], args=[WINDOW_MS, self.per_minute, uuid.uuid4().hex]
            )
        except Exception:  # Redis away: let the citizen through rather than drop the message
            log.warning("flood limiter: Redis unavailable, not limiting", exc_info=True)
            return True, False
        return bool(allowed), bool(warn)


Refresh = Callable[[], Awaitable[Any]]


class KnowledgeNotifier:
    """Publishes "the knowledge base changed" and, in each bot instance, refreshes on it."""

    def __init__(self, redis: Redis, prefix: str = "hotline") -> None:
        self.redis = redis
        self.channel = f"{prefix}:kb-changed"

    async def publish(self, version: int) -> None:
        """Tell every instance (best effort: the pollers catch up if this is lost)."""
        try:
            await self.redis.publish(self.channel, str(version))
        except Exception:
            log.warning("knowledge change not announced (Redis unavailable); instances poll", exc_info=True)

    async def listen(self, refresh: Refresh, ready: asyncio.Event | None = None) -> None:
        """Call ``refresh`` on every announcement, forever (a background task; cancel to stop).

        Reconnects with a growing pause when Redis goes away; ``ready`` is set once subscribed.
        """
        pause = 0.5
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                if ready is not None:
                    ready.set()
                pause = 0.5
                while True:
                    message = await pubsub.get_message(timeout=30.0)
                    if message is None or message.get("type") != "message":
                        continue
                    try:
                        await refresh()
                    except Exception:
                        log.exception("knowledge refresh after an announcement failed")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("knowledge announcements: Redis unavailable (%s); retrying", type(exc).__name__)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 30.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

