"""The served knowledge: an index built from the database's published entries, kept fresh.

Each instance polls ``kb_state.version`` (cheap) and rebuilds its index when it changes, so
a publish reaches every instance within ``kb_refresh_seconds`` without a restart. A Redis
notification (issue 5) only shortens that delay.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import kb_store
from bot.settings import NOT_PUBLISHED, Settings
from knowledge.entries import Entry
from knowledge.matcher import KnowledgeIndex, MatchResult, Thresholds

log = logging.getLogger(__name__)

_PLACEHOLDER_RE = re.compile(r"\{([a-z_]+)\}")


def render_answer(answer: str, facts: dict[str, str]) -> str:
    """Fill {bureau_phone}-style placeholders; an unknown or unset one reads 请以民政局公布为准."""
    return _PLACEHOLDER_RE.sub(lambda m: facts.get(m.group(1)) or NOT_PUBLISHED, answer)


def thresholds_from(settings: Settings) -> Thresholds:
    return Thresholds(
        answer=settings.match_answer, clarify=settings.match_clarify, margin=settings.match_margin
    )


class KnowledgeService:
    def __init__(self, sf: async_sessionmaker[AsyncSession], thresholds: Thresholds | None = None) -> None:
        self._sf = sf
        self._thresholds = thresholds or Thresholds()
        self._index = KnowledgeIndex.build([], {}, self._thresholds)
        self._match = self._cached(self._index)
        self._version = -1
        self._lock = asyncio.Lock()
        # Called with the new version when this instance finds a change itself (right after a
        # publish made here): a Redis notifier then tells the other instances (bot.redis_support).
        self.on_new_version: Callable[[int], Awaitable[None]] | None = None

    @property
    def index(self) -> KnowledgeIndex:
        return self._index

    @property
    def version(self) -> int:
        return self._version

    async def load(self) -> KnowledgeIndex:
        """(Re)build the index from the published entries."""
        async with self._lock:
            async with self._sf() as session:
                version = await kb_store.kb_version(session)
                entries = await kb_store.published_entries(session)
                aliases = await kb_store.aliases(session)
            # Building is CPU work; keep the event loop free for other citizens meanwhile.
            index = await asyncio.to_thread(KnowledgeIndex.build, entries, aliases, self._thresholds)
            self._index, self._match, self._version = index, self._cached(index), version
            log.info(
                "knowledge index built: %d entries, version %d, %.0f ms",
                len(entries),
                version,
                index.build_seconds * 1000,
            )
            return index

    async def refresh_if_changed(self, *, announce: bool = True) -> bool:
        """Rebuild when the published version moved; ``announce`` it to the other instances."""
        async with self._sf() as session:
            version = await kb_store.kb_version(session)
        if version != self._version:
            await self.load()
            if announce and self.on_new_version is not None:
                await self.on_new_version(self._version)
            return True
        return False

    async def run_refresher(self, interval: float) -> None:
        """Poll for changes forever (a background task; cancelled on shutdown)."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.refresh_if_changed(announce=False)  # every instance polls: no need to tell
            except Exception:  # a database hiccup must not kill the refresher
                log.exception("knowledge refresh failed")

    @staticmethod
    def _cached(index: KnowledgeIndex) -> Callable[[str], MatchResult]:
        # In a burst (a policy announcement) many citizens send the very same words; the cache
        # lives and dies with its index, so a publish is never answered from stale results.
        return functools.lru_cache(maxsize=4096)(index.match)

    def match(self, question: str) -> MatchResult:
        return self._match(question)

    def entry(self, entry_id: str) -> Entry | None:
        return self._index.entry(entry_id)
