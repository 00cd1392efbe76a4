"""Schemathesis against /api/schema/: generated requests, valid and invalid, to every
operation, as a clinician. No answer may be a server error, and every answer must
match what the schema says (status code, content type, body).

Bounded: a fixed number of examples per operation, derandomized so CI is repeatable.
Paths point at real records half of the time and bodies at a real patient, so the
fuzzing reaches the services' rules instead of stopping at 404s.
"""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest
import schemathesis
import time_machine
from django.core.cache import cache
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from knox.models import AuthToken
from rest_framework.utils.encoders import JSONEncoder
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from clinic.wsgi import application
from maintenance.models import Notification, NotificationKind
from sessions.models import InductionSeries, InfusionSession, SessionKind
from sessions.scheduling import clinic_datetime
from tests.factories import MaintenancePlanFactory, PatientFactory, PHQ9Factory, ProtocolFactory, UserFactory

NEW_YORK = ZoneInfo("America/New_York")
NOW = dt.datetime(2026, 11, 23, 8, 0, tzinfo=NEW_YORK)  # a Monday
EXAMPLES_PER_OPERATION = 10


def load_schema():
    """The document /api/schema/ serves (the same generator, without a database at import)."""
    document = json.loads(json.dumps(SchemaGenerator().get_schema(request=None, public=True), cls=JSONEncoder))
    loaded = schemathesis.openapi.from_dict(document)
    loaded.app = application  # requests go to the WSGI application in this process
    return loaded


# Logging out would revoke the token the other examples use (the walk covers it).
schema = load_schema().exclude(path="/api/v1/auth/logout/")

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def in_test_transaction():
    """Schemathesis calls the WSGI application, which closes the database connection when
    a request ends; in a test that would close the test's transaction. Django's test
    client keeps it open the same way."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def records(db, in_test_transaction):
    """A clinician's token and one of each record the paths can name."""
    with time_machine.travel(NOW, tick=False):
        clinician = UserFactory(username="dr_fuzz", role="clinician")
        protocol = ProtocolFactory()
        patient = PatientFactory(with_portal_account=True)
        series = InductionSeries.objects.create(
            patient=patient, protocol=protocol, planned_infusions=6, infusions_per_week=2, start_date=NOW.date()
        )
        infusion = InfusionSession.objects.create(
            patient=patient,
            series=series,
            kind=SessionKind.INDUCTION,
            scheduled_at=clinic_datetime(NOW.date(), dt.time(9)),
            route=protocol.route,
            drug=protocol.drug,
            dose_mg_per_kg=protocol.dose,
        )
        booster = InfusionSession.objects.create(
            patient=patient,
            kind=SessionKind.BOOSTER,
            scheduled_at=clinic_datetime(NOW.date() + dt.timedelta(days=30), dt.time(9)),
            route=protocol.route,
            drug=protocol.drug,
            dose_mg_per_kg=protocol.dose,
        )
        return {
            "token": AuthToken.objects.create(user=clinician)[1],
            "patient": patient,
            "ids": {
                "patients": patient.pk,
                "phq9": PHQ9Factory(patient=patient, item_9=2).pk,
                "protocols": protocol.pk,
                "series": series.pk,
                "infusions": infusion.pk,
                "boosters": booster.pk,
                "maintenance-plans": MaintenancePlanFactory(patient=patient, protocol=protocol).pk,
                "notifications": Notification.objects.create(
                    recipient=clinician, kind=NotificationKind.SAFETY_ALERT, title="Safety alert", patient=patient
                ).pk,
            },
        }


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_the_api_never_fails_and_always_answers_as_its_schema_says(case, records):
    cache.clear()  # the token endpoint's throttle: its 429 is documented, but examples should reach the view
    steer = hash(repr(case.body)) % 2 == 0
    if case.path_parameters and "id" in case.path_parameters and steer:
        resource = case.path.split("/")[3]
        case.path_parameters["id"] = str(records["ids"][resource])
    if isinstance(case.body, dict) and "patient" in case.body and steer:
        case.body["patient"] = str(records["patient"].pk)
    with time_machine.travel(NOW + dt.timedelta(hours=1), tick=False):
        case.call_and_validate(headers={"Authorization": f"Token {records['token']}"}, checks=CHECKS)
