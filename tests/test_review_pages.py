"""Page rules found in review: booster moves, what schedulers see, odd input, stopping a series."""

from __future__ import annotations

import datetime as dt
import smtplib
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib.auth.models import Group, User
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.urls import reverse

from maintenance.models import BoosterAppointment, Notification, NotificationKind
from maintenance.services import booster_schedule
from patients.models import PHQ9Assessment
from patients.phq9 import ITEM_FIELDS
from sessions.models import InductionSeries, InfusionSession, SessionStatus, SideEffect
from sessions.scheduling import clinic_datetime
from sessions.services import series_create, session_complete, session_record_vitals, session_start
from tests.factories import MaintenancePlanFactory, PatientFactory, PHQ9Factory, UserFactory

NEW_YORK = ZoneInfo("America/New_York")
MONDAY = dt.date(2026, 3, 2)


def at(day: dt.date, hour: int = 10) -> dt.datetime:
    return clinic_datetime(day, dt.time(hour))


@pytest.fixture
def clock():
    with time_machine.travel(at(MONDAY - dt.timedelta(days=3), 12), tick=False) as traveller:
        yield traveller


@pytest.fixture
def series(clock, patient, protocol, scheduler):
    return series_create(patient=patient, protocol=protocol, start_date=MONDAY, created_by=scheduler)


@pytest.fixture
def completed(series, clinician, clock):
    for session in series.sessions.order_by("scheduled_at"):
        clock.move_to(session.scheduled_at + dt.timedelta(hours=2))
        session = session_start(session=session, by=clinician, weight_kg="70.0", started_at=session.scheduled_at)
        session_complete(session=session, by=clinician, ended_at=session.scheduled_at + dt.timedelta(minutes=40))
    return series


@pytest.fixture
def booster(completed, patient, protocol, scheduler, clock):
    MaintenancePlanFactory(patient=patient, protocol=protocol, min_interval_days=14)
    last = completed.sessions.order_by("scheduled_at").last().scheduled_on  # Thursday 19 March
    clock.move_to(at(last + dt.timedelta(days=1), 9))
    return booster_schedule(patient=patient, scheduled_at=at(last + dt.timedelta(days=26)), by=scheduler)


def move(client, session, day: dt.date):
    return client.post(
        reverse("infusions:move", kwargs={"pk": session.pk}), {"date": f"{day:%Y-%m-%d}", "time": "10:00"}
    )


# --- Moving a booster keeps the booster rules ----------------------------------------------


@pytest.mark.django_db
def test_a_booster_cannot_be_moved_before_the_plans_minimum_interval(client, scheduler, booster, completed):
    client.force_login(scheduler)
    last = completed.sessions.order_by("scheduled_at").last().scheduled_on
    response = move(client, booster, last + dt.timedelta(days=4))
    assert "minimum interval" in response.text
    booster.refresh_from_db()
    assert booster.scheduled_on == last + dt.timedelta(days=26)


@pytest.mark.django_db
def test_a_booster_of_a_paused_plan_cannot_be_moved(client, scheduler, booster, patient):
    patient.maintenance_plan.is_active = False
    patient.maintenance_plan.save()
    client.force_login(scheduler)
    before = booster.scheduled_at
    response = move(client, booster, booster.scheduled_on + dt.timedelta(days=7))
    assert "paused" in response.text
    assert BoosterAppointment.objects.get(pk=booster.pk).scheduled_at == before


# --- Schedulers see no clinical detail --------------------------------------------------------


@pytest.mark.django_db
def test_a_scheduler_sees_neither_the_item_9_answer_nor_the_weight(client, scheduler, patient):
    PHQ9Factory(patient=patient, item_9=3)
    client.force_login(scheduler)
    page = client.get(patient.get_absolute_url()).text
    assert "needs clinician review" in page
    assert "nearly every day" not in page
    assert "item 9 answered above 0" not in page
    assert "72.5 kg" not in page


@pytest.mark.django_db
def test_a_scheduler_cannot_change_the_weight_that_sets_doses(client, scheduler, patient):
    client.force_login(scheduler)
    form = client.get(reverse("patients:edit", kwargs={"pk": patient.pk})).context["form"]
    assert "weight_kg" not in form.fields
    data = {name: field.value() or "" for name, field in ((n, form[n]) for n in form.fields)}
    data |= {"weight_kg": "150.0", "weight_recorded_on": "2026-03-01"}
    client.post(reverse("patients:edit", kwargs={"pk": patient.pk}), data)
    patient.refresh_from_db()
    assert str(patient.weight_kg) == "72.5"


@pytest.mark.django_db
def test_the_reason_a_series_stopped_is_clinical(client, scheduler, clinician, series):
    client.force_login(scheduler)
    client.post(reverse("infusions:series_discontinue", kwargs={"pk": series.pk}), {"reason": "Psychotic symptoms"})
    assert "Psychotic symptoms" not in client.get(series.patient.get_absolute_url()).text
    client.force_login(clinician)
    assert "Psychotic symptoms" in client.get(series.patient.get_absolute_url()).text


@pytest.mark.django_db
def test_a_former_clinician_gets_no_vitals_alert(series, clinician, clock, patient):
    former = UserFactory(username="moved_on", role="clinician")
    patient.primary_clinician = former
    patient.save()
    former.groups.clear()
    session = series.sessions.order_by("scheduled_at").first()
    clock.move_to(at(MONDAY, 9))
    session = session_start(session=session, by=clinician, weight_kg="70.0")
    session_record_vitals(session=session, by=clinician, phase="during", systolic=190, diastolic=110)
    assert set(Notification.objects.filter(kind=NotificationKind.VITALS_ALERT).values_list("recipient", flat=True)) == {
        clinician.pk
    }


# --- Stopping a series from the patient page ----------------------------------------------------


@pytest.mark.django_db
def test_staff_stop_a_series_with_a_reason(client, scheduler, series):
    client.force_login(scheduler)
    page = client.get(series.patient.get_absolute_url()).text
    assert reverse("infusions:series_discontinue", kwargs={"pk": series.pk}) in page
    response = client.post(
        reverse("infusions:series_discontinue", kwargs={"pk": series.pk}), {"reason": "Moving abroad"}, follow=True
    )
    assert "The series is stopped" in response.text
    assert set(series.sessions.values_list("status", flat=True)) == {SessionStatus.CANCELLED}


@pytest.mark.django_db
def test_stopping_a_series_needs_a_reason(client, scheduler, series):
    client.force_login(scheduler)
    response = client.post(
        reverse("infusions:series_discontinue", kwargs={"pk": series.pk}), {"reason": ""}, follow=True
    )
    assert "Say why the series is stopped" in response.text
    assert InductionSeries.objects.get(pk=series.pk).discontinued_at is None
    assert 'role="alert"' in response.text  # errors are announced


@pytest.mark.django_db
def test_a_patient_cannot_stop_a_series(client, patient, series):
    client.force_login(patient.user)
    assert (
        client.post(reverse("infusions:series_discontinue", kwargs={"pk": series.pk}), {"reason": "x"}).status_code
        == 403
    )


# --- Odd input answers with a message, never a server error ---------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("infusions:today", {"date": "0001-01-01"}),
        ("infusions:today", {"date": "9999-12-31"}),
        ("infusions:week", {"week": "0001-01-01"}),
        ("infusions:week", {"week": "9999-12-31"}),
    ],
)
def test_extreme_dates_in_the_address_fall_back_to_today(client, clinician, name, params):
    client.force_login(clinician)
    assert client.get(reverse(name), params).status_code == 200


@pytest.mark.django_db
def test_moving_to_the_year_9999_is_refused_with_a_message(client, scheduler, series):
    client.force_login(scheduler)
    first = series.sessions.order_by("scheduled_at").first()
    response = move(client, first, dt.date(9999, 12, 31))
    assert "Enter a date between 1900 and 2100" in response.text


@pytest.mark.django_db
def test_previewing_a_series_in_the_year_9999_is_refused_with_a_message(client, scheduler, patient, protocol):
    client.force_login(scheduler)
    response = client.post(
        reverse("infusions:series_new", kwargs={"pk": patient.pk}),
        {"protocol": protocol.pk, "start_date": "9999-12-20", "appointment_time": "09:00", "preview": "1"},
    )
    assert "Enter a date between 1900 and 2100" in response.text


@pytest.mark.django_db
def test_a_phq9_dated_in_year_1_is_refused(client, clinician, patient):
    client.force_login(clinician)
    data = dict.fromkeys(ITEM_FIELDS, "1") | {"taken_at": "0001-01-01T10:00"}
    response = client.post(reverse("patients:phq9_new", kwargs={"pk": patient.pk}), data)
    assert response.status_code == 400
    assert not PHQ9Assessment.objects.exists()


@pytest.mark.django_db
def test_a_patient_account_without_a_record_gets_403_in_the_portal(client):
    orphan = User.objects.create_user("orphan", password="x" * 20)
    orphan.groups.add(Group.objects.get(name="patient"))
    client.force_login(orphan)
    assert client.get(reverse("portal:home")).status_code == 403


@pytest.mark.django_db
def test_an_other_side_effect_without_a_note_is_marked_on_the_note_field(series, clinician, clock):
    from django.core.exceptions import ValidationError

    from sessions.services import session_record_side_effect

    session = series.sessions.order_by("scheduled_at").first()
    with pytest.raises(ValidationError) as error:
        session_record_side_effect(session=session, by=clinician, kind="other", severity="mild")
    assert "note" in error.value.message_dict
    assert not SideEffect.objects.exists()


# --- Booking exactly what was previewed ------------------------------------------------------------


@pytest.mark.django_db
def test_a_series_whose_dates_changed_since_the_preview_is_not_booked(client, scheduler, patient, protocol, clock):
    client.force_login(scheduler)
    url = reverse("infusions:series_new", kwargs={"pk": patient.pk})
    data = {"protocol": protocol.pk, "start_date": f"{MONDAY:%Y-%m-%d}", "appointment_time": "09:00"}
    preview = client.post(url, data | {"preview": "1"})
    signature = preview.context["signature"]
    # Meanwhile the clinic closes on the first planned day.
    from sessions.models import ClosedDay

    ClosedDay.objects.create(date=MONDAY, reason="Burst pipe")
    response = client.post(url, data | {"confirm": "1", "previewed": signature})
    assert response.status_code != 302
    assert not InfusionSession.objects.exists()


# --- Invitations ---------------------------------------------------------------------------------------


class FailingEmailBackend(BaseEmailBackend):
    def send_messages(self, messages):
        raise smtplib.SMTPServerDisconnected("mail server down")


@pytest.mark.django_db
def test_an_invitation_that_cannot_be_emailed_creates_no_account(client, scheduler, settings):
    settings.EMAIL_BACKEND = f"{__name__}.FailingEmailBackend"
    patient = PatientFactory(email="ada@example.test")
    client.force_login(scheduler)
    response = client.post(reverse("patients:invite", kwargs={"pk": patient.pk}), follow=True)
    assert "could not be sent" in response.text
    patient.refresh_from_db()
    assert patient.user is None
    assert not User.objects.filter(username="ada@example.test").exists()


@pytest.mark.django_db
def test_a_second_invitation_follows_the_new_email_address(client, scheduler):
    patient = PatientFactory(email="old@example.test")
    client.force_login(scheduler)
    client.post(reverse("patients:invite", kwargs={"pk": patient.pk}))
    patient.email = "new@example.test"
    patient.save()
    client.post(reverse("patients:invite", kwargs={"pk": patient.pk}))
    patient.refresh_from_db()
    assert patient.user.username == "new@example.test"
    assert mail.outbox[-1].to == ["new@example.test"]


# --- Caching ---------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_pages_of_a_signed_in_user_are_never_stored(client, clinician, patient):
    client.force_login(clinician)
    response = client.get(patient.get_absolute_url())
    assert "no-store" in response["Cache-Control"]
