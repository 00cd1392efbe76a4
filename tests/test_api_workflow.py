"""The API's "done when": a client that knows only /api/schema/ runs a whole treatment.

It logs in, registers a patient, builds an induction series, logs every infusion,
posts PHQ-9s, and schedules a booster; then the patient's own token reads only their
own response curve. Every URL comes from the schema's operations, never from Django.
"""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest
import time_machine
from rest_framework.test import APIClient

from tests.factories import PASSWORD, PatientFactory, ProtocolFactory, UserFactory

NEW_YORK = ZoneInfo("America/New_York")
MONDAY = dt.date(2026, 11, 23)


class SchemaClient:
    """Calls operations by their operationId, with paths read from /api/schema/."""

    def __init__(self):
        self.http = APIClient()
        schema = self.http.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
        assert schema.status_code == 200, schema.content
        self.operations = {
            operation["operationId"]: (method.upper(), path)
            for path, methods in schema.json()["paths"].items()
            for method, operation in methods.items()
        }

    def login(self, username: str, password: str = PASSWORD) -> dict:
        response = self.call("auth_token_create", data={"username": username, "password": password})
        assert response.status_code == 200, response.json()
        self.http.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
        return response.json()

    def call(self, operation_id: str, *, data=None, query=None, **path):
        method, template = self.operations[operation_id]
        url = re.sub(r"\{(\w+)\}", lambda match: str(path[match.group(1)]), template)
        if method == "GET":
            return self.http.get(url, query or {})
        return self.http.generic(method, url, data=_json(data or {}), content_type="application/json")

    def ok(self, operation_id: str, *, expect: int = 200, **kwargs) -> dict:
        response = self.call(operation_id, **kwargs)
        assert response.status_code == expect, (operation_id, response.status_code, response.content)
        return response.json()


def _json(data) -> str:
    import json

    return json.dumps(data)


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=NEW_YORK)


@pytest.mark.django_db
def test_a_client_knowing_only_the_schema_runs_a_whole_treatment():
    UserFactory(username="dr_api", role="clinician")
    UserFactory(username="sched_api", role="scheduler")
    ProtocolFactory(name="Six IV infusions")
    other = PatientFactory(with_portal_account=True)

    with time_machine.travel(at(MONDAY, 8), tick=False) as clock:
        client = SchemaClient()
        me = client.login("dr_api")
        assert me["user"]["role"] == "clinician"
        assert client.ok("me_retrieve")["username"] == "dr_api"

        patient = client.ok(
            "patients_create",
            expect=201,
            data={
                "mrn": "API-0001",
                "first_name": "Robin",
                "last_name": "Quaye",
                "date_of_birth": "1980-04-02",
                "primary_diagnosis": "trd",
                "email": "robin@example.org",
                "clinical": {"weight_kg": "80.0"},
            },
        )
        assert patient["clinical"]["weight_kg"] == "80.0"
        baseline = client.ok(
            "phq9_create",
            expect=201,
            data={"patient": patient["id"], **{f"item_{n}": 2 for n in range(1, 10)}, "item_9": 0},
        )
        assert (baseline["total"], baseline["severity"], baseline["safety_flag"]) == (16, "moderately_severe", False)

        protocol = client.ok("protocols_list", query={"is_active": "true"})["results"][0]
        request = {"patient": patient["id"], "protocol": protocol["id"], "start_date": MONDAY.isoformat()}
        preview = client.ok("series_preview_create", data=request)
        assert len(preview["dates"]) == 6
        series = client.ok("series_create", expect=201, data={**request, "expected_dates": preview["dates"]})
        assert len(series["sessions"]) == 6

        infusions = client.ok("infusions_list", query={"series": series["id"], "ordering": "scheduled_at"})
        assert [item["scheduled_on"] for item in infusions["results"]] == preview["dates"]
        for number, infusion in enumerate(infusions["results"], start=1):
            day = dt.date.fromisoformat(infusion["scheduled_on"])
            clock.move_to(at(day, 9, 5))
            client.login("dr_api")  # a new day, a new token (they expire)
            pk = infusion["id"]
            started = client.ok("infusions_start_create", id=pk, data={"weight_kg": "80.0"})
            assert started["clinical"]["dose_mg"] == "40.0"  # 0.5 mg/kg x 80 kg
            client.ok(
                "infusions_vitals_create",
                id=pk,
                expect=201,
                data={"phase": "during", "systolic": 132, "diastolic": 84, "heart_rate": 76, "spo2": 98},
            )
            clock.move_to(at(day, 9, 50))
            client.ok(
                "infusions_complete_create", id=pk, data={"dissociation_scale": "cadss6", "dissociation_score": 6}
            )
            clock.move_to(at(day, 10, 30))
            client.ok("infusions_discharge_create", id=pk, data={})
            signed = client.ok("infusions_sign_create", id=pk, data={})
            assert signed["is_signed"] is True
            score = max(16 - 2 * number, 3)
            client.ok(
                "phq9_create",
                expect=201,
                data={"patient": patient["id"], **{f"item_{n}": 0 for n in range(1, 10)}, "item_1": min(score, 3)}
                | {"item_2": min(max(score - 3, 0), 3), "item_3": min(max(score - 6, 0), 3)},
            )

        progress = client.ok("patients_retrieve", id=patient["id"])["progress"]
        assert progress["baseline_total"] == 16
        assert progress["response"] is True

        # The scheduler plans boosters once the induction is complete.
        client.login("sched_api")
        plan = client.ok(
            "maintenance_plans_create",
            expect=201,
            data={"patient": patient["id"], "protocol": protocol["id"], "target_interval_days": 28},
        )
        due = client.ok("boosters_due_list")["results"]
        row = next(row for row in due if row["patient"] == patient["id"])
        assert row["status"]["stage"] == "not_yet_due"
        suggested = dt.date.fromisoformat(row["suggested_on"])
        booster = client.ok(
            "boosters_create",
            expect=201,
            data={"patient": patient["id"], "scheduled_at": at(suggested, 9).isoformat()},
        )
        assert booster["kind"] == "booster"
        assert booster["clinical"] is None  # schedulers do not see the clinical record
        assert (
            client.ok("maintenance_plans_retrieve", id=plan["id"])["booster_status"]["next_appointment"]["id"]
            == (booster["id"])
        )

        # The patient's own token reads their own curve, and nobody else's.
        from patients.models import Patient

        record = Patient.objects.get(pk=patient["id"])
        record.user = UserFactory(username="robin@example.org", role="patient")
        record.save()
        client.login("robin@example.org")
        curve = client.ok("patients_response_curve_retrieve", id=patient["id"])
        assert curve["figure"]["data"], "the figure has traces"
        assert curve["points"][0]["total"] == 16
        assert client.call("patients_response_curve_retrieve", id=other.pk).status_code == 404
        assert [item["id"] for item in client.ok("patients_list")["results"]] == [patient["id"]]
