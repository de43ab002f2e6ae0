"""Builds the shared services from settings: database, migrations, knowledge index.

Telegram, the terminal chat and the web panel all start from one ``Runtime``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot import db, kb_store
from bot.knowledge_service import KnowledgeService, thresholds_from
from bot.settings import Settings

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from bot.redis_support import KnowledgeNotifier


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sf: async_sessionmaker[AsyncSession]
    knowledge: KnowledgeService
    redis: Redis | None = None  # REDIS_URL: shared by FSM storage, flood limiter, announcements
    notifier: KnowledgeNotifier | None = None

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()
        await self.engine.dispose()


async def create_runtime(settings: Settings, *, migrate: bool = True, seed: bool = True) -> Runtime:
    engine = db.create_engine(settings.database_url)
    if migrate:
        await db.upgrade(engine)
    sf = db.session_factory(engine)
    if seed:
        await kb_store.ensure_seeded(sf)
    knowledge = KnowledgeService(sf, thresholds_from(settings))
    await knowledge.load()
    redis, notifier = None, None
    if settings.redis_url:
        from bot.redis_support import KnowledgeNotifier, create_redis

        redis = create_redis(settings.redis_url)
        notifier = KnowledgeNotifier(redis, settings.redis_prefix)
        knowledge.on_new_version = notifier.publish  # a publish here reaches every instance at once
    return Runtime(
        settings=settings, engine=engine, sf=sf, knowledge=knowledge, redis=redis, notifier=notifier
    )
