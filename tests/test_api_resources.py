"""The REST API's resources: every write goes through the services' rules, readers see
only the fields and the records their role allows, lists filter and page, times carry
the clinic's offset, and lists cost a fixed number of queries.

Time is frozen on Monday 23 November 2026, 13:00 in New York (UTC-05:00): the first
infusion of a series starting that day (09:00) has already been given.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from decimal import Decimal
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from maintenance.models import BoosterAppointment, MaintenancePlan, Notification, NotificationKind
from patients.models import Patient, PatientStatus, PHQ9Assessment, PHQ9Source
from patients.services import phq9_record
from sessions.models import (
    InductionSeries,
    InfusionAmendment,
    InfusionSession,
    Protocol,
    SessionKind,
    SessionStatus,
    SideEffect,
    VitalSignReading,
)
from sessions.services import (
    LOCKED_MESSAGE,
    series_create,
    series_discontinue,
    session_cancel,
    session_complete,
    session_discharge,
    session_record_side_effect,
    session_record_vitals,
    session_sign,
    session_start,
)
from sessions.vitals import VitalPhase
from tests.factories import MaintenancePlanFactory, PatientFactory, PHQ9Factory, ProtocolFactory

NEW_YORK = ZoneInfo("America/New_York")
MONDAY = dt.date(2026, 11, 23)  # winter: the clinic is at UTC-05:00
THURSDAY = dt.date(2026, 11, 26)
SATURDAY = dt.date(2026, 11, 28)
NEXT_MONDAY = dt.date(2026, 11, 30)
SUMMER_MONDAY = dt.date(2026, 6, 15)  # summer: UTC-04:00
NOW = dt.datetime.combine(MONDAY, dt.time(13, 0), tzinfo=NEW_YORK)

API = "/api/v1"
NAIVE_MESSAGE = "Give the time with its UTC offset, for example 2026-11-23T09:00:00-05:00."
ISO_WITH_OFFSET = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?[+-]\d{2}:\d{2}$")
LOOKS_LIKE_A_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
#: Queries a list may run, whatever its length (auth/roles, count, page, prefetches).
QUERY_BUDGET = 12


# --- Helpers ------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=NEW_YORK)


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def refused(response, status: int = 400) -> dict:
    assert response.status_code == status, (response.status_code, response.content)
    return response.json()


def ok(response, status: int = 200):
    assert response.status_code == status, (response.status_code, response.content)
    return response.json()


def messages_of(errors) -> list[str]:
    """Every message of an error body, whatever the keys."""
    if isinstance(errors, str):
        return [errors]
    if isinstance(errors, list):
        return [message for item in errors for message in messages_of(item)]
    return [message for value in errors.values() for message in messages_of(value)]


def ids(response) -> list[str]:
    return [row["id"] for row in ok(response)["results"]]


def phq9_body(patient=None, *, level: int = 1, **items) -> dict:
    body = {f"item_{n}": level for n in range(1, 10)} | {"item_9": 0, "difficulty": "somewhat"} | items
    if patient is not None:
        body["patient"] = str(patient.pk)
    return body


def book_series(patient, protocol, by, start: dt.date = MONDAY, **kwargs) -> InductionSeries:
    return series_create(patient=patient, protocol=protocol, start_date=start, created_by=by, **kwargs)


def infusions_of(series) -> list[InfusionSession]:
    return list(series.sessions.order_by("scheduled_at"))


def give(session, clinician, *, discharge: bool = True, sign: bool = True) -> InfusionSession:
    """Give an infusion through the services, at its booked time: 80 kg, one reading,
    one side effect, CADSS-6 of 6, discharged 85 minutes after the start, then signed."""
    start = session.scheduled_at + dt.timedelta(minutes=5)
    session = session_start(session=session, by=clinician, weight_kg="80.0", started_at=start)
    session_record_vitals(
        session=session,
        by=clinician,
        phase=VitalPhase.PRE,
        taken_at=start - dt.timedelta(minutes=3),
        systolic=128,
        diastolic=82,
        heart_rate=72,
        spo2=98,
    )
    session_record_side_effect(session=session, by=clinician, kind="nausea_vomiting", severity="mild")
    session = session_complete(
        session=session,
        by=clinician,
        ended_at=start + dt.timedelta(minutes=45),
        dissociation_scale="cadss6",
        dissociation_score=6,
        notes="Tolerated well.",
    )
    if discharge:
        session = session_discharge(session=session, by=clinician, discharged_at=start + dt.timedelta(minutes=85))
        if sign:
            session = session_sign(session=session, by=clinician, signed_at=start + dt.timedelta(minutes=90))
    return session


def snapshot(session) -> tuple:
    """The stored infusion and what hangs off it, to compare before and after a refusal."""
    return (
        InfusionSession.objects.filter(pk=session.pk).values().get(),
        list(VitalSignReading.objects.filter(session=session).values()),
        list(SideEffect.objects.filter(session=session).values()),
        list(InfusionAmendment.objects.filter(session=session).values()),
    )


def booster(patient, day: dt.date, hour: int = 9) -> BoosterAppointment:
    """A booster row straight in the database (for lists; the booking rules are tested via the API)."""
    return BoosterAppointment.objects.create(
        patient=patient,
        kind=SessionKind.BOOSTER,
        scheduled_at=at(day, hour),
        route="iv",
        drug="ketamine",
        dose_mg_per_kg=Decimal("0.50"),
        planned_minutes=40,
    )


def note_for(user, title: str = "Booster due", *, read: bool = False, **fields) -> Notification:
    return Notification.objects.create(
        recipient=user,
        kind=NotificationKind.BOOSTER_STAGE,
        title=title,
        read_at=NOW if read else None,
        **fields,
    )


@pytest.fixture
def series_a(patient, protocol, scheduler):
    """Patient A's induction from Monday 23 November: Mon/Thu, 09:00."""
    return book_series(patient, protocol, scheduler)


@pytest.fixture
def signed_a(series_a, clinician):
    """Patient A's first infusion, given this morning and signed."""
    return give(infusions_of(series_a)[0], clinician)


# --- 1. Validation through the services ---------------------------------------------------

MISSING = object()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("item_4", "message"),
    [
        (4, "Ensure this value is less than or equal to 3."),
        (-1, "Ensure this value is greater than or equal to 0."),
        (MISSING, "This field is required."),
        (2.5, "A valid integer is required."),
        (True, "A valid integer is required."),
        ("2.5", "A valid integer is required."),
    ],
    ids=["4", "negative", "missing", "2.5", "true", "string-2.5"],
)
def test_it_refuses_a_phq9_with_an_item_out_of_range_missing_fractional_or_boolean(patient, clinician, item_4, message):
    body = phq9_body(patient)
    if item_4 is MISSING:
        del body["item_4"]
    else:
        body["item_4"] = item_4

    errors = refused(api(clinician).post(f"{API}/phq9/", body, format="json"))

    assert errors == {"item_4": [message]}
    assert not PHQ9Assessment.objects.exists()


@pytest.mark.django_db
def test_it_refuses_a_patient_born_in_the_future(scheduler, patient):
    body = {
        "mrn": "API-0100",
        "first_name": "Robin",
        "last_name": "Quaye",
        "date_of_birth": (MONDAY + dt.timedelta(days=1)).isoformat(),
        "primary_diagnosis": "trd",
    }
    errors = refused(api(scheduler).post(f"{API}/patients/", body, format="json"))
    assert errors == {"date_of_birth": ["The date of birth cannot be in the future."]}
    assert not Patient.objects.filter(mrn="API-0100").exists()

    errors = refused(api(scheduler).patch(f"{API}/patients/{patient.pk}/", {"date_of_birth": "2027-01-01"}))
    assert errors == {"date_of_birth": ["The date of birth cannot be in the future."]}
    patient.refresh_from_db()
    assert patient.date_of_birth == dt.date(1980, 5, 17)


@pytest.mark.django_db
def test_it_refuses_a_duplicate_mrn(scheduler, patient):
    body = {
        "mrn": patient.mrn,
        "first_name": "Robin",
        "last_name": "Quaye",
        "date_of_birth": "1980-04-02",
        "primary_diagnosis": "trd",
    }
    errors = refused(api(scheduler).post(f"{API}/patients/", body, format="json"))
    assert list(errors) == ["mrn"]
    assert "already exists" in errors["mrn"][0]
    assert Patient.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("endpoint", ["series/", "series/preview/"])
def test_it_refuses_a_series_starting_in_the_past(scheduler, patient, protocol, endpoint):
    body = {"patient": str(patient.pk), "protocol": str(protocol.pk), "start_date": "2026-11-20"}
    errors = refused(api(scheduler).post(f"{API}/{endpoint}", body, format="json"))
    assert errors == {"start_date": ["A new series cannot start in the past."]}
    assert not InductionSeries.objects.exists()
    assert not InfusionSession.objects.exists()


@pytest.mark.django_db
def test_it_refuses_a_series_while_another_is_in_progress(scheduler, patient, protocol, series_a):
    before = InfusionSession.objects.count()
    body = {"patient": str(patient.pk), "protocol": str(protocol.pk), "start_date": "2027-01-04"}
    errors = refused(api(scheduler).post(f"{API}/series/", body, format="json"))
    assert list(errors) == ["patient"]
    assert "still in progress" in errors["patient"][0]
    assert InductionSeries.objects.count() == 1
    assert InfusionSession.objects.count() == before


@pytest.fixture
def after_one_infusion(patient, scheduler, clinician, protocol):
    """Patient A had a one-infusion series on Monday 16 November and a plan: boosters
    every 28 days, at least 14 after the last infusion."""
    single = ProtocolFactory(name="Single IV infusion", infusion_count=1)
    series = book_series(patient, single, scheduler, start=MONDAY - dt.timedelta(days=7), allow_past=True)
    give(infusions_of(series)[0], clinician)
    return MaintenancePlanFactory(patient=patient, protocol=protocol, target_interval_days=28, min_interval_days=14)


@pytest.mark.django_db
def test_it_refuses_a_booster_before_the_plans_minimum_interval(scheduler, patient, after_one_infusion):
    client = api(scheduler)
    body = {"patient": str(patient.pk), "scheduled_at": at(MONDAY + dt.timedelta(days=2), 9).isoformat()}
    errors = refused(client.post(f"{API}/boosters/", body, format="json"))
    assert list(errors) == ["scheduled_at"]
    assert "minimum interval is 14 days" in errors["scheduled_at"][0]
    assert "Monday 30 November 2026" in errors["scheduled_at"][0]
    assert not BoosterAppointment.objects.exists()

    # The first day the plan allows is booked.
    body["scheduled_at"] = at(NEXT_MONDAY, 9).isoformat()
    assert ok(client.post(f"{API}/boosters/", body, format="json"), 201)["scheduled_on"] == "2026-11-30"


@pytest.mark.django_db
def test_it_refuses_a_booster_without_a_maintenance_plan(scheduler, other_patient):
    body = {"patient": str(other_patient.pk), "scheduled_at": at(NEXT_MONDAY, 9).isoformat()}
    errors = refused(api(scheduler).post(f"{API}/boosters/", body, format="json"))
    assert errors == {"patient": ["This patient has no maintenance plan yet; create one first."]}
    assert not BoosterAppointment.objects.exists()


@pytest.mark.django_db
def test_it_refuses_a_maintenance_plan_whose_minimum_is_longer_than_its_target(scheduler, patient, protocol):
    body = {
        "patient": str(patient.pk),
        "protocol": str(protocol.pk),
        "target_interval_days": 28,
        "min_interval_days": 35,
    }
    errors = refused(api(scheduler).post(f"{API}/maintenance-plans/", body, format="json"))
    assert errors == {"min_interval_days": ["The minimum interval cannot be longer than the target."]}
    assert not MaintenancePlan.objects.exists()


@pytest.mark.django_db
def test_it_refuses_a_plan_change_that_puts_the_maximum_below_the_target(scheduler, patient, protocol):
    plan = MaintenancePlanFactory(patient=patient, protocol=protocol)
    errors = refused(api(scheduler).patch(f"{API}/maintenance-plans/{plan.pk}/", {"max_interval_days": 21}))
    assert errors == {"max_interval_days": ["The maximum interval cannot be shorter than the target."]}
    plan.refresh_from_db()
    assert (plan.target_interval_days, plan.min_interval_days, plan.max_interval_days) == (28, 14, 42)


@pytest.mark.django_db
def test_it_refuses_vitals_with_only_a_systolic_value(clinician, series_a):
    session = infusions_of(series_a)[0]
    client = api(clinician)

    errors = refused(client.post(f"{API}/infusions/{session.pk}/vitals/", {"phase": "pre", "systolic": 130}))
    assert "Blood pressure needs both values, 50-300 over 20-200 mmHg, systolic above diastolic." in messages_of(errors)
    assert set(errors) <= {"non_field_errors", "diastolic", "systolic"}

    errors = refused(client.post(f"{API}/infusions/{session.pk}/vitals/", {"phase": "during", "heart_rate": 500}))
    assert errors == {"heart_rate": ["Ensure this value is less than or equal to 250."]}
    assert not VitalSignReading.objects.exists()


@pytest.mark.django_db
def test_it_refuses_a_dissociation_score_above_the_scales_maximum(clinician, series_a):
    session = session_start(
        session=infusions_of(series_a)[0], by=clinician, weight_kg="80.0", started_at=at(MONDAY, 9, 5)
    )
    before = snapshot(session)
    client = api(clinician)
    body = {"ended_at": at(MONDAY, 9, 50).isoformat(), "dissociation_scale": "cadss6", "dissociation_score": 25}

    errors = refused(client.post(f"{API}/infusions/{session.pk}/complete/", body, format="json"))
    assert "A dissociation score needs its scale: CADSS 0-92 or CADSS-6 0-24." in messages_of(errors)
    assert set(errors) <= {"non_field_errors", "dissociation_score"}
    assert snapshot(session) == before

    body = {"ended_at": at(MONDAY, 14).isoformat()}  # an hour from now
    errors = refused(client.post(f"{API}/infusions/{session.pk}/complete/", body, format="json"))
    assert errors == {"ended_at": ["An infusion cannot end in the future."]}
    assert snapshot(session) == before


@pytest.mark.django_db
def test_it_refuses_to_amend_an_unsigned_record(clinician, series_a):
    session = give(infusions_of(series_a)[0], clinician, sign=False)
    before = snapshot(session)
    body = {"reason": "Typo", "changes": {"notes": "Rewritten"}}
    errors = refused(api(clinician).post(f"{API}/infusions/{session.pk}/amend/", body, format="json"))
    assert errors == {"non_field_errors": ["Only a signed record is amended; edit an unsigned record directly."]}
    assert snapshot(session) == before


@pytest.mark.django_db
def test_it_refuses_an_amendment_without_a_reason_or_with_an_implausible_weight(clinician, signed_a):
    client = api(clinician)
    before = snapshot(signed_a)
    url = f"{API}/infusions/{signed_a.pk}/amend/"

    errors = refused(client.post(url, {"reason": "  ", "changes": {"notes": "x"}}, format="json"))
    assert errors == {"reason": ["This field may not be blank."]}
    errors = refused(client.post(url, {"reason": "Scale misread", "changes": {"weight_kg_used": "10.0"}}))
    assert errors == {"changes": {"weight_kg_used": ["Ensure this value is greater than or equal to 20.0."]}}
    assert snapshot(signed_a) == before


@pytest.mark.django_db
def test_it_refuses_to_start_an_infusion_on_another_day_than_its_booking(clinician, patient, series_a):
    thursday = infusions_of(series_a)[1]
    before = snapshot(thursday)
    errors = refused(api(clinician).post(f"{API}/infusions/{thursday.pk}/start/", {"weight_kg": "90.0"}))
    assert errors == {
        "started_at": ["This infusion is booked for Thursday 26 November; move it to the day it is given."]
    }
    assert snapshot(thursday) == before
    patient.refresh_from_db()
    assert patient.weight_kg == Decimal("72.5")


@pytest.mark.django_db
def test_it_refuses_to_reschedule_onto_a_weekend(scheduler, series_a):
    thursday = infusions_of(series_a)[1]
    before = snapshot(thursday)
    body = {"scheduled_at": at(SATURDAY, 9).isoformat()}
    errors = refused(api(scheduler).post(f"{API}/infusions/{thursday.pk}/reschedule/", body, format="json"))
    assert errors == {"scheduled_at": ["The clinic is closed on Saturday 28 November 2026."]}
    assert snapshot(thursday) == before


@pytest.fixture
def item_9_alert(patient, clinician, other_clinician):
    """Patient A answered item 9 with 2 this morning: both clinicians were alerted."""
    answers = {f"item_{n}": 2 for n in range(1, 10)}
    return phq9_record(patient=patient, answers=answers, taken_at=at(MONDAY, 8), entered_by=clinician)


def safety_notifications(assessment):
    return Notification.objects.filter(kind=NotificationKind.SAFETY_ALERT, subject_id=assessment.pk)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"action": ""}, "This field may not be blank."),
        ({"action": "   "}, "This field may not be blank."),
        ({}, "This field is required."),
    ],
    ids=["empty", "spaces", "missing"],
)
def test_it_refuses_an_acknowledgement_without_an_action(clinician, item_9_alert, body, message):
    errors = refused(api(clinician).post(f"{API}/phq9/{item_9_alert.pk}/acknowledge/", body, format="json"))
    assert errors == {"action": [message]}
    item_9_alert.refresh_from_db()
    assert item_9_alert.safety_acknowledged_at is None
    assert item_9_alert.safety_action == ""
    assert safety_notifications(item_9_alert).count() == 2
    assert not safety_notifications(item_9_alert).filter(read_at__isnull=False).exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("infusions/{thursday}/reschedule/", {"scheduled_at": "2026-11-30T09:00:00"}, "scheduled_at"),
        ("boosters/", {"patient": "{patient}", "scheduled_at": "2026-11-30T09:00:00"}, "scheduled_at"),
        ("series/{series}/makeup/", {"scheduled_at": "2026-12-02T09:00:00"}, "scheduled_at"),
        ("infusions/{monday}/start/", {"started_at": "2026-11-23T09:05:00"}, "started_at"),
        ("infusions/{monday}/vitals/", {"phase": "pre", "spo2": 97, "taken_at": "2026-11-23T09:00:00"}, "taken_at"),
        ("phq9/", {**phq9_body(), "patient": "{patient}", "taken_at": "2026-11-23T09:00:00"}, "taken_at"),
    ],
    ids=["reschedule", "booster", "makeup", "start", "vitals", "phq9"],
)
def test_it_refuses_a_time_without_a_utc_offset(clinician, patient, series_a, path, body, field):
    sessions = infusions_of(series_a)
    names = {"patient": patient.pk, "series": series_a.pk, "monday": sessions[0].pk, "thursday": sessions[1].pk}
    body = {key: value.format(**names) if isinstance(value, str) else value for key, value in body.items()}
    before = [snapshot(session) for session in sessions], PHQ9Assessment.objects.count()

    errors = refused(api(clinician).post(f"{API}/{path.format(**names)}", body, format="json"))

    assert errors == {field: [NAIVE_MESSAGE]}
    assert ([snapshot(session) for session in infusions_of(series_a)], PHQ9Assessment.objects.count()) == before


@pytest.mark.django_db
def test_a_time_with_its_offset_or_z_is_taken_as_that_instant(scheduler, series_a):
    thursday = infusions_of(series_a)[1]
    body = {"scheduled_at": "2026-11-27T14:00:00Z"}  # Friday, 09:00 in New York
    moved = ok(api(scheduler).post(f"{API}/infusions/{thursday.pk}/reschedule/", body, format="json"))
    assert moved["infusion"]["scheduled_at"] == "2026-11-27T09:00:00-05:00"
    assert moved["infusion"]["scheduled_on"] == "2026-11-27"
    thursday.refresh_from_db()
    assert thursday.scheduled_at == at(THURSDAY + dt.timedelta(days=1), 9)


@pytest.mark.django_db
def test_it_refuses_a_side_effect_of_kind_other_without_a_note(clinician, series_a):
    session = infusions_of(series_a)[0]
    body = {"kind": "other", "severity": "mild"}
    errors = refused(api(clinician).post(f"{API}/infusions/{session.pk}/side-effects/", body, format="json"))
    assert errors == {"note": ["Describe a side effect of kind 'other'."]}
    assert not SideEffect.objects.exists()


@pytest.mark.django_db
def test_a_side_effect_without_a_severity_is_recorded_as_mild(clinician, series_a):
    """``severity`` is optional in the request (the model defaults to mild)."""
    session = infusions_of(series_a)[0]
    response = api(clinician).post(f"{API}/infusions/{session.pk}/side-effects/", {"kind": "headache"})
    assert ok(response, 201)["severity"] == "mild"
    assert SideEffect.objects.get().severity == "mild"


@pytest.mark.django_db
def test_it_refuses_a_discharge_in_the_future(clinician, series_a):
    session = give(infusions_of(series_a)[0], clinician, discharge=False)
    before = snapshot(session)
    body = {"discharged_at": at(MONDAY, 15).isoformat()}
    errors = refused(api(clinician).post(f"{API}/infusions/{session.pk}/discharge/", body, format="json"))
    assert errors == {"discharged_at": ["A discharge cannot be in the future."]}
    assert snapshot(session) == before


@pytest.mark.django_db
def test_it_refuses_to_sign_before_the_discharge_or_in_the_future(clinician, series_a):
    client = api(clinician)
    session = give(infusions_of(series_a)[0], clinician, discharge=False)
    errors = refused(client.post(f"{API}/infusions/{session.pk}/sign/", {}))
    assert errors == {"non_field_errors": ["Only a completed infusion with its discharge recorded can be signed."]}

    session = session_discharge(session=session, by=clinician, discharged_at=at(MONDAY, 10, 30))
    before = snapshot(session)
    # A record is signed now: a chosen (backdated) signature time is refused, not ignored.
    errors = refused(client.post(f"{API}/infusions/{session.pk}/sign/", {"signed_at": at(MONDAY, 16).isoformat()}))
    assert errors == {"signed_at": ["Unknown field: the request does not take it."]}
    assert snapshot(session) == before


@pytest.mark.django_db
def test_it_refuses_to_cancel_a_given_infusion_or_mark_a_future_one_missed(scheduler, clinician, series_a):
    given, thursday = infusions_of(series_a)[:2]
    given = give(given, clinician, sign=False)
    before = snapshot(given), snapshot(thursday)
    client = api(scheduler)

    errors = refused(client.post(f"{API}/infusions/{given.pk}/cancel/", {"reason": "Changed mind"}))
    assert errors == {"non_field_errors": ["Only an infusion that has not started can be cancelled or marked missed."]}
    errors = refused(client.post(f"{API}/infusions/{thursday.pk}/missed/", {"reason": "Did not come"}))
    assert errors == {"non_field_errors": ["An appointment that has not come yet cannot be missed; cancel it instead."]}
    assert (snapshot(given), snapshot(thursday)) == before


@pytest.mark.django_db
def test_it_refuses_to_discontinue_a_series_without_a_reason(scheduler, series_a):
    errors = refused(api(scheduler).post(f"{API}/series/{series_a.pk}/discontinue/", {"reason": " "}))
    assert errors == {"reason": ["This field may not be blank."]}
    series_a.refresh_from_db()
    assert series_a.discontinued_at is None
    assert not InfusionSession.objects.filter(status=SessionStatus.CANCELLED).exists()


@pytest.mark.django_db
def test_it_refuses_a_make_up_on_a_closed_day(scheduler, series_a):
    session_cancel(session=infusions_of(series_a)[1], by=scheduler, reason="Unwell")
    body = {"scheduled_at": at(SATURDAY, 9).isoformat()}
    errors = refused(api(scheduler).post(f"{API}/series/{series_a.pk}/makeup/", body, format="json"))
    assert errors == {"scheduled_at": ["The clinic is closed on Saturday 28 November 2026."]}
    assert series_a.sessions.count() == 6


# --- 2. The API cannot bypass a rule the pages enforce --------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("action", "body"),
    [
        ("complete", {"ended_at": "2026-11-23T10:00:00-05:00", "notes": "Rewritten afterwards"}),
        ("vitals", {"phase": "discharge", "systolic": 120, "diastolic": 80}),
        ("side-effects", {"kind": "headache", "severity": "mild"}),
        ("discharge", {"discharged_at": "2026-11-23T11:00:00-05:00"}),
        ("start", {"weight_kg": "95.0"}),
    ],
)
def test_a_signed_infusion_cannot_be_changed_again(clinician, signed_a, action, body):
    before = snapshot(signed_a)
    errors = refused(api(clinician).post(f"{API}/infusions/{signed_a.pk}/{action}/", body, format="json"))
    assert messages_of(errors) == [LOCKED_MESSAGE]
    assert snapshot(signed_a) == before


@pytest.mark.django_db
def test_a_patients_second_portal_phq9_the_same_day_is_refused(patient):
    client = api(patient.user)
    first = ok(client.post(f"{API}/phq9/", phq9_body(), format="json"), 201)
    assert (first["patient"], first["source"]) == (str(patient.pk), PHQ9Source.PORTAL)

    errors = refused(client.post(f"{API}/phq9/", phq9_body(level=2), format="json"))
    assert errors == {
        "non_field_errors": [
            "You have already filled in the questionnaire recently. You can fill it in again from Tuesday 24 November."
        ]
    }
    assert PHQ9Assessment.objects.count() == 1


@pytest.mark.django_db
def test_a_second_portal_phq9_with_item_9_above_0_is_recorded_with_crisis_support(patient, clinician):
    client = api(patient.user)
    first = ok(client.post(f"{API}/phq9/", phq9_body(), format="json"), 201)
    assert first["crisis_support"] is None

    second = ok(client.post(f"{API}/phq9/", phq9_body(item_9=1), format="json"), 201)

    assert second["safety_flag"] is True
    assert "988" in second["crisis_support"]
    assert "911" in second["crisis_support"]
    assert PHQ9Assessment.objects.filter(patient=patient).count() == 2
    assert safety_notifications(PHQ9Assessment.objects.get(pk=second["id"])).filter(recipient=clinician).exists()


@pytest.mark.django_db
def test_a_patient_cannot_date_their_own_phq9(patient):
    body = phq9_body(taken_at=at(MONDAY - dt.timedelta(days=3), 9).isoformat())
    errors = refused(api(patient.user).post(f"{API}/phq9/", body, format="json"))
    assert errors == {"taken_at": ["Your questionnaire is dated when you send it."]}
    assert not PHQ9Assessment.objects.exists()


@pytest.mark.django_db
def test_a_scheduler_cannot_enter_a_phq9_or_log_an_infusion(scheduler, patient, series_a):
    client = api(scheduler)
    assert client.post(f"{API}/phq9/", phq9_body(patient), format="json").status_code == 403
    session = infusions_of(series_a)[0]
    before = snapshot(session)
    assert client.post(f"{API}/infusions/{session.pk}/start/", {"weight_kg": "80.0"}).status_code == 403
    assert client.post(f"{API}/infusions/{session.pk}/vitals/", {"phase": "pre", "spo2": 97}).status_code == 403
    assert snapshot(session) == before
    assert not PHQ9Assessment.objects.exists()


# --- 3. Role-based visibility of fields ------------------------------------------------------


@pytest.mark.django_db
def test_a_scheduler_reads_an_infusion_without_its_clinical_record(scheduler, signed_a):
    response = api(scheduler).get(f"{API}/infusions/{signed_a.pk}/")
    infusion = ok(response)
    assert infusion["clinical"] is None
    assert infusion["status"] == "completed"
    assert infusion["is_signed"] is True
    for secret in ("Tolerated well.", "dose_mg", "systolic", "nausea", "cadss"):
        assert secret not in response.content.decode()
    listed = ok(api(scheduler).get(f"{API}/infusions/"))["results"]
    assert listed
    assert all(row["clinical"] is None for row in listed)


@pytest.mark.django_db
def test_a_clinician_reads_an_infusions_clinical_record(clinician, signed_a):
    clinical = ok(api(clinician).get(f"{API}/infusions/{signed_a.pk}/"))["clinical"]
    assert clinical["dose_mg"] == "40.0"
    assert clinical["weight_kg_used"] == "80.0"
    assert clinical["dose_mg_per_kg"] == "0.50"
    assert clinical["notes"] == "Tolerated well."
    assert (clinical["dissociation_scale"], clinical["dissociation_score"]) == ("cadss6", 6)
    assert [(v["systolic"], v["diastolic"], v["heart_rate"], v["spo2"]) for v in clinical["vitals"]] == [
        (128, 82, 72, 98)
    ]
    assert [effect["kind"] for effect in clinical["side_effects"]] == ["nausea_vomiting"]
    assert clinical["signed_by"] == clinician.pk


@pytest.mark.django_db
def test_phq9_answers_and_safety_flag_are_for_clinicians_and_the_patient(scheduler, clinician, patient):
    assessment = PHQ9Factory(patient=patient, level=2, item_9=2, taken_at=at(MONDAY, 8))
    url = f"{API}/phq9/{assessment.pk}/"

    as_scheduler = ok(api(scheduler).get(url))
    assert (as_scheduler["answers"], as_scheduler["safety_flag"]) == (None, None)
    assert (as_scheduler["total"], as_scheduler["severity"]) == (18, "moderately_severe")
    assert as_scheduler["safety_acknowledgement"] is None
    assert all(row["answers"] is None for row in ok(api(scheduler).get(f"{API}/phq9/"))["results"])

    as_clinician = ok(api(clinician).get(url))
    assert as_clinician["answers"]["item_9"] == 2
    assert as_clinician["answers"]["item_1"] == 2
    assert as_clinician["safety_flag"] is True
    assert as_clinician["crisis_support"] is None  # for the patient who answered

    as_patient = ok(api(patient.user).get(url))
    assert as_patient["answers"]["item_9"] == 2
    assert as_patient["safety_flag"] is True


@pytest.mark.django_db
def test_a_scheduler_reads_a_patient_without_the_weight(scheduler, clinician, patient):
    response = api(scheduler).get(f"{API}/patients/{patient.pk}/")
    assert ok(response)["clinical"] is None
    assert "72.5" not in response.content.decode()
    assert all(row["clinical"] is None for row in ok(api(scheduler).get(f"{API}/patients/"))["results"])

    assert ok(api(clinician).get(f"{API}/patients/{patient.pk}/"))["clinical"]["weight_kg"] == "72.5"


@pytest.mark.django_db
@pytest.mark.parametrize("clinical", [{"weight_kg": "90.0"}, None])
def test_a_scheduler_cannot_set_the_weight(scheduler, patient, clinical):
    errors = refused(api(scheduler).patch(f"{API}/patients/{patient.pk}/", {"clinical": clinical}, format="json"))
    assert errors == {"clinical": ["Only clinicians record the weight."]}
    patient.refresh_from_db()
    assert patient.weight_kg == Decimal("72.5")


@pytest.mark.django_db
def test_a_refused_weight_is_reported_under_clinical(clinician, patient):
    """Errors name the request's fields: the weight is sent inside "clinical"."""
    client = api(clinician)
    url = f"{API}/patients/{patient.pk}/"
    errors = refused(client.patch(url, {"clinical": {"weight_kg": "10.0"}}, format="json"))
    assert errors == {"clinical": {"weight_kg": ["Ensure this value is greater than or equal to 20.0."]}}

    body = {"clinical": {"weight_kg": "80.0", "weight_recorded_on": "2026-12-01"}}
    errors = refused(client.patch(url, body, format="json"))
    assert errors == {"clinical": {"weight_recorded_on": ["The weight cannot have been recorded in the future."]}}
    patient.refresh_from_db()
    assert (patient.weight_kg, patient.weight_recorded_on) == (Decimal("72.5"), MONDAY)


@pytest.mark.django_db
def test_a_clinician_sets_the_weight(clinician, patient):
    body = {"clinical": {"weight_kg": "90.0"}}
    updated = ok(api(clinician).patch(f"{API}/patients/{patient.pk}/", body, format="json"))
    assert updated["clinical"] == {"weight_kg": "90.0", "weight_recorded_on": "2026-11-23"}
    patient.refresh_from_db()
    assert patient.weight_kg == Decimal("90.0")


@pytest.mark.django_db
def test_the_reason_a_series_was_stopped_is_for_clinicians(scheduler, clinician, series_a):
    series_discontinue(series=series_a, by=scheduler, reason="Severe hypertension at infusion 1")
    url = f"{API}/series/{series_a.pk}/"
    as_scheduler = ok(api(scheduler).get(url))
    assert as_scheduler["discontinued_reason"] is None
    assert as_scheduler["discontinued_at"] is not None
    assert ok(api(clinician).get(url))["discontinued_reason"] == "Severe hypertension at infusion 1"


@pytest.mark.django_db
def test_the_response_curve_shows_item_9_to_clinicians_and_the_patient_only(scheduler, clinician, patient):
    PHQ9Factory(patient=patient, level=2, item_9=1, taken_at=at(MONDAY - dt.timedelta(days=7), 9))
    PHQ9Factory(patient=patient, level=1, item_9=0, taken_at=at(MONDAY, 9))
    PHQ9Factory(patient=patient, level=1, item_9=3, taken_at=at(MONDAY, 10))
    url = f"{API}/patients/{patient.pk}/response-curve/"

    points = ok(api(scheduler).get(url))["points"]
    assert [point["total"] for point in points] == [17, 8, 11]
    assert [point["item_9"] for point in points] == [None, None, None]
    assert [point["item_9"] for point in ok(api(clinician).get(url))["points"]] == [1, 0, 3]
    assert [point["item_9"] for point in ok(api(patient.user).get(url))["points"]] == [1, 0, 3]


# --- 4. Patients see only their own -------------------------------------------------------


@pytest.fixture
def two_patients(patient, other_patient, protocol, scheduler, clinician):
    """A and B, each with a series, PHQ-9s, a booster and a plan."""
    data = SimpleNamespace(a=patient, b=other_patient)
    data.series_a = book_series(patient, protocol, scheduler)
    data.series_b = book_series(other_patient, protocol, scheduler)
    give(infusions_of(data.series_a)[0], clinician)
    data.phq9_a = [PHQ9Factory(patient=patient, taken_at=at(MONDAY - dt.timedelta(days=d), 9)) for d in (1, 8)]
    data.phq9_b = [PHQ9Factory(patient=other_patient, level=2, taken_at=at(MONDAY - dt.timedelta(days=2), 9))]
    data.booster_a = booster(patient, dt.date(2027, 1, 11))
    data.booster_b = booster(other_patient, dt.date(2027, 1, 12))
    data.plan_a = MaintenancePlanFactory(patient=patient, protocol=protocol)
    data.plan_b = MaintenancePlanFactory(patient=other_patient, protocol=protocol, is_active=False)
    return data


@pytest.mark.django_db
def test_a_patient_lists_only_their_own_records(two_patients):
    a = two_patients.a
    client = api(a.user)
    assert ids(client.get(f"{API}/patients/")) == [str(a.pk)]
    assert sorted(ids(client.get(f"{API}/phq9/"))) == sorted(str(p.pk) for p in two_patients.phq9_a)
    infusions = ok(client.get(f"{API}/infusions/"))
    assert infusions["count"] == 7  # six induction infusions and a booster
    assert {row["patient"] for row in infusions["results"]} == {str(a.pk)}
    assert all(row["clinical"] is None for row in infusions["results"])  # not even their own doses
    assert ids(client.get(f"{API}/series/")) == [str(two_patients.series_a.pk)]
    assert ids(client.get(f"{API}/boosters/")) == [str(two_patients.booster_a.pk)]
    # Even asking for B's by filter gives nothing of B's.
    assert ids(client.get(f"{API}/phq9/", {"patient": str(two_patients.b.pk)})) == []
    assert ids(client.get(f"{API}/infusions/", {"patient": str(two_patients.b.pk)})) == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("resource", "record", "suffix"),
    [
        ("patients", lambda d: d.b, ""),
        ("patients", lambda d: d.b, "response-curve/"),
        ("phq9", lambda d: d.phq9_b[0], ""),
        ("infusions", lambda d: infusions_of(d.series_b)[0], ""),
        ("series", lambda d: d.series_b, ""),
        ("boosters", lambda d: d.booster_b, ""),
    ],
    ids=["patient", "response-curve", "phq9", "infusion", "series", "booster"],
)
def test_another_patients_record_is_not_found_for_a_patient(two_patients, resource, record, suffix):
    client = api(two_patients.a.user)
    response = client.get(f"{API}/{resource}/{record(two_patients).pk}/{suffix}")
    assert response.status_code == 404, response.content
    # The same answer as for an id nobody has: nothing says the record exists.
    assert response.json() == client.get(f"{API}/{resource}/{uuid.uuid4()}/{suffix}").json()


@pytest.mark.django_db
def test_a_patient_cannot_read_maintenance_plans_or_protocols(two_patients):
    client = api(two_patients.a.user)
    assert client.get(f"{API}/maintenance-plans/").status_code == 403
    assert client.get(f"{API}/maintenance-plans/{two_patients.plan_a.pk}/").status_code == 403
    assert client.get(f"{API}/protocols/").status_code == 403


@pytest.mark.django_db
def test_a_patient_cannot_post_a_phq9_for_another_patient(patient, other_patient):
    response = api(patient.user).post(f"{API}/phq9/", phq9_body(other_patient), format="json")
    assert response.status_code in (201, 400), response.content
    if response.status_code == 201:
        assert response.json()["patient"] == str(patient.pk)
    assert not PHQ9Assessment.objects.filter(patient=other_patient).exists()


@pytest.mark.django_db
def test_notifications_list_only_the_users_own(clinician, other_clinician):
    mine = [note_for(clinician, "Mine 1"), note_for(clinician, "Mine 2", read=True)]
    note_for(other_clinician, "Theirs")
    assert sorted(ids(api(clinician).get(f"{API}/notifications/"))) == sorted(str(n.pk) for n in mine)


# --- 5. Filtering, ordering, paging -----------------------------------------------------------


def page_of_one(client, url: str, query: dict | None = None) -> None:
    page = ok(client.get(url, {**(query or {}), "page_size": 1}))
    assert page["count"] >= 2
    assert len(page["results"]) == 1
    assert page["next"] is not None
    assert "page=2" in page["next"]
    assert page["previous"] is None


@pytest.mark.django_db
def test_patients_filter_order_and_page(scheduler):
    lovelace = PatientFactory(first_name="Ada", last_name="Lovelace", mrn="L-100", status=PatientStatus.ACTIVE)
    turing = PatientFactory(first_name="Alan", last_name="Turing", mrn="T-200", status=PatientStatus.INTAKE)
    hopper = PatientFactory(first_name="Grace", last_name="Hopper", mrn="H-300", status=PatientStatus.DISCHARGED)
    client = api(scheduler)
    url = f"{API}/patients/"

    assert ids(client.get(url, {"q": "love"})) == [str(lovelace.pk)]
    assert ids(client.get(url, {"q": "T-2"})) == [str(turing.pk)]
    assert ids(client.get(url, {"q": "a"})) == [str(p.pk) for p in (hopper, lovelace, turing)]
    assert ids(client.get(url, {"status": "discharged"})) == [str(hopper.pk)]
    assert ids(client.get(url, {"status": "active", "q": "a"})) == [str(lovelace.pk)]
    assert ids(client.get(url)) == [str(p.pk) for p in (hopper, lovelace, turing)]
    assert ids(client.get(url, {"ordering": "-last_name"})) == [str(p.pk) for p in (turing, lovelace, hopper)]
    assert ids(client.get(url, {"ordering": "mrn"})) == [str(p.pk) for p in (hopper, lovelace, turing)]
    page_of_one(client, url)


@pytest.mark.django_db
def test_phq9s_filter_order_and_page(clinician, patient, other_patient):
    a = [
        PHQ9Factory(patient=patient, level=level, taken_at=at(MONDAY - dt.timedelta(days=days), 9))
        for level, days in ((3, 21), (2, 14), (1, 7))
    ]
    b = PHQ9Factory(patient=other_patient, level=0, taken_at=at(MONDAY - dt.timedelta(days=10), 9))
    client = api(clinician)
    url = f"{API}/phq9/"

    assert ids(client.get(url)) == [str(x.pk) for x in (a[2], b, a[1], a[0])]  # newest first
    assert ids(client.get(url, {"patient": str(patient.pk)})) == [str(x.pk) for x in (a[2], a[1], a[0])]
    after = at(MONDAY - dt.timedelta(days=12), 0).isoformat()
    assert ids(client.get(url, {"taken_after": after})) == [str(x.pk) for x in (a[2], b)]
    assert ids(client.get(url, {"taken_after": after, "patient": str(patient.pk)})) == [str(a[2].pk)]
    assert ids(client.get(url, {"ordering": "taken_at"})) == [str(x.pk) for x in (a[0], a[1], b, a[2])]
    assert ids(client.get(url, {"ordering": "-total"}))[0] == str(a[0].pk)
    page_of_one(client, url, {"patient": str(patient.pk)})


@pytest.mark.django_db
def test_infusions_filter_order_and_page(scheduler, patient, other_patient, protocol):
    series_a = book_series(patient, protocol, scheduler)
    series_b = book_series(other_patient, protocol, scheduler, start=NEXT_MONDAY)
    a = infusions_of(series_a)
    session_cancel(session=a[1], by=scheduler, reason="Unwell")
    client = api(scheduler)
    url = f"{API}/infusions/"

    mine = ok(client.get(url, {"patient": str(patient.pk)}))
    assert mine["count"] == 6
    assert [row["id"] for row in mine["results"]] == [str(s.pk) for s in a]
    assert ids(client.get(url, {"status": "cancelled"})) == [str(a[1].pk)]
    assert ids(client.get(url, {"patient": str(patient.pk), "status": "scheduled"})) == [
        str(s.pk) for s in a if s.pk != a[1].pk
    ]
    later = ok(client.get(url, {"on_or_after": "2026-12-03"}))["results"]
    assert later
    assert all(row["scheduled_on"] >= "2026-12-03" for row in later)
    expected_later = InfusionSession.objects.filter(scheduled_on__gte=dt.date(2026, 12, 3)).count()
    assert len(later) == expected_later < 12
    assert ids(client.get(url, {"series": str(series_b.pk)})) == [str(s.pk) for s in infusions_of(series_b)]
    assert ids(client.get(url, {"patient": str(patient.pk), "ordering": "-scheduled_at"})) == [
        str(s.pk) for s in reversed(a)
    ]
    page_of_one(client, url, {"patient": str(patient.pk)})


@pytest.mark.django_db
def test_series_filter_order_and_page(scheduler, patient, other_patient, protocol):
    series_a = book_series(patient, protocol, scheduler)
    series_b = book_series(other_patient, protocol, scheduler, start=NEXT_MONDAY)
    client = api(scheduler)
    url = f"{API}/series/"

    assert ids(client.get(url, {"patient": str(patient.pk)})) == [str(series_a.pk)]
    assert ids(client.get(url)) == [str(series_b.pk), str(series_a.pk)]  # latest start first
    assert ids(client.get(url, {"ordering": "start_date"})) == [str(series_a.pk), str(series_b.pk)]
    assert ids(client.get(url, {"started_after": "2026-11-24"})) == [str(series_b.pk)]
    page_of_one(client, url)


@pytest.mark.django_db
def test_boosters_filter_order_and_page(scheduler, patient, other_patient, protocol):
    a = [booster(patient, dt.date(2027, 1, 4)), booster(patient, dt.date(2027, 2, 1))]
    b = booster(other_patient, dt.date(2027, 1, 5))
    book_series(patient, protocol, scheduler)  # induction infusions are not boosters
    client = api(scheduler)
    url = f"{API}/boosters/"

    assert ids(client.get(url)) == [str(x.pk) for x in (a[0], b, a[1])]
    assert ids(client.get(url, {"patient": str(patient.pk)})) == [str(x.pk) for x in a]
    assert ids(client.get(url, {"ordering": "-scheduled_at"})) == [str(x.pk) for x in (a[1], b, a[0])]
    assert ids(client.get(url, {"on_or_after": "2027-01-05"})) == [str(b.pk), str(a[1].pk)]
    page_of_one(client, url)


@pytest.mark.django_db
def test_maintenance_plans_filter_order_and_page(scheduler, patient, other_patient, protocol, clock):
    plan_a = MaintenancePlanFactory(patient=patient, protocol=protocol, target_interval_days=21, min_interval_days=14)
    clock.shift(dt.timedelta(minutes=1))
    plan_b = MaintenancePlanFactory(patient=other_patient, protocol=protocol, is_active=False)
    client = api(scheduler)
    url = f"{API}/maintenance-plans/"

    assert ids(client.get(url, {"patient": str(patient.pk)})) == [str(plan_a.pk)]
    assert ids(client.get(url, {"is_active": "true"})) == [str(plan_a.pk)]
    assert ids(client.get(url, {"is_active": "false"})) == [str(plan_b.pk)]
    assert ids(client.get(url)) == [str(plan_a.pk), str(plan_b.pk)]
    assert ids(client.get(url, {"ordering": "-created_at"})) == [str(plan_b.pk), str(plan_a.pk)]
    assert ids(client.get(url, {"ordering": "-target_interval_days"})) == [str(plan_b.pk), str(plan_a.pk)]
    page_of_one(client, url)


@pytest.mark.django_db
def test_notifications_filter_order_and_page(clinician, clock):
    old = note_for(clinician, "Old", read=True)
    clock.shift(dt.timedelta(minutes=1))
    middle = note_for(clinician, "Middle")
    clock.shift(dt.timedelta(minutes=1))
    new = note_for(clinician, "New")
    client = api(clinician)
    url = f"{API}/notifications/"

    assert ids(client.get(url)) == [str(n.pk) for n in (new, middle, old)]  # newest first
    assert ids(client.get(url, {"unread": "true"})) == [str(n.pk) for n in (new, middle)]
    assert ids(client.get(url, {"unread": "false"})) == [str(old.pk)]
    assert ids(client.get(url, {"ordering": "created_at"})) == [str(n.pk) for n in (old, middle, new)]
    page_of_one(client, url)


@pytest.mark.django_db
def test_protocols_filter_order_and_page(scheduler):
    iv = ProtocolFactory(name="A: IV six")
    im = ProtocolFactory(name="B: IM eight", route="im", infusion_count=8)
    retired = ProtocolFactory(name="C: retired", is_active=False)
    client = api(scheduler)
    url = f"{API}/protocols/"

    assert ids(client.get(url, {"is_active": "true"})) == [str(iv.pk), str(im.pk)]
    assert ids(client.get(url, {"is_active": "false"})) == [str(retired.pk)]
    assert ids(client.get(url, {"route": "im"})) == [str(im.pk)]
    assert ids(client.get(url, {"ordering": "-name"})) == [str(p.pk) for p in (retired, im, iv)]
    page_of_one(client, url)


def _many_patients(n: int) -> list[Patient]:
    return Patient.objects.bulk_create(
        Patient(
            mrn=f"BULK{i:04d}",
            first_name="Bulk",
            last_name=f"P{i:04d}",
            date_of_birth=dt.date(1970, 1, 1),
            primary_diagnosis="trd",
            status=PatientStatus.ACTIVE,
        )
        for i in range(n)
    )


def _many_sessions(patient, n: int, *, kind=SessionKind.BOOSTER, series=None) -> list[InfusionSession]:
    start = dt.date(2027, 1, 1)
    rows = []
    for i in range(n):
        day = start + dt.timedelta(days=2 * i)
        rows.append(
            InfusionSession(
                patient=patient,
                series=series,
                kind=kind,
                scheduled_at=at(day, 9),
                scheduled_on=day,
                route="iv",
                drug="ketamine",
                dose_mg_per_kg=Decimal("0.50"),
                planned_minutes=40,
            )
        )
    return InfusionSession.objects.bulk_create(rows)


ALL_ONES = {f"item_{n}": 1 for n in range(1, 10)}


def _bulk(endpoint: str, n: int, *, patient, protocol, user) -> None:
    if endpoint == "patients":
        _many_patients(n)
    elif endpoint == "phq9":
        PHQ9Assessment.objects.bulk_create(
            PHQ9Assessment(patient=patient, taken_at=NOW - dt.timedelta(hours=i), **ALL_ONES) for i in range(n)
        )
    elif endpoint in ("infusions", "boosters"):
        _many_sessions(patient, n)
    elif endpoint == "series":
        InductionSeries.objects.bulk_create(
            InductionSeries(
                patient=patient,
                protocol=protocol,
                planned_infusions=6,
                infusions_per_week=2,
                start_date=MONDAY - dt.timedelta(days=i),
            )
            for i in range(n)
        )
    elif endpoint == "maintenance-plans":
        MaintenancePlan.objects.bulk_create(
            MaintenancePlan(patient=p, protocol=protocol, target_interval_days=28) for p in _many_patients(n)
        )
    elif endpoint == "notifications":
        Notification.objects.bulk_create(
            Notification(recipient=user, kind=NotificationKind.BOOSTER_STAGE, title=f"N{i}") for i in range(n)
        )
    elif endpoint == "protocols":
        Protocol.objects.bulk_create(Protocol(name=f"Protocol {i:04d}", dose=Decimal("0.50")) for i in range(n))


LIST_ENDPOINTS = [
    "patients",
    "phq9",
    "infusions",
    "series",
    "boosters",
    "maintenance-plans",
    "notifications",
    "protocols",
]


@pytest.mark.django_db
@pytest.mark.parametrize("endpoint", LIST_ENDPOINTS)
def test_a_page_size_above_200_is_capped(clinician, patient, protocol, endpoint):
    _bulk(endpoint, 201, patient=patient, protocol=protocol, user=clinician)
    page = ok(api(clinician).get(f"{API}/{endpoint}/", {"page_size": 1000}))
    assert page["count"] >= 201
    assert len(page["results"]) == 200
    assert page["next"] is not None
    assert len(ok(api(clinician).get(f"{API}/{endpoint}/"))["results"]) == 50  # the default page


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("endpoint", "query", "field"),
    [
        ("patients", {"status": "asleep"}, "status"),
        ("phq9", {"patient": "not-a-uuid"}, "patient"),
        ("phq9", {"taken_after": "last tuesday"}, "taken_after"),
        ("infusions", {"patient": "not-a-uuid"}, "patient"),
        ("infusions", {"status": "done"}, "status"),
        ("infusions", {"on_or_after": "2026-13-45"}, "on_or_after"),
        ("series", {"patient": "not-a-uuid"}, "patient"),
        ("boosters", {"patient": "not-a-uuid"}, "patient"),
        ("maintenance-plans", {"patient": "not-a-uuid"}, "patient"),
        ("notifications", {"patient": "not-a-uuid"}, "patient"),
        ("protocols", {"route": "oral-ish"}, "route"),
    ],
)
def test_an_invalid_filter_value_is_a_400_naming_the_filter(clinician, endpoint, query, field):
    errors = refused(api(clinician).get(f"{API}/{endpoint}/", query))
    assert list(errors) == [field]


@pytest.mark.django_db
def test_a_page_past_the_end_is_not_found_not_an_error(clinician, patient):
    response = api(clinician).get(f"{API}/patients/", {"page": 99})
    assert response.status_code == 404


# --- 6. Times -----------------------------------------------------------------------------------


def times_in(data, path: str = "$") -> list[tuple[str, str]]:
    """Every (path, value) of a response that looks like a date-time."""
    if isinstance(data, dict):
        return [found for key, value in data.items() for found in times_in(value, f"{path}.{key}")]
    if isinstance(data, list):
        return [found for i, value in enumerate(data) for found in times_in(value, f"{path}[{i}]")]
    if isinstance(data, str) and LOOKS_LIKE_A_TIME.match(data):
        return [(path, data)]
    return []


def everything_a_clinician_reads(client, patient, plan) -> dict:
    curve = ok(client.get(f"{API}/patients/{patient.pk}/response-curve/"))
    curve.pop("figure")  # Plotly's own encoding (checked apart)
    return {
        "patients": ok(client.get(f"{API}/patients/")),
        "patient": ok(client.get(f"{API}/patients/{patient.pk}/")),
        "phq9": ok(client.get(f"{API}/phq9/")),
        "infusions": ok(client.get(f"{API}/infusions/")),
        "series": ok(client.get(f"{API}/series/")),
        "boosters": ok(client.get(f"{API}/boosters/")),
        "plans": ok(client.get(f"{API}/maintenance-plans/")),
        "plan": ok(client.get(f"{API}/maintenance-plans/{plan.pk}/")),
        "notifications": ok(client.get(f"{API}/notifications/")),
        "curve": curve,
    }


def treated_patient(patient, protocol, scheduler, clinician, day: dt.date):
    """A one-infusion series given on ``day``, an acknowledged item-9 PHQ-9, a plan and a booster."""
    single = ProtocolFactory(name="Single IV infusion", infusion_count=1)
    series = book_series(patient, single, scheduler, start=day)
    give(infusions_of(series)[0], clinician)
    assessment = phq9_record(
        patient=patient, answers={f"item_{n}": 2 for n in range(1, 10)}, taken_at=at(day, 8), entered_by=clinician
    )
    api(clinician).post(f"{API}/phq9/{assessment.pk}/acknowledge/", {"action": "Called the patient"})
    plan = MaintenancePlanFactory(patient=patient, protocol=protocol)
    booster(patient, day + dt.timedelta(days=28))
    note_for(clinician, "Read", read=True)
    return plan


@pytest.mark.django_db
@pytest.mark.parametrize(("day", "offset"), [(MONDAY, "-05:00"), (SUMMER_MONDAY, "-04:00")], ids=["winter", "summer"])
def test_every_time_in_responses_carries_the_clinic_offset(
    clock, clinician, other_clinician, scheduler, patient, protocol, day, offset
):
    clock.move_to(at(day, 13))
    plan = treated_patient(patient, protocol, scheduler, clinician, day)

    everything = everything_a_clinician_reads(api(clinician), patient, plan)
    found = times_in(everything)

    paths = {re.sub(r"\[\d+\]", "[]", path) for path, _ in found}
    for expected in (
        "$.infusions.results[].started_at",
        "$.infusions.results[].clinical.vitals[].taken_at",
        "$.infusions.results[].clinical.discharged_at",
        "$.phq9.results[].safety_acknowledgement.acknowledged_at",
        "$.notifications.results[].read_at",
        "$.plan.booster_status.next_appointment.scheduled_at",
        "$.patient.progress.latest_taken_at",
        "$.curve.points[].taken_at",
    ):
        assert expected in paths, sorted(paths)
    not_iso = [(path, value) for path, value in found if not ISO_WITH_OFFSET.match(value)]
    assert not_iso == []
    # Each time in the clinic's zone: the offset New York had at that instant.
    not_local = [
        (path, value)
        for path, value in found
        if dt.datetime.fromisoformat(value).utcoffset()
        != dt.datetime.fromisoformat(value).astimezone(NEW_YORK).utcoffset()
    ]
    assert not_local == []
    infusion = next(row for row in everything["infusions"]["results"] if row["started_at"])
    assert infusion["started_at"] == f"{day.isoformat()}T09:05:00{offset}"
    assert infusion["clinical"]["vitals"][0]["taken_at"] == f"{day.isoformat()}T09:02:00{offset}"


@pytest.mark.django_db
def test_an_infusions_times_read_in_the_clinics_hours(clinician, signed_a):
    clinical_day = ok(api(clinician).get(f"{API}/infusions/{signed_a.pk}/"))
    assert clinical_day["scheduled_at"] == "2026-11-23T09:00:00-05:00"
    assert clinical_day["started_at"] == "2026-11-23T09:05:00-05:00"
    assert clinical_day["ended_at"] == "2026-11-23T09:50:00-05:00"
    assert clinical_day["signed_at"] == "2026-11-23T10:35:00-05:00"


@pytest.mark.django_db
def test_an_amendment_records_times_in_the_clinics_offset(clinician, signed_a):
    body = {"reason": "Ended later than noted", "changes": {"ended_at": "2026-11-23T10:00:00-05:00"}}
    amendment = ok(api(clinician).post(f"{API}/infusions/{signed_a.pk}/amend/", body, format="json"), 201)
    assert ISO_WITH_OFFSET.match(amendment["created_at"])
    assert amendment["changes"] == {
        "ended_at": {"from": "2026-11-23T09:50:00-05:00", "to": "2026-11-23T10:00:00-05:00"},
    }


@pytest.mark.django_db
def test_the_response_curve_figure_plots_clinic_times(clinician, patient):
    PHQ9Factory(patient=patient, level=2, taken_at=at(MONDAY - dt.timedelta(days=7), 9))
    PHQ9Factory(patient=patient, level=1, taken_at=at(MONDAY, 9))
    figure = ok(api(clinician).get(f"{API}/patients/{patient.pk}/response-curve/"))["figure"]
    xs = [x for trace in figure["data"] for x in trace.get("x", []) if isinstance(x, str)]
    assert xs
    for x in xs:
        # Plotly plots wall-clock times: the clinic's 09:00, not 14:00 UTC.
        assert re.match(r"^2026-11-(16|23)[T ]09:00", x), x


# --- 7. Query budgets ------------------------------------------------------------------------


def _rows(endpoint: str, n: int, *, patient, protocol, clinician, start: int) -> None:
    """``n`` more rows of ``endpoint``, each with what its serializer reads."""
    if endpoint == "patients":
        for i in range(n):
            PatientFactory(with_portal_account=i % 2 == 0, primary_clinician=clinician)
    elif endpoint == "phq9":
        for i in range(n):
            acknowledged = {"safety_acknowledged_at": NOW, "safety_acknowledged_by": clinician, "safety_action": "Call"}
            PHQ9Factory(patient=PatientFactory(), item_9=1, taken_at=NOW - dt.timedelta(hours=i), **acknowledged)
    elif endpoint in ("infusions", "boosters"):
        for i in range(n):
            day = dt.date(2027, 1, 1) + dt.timedelta(days=2 * (start + i))
            session = booster(patient, day)
            VitalSignReading.objects.create(
                session=session, taken_at=at(day, 9), phase="pre", systolic=120, diastolic=80, recorded_by=clinician
            )
            SideEffect.objects.create(session=session, kind="headache")
            InfusionAmendment.objects.create(session=session, author=clinician, reason="x", changes={})
    elif endpoint == "series":
        for _ in range(n):
            other = PatientFactory()
            series = InductionSeries.objects.create(
                patient=other, protocol=protocol, planned_infusions=6, infusions_per_week=2, start_date=MONDAY
            )
            _many_sessions(other, 2, kind=SessionKind.INDUCTION, series=series)
    elif endpoint == "maintenance-plans":
        for _ in range(n):
            MaintenancePlanFactory(patient=PatientFactory(), protocol=protocol)
    elif endpoint == "notifications":
        for i in range(n):
            note_for(clinician, f"N{start + i}", patient=patient, read=i % 2 == 0)


@pytest.mark.django_db
@pytest.mark.parametrize("endpoint", LIST_ENDPOINTS[:-1])
def test_a_list_runs_a_fixed_number_of_queries(django_assert_max_num_queries, clinician, patient, protocol, endpoint):
    counts = []
    for rows, start in ((3, 0), (27, 3)):
        _rows(endpoint, rows, patient=patient, protocol=protocol, clinician=clinician, start=start)
        client = api(User.objects.get(pk=clinician.pk))  # roles read afresh, as in a real request
        with django_assert_max_num_queries(QUERY_BUDGET) as captured:
            page = ok(client.get(f"{API}/{endpoint}/"))
        assert len(page["results"]) >= start + rows
        counts.append(len(captured.captured_queries))
    assert counts[0] == counts[1], counts


# --- 8. Acknowledging a safety alert -----------------------------------------------------------


@pytest.mark.django_db
def test_acknowledging_an_item_9_phq9_resolves_its_alerts_once(clinician, other_clinician, patient):
    client = api(clinician)
    answered = ok(client.post(f"{API}/phq9/", phq9_body(patient, item_9=2), format="json"), 201)
    alerts = Notification.objects.filter(kind=NotificationKind.SAFETY_ALERT, subject_id=answered["id"])
    assert {n.recipient for n in alerts} == {clinician, other_clinician}
    assert not alerts.filter(read_at__isnull=False).exists()
    url = f"{API}/phq9/{answered['id']}/acknowledge/"

    acknowledged = ok(client.post(url, {"action": "Called the patient; safety plan reviewed"}))

    assert acknowledged["safety_acknowledgement"] == {
        "acknowledged_at": "2026-11-23T13:00:00-05:00",
        "acknowledged_by": clinician.pk,
        "action": "Called the patient; safety plan reviewed",
    }
    assert alerts.count() == 2
    assert not alerts.filter(read_at__isnull=True).exists()

    errors = refused(api(other_clinician).post(url, {"action": "Called again"}))
    assert errors == {"non_field_errors": ["This safety alert has already been acknowledged."]}
    assessment = PHQ9Assessment.objects.get(pk=answered["id"])
    assert (assessment.safety_acknowledged_by, assessment.safety_action) == (
        clinician,
        "Called the patient; safety plan reviewed",
    )


@pytest.mark.django_db
def test_a_phq9_without_an_item_9_answer_cannot_be_acknowledged(clinician, scheduler, patient, item_9_alert):
    calm = PHQ9Factory(patient=patient, item_9=0)
    errors = refused(api(clinician).post(f"{API}/phq9/{calm.pk}/acknowledge/", {"action": "Called"}))
    assert errors == {"non_field_errors": ["This PHQ-9 has no safety flag to acknowledge (item 9 was 0)."]}
    response = api(scheduler).post(f"{API}/phq9/{item_9_alert.pk}/acknowledge/", {"action": "Called"})
    assert response.status_code == 403
    item_9_alert.refresh_from_db()
    assert item_9_alert.safety_acknowledged_at is None


# --- 9. Notifications ----------------------------------------------------------------------


@pytest.mark.django_db
def test_reading_a_notification_sets_read_at_once(clinician, clock):
    notification = note_for(clinician)
    client = api(clinician)
    read = ok(client.post(f"{API}/notifications/{notification.pk}/read/"))
    assert read["read_at"] == "2026-11-23T13:00:00-05:00"
    notification.refresh_from_db()
    assert notification.read_at == NOW

    clock.shift(dt.timedelta(hours=1))
    assert ok(client.post(f"{API}/notifications/{notification.pk}/read/"))["read_at"] == "2026-11-23T13:00:00-05:00"


@pytest.mark.django_db
def test_read_all_marks_the_users_unread_notifications_and_counts_them(clinician, other_clinician):
    for title in ("One", "Two", "Three"):
        note_for(clinician, title)
    note_for(clinician, "Already", read=True)
    theirs = note_for(other_clinician, "Theirs")

    assert ok(api(clinician).post(f"{API}/notifications/read-all/")) == {"marked": 3}

    assert not Notification.objects.filter(recipient=clinician, read_at__isnull=True).exists()
    theirs.refresh_from_db()
    assert theirs.read_at is None
    assert ok(api(clinician).post(f"{API}/notifications/read-all/")) == {"marked": 0}


@pytest.mark.django_db
def test_another_users_notification_is_not_found(clinician, other_clinician):
    theirs = note_for(other_clinician, "Theirs")
    client = api(clinician)
    assert client.post(f"{API}/notifications/{theirs.pk}/read/").status_code == 404
    assert client.get(f"{API}/notifications/{theirs.pk}/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.read_at is None
