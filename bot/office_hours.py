"""Office hours with China's statutory holidays and make-up working days.

``Mon-Fri 08:30-12:00,14:30-18:00`` (several groups separated by ``;``). Whether a date is a
working day comes from the maintained ``chinesecalendar`` package, which knows each year's
holidays and the weekend days that are worked instead (调休). For years it does not know yet,
the weekday rule applies.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import chinese_calendar

log = logging.getLogger(__name__)

_DAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}
_GROUP_RE = re.compile(r"^\s*([A-Za-z]{3})(?:\s*-\s*([A-Za-z]{3}))?\s+(.+)$")
_SPAN_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")

Span = tuple[dt.time, dt.time]


def _is_statutory_holiday(day: dt.date) -> bool:
    """A named public holiday (国庆节, 春节 …); ordinary weekends are not holidays."""
    try:
        is_holiday, name = chinese_calendar.get_holiday_detail(day)
    except NotImplementedError:  # a year the calendar does not know yet: weekday rule
        return False
    return bool(is_holiday and name)


def _is_makeup_workday(day: dt.date) -> bool:
    """A weekend day worked instead of a holiday (调休)."""
    if day.weekday() < 5:
        return False
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        return False


@dataclass(frozen=True)
class OfficeHours:
    spans_by_weekday: dict[int, tuple[Span, ...]]
    tz: ZoneInfo

    @classmethod
    def parse(cls, text: str, tz: str = "Asia/Shanghai") -> OfficeHours:
        by_day: dict[int, tuple[Span, ...]] = {}
        if not text or not text.strip():
            raise ValueError("office hours are empty; expected e.g. 'Mon-Fri 08:30-12:00,14:30-18:00'")
        for group in text.split(";"):
            m = _GROUP_RE.match(group)
            if not m or m.group(1).lower() not in _DAYS or (m.group(2) and m.group(2).lower() not in _DAYS):
                raise ValueError(
                    f"cannot read '{group.strip()}'; expected e.g. 'Mon-Fri 08:30-12:00,14:30-18:00'"
                )
            first = _DAYS[m.group(1).lower()]
            last = _DAYS[m.group(2).lower()] if m.group(2) else first
            spans: list[Span] = []
            for part in m.group(3).split(","):
                sm = _SPAN_RE.match(part)
                if not sm:
                    raise ValueError(f"cannot read time span '{part.strip()}'; expected e.g. 08:30-12:00")
                h1, m1, h2, m2 = (int(x) for x in sm.groups())
                if not (0 <= h1 <= 23 and 0 <= h2 <= 24 and m1 < 60 and m2 < 60):
                    raise ValueError(f"time out of range in '{part.strip()}'")
                start = dt.time(h1, m1)
                end = dt.time(23, 59, 59) if h2 == 24 else dt.time(h2, m2)
                if end <= start:
                    raise ValueError(f"span '{part.strip()}' ends before it starts")
                spans.append((start, end))
            day = first
            while True:
                by_day[day] = tuple(sorted(spans))
                if day == last:
                    break
                day = (day + 1) % 7
        return cls(by_day, ZoneInfo(tz))

    def spans_on(self, day: dt.date) -> tuple[Span, ...]:
        if _is_statutory_holiday(day):
            return ()
        weekday_spans = self.spans_by_weekday.get(day.weekday(), ())
        if not weekday_spans and _is_makeup_workday(day):
            # A weekend day worked instead of a holiday (调休) keeps Monday's hours.
            return self.spans_by_weekday.get(0, ())
        return weekday_spans

    def _local(self, moment: dt.datetime) -> dt.datetime:
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        return moment.astimezone(self.tz)

    def is_open(self, moment: dt.datetime) -> bool:
        local = self._local(moment)
        return any(s <= local.time() < e for s, e in self.spans_on(local.date()))

    def add_working_time(self, start: dt.datetime, hours: float) -> dt.datetime:
        """The moment when ``hours`` of office time have passed since ``start``."""
        remaining = dt.timedelta(hours=hours)
        local = self._local(start)
        day = local.date()
        for _ in range(400):
            for s, e in self.spans_on(day):
                span_start = dt.datetime.combine(day, s, self.tz)
                span_end = dt.datetime.combine(day, e, self.tz)
                begin = max(span_start, local)
                if begin >= span_end:
                    continue
                available = span_end - begin
                if available >= remaining:
                    return (begin + remaining).astimezone(dt.UTC)
                remaining -= available
            day += dt.timedelta(days=1)
        return (local + remaining).astimezone(dt.UTC)

    def next_open(self, moment: dt.datetime) -> dt.datetime:
        """Now if open, otherwise when the office next opens."""
        local = self._local(moment)
        day = local.date()
        for _ in range(400):
            for s, e in self.spans_on(day):
                span_start = dt.datetime.combine(day, s, self.tz)
                span_end = dt.datetime.combine(day, e, self.tz)
                if local < span_end:
                    return max(span_start, local).astimezone(dt.UTC)
            day += dt.timedelta(days=1)
        return local.astimezone(dt.UTC)

    def working_hours_between(self, start: dt.datetime, end: dt.datetime) -> float:
        if end <= start:
            return 0.0
        a, b = self._local(start), self._local(end)
        total = dt.timedelta()
        day = a.date()
        while day <= b.date():
            for s, e in self.spans_on(day):
                lo = max(dt.datetime.combine(day, s, self.tz), a)
                hi = min(dt.datetime.combine(day, e, self.tz), b)
                if hi > lo:
                    total += hi - lo
            day += dt.timedelta(days=1)
        return total.total_seconds() / 3600
