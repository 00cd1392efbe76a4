"""The boosters the reminder scan must tell staff about, in one SQL statement.

The scan runs every minute over the whole clinic. ``booster_statuses`` (the board's
reader) loads every plan, its sessions and the PHQ-9s its triggers read, then applies
the rules in Python: right for a page, but it costs the scan thirty times its single
query on a large clinic. On PostgreSQL the scan asks the database instead, in one
statement that applies the same rules to every plan in force:

- the last completed infusion, and no induction series in progress
  (``booster_status``);
- the first PHQ-9 after that infusion that meets the plan's triggers, a rise being
  measured over the lowest total since the end of the latest complete induction series
  (``first_trigger``, ``MaintenancePlan.trigger_reason``);
- the due date and stage (``MaintenancePlan.due_status``), and the overdue repeat;
- no booster booked from today on;
- and, when the recipients are given, at least one of their reminder rows for this
  stage and repeat missing: in the steady state (the scan already ran this minute and
  the minute before) nothing comes back and nothing is written.

``tests/test_booster_scan.py`` holds the two readers to the same answer for every plan
of a generated clinic and the demo clinic, on days before, at and long after the due
dates. Other databases (the embedded SQLite of ``make run``) take ``booster_statuses``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from functools import cache

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection

from maintenance.models import BoosterStage, MaintenancePlan, Reminder, ReminderChannel, ReminderKind
from patients.access import Role
from patients.models import Patient, PatientStatus, PHQ9Assessment
from sessions.models import InductionSeries, InfusionSession, SessionKind, SessionStatus


@dataclass(frozen=True)
class DueBooster:
    """A plan in force whose booster is (nearly) due and not booked: what a reminder says."""

    plan_id: object
    patient_id: object
    first_name: str
    last_name: str
    primary_clinician_id: int | None
    #: the reminder's subject: a new infusion starts a new cycle.
    last_infusion_id: object
    last_infusion_on: dt.date
    due_on: dt.date
    due_until: dt.date
    stage: BoosterStage
    #: the symptom trigger's reason ("PHQ-9 19 is at or above 15"), or "".
    trigger_reason: str
    trigger_id: object | None = None

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"

    def overdue_repeat(self, today: dt.date) -> int:
        """0 the first time a booster is overdue, then one more every
        CLINIC_BOOSTER_OVERDUE_REPEAT_DAYS."""
        if self.stage != BoosterStage.OVERDUE:
            return 0
        return ((today - self.due_until).days - 1) // settings.CLINIC_BOOSTER_OVERDUE_REPEAT_DAYS


@dataclass(frozen=True)
class Recipients:
    """Who the scan writes to, by user id: every active scheduler, and each patient's
    primary clinician while that user is still a clinician (``access.is_clinician``).
    The statement's ``staff`` applies the same rule in SQL (tests/test_booster_scan.py)."""

    schedulers: tuple[int, ...]
    clinicians: frozenset[int]
    #: those of the above with an email address (they also get the email).
    emailable: frozenset[int]

    def of(self, primary_clinician_id: int | None) -> list[int]:
        primary = [primary_clinician_id] if primary_clinician_id in self.clinicians else []
        return list(dict.fromkeys([*primary, *self.schedulers]))


def due_boosters(
    *,
    today: dt.date,
    stages: Collection[BoosterStage],
    not_yet_reminded: bool = False,
) -> list[DueBooster]:
    """Every plan in force whose booster stage on ``today`` is one of ``stages`` and that
    has no booster booked from today on. With ``not_yet_reminded``, only those missing at
    least one of their recipients' reminders (``Recipients``) for this stage and repeat.
    PostgreSQL only.
    """
    params = {
        "today": today,
        "zone": settings.TIME_ZONE,
        "lead": settings.CLINIC_BOOSTER_LEAD_DAYS,
        "grace": settings.CLINIC_BOOSTER_OVERDUE_GRACE_DAYS,
        "repeat_days": settings.CLINIC_BOOSTER_OVERDUE_REPEAT_DAYS,
        "stages": [str(stage) for stage in stages],
        "check_reminded": not_yet_reminded,
    }
    with connection.cursor() as cursor:
        cursor.execute(_sql(), params)
        rows = cursor.fetchall()
    due = []
    for (
        plan_id, patient_id, first_name, last_name, primary_clinician_id, last_id, last_on,
        due_on, due_until, stage, trigger_id, trigger_total, trigger_low, threshold, rise,
    ) in rows:  # fmt: skip
        reason = ""
        if trigger_id is not None:
            rules = MaintenancePlan(trigger_phq9_threshold=threshold, trigger_phq9_rise=rise)
            reason = rules.trigger_reason(total=trigger_total, post_induction_low=trigger_low) or ""
        due.append(
            DueBooster(
                plan_id=plan_id,
                patient_id=patient_id,
                first_name=first_name,
                last_name=last_name,
                primary_clinician_id=primary_clinician_id,
                last_infusion_id=last_id,
                last_infusion_on=last_on,
                due_on=due_on,
                due_until=due_until,
                stage=BoosterStage(stage),
                trigger_reason=reason,
                trigger_id=trigger_id,
            )
        )
    return due


def from_statuses(statuses: Iterable) -> list[DueBooster]:
    """``booster_statuses`` rows as ``DueBooster`` (the reader on other databases)."""
    return [
        DueBooster(
            plan_id=status.plan.pk,
            patient_id=status.plan.patient_id,
            first_name=status.plan.patient.first_name,
            last_name=status.plan.patient.last_name,
            primary_clinician_id=status.plan.patient.primary_clinician_id,
            last_infusion_id=status.last_infusion.pk,
            last_infusion_on=status.last_infusion.scheduled_on,
            due_on=status.due.due_on,
            due_until=status.due.due_until,
            stage=status.due.stage,
            trigger_reason=status.trigger.reason if status.trigger else "",
            trigger_id=status.trigger.assessment.pk if status.trigger else None,
        )
        for status in statuses
    ]


@cache
def _sql() -> str:
    """The statement, with the tables' and values' names from the models.

    Cheapest first, so that the clinic's many plans that are not due cost little:
    ``plan`` is each plan in force with its patient's last completed infusion and no
    booster booked; ``triggered`` adds the first PHQ-9 after that infusion that meets a
    trigger (looking for the end of induction, whose low a rise is measured over, only
    for patients with PHQ-9s since); ``staged`` dates the booster and names its stage and
    repeat. Only the boosters in a stage asked for are then checked for an induction
    series in progress and, when asked, for their reminders.
    """
    q = connection.ops.quote_name
    plan, patient = q(MaintenancePlan._meta.db_table), q(Patient._meta.db_table)
    series, session = q(InductionSeries._meta.db_table), q(InfusionSession._meta.db_table)
    phq9, reminder = q(PHQ9Assessment._meta.db_table), q(Reminder._meta.db_table)
    active, completed, scheduled = PatientStatus.ACTIVE, SessionStatus.COMPLETED, SessionStatus.SCHEDULED
    induction, booster = SessionKind.INDUCTION, SessionKind.BOOSTER
    not_yet, due_soon, due, overdue = (
        BoosterStage.NOT_YET_DUE, BoosterStage.DUE_SOON, BoosterStage.DUE, BoosterStage.OVERDUE,
    )  # fmt: skip
    in_app, email, stage_kind = ReminderChannel.IN_APP, ReminderChannel.EMAIL, ReminderKind.BOOSTER_STAGE
    User = get_user_model()
    user, user_groups, group = q(User._meta.db_table), q(User.groups.through._meta.db_table), q(Group._meta.db_table)
    scheduler_role, clinician_role = Role.SCHEDULER.value, Role.CLINICIAN.value
    # How many infusions of the series ``se`` were given (``InductionSeries.with_progress``).
    # A series' sessions are all inductions (constraint session_kind_matches_series): the
    # kind lets the count read the index session_series_given_idx alone.
    done = f"""(SELECT count(*) FROM {session} s
                WHERE s.series_id = se.id AND s.kind = '{induction}' AND s.status = '{completed}')"""
    # The day of the last infusion of the patient's latest complete series (``induction_end``).
    induction_ended_on = f"""(
        SELECT s.scheduled_on FROM {session} s
        WHERE s.series_id = (SELECT se.id FROM {series} se
                             WHERE se.patient_id = a.patient_id AND {done} >= se.planned_infusions
                             ORDER BY se.start_date DESC LIMIT 1)
          AND s.kind = '{induction}' AND s.status = '{completed}'
        ORDER BY s.scheduled_at DESC LIMIT 1)"""
    return f"""
WITH staff AS MATERIALIZED (
    -- the recipients (``Recipients``): active schedulers, and active clinicians or superusers
    SELECT u.id, u.email <> '' AS emailable,
           coalesce(bool_or(g.name = '{scheduler_role}'), false) AS scheduler,
           u.is_superuser OR coalesce(bool_or(g.name = '{clinician_role}'), false) AS clinician
    FROM {user} u
    LEFT JOIN {user_groups} ug ON ug.user_id = u.id
    LEFT JOIN {group} g ON g.id = ug.group_id AND g.name IN ('{scheduler_role}', '{clinician_role}')
    WHERE %(check_reminded)s AND u.is_active AND (u.is_superuser OR g.id IS NOT NULL)
    GROUP BY u.id
), plan AS (
    SELECT p.id AS plan_id, p.patient_id, pt.first_name, pt.last_name, pt.primary_clinician_id,
           p.target_interval_days AS target, p.min_interval_days AS min_days,
           p.max_interval_days AS max_days,
           p.trigger_phq9_threshold AS threshold, p.trigger_phq9_rise AS rise,
           last.id AS last_id, last.scheduled_on AS last_on,
           coalesce(last.ended_at, last.scheduled_at) AS cutoff
    FROM {plan} p
    JOIN {patient} pt ON pt.id = p.patient_id AND pt.status = '{active}'
    JOIN LATERAL (
        SELECT s.id, s.scheduled_on, s.scheduled_at, s.ended_at FROM {session} s
        WHERE s.patient_id = p.patient_id AND s.status = '{completed}'
        -- one completed infusion a day (session_one_per_patient_day): the day orders them
        ORDER BY s.scheduled_on DESC LIMIT 1
    ) last ON TRUE
    WHERE p.is_active
      AND NOT EXISTS (
          SELECT 1 FROM {session} s
          WHERE s.patient_id = p.patient_id AND s.kind = '{booster}' AND s.status = '{scheduled}'
            AND s.scheduled_on >= %(today)s)
), triggered AS (
    SELECT plan.*, trig.id AS trigger_id, trig.taken_at AS trigger_at, trig.total AS trigger_total,
           CASE WHEN trig.ended_on IS NOT NULL THEN trig.low END AS trigger_low
    FROM plan
    LEFT JOIN LATERAL (
        SELECT x.id, x.taken_at, x.total, x.ended_on, x.low FROM (
            SELECT a.id, a.taken_at, a.total, a.ended_on,
                   -- the lowest total since the end of induction, before this one
                   least(
                       (SELECT min(b.total) FROM {phq9} b
                        WHERE a.ended_on IS NOT NULL AND b.patient_id = plan.patient_id
                          AND b.taken_at >= (a.ended_on::timestamp AT TIME ZONE %(zone)s)
                          AND b.taken_at <= plan.cutoff),
                       min(a.total) OVER (ORDER BY a.taken_at, a.id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
                   ) AS low
            FROM (
                SELECT a.id, a.taken_at, a.total, {induction_ended_on} AS ended_on
                FROM {phq9} a
                WHERE a.patient_id = plan.patient_id AND a.taken_at > plan.cutoff
                OFFSET 0  -- the end of induction is looked for once per PHQ-9, not once per use
            ) a
        ) x
        WHERE (x.total >= plan.threshold OR (x.ended_on IS NOT NULL AND x.total - x.low >= plan.rise))
          -- most plans have no PHQ-9 since their last infusion: one probe, and no more
          AND EXISTS (SELECT 1 FROM {phq9} c WHERE c.patient_id = plan.patient_id AND c.taken_at > plan.cutoff)
        ORDER BY x.taken_at, x.id LIMIT 1
    ) trig ON TRUE
), dated AS (
    SELECT t.*,
           CASE WHEN t.trigger_id IS NULL THEN t.last_on + t.target
                ELSE least(t.last_on + t.target,
                           greatest((t.trigger_at AT TIME ZONE %(zone)s)::date, t.last_on + coalesce(t.min_days, 0)))
           END AS due_on
    FROM triggered t
), staged AS (
    SELECT d.*,
           CASE WHEN %(today)s < d.due_on - %(lead)s THEN '{not_yet}'
                WHEN %(today)s < d.due_on THEN '{due_soon}'
                WHEN %(today)s <= d.due_until THEN '{due}'
                ELSE '{overdue}' END AS stage,
           CASE WHEN %(today)s > d.due_until
                THEN (%(today)s - d.due_until - 1) / %(repeat_days)s ELSE 0 END AS repeat
    FROM (SELECT d.*, d.due_on + coalesce(d.max_days - d.target, %(grace)s) AS due_until FROM dated d) d
)
SELECT plan_id, patient_id, first_name, last_name, primary_clinician_id, last_id, last_on,
       due_on, due_until, stage, trigger_id, trigger_total, trigger_low, threshold, rise
FROM (SELECT * FROM staged WHERE stage = ANY(%(stages)s) OFFSET 0) st  -- the checks below only for these
WHERE
  -- no induction series in progress (``InductionSeries.is_in_progress``)
  NOT EXISTS (
      SELECT 1 FROM {series} se
      WHERE se.patient_id = st.patient_id AND se.discontinued_at IS NULL AND {done} < se.planned_infusions)
  AND (NOT %(check_reminded)s OR (
      -- the recipients' rows of this stage and repeat that exist, against how many there should be
      SELECT count(*) FROM {reminder} r JOIN staff w ON w.id = r.recipient_id
      WHERE r.kind = '{stage_kind}' AND r.subject_id = st.last_id AND r.stage = st.stage
        AND r.repeat = st.repeat
        AND (w.scheduler OR (w.clinician AND w.id = st.primary_clinician_id))
        AND (r.channel = '{in_app}' OR (r.channel = '{email}' AND w.emailable))
  ) < (
      SELECT count(*) + count(*) FILTER (WHERE w.emailable) FROM staff w
      WHERE w.scheduler OR (w.clinician AND w.id = st.primary_clinician_id)
  ))
"""
