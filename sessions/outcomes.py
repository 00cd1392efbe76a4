"""The clinic's outcomes across induction series, aggregated in the database.

Three reads, in one SQL statement whatever the number of series (``clinic_outcomes``; each
also alone), so the outcomes page runs the same number of queries for ten series as for
ten thousand, and finds the series, their infusions and their scores once for all three:

- ``response_curve``: mean PHQ-9 (0-27) before infusion 1, 2, ... of the series and after
  the series, with n and a 95 % confidence interval;
- ``series_outcomes``: how many complete series ended in response and in remission;
- ``days_to_first_booster``: days from the end of induction to the first booster, one value
  per complete series that has one.

Numbering the infusions of a series and picking "the latest PHQ-9 in a window" need
window functions (ROW_NUMBER) under a GROUP BY, which the ORM cannot aggregate over, so
the statements are SQL, with every value passed as a parameter. They run on PostgreSQL
and on SQLite >= 3.25 (the development server): the three expressions that differ
between the two (a timestamp's clinic-local date, a timestamp plus some days, the days
between two dates) come from ``_Dialect``.

The clinical rules restated here in SQL use the constants of ``patients.phq9``: the
baseline window of ``phq9_baseline`` (CLINIC_BASELINE_WINDOW_DAYS), response and remission
of ``phq9_outcome``. tests/test_outcomes.py checks that the SQL agrees with those functions
on the demo clinic.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from patients.models import Patient, PHQ9Assessment
from patients.phq9 import REMISSION_BELOW, RESPONSE_REDUCTION
from sessions.models import InductionSeries, InfusionSession, Protocol, SessionKind, SessionStatus

#: "After the series" is the latest PHQ-9 within this many days after its last infusion.

#: Two-sided 95 % normal quantile, for mean +- Z * sd / sqrt(n).
Z_95 = 1.96


# --- What the page asks and what it gets back ------------------------------------------


@dataclass(frozen=True)
class OutcomeFilters:
    """Which induction series to include; an empty value means all."""

    protocol_id: uuid.UUID | None = None
    route: str = ""  # the series' protocol route (sessions.models.Route)
    diagnosis: str = ""  # the patient's primary diagnosis (patients.models.Diagnosis)
    started_from: dt.date | None = None  # series start date, inclusive
    started_to: dt.date | None = None  # series start date, inclusive


@dataclass(frozen=True)
class CurvePoint:
    """Mean PHQ-9 (0-27) at one point of the series, over ``n`` series."""

    #: 1, 2, ... for the score before that infusion; None for "after the series".
    infusion: int | None
    n: int
    mean: float
    #: Sample standard deviation; None below two series.
    sd: float | None

    @classmethod
    def from_sums(cls, infusion: int | None, n: int, total: int, squares: int) -> CurvePoint:
        """From the count, sum and sum of squares of the scores (exact integers from SQL)."""
        sd = math.sqrt((n * squares - total * total) / (n * (n - 1))) if n >= 2 else None
        return cls(infusion=infusion, n=n, mean=total / n, sd=sd)

    @property
    def is_after(self) -> bool:
        return self.infusion is None

    @property
    def label(self) -> str:
        return "After the series" if self.is_after else f"Infusion {self.infusion}"

    @property
    def ci_half_width(self) -> float | None:
        return None if self.sd is None else Z_95 * self.sd / math.sqrt(self.n)

    @property
    def ci_low(self) -> float | None:
        half = self.ci_half_width
        return None if half is None else self.mean - half

    @property
    def ci_high(self) -> float | None:
        half = self.ci_half_width
        return None if half is None else self.mean + half


@dataclass(frozen=True)
class Share:
    """``count`` of ``total`` series in a state, e.g. "14 of 20 series (70 %) in response"."""

    count: int
    total: int
    state: str

    @property
    def percent(self) -> int | None:
        if not self.total:
            return None
        return int((Decimal(100 * self.count) / self.total).quantize(Decimal(1), rounding=ROUND_HALF_UP))

    def __str__(self) -> str:
        if not self.total:
            return f"No series can be counted for {self.state} yet."
        return f"{self.count} of {self.total} series ({self.percent} %) in {self.state}"


@dataclass(frozen=True)
class SeriesOutcomes:
    """Where complete series stand after their last infusion."""

    #: Series whose planned number of infusions was completed.
    complete: int
    #: ... with a PHQ-9 within CLINIC_AFTER_SERIES_DAYS after the last infusion.
    with_after: int
    #: ... with that score and a baseline (needed to judge response).
    with_baseline_and_after: int
    #: >= 50 % below the episode's baseline.
    in_response: int
    #: below 5.
    in_remission: int

    @property
    def response(self) -> Share:
        return Share(self.in_response, self.with_baseline_and_after, "response")

    @property
    def remission(self) -> Share:
        return Share(self.in_remission, self.with_after, "remission")


# --- The SQL --------------------------------------------------------------------------------


class _Dialect:
    """The few expressions PostgreSQL and SQLite write differently, as SQL with named
    parameters added to ``params``."""

    def __init__(self, params: dict[str, Any]) -> None:
        if connection.vendor not in {"postgresql", "sqlite"}:
            raise NotImplementedError(f"The outcome queries support PostgreSQL and SQLite, not {connection.vendor}.")
        self.vendor = connection.vendor
        self.params = params

    def param(self, value: Any) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f"%({name})s"

    def local_date(self, column: str) -> str:
        """The clinic-local calendar day of a timestamp column (as ``clinic_date`` does)."""
        sql, params = connection.ops.datetime_cast_date_sql(column, (), timezone.get_default_timezone_name())
        return sql % tuple(self.param(value) for value in params)

    def plus_days(self, column: str, days: int) -> str:
        """A timestamp column moved by whole days of 24 hours (the database works in UTC)."""
        if self.vendor == "postgresql":
            return f"({column} + {self.param(dt.timedelta(days=days))})"
        # Django stores timestamps on SQLite as UTC text; datetime() keeps whole seconds,
        # close enough for the development server.
        return f"datetime({column}, {self.param(f'{days:+d} days')})"

    def materialized(self) -> str:
        """Keeps PostgreSQL from inlining a CTE into each place that reads its columns (which
        would run its correlated subqueries once per reference); SQLite runs them as written."""
        return "MATERIALIZED " if self.vendor == "postgresql" else ""

    def days_between(self, later: str, earlier: str) -> str:
        """Whole days from one date column to another."""
        if self.vendor == "postgresql":
            return f"({later} - {earlier})"
        return f"CAST(julianday({later}) - julianday({earlier}) AS INTEGER)"


def _tables() -> dict[str, str]:
    return {
        "series_table": InductionSeries._meta.db_table,
        "session_table": InfusionSession._meta.db_table,
        "protocol_table": Protocol._meta.db_table,
        "patient_table": Patient._meta.db_table,
        "phq9_table": PHQ9Assessment._meta.db_table,
    }


def _base(filters: OutcomeFilters, sql: _Dialect) -> str:
    """The common table expressions every outcome starts from.

    - ``given``: the completed induction infusions of the induction series the filters
      select, numbered 1, 2, ... in order within each series, with the series' count of
      completed infusions, planned infusions and start date;
    - ``ended``: the complete series (planned number of infusions given), with when the
      first and the last infusion started and the clinic day of the last.

    The series carry their planned infusions and start date through ``given``, so ``ended``
    is one pass over it (no second join to the series, whose row estimate used to inflate
    the plan's cost past PostgreSQL's JIT thresholds); the protocol and the patient are
    joined only when a filter needs them (both are required foreign keys).
    """
    p = sql.param
    joins = []
    where = []
    if filters.protocol_id:
        where.append(f"s.protocol_id = {p(Protocol._meta.pk.get_db_prep_value(filters.protocol_id, connection))}")
    if filters.route:
        joins.append("JOIN {protocol_table} pr ON pr.id = s.protocol_id")
        where.append(f"pr.route = {p(filters.route)}")
    if filters.diagnosis:
        joins.append("JOIN {patient_table} pa ON pa.id = s.patient_id")
        where.append(f"pa.primary_diagnosis = {p(filters.diagnosis)}")
    if filters.started_from:
        where.append(f"s.start_date >= {p(connection.ops.adapt_datefield_value(filters.started_from))}")
    if filters.started_to:
        where.append(f"s.start_date <= {p(connection.ops.adapt_datefield_value(filters.started_to))}")
    return """
WITH given AS (
    SELECT i.id, i.series_id, i.patient_id, i.scheduled_on, i.started_at, s.planned_infusions, s.start_date,
           ROW_NUMBER() OVER (PARTITION BY i.series_id ORDER BY i.scheduled_at, i.id) AS number,
           COUNT(*) OVER (PARTITION BY i.series_id) AS completed
    FROM {session_table} i
    JOIN {series_table} s ON s.id = i.series_id
    {joins}
    WHERE i.kind = {induction} AND i.status = {completed}{where}
),
ended AS (
    SELECT g.series_id, g.patient_id, g.start_date,
           MAX(CASE WHEN g.number = 1 THEN g.started_at END) AS first_at,
           MAX(CASE WHEN g.number = g.completed THEN g.started_at END) AS last_at,
           MAX(CASE WHEN g.number = g.completed THEN g.scheduled_on END) AS last_on
    FROM given g
    WHERE g.completed >= g.planned_infusions
    GROUP BY g.series_id, g.patient_id, g.start_date
)""".format(
        **_tables(),
        joins="\n    ".join(joins).format(**_tables()),
        where="".join(f" AND {condition}" for condition in where),
        induction=p(SessionKind.INDUCTION.value),
        completed=p(SessionStatus.COMPLETED.value),
    )


def _latest_total(after: str, upto: str, *, inclusive_after: bool) -> str:
    """The total of the patient's (``e.patient_id``) latest PHQ-9 taken in a window, NULL
    without one: one probe of the (patient, taken_at) index per complete series."""
    return """(
        SELECT p.total FROM {phq9_table} p
        WHERE p.patient_id = e.patient_id AND p.taken_at {after_op} {after} AND p.taken_at <= {upto}
        ORDER BY p.taken_at DESC, p.id DESC
        LIMIT 1
    )""".format(**_tables(), after_op=">=" if inclusive_after else ">", after=after, upto=upto)


def _after_total(sql: _Dialect) -> str:
    """The latest PHQ-9 within CLINIC_AFTER_SERIES_DAYS after a complete series' last infusion."""
    return _latest_total("e.last_at", sql.plus_days("e.last_at", after_series_days()), inclusive_after=False)


def _run(statement: str, params: dict[str, Any]) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall()


@dataclass(frozen=True)
class ClinicOutcomes:
    """The outcomes page's three reads (each empty when not asked for)."""

    curve: list[CurvePoint]
    series: SeriesOutcomes | None
    days_to_booster: list[int]


def clinic_outcomes(
    filters: OutcomeFilters, *, curve: bool = True, series: bool = True, days: bool = True
) -> ClinicOutcomes:
    """The reads asked for, in one statement: the series, their numbered infusions and
    their scores are found once for all three (``_base``, ``scored``)."""
    params: dict[str, Any] = {}
    sql = _Dialect(params)
    ctes = [_scored(sql)] if curve or series else []
    parts = []
    none = "CAST(NULL AS BIGINT)"  # a typed empty column: UNION ALL matches the parts' types
    if curve:
        ctes.append(_pre(sql))
        parts.append(
            f"SELECT 'curve', number, COUNT(total), SUM(total), SUM(total * total), {none} FROM pre GROUP BY number"
            f"\nUNION ALL\nSELECT 'curve', {none}, COUNT(after), SUM(after), SUM(after * after), {none} FROM scored"
        )
    if series:
        parts.append(_series_select(sql))
    if days:
        ctes.append(_episode(sql))
        parts.append(
            f"SELECT 'days', {sql.days_between('x.first_booster_on', 'x.last_on')}, {none}, {none}, {none}, {none} "
            "FROM episode x WHERE x.first_booster_on IS NOT NULL"
        )
    statement = _base(filters, sql) + "".join(f",\n{cte}" for cte in ctes) + "\n" + "\nUNION ALL\n".join(parts)
    points, outcome, waits = [], None, []
    for part, *values in _run(statement, params):
        if part == "curve" and values[1]:  # points without any score are left out
            points.append(CurvePoint.from_sums(*values[:4]))
        elif part == "series":
            outcome = SeriesOutcomes(*(int(value) for value in values))
        elif part == "days":
            waits.append(int(values[0]))
    return ClinicOutcomes(
        # Infusions in order, "after the series" last (at most 13 rows).
        curve=sorted(points, key=lambda point: (point.is_after, point.infusion or 0)),
        series=outcome,
        days_to_booster=sorted(waits),
    )


def response_curve(filters: OutcomeFilters) -> list[CurvePoint]:
    """Mean PHQ-9 by infusion number (1, 2, ...) and after the series (last), one query.

    The score for infusion k of a series is the patient's latest PHQ-9 taken on that
    infusion's clinic day at or before it started (the pre-infusion questionnaire).
    Infusion points count every series in the filter that reached that infusion, in
    progress or not; the point after the series counts complete series with a PHQ-9 within
    CLINIC_AFTER_SERIES_DAYS after their last infusion. Points without any score are left out.
    """
    return clinic_outcomes(filters, series=False, days=False).curve


def series_outcomes(filters: OutcomeFilters) -> SeriesOutcomes:
    """Response and remission of complete series, counted in SQL, one query.

    Baseline: the latest PHQ-9 within CLINIC_BASELINE_WINDOW_DAYS before the first
    infusion, up to its start (``phq9_baseline``; for a complete series its first infusion
    is its first completed one). Outcome: the latest PHQ-9 within
    CLINIC_AFTER_SERIES_DAYS after the last infusion. Response is a total at least
    RESPONSE_REDUCTION below a baseline above 0; remission a total below REMISSION_BELOW
    (``phq9_outcome``).
    """
    return clinic_outcomes(filters, curve=False, days=False).series


def days_to_first_booster(filters: OutcomeFilters) -> list[int]:
    """Days from the end of induction to the first booster after it, smallest first, one query.

    One value per complete series that has a booster given or booked after its last
    infusion (clinic days). A booster on or after the start of the patient's next induction
    series belongs to that new episode, not to this one.
    """
    return clinic_outcomes(filters, curve=False, series=False).days_to_booster


def _scored(sql: _Dialect) -> str:
    """Each complete series' baseline and "after" PHQ-9 totals (see ``series_outcomes``)."""
    return """scored AS {materialized}(
    SELECT {baseline} AS baseline, {after} AS after
    FROM ended e
)""".format(
        materialized=sql.materialized(),
        baseline=_latest_total(
            sql.plus_days("e.first_at", -settings.CLINIC_BASELINE_WINDOW_DAYS), "e.first_at", inclusive_after=True
        ),
        after=_after_total(sql),
    )


def _series_select(sql: _Dialect) -> str:
    p = sql.param
    return f"""SELECT 'series', COUNT(*),
       COUNT(after),
       COUNT(CASE WHEN after IS NOT NULL AND baseline IS NOT NULL THEN 1 END),
       COUNT(CASE WHEN baseline > 0 AND baseline - after >= {p(RESPONSE_REDUCTION)} * baseline THEN 1 END),
       COUNT(CASE WHEN after < {p(REMISSION_BELOW)} THEN 1 END)
FROM scored"""


def _pre(sql: _Dialect) -> str:
    """Each infusion's number and its pre-infusion PHQ-9 total (see ``response_curve``)."""
    return """pre AS {materialized}(
    SELECT g.number, (
        SELECT p.total FROM {phq9_table} p
        WHERE p.patient_id = g.patient_id
          AND p.taken_at <= g.started_at
          AND p.taken_at >= {day_window_start}
          AND {same_day} = 0
        ORDER BY p.taken_at DESC, p.id DESC
        LIMIT 1
    ) AS total
    FROM given g
)""".format(
        **_tables(),
        # The exact rule is the clinic-day comparison; the two-day bound only lets the
        # (patient, taken_at) index narrow the rows first, and the latest one found on
        # the infusion's day is the one (one probe per infusion, no sort of them all).
        day_window_start=sql.plus_days("g.started_at", -2),
        same_day=sql.days_between("g.scheduled_on", sql.local_date("p.taken_at")),
        materialized=sql.materialized(),  # each probe once, not once per aggregate
    )


def _episode(sql: _Dialect) -> str:
    """Each complete series' last day and the first booster of its episode (see
    ``days_to_first_booster``): the start of the patient's next series and the first
    booster before it are two probes of the (patient, start date) and (patient, day)
    indexes per series, instead of joining every booster of the clinic."""
    p = sql.param
    return """episode AS {materialized}(
    SELECT e.last_on,
           (SELECT MIN(b.scheduled_on) FROM {session_table} b
            WHERE b.patient_id = e.patient_id
              AND b.kind = {booster}
              AND b.status IN ({scheduled}, {completed})
              AND b.scheduled_on > e.last_on
              AND b.scheduled_on < COALESCE(
                  (SELECT MIN(n.start_date) FROM {series_table} n
                   WHERE n.patient_id = e.patient_id AND n.start_date > e.start_date),
                  {far_future})) AS first_booster_on
    FROM ended e
)""".format(
        **_tables(),
        booster=p(SessionKind.BOOSTER.value),
        scheduled=p(SessionStatus.SCHEDULED.value),
        completed=p(SessionStatus.COMPLETED.value),
        far_future=p(connection.ops.adapt_datefield_value(dt.date.max)),
        materialized=sql.materialized(),  # each probe once, not once for the filter and once for the days
    )


def after_series_days() -> int:
    """The window after a series' last infusion in which its outcome PHQ-9 is taken (days)."""
    return settings.CLINIC_AFTER_SERIES_DAYS
