"""The reminder scan's one statement (maintenance.booster_scan) applies the board's rules
(maintenance.selectors.booster_statuses, MaintenancePlan.due_status, first_trigger): they
must agree for every plan of a generated clinic and of the demo clinic, on days before,
at and long after the due dates. And in the steady state the statement returns nothing,
yet a missing reminder, a new scheduler or a new clinician is still found."""

from __future__ import annotations

import dataclasses
import datetime as dt
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection
from django.db.models import Q
from django.test.utils import CaptureQueriesContext

from maintenance.booster_scan import due_boosters, from_statuses
from maintenance.models import BoosterStage, MaintenancePlan, Reminder, ReminderChannel, ReminderKind
from maintenance.reminders import _scan_boosters
from maintenance.selectors import booster_statuses
from tests.factories import UserFactory

WEDNESDAY_AFTERNOON = dt.datetime(2026, 11, 18, 14, 0, tzinfo=ZoneInfo("America/New_York"))
TODAY = WEDNESDAY_AFTERNOON.date()
ALL_STAGES = tuple(BoosterStage)
#: From before most boosters are due soon to long after the last maximum interval.
DAYS = (-40, -7, 0, 1, 6, 7, 8, 13, 14, 15, 21, 22, 29, 45, 90, 200, 400)


def as_rows(boosters) -> set[tuple]:
    return {dataclasses.astuple(booster) for booster in boosters}


def python_reader(today: dt.date):
    return from_statuses(status for status in booster_statuses(today=today) if status.next_appointment is None)


@pytest.mark.slow
@pytest.mark.django_db
@pytest.mark.parametrize(
    "clinic",
    [
        # five years of boosters, relapses that fire triggers, item-9 answers, series in progress
        {"command": "seed_scale", "patients": 400},
        {"command": "seed_demo"},  # every stage of care, made-up infusions, cancellations
    ],
    ids=["scale", "demo"],
)
def test_the_statement_agrees_with_the_boards_rules_for_every_plan_on_every_day(clinic):
    with time_machine.travel(WEDNESDAY_AFTERNOON, tick=False):
        options = {key: value for key, value in clinic.items() if key != "command"}
        call_command(clinic["command"], stdout=StringIO(), **options)
    seen_stages, triggers = set(), 0
    for offset in DAYS:
        today = TODAY + dt.timedelta(days=offset)
        expected = python_reader(today)
        got = due_boosters(today=today, stages=ALL_STAGES)
        assert as_rows(got) == as_rows(expected), today
        assert len(got) == len(expected)
        seen_stages |= {booster.stage for booster in got}
        triggers += sum(booster.trigger_id is not None for booster in got)
        # Asking for some stages gives exactly those.
        reminded = (BoosterStage.DUE_SOON, BoosterStage.OVERDUE)
        assert as_rows(due_boosters(today=today, stages=reminded)) == {
            row for row in as_rows(expected) if row[9] in reminded
        }
    # The comparison covered every stage and both kinds of trigger reason.
    assert seen_stages == set(ALL_STAGES)
    assert triggers > 0


@pytest.fixture
def scanned_clinic(db):
    """A generated clinic, scanned on days with boosters due soon, due and overdue."""
    with time_machine.travel(WEDNESDAY_AFTERNOON, tick=False):
        call_command("seed_scale", patients=150, stdout=StringIO())
        for offset in (0, 10, 30):
            _scan_boosters(TODAY + dt.timedelta(days=offset))
    return TODAY + dt.timedelta(days=30)


def missing(today: dt.date):
    return due_boosters(today=today, stages=tuple(BoosterStage)[1:], not_yet_reminded=True)


def test_in_the_steady_state_the_statement_finds_nothing_and_nothing_is_written(scanned_clinic):
    today = scanned_clinic
    assert due_boosters(today=today, stages=tuple(BoosterStage)[1:])  # boosters are due
    assert missing(today) == []
    before = Reminder.objects.count()
    with CaptureQueriesContext(connection) as queries:
        assert _scan_boosters(today) == 0
    assert Reminder.objects.count() == before
    assert not any(query["sql"].startswith("INSERT") for query in queries.captured_queries)


def test_a_lost_reminder_row_is_found_and_written_again(scanned_clinic):
    today = scanned_clinic
    row = Reminder.objects.filter(kind=ReminderKind.BOOSTER_STAGE, channel=ReminderChannel.EMAIL).first()
    key = (row.subject_id, row.stage, row.repeat, row.recipient_id, row.channel)
    row.delete()
    assert [b.last_infusion_id for b in missing(today)] == [row.subject_id]
    assert _scan_boosters(today) == 1
    again = Reminder.objects.get(kind=ReminderKind.BOOSTER_STAGE, subject_id=row.subject_id, channel=row.channel,
                                 stage=row.stage, repeat=row.repeat, recipient_id=row.recipient_id)  # fmt: skip
    assert (again.subject_id, again.stage, again.repeat, again.recipient_id, again.channel) == key


def test_a_new_scheduler_gets_the_boosters_due_now_in_app_and_by_email(scanned_clinic):
    today = scanned_clinic
    due = due_boosters(today=today, stages=tuple(BoosterStage)[1:])
    newcomer = UserFactory(username="new_scheduler", role="scheduler", email="new@clinic.example")
    assert len(missing(today)) == len(due)
    assert _scan_boosters(today) == 2 * len(due)
    assert set(Reminder.objects.filter(recipient=newcomer).values_list("channel", flat=True)) == {"in_app", "email"}
    assert missing(today) == []


def test_a_scheduler_without_email_gets_in_app_only_and_is_not_missing_an_email(scanned_clinic):
    today = scanned_clinic
    due = due_boosters(today=today, stages=tuple(BoosterStage)[1:])
    newcomer = UserFactory(username="quiet_scheduler", role="scheduler", email="")
    assert _scan_boosters(today) == len(due)
    assert set(Reminder.objects.filter(recipient=newcomer).values_list("channel", flat=True)) == {"in_app"}
    assert missing(today) == []


def test_a_patients_new_clinician_gets_their_reminder_and_a_former_one_is_not_counted(scanned_clinic):
    today = scanned_clinic
    booster = due_boosters(today=today, stages=tuple(BoosterStage)[1:])[0]
    newcomer = UserFactory(username="new_clinician", role="clinician", email="newc@clinic.example")
    plan = MaintenancePlan.objects.select_related("patient").get(pk=booster.plan_id)
    plan.patient.primary_clinician = newcomer
    plan.patient.save()
    assert [b.plan_id for b in missing(today)] == [booster.plan_id]
    assert _scan_boosters(today) == 2
    assert Reminder.objects.filter(recipient=newcomer, subject_id=booster.last_infusion_id).count() == 2
    assert missing(today) == []
    # A primary who is no longer a clinician is not a recipient: nothing is missing.
    newcomer.groups.clear()
    assert missing(today) == []


# --- The trigger rules, case by case, against booster_status -------------------------------

from maintenance.selectors import booster_status  # noqa: E402
from sessions.scheduling import clinic_datetime  # noqa: E402
from tests.factories import MaintenancePlanFactory, PHQ9Factory  # noqa: E402
from tests.test_boosters import LAST, completed_induction  # noqa: E402, F401


def phq9(patient, total: int, days: int, hour: int = 10):
    """A PHQ-9 of ``total`` (items 1-8), ``days`` after the last induction infusion."""
    items = {f"item_{n}": min(3, max(0, total - 3 * (n - 1))) for n in range(1, 9)}
    return PHQ9Factory(
        patient=patient, taken_at=clinic_datetime(LAST + dt.timedelta(days=days), dt.time(hour)), **items
    )


SCENARIOS = {  # the plan, the PHQ-9s (total, days after the last infusion[, hour]), whether one fires
    # a rise of 6 over a low of 2 taken after the last infusion
    "rise over a later low": ({"trigger_phq9_threshold": None}, [(2, 3), (8, 16)], True),
    # the low is the pre-infusion PHQ-9 of the last induction day (before the cutoff)
    "rise over the induction day's low": ({"trigger_phq9_threshold": None}, [(2, 0, 7), (8, 16)], True),
    # a score before the induction's last day is not part of the post-induction low
    "an older low does not count": ({"trigger_phq9_threshold": None}, [(0, -5), (4, 3), (8, 16)], False),
    # the low falls after a high first score (which has no low to rise over), then a rise
    "the low moves down": ({"trigger_phq9_threshold": None}, [(10, 3), (3, 5), (9, 10)], True),
    "threshold": ({}, [(0, 7), (16, 15)], True),
    "threshold, not before the minimum": ({"min_interval_days": 14}, [(20, 2)], True),
    "threshold with no minimum": ({"min_interval_days": None}, [(20, 2)], True),
    "no maximum: the grace setting": ({"max_interval_days": None}, [(3, 5)], False),
    "triggers off": ({"trigger_phq9_threshold": None, "trigger_phq9_rise": None}, [(27, 3), (0, 4), (27, 5)], False),
    "no scores": ({}, [], False),
}


@pytest.mark.django_db
@pytest.mark.parametrize(("plan_fields", "scores", "fires"), SCENARIOS.values(), ids=SCENARIOS.keys())
def test_each_trigger_rule_gives_what_booster_status_gives(
    completed_induction, patient, protocol, plan_fields, scores, fires
):
    MaintenancePlanFactory(patient=patient, protocol=protocol, **plan_fields)
    for score in scores:
        phq9(patient, *score)
    fired = False
    for offset in (0, 3, 7, 10, 15, 16, 20, 27, 28, 35, 42, 43, 49, 50, 57, 100):
        today = LAST + dt.timedelta(days=offset)
        status = booster_status(patient=patient, today=today)
        got = due_boosters(today=today, stages=ALL_STAGES)
        assert as_rows(got) == as_rows(from_statuses([status])), today
        fired |= status.trigger is not None
    assert fired == fires


def test_the_statement_and_the_scan_agree_on_who_gets_a_reminder(scanned_clinic):
    """The statement's ``staff`` and ``Recipients`` name the same people: after a scan
    nothing is missing (the statement expects nobody the scan skips), and any one row
    removed is missed (it expects everybody the scan writes to)."""
    today = scanned_clinic
    Reminder.objects.all().delete()  # none for the primaries replaced below
    people = {
        "superuser": UserFactory(username="boss", is_superuser=True, is_staff=True),
        "inactive clinician": UserFactory(username="gone_clinician", role="clinician", is_active=False),
        "auditor": UserFactory(username="auditor_x", role="auditor"),
        "clinician without email": UserFactory(username="quiet_clinician", role="clinician", email=""),
    }
    UserFactory(username="gone_scheduler", role="scheduler", is_active=False)
    due = due_boosters(today=today, stages=tuple(BoosterStage)[1:])
    assert len(due) >= len(people)
    for booster, user in zip(due, people.values(), strict=False):
        plan = MaintenancePlan.objects.select_related("patient").get(pk=booster.plan_id)
        plan.patient.primary_clinician = user
        plan.patient.save()
    _scan_boosters(today)
    assert missing(today) == []
    current = [Q(subject_id=b.last_infusion_id, stage=b.stage, repeat=b.overdue_repeat(today)) for b in due]
    written = Reminder.objects.filter(Q(*current, _connector=Q.OR), kind=ReminderKind.BOOSTER_STAGE)
    recipients = set(written.values_list("recipient__username", flat=True))
    assert {"boss", "quiet_clinician"} <= recipients
    assert not {"gone_clinician", "auditor_x", "gone_scheduler"} & recipients
    for username in recipients:
        row = written.filter(recipient__username=username).order_by("subject_id", "channel").first()
        row.delete()
        assert [b.last_infusion_id for b in missing(today)] == [row.subject_id], username
        assert _scan_boosters(today) == 1
