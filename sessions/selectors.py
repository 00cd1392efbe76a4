"""Reads about a patient's treatment episodes.

``PatientHistory`` reads a patient's PHQ-9s, infusions and series once (one statement on
PostgreSQL, ``_Statement``) and is the one home of the rules derived from them: the
current episode and its baseline, the treatment summary, the response curve, the
timeline, the upcoming appointments and the open safety alerts, and for
``maintenance.selectors.booster_status`` the last infusion and the end of induction. The
patient page and the portal load it once per request; the functions after it
(``patient_treatment_summary``, ``patient_timeline``, ``response_curve_data``) are the
same reads for callers that need one of them.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections import Counter
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, models
from django.utils import timezone
from django.utils.encoding import force_str

from patients.models import Patient, PHQ9Assessment
from patients.phq9 import Outcome, phq9_outcome
from sessions.models import OCCUPYING_STATUSES, InductionSeries, InfusionSession, Protocol, SessionKind, SessionStatus
from sessions.scheduling import clinic_datetime


@dataclass(frozen=True)
class TreatmentSummary:
    """The current episode (latest induction series) and where the patient stands in it."""

    series: InductionSeries | None
    baseline: PHQ9Assessment | None
    latest: PHQ9Assessment | None
    outcome: Outcome | None


@dataclass(frozen=True)
class TimelineEntry:
    when: dt.datetime
    kind: str  # "phq9", "infusion", "booster", "series"
    title: str
    detail: str = ""
    badge: str = ""  # a badge modifier (status or severity value)
    badge_label: str = ""
    #: the record behind the entry (PHQ9Assessment, InfusionSession or InductionSeries)
    record: object = None


@dataclass(frozen=True)
class CurvePoint:
    taken_at: dt.datetime
    total: int
    band: str
    item_9: int
    #: the infusion the questionnaire was filled in for (same clinic day), if any
    infusion: str


@dataclass(frozen=True)
class CurveInfusion:
    when: dt.datetime
    label: str
    is_booster: bool


@dataclass(frozen=True)
class ResponseCurveData:
    points: list[CurvePoint]
    infusions: list[CurveInfusion]
    baseline: PHQ9Assessment | None


@functools.cache
def _labels(model, field: str) -> dict[str, str]:
    """A field's choices as ``get_<field>_display()`` gives them (looked up once)."""
    return {value: force_str(label) for value, label in model._meta.get_field(field).flatchoices}


#: The columns of a patient's history that ``PatientHistory`` reads (the rest, free text
#: and bookkeeping, is not): its PHQ-9s and infusions; series and their protocols whole.
PHQ9_FIELDS = ("id", "patient_id", "taken_at", "total", "item_9", "source", "safety_acknowledged_at")
SESSION_FIELDS = (
    *("id", "patient_id", "series_id", "kind", "status", "scheduled_at", "scheduled_on"),
    *("started_at", "ended_at", "route"),
)


@dataclass(frozen=True)
class _Part:
    """One model's share of the columns of a ``_Statement``: from ``start`` on, its fields
    ``attnames`` (in the model's order, as ``Model.from_db`` takes them), each read as the
    SQL in ``columns`` says and made a value by ``converters`` (``(index, function)``): the
    ORM's own converters, and times, which come as epoch microseconds (an integer is much
    cheaper to read than a timestamp to parse, as in maintenance.selectors._scores_since)."""

    model: type
    alias: str
    attnames: tuple[str, ...]
    columns: tuple[str, ...]
    nulls: tuple[str, ...]  # a typed NULL per column, for the rows of the other models
    converters: tuple
    start: int
    pk_index: int

    @classmethod
    def of(cls, model, alias: str, start: int, only: tuple[str, ...] = ()) -> _Part:
        quote = connection.ops.quote_name
        epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC).astimezone(connection.timezone)

        def moment(micros: int | None) -> dt.datetime | None:
            return None if micros is None else epoch + dt.timedelta(microseconds=micros)

        fields = [f for f in model._meta.concrete_fields if not only or f.attname in only]
        columns, nulls, converters = [], [], []
        for index, field in enumerate(fields):
            column = f"{alias}.{quote(field.column)}"
            if isinstance(field, models.DateTimeField):
                columns.append(f"(extract(epoch FROM {column}) * 1000000)::bigint")
                nulls.append("NULL::bigint")
                converters.append((index, moment))
                continue
            columns.append(column)
            nulls.append(f"NULL::{field.cast_db_type(connection)}")
            expression = field.get_col(model._meta.db_table)
            for convert in connection.ops.get_db_converters(expression) + field.get_db_converters(connection):
                converters.append((index, functools.partial(_convert, convert, expression)))
        attnames = tuple(f.attname for f in fields)
        pk_index = attnames.index(model._meta.pk.attname)
        return cls(model, alias, attnames, tuple(columns), tuple(nulls), tuple(converters), start, pk_index)

    @property
    def end(self) -> int:
        return self.start + len(self.attnames)

    def column(self, name: str) -> str:
        return f"{self.alias}.{connection.ops.quote_name(self.model._meta.get_field(name).column)}"

    def table(self) -> str:
        return f"{connection.ops.quote_name(self.model._meta.db_table)} {self.alias}"

    def position(self, attname: str) -> int:
        """The column's position in the statement's rows, counting from 1 (for ORDER BY)."""
        return self.start + self.attnames.index(attname) + 1

    def instance(self, row: tuple, db: str):
        """The model instance in ``row`` (read from database ``db``), or None when the row
        has none (an outer join's NULLs)."""
        values = list(row[self.start : self.end])
        if values[self.pk_index] is None:
            return None
        for index, convert in self.converters:
            values[index] = convert(values[index])
        return self.model.from_db(db, self.attnames, values)


def _convert(converter, expression, value):
    """One of the ORM's converters (``from_db_value`` and the like) applied to ``value``."""
    return converter(value, expression, connection)


@dataclass(frozen=True)
class _Statement:
    """A patient's PHQ-9s, infusions and series (each with its protocol) in one PostgreSQL
    statement, built once from the models' metadata: the ORM's reads in one round trip,
    without compiling querysets on every page; and, if asked, the patient's own row with
    their primary clinician, login and maintenance plan (as ``select_related`` joins them).
    The patient's id is the parameter ``%(patient)s``.

    Each row starts with whose it is (0: a PHQ-9, 1: an infusion, 2: a series and its
    protocol, 3: the patient); the columns of the other rows are NULL. Ordered as the ORM
    reads them: PHQ-9s by time, infusions by time, series newest first.
    """

    sql: str
    phq9: _Part
    session: _Part
    series: _Part
    protocol: _Part
    patient: tuple[_Part, _Part, _Part, _Part] | None  # the patient, clinician, login, plan

    @classmethod
    @functools.cache
    def build(cls, *, with_patient: bool) -> _Statement:
        from django.contrib.auth import get_user_model

        from maintenance.models import MaintenancePlan

        phq9 = _Part.of(PHQ9Assessment, "a", 1, only=PHQ9_FIELDS)
        session = _Part.of(InfusionSession, "s", phq9.end, only=SESSION_FIELDS)
        series = _Part.of(InductionSeries, "r", session.end)
        protocol = _Part.of(Protocol, "p", series.end)
        parts = [phq9, session, series, protocol]
        patient = None
        if with_patient:
            person = _Part.of(Patient, "pt", protocol.end)
            clinician = _Part.of(get_user_model(), "cl", person.end)
            login = _Part.of(get_user_model(), "lg", clinician.end)
            plan = _Part.of(MaintenancePlan, "mp", login.end)
            patient = (person, clinician, login, plan)
            parts += patient

        def select(number: int, *own: _Part) -> str:
            # The first branch gives each column its type (typed NULLs where it has none);
            # the later branches' NULLs take it (typing them all costs the planner more).
            typed = [column for part in parts for column in part.nulls]
            slots = typed if number == 0 else ["NULL"] * len(typed)
            for part in own:
                slots[part.start - 1 : part.end - 1] = part.columns
            return f"SELECT {number}, {', '.join(slots)}"

        branches = [
            f"{select(0, phq9)} FROM {phq9.table()} WHERE {phq9.column('patient')} = %(patient)s",
            f"{select(1, session)} FROM {session.table()} WHERE {session.column('patient')} = %(patient)s",
            f"{select(2, series, protocol)} FROM {series.table()} JOIN {protocol.table()}"
            f" ON {protocol.column('id')} = {series.column('protocol')} WHERE {series.column('patient')} = %(patient)s",
        ]
        if patient is not None:
            branches.append(
                f"{select(3, *patient)} FROM {person.table()}"
                f" LEFT JOIN {clinician.table()} ON {clinician.column('id')} = {person.column('primary_clinician')}"
                f" LEFT JOIN {login.table()} ON {login.column('id')} = {person.column('user')}"
                f" LEFT JOIN {plan.table()} ON {plan.column('patient')} = {person.column('id')}"
                f" WHERE {person.column('id')} = %(patient)s"
            )
        by_time = (phq9.position("taken_at"), session.position("scheduled_at"))
        order = f"1, {by_time[0]}, {by_time[1]}, {series.position('start_date')} DESC"
        return cls("\nUNION ALL\n".join(branches) + f"\nORDER BY {order}", phq9, session, series, protocol, patient)

    def read(self, params: dict) -> tuple[Patient | None, list, list, list]:
        """The patient (if asked, else None), their PHQ-9s, infusions and series."""
        with connection.cursor() as cursor:
            cursor.execute(self.sql, params)
            rows = cursor.fetchall()
        db, patient, read = connection.alias, None, ([], [], [])
        to_protocol = InductionSeries._meta.get_field("protocol")
        for row in rows:
            if row[0] == 3:
                patient = self._patient(row, db)
            elif row[0] == 2:
                series = self.series.instance(row, db)
                to_protocol.set_cached_value(series, self.protocol.instance(row, db))
                read[2].append(series)
            else:
                read[row[0]].append((self.phq9, self.session)[row[0]].instance(row, db))
        return (patient, *read)

    def _patient(self, row: tuple, db: str) -> Patient:
        """The patient with their clinician, login and plan cached as ``select_related``
        caches them (None where there is none)."""
        person, clinician, login, plan = (part.instance(row, db) for part in self.patient)
        Patient._meta.get_field("primary_clinician").set_cached_value(person, clinician)
        to_login = Patient._meta.get_field("user")
        to_login.set_cached_value(person, login)
        if login is not None:
            to_login.remote_field.set_cached_value(login, person)
        to_plan = self.patient[3].model._meta.get_field("patient")
        to_plan.remote_field.set_cached_value(person, plan)
        if plan is not None:
            to_plan.set_cached_value(plan, person)
        return person


@dataclass
class PatientHistory:
    """All of a patient's PHQ-9s, infusions and series, read once, and what the pages
    derive from them. Read per request: no data is kept across requests.

    The rows carry the columns the pages and the rules read (``PHQ9_FIELDS``,
    ``SESSION_FIELDS``; free text and bookkeeping are not read). Each series has its
    completed infusions counted (``completed_count``, as ``with_progress()`` gives it), so
    ``is_complete`` and ``is_in_progress`` ask nothing more of the database.
    """

    phq9s: list[PHQ9Assessment]  # oldest first
    sessions: list[InfusionSession]  # by scheduled_at
    series: list[InductionSeries]  # newest first, with their protocol

    def __post_init__(self) -> None:
        done = Counter(s.series_id for s in self.sessions if s.status == SessionStatus.COMPLETED)
        for series in self.series:
            series.completed_count = done[series.pk]
        self._series_by_id = {series.pk: series for series in self.series}

    @classmethod
    def load(cls, patient: Patient) -> PatientHistory:
        """The patient's history: one statement on PostgreSQL, three queries elsewhere
        (the SQLite of ``make run`` without a database)."""
        if connection.vendor == "postgresql":
            _, *read = _Statement.build(with_patient=False).read({"patient": patient.pk})
        else:
            read = cls._read_with_the_orm(patient)
        return cls._of(patient, *read)

    @classmethod
    def load_with_patient(cls, pk) -> tuple[Patient | None, PatientHistory | None]:
        """The patient ``pk`` with their primary clinician, login and maintenance plan (as
        ``select_related`` joins them), and their history: one statement on PostgreSQL
        (the patient page). ``(None, None)`` when there is no such patient."""
        if connection.vendor == "postgresql":
            patient, *read = _Statement.build(with_patient=True).read({"patient": pk})
            return (None, None) if patient is None else (patient, cls._of(patient, *read))
        related = Patient.objects.select_related("primary_clinician", "user", "maintenance_plan")
        patient = next(iter(related.filter(pk=pk)), None)
        return (None, None) if patient is None else (patient, cls.load(patient))

    @classmethod
    def _of(cls, patient: Patient, phq9s: list, sessions: list, series: list) -> PatientHistory:
        # Each row is given its patient, as the patient's related managers would.
        for model, rows in ((PHQ9Assessment, phq9s), (InfusionSession, sessions), (InductionSeries, series)):
            field = model._meta.get_field("patient")
            for row in rows:
                field.set_cached_value(row, patient)
        return cls(phq9s=phq9s, sessions=sessions, series=series)

    @staticmethod
    def _read_with_the_orm(patient: Patient) -> tuple[list, list, list]:
        """The PHQ-9s by time, the infusions by time, the series newest first (with their
        protocol): three querysets, what ``_Statement`` reads in one."""
        return (
            list(PHQ9Assessment.objects.filter(patient=patient).only(*PHQ9_FIELDS).order_by("taken_at")),
            list(InfusionSession.objects.filter(patient=patient).only(*SESSION_FIELDS).order_by("scheduled_at")),
            list(InductionSeries.objects.filter(patient=patient).select_related("protocol").order_by("-start_date")),
        )

    # --- The current episode -----------------------------------------------------------

    @property
    def current_series(self) -> InductionSeries | None:
        """The latest series (the current episode), with its completed infusions counted."""
        return self.series[0] if self.series else None

    def baseline(self, series: InductionSeries | None) -> PHQ9Assessment | None:
        """As ``InductionSeries.baseline`` (``patients.phq9.phq9_baseline``): the latest
        PHQ-9 in the window of ``CLINIC_BASELINE_WINDOW_DAYS`` before the series' first
        (occupying) infusion."""
        if series is None:
            return None
        first = next((s for s in self.sessions if s.series_id == series.pk and s.status in OCCUPYING_STATUSES), None)
        if first is None:
            return None
        first_at = first.started_at or first.scheduled_at
        window_start = first_at - dt.timedelta(days=settings.CLINIC_BASELINE_WINDOW_DAYS)
        in_window = [a for a in self.phq9s if window_start <= a.taken_at <= first_at]
        return in_window[-1] if in_window else None

    @functools.cached_property
    def current_baseline(self) -> PHQ9Assessment | None:
        """The current episode's baseline (a new series sets a new one)."""
        return self.baseline(self.current_series)

    @property
    def latest(self) -> PHQ9Assessment | None:
        return self.phq9s[-1] if self.phq9s else None

    def summary(self) -> TreatmentSummary:
        """Latest PHQ-9 against the current episode's baseline."""
        baseline, latest = self.current_baseline, self.latest
        outcome = None
        if latest is not None:
            outcome = phq9_outcome(baseline=baseline.total if baseline else None, current=latest.total)
        return TreatmentSummary(series=self.current_series, baseline=baseline, latest=latest, outcome=outcome)

    def open_alerts(self) -> list[PHQ9Assessment]:
        """Item-9 answers above 0 not yet acknowledged, oldest first."""
        return [a for a in self.phq9s if a.item_9 > 0 and a.safety_acknowledged_at is None]

    # --- Appointments and infusions --------------------------------------------------------

    def upcoming(self, today: dt.date | None = None) -> list[InfusionSession]:
        """Booked infusions from today on, soonest first."""
        today = today or timezone.localdate()
        return [s for s in self.sessions if s.status == SessionStatus.SCHEDULED and s.scheduled_on >= today]

    def completed(self) -> list[InfusionSession]:
        """Infusions given, oldest first."""
        return [s for s in self.sessions if s.status == SessionStatus.COMPLETED]

    def last_completed_infusion(self) -> InfusionSession | None:
        """The most recent completed infusion, induction or booster (by day, then time)."""
        return max(self.completed(), key=lambda s: (s.scheduled_on, s.scheduled_at), default=None)

    def induction_end(self) -> InfusionSession | None:
        """The last completed infusion of the latest complete induction series."""
        for series in self.series:
            if series.is_complete:
                given = [s for s in self.sessions if s.series_id == series.pk and s.status == SessionStatus.COMPLETED]
                return given[-1] if given else None
        return None

    @functools.cached_property
    def _induction_labels(self) -> dict[int, str]:
        """Each completed induction infusion's "Induction infusion n of N" (by position in
        ``sessions``), numbered within its series in the order they were given."""
        labels: dict[int, str] = {}
        numbers: Counter = Counter()
        for index, session in enumerate(self.sessions):
            if session.kind != SessionKind.BOOSTER and session.status == SessionStatus.COMPLETED:
                numbers[session.series_id] += 1
                planned = self._series_by_id[session.series_id].planned_infusions
                labels[index] = f"Induction infusion {numbers[session.series_id]} of {planned}"
        return labels

    # --- The response curve and the timeline ---------------------------------------------

    def curve(self, *, clinical: bool) -> ResponseCurveData:
        """The PHQ-9s and the infusions given, for the response curve, with the current
        episode's baseline. Without ``clinical`` (schedulers) item-9 answers are left out."""
        infusions: list[CurveInfusion] = []
        by_day: dict[dt.date, str] = {}
        labels = self._induction_labels
        tz = timezone.get_current_timezone()  # once, not per point
        for index, session in enumerate(self.sessions):
            if session.status != SessionStatus.COMPLETED:
                continue
            is_booster = session.kind == SessionKind.BOOSTER
            label = "Booster infusion" if is_booster else labels[index]
            infusions.append(CurveInfusion(session.started_at or session.scheduled_at, label, is_booster))
            by_day[session.scheduled_on] = label
        points = [
            CurvePoint(
                taken_at=assessment.taken_at,
                total=assessment.total,
                band=assessment.severity.label,
                item_9=assessment.item_9 if clinical else 0,
                infusion=by_day.get(assessment.taken_at.astimezone(tz).date(), ""),
            )
            for assessment in self.phq9s
        ]
        return ResponseCurveData(points=points, infusions=infusions, baseline=self.current_baseline)

    def timeline(self, *, clinical: bool) -> list[TimelineEntry]:
        """Series, infusions, boosters and PHQ-9s, newest first.

        Without ``clinical`` (schedulers) the entries leave out clinical detail: item-9
        answers and the reasons a series was stopped.
        """
        sources = _labels(PHQ9Assessment, "source")
        routes = _labels(InfusionSession, "route")
        statuses = _labels(InfusionSession, "status")
        entries: list[TimelineEntry] = []
        for assessment in reversed(self.phq9s):
            flag = " · item 9 answered above 0" if clinical and assessment.has_safety_flag else ""
            severity = assessment.severity
            entries.append(
                TimelineEntry(
                    when=assessment.taken_at,
                    kind="phq9",
                    title=f"PHQ-9: {assessment.total}",
                    detail=f"{sources.get(assessment.source, assessment.source)}{flag}",
                    badge=severity.value,
                    badge_label=severity.label,
                    record=assessment,
                )
            )
        labels = self._induction_labels
        for index, session in enumerate(self.sessions):
            is_booster = session.kind == SessionKind.BOOSTER
            entries.append(
                TimelineEntry(
                    when=session.started_at or session.scheduled_at,
                    kind="booster" if is_booster else "infusion",
                    title="Booster infusion" if is_booster else labels.get(index, "Induction infusion"),
                    detail=routes.get(session.route, session.route),
                    badge=session.status,
                    badge_label=statuses.get(session.status, session.status),
                    record=session,
                )
            )
        for series in self.series:
            detail = series.protocol.name
            if series.discontinued_at:
                detail += f" · discontinued: {series.discontinued_reason}" if clinical else " · discontinued"
            entries.append(
                TimelineEntry(
                    when=clinic_datetime(series.start_date, dt.time.min),
                    kind="series",
                    title="Induction series started",
                    detail=detail,
                    record=series,
                )
            )
        entries.sort(key=lambda entry: entry.when, reverse=True)
        return entries


# --- One read each, for callers that need only it ------------------------------------------


def patient_treatment_summary(patient: Patient) -> TreatmentSummary:
    """Latest PHQ-9 against the current episode's baseline (a new series sets a new one)."""
    return PatientHistory.load(patient).summary()


def patient_timeline(patient: Patient, *, clinical: bool) -> list[TimelineEntry]:
    """Series, infusions, boosters and PHQ-9s of a patient, newest first.

    Without ``clinical`` (schedulers) the entries leave out clinical detail: item-9
    answers and the reasons a series was stopped.
    """
    return PatientHistory.load(patient).timeline(clinical=clinical)


def response_curve_data(patient: Patient, *, clinical: bool = True) -> ResponseCurveData:
    """A patient's PHQ-9s and infusions for the response curve.

    Without ``clinical`` (schedulers) item-9 answers are left out, as on the timeline.
    """
    return PatientHistory.load(patient).curve(clinical=clinical)
