"""Review of the REST API commit: each test shows one bug and fails until it is fixed.

Time is frozen on Monday 23 November 2026, 13:00 in New York (UTC-05:00), as in
tests/test_api_resources.py: patient A's series runs Mondays and Thursdays at 09:00
and its first infusion was given (and signed) this morning.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from html.parser import HTMLParser
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib.auth.models import User
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from maintenance.models import BoosterAppointment, MaintenancePlan
from patients.models import PHQ9Assessment
from sessions.models import (
    InductionSeries,
    InfusionAmendment,
    InfusionSession,
    SessionKind,
    SideEffect,
    VitalSignReading,
)
from sessions.services import (
    series_create,
    session_cancel,
    session_complete,
    session_discharge,
    session_record_vitals,
    session_sign,
    session_start,
)
from sessions.vitals import VitalPhase
from tests.factories import PASSWORD, MaintenancePlanFactory, PHQ9Factory, ProtocolFactory

NEW_YORK = ZoneInfo("America/New_York")
MONDAY = dt.date(2026, 11, 23)  # winter: the clinic is at UTC-05:00
THURSDAY = dt.date(2026, 11, 26)
NOW = dt.datetime.combine(MONDAY, dt.time(13, 0), tzinfo=NEW_YORK)
API = "/api/v1"


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


def infusions_of(series: InductionSeries) -> list[InfusionSession]:
    return list(series.sessions.order_by("scheduled_at"))


def give(session: InfusionSession, clinician) -> InfusionSession:
    """Give an infusion at its booked time through the services, discharge it and sign it."""
    start = session.scheduled_at + dt.timedelta(minutes=5)
    session = session_start(session=session, by=clinician, weight_kg="80.0", started_at=start)
    session_record_vitals(
        session=session, by=clinician, phase=VitalPhase.PRE, taken_at=start, systolic=128, diastolic=82, spo2=98
    )
    session = session_complete(session=session, by=clinician, ended_at=start + dt.timedelta(minutes=45))
    session = session_discharge(session=session, by=clinician, discharged_at=start + dt.timedelta(minutes=85))
    return session_sign(session=session, by=clinician, signed_at=start + dt.timedelta(minutes=90))


def snapshot(session: InfusionSession) -> tuple:
    return (
        InfusionSession.objects.filter(pk=session.pk).values().get(),
        list(VitalSignReading.objects.filter(session=session).values()),
        list(SideEffect.objects.filter(session=session).values()),
        list(InfusionAmendment.objects.filter(session=session).values()),
    )


@pytest.fixture
def series_a(patient, protocol, scheduler) -> InductionSeries:
    """Patient A's induction from Monday 23 November: Mon/Thu, 09:00."""
    return series_create(patient=patient, protocol=protocol, start_date=MONDAY, created_by=scheduler)


@pytest.fixture
def signed_a(series_a, clinician) -> InfusionSession:
    """Patient A's first infusion, given this morning (09:05-09:50, discharged 10:30) and signed."""
    return give(infusions_of(series_a)[0], clinician)


# --- 1. Amendments rewrite a signed record's times past every rule -------------------------------


@pytest.mark.django_db
def test_an_amendment_cannot_move_the_discharge_into_the_future(clinician, signed_a):
    """The discharge action refuses a time in the future ("A discharge cannot be in the
    future."); the amend action writes one into a signed record, which then also says it
    was signed before the patient was discharged."""
    before = snapshot(signed_a)
    body = {"reason": "Wrong time", "changes": {"discharged_at": at(THURSDAY, 10).isoformat()}}
    response = api(clinician).post(f"{API}/infusions/{signed_a.pk}/amend/", body, format="json")
    refused(response)  # {"discharged_at": [...]} from the service, or the field dropped from the API
    assert snapshot(signed_a) == before


@pytest.mark.django_db
def test_an_amendment_cannot_move_the_start_off_the_booked_day(clinician, signed_a):
    """Starting refuses a time on another day than the booking; the amend action moves a
    signed infusion's start a year back (the web amend form has no time fields at all)."""
    before = snapshot(signed_a)
    body = {"reason": "Wrong time", "changes": {"started_at": at(dt.date(2025, 11, 24), 9, 5).isoformat()}}
    response = api(clinician).post(f"{API}/infusions/{signed_a.pk}/amend/", body, format="json")
    refused(response)
    assert snapshot(signed_a) == before


# --- 2. A maintenance plan on a retired protocol -----------------------------------------------


@pytest.mark.django_db
def test_a_new_maintenance_plan_cannot_use_a_retired_protocol(scheduler, patient):
    """The plan form offers only protocols in use (maintenance/forms.py PlanForm); the API
    takes any protocol, and every booster is then booked with the retired one's dose."""
    retired = ProtocolFactory(name="Retired IM protocol", is_active=False)
    body = {"patient": str(patient.pk), "protocol": str(retired.pk), "target_interval_days": 28}
    errors = refused(api(scheduler).post(f"{API}/maintenance-plans/", body, format="json"))
    assert "protocol" in errors
    assert not MaintenancePlan.objects.exists()


@pytest.mark.django_db
def test_a_maintenance_plan_cannot_be_switched_to_a_retired_protocol(scheduler, patient, protocol):
    plan = MaintenancePlanFactory(patient=patient, protocol=protocol)
    retired = ProtocolFactory(name="Retired IM protocol", is_active=False)
    client = api(scheduler)

    errors = refused(client.patch(f"{API}/maintenance-plans/{plan.pk}/", {"protocol": str(retired.pk)}, format="json"))
    assert "protocol" in errors
    plan.refresh_from_db()
    assert plan.protocol == protocol

    # As on the form, a plan whose own protocol was retired since keeps it when other fields change.
    protocol.is_active = False
    protocol.save()
    response = client.patch(f"{API}/maintenance-plans/{plan.pk}/", {"notes": "Mornings only"}, format="json")
    assert response.status_code == 200, response.content


# --- 3. N+1 queries on infusion lists for schedulers and patients -------------------------------


def _boosters(patient, clinician, count: int, first: int) -> None:
    """``count`` more boosters of ``patient``, each with a reading, a side effect and an amendment."""
    for i in range(first, first + count):
        day = dt.date(2027, 1, 4) + dt.timedelta(days=2 * i)
        booster = BoosterAppointment.objects.create(
            patient=patient,
            kind=SessionKind.BOOSTER,
            scheduled_at=at(day, 9),
            route="iv",
            drug="ketamine",
            dose_mg_per_kg=Decimal("0.50"),
            planned_minutes=40,
        )
        VitalSignReading.objects.create(
            session=booster, taken_at=at(day, 9), phase="pre", systolic=120, diastolic=80, recorded_by=clinician
        )
        SideEffect.objects.create(session=booster, kind="headache")
        InfusionAmendment.objects.create(session=booster, author=clinician, reason="x", changes={})


@pytest.mark.django_db
@pytest.mark.parametrize("endpoint", ["infusions", "boosters"])
@pytest.mark.parametrize("role", ["scheduler", "patient"])
def test_an_infusion_list_costs_the_same_queries_for_readers_without_the_clinical_record(
    request, clinician, patient, endpoint, role
):
    """InfusionSerializer builds the whole clinical record (vitals, side effects,
    amendments) before replacing it with null, and infusions_for() prefetches those only
    for clinicians: three queries per row for schedulers and patients."""
    reader = patient.user if role == "patient" else request.getfixturevalue("scheduler")
    counts = []
    for count, first in ((3, 0), (10, 3)):
        _boosters(patient, clinician, count, first)
        client = api(User.objects.get(pk=reader.pk))  # roles read afresh, as in a real request
        with CaptureQueriesContext(connection) as captured:
            response = client.get(f"{API}/{endpoint}/")
        assert response.status_code == 200, response.content
        assert response.json()["count"] == first + count
        assert all(row["clinical"] is None for row in response.json()["results"])
        counts.append(len(captured.captured_queries))
    assert counts[0] == counts[1], counts


# --- 4. Logging rules the web forms keep ---------------------------------------------------------


@pytest.mark.django_db
def test_vitals_cannot_be_dated_before_the_infusions_day(clinician, series_a):
    """The vitals form takes a clock time on the infusion's own day (sessions/forms.py
    at_session_day); the API files a reading for Thursday's infusion as taken on Monday
    (or months ago) with no complaint."""
    thursday = infusions_of(series_a)[1]
    before = snapshot(thursday)
    client = api(clinician)
    for taken_at in (at(MONDAY, 10), at(dt.date(2026, 6, 1), 9)):
        body = {"phase": "pre", "systolic": 130, "diastolic": 85, "taken_at": taken_at.isoformat()}
        errors = refused(client.post(f"{API}/infusions/{thursday.pk}/vitals/", body, format="json"))
        assert "taken_at" in errors
    assert snapshot(thursday) == before


@pytest.mark.django_db
def test_a_side_effect_cannot_be_recorded_on_a_cancelled_infusion(clinician, scheduler, series_a):
    """Vitals on a cancelled or missed infusion are refused ("Vital signs belong to an
    infusion that took place."); side effects are not, through the API."""
    thursday = session_cancel(session=infusions_of(series_a)[1], by=scheduler, reason="Unwell")
    before = snapshot(thursday)
    body = {"kind": "headache", "severity": "severe"}
    refused(api(clinician).post(f"{API}/infusions/{thursday.pk}/side-effects/", body, format="json"))
    assert snapshot(thursday) == before


@pytest.mark.django_db
@pytest.mark.parametrize(("action", "index"), [("cancel", 1), ("missed", 0)])
def test_cancelling_or_marking_missed_needs_a_reason(scheduler, series_a, action, index):
    """The web's CloseForm requires the reason (kept with the appointment); the API's
    CloseSerializer makes it optional, so the record says nothing about why."""
    session = infusions_of(series_a)[index]
    before = snapshot(session)
    errors = refused(api(scheduler).post(f"{API}/infusions/{session.pk}/{action}/", {}, format="json"))
    assert "reason" in errors
    assert snapshot(session) == before


# --- 5. Docs from a CDN -------------------------------------------------------------------------


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/docs/", "/api/redoc/"])
def test_no_documentation_page_loads_anything_from_another_site(path):
    """drf-spectacular's redoc.html pulls its fonts from fonts.googleapis.com (every reader
    of the docs announced to Google), so Redoc is not served; Swagger UI is all local."""
    response = APIClient().get(path)
    if path == "/api/redoc/":
        assert response.status_code == 404
        return
    assert response.status_code == 200
    links = _Links()
    links.feed(response.content.decode())
    foreign = [url for url in links.urls if urlsplit(url).netloc not in ("", "testserver")]
    assert foreign == []


# --- 6. Tokens --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_password_change_revokes_the_users_api_tokens(patient):
    """A new password ends every browser session (Django's session hash) but not the API
    tokens: a token taken from a lost phone keeps working for up to 10 hours after the
    patient (or the clinic) changed the password."""
    cache.clear()  # the token endpoint's throttle
    response = APIClient().post(f"{API}/auth/token/", {"username": patient.user.username, "password": PASSWORD})
    assert response.status_code == 200, response.content
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    assert client.get(f"{API}/me/").status_code == 200

    user = User.objects.get(pk=patient.user.pk)
    user.set_password("a brand new passphrase for the portal")
    user.save()

    assert client.get(f"{API}/me/").status_code == 401
    cache.clear()


# --- 7. Times without an offset in filters --------------------------------------------------------


@pytest.mark.django_db
def test_a_filter_time_without_an_offset_is_refused(clinician, patient):
    """Bodies refuse a time without its UTC offset (an hour's ambiguity around DST); the
    PHQ-9 filters take one and guess the clinic's zone."""
    PHQ9Factory(patient=patient, taken_at=at(MONDAY, 9))
    client = api(clinician)
    for name in ("taken_after", "taken_before"):
        errors = refused(client.get(f"{API}/phq9/", {name: "2026-11-23T09:00:00"}))
        assert name in errors
    assert PHQ9Assessment.objects.count() == 1
