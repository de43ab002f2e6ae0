"""Builds the shared services from settings: database, migrations, knowledge index.

Telegram, the terminal chat and the web panel all start from one ``Runtime``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot import db, kb_store
from bot.knowledge_service import KnowledgeService, thresholds_from
from bot.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sf: async_sessionmaker[AsyncSession]
    knowledge: KnowledgeService

    async def close(self) -> None:
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
    return Runtime(settings=settings, engine=engine, sf=sf, knowledge=knowledge)
