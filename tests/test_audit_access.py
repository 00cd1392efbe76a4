"""The access log: every signed-in request keeps who, when, from where and whose record,
refusals included; nobody can rewrite it.

The walks cover every page and every API endpoint that names a record: patient B asks
for patient A's, is refused, and the attempt is in the log with patient A's id.
"""

from __future__ import annotations

import pytest
import time_machine
from django.db import DatabaseError, connection, transaction
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from knox.models import AuthToken
from rest_framework.test import APIClient

from audit import access as audit_access
from audit.models import AccessLog, Channel, Outcome
from clinic.api_urls import router
from tests.test_api_permissions import EXPECTED, NOW, concrete, world  # noqa: F401  (world is a fixture)

# The record each page's URL names, by model label, in the `world` fixture's records.
RECORD_FOR_MODEL = {
    "patients.patient": "patients",
    "patients.phq9assessment": "phq9",
    "infusions.inductionseries": "series",
    "infusions.infusionsession": "infusions",
    "maintenance.notification": "notifications",
}


def page_patterns(resolver: URLResolver | None = None, namespace: str = "") -> dict[str, URLPattern]:
    """Every named page outside the API and the admin, by its namespaced name."""
    resolver = resolver or get_resolver()
    found = {}
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            if pattern.namespace in ("api", "admin"):
                continue
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            found |= page_patterns(pattern, inner)
        elif pattern.name:
            found[f"{namespace}{pattern.name}"] = pattern
    return found


def logged(user, **filters) -> list[AccessLog]:
    return list(AccessLog.objects.filter(user_id=user.pk, **filters).order_by("id"))


# --- Every URL that names a record is known ------------------------------------------


def test_every_page_that_names_a_record_says_which_record_it_names():
    named = {name for name, pattern in page_patterns().items() if "pk" in pattern.pattern.converters}
    assert named == set(audit_access.PAGES), (
        "Pages naming a record must be in audit.access.PAGES (and only those): "
        f"missing {sorted(named - set(audit_access.PAGES))}, stale {sorted(set(audit_access.PAGES) - named)}"
    )


def test_every_api_resource_says_which_record_its_ids_name():
    assert {basename for _prefix, _viewset, basename in router.registry} == set(audit_access.API_RESOURCES)


def test_every_model_a_url_names_reaches_its_patient():
    for label in {*audit_access.PAGES.values(), *filter(None, audit_access.API_RESOURCES.values())}:
        assert label in audit_access.PATIENT_PATHS


# --- Patient B asks for patient A's records --------------------------------------------


@pytest.mark.django_db
def test_patient_b_is_refused_every_page_naming_patient_as_records_and_each_attempt_is_logged(client, world):
    patient_a, patient_b = world["records"]["patients"], world["users"]["patient_b"]
    client.force_login(patient_b)
    wrong = []
    with time_machine.travel(NOW, tick=False):
        for name, label in sorted(audit_access.PAGES.items()):
            record = world["records"][RECORD_FOR_MODEL[label]]
            path = reverse(name, kwargs={"pk": record.pk})
            for method in ("get", "post"):
                before = AccessLog.objects.count()
                response = getattr(client, method)(path, {"note": "x"})
                entries = list(AccessLog.objects.order_by("id")[before:])
                if response.status_code not in (403, 404, 405):
                    wrong.append(f"{method.upper()} {name}: answered {response.status_code}")
                if [(e.user_id, e.patient_id, e.outcome, e.path) for e in entries] != [
                    (patient_b.pk, patient_a.pk, Outcome.REFUSED, path)
                ]:
                    wrong.append(f"{method.upper()} {name}: logged {entries}")
    assert not wrong, "\n".join(wrong)
    # Nothing of patient A's changed hands: the records are as they were.
    patient_a.refresh_from_db()
    assert patient_a.first_name == world["records"]["patients"].first_name


@pytest.mark.django_db
def test_patient_b_is_refused_every_api_endpoint_naming_patient_as_records_and_each_attempt_is_logged(world):
    patient_a, patient_b = world["records"]["patients"], world["users"]["patient_b"]
    client = APIClient()
    wrong = []
    with time_machine.travel(NOW, tick=False):
        client.credentials(HTTP_AUTHORIZATION=f"Token {AuthToken.objects.create(user=patient_b)[1]}")
        for method, template in EXPECTED:
            if "{id}" not in template or template.startswith("/api/v1/protocols/"):
                continue  # protocols are the clinic's: refused to patients, but nobody's record
            path = concrete(template, world["records"])
            before = AccessLog.objects.count()
            with transaction.atomic():
                response = client.generic(method, path, data="{}", content_type="application/json")
            entries = list(AccessLog.objects.order_by("id")[before:])
            if response.status_code not in (403, 404):
                wrong.append(f"{method} {template}: answered {response.status_code}")
            if [(e.user_id, e.patient_id, e.outcome, e.channel) for e in entries] != [
                (patient_b.pk, patient_a.pk, Outcome.REFUSED, Channel.API)
            ]:
                wrong.append(f"{method} {template}: logged {entries}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.django_db
@pytest.mark.parametrize("resource", ["phq9", "series", "infusions", "boosters"])
def test_patient_b_filtering_a_list_by_patient_a_is_logged_as_refused(world, resource):
    patient_a, patient_b = world["records"]["patients"], world["users"]["patient_b"]
    client = APIClient()
    client.force_authenticate(patient_b)
    response = client.get(f"/api/v1/{resource}/", {"patient": str(patient_a.pk)})
    assert response.status_code == 400 or response.json()["results"] == []
    (entry,) = logged(patient_b)
    assert (entry.patient_id, entry.outcome, entry.path) == (patient_a.pk, Outcome.REFUSED, f"/api/v1/{resource}/")


@pytest.mark.django_db
def test_a_refused_admin_view_of_a_patient_is_logged(client, world):
    patient_a, patient_b = world["records"]["patients"], world["users"]["patient_b"]
    client.force_login(patient_b)
    path = reverse("admin:patients_patient_change", args=[patient_a.pk])
    response = client.get(path)
    assert response.status_code == 302  # the admin sends non-staff to its login
    (entry,) = logged(patient_b)
    assert (entry.patient_id, entry.outcome, entry.channel) == (patient_a.pk, Outcome.REFUSED, Channel.ADMIN)


# --- What allowed reads keep ---------------------------------------------------------


@pytest.mark.django_db
def test_a_clinicians_read_of_a_patient_page_keeps_who_when_where_and_whose(client, clinician, patient):
    client.force_login(clinician)
    with time_machine.travel(NOW, tick=False):
        response = client.get(patient.get_absolute_url(), REMOTE_ADDR="10.1.2.3")
    assert response.status_code == 200
    (entry,) = logged(clinician)
    assert entry.patient_id == patient.pk
    assert entry.username == clinician.username
    assert entry.at == NOW
    assert entry.ip_address == "10.1.2.3"
    assert (entry.method, entry.path, entry.view, entry.channel) == (
        "GET",
        patient.get_absolute_url(),
        "patients:detail",
        Channel.PAGE,
    )
    assert (entry.status_code, entry.outcome, entry.object_id) == (200, Outcome.ALLOWED, str(patient.pk))


@pytest.mark.django_db
def test_a_token_read_through_the_api_is_logged_with_the_tokens_user(clinician, patient):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {AuthToken.objects.create(user=clinician)[1]}")
    assert client.get(f"/api/v1/patients/{patient.pk}/").status_code == 200
    (entry,) = logged(clinician)
    assert (entry.patient_id, entry.outcome, entry.channel, entry.view) == (
        patient.pk,
        Outcome.ALLOWED,
        Channel.API,
        "api:patient-detail",
    )


@pytest.mark.django_db
def test_the_portal_logs_reads_of_the_patients_own_record(client, patient):
    client.force_login(patient.user)
    assert client.get(reverse("portal:home")).status_code == 200
    assert client.get(reverse("portal:download")).status_code == 200
    entries = logged(patient.user)
    assert [(e.view, e.patient_id, e.outcome) for e in entries] == [
        ("portal:home", patient.pk, Outcome.ALLOWED),
        ("portal:download", patient.pk, Outcome.ALLOWED),
    ]


@pytest.mark.django_db
def test_search_terms_never_reach_the_log(client, clinician, patient):
    client.force_login(clinician)
    client.get(reverse("patients:list"), {"q": patient.last_name})
    (entry,) = logged(clinician)
    assert entry.path == reverse("patients:list")
    assert patient.last_name not in str(AccessLog.objects.values_list().get(pk=entry.pk))


@pytest.mark.django_db
def test_an_unknown_id_is_logged_as_not_found_without_a_patient(client, clinician):
    client.force_login(clinician)
    path = reverse("patients:detail", kwargs={"pk": "00000000-0000-4000-8000-000000000000"})
    assert client.get(path).status_code == 404
    (entry,) = logged(clinician)
    assert (entry.patient_id, entry.outcome) == (None, Outcome.NOT_FOUND)


@pytest.mark.django_db
def test_anonymous_requests_and_the_health_check_are_not_logged(client, patient, clinician):
    client.get(patient.get_absolute_url())  # sent to the login page
    client.force_login(clinician)
    client.get(reverse("health"))
    client.get(reverse("api:schema"))
    assert not AccessLog.objects.exists()


@pytest.mark.django_db
def test_a_page_whose_read_cannot_be_logged_is_not_shown(client, clinician, patient, monkeypatch):
    def broken(*args, **kwargs):
        raise DatabaseError("the log is unavailable")

    monkeypatch.setattr(audit_access, "record", broken)
    client.force_login(clinician)
    response = client.get(patient.get_absolute_url())
    assert response.status_code == 503
    assert patient.last_name not in response.content.decode()


# --- Nobody rewrites the log -----------------------------------------------------------


@pytest.fixture
def entry(client, clinician, patient):
    client.force_login(clinician)
    client.get(patient.get_absolute_url())
    return AccessLog.objects.get()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_accesslog SET username = 'someone_else' WHERE id = %s",
        "DELETE FROM audit_accesslog WHERE id = %s",
    ],
)
def test_plain_sql_cannot_update_or_delete_the_access_log(entry, statement):
    with (
        pytest.raises(DatabaseError, match="cannot be changed or deleted"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(statement, [entry.pk])
    assert AccessLog.objects.get(pk=entry.pk).username == entry.username


@pytest.mark.django_db
def test_the_orm_cannot_update_or_delete_the_access_log(entry):
    with pytest.raises(DatabaseError), transaction.atomic():
        AccessLog.objects.filter(pk=entry.pk).update(outcome=Outcome.ALLOWED, patient=None)
    with pytest.raises(DatabaseError), transaction.atomic():
        entry.delete()
    assert AccessLog.objects.filter(pk=entry.pk, patient_id=entry.patient_id).exists()
