"""Matcher benchmark: latency p50/p99, index build time and memory at 1k, 10k and 100k entries.

Baseline side by side: ``rapidfuzz.process.extractOne`` over every question (no index).

    python benchmarks/bench_matcher.py            # 1k, 10k, 100k
    python benchmarks/bench_matcher.py 1000 10000 # chosen sizes
"""

from __future__ import annotations

import datetime as dt
import gc
import random
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rapidfuzz import fuzz, process

from knowledge.entries import Entry
from knowledge.matcher import KnowledgeIndex
from knowledge.normalize import normalize

# Common characters so synthetic questions look like real ones to the n-gram index.
CHARS = (
    "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后"
    "多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还"
    "因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结"
    "解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级"
)
QUERY_TEMPLATES = ("请问{w}咋申请啊", "{w}要带啥材料", "我想办{w}去哪", "{w}的条件是什么")
TEMPLATES = ("{w}怎么申请", "{w}需要什么材料", "办理{w}去哪里", "{w}多久能办好", "{w}有什么条件")


def synthetic_entries(n: int, seed: int = 7) -> list[Entry]:
    rng = random.Random(seed)
    entries = []
    seen: set[str] = set()
    while len(entries) < n:
        word = "".join(rng.choice(CHARS) for _ in range(rng.choice((3, 4))))
        if word in seen:
            continue
        seen.add(word)
        qs = tuple(t.format(w=word) for t in rng.sample(TEMPLATES, 3))
        entries.append(
            Entry(
                id=f"e{len(entries)}",
                topic="合成",
                questions=qs,
                answer=f"{word}的答案。",
                source="synthetic",
                updated=dt.date(2018, 12, 15),
                keywords=(word,),
            )
        )
    return entries


def queries_for(entries: list[Entry], count: int, seed: int = 11) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        e = rng.choice(entries)
        word = e.keywords[0]
        template = rng.choice(QUERY_TEMPLATES)
        out.append((template.format(w=word), e.id))
    return out


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))
    return values[k]


def bench(n: int, n_queries: int = 2000) -> dict[str, float]:
    entries = synthetic_entries(n)
    gc.collect()
    started = time.perf_counter()
    index = KnowledgeIndex.build(entries, {})
    build_s = time.perf_counter() - started
    # Memory from a second, traced build (tracing slows the build, so it is not timed).
    tracemalloc.start()
    traced = KnowledgeIndex.build(entries, {})
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del traced
    qs = queries_for(entries, n_queries)
    index.match(qs[0][0])  # warm caches (OpenCC, pinyin)
    lat = []
    hits = 0
    for q, want in qs:
        t = time.perf_counter()
        r = index.match(q)
        lat.append((time.perf_counter() - t) * 1000)
        hits += bool(r.candidates) and r.candidates[0].entry_id == want
    # Baseline: the plain way, a fuzzy scan of every known question per query.
    all_q = [normalize(q) for e in entries for q in e.questions]
    base_lat = []
    for q, _ in qs[: max(50, n_queries // (1 + n // 2000))]:
        t = time.perf_counter()
        process.extractOne(normalize(q), all_q, scorer=fuzz.ratio)
        base_lat.append((time.perf_counter() - t) * 1000)
    return {
        "entries": n,
        "build_s": build_s,
        "mem_mb": current / 1e6,
        "peak_mb": peak / 1e6,
        "p50": percentile(lat, 50),
        "p99": percentile(lat, 99),
        "mean": statistics.fmean(lat),
        "base_p50": percentile(base_lat, 50),
        "base_p99": percentile(base_lat, 99),
        "found": hits / len(qs),
    }


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [1_000, 10_000, 100_000]
    print(
        "| entries | index build | index memory (peak) | p50 | p99 | top-1 "
        "| baseline extractOne p50 | baseline p99 |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in sizes:
        r = bench(n)
        print(
            f"| {n:,} | {r['build_s']:.2f} s | {r['mem_mb']:.0f} MB ({r['peak_mb']:.0f} MB) | "
            f"{r['p50']:.2f} ms | {r['p99']:.2f} ms | {r['found']:.1%} | "
            f"{r['base_p50']:.2f} ms | {r['base_p99']:.2f} ms |",
            flush=True,
        )


if __name__ == "__main__":
    main()
