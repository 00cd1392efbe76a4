"""The infusion pages: who may open them, what each form does, and what a refused form leaves."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib.messages import get_messages
from django.urls import reverse

from maintenance.models import Notification, NotificationKind
from maintenance.services import booster_schedule
from sessions.models import (
    ClosedDay,
    InductionSeries,
    InfusionAmendment,
    InfusionSession,
    SessionStatus,
    SideEffect,
    VitalSignReading,
)
from sessions.services import (
    series_create,
    session_complete,
    session_discharge,
    session_record_vitals,
    session_sign,
    session_start,
)
from sessions.vitals import VitalPhase
from tests.factories import MaintenancePlanFactory, PatientFactory, PHQ9Factory, ProtocolFactory

NEW_YORK = ZoneInfo("America/New_York")
MONDAY = dt.date(2026, 3, 2)
SATURDAY = dt.date(2026, 3, 7)
MONDAY_MORNING = dt.datetime(2026, 3, 2, 8, 30, tzinfo=NEW_YORK)
UNPROCESSABLE = 422


def at(hour: int, minute: int = 0, day: dt.date = MONDAY) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=NEW_YORK)


@pytest.fixture
def clock():
    with time_machine.travel(MONDAY_MORNING, tick=False) as traveller:
        yield traveller


@pytest.fixture
def series(clock, patient, protocol, scheduler):
    """Six infusions from Monday 2 March at 09:00: Mon, Thu, Mon, Thu, Mon, Thu."""
    return series_create(patient=patient, protocol=protocol, start_date=MONDAY, created_by=scheduler)


@pytest.fixture
def session(series):
    """The series' first infusion, Monday 09:00."""
    return series.sessions.order_by("scheduled_at").first()


@pytest.fixture
def started(session, clinician, clock):
    clock.move_to(at(9, 5))
    return session_start(session=session, by=clinician, weight_kg="80.0", started_at=at(9))


@pytest.fixture
def discharged(started, clinician, clock):
    clock.move_to(at(11))
    session_record_vitals(
        session=started, by=clinician, phase=VitalPhase.PRE, taken_at=at(8, 55), systolic=128, diastolic=82
    )
    session = session_complete(session=started, by=clinician, ended_at=at(9, 40), notes="Tolerated well.")
    return session_discharge(session=session, by=clinician, discharged_at=at(10, 40))


@pytest.fixture
def signed(discharged, clinician):
    return session_sign(session=discharged, by=clinician)


def login(client, user):
    if user is not None:
        client.force_login(user)
    return client


def refreshed(session: InfusionSession) -> InfusionSession:
    return InfusionSession.objects.get(pk=session.pk)


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


# --- Who may open what ---------------------------------------------------------------

#: (url name, what the url is about, may a scheduler open it?)
PAGES = [
    ("today", None, False),
    ("week", None, True),
    ("series_new", "patient", True),
    ("detail", "session", False),
    ("move", "session", True),
    ("cancel", "session", True),
    ("makeup", "series", True),
]
ACTIONS = ["start", "vitals", "side_effect", "complete", "discharge", "sign", "amend"]


def url_for(name: str, about: str | None, *, patient, series, session) -> str:
    target = {"patient": patient, "series": series, "session": session}.get(about)
    return reverse(f"infusions:{name}", kwargs={"pk": target.pk} if target else {})


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "about", "scheduler_may"), PAGES)
@pytest.mark.parametrize("role", ["anonymous", "patient", "scheduler", "clinician", "superuser"])
def test_each_page_opens_only_for_its_roles(
    client, role, name, about, scheduler_may, patient, series, session, clinician, scheduler, superuser
):
    user = {
        "anonymous": None,
        "patient": patient.user,
        "scheduler": scheduler,
        "clinician": clinician,
        "superuser": superuser,
    }[role]
    url = url_for(name, about, patient=patient, series=series, session=session)
    response = login(client, user).get(url)
    if role == "anonymous":
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
    elif role == "patient" or (role == "scheduler" and not scheduler_may):
        assert response.status_code == 403
    else:
        assert response.status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("name", ACTIONS)
@pytest.mark.parametrize("role", ["anonymous", "patient", "scheduler"])
def test_only_a_clinician_posts_to_the_infusion_log(client, role, name, patient, session, scheduler):
    user = {"anonymous": None, "patient": patient.user, "scheduler": scheduler}[role]
    response = login(client, user).post(reverse(f"infusions:{name}", kwargs={"pk": session.pk}), {})
    assert response.status_code == (302 if role == "anonymous" else 403)
    if role == "anonymous":
        assert response["Location"].startswith(reverse("login"))
    assert refreshed(session).started_at is None
    assert not VitalSignReading.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("name", ACTIONS)
def test_log_actions_take_posts_only_and_refuse_an_empty_form(client, clinician, session, name):
    url = reverse(f"infusions:{name}", kwargs={"pk": session.pk})
    login(client, clinician)
    assert client.get(url).status_code == 405
    response = client.post(url, {})
    assert response.status_code == UNPROCESSABLE
    assert refreshed(session).started_at is None


@pytest.mark.django_db
def test_a_scheduler_sees_no_clinical_data_on_the_calendar(client, scheduler, started, patient):
    started_notes = "Confidential clinical note"
    InfusionSession.objects.filter(pk=started.pk).update(notes=started_notes)
    response = login(client, scheduler).get(reverse("infusions:week") + f"?week={MONDAY}")
    body = response.content.decode()
    assert patient.full_name in body
    assert started_notes not in body
    assert "mg/kg" not in body
    assert " mg" not in body
    assert reverse("infusions:detail", kwargs={"pk": started.pk}) not in body


# --- Today ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_today_groups_infusions_and_shows_the_last_phq9(client, clinician, series, session, clock, other_patient):
    PHQ9Factory(patient=series.patient, level=2, taken_at=at(8, 0, MONDAY - dt.timedelta(days=3)))  # 16
    other = series_create(
        patient=other_patient, protocol=series.protocol, start_date=MONDAY, created_by=clinician
    ).sessions.order_by("scheduled_at")[0]
    clock.move_to(at(9, 5))
    session_start(session=other, by=clinician, weight_kg="60.0")

    response = login(client, clinician).get(reverse("infusions:today"))

    assert response.status_code == 200
    groups = {key: rows for key, _title, _hint, _empty, rows in response.context["groups"]}
    assert [s.pk for s in groups["scheduled"]] == [session.pk]
    assert [s.pk for s in groups["in-progress"]] == [other.pk]
    assert groups["finished"] == []
    body = response.content.decode()
    assert "Induction 1 of 6" in body
    assert "Early in series: watch BP" in body
    assert "Moderately severe" in body  # PHQ-9 16
    assert series.patient.get_absolute_url() in body
    assert "30.0 mg" in body  # 0.5 mg/kg x 60 kg, once started


@pytest.mark.django_db
def test_today_shows_another_day_with_links_either_side(client, clinician, series):
    response = login(client, clinician).get(reverse("infusions:today") + "?date=2026-03-05")
    assert response.context["day"] == dt.date(2026, 3, 5)
    body = response.content.decode()
    assert "?date=2026-03-04" in body
    assert "?date=2026-03-06" in body
    assert "Induction 2 of 6" in body


@pytest.mark.django_db
def test_today_shows_missed_infusions_among_the_finished(client, clinician, session):
    client = login(client, clinician)
    client.post(
        reverse("infusions:cancel", kwargs={"pk": session.pk}), {"outcome": "missed", "reason": "Did not attend"}
    )
    response = client.get(reverse("infusions:today"))
    groups = {key: rows for key, _title, _hint, _empty, rows in response.context["groups"]}
    assert [s.pk for s in groups["finished"]] == [session.pk]
    assert 'class="is-muted' in response.content.decode()


def many_patients_booked(count: int, protocol, by) -> None:
    for _ in range(count):
        patient = PatientFactory()
        PHQ9Factory(patient=patient, level=1, taken_at=at(8, 0, MONDAY - dt.timedelta(days=2)))
        series_create(patient=patient, protocol=protocol, start_date=MONDAY, created_by=by)


@pytest.mark.django_db
@pytest.mark.parametrize("rows", [2, 12])
def test_today_runs_a_fixed_number_of_queries(client, clinician, clock, protocol, rows, django_assert_max_num_queries):
    many_patients_booked(rows, protocol, clinician)
    login(client, clinician)
    with django_assert_max_num_queries(8):  # session, user, roles, unread count, the day's rows, the access log
        response = client.get(reverse("infusions:today"))
    assert response.context["count"] == rows


# --- Starting a series ------------------------------------------------------------------


@pytest.mark.django_db
def test_a_series_preview_shows_the_dates_and_saves_nothing(client, scheduler, patient, protocol, clock):
    response = login(client, scheduler).post(
        reverse("infusions:series_new", kwargs={"pk": patient.pk}),
        {"protocol": protocol.pk, "start_date": "2026-03-03", "appointment_time": "10:30", "preview": "1"},
    )
    assert response.status_code == 200
    plan = response.context["plan"]
    assert plan.dates[:3] == [dt.date(2026, 3, 3), dt.date(2026, 3, 6), dt.date(2026, 3, 9)]
    assert "Tuesday 3 March 2026" in response.content.decode()
    assert not InductionSeries.objects.exists()


@pytest.mark.django_db
def test_a_series_preview_warns_of_gaps(client, scheduler, patient, protocol, clock):
    for day in range(9, 14):  # a closed week
        ClosedDay.objects.create(date=dt.date(2026, 3, day), reason="Renovation")
    response = login(client, scheduler).post(
        reverse("infusions:series_new", kwargs={"pk": patient.pk}),
        {"protocol": protocol.pk, "start_date": "2026-03-02", "appointment_time": "09:00", "preview": "1"},
    )
    assert response.context["plan"].gaps
    assert "Gap warning" in response.content.decode()


@pytest.mark.django_db
def test_confirming_the_preview_books_the_series(client, scheduler, patient, protocol, clock):
    data = {"protocol": protocol.pk, "start_date": "2026-03-03", "appointment_time": "10:30"}
    url = reverse("infusions:series_new", kwargs={"pk": patient.pk})
    login(client, scheduler)
    preview = client.post(url, {**data, "preview": "1"})
    response = client.post(url, {**data, "confirm": "1", "previewed": preview.context["signature"]})
    assert response["Location"] == patient.get_absolute_url()
    series = InductionSeries.objects.get(patient=patient)
    first = series.sessions.order_by("scheduled_at").first()
    assert first.scheduled_at == at(10, 30, dt.date(2026, 3, 3))
    assert series.sessions.count() == 6
    assert any("Induction series booked" in str(m) for m in get_messages(response.wsgi_request))


@pytest.mark.django_db
def test_a_confirm_with_details_changed_since_the_preview_books_nothing(client, scheduler, patient, protocol, clock):
    url = reverse("infusions:series_new", kwargs={"pk": patient.pk})
    data = {"protocol": protocol.pk, "start_date": "2026-03-03", "appointment_time": "10:30"}
    login(client, scheduler)
    preview = client.post(url, {**data, "preview": "1"})
    response = client.post(
        url, {**data, "start_date": "2026-03-04", "confirm": "1", "previewed": preview.context["signature"]}
    )
    assert response.status_code == 200
    assert response.context["plan"].dates[0] == dt.date(2026, 3, 4)
    assert not InductionSeries.objects.exists()


@pytest.mark.django_db
def test_a_series_cannot_start_in_the_past_and_the_form_keeps_what_was_typed(
    client, scheduler, patient, protocol, clock
):
    response = login(client, scheduler).post(
        reverse("infusions:series_new", kwargs={"pk": patient.pk}),
        {"protocol": protocol.pk, "start_date": "2026-02-20", "appointment_time": "11:15", "confirm": "1"},
    )
    assert response.status_code == UNPROCESSABLE
    assert response.context["form"].errors["start_date"] == ["A new series cannot start in the past."]
    assert 'value="2026-02-20"' in response.content.decode()
    assert 'value="11:15"' in response.content.decode()
    assert not InductionSeries.objects.exists()


@pytest.mark.django_db
def test_an_inactive_protocol_cannot_be_chosen(client, scheduler, patient, clock):
    retired = ProtocolFactory(name="Retired protocol", is_active=False)
    response = login(client, scheduler).post(
        reverse("infusions:series_new", kwargs={"pk": patient.pk}),
        {"protocol": retired.pk, "start_date": "2026-03-03", "appointment_time": "09:00", "preview": "1"},
    )
    assert response.status_code == UNPROCESSABLE
    assert "protocol" in response.context["form"].errors
    assert "Retired protocol" not in response.content.decode()


# --- The infusion log -----------------------------------------------------------------------


@pytest.mark.django_db
def test_the_start_form_shows_the_dose_at_the_current_weight(client, clinician, session):
    response = login(client, clinician).get(reverse("infusions:detail", kwargs={"pk": session.pk}))
    body = response.content.decode()
    assert 'value="72.5"' in body
    assert "0.50 mg/kg \u00d7 72.5 kg = 36.3 mg" in body
    assert "Infusion 1 of 6: early in the series." in body


@pytest.mark.django_db
def test_a_dose_preview_at_a_new_weight_saves_nothing(client, clinician, session, patient):
    response = login(client, clinician).post(
        reverse("infusions:start", kwargs={"pk": session.pk}), {"weight_kg": "80", "preview": "1"}
    )
    assert response.status_code == 200
    assert "0.50 mg/kg \u00d7 80.0 kg = 40.0 mg" in response.content.decode()
    assert refreshed(session).started_at is None
    patient.refresh_from_db()
    assert patient.weight_kg == Decimal("72.5")


@pytest.mark.django_db
def test_starting_confirms_the_weight_and_fixes_the_dose(client, clinician, session, clock):
    clock.move_to(at(9, 2))
    response = login(client, clinician).post(
        reverse("infusions:start", kwargs={"pk": session.pk}), {"weight_kg": "80.0", "start": "1"}, follow=True
    )
    assert response.redirect_chain == [(reverse("infusions:detail", kwargs={"pk": session.pk}), 302)]
    stored = refreshed(session)
    assert (stored.weight_kg_used, stored.dose_mg, stored.started_at) == (Decimal("80.0"), Decimal("40.0"), at(9, 2))
    assert "Dose: 40.0 mg (0.50 mg/kg x 80.0 kg)" in " ".join(messages_of(response))


@pytest.mark.django_db
@pytest.mark.parametrize("weight", ["abc", "5", "400"])
def test_a_bad_weight_is_shown_next_to_the_field_and_nothing_starts(client, clinician, session, patient, weight):
    response = login(client, clinician).post(
        reverse("infusions:start", kwargs={"pk": session.pk}), {"weight_kg": weight, "start": "1"}
    )
    assert response.status_code == UNPROCESSABLE
    assert response.context["start_form"].errors["weight_kg"]
    assert f'value="{weight}"' in response.content.decode()
    assert refreshed(session).started_at is None
    patient.refresh_from_db()
    assert patient.weight_kg == Decimal("72.5")


@pytest.mark.django_db
def test_an_infusion_booked_for_another_day_cannot_start_today(client, clinician, series):
    thursday = series.sessions.order_by("scheduled_at")[1]
    response = login(client, clinician).post(
        reverse("infusions:start", kwargs={"pk": thursday.pk}), {"weight_kg": "72.5", "start": "1"}
    )
    assert response.status_code == UNPROCESSABLE
    assert "move it to the day it is given" in response.content.decode()
    assert refreshed(thursday).started_at is None


@pytest.mark.django_db
def test_a_normal_reading_is_recorded(client, clinician, started):
    response = login(client, clinician).post(
        reverse("infusions:vitals", kwargs={"pk": started.pk}),
        {
            "phase": "during",
            "taken_at": "09:04",
            "systolic": "132",
            "diastolic": "84",
            "heart_rate": "78",
            "spo2": "98",
        },
        follow=True,
    )
    reading = VitalSignReading.objects.get()
    assert (reading.taken_at, reading.systolic, reading.spo2) == (at(9, 4), 132, 98)
    assert "Reading at 09:04 recorded." in messages_of(response)
    assert 'class="is-alert"' not in response.content.decode()


@pytest.mark.django_db
def test_a_reading_past_the_alert_threshold_is_highlighted_and_raises_an_alert(client, clinician, started):
    response = login(client, clinician).post(
        reverse("infusions:vitals", kwargs={"pk": started.pk}),
        {"phase": "during", "taken_at": "09:05", "systolic": "188", "diastolic": "104", "heart_rate": "96"},
        follow=True,
    )
    (message,) = messages_of(response)
    assert message.startswith("Alert raised: Blood pressure 188/104 mmHg: systolic above 180 and diastolic above 100")
    body = response.content.decode()
    assert '<tr class="is-alert">' in body
    assert "<strong>Alert:</strong> Blood pressure 188/104 mmHg: systolic above 180 and diastolic above 100" in body
    assert Notification.objects.filter(kind=NotificationKind.VITALS_ALERT, recipient=clinician).exists()


@pytest.mark.django_db
def test_a_high_pressure_before_starting_asks_for_review(client, clinician, session):
    response = login(client, clinician).post(
        reverse("infusions:vitals", kwargs={"pk": session.pk}),
        {"phase": "pre", "systolic": "150", "diastolic": "88"},
        follow=True,
    )
    assert any(m.startswith("Review before starting:") for m in messages_of(response))
    assert '<tr class="is-review">' in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("reading", "field"),
    [
        ({"systolic": "140"}, "diastolic"),
        ({"systolic": "80", "diastolic": "90"}, None),  # below diastolic: the database's message
        ({"heart_rate": "500"}, "heart_rate"),
        ({"heart_rate": "x"}, "heart_rate"),
        ({}, None),
    ],
)
def test_an_implausible_reading_is_refused_with_its_message(client, clinician, started, reading, field):
    response = login(client, clinician).post(
        reverse("infusions:vitals", kwargs={"pk": started.pk}), {"phase": "during", **reading}
    )
    assert response.status_code == UNPROCESSABLE
    form = response.context["vitals_form"]
    assert form.errors[field or "__all__"]
    for value in reading.values():
        assert f'value="{value}"' in response.content.decode()
    assert not VitalSignReading.objects.exists()


@pytest.mark.django_db
def test_side_effects_are_added_once_each(client, clinician, started):
    url = reverse("infusions:side_effect", kwargs={"pk": started.pk})
    login(client, clinician)
    response = client.post(url, {"kind": "nausea_vomiting", "severity": "moderate", "note": "at 20 min"}, follow=True)
    assert "Nausea / vomiting (Moderate)" in response.content.decode()
    again = client.post(url, {"kind": "nausea_vomiting", "severity": "mild"})
    assert again.status_code == UNPROCESSABLE
    assert again.context["side_effect_form"].errors["kind"] == [
        "This side effect is already recorded for this infusion."
    ]
    other = client.post(url, {"kind": "other", "severity": "mild", "note": ""})
    assert other.status_code == UNPROCESSABLE
    assert "Describe a side effect of kind &#x27;other&#x27;." in other.content.decode()
    assert SideEffect.objects.count() == 1


@pytest.mark.django_db
def test_completing_records_the_end_and_the_dissociation_score(client, clinician, started, clock):
    clock.move_to(at(9, 45))
    login(client, clinician).post(
        reverse("infusions:complete", kwargs={"pk": started.pk}),
        {"ended_at": "09:40", "dissociation_scale": "cadss6", "dissociation_score": "7", "notes": "Calm.\r\nSlept."},
    )
    done = refreshed(started)
    assert done.status == SessionStatus.COMPLETED
    assert (done.ended_at, done.dissociation_scale, done.dissociation_score) == (at(9, 40), "cadss6", 7)
    assert done.notes == "Calm.\nSlept."


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"dissociation_score": "7"}, "dissociation_scale"),
        ({"dissociation_scale": "cadss6", "dissociation_score": "30"}, "dissociation_score"),
        ({"dissociation_scale": "cadss"}, "dissociation_score"),
        ({"ended_at": "08:30"}, None),  # before the start: the database's message
        ({"ended_at": "23:30"}, "ended_at"),  # in the future
    ],
)
def test_a_bad_completion_is_refused_and_nothing_changes(client, clinician, started, clock, data, field):
    clock.move_to(at(9, 45))
    response = login(client, clinician).post(reverse("infusions:complete", kwargs={"pk": started.pk}), data)
    assert response.status_code == UNPROCESSABLE
    assert response.context["complete_form"].errors[field or "__all__"]
    stored = refreshed(started)
    assert stored.status == SessionStatus.SCHEDULED
    assert stored.ended_at is None


@pytest.mark.django_db
def test_discharge_comes_after_the_end(client, clinician, started, clock):
    clock.move_to(at(11))
    session_complete(session=started, by=clinician, ended_at=at(9, 40))
    url = reverse("infusions:discharge", kwargs={"pk": started.pk})
    login(client, clinician)
    refused = client.post(url, {"discharged_at": "09:20"})
    assert refused.status_code == UNPROCESSABLE
    assert "Discharge comes after the infusion ended" in refused.content.decode()
    assert refreshed(started).discharged_at is None
    client.post(url, {"discharged_at": "10:45"})
    stored = refreshed(started)
    assert (stored.discharged_at, stored.discharged_by) == (at(10, 45), clinician)


@pytest.mark.django_db
def test_signing_locks_the_record(client, clinician, discharged):
    response = login(client, clinician).post(reverse("infusions:sign", kwargs={"pk": discharged.pk}), follow=True)
    assert refreshed(discharged).signed_by == clinician
    body = response.content.decode()
    assert f"Signed by {clinician.username} at 2 Mar 2026 11:00, locked." in body
    assert reverse("infusions:vitals", kwargs={"pk": discharged.pk}) not in body
    assert reverse("infusions:amend", kwargs={"pk": discharged.pk}) in body


@pytest.mark.django_db
def test_an_infusion_not_yet_discharged_cannot_be_signed(client, clinician, started):
    response = login(client, clinician).post(reverse("infusions:sign", kwargs={"pk": started.pk}))
    assert response.status_code == UNPROCESSABLE
    assert "Only a completed infusion with its discharge recorded can be signed." in response.content.decode()
    assert refreshed(started).signed_at is None


@pytest.mark.django_db
def test_a_signed_record_refuses_new_readings(client, clinician, signed):
    response = login(client, clinician).post(
        reverse("infusions:vitals", kwargs={"pk": signed.pk}), {"phase": "discharge", "spo2": "97"}
    )
    assert response.status_code == UNPROCESSABLE
    assert "signed and locked" in response.content.decode()
    assert signed.vitals.count() == 1


@pytest.mark.django_db
def test_an_amendment_keeps_the_original_visible(client, clinician, signed):
    response = login(client, clinician).post(
        reverse("infusions:amend", kwargs={"pk": signed.pk}),
        {
            "reason": "Scale misread",
            "notes": "Tolerated well.",
            "dissociation_scale": "cadss6",
            "dissociation_score": "5",
            "weight_kg_used": "82.0",
        },
        follow=True,
    )
    amendment = InfusionAmendment.objects.get()
    assert set(amendment.changes) == {"dissociation_scale", "dissociation_score", "weight_kg_used", "dose_mg"}
    assert refreshed(signed).dose_mg == Decimal("41.0")
    body = response.content.decode()
    assert "<del>80.0</del>" in body
    assert "<ins>82.0</ins>" in body
    assert "<del>40.0</del>" in body
    assert "Scale misread" in body


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"reason": "", "notes": "Changed"}, "reason"),
        ({"reason": "No change", "notes": "Tolerated well.", "weight_kg_used": "80.0"}, None),
        ({"reason": "Typo", "notes": "Tolerated well.", "weight_kg_used": "8000"}, "weight_kg_used"),
    ],
)
def test_a_bad_amendment_is_refused_and_nothing_changes(client, clinician, signed, data, field):
    response = login(client, clinician).post(reverse("infusions:amend", kwargs={"pk": signed.pk}), data)
    assert response.status_code == UNPROCESSABLE
    assert response.context["amend_form"].errors[field or "__all__"]
    assert not InfusionAmendment.objects.exists()
    assert refreshed(signed).weight_kg_used == Decimal("80.0")


@pytest.mark.django_db
def test_an_unsigned_record_is_not_amended(client, clinician, started):
    response = login(client, clinician).post(
        reverse("infusions:amend", kwargs={"pk": started.pk}), {"reason": "x", "notes": "y"}
    )
    assert response.status_code == UNPROCESSABLE
    assert not InfusionAmendment.objects.exists()


# --- Moving, cancelling, make-ups ------------------------------------------------------------


@pytest.mark.django_db
def test_moving_an_infusion_returns_to_the_calendar(client, scheduler, series, session):
    back = reverse("infusions:week") + "?week=2026-03-02"
    url = reverse("infusions:move", kwargs={"pk": session.pk})
    login(client, scheduler)
    page = client.get(url, {"next": back})
    assert 'value="2026-03-02"' in page.content.decode()
    assert 'value="09:00"' in page.content.decode()
    response = client.post(url, {"date": "2026-03-03", "time": "13:30", "next": back})
    assert response.status_code == 302
    assert response["Location"] == back
    assert refreshed(session).scheduled_at == at(13, 30, dt.date(2026, 3, 3))


@pytest.mark.django_db
def test_a_move_that_leaves_a_gap_warns(client, scheduler, series):
    last = series.sessions.order_by("scheduled_at").last()  # Thu 19 March, after Mon 16
    response = login(client, scheduler).post(
        reverse("infusions:move", kwargs={"pk": last.pk}), {"date": "2026-03-31", "time": "09:00"}, follow=True
    )
    assert response.redirect_chain[0][0] == reverse("infusions:week") + "?week=2026-03-30"
    assert refreshed(last).scheduled_on == dt.date(2026, 3, 31)
    assert any("gap longer than the clinic's maximum: 15 days" in m for m in messages_of(response))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("date", "message"),
    [
        (SATURDAY.isoformat(), "The clinic is closed on Saturday 07 March 2026."),
        ("2026-03-04", "infusions are not given on consecutive days"),  # Thursday 5 is booked
        ("2026-02-27", "An infusion cannot be booked in the past."),
    ],
)
def test_a_move_the_rules_refuse_is_shown_next_to_the_date(client, scheduler, session, date, message):
    response = login(client, scheduler).post(
        reverse("infusions:move", kwargs={"pk": session.pk}), {"date": date, "time": "10:00"}
    )
    assert response.status_code == UNPROCESSABLE
    assert message in " ".join(response.context["form"].errors["date"])
    assert f'value="{date}"' in response.content.decode()
    assert refreshed(session).scheduled_at == at(9)


@pytest.mark.django_db
@pytest.mark.parametrize("target", ["https://evil.example/phish", "//evil.example/", "http://testserver.evil/"])
def test_next_refuses_an_external_address(client, scheduler, session, target):
    response = login(client, scheduler).post(
        reverse("infusions:move", kwargs={"pk": session.pk}), {"date": "2026-03-03", "time": "09:00", "next": target}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("infusions:week") + "?week=2026-03-02"


@pytest.mark.django_db
def test_cancelling_an_infusion_returns_to_the_calendar_when_nothing_is_owed(client, scheduler, clock, other_patient):
    MaintenancePlanFactory(patient=other_patient)
    booster = booster_schedule(patient=other_patient, scheduled_at=at(14), by=scheduler)
    back = reverse("infusions:week") + "?week=2026-03-02"
    response = login(client, scheduler).post(
        reverse("infusions:cancel", kwargs={"pk": booster.pk}),
        {"outcome": "cancelled", "reason": "Patient unwell", "next": back},
    )
    assert response["Location"] == back
    stored = refreshed(booster)
    assert (stored.status, stored.status_reason) == (SessionStatus.CANCELLED, "Patient unwell")


@pytest.mark.django_db
def test_a_missed_induction_infusion_leads_to_booking_a_make_up(client, scheduler, series, session):
    back = reverse("infusions:week") + "?week=2026-03-02"
    login(client, scheduler)
    response = client.post(
        reverse("infusions:cancel", kwargs={"pk": session.pk}),
        {"outcome": "missed", "reason": "Did not attend", "next": back},
        follow=True,
    )
    makeup_url = reverse("infusions:makeup", kwargs={"pk": series.pk})
    assert response.redirect_chain[0][0].startswith(makeup_url)
    assert refreshed(session).status == SessionStatus.MISSED
    assert response.context["has_room"]
    # Suggested: Tue 3 March is next to nothing booked (Thu 5 is two days away).
    assert response.context["form"].initial["date"] == dt.date(2026, 3, 3)

    booked = client.post(makeup_url, {"date": "2026-03-03", "time": "09:30", "next": back})
    assert booked["Location"] == back
    assert series.sessions.filter(status=SessionStatus.SCHEDULED).count() == 6


@pytest.mark.django_db
def test_a_cancel_needs_a_reason(client, scheduler, session):
    response = login(client, scheduler).post(
        reverse("infusions:cancel", kwargs={"pk": session.pk}), {"outcome": "missed", "reason": ""}
    )
    assert response.status_code == UNPROCESSABLE
    assert response.context["form"].errors["reason"]
    assert refreshed(session).status == SessionStatus.SCHEDULED


@pytest.mark.django_db
def test_a_started_infusion_cannot_be_cancelled(client, scheduler, started):
    url = reverse("infusions:cancel", kwargs={"pk": started.pk})
    login(client, scheduler)
    assert "Only an infusion that has not started" in client.get(url).content.decode()
    response = client.post(url, {"outcome": "cancelled", "reason": "x"})
    assert response.status_code == UNPROCESSABLE
    assert refreshed(started).status == SessionStatus.SCHEDULED


@pytest.mark.django_db
def test_a_make_up_on_a_closed_day_is_refused(client, scheduler, series, session):
    login(client, scheduler).post(
        reverse("infusions:cancel", kwargs={"pk": session.pk}), {"outcome": "cancelled", "reason": "Clinic issue"}
    )
    response = client.post(
        reverse("infusions:makeup", kwargs={"pk": series.pk}), {"date": SATURDAY.isoformat(), "time": "09:00"}
    )
    assert response.status_code == UNPROCESSABLE
    assert "The clinic is closed" in " ".join(response.context["form"].errors["date"])
    assert series.sessions.filter(status=SessionStatus.SCHEDULED).count() == 5


@pytest.mark.django_db
def test_a_full_series_needs_no_make_up(client, scheduler, series):
    response = login(client, scheduler).post(
        reverse("infusions:makeup", kwargs={"pk": series.pk}), {"date": "2026-03-03", "time": "09:00"}
    )
    assert response.status_code == UNPROCESSABLE
    assert "Every planned infusion of this series is already booked." in response.content.decode()
    assert series.sessions.count() == 6


# --- The week ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_week_lists_infusions_and_boosters_by_day(client, scheduler, series, other_patient, clock):
    ClosedDay.objects.create(date=dt.date(2026, 3, 4), reason="Staff training")
    MaintenancePlanFactory(patient=other_patient, protocol=series.protocol)
    booster = booster_schedule(patient=other_patient, scheduled_at=at(14), by=scheduler)

    response = login(client, scheduler).get(reverse("infusions:week") + "?week=2026-03-05")  # any day of the week
    assert response.context["monday"] == MONDAY
    days = response.context["days"]
    assert [d["date"].weekday() for d in days] == list(range(7))
    assert [d["is_open"] for d in days] == [True, True, False, True, True, False, False]
    assert [s.pk for s in days[0]["sessions"]] == [series.sessions.order_by("scheduled_at")[0].pk, booster.pk]
    body = response.content.decode()
    assert 'class="appt booster"' in body
    assert "week__day--closed" in body
    next_query = "next=%2Finfusions%2Fcalendar%2F%3Fweek%3D2026-03-02"
    assert reverse("infusions:move", kwargs={"pk": booster.pk}) + "?" + next_query in body
    assert reverse("infusions:cancel", kwargs={"pk": booster.pk}) + "?" + next_query in body
    assert "?week=2026-02-23" in body
    assert "?week=2026-03-09" in body


@pytest.mark.django_db
@pytest.mark.parametrize("rows", [2, 12])
def test_the_week_runs_a_fixed_number_of_queries(
    client, scheduler, clock, protocol, rows, django_assert_max_num_queries
):
    many_patients_booked(rows, protocol, scheduler)
    login(client, scheduler)
    with django_assert_max_num_queries(
        9
    ):  # session, user, roles, unread count, closed days, the week's rows, the access log
        response = client.get(reverse("infusions:week"))
    assert response.context["count"] == rows * 2  # Monday and Thursday of each series
