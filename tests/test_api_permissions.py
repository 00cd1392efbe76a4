"""Every API endpoint and method, for every role: the status each one must get.

The table below is the API's access policy in one place. The walk calls every
(method, path) under /api/ for anonymous, patient A, patient B, a scheduler, a
clinician and a superuser, on records that belong to patient A, and compares the
status codes with the table. A new endpoint fails the walk until it has a row here.

Writes send an empty body: a caller who may act gets past the permission checks to
the validation (400), or to a harmless success; one who may not is refused before
the body is read. Each call runs in a savepoint that is rolled back, so every call
sees the same records.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.cache import cache
from django.db import transaction
from django.urls import get_resolver
from knox.models import AuthToken
from rest_framework.schemas.generators import EndpointEnumerator
from rest_framework.test import APIClient

from maintenance.models import Notification, NotificationKind
from sessions.models import InductionSeries, InfusionSession, SessionKind
from sessions.scheduling import clinic_datetime
from tests.factories import MaintenancePlanFactory, PHQ9Factory

NEW_YORK = ZoneInfo("America/New_York")
NOW = dt.datetime(2026, 11, 23, 8, 0, tzinfo=NEW_YORK)  # a Monday

ROLES = ("anonymous", "patient_a", "patient_b", "scheduler", "clinician", "superuser")

# Statuses, in the order of ROLES. Objects in paths belong to patient A; a
# notification belongs to the clinician.
#
#   401  not logged in            403  the role may not do this (whoever's record)
#   404  another patient's record, or another user's notification: never a 403 that
#        would confirm it exists
#   400  allowed, and the empty body is refused by validation
EXPECTED: dict[tuple[str, str], tuple[int, ...]] = {
    # Authentication and the caller
    ("POST", "/api/v1/auth/token/"): (400, 400, 400, 400, 400, 400),
    ("POST", "/api/v1/auth/logout/"): (401, 204, 204, 204, 204, 204),
    ("GET", "/api/v1/me/"): (401, 200, 200, 200, 200, 200),
    ("GET", "/api/v1/"): (401, 200, 200, 200, 200, 200),
    # Schema and documentation: public, no patient data
    ("GET", "/api/schema/"): (200, 200, 200, 200, 200, 200),
    ("GET", "/api/docs/"): (200, 200, 200, 200, 200, 200),
    # Patients: a patient reads their own; staff register and change
    ("GET", "/api/v1/patients/"): (401, 200, 200, 200, 200, 200),
    ("POST", "/api/v1/patients/"): (401, 403, 403, 400, 400, 400),
    ("GET", "/api/v1/patients/{id}/"): (401, 200, 404, 200, 200, 200),
    ("PUT", "/api/v1/patients/{id}/"): (401, 403, 403, 400, 400, 400),
    ("PATCH", "/api/v1/patients/{id}/"): (401, 403, 403, 200, 200, 200),
    ("GET", "/api/v1/patients/{id}/response-curve/"): (401, 200, 404, 200, 200, 200),
    # PHQ-9: clinicians and the patient enter them; schedulers read totals only
    ("GET", "/api/v1/phq9/"): (401, 200, 200, 200, 200, 200),
    ("POST", "/api/v1/phq9/"): (401, 400, 400, 403, 400, 400),
    ("GET", "/api/v1/phq9/{id}/"): (401, 200, 404, 200, 200, 200),
    ("POST", "/api/v1/phq9/{id}/acknowledge/"): (401, 403, 403, 403, 400, 400),
    # Protocols: staff
    ("GET", "/api/v1/protocols/"): (401, 403, 403, 200, 200, 200),
    ("GET", "/api/v1/protocols/{id}/"): (401, 403, 403, 200, 200, 200),
    # Series: staff book; a patient reads their own
    ("GET", "/api/v1/series/"): (401, 200, 200, 200, 200, 200),
    ("POST", "/api/v1/series/"): (401, 403, 403, 400, 400, 400),
    ("POST", "/api/v1/series/preview/"): (401, 403, 403, 400, 400, 400),
    ("GET", "/api/v1/series/{id}/"): (401, 200, 404, 200, 200, 200),
    ("POST", "/api/v1/series/{id}/discontinue/"): (401, 403, 403, 400, 400, 400),
    ("POST", "/api/v1/series/{id}/makeup/"): (401, 403, 403, 400, 400, 400),
    # Infusions: staff move them; only clinicians write the clinical record
    ("GET", "/api/v1/infusions/"): (401, 200, 200, 200, 200, 200),
    ("GET", "/api/v1/infusions/{id}/"): (401, 200, 404, 200, 200, 200),
    ("POST", "/api/v1/infusions/{id}/start/"): (401, 403, 403, 403, 400, 400),
    ("POST", "/api/v1/infusions/{id}/vitals/"): (401, 403, 403, 403, 400, 400),
    ("POST", "/api/v1/infusions/{id}/side-effects/"): (401, 403, 403, 403, 400, 400),
    ("POST", "/api/v1/infusions/{id}/complete/"): (401, 403, 403, 403, 400, 400),
    ("POST", "/api/v1/infusions/{id}/discharge/"): (401, 403, 403, 403, 400, 400),
    ("POST", "/api/v1/infusions/{id}/sign/"): (401, 403, 403, 403, 400, 400),
    ("POST", "/api/v1/infusions/{id}/amend/"): (401, 403, 403, 403, 400, 400),
    ("POST", "/api/v1/infusions/{id}/reschedule/"): (401, 403, 403, 400, 400, 400),
    ("POST", "/api/v1/infusions/{id}/cancel/"): (401, 403, 403, 400, 400, 400),
    ("POST", "/api/v1/infusions/{id}/missed/"): (401, 403, 403, 400, 400, 400),  # not yet come
    # Boosters: staff book; a patient reads their own
    ("GET", "/api/v1/boosters/"): (401, 200, 200, 200, 200, 200),
    ("POST", "/api/v1/boosters/"): (401, 403, 403, 400, 400, 400),
    ("GET", "/api/v1/boosters/{id}/"): (401, 200, 404, 200, 200, 200),
    ("GET", "/api/v1/boosters/due/"): (401, 403, 403, 200, 200, 200),
    # Maintenance plans: staff
    ("GET", "/api/v1/maintenance-plans/"): (401, 403, 403, 200, 200, 200),
    ("POST", "/api/v1/maintenance-plans/"): (401, 403, 403, 400, 400, 400),
    ("GET", "/api/v1/maintenance-plans/{id}/"): (401, 403, 403, 200, 200, 200),
    ("PUT", "/api/v1/maintenance-plans/{id}/"): (401, 403, 403, 400, 400, 400),
    ("PATCH", "/api/v1/maintenance-plans/{id}/"): (401, 403, 403, 200, 200, 200),
    # Notifications: each user's own inbox (this one is the clinician's)
    ("GET", "/api/v1/notifications/"): (401, 200, 200, 200, 200, 200),
    ("GET", "/api/v1/notifications/{id}/"): (401, 404, 404, 404, 200, 404),
    ("POST", "/api/v1/notifications/{id}/read/"): (401, 404, 404, 404, 200, 404),
    ("POST", "/api/v1/notifications/read-all/"): (401, 200, 200, 200, 200, 200),
}


class EveryEndpoint(EndpointEnumerator):
    """Every view under /api/, including those left out of the schema."""

    def should_include_endpoint(self, path, callback):
        return path.startswith("/api/") and not path.endswith((".{format}", ".{format}/"))


def api_endpoints() -> set[tuple[str, str]]:
    endpoints = EveryEndpoint(patterns=get_resolver().url_patterns).get_api_endpoints()
    return {(method, path.replace("{pk}", "{id}")) for path, method, _callback in endpoints}


def test_every_api_endpoint_has_a_row_in_the_access_table():
    found = api_endpoints()
    missing = sorted(found - set(EXPECTED))
    stale = sorted(set(EXPECTED) - found)
    assert not missing, f"Endpoints without a row in EXPECTED (decide who may call them): {missing}"
    assert not stale, f"Rows in EXPECTED for endpoints that no longer exist: {stale}"


@pytest.mark.django_db
def test_every_operation_in_the_schema_is_walked():
    schema = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    operations = {(method.upper(), path) for path, methods in schema["paths"].items() for method in methods}
    assert operations <= set(EXPECTED)
    assert len(operations) >= 45


@pytest.fixture
def world(clinician, scheduler, superuser, patient, other_patient, protocol):
    """Patient A's records (a series, an infusion, a booster, a PHQ-9 with item 9 above
    0, a plan) and patient B's, on a Monday; the infusions are later in the week."""
    with time_machine.travel(NOW, tick=False):
        records = {}
        for name, owner in (("a", patient), ("b", other_patient)):
            series = InductionSeries.objects.create(
                patient=owner,
                protocol=protocol,
                planned_infusions=6,
                infusions_per_week=2,
                start_date=NOW.date() + dt.timedelta(days=3),
            )
            infusion = InfusionSession.objects.create(
                patient=owner,
                series=series,
                kind=SessionKind.INDUCTION,
                scheduled_at=clinic_datetime(NOW.date() + dt.timedelta(days=3), dt.time(9)),
                route=protocol.route,
                drug=protocol.drug,
                dose_mg_per_kg=protocol.dose,
            )
            booster = InfusionSession.objects.create(
                patient=owner,
                kind=SessionKind.BOOSTER,
                scheduled_at=clinic_datetime(NOW.date() + dt.timedelta(days=17), dt.time(9)),
                route=protocol.route,
                drug=protocol.drug,
                dose_mg_per_kg=protocol.dose,
            )
            records[name] = {
                "patients": owner,
                "series": series,
                "infusions": infusion,
                "boosters": booster,
                "phq9": PHQ9Factory(patient=owner, item_9=1),
                "maintenance-plans": MaintenancePlanFactory(patient=owner, protocol=protocol),
            }
        records["a"]["protocols"] = protocol
        records["a"]["notifications"] = Notification.objects.create(
            recipient=clinician, kind=NotificationKind.SAFETY_ALERT, title="Safety alert", patient=patient
        )
        Notification.objects.create(recipient=scheduler, kind=NotificationKind.BOOSTER_STAGE, title="Booster due")
        return {
            "users": {
                "anonymous": None,
                "patient_a": patient.user,
                "patient_b": other_patient.user,
                "scheduler": scheduler,
                "clinician": clinician,
                "superuser": superuser,
            },
            "records": records["a"],
        }


def concrete(path: str, records: dict) -> str:
    if "{id}" not in path:
        return path
    resource = path.split("/")[3]
    return path.replace("{id}", str(records[resource].pk))


def call(client: APIClient, method: str, path: str) -> int:
    """The status of one call, with everything it wrote rolled back."""
    with transaction.atomic():
        if method == "GET":
            response = client.get(path)
        else:
            response = client.generic(method, path, data="{}", content_type="application/json")
        transaction.set_rollback(True)
    return response.status_code


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
def test_every_endpoint_answers_each_role_as_the_table_says(world, role):
    client = APIClient()
    user = world["users"][role]
    column = ROLES.index(role)
    with time_machine.travel(NOW, tick=False):
        if user is not None:
            client.credentials(HTTP_AUTHORIZATION=f"Token {AuthToken.objects.create(user=user)[1]}")
        cache.clear()  # the token endpoint's throttle counts
        wrong = {}
        for (method, path), statuses in EXPECTED.items():
            got = call(client, method, concrete(path, world["records"]))
            if got != statuses[column]:
                wrong[f"{method} {path}"] = f"expected {statuses[column]}, got {got}"
    assert not wrong, f"{role}: " + "; ".join(f"{endpoint}: {what}" for endpoint, what in wrong.items())
