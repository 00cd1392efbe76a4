"""Reads about a patient's maintenance: the last infusion, triggers and booster status."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import connection
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from maintenance.models import BoosterDue, BoosterStage, MaintenancePlan
from patients.models import Patient, PatientStatus, PHQ9Assessment
from sessions.models import InductionSeries, InfusionSession, SessionKind, SessionStatus
from sessions.scheduling import PLANNING_HORIZON_DAYS, clinic_date, clinic_datetime, closed_dates_between, is_open_day
from sessions.selectors import PatientHistory


@dataclass(frozen=True)
class SymptomTrigger:
    assessment: PHQ9Assessment
    reason: str


@dataclass(frozen=True)
class BoosterStatus:
    plan: MaintenancePlan
    last_infusion: InfusionSession
    due: BoosterDue
    trigger: SymptomTrigger | None
    next_appointment: InfusionSession | None


def last_completed_infusion(patient: Patient) -> InfusionSession | None:
    """The patient's most recent completed infusion, induction or booster (one query; the
    same rule as ``PatientHistory.last_completed_infusion``)."""
    return (
        patient.infusion_sessions.filter(status=SessionStatus.COMPLETED)
        .order_by("-scheduled_on", "-scheduled_at")
        .first()
    )


def post_induction_start(end: InfusionSession) -> dt.datetime:
    """Where the post-induction period's PHQ-9s start: the beginning of the last induction
    visit's day, so that its pre-infusion PHQ-9 is the period's first score."""
    return clinic_datetime(end.scheduled_on, dt.time.min)


def first_trigger(
    *,
    plan: MaintenancePlan,
    scores: Iterable[PHQ9Assessment],
    since: InfusionSession,
    after_induction: bool,
) -> SymptomTrigger | None:
    """The first of ``scores`` (oldest first) taken after ``since`` that meets the plan's
    triggers. ``scores`` start where the post-induction low is measured from (see
    ``post_induction_start``); without a finished induction there is no low to rise over.
    """
    low: int | None = None
    cutoff = since.ended_at or since.scheduled_at
    for assessment in scores:
        if assessment.taken_at > cutoff:
            reason = plan.trigger_reason(total=assessment.total, post_induction_low=low if after_induction else None)
            if reason:
                return SymptomTrigger(assessment, reason)
        low = assessment.total if low is None else min(low, assessment.total)
    return None


def booster_status(*, patient: Patient, today: dt.date | None = None) -> BoosterStatus | None:
    """Where the patient's next booster stands, or None when boosters do not apply yet.

    Boosters apply once the patient has a maintenance plan in force (see
    ``MaintenancePlan.is_in_force``), no induction series in progress, and at least one
    completed infusion. Reads the plan, then the patient's history (``PatientHistory``)
    for ``booster_status_from_history``.
    """
    try:
        plan = patient.maintenance_plan
    except MaintenancePlan.DoesNotExist:
        return None
    if not plan.is_in_force:
        return None
    return booster_status_from_history(plan=plan, history=PatientHistory.load(patient), today=today)


def booster_status_from_history(
    *, plan: MaintenancePlan | None, history: PatientHistory, today: dt.date | None = None
) -> BoosterStatus | None:
    """``booster_status`` from the patient's plan (or None) and history already read (the
    patient page has both): no query. The rules of ``booster_status``, in one place."""
    if plan is None or not plan.is_in_force:
        return None
    if any(series.is_in_progress for series in history.series):
        return None
    last = history.last_completed_infusion()
    if last is None:
        return None
    today = today or timezone.localdate()
    # A rise is measured over the lowest total after the end of induction.
    end = history.induction_end()
    scores = history.phq9s
    if end is not None:
        start = post_induction_start(end)
        scores = [assessment for assessment in scores if assessment.taken_at >= start]
    trigger = first_trigger(plan=plan, scores=scores, since=last, after_induction=end is not None)
    due = plan.due_status(
        last_infusion_on=last.scheduled_on,
        today=today,
        triggered_on=clinic_date(trigger.assessment.taken_at) if trigger else None,
    )
    upcoming = next((session for session in history.upcoming(today) if session.kind == SessionKind.BOOSTER), None)
    return BoosterStatus(plan=plan, last_infusion=last, due=due, trigger=trigger, next_appointment=upcoming)


# --- Booster board: every patient at once ------------------------------------------------

#: The board's order of urgency.
STAGE_ORDER: tuple[BoosterStage, ...] = (
    BoosterStage.OVERDUE,
    BoosterStage.DUE,
    BoosterStage.DUE_SOON,
    BoosterStage.NOT_YET_DUE,
)


def suggest_booster_day(*, due_on: dt.date, today: dt.date, closed_dates: Iterable[dt.date] | None = None) -> dt.date:
    """The day to offer for a booster: the due date, or the first open clinic day after
    it, never before ``today``. ``closed_dates`` (holidays) are read when not given."""
    start = max(due_on, today)
    horizon = start + dt.timedelta(days=PLANNING_HORIZON_DAYS)
    closed = set(closed_dates_between(start, horizon) if closed_dates is None else closed_dates)
    day = start
    while not is_open_day(day, closed) and day < horizon:
        day += dt.timedelta(days=1)
    return day


@dataclass(frozen=True)
class BoardRow:
    status: BoosterStatus
    #: the first open day from the due date on, never before today.
    suggested_on: dt.date

    @property
    def patient(self) -> Patient:
        return self.status.plan.patient


@dataclass(frozen=True)
class NeedsPlan:
    """A patient who finished an induction series and has no maintenance plan."""

    patient: Patient
    induction_ended_on: dt.date | None


@dataclass(frozen=True)
class BoosterBoard:
    today: dt.date
    #: most urgent first: by stage (``STAGE_ORDER``), then by due date.
    rows: list[BoardRow]
    needs_plan: list[NeedsPlan]
    paused: list[MaintenancePlan]

    def by_stage(self) -> list[tuple[BoosterStage, list[BoardRow]]]:
        return [(stage, [row for row in self.rows if row.status.due.stage == stage]) for stage in STAGE_ORDER]


def _completed_in_series(series_ref: OuterRef) -> Coalesce:
    """How many infusions of the series ``series_ref`` were completed (0 when none)."""
    counts = (
        InfusionSession.objects.filter(series=series_ref, status=SessionStatus.COMPLETED)
        .order_by()
        .values("series")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(counts), 0)


def _series_with_progress(patient_ref: OuterRef) -> QuerySet[InductionSeries]:
    return InductionSeries.objects.filter(patient=patient_ref).annotate(done=_completed_in_series(OuterRef("pk")))


def _series_in_progress(patient_ref: OuterRef) -> QuerySet[InductionSeries]:
    """Same rule as ``InductionSeries.is_in_progress``: not discontinued, not complete."""
    return _series_with_progress(patient_ref).filter(discontinued_at__isnull=True, done__lt=F("planned_infusions"))


def _latest_complete_series(patient_ref: OuterRef) -> QuerySet[InductionSeries]:
    """Same rule as ``PatientHistory.induction_end``: the newest series whose planned infusions were given."""
    return _series_with_progress(patient_ref).filter(done__gte=F("planned_infusions")).order_by("-start_date")


def _completed_sessions_of_series(series_ref: OuterRef) -> QuerySet[InfusionSession]:
    return InfusionSession.objects.filter(series=series_ref, status=SessionStatus.COMPLETED).order_by("-scheduled_at")


#: What the board shows of a session: scheduling only, never the clinical record.
_SESSION_FIELDS = ("id", "patient_id", "series_id", "kind", "status", "scheduled_at", "scheduled_on", "ended_at")


#: The plan's fields the rules read (``due_status``, ``trigger_reason``), and the patient's
#: the scan writes into its reminders: no encrypted field is read (nor decrypted).
_LEAN_FIELDS = (
    "id",
    "patient_id",
    "target_interval_days",
    "min_interval_days",
    "max_interval_days",
    "trigger_phq9_threshold",
    "trigger_phq9_rise",
    "patient__id",
    "patient__first_name",
    "patient__last_name",
    "patient__primary_clinician_id",
)


@dataclass(frozen=True)
class _Score:
    """A PHQ-9 as the trigger rules read it (``first_trigger``), without a model instance."""

    id: object
    taken_at: dt.datetime
    total: int


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_PHQ9_FIELDS = ("id", "patient_id", "taken_at", "total")


def _scores_since(starts: dict) -> dict[object, list[_Score]]:
    """Each patient's PHQ-9s taken at or after its start, oldest first, in one query.

    On PostgreSQL the starts are a join against two arrays (one OR branch per patient
    plans badly in a large clinic), and times come back as exact epoch microseconds
    (converting those is much cheaper than parsing timestamps).
    """
    scores: dict = defaultdict(list)
    if not starts:
        return scores
    if connection.vendor == "postgresql":
        table = PHQ9Assessment._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                SELECT a.id, a.patient_id, (extract(epoch FROM a.taken_at) * 1000000)::bigint, a.total
                FROM unnest(%s::uuid[], %s::timestamptz[]) AS w(patient_id, start)
                JOIN {table} a ON a.patient_id = w.patient_id AND a.taken_at >= w.start
                ORDER BY a.patient_id, a.taken_at
                """,
                [list(starts), list(starts.values())],
            )
            for pk, patient_id, micros, total in cursor.fetchall():
                scores[patient_id].append(_Score(pk, _EPOCH + dt.timedelta(microseconds=micros), total))
        return scores
    window = Q(*(Q(patient_id=pk, taken_at__gte=start) for pk, start in starts.items()), _connector=Q.OR)
    for pk, patient_id, taken_at, total in (
        PHQ9Assessment.objects.filter(window).order_by("patient_id", "taken_at").values_list(*_PHQ9_FIELDS)
    ):
        scores[patient_id].append(_Score(pk, taken_at, total))
    return scores


def _as_assessment(score: _Score, patient_id) -> PHQ9Assessment:
    """The PHQ-9 a trigger names, as the board always gave it (only these fields loaded)."""
    return PHQ9Assessment.from_db(connection.alias, _PHQ9_FIELDS, (score.id, patient_id, score.taken_at, score.total))


def booster_statuses(*, today: dt.date, lean: bool = False) -> list[BoosterStatus]:
    """``booster_status`` of every plan in force that has one, in four queries whatever
    the number of patients: plans with the ids of each patient's last completed
    infusion, induction end and next booked booster (one query), those sessions (one),
    and the PHQ-9s the triggers read (one).

    ``lean`` (the reminder scan) loads only what the rules and the reminders read of the
    plan and the patient (see ``_LEAN_FIELDS``): no clinician, protocol or encrypted field.
    """
    patient = OuterRef("patient")
    completed = InfusionSession.objects.filter(patient=patient, status=SessionStatus.COMPLETED)
    upcoming = InfusionSession.objects.filter(
        patient=patient, kind=SessionKind.BOOSTER, status=SessionStatus.SCHEDULED, scheduled_on__gte=today
    )
    plans = MaintenancePlan.objects.in_force()
    plans = (
        plans.select_related("patient").only(*_LEAN_FIELDS)
        if lean
        else plans.select_related("patient__primary_clinician", "protocol")
    )
    plans = list(
        # Filtered on EXISTS, not on the annotations: a filtered annotation is computed twice.
        plans.filter(~Exists(_series_in_progress(patient)), Exists(completed))
        .annotate(
            last_id=Subquery(completed.order_by("-scheduled_on", "-scheduled_at").values("pk")[:1]),
            end_series_id=Subquery(_latest_complete_series(patient).values("pk")[:1]),
            next_id=Subquery(upcoming.order_by("scheduled_at").values("pk")[:1]),
        )
        .annotate(end_id=Subquery(_completed_sessions_of_series(OuterRef("end_series_id")).values("pk")[:1]))
    )

    session_ids = {pk for plan in plans for pk in (plan.last_id, plan.end_id, plan.next_id) if pk is not None}
    sessions = InfusionSession.objects.only(*_SESSION_FIELDS).in_bulk(session_ids)

    # Each patient's scores from where its trigger rules start reading: the post-induction
    # period, or (without a finished induction) the last infusion, the only scores that count.
    starts: dict = {}
    for plan in plans:
        end, last = sessions.get(plan.end_id), sessions[plan.last_id]
        starts[plan.patient_id] = post_induction_start(end) if end else (last.ended_at or last.scheduled_at)
    scores = _scores_since(starts)

    statuses: list[BoosterStatus] = []
    for plan in plans:
        last = sessions[plan.last_id]
        trigger = first_trigger(
            plan=plan, scores=scores[plan.patient_id], since=last, after_induction=plan.end_id is not None
        )
        if trigger is not None:
            trigger = SymptomTrigger(_as_assessment(trigger.assessment, plan.patient_id), trigger.reason)
        due = plan.due_status(
            last_infusion_on=last.scheduled_on,
            today=today,
            triggered_on=clinic_date(trigger.assessment.taken_at) if trigger else None,
        )
        statuses.append(
            BoosterStatus(
                plan=plan, last_infusion=last, due=due, trigger=trigger, next_appointment=sessions.get(plan.next_id)
            )
        )
    return statuses


def board_order(status: BoosterStatus) -> tuple:
    """The board's order: by stage (``STAGE_ORDER``), due date, then the patient's name."""
    patient = status.plan.patient
    return (_STAGE_RANK[status.due.stage], status.due.due_on, patient.last_name, patient.first_name)


_STAGE_RANK = {stage: index for index, stage in enumerate(STAGE_ORDER)}


def booster_board(*, today: dt.date | None = None) -> BoosterBoard:
    """Every active plan's ``booster_status`` and the patients who need a plan.

    Same rules as ``booster_status`` patient by patient, in a fixed number of queries
    whatever the number of patients: ``booster_statuses`` (three queries), the clinic's
    closed days (one), patients needing a plan (one) and paused plans (one).
    """
    today = today or timezone.localdate()
    statuses = booster_statuses(today=today)
    closed: set[dt.date] = set()
    if statuses:
        first = max(today, min(status.due.due_on for status in statuses))
        last_day = max(today, max(status.due.due_on for status in statuses)) + dt.timedelta(days=PLANNING_HORIZON_DAYS)
        closed = closed_dates_between(first, last_day)
    rows = [
        BoardRow(status, suggest_booster_day(due_on=status.due.due_on, today=today, closed_dates=closed))
        for status in sorted(statuses, key=board_order)
    ]
    return BoosterBoard(today=today, rows=rows, needs_plan=patients_needing_plan(), paused=paused_plans())


def patients_needing_plan() -> list[NeedsPlan]:
    """Patients (not discharged) with a complete induction series, none in progress, and no plan."""
    patient = OuterRef("pk")
    end = _completed_sessions_of_series(Subquery(_latest_complete_series(OuterRef(patient)).values("pk")[:1]))
    patients = (
        Patient.objects.filter(maintenance_plan__isnull=True)
        .exclude(status=PatientStatus.DISCHARGED)
        .filter(Exists(_latest_complete_series(patient)), ~Exists(_series_in_progress(patient)))
        .annotate(induction_ended_on=Subquery(end.values("scheduled_on")[:1]))
        .order_by("last_name", "first_name")
    )
    return [NeedsPlan(patient, patient.induction_ended_on) for patient in patients]


def paused_plans() -> list[MaintenancePlan]:
    return list(
        MaintenancePlan.objects.filter(is_active=False)
        .select_related("patient")
        .order_by("patient__last_name", "patient__first_name")
    )
