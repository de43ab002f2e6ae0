"""Hotline figures as plain data: statistics, knowledge gaps and the weekly report.

Used by the admins' /stats and /gaps, the web panel and the weekly report download. What is
counted (from ``query_log`` and ``tickets``):

- a *question* is a citizen's message the matcher handled (flood-limited messages and greetings
  excluded); a clarification the citizen resolved by choosing a candidate counts once, as
  clarified and as answered by the bot;
- *tickets* are counted by the time they were opened (any route: the matcher escalated,
  /human, 没解决, 都不是); first response is wall-clock time to the first staff reply;
  satisfaction is the 1–5 rating of those tickets.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import statistics
from collections import Counter
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from rapidfuzz import fuzz, process
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.i18n import _
from bot.models import KbRevision, QueryLog, Ticket, utcnow
from knowledge.normalize import content_chars, normalize

GREETING_TOPIC = "寒暄"
GAP_SIMILARITY = 72  # rapidfuzz ratio (0–100) above which two normalised questions are one gap
GAP_KINDS = ("escalate", "clarify", "not_helpful")
MAX_GAP_ROWS = 20_000  # newest first; a county hotline has far fewer in a month
_WEEK_RE = re.compile(r"^(\d{4})-W(\d{1,2})$")


@dataclass(frozen=True)
class Stats:
    since: dt.datetime
    until: dt.datetime
    questions: int = 0
    answered_by_bot: int = 0
    clarified: int = 0
    escalated: int = 0  # questions the matcher handed straight to staff
    tickets: int = 0  # tickets opened, any route
    answered_by_staff: int = 0  # of those tickets, the ones a staff member replied to
    median_first_response_seconds: float | None = None
    satisfaction_avg: float | None = None
    satisfaction_count: int = 0
    helpful: int = 0
    not_helpful: int = 0
    greetings: int = 0
    date: dt.date | None = None  # set on a weekly report's per-day rows (local date)

    @property
    def bot_share(self) -> float | None:
        """Share of questions the bot answered (directly or after a clarification)."""
        return self.answered_by_bot / self.questions if self.questions else None


@dataclass(frozen=True)
class Gap:
    """A cluster of similar questions the knowledge base did not serve well."""

    question: str  # the most frequent wording
    count: int
    examples: tuple[str, ...]  # distinct wordings, most frequent first
    kinds: dict[str, int]  # escalate | clarify | not_helpful → how many
    # Entries involved: answered but not helpful, or chosen after a clarification (a paraphrase to add).
    entry_ids: tuple[str, ...] = ()
    ticket_ids: tuple[int, ...] = ()
    last_at: dt.datetime | None = None


@dataclass(frozen=True)
class TopicCount:
    topic: str
    count: int


@dataclass(frozen=True)
class WeeklyReport:
    week: str  # ISO week, e.g. 2026-W47
    tz: str
    start: dt.date  # Monday, local
    end: dt.date  # Sunday, local
    days: list[Stats]
    totals: Stats
    top_topics: list[TopicCount]
    unanswered: list[Gap]


@dataclass
class _Rows:
    queries: list[QueryLog] = field(default_factory=list)
    tickets: list[Ticket] = field(default_factory=list)
    topics: dict[str, str] = field(default_factory=dict)  # entry id → topic


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


async def _entry_topics(session: AsyncSession) -> dict[str, str]:
    rows = await session.execute(select(KbRevision.entry_id, KbRevision.topic).order_by(KbRevision.number))
    return {entry_id: topic for entry_id, topic in rows}  # the newest revision's topic wins


async def _load(session: AsyncSession, since: dt.datetime, until: dt.datetime) -> _Rows:
    since, until = _aware(since), _aware(until)
    queries = await session.scalars(
        select(QueryLog).where(QueryLog.at >= since, QueryLog.at < until).order_by(QueryLog.at)
    )
    tickets = await session.scalars(
        select(Ticket)
        .where(Ticket.created_at >= since, Ticket.created_at < until)
        .order_by(Ticket.created_at)
    )
    return _Rows(list(queries), list(tickets), await _entry_topics(session))


def _summarise(rows: _Rows, since: dt.datetime, until: dt.datetime, date: dt.date | None = None) -> Stats:
    since, until = _aware(since), _aware(until)
    questions = bot = clarified = escalated = helpful = not_helpful = greetings = 0
    for q in rows.queries:
        if not since <= _aware(q.at) < until or q.outcome == "flood":
            continue
        if q.entry_id and rows.topics.get(q.entry_id) == GREETING_TOPIC:
            greetings += 1
            continue
        if q.outcome == "answer":
            bot += 1
            questions += 1
        elif q.outcome == "clarify":
            clarified += 1
            # Resolved by choosing a candidate: that choice is logged as its own answered row.
            if q.entry_id is None:
                questions += 1
        elif q.outcome == "escalate":
            escalated += 1
            questions += 1
        helpful += q.feedback == "helpful"
        not_helpful += q.feedback == "not_helpful"
    tickets = [t for t in rows.tickets if since <= _aware(t.created_at) < until]
    waits = [
        (_aware(t.first_response_at) - _aware(t.created_at)).total_seconds()
        for t in tickets
        if t.first_response_at is not None
    ]
    ratings = [t.rating for t in tickets if t.rating]
    return Stats(
        since=since,
        until=until,
        questions=questions,
        answered_by_bot=bot,
        clarified=clarified,
        escalated=escalated,
        tickets=len(tickets),
        answered_by_staff=len(waits),
        median_first_response_seconds=float(statistics.median(waits)) if waits else None,
        satisfaction_avg=round(statistics.fmean(ratings), 2) if ratings else None,
        satisfaction_count=len(ratings),
        helpful=helpful,
        not_helpful=not_helpful,
        greetings=greetings,
        date=date,
    )


async def stats(session: AsyncSession, since: dt.datetime, until: dt.datetime) -> Stats:
    """Figures for [since, until) (aware datetimes; naive ones are taken as UTC)."""
    return _summarise(await _load(session, since, until), since, until)


def _redacted(question: str) -> bool:
    """An erased or expired question (bot.privacy.MARKERS, e.g. 〔已按本人要求删除〕): still counted
    in the figures, never shown as a wording."""
    text = question.strip()
    return text.startswith("〔") and text.endswith("〕")


def _gap_kind(q: QueryLog) -> str | None:
    if q.feedback == "not_helpful":
        return "not_helpful"
    if q.outcome in ("escalate", "clarify"):
        return q.outcome
    return None


def _group_gaps(queries: list[QueryLog], topics: dict[str, str], limit: int) -> list[Gap]:
    # Identical normalised wordings first, then similar ones folded into the most frequent.
    by_key: dict[str, list[QueryLog]] = {}
    for q in queries:
        kind = _gap_kind(q)
        if kind is None or (q.entry_id and topics.get(q.entry_id) == GREETING_TOPIC):
            continue
        if _redacted(q.question):
            continue
        key = normalize(q.question)
        if content_chars(key) < 2:  # junk and emoji: nothing an entry could answer
            continue
        by_key.setdefault(key, []).append(q)
    clusters: list[list[str]] = []
    reps: list[str] = []
    for key in sorted(by_key, key=lambda k: (-len(by_key[k]), k)):
        hit = process.extractOne(key, reps, scorer=fuzz.ratio, score_cutoff=GAP_SIMILARITY) if reps else None
        if hit is None:
            reps.append(key)
            clusters.append([key])
        else:
            clusters[hit[2]].append(key)
    gaps: list[Gap] = []
    for keys in clusters:
        members = [q for k in keys for q in by_key[k]]
        wordings = Counter(q.question.strip() for q in members)
        kinds = Counter(k for k in (_gap_kind(q) for q in members) if k)
        entries = Counter(q.entry_id for q in members if q.entry_id)
        examples = tuple(w for w, _n in wordings.most_common(5))
        gaps.append(
            Gap(
                question=examples[0],
                count=len(members),
                examples=examples,
                kinds={k: kinds[k] for k in GAP_KINDS if kinds[k]},
                entry_ids=tuple(e for e, _n in entries.most_common(3)),
                ticket_ids=tuple(sorted({q.ticket_id for q in members if q.ticket_id})),
                last_at=max(_aware(q.at) for q in members),
            )
        )
    gaps.sort(key=lambda g: (-g.count, -(g.last_at or utcnow()).timestamp()))
    return gaps[:limit]


async def gaps_between(
    session: AsyncSession, since: dt.datetime, until: dt.datetime, limit: int = 10
) -> list[Gap]:
    """The most frequent escalated, clarified and 没解决 questions in [since, until), grouped."""
    rows = await session.scalars(
        select(QueryLog)
        .where(QueryLog.at >= _aware(since), QueryLog.at < _aware(until))
        .where((QueryLog.outcome.in_(("escalate", "clarify"))) | (QueryLog.feedback == "not_helpful"))
        .order_by(QueryLog.at.desc())
        .limit(MAX_GAP_ROWS)
    )
    return _group_gaps(list(rows), await _entry_topics(session), limit)


async def gaps(
    session: AsyncSession, days: int = 7, limit: int = 10, *, now: dt.datetime | None = None
) -> list[Gap]:
    """The last ``days`` days' gaps (see gaps_between)."""
    until = _aware(now or utcnow())
    return await gaps_between(session, until - dt.timedelta(days=days), until, limit)


def week_bounds(week: str, tz: str = "Asia/Shanghai") -> tuple[dt.date, dt.datetime, dt.datetime]:
    """Monday of an ISO week like 2026-W47 and its [start, end) instants in ``tz``."""
    m = _WEEK_RE.match(week.strip())
    if not m:
        raise ValueError(_("周次格式应为 2026-W47"))
    try:
        monday = dt.date.fromisocalendar(int(m.group(1)), int(m.group(2)), 1)
    except ValueError as exc:
        raise ValueError(_("没有这一周：{week}", week=week)) from exc
    zone = ZoneInfo(tz)
    start = dt.datetime.combine(monday, dt.time(), zone)
    end = dt.datetime.combine(monday + dt.timedelta(days=7), dt.time(), zone)
    return monday, start, end


def iso_week(moment: dt.datetime | dt.date, tz: str = "Asia/Shanghai") -> str:
    """The ISO week (2026-W47) a moment falls in, in ``tz``."""
    day = _aware(moment).astimezone(ZoneInfo(tz)).date() if isinstance(moment, dt.datetime) else moment
    year, week, _day = day.isocalendar()
    return f"{year}-W{week:02d}"


def _top_topics(rows: _Rows, limit: int) -> list[TopicCount]:
    tickets = {t.id: t for t in rows.tickets}
    counts: Counter[str] = Counter()
    for q in rows.queries:
        if q.outcome == "flood" or (q.outcome == "clarify" and q.entry_id):
            continue  # a resolved clarification is counted by the answer that followed it
        topic = rows.topics.get(q.entry_id or "")
        if topic is None and q.ticket_id in tickets:
            topic = tickets[q.ticket_id].topic
        if topic and topic != GREETING_TOPIC:
            counts[topic] += 1
    return [TopicCount(t, n) for t, n in counts.most_common(limit)]


async def weekly_report(
    session: AsyncSession, week: str, tz: str = "Asia/Shanghai", *, top: int = 10
) -> WeeklyReport:
    """The bureau's weekly handling figures for an ISO week, per local day and in total."""
    monday, start, end = week_bounds(week, tz)
    zone = ZoneInfo(tz)
    rows = await _load(session, start, end)
    days = []
    for i in range(7):
        day = monday + dt.timedelta(days=i)
        lo = dt.datetime.combine(day, dt.time(), zone)
        hi = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), zone)
        days.append(_summarise(rows, lo, hi, date=day))
    unanswered = _group_gaps(sorted(rows.queries, key=lambda q: q.at, reverse=True), rows.topics, top)
    year, num, _d = monday.isocalendar()
    return WeeklyReport(
        week=f"{year}-W{num:02d}",
        tz=tz,
        start=monday,
        end=monday + dt.timedelta(days=6),
        days=days,
        totals=_summarise(rows, start, end),
        top_topics=_top_topics(rows, top),
        unanswered=unanswered,
    )


def _minutes(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds / 60:.1f}"


def _kind_label(kind: str) -> str:
    return {"escalate": _("转人工"), "clarify": _("需反问"), "not_helpful": _("没解决")}.get(kind, kind)


def report_csv(report: WeeklyReport, *, bom: bool = True) -> str:
    """The weekly report as CSV: per-day rows and a total, then top topics and unanswered questions.

    With ``bom`` the text starts with a UTF-8 byte-order mark so that Excel opens Chinese correctly.
    """
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\r\n")
    title = _("武定县民政局便民服务热线 周报")
    out.writerow([title, report.week, report.start.isoformat(), report.end.isoformat()])
    out.writerow(
        [
            _("日期"),
            _("提问数"),
            _("机器人解答"),
            _("反问澄清"),
            _("直接转人工"),
            _("人工工单"),
            _("人工已回复"),
            _("首次响应中位数（分钟）"),
            _("满意度平均（1-5）"),
            _("评价数"),
        ]
    )
    for s in [*report.days, report.totals]:
        out.writerow(
            [
                s.date.isoformat() if s.date else _("合计"),
                s.questions,
                s.answered_by_bot,
                s.clarified,
                s.escalated,
                s.tickets,
                s.answered_by_staff,
                _minutes(s.median_first_response_seconds),
                "" if s.satisfaction_avg is None else f"{s.satisfaction_avg:.2f}",
                s.satisfaction_count,
            ]
        )
    out.writerow([])
    out.writerow([_("热门主题"), _("提问数")])
    for t in report.top_topics:
        out.writerow([t.topic, t.count])
    out.writerow([])
    out.writerow([_("未解决的高频问题"), _("次数"), _("类型"), _("其他问法")])
    for g in report.unanswered:
        kinds = "；".join(f"{_kind_label(k)} {n}" for k, n in g.kinds.items())
        out.writerow([g.question, g.count, kinds, "；".join(g.examples[1:])])
    return ("\ufeff" if bom else "") + buf.getvalue()


def report_png(report: WeeklyReport) -> bytes:
    """The weekly report as a PNG chart (matplotlib, Agg backend, no display needed).

    Labels are ASCII on purpose: a server often has no CJK font, and tofu boxes are worse
    than English axis labels. The Chinese details are in the CSV and on the web page.
    """
    # Imported here: matplotlib is heavy and only the report needs it.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    labels = [s.date.strftime("%m-%d\n%a") if s.date else "" for s in report.days]
    x = list(range(len(report.days)))
    fig = Figure(figsize=(8, 9), dpi=100)
    FigureCanvasAgg(fig)
    ax1, ax2, ax3 = fig.subplots(3, 1, sharex=True)
    fig.suptitle(f"Hotline weekly report {report.week} ({report.start} to {report.end}, {report.tz})")

    width = 0.27
    series = [
        ("Answered by bot", [s.answered_by_bot for s in report.days], "#3b7dd8"),
        ("Tickets to staff", [s.tickets for s in report.days], "#e0a030"),
        ("Tickets answered by staff", [s.answered_by_staff for s in report.days], "#3a9a5b"),
    ]
    for i, (name, values, color) in enumerate(series):
        ax1.bar([v + (i - 1) * width for v in x], values, width, label=name, color=color)
    ax1.set_ylabel("count")
    ax1.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax1.set_title("Questions and tickets per day", fontsize=10)
    ax1.legend(fontsize=8, loc="upper right")

    medians = [(s.median_first_response_seconds or 0) / 60 for s in report.days]
    ax2.bar(x, medians, 0.5, color="#8a6bbf")
    ax2.set_ylabel("minutes")
    ax2.set_title("Median first response time (days without staff replies show 0)", fontsize=10)

    sat = [s.satisfaction_avg for s in report.days]
    rated = [(i, v) for i, v in zip(x, sat, strict=True) if v is not None]
    ax3.plot([i for i, _v in rated], [v for _i, v in rated], marker="o", color="#c0504d")
    ax3.set_ylim(0, 5.5)
    ax3.set_ylabel("rating (1-5)")
    week_avg = report.totals.satisfaction_avg
    ax3.set_title(
        f"Satisfaction (week: {week_avg or '-'} from {report.totals.satisfaction_count} ratings)", fontsize=10
    )
    ax3.set_xticks(x, labels)
    for ax in (ax1, ax2, ax3):
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
