"""The Django admin: a superuser-only site whose writes go through the services."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
import time_machine
from axes.models import AccessAttempt, AccessFailureLog
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import Group
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice
from knox.models import AuthToken

from clinic.admin import ClinicAdminSite
from maintenance.models import BoosterStage, JobRun, NotificationKind, Reminder, ReminderChannel, ReminderKind
from maintenance.notify import notify
from maintenance.services import booster_schedule
from patients.models import Patient, PHQ9Assessment, PHQ9Source
from patients.phq9 import ITEM_FIELDS
from sessions.models import (
    ClosedDay,
    InductionSeries,
    InfusionAmendment,
    InfusionSession,
    SessionStatus,
    SideEffect,
    SideEffectKind,
    SideEffectSeverity,
    VitalSignReading,
)
from sessions.services import (
    series_create,
    session_amend,
    session_complete,
    session_discharge,
    session_record_side_effect,
    session_record_vitals,
    session_sign,
    session_start,
)
from sessions.vitals import VitalPhase
from tests.factories import MaintenancePlanFactory, PatientFactory, PHQ9Factory, UserFactory

NEW_YORK = ZoneInfo("America/New_York")
FROZEN = dt.datetime(2026, 2, 27, 12, 0, tzinfo=NEW_YORK)  # a Friday
MONDAY = dt.date(2026, 3, 2)  # the next open weekday
INFUSION_DAY = dt.datetime(2026, 3, 2, 12, 0, tzinfo=NEW_YORK)  # Monday, after the 09:00 infusion

REGISTRY = sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label)
CLINIC_APPS = ("patients", "infusions", "maintenance")


def admin_url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def label(model) -> str:
    return model._meta.label


def give_and_sign(session: InfusionSession, clinician, traveller) -> InfusionSession:
    """Start, log, complete, discharge and sign ``session`` (scheduled for 09:00 on MONDAY)."""
    traveller.move_to(INFUSION_DAY)
    start = session.scheduled_at
    session = session_start(session=session, by=clinician, started_at=start)
    session_record_vitals(
        session=session,
        by=clinician,
        phase=VitalPhase.DURING,
        taken_at=start + dt.timedelta(minutes=20),
        systolic=132,
        diastolic=84,
        heart_rate=78,
        spo2=98,
    )
    session_record_side_effect(
        session=session, by=clinician, kind=SideEffectKind.NAUSEA_VOMITING, severity=SideEffectSeverity.MILD
    )
    session = session_complete(
        session=session, by=clinician, ended_at=start + dt.timedelta(minutes=45), notes="Tolerated well."
    )
    session = session_discharge(session=session, by=clinician, discharged_at=start + dt.timedelta(minutes=90))
    return session_sign(session=session, by=clinician)


@pytest.fixture
def given_session(clinician, protocol):
    """A signed infusion of a new patient, built through the services on a frozen clock."""
    with time_machine.travel(FROZEN, tick=False) as traveller:
        patient = PatientFactory()
        series = series_create(patient=patient, protocol=protocol, start_date=MONDAY, created_by=clinician)
        session = series.sessions.order_by("scheduled_at").first()
        return give_and_sign(session, clinician, traveller)


@pytest.fixture
def every_record(given_session, clinician, scheduler, patient, protocol):
    """At least one row of every model the admin shows, so changelists render real rows."""
    PHQ9Factory(patient=patient, item_9=1)
    PHQ9Factory(patient=given_session.patient, level=2)
    session_amend(session=given_session, by=clinician, reason="Typo in the notes", changes={"notes": "Tolerated."})
    MaintenancePlanFactory(patient=patient, protocol=protocol)
    booster_at = timezone.localtime(timezone.now() + dt.timedelta(days=7)).replace(
        hour=10, minute=0, second=0, microsecond=0
    )
    while booster_at.weekday() >= 5:
        booster_at += dt.timedelta(days=1)
    booster_schedule(patient=patient, scheduled_at=booster_at, by=scheduler)
    Reminder.objects.create(
        kind=ReminderKind.BOOSTER_STAGE,
        patient=given_session.patient,
        subject_id=given_session.pk,
        stage=BoosterStage.DUE_SOON,
        recipient=scheduler,
        channel=ReminderChannel.IN_APP,
        title="Booster due soon",
        send_after=timezone.now(),
    )
    ClosedDay.objects.create(date=dt.date(2026, 12, 25), reason="Christmas")
    AuthToken.objects.create(user=scheduler)
    AccessAttempt.objects.create(
        username="someone", ip_address="192.0.2.1", user_agent="test", failures_since_start=1, get_data="", post_data=""
    )
    AccessFailureLog.objects.create(username="someone", ip_address="192.0.2.1", user_agent="test", locked_out=False)
    JobRun.objects.create(name="reminder-scan", last_success_at=timezone.now())
    # Two-factor devices (django-otp), of someone other than the superuser browsing the admin.
    TOTPDevice.objects.create(user=scheduler, name="default")
    StaticDevice.objects.create(user=scheduler, name="backup").token_set.create(token="abcd2345")
    notify(
        recipients=[scheduler],
        kind=NotificationKind.BOOSTER_STAGE,
        title="Booster due soon",
        patient=given_session.patient,
    )
    return given_session


@pytest.fixture
def superuser_client(client, superuser):
    """The test client logged in as the superuser (the only kind of user the admin admits)."""
    client.force_login(superuser)
    return client


def superuser_request(superuser):
    request = RequestFactory().get("/admin/")
    request.user = superuser
    return request


# --- Registration ------------------------------------------------------------------


def test_the_admin_site_is_the_clinics_superuser_only_site():
    assert isinstance(admin.site, ClinicAdminSite)


@pytest.mark.parametrize("model", [m for app in CLINIC_APPS for m in apps.get_app_config(app).get_models()], ids=label)
def test_every_model_of_the_clinic_apps_is_registered_in_the_admin(model):
    assert admin.site.is_registered(model), f"{model._meta.label} is not registered in the admin"


# --- Who gets in -------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["clinician", "scheduler", "patient"])
def test_only_superusers_get_into_the_admin_even_with_the_staff_flag(request, client, who):
    user = request.getfixturevalue(who)
    user = user.user if who == "patient" else user
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    client.force_login(user)
    for url in (reverse("admin:index"), admin_url(Patient, "changelist"), admin_url(PHQ9Assessment, "add")):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("admin:login")), url


@pytest.mark.django_db
def test_a_non_superuser_cannot_write_through_the_admin(client, scheduler, patient):
    scheduler.is_staff = True
    scheduler.save(update_fields=["is_staff"])
    client.force_login(scheduler)
    response = client.post(admin_url(Patient, "change", patient.pk), {"first_name": "Changed"})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
    patient.refresh_from_db()
    assert patient.first_name != "Changed"


@pytest.mark.django_db
def test_an_inactive_superuser_is_refused(client):
    user = UserFactory(username="old_root", is_superuser=True, is_staff=True, is_active=False)
    client.force_login(user)
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


@pytest.mark.django_db
def test_a_superuser_gets_into_the_admin(superuser_client):
    assert superuser_client.get(reverse("admin:index")).status_code == 200


# --- Every page renders --------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(("model", "model_admin"), REGISTRY, ids=[label(m) for m, _ in REGISTRY])
def test_a_superuser_sees_the_changelist_of_every_registered_model(superuser_client, every_record, model, model_admin):
    url = admin_url(model, "changelist")
    response = superuser_client.get(url)
    assert response.status_code == 200
    if model_admin.get_queryset(superuser_request(response.wsgi_request.user)).exists():
        assert response.context["cl"].result_count > 0, f"{url} lists nothing"
    if model_admin.search_fields:
        assert superuser_client.get(url, {"q": "x"}).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(("model", "model_admin"), REGISTRY, ids=[label(m) for m, _ in REGISTRY])
def test_a_superuser_opens_the_add_page_of_every_model_that_can_be_added(
    superuser, superuser_client, model, model_admin
):
    if not model_admin.has_add_permission(superuser_request(superuser)):
        assert superuser_client.get(admin_url(model, "add")).status_code == 403
        return
    assert superuser_client.get(admin_url(model, "add")).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(("model", "model_admin"), REGISTRY, ids=[label(m) for m, _ in REGISTRY])
def test_a_superuser_opens_the_change_page_of_a_row_of_every_model(
    superuser, superuser_client, every_record, model, model_admin
):
    obj = model_admin.get_queryset(superuser_request(superuser)).first()
    assert obj is not None, f"the test data has no {model._meta.label}"
    assert superuser_client.get(admin_url(model, "change", obj.pk)).status_code == 200


@pytest.mark.django_db
def test_the_patient_changelist_searches_and_filters_together(superuser_client, patient, other_patient):
    other_patient.status = "on_hold"
    other_patient.save(update_fields=["status"])
    url = admin_url(Patient, "changelist")
    response = superuser_client.get(url, {"q": patient.mrn, "status__exact": "active"})
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [patient]
    response = superuser_client.get(url, {"q": patient.mrn, "status__exact": "on_hold"})
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == []


@pytest.mark.django_db
def test_the_infusion_session_changelist_searches_and_filters_together(superuser_client, given_session):
    url = admin_url(InfusionSession, "changelist")
    mrn = given_session.patient.mrn
    response = superuser_client.get(url, {"q": mrn, "status__exact": SessionStatus.COMPLETED})
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [given_session]
    response = superuser_client.get(url, {"q": mrn, "status__exact": SessionStatus.SCHEDULED})
    assert response.status_code == 200
    assert response.context["cl"].result_count == 5
    response = superuser_client.get(url, {"q": "no-such-patient", "status__exact": SessionStatus.SCHEDULED})
    assert response.context["cl"].result_count == 0


# --- Writes go through the services ------------------------------------------------------


@pytest.mark.django_db
def test_adding_a_series_in_the_admin_schedules_its_sessions(superuser_client, superuser, patient, protocol):
    with time_machine.travel(FROZEN, tick=False):
        response = superuser_client.post(
            admin_url(InductionSeries, "add"),
            {"patient": patient.pk, "protocol": protocol.pk, "start_date": MONDAY.isoformat(), "_save": "Save"},
        )
    assert response.status_code == 302, response.context["adminform"].form.errors
    series = InductionSeries.objects.get(patient=patient)
    assert series.created_by == superuser
    assert series.start_date == MONDAY
    assert series.planned_infusions == 6
    sessions = list(series.sessions.order_by("scheduled_at"))
    assert len(sessions) == 6
    assert {s.status for s in sessions} == {SessionStatus.SCHEDULED}
    assert [s.scheduled_on.strftime("%a") for s in sessions] == ["Mon", "Thu"] * 3


@pytest.mark.django_db
def test_a_series_starting_in_the_past_is_refused_in_the_admin_and_nothing_is_created(
    superuser_client, patient, protocol
):
    with time_machine.travel(FROZEN, tick=False):
        response = superuser_client.post(
            admin_url(InductionSeries, "add"),
            {"patient": patient.pk, "protocol": protocol.pk, "start_date": "2026-02-23", "_save": "Save"},
        )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["start_date"] == ["A new series cannot start in the past."]
    assert not InductionSeries.objects.exists()
    assert not InfusionSession.objects.exists()


@pytest.mark.django_db
def test_a_signed_infusion_cannot_be_changed_in_the_admin(superuser_client, given_session):
    url = admin_url(InfusionSession, "change", given_session.pk)
    before = InfusionSession.objects.values().get(pk=given_session.pk)
    vitals_before = list(VitalSignReading.objects.filter(session=given_session).values())

    page = superuser_client.get(url)
    assert page.status_code == 200  # shown read-only
    assert not page.context["has_change_permission"]
    assert b'name="_save"' not in page.content

    response = superuser_client.post(
        url,
        {
            "notes": "Rewritten after signing",
            "status": SessionStatus.COMPLETED,
            "dose_mg": "99.0",
            "vitals-TOTAL_FORMS": "0",
            "vitals-INITIAL_FORMS": "0",
            "side_effects-TOTAL_FORMS": "0",
            "side_effects-INITIAL_FORMS": "0",
            "_save": "Save",
        },
    )
    assert response.status_code == 403
    assert InfusionSession.objects.values().get(pk=given_session.pk) == before
    assert list(VitalSignReading.objects.filter(session=given_session).values()) == vitals_before
    assert SideEffect.objects.filter(session=given_session).count() == 1
    assert not InfusionAmendment.objects.exists()


@pytest.mark.django_db
def test_adding_a_phq9_in_the_admin_records_who_entered_it_and_its_total(superuser_client, superuser, patient):
    taken_at = timezone.localtime(timezone.now() - dt.timedelta(hours=1))
    answers = dict(zip(ITEM_FIELDS, (3, 2, 1, 0, 3, 2, 1, 0, 1), strict=True))
    response = superuser_client.post(
        admin_url(PHQ9Assessment, "add"),
        {
            "patient": patient.pk,
            "taken_at_0": taken_at.strftime("%Y-%m-%d"),
            "taken_at_1": taken_at.strftime("%H:%M:%S"),
            "source": PHQ9Source.CLINIC,
            "difficulty": "",
            **answers,
            "_save": "Save",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    assessment = PHQ9Assessment.objects.get(patient=patient)
    assert assessment.entered_by == superuser
    assert assessment.total == 13
    assert assessment.items == (3, 2, 1, 0, 3, 2, 1, 0, 1)
    assert assessment.has_safety_flag


@pytest.mark.django_db
def test_the_role_groups_are_listed_in_the_admin(superuser_client):
    response = superuser_client.get(admin_url(Group, "changelist"))
    names = {group.name for group in response.context["cl"].result_list}
    assert {"clinician", "scheduler", "patient"} <= names
