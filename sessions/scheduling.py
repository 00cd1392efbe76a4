"""Clinic-day rules for placing infusions: open days, series spacing and gaps.

Pure functions over dates; the services give them the clinic's closed days and the
patient's busy days. See ../shared/CLINICAL.md, "Induction series".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import pairwise

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

#: Fewest days between two infusions of a series, by infusions per week:
#: twice a week on non-consecutive days (Mon/Thu), three a week on alternate days.
MIN_SPACING_DAYS: dict[int, int] = {2: 3, 3: 2}
#: How far ahead a series may be planned before giving up (no open days).
PLANNING_HORIZON_DAYS = 366


@dataclass(frozen=True)
class Gap:
    """A stretch between two consecutive infusions of a series longer than allowed."""

    after: dt.date
    before: dt.date

    @property
    def days(self) -> int:
        return (self.before - self.after).days

    def __str__(self) -> str:
        return f"{self.days} days between {self.after:%a %d %b} and {self.before:%a %d %b}"


def closed_dates_between(start: dt.date, end: dt.date) -> set[dt.date]:
    """The clinic's closed dates (holidays) from ``start`` to ``end`` inclusive."""
    from sessions.models import ClosedDay

    return set(ClosedDay.objects.filter(date__range=(start, end)).values_list("date", flat=True))


def is_open_day(day: dt.date, closed_dates: Iterable[dt.date] = ()) -> bool:
    """Is the clinic open on ``day`` (not a closed weekday, not a closed date)?"""
    return day.weekday() not in settings.CLINIC_CLOSED_WEEKDAYS and day not in set(closed_dates)


def plan_series_dates(
    *, start: dt.date, count: int, per_week: int, unavailable: Callable[[dt.date], bool]
) -> list[dt.date]:
    """The dates of a series of ``count`` infusions at ``per_week`` a week from ``start``.

    Each infusion falls on the first available day at least ``MIN_SPACING_DAYS`` after
    the previous one, with no more than ``per_week`` in one calendar week. A day is
    available unless ``unavailable(day)`` (closed, or the patient is already booked).
    """
    if per_week not in MIN_SPACING_DAYS:
        raise ValidationError({"infusions_per_week": "A series runs two or three infusions a week."})
    if count < 1:
        raise ValidationError({"infusion_count": "A series has at least one infusion."})
    spacing = dt.timedelta(days=MIN_SPACING_DAYS[per_week])
    horizon = start + dt.timedelta(days=PLANNING_HORIZON_DAYS)
    dates: list[dt.date] = []
    per_iso_week: dict[tuple[int, int], int] = {}
    day = start
    while len(dates) < count:
        if day > horizon:
            raise ValidationError(f"No open clinic days were found within a year of {start:%d %b %Y}.")
        week = day.isocalendar()[:2]
        if per_iso_week.get(week, 0) < per_week and not unavailable(day):
            dates.append(day)
            per_iso_week[week] = per_iso_week.get(week, 0) + 1
            day += spacing
        else:
            day += dt.timedelta(days=1)
    return dates


def series_gaps(dates: Iterable[dt.date], max_gap_days: int | None = None) -> list[Gap]:
    """Gaps longer than ``CLINIC_SERIES_MAX_GAP_DAYS`` (default 7) between consecutive dates."""
    limit = settings.CLINIC_SERIES_MAX_GAP_DAYS if max_gap_days is None else max_gap_days
    ordered = sorted(dates)
    return [Gap(a, b) for a, b in pairwise(ordered) if (b - a).days > limit]


def default_appointment_time() -> dt.time:
    return dt.time.fromisoformat(settings.CLINIC_DEFAULT_APPOINTMENT_TIME)


def clinic_datetime(day: dt.date, at: dt.time) -> dt.datetime:
    """``day`` at local time ``at`` in the clinic's time zone, as an aware datetime."""
    return timezone.make_aware(dt.datetime.combine(day, at), timezone.get_default_timezone())


def clinic_date(moment: dt.datetime) -> dt.date:
    """The clinic-local calendar day of an aware datetime."""
    return timezone.localdate(moment, timezone.get_default_timezone())
